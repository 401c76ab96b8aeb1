//! The tokio patch series (`patches/tokio`) on a clean checkout, in two tests
//! that run side by side:
//!
//! - the series applies to tokio 1.54.1 and its regression tests, in tokio's
//!   own test suite, pass (`scripts/check-tokio-patches`);
//! - a program built against the patched tokio gets tokio's own task dump by
//!   default, on both runtime flavours, and is not harmed by it: the harm
//!   corpus (`src/bin/harm/main.rs`), built by `patches/tokio/check` against the
//!   copy `scripts/patched-tokio` makes, goes through the harm harness
//!   (`tests/common/harm.rs`) with `TASKSCOPE_TOKIO_DUMPS` removed from its
//!   environment. Every `taskscope stack` run must say that tokio dumped the
//!   runtime, and `--json` must show a stack from tokio's dump for every task,
//!   the ones spawned with plain `tokio::spawn` included.
//!
//! Each builds in a target directory of its own under `target/`
//! (`target/tokio-patched/check`, `target/patched-check`), so neither waits
//! for the workspace's build lock; their logs are
//! `target/tokio-patched/check-tokio-patches.log` and
//! `target/patched-check/*.log`. A patch that does not apply, a failed build
//! or a missing tool (cargo, git, tar) fails the test: nothing is skipped.
//! They need the crates of the workspace's Cargo.lock and tokio's
//! dev-dependencies in cargo's cache, or the network.
//!
//! Cold (no `target/patched-check` nor `target/tokio-patched`), on 2 cores
//! that other builds were loading too (load average 7 to 10), this took
//! 4 min 37 s and 5 min 13 s (user CPU about 5 min 30 s), nearly all of it
//! the two builds side by side; the 18 configurations then take about 20 s.
//! Warm, about 30 s (the script rebuilds its own copy of tokio every time).
//!
//! Run alone: `cargo test -p taskscope-examples --test harm_patched_tokio`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::harm::{assert_unharmed, run_matrix, Config, Setup, SHAPES};
use common::process::{tail, taskscope_cli};

/// What the patched tokio announces (`patches/tokio/0006-*.patch`), which
/// the agent reports as `tokio_fixes`.
const FIXES: &str = "steal-all,barrier-timeout,trace-flag,trace-wake,current-thread-wake";

/// The regression tests the series adds, as libtest names them; each must
/// have passed in the script's output.
const REGRESSION_TESTS: &[&str] = &[
    "loom::std::barrier::tests::wait_timeout_takes_back_arrival",
    "loom::std::barrier::tests::wait_timeout_then_wait",
    "multi_thread_many_queued_tasks",
    "multi_thread_no_trace_after_dump",
    "multi_thread_dump_while_worker_blocked",
    "current_thread_wake_during_trace::wakes_itself",
    "current_thread_wake_during_trace::wakes_another_task",
    "current_thread_wake_during_trace::channel_ping_pong",
];

/// A cold build of tokio with its tests, or of the harm corpus, on 2 loaded
/// cores takes minutes; this only keeps a stuck build from hanging CI.
const BUILD_WITHIN: Duration = Duration::from_secs(20 * 60);

/// Lean mode (runtime hooks) on a few shapes: the ones that wake other
/// tasks, on each flavour.
const LEAN: &[(&str, &str)] = &[
    ("self-wake", "current"),
    ("notify-other", "current"),
    ("futures-pingpong", "multi2"),
    ("mpsc-pingpong", "multi2"),
];

#[test]
fn the_patch_series_applies_and_its_regression_tests_pass() {
    let repo = repo();
    let log = repo.join("target/tokio-patched/check-tokio-patches.log");
    let output = run_logged(
        "scripts/check-tokio-patches",
        toolchain(&mut Command::new(repo.join("scripts/check-tokio-patches"))),
        &log,
    );
    let missing: Vec<&str> =
        REGRESSION_TESTS.iter().copied().filter(|name| !output.contains(&format!("test {name} ... ok"))).collect();
    assert!(
        missing.is_empty(),
        "scripts/check-tokio-patches passed, but these regression tests did not pass in it: {missing:?} \
         (log: {})\n{}",
        log.display(),
        tail(&output, 3000)
    );
    assert!(
        output.contains(&format!(
            "check-tokio-patches: all {} regression tests of the tokio patch series passed",
            REGRESSION_TESTS.len()
        )),
        "scripts/check-tokio-patches did not say it ran all {} regression tests (log: {})\n{}",
        REGRESSION_TESTS.len(),
        log.display(),
        tail(&output, 3000)
    );
}

