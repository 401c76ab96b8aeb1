//! `taskscope stack --json`: the report as data for scripts and CI checks.
//!
//! Same selection and grouping as the text report, nothing trimmed: every
//! frame is present with its `internal` flag, leaf first as in the text
//! report (where the task waits, then its callers), times are raw nanoseconds on
//! the agent clock (`now_ns` included so they can be related), and states
//! are the words the text report uses. Shape:
//!
//! ```text
//! { "format": "taskscope.stack.v1", "process": {...}, "now_ns": N, "counts": {...},
//!   "runtimes": [{name, status, detail, elapsed_ns, harmed}],
//!   "safe_capture": {wanted, answered, elapsed_ns, detail} | null,
//!   "groups": [{count, states, leaked, parked_min_ns, parked_max_ns, polling_min_ns, polling_max_ns,
//!               location, kind, names, task_ids, stack, stack_source, no_stack,
//!               wait: {phrase, class} | null, suspect, suspect_reason}] }
//! ```
//!
//! `wait` is what the tasks wait on (`crate::wait`): `phrase` as the text
//! report prints it, `class` one of `sync`, `timer`, `io`, `unknown`,
//! `none`. `suspect` is `leaked`, `growing` or `long_sync_wait`
//! (`crate::suspect`), null for a group that is not a suspect; groups come
//! suspects first, as in the text report.
//!
//! `stack_source` is where the stack came from or why there is none, as the
//! agent said it (`captured`, `tokio_dump`, `not_wrapped`, `not_polled`;
//! null from an agent older than that field); `no_stack` is the reason the
//! text report gives for a missing stack (`untraceable`, `not_parked`,
//! `not_wrapped`, `not_polled`, `not_dumped`), null when there is a stack.
//! `safe_capture` is null from an older agent; a runtime's `harmed` says
//! what tokio's dump did to it, null while nothing did.
//!
//! With `--all`, `"tasks": [...]` replaces `"groups"`. Tasks of tokio's
//! runtime itself (`runtime_internal`, its worker threads) are left out unless
//! `--full`; `counts.runtime_internal` says how many there are.

use std::collections::BTreeMap;

use serde::Serialize;
use taskscope_proto::{DumpStatus, DumpedTask, Frame, ProcessInfo, Stack};

use crate::dump::{self, Dump};
use crate::filter::Filter;
use crate::group::{self, Group};
use crate::provenance::{self, Standing};
use crate::suspect::{Rules, Sort, Suspicion};
use crate::wait::{self, Wait};

/// What `format` says: the shape above, read back by `taskscope diff`.
/// A change that a reader of this shape would misread gets a new number.
pub const FORMAT: &str = "taskscope.stack.v1";

#[derive(Serialize)]
struct Report<'a> {
    format: &'static str,
    process: Process<'a>,
    now_ns: u64,
    counts: Counts,
    runtimes: Vec<Runtime<'a>>,
    safe_capture: Option<SafeCapture<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<JsonGroup<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<JsonTask<'a>>>,
}

#[derive(Serialize)]
struct Process<'a> {
    pid: u32,
    /// The agent's `taskscope.v1` protocol version.
    protocol_version: u32,
    name: &'a str,
    cmdline: &'a [String],
    agent_version: &'a str,
    tokio_version: &'a str,
    mode: &'a str,
    uptime_ns: u64,
    dumps_supported: bool,
    /// Live futures the agent wraps (and so captures safely).
    wrapped_tasks: u64,
    /// The taskdump fixes of the program's tokio, empty for a stock tokio.
    tokio_fixes: &'a str,
    /// How late the agent's recorded times can be (0: exact).
    time_resolution_ns: u64,
}

#[derive(Serialize)]
struct Counts {
    running: u64,
    scheduled: u64,
    idle: u64,
    leaked: u64,
    done: u64,
    spawned_total: u64,
    completed_total: u64,
    dropped_events: u64,
    /// Live tasks of tokio's runtime itself, not in the counts above (their
    /// records are in the report only with `--full`).
    runtime_internal: u64,
}

#[derive(Serialize)]
struct Runtime<'a> {
    name: &'a str,
    /// `ok`, `unsupported`, `disabled`, `timed_out`, `failed`, `harmed` or `unknown`.
    status: &'static str,
    detail: &'a str,
    elapsed_ns: u64,
    /// What tokio's dump did to the runtime; null while nothing happened.
    harmed: Option<String>,
}

