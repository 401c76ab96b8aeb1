//! Every screen, rendered on `TestBackend` from protocol-fed state and
//! compared with the snapshots in `tests/snapshots/`.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};

use crate::attach::app::{App, View};
use crate::attach::event::{Command, DataEvent, LinkEvent};
use crate::attach::state::DumpOutcome;
use crate::fixtures::*;

/// `insta::assert_snapshot!` into `tests/snapshots/`, next to the other
/// snapshot files of the crate.
macro_rules! assert_snapshot {
    ($name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../snapshots");
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

fn press(app: &mut App, code: KeyCode) {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
}

/// Presses Enter and answers the dump request with `chunks(ids)`.
fn open_with_dump(app: &mut App, chunks: impl Fn(&[u64]) -> Vec<taskscope_proto::DumpChunk>) {
    press(app, KeyCode::Enter);
    let Some(Command::Dump { seq, task_ids }) = app.take_commands().pop() else { panic!("Enter asks for a dump") };
    app.handle_data(DataEvent::Dump { seq, result: Ok(DumpOutcome::from_chunks(chunks(&task_ids))) });
}

#[test]
fn tasks_view() {
    let app = app(30);
    assert_snapshot!("tasks", screen(&app));
}

#[test]
fn tasks_view_sorted_by_polls_reversed_and_filtered() {
    let mut app = app(30);
    press(&mut app, KeyCode::Char('s')); // Parked -> Polls
    press(&mut app, KeyCode::Char('r'));
    press(&mut app, KeyCode::Char('/'));
    for c in "worker".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    assert_snapshot!("tasks_filter_prompt", screen(&app));
}

#[test]
fn groups_view() {
    let mut app = app(90);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Groups);
    assert_snapshot!("groups", screen(&app));
}

#[test]
fn task_detail_capturing() {
    let mut app = app(30);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.take_commands(), vec![Command::Dump { seq: 1, task_ids: vec![1001] }]);
    assert_snapshot!("task_detail_capturing", screen(&app));
}

#[test]
fn task_detail_with_stack() {
    let mut app = app(30);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    open_with_dump(&mut app, dump_chunks);
    assert_snapshot!("task_detail_stack", screen(&app));
    press(&mut app, KeyCode::Char('f'));
    assert_snapshot!("task_detail_stack_full", screen(&app));
}

#[test]
fn task_detail_when_the_dump_times_out() {
    let mut app = app(30);
    open_with_dump(&mut app, timed_out_dump);
    assert_snapshot!("task_detail_timed_out", screen(&app));
}

#[test]
fn group_detail_with_shared_stack() {
    let mut app = app(90);
    press(&mut app, KeyCode::Tab);
    open_with_dump(&mut app, dump_chunks);
    assert_snapshot!("group_detail", screen(&app));
}

#[test]
fn help_screen() {
    let mut app = app(30);
    press(&mut app, KeyCode::Char('?'));
    assert_snapshot!("help", redact(&text(&draw(&app, 120, 50))));
}

#[test]
fn waiting_for_the_first_snapshot() {
    let app = App::new(crate::attach::state::State::new(Default::default(), false), std::time::Instant::now());
    assert_snapshot!("waiting", screen(&app));
}

#[test]
fn lost_connection_and_exited_target() {
    let mut app = app(30);
    app.handle_data(DataEvent::Link(LinkEvent::Lost {
        reason: "connection dropped: transport error".into(),
        retry_in: Duration::from_secs(4),
    }));
    assert_snapshot!("lost", screen(&app).lines().take(3).collect::<Vec<_>>().join("\n"));
    app.handle_data(DataEvent::Link(LinkEvent::Exited { pid: 4242, retry_in: Duration::from_secs(8) }));
    assert_snapshot!("exited", screen(&app).lines().take(3).collect::<Vec<_>>().join("\n"));
    // Data already received stays on screen.
    assert!(screen(&app).contains("done_signal.rs:31:5"));
}

#[test]
fn a_narrow_terminal_still_renders() {
    let mut app = app(30);
    let _ = draw(&app, 60, 12);
    press(&mut app, KeyCode::Tab);
    let _ = draw(&app, 40, 8);
    press(&mut app, KeyCode::Enter);
    // Under 40x7 no screen fits: one line says so, on the middle row, cut
    // at the window's edge, instead of the detail view drawn over itself.
    assert_eq!(text(&draw(&app, 20, 5)), "\n\nwindow too small (20\n\n\n");
    assert_eq!(text(&draw(&app, 39, 7)).lines().nth(3), Some("window too small (39x7): taskscope need"));
}

/// Colours: parked past the warning threshold in yellow, past the leak
/// threshold in light red, agent-reported leaks with a white-on-red badge,
/// the selection reversed.
#[test]
fn long_parked_and_leaked_rows_are_highlighted() {
    let app = app(30);
    let buf = draw(&app, 120, 50);
    let row_of = |needle: &str| {
        (0..buf.area.height)
            .find(|y| (0..buf.area.width).map(|x| buf[(x, *y)].symbol()).collect::<String>().contains(needle))
            .unwrap_or_else(|| panic!("{needle} on screen"))
    };
    // Worker 10 (parked 2m) is first: selected and long-parked.
    let y = row_of("10      ○ idle");
    assert_eq!(buf[(0, y)].fg, Color::LightRed);
    assert!(buf[(0, y)].modifier.contains(Modifier::REVERSED));
    let y = row_of("9       ○ idle");
    assert_eq!(buf[(0, y)].fg, Color::Yellow);
    let y = row_of("1001 ");
    let badge = (0..buf.area.width).find(|x| buf[(*x, y)].symbol() == "✗").unwrap();
    assert_eq!((buf[(badge, y)].fg, buf[(badge, y)].bg), (Color::White, Color::Red));
    assert_eq!(buf[(0, y)].fg, Color::Red);
    let y = row_of("accept-loop");
    assert_eq!(buf[(0, y)].fg, Color::Reset);
}

