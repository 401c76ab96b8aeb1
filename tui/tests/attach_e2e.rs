//! `taskscope attach` for real: the binary runs in a tmux pane (a real
//! terminal) against the real example programs with the real agent. Keys go
//! in with `send-keys`, the screen comes out with `capture-pane`.
//!
//! Without tmux every test fails, saying so: none passes by skipping. The
//! examples belong to another package; the first test that needs them builds
//! them into the same target directory (a no-op under `cargo test --workspace`).

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::example::{need_examples, Example};

/// Generous: the machine may be busy compiling.
const PATIENCE: Duration = Duration::from_secs(40);

/// Fails the test, saying how to get tmux, when it is not installed: these
/// tests do not pass by skipping (`.ci/run` installs it).
fn need_tmux() {
    let found = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "tmux is not installed: the attach end-to-end tests need a real terminal from tmux \
         (Debian: `apt-get install tmux`; .ci/run installs it)"
    );
}

/// A tmux server of our own (its own socket, so the user's tmux is never
/// touched) with one 200×50 pane running a plain shell.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(dir: &Path) -> Tmux {
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!("taskscope-attach-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let tmux = Tmux { socket };
        let shell = format!(
            "env -i PATH=/usr/bin:/bin HOME={dir} TERM=screen-256color TASKSCOPE_DIR={dir} PS1='$ ' sh",
            dir = dir.display()
        );
        tmux.run(&["new-session", "-d", "-s", "t", "-x", "200", "-y", "50", &shell]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `line` and Enter into the shell.
    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "t", "-l", line]);
        self.run(&["send-keys", "-t", "t", "Enter"]);
    }

    /// Presses one key (tmux key name: `Tab`, `Enter`, `q`, `Escape`).
    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "t", key]);
    }

    /// PIDs of the processes the pane's shell has started.
    fn shell_children(&self) -> Vec<u32> {
        let shell = self.run(&["display-message", "-p", "-t", "t", "#{pane_pid}"]);
        let shell = shell.trim();
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// The screen as text.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// The screen with colours and attributes as escape sequences.
    fn screen_styled(&self) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", "t"])
    }

    /// Waits until the screen satisfies `ok`; panics with the screen if not.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for_on(what, Self::screen, ok)
    }

    /// [`Self::wait_for`] on the screen as `capture` reads it.
    fn wait_for_on(&self, what: &str, capture: fn(&Self) -> String, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = capture(self);
            if ok(&screen) {
                return screen;
            }
            if start.elapsed() > PATIENCE {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").stderr(Stdio::null()).status();
    }
}

fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("ts-attach-").tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    dir
}

fn attach_cmd(args: &str) -> String {
    format!("{} attach {args}", env!("CARGO_BIN_EXE_taskscope"))
}

/// Whether the header says the link is live (right after the name).
fn live(screen: &str) -> bool {
    screen.lines().next().is_some_and(|l| l.trim_start().starts_with("taskscope   live "))
}

/// The first data row of the list (after two header lines, the tab line and
/// the column titles).
fn first_row(screen: &str) -> &str {
    screen.lines().nth(4).unwrap_or("")
}