#[test]
fn a_program_on_the_patched_tokio_gets_tokios_dump_by_default_and_no_harm() {
    let harm = build_harm_on_patched_tokio();
    let mut configs = Vec::new();
    for &shape in SHAPES {
        for runtime in ["current", "multi2"] {
            configs.push(Config { shape, runtime, lean: false });
        }
    }
    for &(shape, runtime) in LEAN {
        configs.push(Config { shape, runtime, lean: true });
    }
    let setup = Setup {
        program: harm,
        cli: taskscope_cli(),
        // Tokio's dump must be on by default, with no variable.
        env_remove: &["TASKSCOPE_TOKIO_DUMPS"],
        tokio_dump: Some(FIXES),
        table: None,
    };
    let reports = run_matrix("harm on the patched tokio", &configs, &setup);
    assert_unharmed(&reports);
}

/// Makes the patched tokio (`target/patched-check/tokio`), copies the check
/// project (`patches/tokio/check`) and the workspace's Cargo.lock to
/// `target/patched-check/project`, builds the harm corpus there and returns
/// the binary's path.
fn build_harm_on_patched_tokio() -> PathBuf {
    let repo = repo();
    let work = repo.join("target/patched-check");
    // The series is applied afresh every time, but the copy the build uses
    // is replaced only when the fresh one differs (see `install`).
    let fresh = work.join("tokio-fresh");
    run_logged(
        "scripts/patched-tokio",
        toolchain(Command::new(repo.join("scripts/patched-tokio")).arg(&fresh)),
        &work.join("patched-tokio.log"),
    );
    install(&fresh, &work.join("tokio"));

    // The check project's paths are relative, and hold both in
    // patches/tokio/check and in this copy, as deep below the repository.
    let source = repo.join("patches/tokio/check");
    let project = work.join("project");
    assert_eq!(
        source.components().count(),
        project.components().count(),
        "{} must lie as deep as {} (its Cargo.toml's paths are relative)",
        project.display(),
        source.display()
    );
    std::fs::create_dir_all(project.join("src")).expect("create target/patched-check/project");
    for file in ["Cargo.toml", "src/lib.rs"] {
        std::fs::copy(source.join(file), project.join(file))
            .unwrap_or_else(|e| panic!("copy {} into {}: {e}", file, project.display()));
    }
    // Fresh from the workspace every time: every crate but tokio keeps the
    // version the workspace builds.
    std::fs::copy(repo.join("Cargo.lock"), project.join("Cargo.lock"))
        .unwrap_or_else(|e| panic!("copy Cargo.lock into {}: {e}", project.display()));

    let target = work.join("target");
    run_logged(
        "building the harm corpus against the patched tokio",
        toolchain(&mut Command::new(cargo()))
            .args(["build", "-p", "taskscope-examples", "--bin", "harm", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            // As the workspace's .cargo/config.toml says, whatever RUSTFLAGS
            // the test itself was started with.
            .env("RUSTFLAGS", "--cfg tokio_unstable"),
        &work.join("build.log"),
    );
    same_versions(&repo.join("Cargo.lock"), &project.join("Cargo.lock"));
    let harm = target.join("debug/harm");
    assert!(harm.is_file(), "the build did not produce {}", harm.display());
    harm
}

/// Moves the patched copy `fresh` to `copy`, unless the copy there was made
/// from the same tokio source and the same patches (its marker file, which
/// `scripts/patched-tokio` writes, says so): then it stays, its files keep
/// their times, and cargo does not rebuild tokio and all that depends on it.
fn install(fresh: &Path, copy: &Path) {
    let marker = |dir: &Path| std::fs::read(dir.join(".taskscope-patched-tokio")).ok();
    let made = marker(fresh);
    assert!(made.is_some(), "scripts/patched-tokio left no marker in {}", fresh.display());
    if marker(copy) == made {
        std::fs::remove_dir_all(fresh).unwrap_or_else(|e| panic!("remove {}: {e}", fresh.display()));
        return;
    }
    if copy.exists() {
        std::fs::remove_dir_all(copy).unwrap_or_else(|e| panic!("remove {}: {e}", copy.display()));
    }
    std::fs::rename(fresh, copy).unwrap_or_else(|e| panic!("move {} to {}: {e}", fresh.display(), copy.display()));
}

/// Checks that the check project's lock file has tokio from the patched
/// copy and every other crate at a version of the workspace's lock file.
fn same_versions(workspace: &Path, project: &Path) {
    let read = |lock: &Path| std::fs::read_to_string(lock).unwrap_or_else(|e| panic!("read {}: {e}", lock.display()));
    let (workspace_lock, project_lock) = (read(workspace), read(project));
    let locked = packages(&workspace_lock);
    let mut tokio = None;
    let mut new = Vec::new();
    for (name, version, source) in packages(&project_lock) {
        if name == "tokio" {
            tokio = Some((version, source));
        } else if source.is_some() && !locked.iter().any(|(n, v, _)| *n == name && *v == version) {
            new.push(format!("{name} {version}"));
        }
    }
    assert!(
        new.is_empty(),
        "the check project resolved crates the workspace does not lock: {new:?} ({})",
        project.display()
    );
    assert_eq!(
        tokio,
        Some(("1.54.1", None)),
        "tokio in {} is not the patched copy (a path package, no source)",
        project.display()
    );
}

/// (name, version, source) of every package of a Cargo.lock.
fn packages(lock: &str) -> Vec<(&str, &str, Option<&str>)> {
    lock.split("[[package]]")
        .skip(1)
        .filter_map(|package| {
            let field = |key: &str| {
                package.lines().find_map(|line| {
                    let value = line.strip_prefix(key)?.strip_prefix(" = \"")?;
                    value.strip_suffix('"')
                })
            };
            Some((field("name")?, field("version")?, field("source")))
        })
        .collect()
}

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("examples/ has a parent").to_path_buf()
}

/// The cargo that runs this test.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| "cargo".into(), PathBuf::from)
}

