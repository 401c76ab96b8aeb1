//! A small program's life told in protocol messages, as an agent would send
//! them: `ProcessInfo`, then a `Watch` snapshot and one batch per second.

use std::time::Instant;

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use taskscope_proto as proto;

use crate::attach::app::App;
use crate::attach::event::{DataEvent, LinkEvent};
use crate::attach::state::{State, Thresholds};

pub const SEC: u64 = 1_000_000_000;
pub const MS: u64 = 1_000_000;

/// Where the leaking helper spawns (as in examples/done_signal).
pub const LEAK_LOC: (&str, u32, u32) = ("examples/src/bin/done_signal.rs", 31, 5);
pub const ACCEPT_LOC: (&str, u32, u32) = ("src/server.rs", 40, 5);
pub const WORKER_LOC: (&str, u32, u32) = ("src/worker.rs", 12, 17);
pub const REQUEST_LOC: (&str, u32, u32) = ("src/server.rs", 77, 13);

pub fn location((file, line, column): (&str, u32, u32)) -> proto::Location {
    proto::Location { file: file.to_string(), line, column }
}

/// A task record with everything zero but its identity.
pub fn task(id: u64, name: &str, loc: (&str, u32, u32), spawned_at_ns: u64) -> proto::Task {
    proto::Task {
        id,
        name: name.to_string(),
        kind: "task".to_string(),
        location: Some(location(loc)),
        state: proto::TaskState::Scheduled as i32,
        spawned_at_ns,
        ..Default::default()
    }
}

/// Parked since `since` after `polls` polls, with `wakers` live wakers.
pub fn idle(mut t: proto::Task, since: u64, polls: u64, wakers: i64) -> proto::Task {
    t.state = proto::TaskState::Idle as i32;
    t.polls = polls;
    t.busy_ns = polls * 150_000;
    t.last_poll_started_ns = since - 150_000;
    t.last_poll_ended_ns = since;
    t.waker_clones = wakers as u64 + polls.saturating_sub(1);
    t.waker_drops = polls.saturating_sub(1);
    t.wakes = polls.saturating_sub(1);
    t.live_wakers = wakers;
    t.leaked = wakers == 0;
    t
}

pub fn running(mut t: proto::Task, started: u64, polls: u64) -> proto::Task {
    t.state = proto::TaskState::Running as i32;
    t.polls = polls;
    t.busy_ns = polls * 2 * MS;
    t.last_poll_started_ns = started;
    t.last_poll_ended_ns = started - 3 * MS;
    t.live_wakers = 1;
    t.waker_clones = polls;
    t.waker_drops = polls - 1;
    t
}

pub fn done(mut t: proto::Task, at: u64, polls: u64) -> proto::Task {
    t.state = proto::TaskState::Done as i32;
    t.polls = polls;
    t.busy_ns = polls * 400_000;
    t.last_poll_started_ns = at - 400_000;
    t.last_poll_ended_ns = at;
    t.completed_at_ns = at;
    t
}

/// Leaked helper task number `n` (spawned at second 100 + n).
pub fn leak_task(n: u64) -> proto::Task {
    let spawned = (100 + n) * SEC;
    idle(task(1000 + n, "", LEAK_LOC, spawned), spawned + 2 * MS, 1, 0)
}

pub fn info() -> proto::ProcessInfo {
    proto::ProcessInfo {
        protocol_version: 1,
        pid: 4242,
        process_name: "done_signal".to_string(),
        agent_version: "0.1.0".to_string(),
        tokio_version: "1.54.1".to_string(),
        mode: "tracing".to_string(),
        runtimes: vec![proto::RuntimeInfo {
            name: "main".into(),
            flavor: "multi_thread".into(),
            workers: 2,
            tokio_dumps: false,
            tokio_dumps_reason: TOKIO_DUMP_OFF.into(),
            harmed: String::new(),
        }],
        wrapped_tasks: 32,
        dumps_supported: true,
        now_ns: 100 * SEC,
        uptime_ns: 100 * SEC + 20 * MS,
        cmdline: vec!["done_signal".into()],
        ..Default::default()
    }
}