#[test]
fn the_leak_is_the_top_group_its_stack_names_the_helper_and_q_restores_the_terminal() {
    need_tmux();
    let dir = tempdir();
    let d = dir.path().display().to_string();
    let ex = Example::start(dir.path(), "done_signal", &["--calls", "0", "--interval", "20ms"]);
    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&format!(
        "stty -g > {d}/stty.before; {} --warn-after 1s --leak-after 3s; echo attach-exit=$?; stty -g > {d}/stty.after; echo usable-$((6*7))",
        attach_cmd(&ex.pid().to_string())
    ));
    let screen = tmux.wait_for("the live task list", |s| live(s) && s.contains("PARKED↓"));
    assert!(screen.contains(&format!("done_signal  pid {}", ex.pid())), "{screen}");

    tmux.key("Tab");
    let screen = tmux.wait_for("the helper's group on top", |s| {
        let row = first_row(s);
        row.contains("examples/src/bin/done_signal.rs:")
            && row
                .split_whitespace()
                .next()
                .and_then(|n| n.replace(',', "").parse::<u64>().ok())
                .is_some_and(|n| n > 10)
    });
    assert!(screen.contains("LIVE") && screen.contains("TREND"), "{screen}");
    // Highlighted: selected (reverse video), in the leak colour once its
    // oldest task has been parked past --leak-after.
    tmux.wait_for_on("the top group in reverse video and the leak colour", Tmux::screen_styled, |s| {
        let row = first_row(s);
        let reversed = row.contains("[0;7m") || row.contains("[7m") || row.contains(";7;");
        let leak_colour = row.contains("38;5;9m") || row.contains("[91m");
        reversed && leak_colour && row.contains("done_signal.rs:")
    });

    tmux.key("Enter");
    let screen = tmux.wait_for("the group's shared stack", |s| s.contains("share this stack"));
    assert!(screen.contains("done_signal::to_done_channel"), "the example's own function: {screen}");
    // A default `#[tokio::main]` program: the helpers, spawned with
    // `taskscope_agent::spawn`, are captured safely, with no variable set.
    assert!(screen.contains("share this stack (captured safely)"), "{screen}");
    assert!(!screen.contains("capturing…"), "{screen}");

    tmux.key("Escape");
    tmux.wait_for("the groups list again", |s| s.contains("TREND"));
    tmux.key("q");
    let screen = tmux.wait_for("the shell after quitting", |s| s.contains("usable-42"));
    assert!(screen.contains("attach-exit=0"), "{screen}");
    let before = std::fs::read_to_string(dir.path().join("stty.before")).expect("stty before");
    let after = std::fs::read_to_string(dir.path().join("stty.after")).expect("stty after");
    assert_eq!(before, after, "terminal settings restored");
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn reconnects_when_a_tcp_target_comes_back() {
    need_tmux();
    let dir = tempdir();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let tcp = [("TASKSCOPE_TCP", addr.as_str())];
    let args = ["--calls", "0", "--interval", "50ms"];
    let mut first = Example::start_with(dir.path(), "done_signal", &args, &tcp);
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < PATIENCE, "agent never listened on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&attach_cmd(&addr));
    tmux.wait_for("live on the first process", |s| s.contains(&format!("pid {}", first.pid())) && live(s));

    first.kill();
    let screen = tmux.wait_for("the lost connection", |s| s.contains("lost, retry in"));
    // The last data stays on screen while disconnected.
    assert!(screen.contains("done_signal.rs:"), "{screen}");

    let second = Example::start_with(dir.path(), "done_signal", &args, &tcp);
    tmux.wait_for("live on the restarted process", |s| s.contains(&format!("pid {}", second.pid())) && live(s));
    tmux.key("q");
}

/// The rows of the task list (after the header, its warnings and the tab
/// line) that name `file`.
fn rows_at<'a>(screen: &'a str, file: &str) -> Vec<&'a str> {
    screen.lines().skip_while(|l| !l.starts_with("ID ")).filter(|l| l.contains(file)).collect()
}

#[test]
fn a_pid_target_that_exits_is_named_and_the_programs_next_process_followed() {
    need_tmux();
    let dir = tempdir();
    let args = ["--calls", "0", "--interval", "50ms"];
    let mut ex = Example::start(dir.path(), "done_signal", &args);
    let pid = ex.pid();
    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&attach_cmd(&pid.to_string()));
    tmux.wait_for("live", live);
    ex.kill();
    let screen = tmux.wait_for("the exit, by name", |s| {
        s.contains(&format!("process {pid} (done_signal) exited; waiting for a new done_signal process to follow"))
    });
    assert!(!screen.contains("checking again") && !screen.contains("retry in"), "no countdown: {screen}");
    // The last data stays on screen meanwhile.
    assert!(!rows_at(&screen, "done_signal.rs:").is_empty(), "{screen}");

    let next = Example::start(dir.path(), "done_signal", &args);
    let new_pid = next.pid();
    let screen = tmux.wait_for("the next process followed, its tasks listed", |s| {
        live(s) && s.contains(&format!("done_signal  pid {new_pid}")) && !rows_at(s, "done_signal.rs:").is_empty()
    });
    assert!(
        screen.contains(&format!(
            "now following process {new_pid} (done_signal), after process {pid} (done_signal) exited"
        )),
        "{screen}"
    );
    assert!(!screen.contains("exited; waiting"), "{screen}");
    tmux.key("q");
}

