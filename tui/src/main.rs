//! `taskscope`: inspect the tasks of a running tokio program that embeds
//! `taskscope_agent::init()`.
//!
//! The binary is only this entry point: the commands live in the library
//! ([`taskscope::cli`] parses the command line and runs them), where the
//! tests and benchmarks reach the same code.

use std::process::ExitCode;

fn main() -> ExitCode {
    taskscope::cli::main()
}
