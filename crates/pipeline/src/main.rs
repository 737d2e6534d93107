//! medilake
fn main() {}
