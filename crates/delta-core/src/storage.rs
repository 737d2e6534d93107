//! The only module that talks to `object_store`.
