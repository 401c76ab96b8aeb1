//! The text report of `taskscope stack`, in the spirit of pprof's goroutine
//! dumps: `debug=1` (grouped, the default) and `debug=2` (`--all`, every task).
//!
//! ```text
//! done_signal (pid 4242), tokio 1.54.1: 1 running, 0 scheduled, 1002 idle, 1000 leaked, 0 done; 0 dropped events
//! stacks: 1001 wrapped tasks captured safely; tokio's dump of runtime main is off: <the agent's reason>
//!
//! 1000 tasks [idle, 1000 leaked] parked 2.1s..1m2s  spawned at examples/src/bin/done_signal.rs:25:5
//!   stack (captured safely):
//!     ... 3 runtime frames
//!     tokio::sync::notify::Notified::poll
//!         tokio-1.54.1/src/sync/notify.rs:1130:9
//!     done_signal::wait_for_done::{{closure}}
//!         examples/src/bin/done_signal.rs:14:9
//! ```
//!
//! The `stacks:` line says where the stacks came from (the agent's safe
//! capture of the futures it wraps, tokio's dump of each runtime, or why
//! that was not taken), once; each group or task then names its stack's
//! source in a quiet `stack (...)` line, or says why it has none, in the
//! words of [`crate::provenance`].
//!
//! Pure functions from the dump to a `String`, so every shape is unit-tested.

use std::time::Duration;

use taskscope_proto::{DumpedTask, ProcessInfo, Stack, TaskState};

use crate::dump::{self, Dump};
use crate::filter::Filter;
use crate::frames::{self, Line, Paths};
use crate::group::{self, Group};
use crate::provenance::{self, Missing, Standing};
use crate::suspect::{Rules, Sort};
use crate::text::shown;
use crate::wait;
use taskscope_proto::duration::format_ns;

/// `ProcessInfo.mode` of a program read through console-subscriber's
/// protocol (`console-api`) rather than a taskscope agent's.
pub const CONSOLE_MODE: &str = "console-api";

/// How to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    /// Every task (`--all`) instead of groups.
    pub all: bool,
    /// Every frame (`--full`) instead of the program's own.
    pub full: bool,
    /// The dump timeout that was requested, for the warnings.
    pub timeout: Duration,
    /// The order of the groups.
    pub sort: Sort,
    /// When a group is a leak suspect.
    pub rules: Rules,
}

/// The whole report.
pub fn report(info: &ProcessInfo, dump: &Dump, filter: &Filter, view: View) -> String {
    let mut out = header(info, dump);
    out.push('\n');
    if info.mode == "none" {
        out.push_str(
            "warning: the agent records no task lifecycles: another tracing subscriber owns this \
             process; add `taskscope_agent::layer()` to it\n",
        );
    } else if info.mode == "hooks" {
        out.push_str(
            "note: lean mode (runtime hooks): no wakers are seen, so no task is called leaked; \
             long waits on other tasks are the suspects\n",
        );
    }
    for line in header_lines(info, dump, view.timeout) {
        out.push_str(&line);
        out.push('\n');
    }
    let internal = dump.runtime_tasks();
    match internal {
        0 => {}
        n if filter.runtime_tasks => out.push_str(&format!(
            "note: {n} {} tokio's runtime's own (its worker threads), not counted above\n",
            if n == 1 { "task is" } else { "tasks are" }
        )),
        n => out.push_str(&format!(
            "note: {n} {} of tokio's runtime (its worker threads) not shown; --full shows {}\n",
            if n == 1 { "task" } else { "tasks" },
            if n == 1 { "it" } else { "them" }
        )),
    }
    let paths = Paths::new(dump, view.full);
    let blocks: Vec<String> = if view.all {
        group::select(dump, filter).into_iter().map(|t| task_block(t, dump, &paths, view.timeout)).collect()
    } else {
        group::ranked(dump, filter, view.sort, &view.rules)
            .iter()
            .map(|g| group_block_with(g, dump, &paths, view.timeout, &view.rules))
            .collect()
    };
    if filter.is_active() {
        let shown = group::select(dump, filter).len();
        let total = dump.tasks.len() - if filter.runtime_tasks { 0 } else { internal };
        out.push_str(&format!("showing {shown} of {total} tasks ({})\n", filter.describe()));
    }
    if blocks.is_empty() {
        out.push_str(if filter.is_active() { "\nno task matches\n" } else { "\nno tasks\n" });
    }
    for block in blocks {
        out.push('\n');
        out.push_str(&block);
    }
    out
}