#[test]
fn no_follow_stays_on_the_exited_process() {
    need_tmux();
    let dir = tempdir();
    let args = ["--calls", "0", "--interval", "50ms"];
    let mut ex = Example::start(dir.path(), "done_signal", &args);
    let pid = ex.pid();
    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&format!("{} --no-follow", attach_cmd(&pid.to_string())));
    tmux.wait_for("live", live);
    ex.kill();
    tmux.wait_for("the exit", |s| s.lines().any(|l| l.trim_end() == format!(" ⚠ process {pid} (done_signal) exited")));
    let next = Example::start(dir.path(), "done_signal", &args);
    // Give a follower every chance to switch (it looks every second).
    std::thread::sleep(Duration::from_secs(3));
    let screen = tmux.screen();
    assert!(!screen.contains(&format!("pid {}", next.pid())), "{screen}");
    assert!(screen.contains(&format!("process {pid} (done_signal) exited")), "{screen}");
    tmux.key("q");
}

#[test]
fn follow_name_waits_for_the_programs_first_process() {
    need_tmux();
    let dir = tempdir();
    need_examples();
    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&attach_cmd("--follow done_signal"));
    tmux.wait_for("the wait for a process", |s| s.contains("waiting for a done_signal process"));
    let ex = Example::start(dir.path(), "done_signal", &["--calls", "0", "--interval", "50ms"]);
    let screen = tmux.wait_for("that process followed", |s| {
        live(s) && s.contains(&format!("done_signal  pid {}", ex.pid())) && !rows_at(s, "done_signal.rs:").is_empty()
    });
    assert!(screen.contains(&format!("now following process {} (done_signal)", ex.pid())), "{screen}");
    tmux.key("q");
}

#[test]
fn sigterm_ends_the_ui_and_restores_the_terminal() {
    need_tmux();
    let dir = tempdir();
    let d = dir.path().display().to_string();
    let ex = Example::start(dir.path(), "done_signal", &["--calls", "0", "--interval", "50ms"]);
    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&format!(
        "stty -g > {d}/stty.before; {}; echo attach-exit=$?; stty -g > {d}/stty.after; echo usable-$((6*7))",
        attach_cmd(&ex.pid().to_string())
    ));
    tmux.wait_for("live", live);
    let children = tmux.shell_children();
    assert_eq!(children.len(), 1, "one taskscope under the shell: {children:?}");
    let status = Command::new("kill").arg("-TERM").arg(children[0].to_string()).status().expect("kill");
    assert!(status.success());
    let screen = tmux.wait_for("the shell after SIGTERM", |s| s.contains("usable-42"));
    assert!(screen.contains("attach-exit=0"), "{screen}");
    let before = std::fs::read_to_string(dir.path().join("stty.before")).expect("stty before");
    let after = std::fs::read_to_string(dir.path().join("stty.after")).expect("stty after");
    assert_eq!(before, after, "terminal settings restored");
}

#[test]
fn a_stopped_target_counts_as_lost_and_is_followed_again_when_continued() {
    need_tmux();
    let dir = tempdir();
    let ex = Example::start(dir.path(), "done_signal", &["--calls", "0", "--interval", "50ms"]);
    let pid = ex.pid().to_string();
    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&format!("{} --interval 200ms", attach_cmd(&pid)));
    tmux.wait_for("live", live);
    // A stopped process keeps its socket open but sends nothing.
    assert!(Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    tmux.wait_for("the stall noticed", |s| s.contains("lost, retry in") && s.contains("no update for"));
    assert!(Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());
    tmux.wait_for("live again", live);
    tmux.key("q");
}

