//! Deletion vectors: descriptors, Z85, on-disk files and roaring bitmaps (Delta protocol "Deletion Vectors").