#[derive(Serialize)]
struct SafeCapture<'a> {
    wanted: u32,
    answered: u32,
    elapsed_ns: u64,
    detail: &'a str,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    count: usize,
    states: BTreeMap<&'static str, usize>,
    leaked: usize,
    parked_min_ns: Option<u64>,
    parked_max_ns: Option<u64>,
    polling_min_ns: Option<u64>,
    polling_max_ns: Option<u64>,
    location: Option<String>,
    /// The tasks' shared kind (`task`, `local`, `blocking`, `block_on`);
    /// null when they differ or it is unknown (the lean mode).
    kind: Option<&'a str>,
    names: &'a [&'a str],
    task_ids: Vec<u64>,
    stack: Option<Vec<Vec<JsonFrame<'a>>>>,
    stack_source: Option<&'static str>,
    no_stack: Option<&'static str>,
    /// What its parked tasks wait on; null when unknown.
    wait: Option<JsonWait>,
    /// Why it is a leak suspect (`leaked`, `growing`, `long_sync_wait`);
    /// null when it is not one.
    suspect: Option<&'static str>,
    /// The same, in words.
    suspect_reason: Option<String>,
}

/// What a parked task waits on (see `taskscope_report::wait`).
#[derive(Serialize)]
struct JsonWait {
    /// `oneshot receive`, `broadcast receive | I/O read`, ...
    phrase: String,
    /// `sync`, `timer`, `io`, `unknown` or `none`.
    class: &'static str,
}

impl From<&Wait> for JsonWait {
    fn from(w: &Wait) -> Self {
        JsonWait { phrase: w.phrase.clone(), class: w.class.word() }
    }
}

#[derive(Serialize)]
struct JsonTask<'a> {
    id: u64,
    name: &'a str,
    /// Null when unknown (the lean mode).
    kind: Option<&'a str>,
    state: &'static str,
    leaked: bool,
    parked_ns: Option<u64>,
    polling_ns: Option<u64>,
    location: Option<String>,
    spawned_at_ns: u64,
    last_poll_ended_ns: u64,
    polls: u64,
    busy_ns: u64,
    /// Null in the lean mode, which sees no wakers.
    wakes: Option<u64>,
    /// Null in the lean mode, which sees no wakers.
    live_wakers: Option<i64>,
    runtime_internal: bool,
    runtime: Option<&'a str>,
    stack: Option<Vec<Vec<JsonFrame<'a>>>>,
    stack_source: Option<&'static str>,
    no_stack: Option<&'static str>,
    /// What it waits on, when parked; null when unknown.
    wait: Option<JsonWait>,
}

/// The JSON report (pretty-printed, newline-terminated).
pub fn report(info: &ProcessInfo, dump: &Dump, filter: &Filter, all: bool) -> serde_json::Result<String> {
    report_with(info, dump, filter, all, Sort::default(), &Rules::default())
}

/// [`report`], with the groups in `sort`'s order and suspicion judged by `rules`.
pub fn report_with(
    info: &ProcessInfo,
    dump: &Dump,
    filter: &Filter,
    all: bool,
    sort: Sort,
    rules: &Rules,
) -> serde_json::Result<String> {
    let c = dump.header.counts.unwrap_or_default();
    // The JSON groups borrow from these, so they live until serialization.
    let grouped = if all { Vec::new() } else { group::ranked(dump, filter, sort, rules) };
    let (groups, tasks) = if all {
        (None, Some(group::select(dump, filter).into_iter().filter_map(|t| json_task(t, info, dump)).collect()))
    } else {
        (Some(grouped.iter().map(|g| json_group(g, dump, rules)).collect()), None)
    };
    let harms = provenance::harms(&info.runtimes, &dump.header.runtimes);
    let report = Report {
        format: FORMAT,
        process: Process {
            pid: info.pid,
            protocol_version: info.protocol_version,
            name: &info.process_name,
            cmdline: &info.cmdline,
            agent_version: &info.agent_version,
            tokio_version: &info.tokio_version,
            mode: &info.mode,
            uptime_ns: info.uptime_ns,
            dumps_supported: info.dumps_supported,
            wrapped_tasks: info.wrapped_tasks,
            tokio_fixes: &info.tokio_fixes,
            time_resolution_ns: info.time_resolution_ns,
        },
        now_ns: dump.now_ns(),
        counts: Counts {
            running: c.running,
            scheduled: c.scheduled,
            idle: c.idle,
            leaked: c.leaked,
            done: c.done,
            spawned_total: c.spawned_total,
            completed_total: c.completed_total,
            dropped_events: dump.header.dropped_events,
            runtime_internal: c.runtime_internal,
        },
        runtimes: dump
            .header
            .runtimes
            .iter()
            .map(|rt| Runtime {
                name: &rt.runtime,
                status: status_word(rt.status),
                detail: &rt.detail,
                elapsed_ns: rt.elapsed_ns,
                harmed: harms.iter().find(|h| h.runtime == rt.runtime).map(|h| h.what.clone()),
            })
            .collect(),
        safe_capture: dump.header.safe_capture.as_ref().map(|s| SafeCapture {
            wanted: s.wanted,
            answered: s.answered,
            elapsed_ns: s.elapsed_ns,
            detail: &s.detail,
        }),
        groups,
        tasks,
    };
    Ok(serde_json::to_string_pretty(&report)? + "\n")
}

