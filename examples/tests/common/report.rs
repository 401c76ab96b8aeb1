//! What one configuration of the harm harness did ([`Report`]), and how
//! it reads: a summary row for the test's output and a tab-separated row
//! for `scripts/harm-table`.

use std::time::Duration;

use super::harm::{Config, DUMPS};

/// How the program ended after SIGINT.
#[derive(Debug, PartialEq)]
pub(super) enum Exit {
    /// `exit ok` and status 0.
    Clean,
    /// It ended otherwise (lost tasks, a panic, a signal).
    Unclean(String),
    /// It did not end within EXIT_WITHIN and was killed.
    Wedged,
    /// It was gone before SIGINT.
    DiedEarlier(String),
    NotStarted,
}

/// What one configuration did.
#[derive(Debug)]
pub struct Report {
    pub(super) config: Config,
    /// Whether tokio's dump was expected ([`super::harm::Setup::tokio_dump`]).
    pub(super) tokio_dump: bool,
    /// Why the program could not be started, if it could not.
    pub(super) start_error: Option<String>,
    pub(super) dumps_ok: usize,
    /// The first failed `taskscope stack` run.
    pub(super) dump_error: Option<String>,
    /// Runs whose `stacks:` line said tokio dumped the runtime.
    pub(super) tokio_dumped: usize,
    /// The `--json` check, when tokio's dump was expected.
    pub(super) json: Option<JsonCheck>,
    /// Still running and printing progress after the dumps.
    pub(super) alive: bool,
    pub(super) rose: usize,
    pub(super) counters: usize,
    pub(super) stacks: bool,
    /// Runs whose output named one of the shape's functions.
    pub(super) stack_runs: usize,
    /// The run number and output of the first successful run that named none of them,
    /// shown when the configuration fails: what the report said instead.
    pub(super) stackless: Option<(usize, String)>,
    /// `exit lost` lines; None when the program did not say (it died or wedged).
    pub(super) lost: Option<Vec<String>>,
    pub(super) exit: Exit,
    pub(super) stderr: String,
    pub(super) took: Duration,
}

/// What `taskscope stack --json --all` said of tokio's dump.
#[derive(Debug, Default)]
pub(super) struct JsonCheck {
    pub(super) requests: usize,
    /// Tasks seen with a stack from tokio's dump that names a function of
    /// the shape.
    pub(super) dumped_tasks: usize,
    /// The first thing that was wrong.
    pub(super) error: Option<String>,
}

impl Report {
    pub(super) fn new(config: Config, tokio_dump: bool) -> Report {
        Report {
            config,
            tokio_dump,
            start_error: None,
            dumps_ok: 0,
            dump_error: None,
            tokio_dumped: 0,
            json: None,
            alive: false,
            rose: 0,
            counters: 0,
            stacks: false,
            stack_runs: 0,
            stackless: None,
            lost: None,
            exit: Exit::NotStarted,
            stderr: String::new(),
            took: Duration::ZERO,
        }
    }

    pub(super) fn passed(&self) -> bool {
        self.start_error.is_none()
            && self.dumps_ok == DUMPS
            && self.alive
            && self.counters > 0
            && self.rose == self.counters
            && self.stacks
            && self.exit == Exit::Clean
            && (!self.tokio_dump || self.tokio_dump_passed())
    }

    fn tokio_dump_passed(&self) -> bool {
        self.tokio_dumped == DUMPS
            && self.json.as_ref().is_some_and(|j| j.error.is_none() && j.dumped_tasks >= self.counters)
    }

    fn lost_text(&self) -> String {
        self.lost.as_ref().map_or("?".to_string(), |lost| lost.len().to_string())
    }

    fn exit_text(&self) -> String {
        match &self.exit {
            Exit::Clean => "yes".to_string(),
            Exit::Unclean(why) => format!("no ({why})"),
            Exit::Wedged => "no (wedged, killed)".to_string(),
            Exit::DiedEarlier(why) => format!("no (died before SIGINT: {why})"),
            Exit::NotStarted => "no (not started)".to_string(),
        }
    }

    /// `tokio dumped 20/20, tokio-dump stacks 3/3 tasks (1 json request)`.
    fn tokio_dump_text(&self) -> String {
        let json = match &self.json {
            None => "no json check".to_string(),
            Some(j) => format!(
                "tokio-dump stacks {}/{} tasks ({} json request{}{})",
                j.dumped_tasks,
                self.counters,
                j.requests,
                if j.requests == 1 { "" } else { "s" },
                j.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
            ),
        };
        format!("tokio dumped {}/{DUMPS}, {json}", self.tokio_dumped)
    }

    pub fn summary(&self) -> String {
        let c = &self.config;
        let yes = |b: bool| if b { "yes" } else { "no" };
        let dump = if self.tokio_dump { format!(", {}", self.tokio_dump_text()) } else { String::new() };
        format!(
            "{} {} {}: alive {}, counters rose {}/{}, stacks captured {} ({}/{} runs), tasks lost {}, dumps ok {}/{DUMPS}{dump}, clean exit {} ({:.1}s)",
            c.shape,
            c.runtime,
            c.mode(),
            yes(self.alive),
            self.rose,
            self.counters,
            yes(self.stacks),
            self.stack_runs,
            self.dumps_ok,
            self.lost_text(),
            self.dumps_ok,
            self.exit_text(),
            self.took.as_secs_f64(),
        )
    }

    /// The row `scripts/harm-table` reads: shape, runtime, mode, alive,
    /// counters rose, stacks, tasks lost, clean exit, notes.
    pub(super) fn table_row(&self) -> String {
        let c = &self.config;
        let alive = match (&self.start_error, self.alive, &self.exit) {
            (Some(_), ..) => "not started".to_string(),
            (None, true, _) => "yes".to_string(),
            (None, false, Exit::DiedEarlier(why)) => format!("no (died: {why})"),
            (None, false, _) => "no (no progress)".to_string(),
        };
        let mut notes: Vec<String> = Vec::new();
        notes.extend(self.start_error.clone());
        if self.dumps_ok < DUMPS {
            notes.push(format!("dumps ok {}/{DUMPS}", self.dumps_ok));
        }
        notes.extend(self.dump_error.clone());
        if self.tokio_dump && !self.tokio_dump_passed() {
            notes.push(self.tokio_dump_text());
        }
        notes.extend(self.lost.iter().flatten().cloned());
        let notes = notes.join("; ").replace(['\t', '\n'], " ");
        format!(
            "{}\t{}\t{}\t{alive}\t{}/{}\t{}\t{}\t{}\t{notes}",
            c.shape,
            c.runtime,
            c.mode(),
            self.rose,
            self.counters,
            if self.stacks { format!("yes ({}/{} runs)", self.stack_runs, self.dumps_ok) } else { "no".to_string() },
            self.lost_text(),
            self.exit_text(),
        )
    }
}
