//! The bench runs end to end at a hundredth of its size: children start, the
//! result lines parse, the report prints a line per workload. Nothing here
//! looks at the numbers; timings never go into tests.

use std::path::Path;
use std::process::Command;

#[test]
fn quick_run_reports_every_workload() {
    let exe = env!("CARGO_BIN_EXE_taskscope-bench");
    let cli = Path::new(exe).with_file_name("taskscope");
    let out = Command::new(exe)
        .args(["--quick", "--runs", "1"])
        // Never build the CLI from inside `cargo test`: use it if it is there.
        .env_remove("CARGO")
        .output()
        .expect("run taskscope-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for line in ["spawn: agent x", "channel: agent x", "idle: agent "] {
        assert!(
            stdout.lines().any(|l| l.starts_with(line)),
            "no line starting {line:?} in\n{stdout}\nstderr:\n{stderr}"
        );
    }
    for console in ["; console x", "; console skipped (>cap)"] {
        if stdout.contains(console) {
            return check_stack(&stdout, &cli);
        }
    }
    panic!("no console comparison in\n{stdout}");
}

fn check_stack(stdout: &str, cli: &Path) {
    let stack = stdout
        .lines()
        .find(|l| l.starts_with("stack: "))
        .unwrap_or_else(|| panic!("no stack line in\n{stdout}"));
    if cli.is_file() {
        assert!(
            stack.starts_with("stack: `taskscope stack` (grouped) against 100 parked tasks"),
            "{stack}"
        );
    } else {
        assert!(stack.contains("skipped (no taskscope CLI"), "{stack}");
    }
}