/// The stack lines of the header and every group of `dump`, for a report
/// of tasks chosen elsewhere (the test guard's failure, `check`'s offending
/// tasks), under a first line of its own.
pub fn chosen(info: &ProcessInfo, dump: &Dump, timeout: Duration) -> String {
    let mut out = String::new();
    for line in header_lines(info, dump, timeout) {
        out.push_str(&line);
        out.push('\n');
    }
    let paths = Paths::new(dump, false);
    for g in group::group(dump, &Filter::default()) {
        out.push('\n');
        out.push_str(&group_block(&g, dump, &paths, timeout));
    }
    out
}

/// `name (pid N), tokio V: totals by state; dropped events; times to R`.
pub fn header(info: &ProcessInfo, dump: &Dump) -> String {
    let c = dump.header.counts.unwrap_or_default();
    let dropped = dump.header.dropped_events;
    // A console-subscriber (read by the CLI in its protocol) says neither
    // its PID (found only for a local address) nor tokio's version.
    let who = if info.mode == CONSOLE_MODE {
        let name = if info.process_name.is_empty() { "console-subscriber" } else { &info.process_name };
        let pid = if info.pid == 0 { "unknown".to_string() } else { info.pid.to_string() };
        format!("{} (pid {pid}) via console-api", shown(name))
    } else {
        format!("{} (pid {}), tokio {}", shown(&info.process_name), info.pid, shown(&info.tokio_version))
    };
    let mut line = format!(
        "{who}: {} running, {} scheduled, {} idle, {} leaked, {} done; {} dropped events",
        c.running, c.scheduled, c.idle, c.leaked, c.done, dropped,
    );
    if dropped > 0 {
        line.push_str(" (some task records may be missing)");
    }
    // The agent's clock ticks every 10 ms unless asked for exact times: a
    // task "busy 0ms" may have run for up to that long.
    if info.time_resolution_ns > 0 {
        line.push_str(&format!("; times to {}", format_ns(info.time_resolution_ns)));
    }
    line
}

/// The header's lines about stacks: a `warning:` line for each runtime
/// tokio's dump harmed, then the line saying where the stacks came from
/// (a `warning: no stacks: ...` line when there are none; see
/// [`provenance::summary`]). The report is still printed, and the exit
/// status is 0: the lifecycle records are valid without stacks.
pub fn header_lines(info: &ProcessInfo, dump: &Dump, timeout: Duration) -> Vec<String> {
    let mut lines: Vec<String> =
        provenance::harms(&info.runtimes, &dump.header.runtimes).iter().map(|h| h.warning()).collect();
    lines.extend(dump.summary(timeout).map(|s| s.line()));
    lines
}

/// The [`header_lines`] that are warnings: what `--json` also tells a
/// human on stderr.
pub fn warnings(info: &ProcessInfo, dump: &Dump, timeout: Duration) -> Vec<String> {
    header_lines(info, dump, timeout).into_iter().filter(|l| l.starts_with("warning: ")).collect()
}

/// A group: its summary line, names, and stack (or why it has none);
/// `timeout` is the dump timeout asked for.
pub fn group_block(g: &Group<'_>, dump: &Dump, paths: &Paths, timeout: Duration) -> String {
    group_block_with(g, dump, paths, timeout, &Rules::default())
}

/// [`group_block`], with the suspicion `rules` the group was judged by.
pub fn group_block_with(g: &Group<'_>, dump: &Dump, paths: &Paths, timeout: Duration, rules: &Rules) -> String {
    let count = g.count();
    let mut tags = if let [(state, _)] = g.states.as_slice() {
        dump::state_word(*state).to_string()
    } else {
        let parts: Vec<String> = g.states.iter().map(|(s, n)| format!("{n} {}", dump::state_word(*s))).collect();
        parts.join(", ")
    };
    match g.leaked {
        0 => {}
        _ if count == 1 => tags.push_str(", leaked"),
        n => tags.push_str(&format!(", {n} leaked")),
    }
    push_wait(&mut tags, g.wait.as_ref());
    let span = |word: &str, times: Option<(u64, u64)>| match times {
        None => String::new(),
        Some((lo, hi)) if format_ns(lo) == format_ns(hi) => format!(" {word} {}", format_ns(hi)),
        Some((lo, hi)) => format!(" {word} {}..{}", format_ns(lo), format_ns(hi)),
    };
    let times = span("polling", g.polling) + &span("parked", g.parked);
    // Only the unusual kinds are worth a word: "1 block_on task".
    let kind = g.kind.filter(|k| *k != "task").map(|k| format!("{} ", shown(k))).unwrap_or_default();
    let mut out = format!(
        "{count} {kind}{} [{tags}]{times}  spawned at {}\n",
        if count == 1 { "task" } else { "tasks" },
        shown(g.location.as_deref().unwrap_or("<unknown>"))
    );
    if let Some(suspect) = g.suspect {
        out.push_str(&format!("  suspect: {}\n", suspect.why(rules)));
    }
    if !g.names.is_empty() {
        const SHOWN: usize = 5;
        let mut names = g.names.iter().take(SHOWN).map(|n| shown(n)).collect::<Vec<_>>().join(", ");
        if g.names.len() > SHOWN {
            names.push_str(&format!(" (+{} more)", g.names.len() - SHOWN));
        }
        out.push_str(&format!("  {}: {names}\n", if g.names.len() == 1 { "name" } else { "names" }));
    }
    let stack = dump.stacks.get(&g.stack_id).filter(|_| g.stack_id != 0);
    if !no_stack_source(dump) {
        out.push_str(&stack_or_why_not(g.standing, stack, paths, timeout));
    }
    out
}

