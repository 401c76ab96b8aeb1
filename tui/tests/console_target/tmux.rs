//! A tmux server of the test's own (its own socket, so a user's tmux is
//! never touched), one 200×50 pane running one command: a real terminal for
//! `taskscope attach`, read back with `capture-pane`.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Generous: the machine may be busy compiling.
const PATIENCE: Duration = Duration::from_secs(40);

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` in a new pane. tmux is needed: these tests do not pass
    /// by skipping.
    pub fn start(command: &str) -> Tmux {
        let found = Command::new("tmux").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        assert!(found, "the attach tests need tmux for a real terminal (apt-get install tmux)");
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!("taskscope-console-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let tmux = Tmux { socket };
        let shell = format!("env TERM=screen-256color {command}");
        tmux.run(&["new-session", "-d", "-s", "t", "-x", "200", "-y", "50", &shell]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Presses one key (tmux key name: `Tab`, `q`).
    pub fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "t", key]);
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits until the screen satisfies `ok`; panics with the screen if not.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}; screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").stderr(Stdio::null()).status();
    }
}
