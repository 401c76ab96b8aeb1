//! The detail view and the header on where a stack came from (the agent's
//! safe capture or tokio's dump), why one is missing, and a runtime tokio's
//! dump harmed: rendered on `TestBackend` from protocol-fed state.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use taskscope_proto as proto;

use crate::attach::app::{App, Detail, Target};
use crate::attach::event::{Command, DataEvent};
use crate::attach::state::{Capture, DumpOutcome};
use crate::fixtures::*;

macro_rules! assert_snapshot {
    ($name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../snapshots");
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

/// Opens the detail of `target` as if Enter had been pressed on it and the
/// agent had answered with `chunks` of the task ids asked for.
fn open(app: &mut App, target: Target, chunks: fn(&[u64]) -> Vec<proto::DumpChunk>) {
    let ids = match target {
        Target::Task(id) => vec![id],
        Target::Group(g) => app.state.group_task_ids(g, 100),
    };
    app.detail = Some(Detail { target, seq: 7, capture: Capture::Capturing, scroll: 0, full_frames: false });
    app.handle_data(DataEvent::Dump { seq: 7, result: Ok(DumpOutcome::from_chunks(chunks(&ids))) });
}

/// The text inside the detail box, its wrapped lines joined with spaces,
/// so a sentence can be looked for whatever the width.
fn detail_text(app: &App) -> String {
    let screen = text(&draw(app, 120, 40));
    let inner: Vec<&str> = screen
        .lines()
        .filter_map(|l| l.strip_prefix('│'))
        .map(|l| l.trim_end().trim_end_matches('│').trim())
        .filter(|l| !l.is_empty())
        .collect();
    inner.join(" ")
}

#[test]
fn a_stack_names_its_source() {
    let mut app = app(30);
    open(&mut app, Target::Task(1001), dump_chunks);
    let shown = detail_text(&app);
    assert!(shown.contains("async stack (captured safely), awaited leaf first"), "{shown}");
    assert!(shown.contains("done_signal::to_done_channel"), "{shown}");
    assert!(!shown.contains("tokio's dump of runtime main is off"), "a stack needs no explanation: {shown}");

    open(&mut app, Target::Task(1001), tokio_dump_chunks);
    assert!(detail_text(&app).contains("async stack (tokio's dump), awaited leaf first"), "{}", detail_text(&app));

    open(&mut app, Target::Task(1001), older_agent_chunks);
    assert!(detail_text(&app).contains("async stack, awaited leaf first"), "an older agent: as before");
}

#[test]
fn a_task_without_a_stack_says_why_under_where_the_stacks_came_from() {
    let mut app = app(30);
    let summary = format!(
        "async stack stacks: 31 of 32 wrapped tasks captured safely (1 not polled within 5s); tokio's dump of runtime \
         main is off: {TOKIO_DUMP_OFF}"
    );
    for (id, why) in [
        (
            1,
            "no stack captured: it awaits nothing a task dump can trace, e.g. `std::future::pending()`, a hand-written \
             future, or `TcpListener::accept`",
        ),
        (
            7,
            "no stack captured: wrapped, but not polled within 5s: it is inside a long poll, or its runtime is blocked",
        ),
        (
            9,
            "no stack captured: not wrapped, and tokio's dump of its runtime was not taken (see above); spawn it with \
             `taskscope_agent::spawn` to capture its stack safely",
        ),
    ] {
        open(&mut app, Target::Task(id), dump_chunks);
        let shown = detail_text(&app);
        assert!(shown.contains(&format!("{summary} {why}")), "task {id}: {why:?} under the summary in {shown}");
        assert_eq!(shown.matches(TOKIO_DUMP_OFF).count(), 1, "{shown}");
    }
    assert_snapshot!("task_detail_not_wrapped", screen(&app));
}

#[test]
fn no_stack_from_either_source_is_the_only_failure() {
    let mut app = app(30);
    open(&mut app, Target::Task(9), stackless_chunks);
    let shown = detail_text(&app);
    assert!(
        shown.contains(
            "async stack no stacks: no wrapped tasks to capture safely; tokio's dump of runtime main is off:"
        ),
        "{shown}"
    );
    let buf = draw(&app, 120, 40);
    let y = (0..40)
        .find(|&y| (0..120).map(|x| buf[(x, y)].symbol()).collect::<String>().contains("no stacks:"))
        .expect("shown");
    assert_eq!(buf[(3, y)].fg, Color::Yellow, "the failure in the warning colour");
}

#[test]
fn a_group_lists_its_stacks_and_each_reason_for_none() {
    let mut app = app(30);
    app.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    app.handle_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let Some(Command::Dump { seq, task_ids }) = app.take_commands().pop() else { panic!("Enter asks for a dump") };
    assert_eq!(
        task_ids.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        [7, 8, 9, 10].into(),
        "the workers"
    );
    app.handle_data(DataEvent::Dump { seq, result: Ok(DumpOutcome::from_chunks(dump_chunks(&task_ids))) });
    let shown = detail_text(&app);
    assert!(shown.contains("■ 2 tasks: no stack captured: not wrapped, and tokio's dump"), "{shown}");
    assert!(shown.contains("■ 1 task: no stack captured: not parked; only tasks that wait are traced"), "{shown}");
    assert!(shown.contains("■ 1 task: no stack captured: wrapped, but not polled within 5s"), "{shown}");
    assert!(shown.contains("stacks: 31 of 32 wrapped tasks captured safely (1 not polled within 5s); tokio's dump of runtime main is off"), "{shown}");
    assert_snapshot!("group_detail_reasons", screen(&app));
}

#[test]
fn a_harmed_runtime_is_a_red_marker_in_the_header() {
    let marker = "tokio dump harmed runtime main: restart";
    let mut app = app(30);
    assert!(!screen(&app).contains(marker));
    let mut harmed = info();
    harmed.runtimes[0].harmed = HARM.into();
    app.handle_data(DataEvent::Info(Box::new(harmed)));
    let buf = draw(&app, 120, 32);
    let first: String = (0..120).map(|x| buf[(x, 0)].symbol()).collect();
    let at = first.find(marker).unwrap_or_else(|| panic!("{first}"));
    let x = first[..at].chars().count() as u16;
    assert_eq!((buf[(x, 0)].fg, buf[(x, 0)].bg), (Color::White, Color::Red), "{first}");
    assert!(buf[(x, 0)].modifier.contains(Modifier::BOLD));

    // Learnt from a dump too (GetInfo is asked only at connect); and the
    // detail says tokio's dump is refused.
    let mut app = crate::fixtures::app(30);
    open(&mut app, Target::Task(9), harmed_chunks);
    assert!(screen(&app).lines().next().is_some_and(|l| l.contains(marker)), "{}", screen(&app));
    assert!(
        detail_text(&app).contains("tokio's dump of runtime main is refused: it harmed the runtime"),
        "{}",
        detail_text(&app)
    );
    assert_snapshot!("header_harmed", screen(&app).lines().take(3).collect::<Vec<_>>().join("\n"));
}
