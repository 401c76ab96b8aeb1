//! The `-metrics` variants run end to end at a hundredth of their size: the
//! child serves `/metrics` to its scraper, the result line parses, and the
//! report compares `agent-metrics` with `agent` and `lean-metrics` with
//! `lean` (or says the lean binary is missing). Nothing looks at the numbers.

use std::path::Path;
use std::process::Command;

#[test]
fn metrics_variants_are_compared_with_their_mode_without_the_endpoint() {
    let exe = env!("CARGO_BIN_EXE_taskscope-bench");
    let lean = Path::new(exe).with_file_name("taskscope-bench-lean");
    let out = Command::new(exe)
        .args(["--quick", "--runs", "1", "--workloads", "spawn,channel"])
        .args(["--variants", "plain,agent,agent-metrics,plain-lean,lean,lean-metrics"])
        // Never build from inside `cargo test` (it holds cargo's lock).
        .env_remove("CARGO")
        .output()
        .expect("run taskscope-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    for workload in ["spawn: ", "channel: "] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(workload))
            .unwrap_or_else(|| panic!("no {workload:?} line in\n{stdout}\nstderr:\n{stderr}"));
        assert!(line.contains("; agent-metrics x") && line.contains(" vs agent "), "{line}");
        if lean.is_file() {
            assert!(line.contains("; lean-metrics x") && line.contains(" vs lean "), "{line}");
        } else {
            assert!(line.contains("; lean-metrics skipped (no taskscope-bench-lean at"), "{line}");
        }
    }
}