/// No stack could come for any task (see [`provenance::no_source`]): the
/// header's `no stacks` line says why, once.
fn no_stack_source(dump: &Dump) -> bool {
    provenance::no_source(&dump.header.runtimes, dump.header.safe_capture.as_ref())
}

/// A task of the `--all` view: `task 42 [idle 5m12s, leaked] name=worker spawned at src/main.rs:10:5`
/// (a running task's time is how long it has been inside its current poll).
pub fn task_block(dumped: &DumpedTask, dump: &Dump, paths: &Paths, timeout: Duration) -> String {
    let Some(task) = &dumped.task else { return String::new() };
    let state = dump::state(task);
    let mut tags = dump::state_word(state).to_string();
    if let Some(time) = dump::parked_ns(task, dump.now_ns()).or_else(|| dump::polling_ns(task, dump.now_ns())) {
        tags.push_str(&format!(" {}", format_ns(time)));
    }
    if task.leaked {
        tags.push_str(", leaked");
    }
    push_wait(&mut tags, wait::of_task(task, dump.standing(dumped), dump.stack_of(dumped)).as_ref());
    let mut name = if task.name.is_empty() { String::new() } else { format!(" name={}", shown(&task.name)) };
    if !task.kind.is_empty() && task.kind != "task" {
        name.push_str(&format!(" kind={}", shown(&task.kind)));
    }
    let location = dump::location(task).unwrap_or_else(|| "<unknown>".to_string());
    let location = shown(&location);
    let mut out = format!("task {} [{tags}]{name} spawned at {location}\n", task.id);
    if state != TaskState::Done && !no_stack_source(dump) {
        out.push_str(&stack_or_why_not(dump.standing(dumped), dump.stack_of(dumped), paths, timeout));
    }
    out
}

/// Adds `, <what it waits on>` to a group's or task's tags; not for a
/// leaked one, whose `leaked` tag already says nothing can wake it.
fn push_wait(tags: &mut String, wait: Option<&wait::Wait>) {
    if let Some(wait) = wait.filter(|w| w.phrase != wait::NOTHING_CAN_WAKE) {
        tags.push_str(&format!(", {}", wait.phrase));
    }
}

/// The stack under a `stack (captured safely):` line naming its source,
/// or the line saying why there is none (see [`provenance`]).
fn stack_or_why_not(standing: Standing, stack: Option<&Stack>, paths: &Paths, timeout: Duration) -> String {
    let missing = match (standing, stack.filter(|s| !s.backtraces.is_empty())) {
        (Standing::Stack(origin), Some(stack)) => {
            let mut out = origin.heading().map(|h| format!("  {h}:\n")).unwrap_or_default();
            out.push_str(&stack_lines(stack, paths));
            return out;
        }
        (Standing::Missing(missing), _) => missing.text(Some(timeout)),
        (Standing::Stack(_), None) => Missing::NotDumped.text(None),
    };
    format!("    ({missing})\n")
}

/// The backtraces of a stack, indented under their group or task.
pub fn stack_lines(stack: &Stack, paths: &Paths) -> String {
    let mut out = String::new();
    let n = stack.backtraces.len();
    for (i, bt) in stack.backtraces.iter().enumerate() {
        if n > 1 {
            out.push_str(&format!("  awaiting {} of {n}:\n", i + 1));
        }
        for line in frames::visible(&bt.frames, paths.full) {
            match line {
                Line::Collapsed(k) => {
                    out.push_str(&format!("    ... {k} runtime frame{}\n", if k == 1 { "" } else { "s" }));
                }
                Line::Frame(frame) => {
                    let function = if frame.function.is_empty() { "<unknown>" } else { &frame.function };
                    out.push_str(&format!("    {}\n", shown(function)));
                    if let Some(pos) = paths.position(frame) {
                        out.push_str(&format!("        {}\n", shown(&pos)));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