/// The tasks that are not part of the leak, at agent time `now`.
pub fn steady_tasks(now: u64) -> Vec<proto::Task> {
    vec![
        idle(task(1, "accept-loop", ACCEPT_LOC, SEC / 10), now - 2 * SEC, 41, 1),
        running(task(7, "worker", WORKER_LOC, 2 * SEC), now - MS, 900),
        task(8, "worker", WORKER_LOC, 2 * SEC),
        idle(task(9, "worker", WORKER_LOC, 2 * SEC), now - 15 * SEC, 310, 1),
        idle(task(10, "worker", WORKER_LOC, 2 * SEC), now - 90 * SEC, 12, 1),
        done(task(500, "request", REQUEST_LOC, now - 3 * SEC), now - 2 * SEC, 5),
        done(task(501, "request", REQUEST_LOC, now - 2 * SEC), now - SEC, 3),
    ]
}

fn counts(tasks: &[proto::Task], leaks: u64, now_leaked: u64) -> proto::TaskCounts {
    let by = |s: proto::TaskState| tasks.iter().filter(|t| t.state == s as i32).count() as u64;
    proto::TaskCounts {
        running: by(proto::TaskState::Running),
        scheduled: by(proto::TaskState::Scheduled),
        idle: by(proto::TaskState::Idle) + leaks,
        done: by(proto::TaskState::Done),
        leaked: now_leaked,
        spawned_total: 300 + leaks,
        completed_total: 290,
        runtime_internal: 0,
    }
}

fn totals(leaks: u64) -> Vec<proto::LocationTotals> {
    vec![
        proto::LocationTotals { location: Some(location(LEAK_LOC)), spawned: leaks, completed: 0 },
        proto::LocationTotals { location: Some(location(ACCEPT_LOC)), spawned: 1, completed: 0 },
        proto::LocationTotals { location: Some(location(WORKER_LOC)), spawned: 4, completed: 0 },
        proto::LocationTotals { location: Some(location(REQUEST_LOC)), spawned: 292, completed: 290 },
    ]
}

/// The stream the agent would send: a snapshot at second 100 (split in two
/// messages), then one batch per second for `seconds` seconds, each adding a
/// leaked helper task.
pub fn watch_stream(seconds: u64) -> Vec<proto::WatchUpdate> {
    let mut out = Vec::new();
    let now = 100 * SEC;
    let steady = steady_tasks(now);
    out.push(proto::WatchUpdate { now_ns: now, reset: true, tasks: steady[..3].to_vec(), ..Default::default() });
    out.push(proto::WatchUpdate {
        now_ns: now,
        complete: true,
        tasks: steady[3..].to_vec(),
        counts: Some(counts(&steady, 0, 0)),
        location_totals: totals(0),
        ..Default::default()
    });
    for s in 1..=seconds {
        let now = (100 + s) * SEC;
        let mut tasks = vec![leak_task(s)];
        // The accept loop wakes every second; the worker keeps running.
        tasks.push(idle(task(1, "accept-loop", ACCEPT_LOC, SEC / 10), now - 2 * SEC, 41 + s, 1));
        out.push(proto::WatchUpdate {
            now_ns: now,
            complete: true,
            tasks,
            removed: if s == 2 { vec![500] } else { vec![] },
            counts: Some(counts(&steady_tasks(now), s, s)),
            location_totals: totals(s)[..1].to_vec(),
            dropped_events: if s >= 30 { 3 } else { 0 },
            ..Default::default()
        });
    }
    out
}

/// An app fed with [`info`] and [`watch_stream`] of `seconds`, connected.
pub fn app(seconds: u64) -> App {
    let mut app = App::new(State::new(Thresholds::default(), false), Instant::now());
    app.handle_data(DataEvent::Link(LinkEvent::Live));
    app.handle_data(DataEvent::Info(Box::new(info())));
    for update in watch_stream(seconds) {
        app.handle_data(DataEvent::Update(Box::new(update)));
    }
    app
}

