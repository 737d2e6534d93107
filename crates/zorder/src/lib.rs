//! Morton (Z-order) and Hilbert space-filling curves.