/// `command` with the toolchain that runs this test first on PATH (the
/// scripts call `cargo`), and without the settings of the build that runs
/// this test: each nested build sets its own target directory and flags.
fn toolchain(command: &mut Command) -> &mut Command {
    if let Some(bin) = Path::new(&cargo()).parent().filter(|dir| dir.is_dir()) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(paths).expect("PATH entries"));
    }
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS"] {
        command.env_remove(var);
    }
    command
}

/// Runs `command` (the step `what`) to its end with stdout and stderr in
/// `log`, in a process group of its own that is killed whole after
/// [`BUILD_WITHIN`]; returns the log. Fails the test, with the log's tail,
/// when the command fails.
fn run_logged(what: &str, command: &mut Command, log: &Path) -> String {
    use std::os::unix::process::CommandExt as _;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = file.try_clone().expect("clone the log's handle");
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if started.elapsed() >= BUILD_WITHIN {
            // SAFETY: kill(2) on the process group of our own child, which
            // has not been waited for, so its pid (the group's id) is still its.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let took = started.elapsed().as_secs_f64();
    match status {
        Some(status) if status.success() => {
            // Past the test harness's capture, as the harm table.
            let line = format!("{what}: ok in {took:.1}s (log: {})\n", log.display());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            output
        }
        Some(status) => panic!(
            "{what} failed ({status}, after {took:.1}s); its output (all of it in {}):\n{}",
            log.display(),
            tail(&output, 6000)
        ),
        None => panic!(
            "{what} did not end within {BUILD_WITHIN:?} and was killed; its output (all of it in {}):\n{}",
            log.display(),
            tail(&output, 6000)
        ),
    }
}