#[test]
fn the_leaking_group_is_first_and_highlighted() {
    let mut app = app(90);
    press(&mut app, KeyCode::Tab);
    let buf = draw(&app, 120, 32);
    let first_row = 4; // header 2, tabs 1, column titles 1
    let line: String = (0..buf.area.width).map(|x| buf[(x, first_row)].symbol()).collect();
    assert!(line.contains("done_signal.rs:31:5"), "{line}");
    assert_eq!(buf[(0, first_row)].fg, Color::Red);
    assert!(buf[(0, first_row)].modifier.contains(Modifier::REVERSED));
}

/// The header says how precise the agent's times are (its 10 ms clock), and
/// nothing once the agent says its times are exact.
#[test]
fn header_says_the_agents_time_resolution() {
    let mut app = app(30);
    let mut info = info();
    info.time_resolution_ns = 10_000_000;
    app.handle_data(DataEvent::Info(Box::new(info.clone())));
    let first = screen(&app).lines().next().unwrap_or_default().to_string();
    assert!(first.contains("times to 10ms"), "{first}");
    info.time_resolution_ns = 0;
    app.handle_data(DataEvent::Info(Box::new(info)));
    let first = screen(&app).lines().next().unwrap_or_default().to_string();
    assert!(!first.contains("times to"), "{first}");
}

#[test]
fn lean_mode_shows_wakers_as_unknown() {
    let mut app = app(30);
    let mut info = info();
    info.mode = "hooks".to_string();
    app.handle_data(DataEvent::Info(Box::new(info)));
    let tasks = screen(&app);
    assert!(tasks.lines().next().is_some_and(|l| l.contains("mode hooks")), "{tasks}");
    let row = tasks.lines().find(|l| l.starts_with("10 ")).expect("task 10's row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2], "-", "wakers are not observed in lean mode: {row}");

    press(&mut app, KeyCode::Enter);
    let detail = screen(&app);
    assert!(detail.contains("not observed (lean mode: runtime hooks)"), "{detail}");
    assert!(!detail.contains("live wakers"), "{detail}");
}

#[test]
fn a_window_too_small_says_so_instead_of_overlapping() {
    let app = app(30);
    for (w, h) in [(120, 4), (30, 40), (10, 2)] {
        let screen = text(&draw(&app, w, h));
        assert!(screen.contains("window too sm") || w < 14, "{w}x{h}:\n{screen}");
        assert_eq!(screen.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{w}x{h}:\n{screen}");
    }
    let fits = text(&draw(&app, 40, 7));
    assert!(!fits.contains("too small"), "{fits}");
}

/// Answers the survey the app asks for (a dump of every task) with
/// `dump_chunks` of every task it knows.
fn survey(app: &mut App) {
    app.survey_if_due();
    let seq = app
        .take_commands()
        .into_iter()
        .find_map(|c| match c {
            Command::Dump { seq, task_ids } if task_ids.is_empty() => Some(seq),
            _ => None,
        })
        .expect("a survey is asked for once connected");
    let ids: Vec<u64> = (0..app.state.task_count()).filter_map(|i| app.state.shown_task(i).map(|t| t.id)).collect();
    app.handle_data(DataEvent::Dump { seq, result: Ok(DumpOutcome::from_chunks(dump_chunks(&ids))) });
}

/// After a survey the groups are `stack`'s: each says what its tasks wait
/// on, the leaked helpers come first as suspects, and STUCK counts only
/// suspects (the accept loop and the workers, parked for long, are not).
#[test]
fn surveyed_groups_say_what_they_wait_on_and_only_suspects_are_stuck() {
    let mut app = app(90);
    survey(&mut app);
    press(&mut app, KeyCode::Tab);
    let shown = screen(&app);
    assert_snapshot!("groups_surveyed", shown);
    let rows: Vec<&str> = shown.lines().skip_while(|l| !l.starts_with("LIVE")).skip(1).take(4).collect();
    assert!(rows[0].starts_with("90 ") && rows[0].contains("CancellationToken"), "{shown}");
    // STUCK is the 4th column: the leaked helpers' 90, and 0 for the others.
    let stuck = |row: &str| row.split_whitespace().nth(3).map(str::to_string);
    assert_eq!(stuck(rows[0]).as_deref(), Some("90"), "{shown}");
    for row in &rows[1..] {
        assert_eq!(stuck(row).as_deref(), Some("0"), "not a suspect: {row}\n{shown}");
    }
    let accept = rows.iter().find(|r| r.contains("src/server.rs:40:5")).unwrap_or_else(|| panic!("{shown}"));
    assert!(accept.contains("something a dump"), "the accept loop's wait: {shown}");
    // The tasks list has the same wait per task.
    press(&mut app, KeyCode::Tab);
    let tasks = screen(&app);
    let helper = tasks.lines().find(|l| l.starts_with("1001 ")).unwrap_or_else(|| panic!("{tasks}"));
    assert!(helper.contains("✗ leaked") && helper.contains("CancellationToken"), "{tasks}");
}