/// Runs `taskscope attach args` with stdout piped (not a terminal).
fn attach_piped(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .arg("attach")
        .args(args)
        .env("TASKSCOPE_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run taskscope");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn failures_before_the_screen_opens_are_one_line() {
    let dir = tempdir();
    // A PID that is not running (reaped child).
    let mut child = Command::new("true").spawn().expect("spawn true");
    let dead = child.id().to_string();
    child.wait().expect("wait");
    let (code, err) = attach_piped(dir.path(), &[&dead]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("taskscope: ") && err.contains(&format!("process {dead} is not running")), "{err}");

    let (code, err) = attach_piped(dir.path(), &[]);
    assert_eq!(code, 2, "no target: a usage error: {err}");
    assert!(err.contains("<PID|ADDR>") && err.lines().count() == 1, "{err}");

    let (code, err) = attach_piped(dir.path(), &["1", "--warn-after", "2m", "--leak-after", "1m"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--warn-after (2m0s) must not be longer than --leak-after (1m0s)"), "{err}");

    let ex = Example::start(dir.path(), "done_signal", &["--calls", "1"]);
    let (code, err) = attach_piped(dir.path(), &[&ex.pid().to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("needs a terminal") && err.contains("taskscope stack"), "{err}");
}

/// The WAIT column of a groups-view row: the text between the SPAWNED
/// count and the name, as wide as the column.
fn wait_cell(screen: &str, row: &str) -> String {
    let titles = screen.lines().find(|l| l.starts_with("LIVE")).unwrap_or("");
    let (Some(start), Some(end)) = (titles.find("WAIT"), titles.find("NAME")) else { return String::new() };
    row.chars()
        .skip(titles[..start].chars().count())
        .take(titles[start..end].chars().count())
        .collect::<String>()
        .trim()
        .to_string()
}

/// `attach` shows the groups `stack` shows, in its order, with the same
/// wait reasons: on the `service` example (healthy waits hiding three
/// leaks), the leaked tasks, then the full channel and the oneshot, then
/// the idle connection handlers (one group, not a suspect).
#[test]
fn the_groups_view_has_stacks_groups_reasons_and_order() {
    need_tmux();
    let dir = tempdir();
    let ex = Example::start(dir.path(), "service", &[]);
    let pid = ex.pid().to_string();
    // What `stack` says, as data.
    let start = Instant::now();
    let stack: serde_json::Value = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_taskscope"))
            .args(["stack", &pid, "--json", "--suspect-after", "1s"])
            .env("TASKSCOPE_DIR", dir.path())
            .output()
            .expect("run stack");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let suspects = json["groups"].as_array().map_or(0, |g| g.iter().filter(|g| !g["suspect"].is_null()).count());
        if suspects == 3 || start.elapsed() > PATIENCE {
            break json;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let expected: Vec<(u64, String)> = stack["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| (g["count"].as_u64().unwrap_or(0), g["wait"]["phrase"].as_str().unwrap_or("-").to_string()))
        .collect();
    assert_eq!(expected.len(), 7, "{stack:#}");

    let tmux = Tmux::start(dir.path());
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    tmux.type_line(&format!("{} --warn-after 1s", attach_cmd(&pid)));
    tmux.wait_for("the live task list", |s| live(s) && s.contains("PARKED↓"));
    tmux.key("Tab");
    let rows = |s: &str| -> Vec<(u64, String)> {
        s.lines()
            .skip_while(|l| !l.starts_with("LIVE"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty() && !l.starts_with('┌'))
            .filter_map(|l| Some((l.split_whitespace().next()?.replace(',', "").parse().ok()?, wait_cell(s, l))))
            .collect()
    };
    // The first four groups are stack's first four (the suspects, then the
    // biggest healthy group), with the same waits; the three single tasks
    // after them tie on count, and their order moves with their timers.
    let cut = |w: &str| w.chars().take(20).collect::<String>();
    let head: Vec<(u64, String)> = expected.iter().take(4).map(|(n, w)| (*n, cut(w))).collect();
    let screen = tmux.wait_for("the groups of stack, in its order", |s| {
        let shown: Vec<(u64, String)> = rows(s).into_iter().map(|(n, w)| (n, cut(&w))).collect();
        shown.len() == 7 && shown[..4] == head[..]
    });
    assert_eq!(head[0], (5, cut("nothing can wake it")), "{stack:#}");
    assert_eq!(head[3], (30, cut("broadcast receive | I/O read")), "{stack:#}");
    let mut rest: Vec<String> = rows(&screen)[4..].iter().map(|(_, w)| cut(w)).collect();
    let mut want: Vec<String> = expected[4..].iter().map(|(_, w)| cut(w)).collect();
    rest.sort();
    want.sort();
    assert_eq!(rest, want, "{screen}");
    // STUCK counts the suspects' tasks only: not the 30 idle handlers.
    let handlers = screen.lines().find(|l| l.starts_with("30 ")).unwrap_or_else(|| panic!("{screen}"));
    assert_eq!(handlers.split_whitespace().nth(3), Some("0"), "{screen}");
    tmux.key("q");
}
