//! What `#[taskscope_agent::test]` expands to: the test's runtime, set up
//! for the agent's mode, and its body run between a guard and its check.

use std::future::Future;

use super::{Guard, Options};
use crate::recorder;

/// Builds the runtime from `builder`, runs `body` on it under a guard with
/// `options`, and panics with the report if the body left tasks behind.
/// The body's own panic (a failing assertion) passes through unchecked.
#[track_caller]
pub fn run<F: Future>(mut builder: tokio::runtime::Builder, options: Options, body: F) -> F::Output {
    let at = std::panic::Location::caller();
    // As `#[tokio::test]`: a runtime that cannot be built fails the test.
    let runtime = match runtime(&mut builder) {
        Ok(runtime) => runtime,
        Err(e) => panic!("taskscope_agent::test: cannot build the test's runtime: {e}"),
    };
    runtime.block_on(async move {
        let guard = Guard::taken_at(options, at);
        let output = body.await;
        guard.assert_clean().await;
        output
    })
}

/// The runtime, recorded in the full mode when this build has it (and no
/// runtime of the process is in the lean mode), else through the lean
/// mode's hooks. Neither registers it for tokio's dump: it is one test's.
fn runtime(builder: &mut tokio::runtime::Builder) -> std::io::Result<tokio::runtime::Runtime> {
    let agent = crate::Builder::from_env().registering_no_runtime();
    if agent.config.disabled {
        return builder.build();
    }
    if cfg!(feature = "tracing") && !recorder::hooked() {
        super::start_recording();
        return builder.build();
    }
    agent.build_runtime(builder)
}
