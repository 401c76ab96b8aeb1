//! The generated bindings are checked in so that building taskscope needs no
//! `protoc`. This test regenerates them from `proto/` (with `protox`, a pure-Rust
//! protobuf compiler) and fails when the checked-in copy is stale.
//!
//! To refresh: `TASKSCOPE_BLESS=1 cargo test -p taskscope-proto --test codegen`.

use std::path::{Path, PathBuf};

#[test]
fn generated_code_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempdir(root);
    let fds =
        protox::compile(["taskscope/v1/inspector.proto"], [root.join("proto")]).expect("the .proto files compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(&out)
        .compile_fds(fds)
        .expect("bindings generate");
    let fresh = std::fs::read_to_string(out.join("taskscope.v1.rs")).expect("generated file");
    let checked_in_path = root.join("src/generated/taskscope.v1.rs");
    if std::env::var_os("TASKSCOPE_BLESS").is_some() {
        std::fs::write(&checked_in_path, &fresh).expect("write bindings");
    }
    let checked_in = std::fs::read_to_string(&checked_in_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        checked_in == fresh,
        "proto/src/generated/taskscope.v1.rs is stale: run \
         `TASKSCOPE_BLESS=1 cargo test -p taskscope-proto --test codegen` and commit the result"
    );
}

fn tempdir(root: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskscope-codegen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e} (root {})", dir.display(), root.display()));
    dir
}
