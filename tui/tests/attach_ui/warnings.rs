//! Warnings are read to their end: the reason a link is down (whose last
//! words are usually what to do) and the detail's notes wrap over lines at
//! any width instead of being cut at the screen's edge.

use std::time::{Duration, Instant};

use crate::attach::app::{App, Detail, Target};
use crate::attach::event::{DataEvent, LinkEvent};
use crate::attach::state::{Capture, DumpOutcome, State};
use crate::fixtures::*;

/// What a stopped process's reconnect fails with: the advice is at the end.
const STOPPED: &str = "process 4242 (done_signal) did not answer within 5s: it is stopped (state T), \
                       so its agent cannot answer; `kill -CONT 4242` resumes it";

/// The screen's words in order, whatever the line breaks.
fn words(screen: &str) -> String {
    screen.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn lost(app: &mut App, reason: &str) {
    app.handle_data(DataEvent::Link(LinkEvent::Lost { reason: reason.into(), retry_in: Duration::from_secs(4) }));
}

#[test]
fn a_lost_links_reason_wraps_in_the_header_down_to_its_advice() {
    for width in [60, 80, 120] {
        let mut app = app(30);
        lost(&mut app, STOPPED);
        let screen = text(&draw(&app, width, 30));
        let lines: Vec<&str> = screen.lines().collect();
        assert!(lines[0].contains("lost, retry in"), "{width}: {screen}");
        // The reason in full, under the counts, before the tab line.
        let tabs = lines.iter().position(|l| l.contains("Tasks 36")).expect("tab line");
        assert!(tabs > 2, "{width}: the reason takes lines of its own: {screen}");
        let header = words(&lines[2..tabs].join("\n"));
        assert_eq!(header, format!("⚠ {}", words(STOPPED)), "{width}: {screen}");
        assert!(lines[1..tabs].iter().all(|l| l.chars().count() <= width as usize));
        // The list still has its rows.
        assert!(screen.lines().any(|l| l.starts_with("1001 ") && l.contains("✗ l")), "{width}: {screen}");
    }
    // Back live, the warning goes.
    let mut app = app(30);
    lost(&mut app, STOPPED);
    app.handle_data(DataEvent::Link(LinkEvent::Live));
    let screen = text(&draw(&app, 80, 30));
    assert!(!screen.contains("kill -CONT"), "{screen}");
    assert!(screen.lines().nth(2).is_some_and(|l| l.contains("Tasks 36")), "{screen}");
}

#[test]
fn the_waiting_screen_wraps_too() {
    let mut app = App::new(State::new(Default::default(), false), Instant::now());
    lost(&mut app, STOPPED);
    let screen = text(&draw(&app, 50, 20));
    assert!(words(&screen).contains("waiting for the agent's task table (lost, retry in"), "{screen}");
    assert!(words(&screen).contains("`kill -CONT 4242` resumes it"), "{screen}");
}

#[test]
fn a_tiny_window_keeps_the_body_and_footer() {
    let mut app = app(30);
    lost(&mut app, &STOPPED.repeat(4));
    let screen = text(&draw(&app, 40, 9));
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines[8].contains("quit"), "the footer stays: {screen}");
    assert!(lines.iter().any(|l| l.contains("Tasks 36")), "the tabs stay: {screen}");
}

#[test]
fn why_tokio_dumps_are_off_is_read_to_its_end_in_a_narrow_detail() {
    let mut app = app(30);
    app.detail =
        Some(Detail { target: Target::Task(9), seq: 7, capture: Capture::Capturing, scroll: 0, full_frames: false });
    app.handle_data(DataEvent::Dump { seq: 7, result: Ok(DumpOutcome::from_chunks(stackless_chunks(&[9]))) });
    let screen = text(&draw(&app, 60, 60));
    let inner = words(&screen.replace('│', " "));
    assert!(inner.contains(&words(TOKIO_DUMP_OFF)), "{screen}");
    assert!(!screen.contains('…'), "{screen}");
}

#[test]
fn the_header_names_the_exited_process_and_then_the_one_followed() {
    let mut app = app(30);
    app.state.follow = Some("done_signal".into());
    app.handle_data(DataEvent::Link(LinkEvent::Exited { pid: 4242, retry_in: Duration::from_secs(1) }));
    let screen = text(&draw(&app, 120, 30));
    assert!(screen.lines().next().is_some_and(|l| l.contains("exited")), "{screen}");
    assert!(!screen.contains("checking again"), "no countdown: {screen}");
    assert!(
        words(&screen).contains("⚠ process 4242 (done_signal) exited; waiting for a new done_signal process to follow"),
        "{screen}"
    );

    app.handle_data(DataEvent::Link(LinkEvent::Followed { pid: 5151, previous: Some(4242) }));
    app.handle_data(DataEvent::Info(Box::new(taskscope_proto::ProcessInfo { pid: 5151, ..info() })));
    app.handle_data(DataEvent::Link(LinkEvent::Live));
    let screen = text(&draw(&app, 120, 30));
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines[0].contains("live") && lines[0].contains("pid 5151"), "{screen}");
    assert_eq!(
        lines[2].trim_end(),
        " → now following process 5151 (done_signal), after process 4242 (done_signal) exited"
    );
    assert!(!screen.contains('⚠'), "{screen}");
}