/// The stack the leaked helpers share, through `to_done_channel`.
fn leak_stack() -> proto::Stack {
    let frame = |function: &str, file: &str, line: u32, internal: bool| proto::Frame {
        function: function.to_string(),
        file: file.to_string(),
        line,
        column: 0,
        internal,
    };
    proto::Stack {
        id: 1,
        backtraces: vec![proto::Backtrace {
            frames: vec![
                frame(
                    "tokio::runtime::task::harness::Harness<T,S>::poll",
                    "/rustc/tokio/src/runtime/task/harness.rs",
                    151,
                    true,
                ),
                frame(
                    "tokio::runtime::task::core::Core<T,S>::poll",
                    "/rustc/tokio/src/runtime/task/core.rs",
                    320,
                    true,
                ),
                frame("done_signal::to_done_channel::{{closure}}", "examples/src/bin/done_signal.rs", 33, false),
                frame(
                    "tokio_util::sync::cancellation_token::WaitForCancellationFuture::poll",
                    "/cargo/tokio-util/src/sync/cancellation_token.rs",
                    301,
                    true,
                ),
                frame("tokio::sync::notify::Notified::poll_notified", "/cargo/tokio/src/sync/notify.rs", 1011, true),
            ],
        }],
    }
}

/// The agent's reason for not taking tokio's dump on a stock tokio.
pub const TOKIO_DUMP_OFF: &str = "tokio 1.54.1's task dump can leave a worker stuck for good (tokio-rs/tokio#8370), \
                                  so runtime `main` gets stacks only for tasks spawned with taskscope_agent::spawn; \
                                  for every task, build against the patched tokio (patches/tokio), or start the \
                                  program with TASKSCOPE_TOKIO_DUMPS=1 for a debugging session";

/// What harmed runtime `main` in the harmed fixtures.
pub const HARM: &str = "worker 1 of runtime `main` has made no progress for 3s since tokio's dump of it: it was \
                        lost to the dump (tokio-rs/tokio#8370) or a task blocks it";

fn runtime_dump(status: proto::DumpStatus, detail: &str) -> proto::RuntimeDump {
    proto::RuntimeDump { runtime: "main".into(), status: status as i32, detail: detail.to_string(), elapsed_ns: 4 * MS }
}

/// A dump of `ids` with `runtime`'s status and `safe` capture, where
/// `source(id)` gives each task's stack id and source.
fn chunks_of(
    ids: &[u64],
    runtime: proto::RuntimeDump,
    safe: Option<proto::SafeCapture>,
    source: impl Fn(u64) -> (u32, proto::StackSource),
) -> Vec<proto::DumpChunk> {
    let header = proto::DumpChunk {
        header: Some(proto::DumpHeader {
            now_ns: 130 * SEC,
            runtimes: vec![runtime],
            counts: None,
            dropped_events: 0,
            safe_capture: safe,
        }),
        ..Default::default()
    };
    let tasks = ids
        .iter()
        .map(|&id| {
            let (stack_id, source) = source(id);
            proto::DumpedTask {
                task: Some(match id {
                    1000.. => leak_task(id - 1000),
                    _ => steady_tasks(130 * SEC)
                        .into_iter()
                        .find(|t| t.id == id)
                        .unwrap_or_else(|| task(id, "", WORKER_LOC, 0)),
                }),
                stack_id,
                stack_source: source as i32,
            }
        })
        .collect();
    vec![header, proto::DumpChunk { stacks: vec![leak_stack()], tasks, ..Default::default() }]
}

/// What the agent sends by default on a stock tokio, where it declines
/// tokio's dump: the leaked helpers (spawned with `taskscope_agent::spawn`)
/// share one stack, captured safely; the accept loop is wrapped too but
/// parked on nothing tokio can trace; worker 7 is wrapped but busy in a long
/// poll; the other workers are plain `tokio::spawn` tasks. As at second 30
/// of [`watch_stream`].
pub fn dump_chunks(ids: &[u64]) -> Vec<proto::DumpChunk> {
    safe_dump(ids, runtime_dump(proto::DumpStatus::Disabled, TOKIO_DUMP_OFF))
}

