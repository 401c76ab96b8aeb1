//! The README says what the code does: its environment table is the one in
//! `taskscope_proto::env`, its quick start is two commands, and CI runs the
//! second one.
//!
//! To refresh the table: `TASKSCOPE_BLESS=1 cargo test -p taskscope-examples --test readme`.

use std::path::PathBuf;

const START: &str = "<!-- env-table:start -->\n";
const END: &str = "<!-- env-table:end -->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("read README.md")
}

/// The fenced block right after `## Quick start`, one command per line
/// (comments after `#` removed).
fn quick_start_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## Quick start\n")
        .nth(1)
        .expect("a `## Quick start` section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .expect("a ```sh block in the quick start");
    let block = block.split("```").next().unwrap_or_default();
    block
        .lines()
        .map(|line| {
            line.split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn env_table_matches_the_code() {
    let readme = readme();
    let table = taskscope_proto::env::markdown_table();
    let start = readme
        .find(START)
        .expect("README has <!-- env-table:start -->")
        + START.len();
    let end = readme[start..]
        .find(END)
        .expect("README has <!-- env-table:end -->")
        + start;
    if std::env::var_os("TASKSCOPE_BLESS").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        // Write and rename, so that tests reading the README meanwhile see all of it.
        let tmp = root().join("README.md.bless");
        std::fs::write(&tmp, updated).expect("write README.md.bless");
        std::fs::rename(&tmp, root().join("README.md")).expect("replace README.md");
        return;
    }
    assert!(
        readme[start..end] == table,
        "README.md's environment table differs from taskscope_proto::env::markdown_table(): run \
         `TASKSCOPE_BLESS=1 cargo test -p taskscope-examples --test readme` and commit the result.\n\
         README has:\n{}\ncode says:\n{table}",
        &readme[start..end]
    );
}

#[test]
fn quick_start_is_two_commands() {
    let commands = quick_start_commands(&readme());
    assert_eq!(
        commands,
        ["scripts/demo", "cargo test --workspace"],
        "the quick start should be the demo and the tests"
    );
    assert!(root().join("scripts/demo").is_file(), "scripts/demo exists");
}

#[test]
fn ci_runs_the_readme_test_command() {
    let test_command = quick_start_commands(&readme())
        .pop()
        .expect("a test command");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect("read .ci/run");
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .expect(".ci/run has commands");
    assert_eq!(
        last, test_command,
        ".ci/run should end by running the README's test command"
    );
    assert!(
        ci.contains("set -euo pipefail"),
        ".ci/run should stop at the first failure"
    );
}

/// The `taskscope` binary next to this test's (`target/debug/taskscope`), built
/// by `cargo test --workspace`; `None` when only this crate was built.
fn taskscope_cli() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let cli = exe.parent()?.parent()?.join("taskscope");
    cli.is_file().then_some(cli)
}

#[test]
fn readme_invocations_use_real_flags() {
    let Some(cli) = taskscope_cli() else {
        eprintln!(
            "skipped: no taskscope binary next to this test; `cargo test --workspace` builds it"
        );
        return;
    };
    let readme = readme();
    let invocations: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("$ taskscope "))
        .collect();
    assert!(
        invocations.len() >= 4,
        "README shows the commands with `$ taskscope ...` lines"
    );
    for invocation in invocations {
        let sub = invocation.split_whitespace().next().unwrap_or_default();
        let help = std::process::Command::new(&cli)
            .args([sub, "--help"])
            .output()
            .expect("run taskscope --help");
        assert!(
            help.status.success(),
            "README shows `taskscope {invocation}` but `taskscope {sub}` does not exist"
        );
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in invocation
            .split_whitespace()
            .filter(|w| w.starts_with("--"))
        {
            assert!(
                help.contains(flag),
                "README shows `taskscope {invocation}` but `{sub} --help` has no {flag}"
            );
        }
    }
}
