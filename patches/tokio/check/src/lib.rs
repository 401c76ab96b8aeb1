//! Empty: this package exists only to put `taskscope-examples` (and its
//! `harm` binary) on the patched tokio; see `Cargo.toml`.