fn status_word(status: i32) -> &'static str {
    match DumpStatus::try_from(status) {
        Ok(DumpStatus::Ok) => "ok",
        Ok(DumpStatus::Unsupported) => "unsupported",
        Ok(DumpStatus::Disabled) => "disabled",
        Ok(DumpStatus::TimedOut) => "timed_out",
        Ok(DumpStatus::Failed) => "failed",
        Ok(DumpStatus::Harmed) => "harmed",
        Ok(DumpStatus::Unspecified) | Err(_) => "unknown",
    }
}

/// A frame as JSON (the generated type has no serde support).
#[derive(Serialize)]
struct JsonFrame<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
    internal: bool,
}

/// Backtraces, each a list of frames leaf first (the innermost frame, where
/// the task waits, then its callers), as the text report prints them.
fn frames(stack: Option<&Stack>) -> Option<Vec<Vec<JsonFrame<'_>>>> {
    stack.map(|s| s.backtraces.iter().map(|b| b.frames.iter().rev().map(json_frame).collect()).collect())
}

fn json_frame(f: &Frame) -> JsonFrame<'_> {
    JsonFrame { function: &f.function, file: &f.file, line: f.line, column: f.column, internal: f.internal }
}

fn json_group<'a>(g: &'a Group<'a>, dump: &'a Dump, rules: &Rules) -> JsonGroup<'a> {
    JsonGroup {
        count: g.count(),
        states: g.states.iter().map(|&(s, n)| (dump::state_word(s), n)).collect(),
        leaked: g.leaked,
        parked_min_ns: g.parked.map(|p| p.0),
        parked_max_ns: g.parked.map(|p| p.1),
        polling_min_ns: g.polling.map(|p| p.0),
        polling_max_ns: g.polling.map(|p| p.1),
        location: g.location.clone(),
        kind: g.kind,
        names: &g.names,
        task_ids: g.tasks.iter().map(|t| t.id).collect(),
        stack: frames(dump.stacks.get(&g.stack_id).filter(|_| g.stack_id != 0)),
        stack_source: provenance::source_word(g.source),
        no_stack: no_stack(g.standing),
        wait: g.wait.as_ref().map(JsonWait::from),
        suspect: g.suspect.map(Suspicion::word),
        suspect_reason: g.suspect.map(|s| s.why(rules)),
    }
}

/// The reason word of a missing stack, `None` when there is a stack.
fn no_stack(standing: Standing) -> Option<&'static str> {
    match standing {
        Standing::Stack(_) => None,
        Standing::Missing(missing) => Some(missing.word()),
    }
}

fn json_task<'a>(dumped: &'a DumpedTask, info: &'a ProcessInfo, dump: &'a Dump) -> Option<JsonTask<'a>> {
    let t = dumped.task.as_ref()?;
    let wakers_seen = info.mode != "hooks";
    Some(JsonTask {
        id: t.id,
        name: &t.name,
        kind: Some(t.kind.as_str()).filter(|k| !k.is_empty()),
        state: dump::state_word(dump::state(t)),
        leaked: t.leaked,
        parked_ns: dump::parked_ns(t, dump.now_ns()),
        polling_ns: dump::polling_ns(t, dump.now_ns()),
        location: dump::location(t),
        spawned_at_ns: t.spawned_at_ns,
        last_poll_ended_ns: t.last_poll_ended_ns,
        polls: t.polls,
        busy_ns: t.busy_ns,
        wakes: Some(t.wakes).filter(|_| wakers_seen),
        live_wakers: Some(t.live_wakers).filter(|_| wakers_seen),
        runtime_internal: t.runtime_internal,
        runtime: info.runtimes.get(t.runtime as usize).map(|r| r.name.as_str()),
        stack: frames(dump.stack_of(dumped)),
        stack_source: provenance::source_word(provenance::source(dumped.stack_source)),
        no_stack: no_stack(dump.standing(dumped)),
        wait: wait::of_task(t, dump.standing(dumped), dump.stack_of(dumped)).as_ref().map(JsonWait::from),
    })
}
