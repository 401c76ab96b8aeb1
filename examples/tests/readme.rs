//! The README says what the code does: its environment table is the one in
//! `taskscope_proto::env`, its quick start is the demo, the install of the
//! `taskscope` command and the test command, CI runs the last one and
//! installs the tools the README says it does, and its `$ taskscope ...`
//! lines use real flags.
//!
//! To refresh the table: `TASKSCOPE_BLESS=1 cargo test -p taskscope-examples --test readme`.

use std::path::PathBuf;

#[allow(dead_code)] // only its `taskscope_cli`
#[path = "common/process.rs"]
mod process;

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
    let section = readme.split("\n## Quick start\n").nth(1).expect("a `## Quick start` section");
    let block = section.split("```sh\n").nth(1).expect("a ```sh block in the quick start");
    let block = block.split("```").next().unwrap_or_default();
    block
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn env_table_matches_the_code() {
    let readme = readme();
    let table = taskscope_proto::env::markdown_table();
    let start = readme.find(START).expect("README has <!-- env-table:start -->") + START.len();
    let end = readme[start..].find(END).expect("README has <!-- env-table:end -->") + start;
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
fn quick_start_is_the_demo_the_install_and_the_tests() {
    let commands = quick_start_commands(&readme());
    assert_eq!(
        commands,
        ["scripts/demo", "cargo install --locked --path tui", "cargo test --workspace"],
        "the quick start should be the demo, the install of the CLI and the tests"
    );
    assert!(root().join("scripts/demo").is_file(), "scripts/demo exists");
    // What `cargo install --path tui` installs: a binary named `taskscope`,
    // the command the rest of the README runs.
    let manifest = std::fs::read_to_string(root().join("tui/Cargo.toml")).expect("read tui/Cargo.toml");
    let bins: Vec<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| bin.lines().find_map(|l| l.trim().strip_prefix("name = ")))
        .collect();
    assert_eq!(bins, ["\"taskscope\""], "tui/Cargo.toml should build exactly the `taskscope` binary");
}

/// The Debian packages `.ci/run` installs when missing (its `missing+=(...)`
/// lines), each named in the README's quick start, and the other way round
/// for the test tools the quick start names.
#[test]
fn the_readme_names_what_ci_installs() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect("read .ci/run");
    let packages: Vec<&str> = ci
        .lines()
        .filter_map(|l| l.split("missing+=(").nth(1))
        .flat_map(|rest| rest.split(')').next().unwrap_or_default().split_whitespace())
        .collect();
    for tool in ["golang-go", "tmux"] {
        assert!(packages.contains(&tool), ".ci/run should install {tool}: {packages:?}");
    }
    let readme = readme();
    let quick_start = readme
        .split("\n## Quick start\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a `## Quick start` section");
    for tool in ["golang-go", "tmux"] {
        assert!(quick_start.contains(&format!("`{tool}`")), "the quick start should say that the tests need `{tool}`");
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let test_command = quick_start_commands(&readme()).pop().expect("a test command");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect("read .ci/run");
    let last = ci.lines().map(str::trim).rfind(|l| !l.is_empty() && !l.starts_with('#')).expect(".ci/run has commands");
    assert_eq!(last, test_command, ".ci/run should end by running the README's test command");
    assert!(ci.contains("set -euo pipefail"), ".ci/run should stop at the first failure");
}

#[test]
fn readme_invocations_use_real_flags() {
    // Built when only this package's tests were: nothing is skipped.
    let cli = process::taskscope_cli();
    let readme = readme();
    let invocations: Vec<&str> = readme.lines().filter_map(|l| l.strip_prefix("$ taskscope ")).collect();
    assert!(invocations.len() >= 4, "README shows the commands with `$ taskscope ...` lines");
    for invocation in invocations {
        let sub = invocation.split_whitespace().next().unwrap_or_default();
        let help = std::process::Command::new(&cli).args([sub, "--help"]).output().expect("run taskscope --help");
        assert!(help.status.success(), "README shows `taskscope {invocation}` but `taskscope {sub}` does not exist");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in invocation.split_whitespace().filter(|w| w.starts_with("--")) {
            assert!(help.contains(flag), "README shows `taskscope {invocation}` but `{sub} --help` has no {flag}");
        }
    }
}

/// The lean-mode section's advice for named tasks: tokio's `task::Builder`
/// needs tokio's `tracing` feature, so it names the agent's builder, whose
/// calls are the ones it shows.
#[test]
fn lean_mode_says_how_to_name_tasks() {
    let readme = readme();
    let lean =
        readme.split("\n### Lean mode").nth(1).and_then(|s| s.split("\n## ").next()).expect("a lean mode section");
    for needle in [
        "no `tokio::task::Builder`",
        "`tracing` feature",
        "`taskscope_agent::task::Builder`",
        "`Builder::new().name(\"..\").spawn(fut)`",
        "`.spawn_on(fut, &handle)`",
    ] {
        assert!(lean.contains(needle), "the lean mode section should say {needle}");
    }
    // Those calls, as the README writes them.
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let fut = async { 7 };
    let handle = runtime.handle().clone();
    let task = taskscope_agent::task::Builder::new().name("..").spawn_on(fut, &handle).expect("spawned");
    assert_eq!(runtime.block_on(task).ok(), Some(7));
}
