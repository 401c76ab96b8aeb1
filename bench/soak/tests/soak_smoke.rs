//! The soak end to end at a tiny size (20 captures of a 2-worker program
//! with 100 parked tasks, and 3 captures per scale row of 100 tasks): the
//! child starts, the captures come back, and the report says nothing
//! wedged, nothing was lost and the child exited cleanly. Behaviour only:
//! no timing is asserted, and the health checks (progress within a second,
//! which a loaded CI machine could miss) are printed but not required here.

use std::process::Command;

/// The `key=value` words of the report's first line starting with `prefix`.
fn result_line<'a>(stdout: &'a str, prefix: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in\n{stdout}"))
        .split_whitespace()
        .collect()
}

#[test]
fn tiny_soak_wedges_nothing_loses_nothing_and_exits_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_taskscope-soak"))
        .args(["--modes", "soak,scale", "--captures", "20", "--workers", "2", "--parked", "100"])
        .args(["--scale-sizes", "100", "--scale-captures", "3"])
        .output()
        .expect("run taskscope-soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 1 is a failed property, reported below; anything else is a crash.
    assert!(matches!(out.status.code(), Some(0 | 1)), "taskscope-soak: {}\n{stdout}\n{stderr}", out.status);

    let soak = result_line(&stdout, "soak result: ");
    for expected in ["workers=2", "captures=20", "answered=20", "failed=0", "wedged=0", "lost=0", "clean_exit=yes"] {
        assert!(soak.contains(&expected), "soak: no {expected} in {soak:?}\n{stdout}\n{stderr}");
    }
    for agent in ["full", "lean"] {
        let scale = result_line(&stdout, &format!("scale result: agent={agent} "));
        for expected in ["tasks=100", "captures=3", "failed=0", "wedged=0", "lost=0", "clean_exit=yes"] {
            assert!(scale.contains(&expected), "scale {agent}: no {expected} in {scale:?}\n{stdout}\n{stderr}");
        }
    }
}
