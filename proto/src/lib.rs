//! The taskscope wire protocol: gRPC service `taskscope.v1.Inspector`.
//!
//! The `.proto` source in `proto/taskscope/v1/` is the reference; every message,
//! field and RPC is documented there. The Rust bindings below are generated from
//! it and checked in, so building taskscope needs no `protoc`; the `codegen`
//! test regenerates them and fails when they are stale.

/// Protocol version spoken by this crate: `ProcessInfo.protocol_version`.
///
/// Tools refuse to talk to an agent whose version differs.
pub const PROTOCOL_VERSION: u32 = 1;

/// Generated messages, client and server of `taskscope.v1`.
#[allow(clippy::all, missing_docs, rustdoc::invalid_html_tags)]
pub mod v1 {
    include!("generated/taskscope.v1.rs");
}

pub use v1::*;

pub mod discovery;
pub mod duration;
pub mod env;