fn safe_dump(ids: &[u64], runtime: proto::RuntimeDump) -> Vec<proto::DumpChunk> {
    use proto::StackSource::*;
    // The safe capture asks every wrapped future, whichever tasks the dump
    // was for: the 30 helpers, the accept loop and worker 7, which is busy.
    let safe = proto::SafeCapture {
        wanted: 32,
        answered: 31,
        elapsed_ns: 5 * SEC,
        detail: "1 of 32 wrapped tasks were not polled within 5s (inside a long poll, or on a blocked runtime)".into(),
    };
    chunks_of(ids, runtime, Some(safe), |id| match id {
        1000.. => (1, Captured),
        1 => (0, Captured),
        7 => (0, NotPolled),
        _ => (0, NotWrapped),
    })
}

/// The same program on a patched tokio: tokio's dump of `main` taken, and
/// it traced every task (the helpers share a stack, the others have none).
pub fn tokio_dump_chunks(ids: &[u64]) -> Vec<proto::DumpChunk> {
    let safe = proto::SafeCapture::default();
    chunks_of(ids, runtime_dump(proto::DumpStatus::Ok, ""), Some(safe), |id| {
        (if id >= 1000 { 1 } else { 0 }, proto::StackSource::TokioDump)
    })
}

/// What an agent older than `StackSource` sent: tokio's dump of `main`
/// taken, no sources, no safe capture.
pub fn older_agent_chunks(ids: &[u64]) -> Vec<proto::DumpChunk> {
    chunks_of(ids, runtime_dump(proto::DumpStatus::Ok, ""), None, |id| {
        (if id >= 1000 { 1 } else { 0 }, proto::StackSource::Unspecified)
    })
}

/// [`dump_chunks`] after tokio's dump harmed `main` (taken at the program's
/// risk, `TASKSCOPE_TOKIO_DUMPS=1`): every later tokio dump is refused.
pub fn harmed_chunks(ids: &[u64]) -> Vec<proto::DumpChunk> {
    let refusal = format!(
        "tokio's dump of runtime `main` is refused for good: an earlier one harmed it ({HARM}); restart the program to dump it again"
    );
    safe_dump(ids, runtime_dump(proto::DumpStatus::Harmed, &refusal))
}

/// No stack from either source: tokio's dump declined, nothing wrapped.
pub fn stackless_chunks(ids: &[u64]) -> Vec<proto::DumpChunk> {
    let safe = proto::SafeCapture::default();
    chunks_of(ids, runtime_dump(proto::DumpStatus::Disabled, TOKIO_DUMP_OFF), Some(safe), |_| {
        (0, proto::StackSource::NotWrapped)
    })
}

/// A dump of `ids` whose runtime did not answer in time, from an agent
/// older than the safe capture: the records come without stacks.
pub fn timed_out_dump(ids: &[u64]) -> Vec<proto::DumpChunk> {
    let detail = "runtime `main` did not answer within 5s: a task is probably blocking a worker thread \
                  (a synchronous call inside async code); the lifecycle data is still current";
    let mut runtime = runtime_dump(proto::DumpStatus::TimedOut, detail);
    runtime.elapsed_ns = 5 * SEC;
    let mut chunks = chunks_of(ids, runtime, None, |_| (0, proto::StackSource::Unspecified));
    chunks[1].stacks.clear();
    chunks
}

/// Draws the app on a `TestBackend` of `width`×`height`.
pub fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|f| f.render_widget(app, f.area())).expect("draw");
    terminal.backend().buffer().clone()
}

/// The buffer as text, trailing blanks trimmed.
pub fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Screen text with values that depend on the wall clock replaced: the
/// reconnect countdowns ("retry in 3s", "checking again in 3s").
pub fn redact(screen: &str) -> String {
    let mut out = screen.to_string();
    for marker in ["retry in ", "checking again in "] {
        let mut from = 0;
        while let Some(i) = out[from..].find(marker) {
            let start = from + i + marker.len();
            let digits = out[start..].chars().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 {
                out.replace_range(start..start + digits, "<N>");
            }
            from = start;
        }
    }
    out
}

/// Snapshot text of the app at 120×32.
pub fn screen(app: &App) -> String {
    redact(&text(&draw(app, 120, 32)))
}
