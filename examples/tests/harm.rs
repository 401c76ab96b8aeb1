//! The harm corpus (`src/bin/harm/main.rs`) against the real `taskscope stack`:
//! no request may wedge, slow for good, kill, lose or abort anything in the
//! inspected program.
//!
//! For every shape × runtime (full mode; the lean mode on a current-thread
//! and a two-worker runtime), the program is started with a private
//! socket directory, asked for its stacks 20 times, and must then still run
//! (every counter rising), have had a stack of its own functions captured
//! safely, and stop cleanly on SIGINT with no task lost. Configurations run
//! four at a time; one summary row per configuration goes to stderr. The
//! harness is `tests/common/harm.rs`, which `tests/harm_patched_tokio.rs`
//! runs against the patched tokio.
//!
//! The `taskscope` binary is the one next to this test (`target/debug/`),
//! which `cargo test --workspace` builds; when it is missing the test builds
//! it with cargo. Run alone: `cargo test -p taskscope-examples --test harm`.
//!
//! With `TASKSCOPE_HARM_TABLE=<file>` the test asserts nothing and appends
//! one tab-separated row per configuration to the file instead (shape,
//! runtime, mode, alive, counters rose, stacks, tasks lost, clean exit,
//! notes), as each one ends:
//! `scripts/harm-table` runs it that way, with and without tokio's own dump.

mod common;

use std::path::PathBuf;

use common::harm::{assert_unharmed, run_matrix, Config, Setup, SHAPES};
use common::process::taskscope_cli;

const RUNTIMES: &[&str] = &["current", "multi2", "multi4"];
/// The lean mode runs every shape on these runtimes.
const LEAN_RUNTIMES: &[&str] = &["current", "multi2"];

#[test]
fn stack_requests_harm_no_program() {
    let mut configs = Vec::new();
    for &shape in SHAPES {
        for &runtime in RUNTIMES {
            configs.push(Config { shape, runtime, lean: false });
        }
    }
    for &shape in SHAPES {
        for &runtime in LEAN_RUNTIMES {
            configs.push(Config { shape, runtime, lean: true });
        }
    }
    let setup = Setup {
        program: PathBuf::from(env!("CARGO_BIN_EXE_harm")),
        cli: taskscope_cli(),
        // The program's environment as given: `scripts/harm-table` sets
        // TASKSCOPE_TOKIO_DUMPS=1 for its second table.
        env_remove: &[],
        tokio_dump: None,
        table: std::env::var_os("TASKSCOPE_HARM_TABLE").map(PathBuf::from),
    };
    let reports = run_matrix("harm", &configs, &setup);
    if setup.table.is_none() {
        assert_unharmed(&reports);
    }
}
