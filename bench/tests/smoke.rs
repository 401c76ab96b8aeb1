//! The bench runs end to end at a hundredth of its size: children start, the
//! result lines parse, the report prints a line per workload with the `noop`
//! and `fields` controls beside `agent`, and the lean variants (`lean`, and `hooks`, the
//! empty-hooks floor) come out against plain-lean (or skipped, with the
//! reason, when taskscope-bench-lean was not built). Nothing here looks at the numbers;
//! timings never go into tests.

use std::path::Path;
use std::process::Command;

#[test]
fn quick_run_reports_every_workload() {
    let exe = env!("CARGO_BIN_EXE_taskscope-bench");
    let cli = Path::new(exe).with_file_name("taskscope");
    let lean = Path::new(exe).with_file_name("taskscope-bench-lean");
    let out = Command::new(exe)
        .args(["--quick", "--runs", "1"])
        // Never build the CLI or the lean binary from inside `cargo test` (it
        // holds cargo's lock): use them if they are there.
        .env_remove("CARGO")
        .output()
        .expect("run taskscope-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    for line in ["spawn: agent x", "channel: agent x", "idle: agent "] {
        let found = stdout
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no line starting {line:?} in\n{stdout}\nstderr:\n{stderr}"));
        assert!(found.contains("; noop "), "no noop control in {found:?}");
        assert!(found.contains("; fields "), "no fields control in {found:?}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("host steal")), "no host steal line in\n{stdout}");
    check_lean(&stdout, &lean);
    for console in ["; console x", "; console skipped (>cap)"] {
        if stdout.contains(console) {
            return check_stack(&stdout, &cli, &lean);
        }
    }
    panic!("no console comparison in\n{stdout}");
}

/// The lean rows are in the table, and the ratio lines compare `lean` with
/// `plain-lean`, never with `plain`.
fn check_lean(stdout: &str, lean: &Path) {
    for workload in ["spawn", "channel", "idle"] {
        for variant in ["plain-lean", "lean", "hooks"] {
            let row = format!("{workload:<8} {variant:<10} ");
            assert!(stdout.lines().any(|l| l.starts_with(&row)), "no {variant} row for {workload} in\n{stdout}");
        }
    }
    for workload in ["spawn: ", "channel: ", "idle: "] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(workload))
            .unwrap_or_else(|| panic!("no {workload:?} line in\n{stdout}"));
        if lean.is_file() {
            assert!(
                line.contains("; lean ") && !line.contains("; lean skipped") && line.contains(" vs plain-lean"),
                "{line}"
            );
            assert!(line.contains("; hooks ") && !line.contains("; hooks skipped"), "{line}");
        } else {
            for variant in ["lean", "hooks"] {
                assert!(line.contains(&format!("; {variant} skipped (no taskscope-bench-lean at")), "{line}");
            }
        }
    }
}

fn check_stack(stdout: &str, cli: &Path, lean: &Path) {
    let stack =
        stdout.lines().find(|l| l.starts_with("stack: ")).unwrap_or_else(|| panic!("no stack line in\n{stdout}"));
    if cli.is_file() {
        assert!(stack.starts_with("stack: `taskscope stack` (grouped) against 100 parked tasks"), "{stack}");
    } else {
        assert!(stack.contains("skipped (no taskscope at"), "{stack}");
    }
    let stack_lean = stdout
        .lines()
        .find(|l| l.starts_with("stack (lean): "))
        .unwrap_or_else(|| panic!("no lean stack line in\n{stdout}"));
    if cli.is_file() && lean.is_file() {
        assert!(
            stack_lean.starts_with("stack (lean): `taskscope stack` (grouped) against 100 parked tasks"),
            "{stack_lean}"
        );
    } else {
        assert!(stack_lean.contains("skipped (no taskscope"), "{stack_lean}");
    }
}
