//! The lean mode (runtime hooks) sees no wakers, so its agent never calls a
//! task leaked: the screens say there is no verdict instead of "0 leaked".

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use taskscope_proto as proto;

use crate::attach::app::{App, View};
use crate::attach::event::{DataEvent, LinkEvent};
use crate::attach::state::{State, Thresholds};
use crate::fixtures::*;

/// [`app`]'s program as an agent in `mode` reports it: no task marked
/// leaked, no leak counted.
fn app_in_mode(mode: &str) -> App {
    let mut app = App::new(State::new(Thresholds::default(), false), Instant::now());
    app.handle_data(DataEvent::Link(LinkEvent::Live));
    app.handle_data(DataEvent::Info(Box::new(proto::ProcessInfo { mode: mode.into(), ..info() })));
    for mut update in watch_stream(30) {
        for t in &mut update.tasks {
            t.leaked = false;
        }
        if let Some(c) = &mut update.counts {
            c.leaked = 0;
        }
        app.handle_data(DataEvent::Update(Box::new(update)));
    }
    app
}

#[test]
fn the_header_gives_no_leak_count_in_the_lean_mode() {
    let app = app_in_mode("hooks");
    let screen = text(&draw(&app, 140, 30));
    let counts = screen.lines().nth(1).expect("counts line");
    assert!(counts.contains("leaked: no verdict (lean mode)"), "{screen}");
    assert!(!counts.contains("0 leaked"), "{screen}");
    assert!(screen.lines().next().is_some_and(|l| l.contains("mode hooks")), "{screen}");

    let app = app_in_mode("none");
    let counts = text(&draw(&app, 140, 30)).lines().nth(1).unwrap_or_default().to_string();
    assert!(counts.contains("leaked: no verdict (no lifecycle records)"), "{counts}");

    // The full mode counts as before, zero included.
    let counts = text(&draw(&app_in_mode("tracing"), 140, 30)).lines().nth(1).unwrap_or_default().to_string();
    assert!(counts.contains("✗ 0 leaked"), "{counts}");
    assert!(text(&draw(&crate::fixtures::app(30), 140, 30)).contains("✗ 30 leaked"));
}

#[test]
fn the_groups_leaked_column_and_detail_give_no_count_in_the_lean_mode() {
    let mut app = app_in_mode("hooks");
    app.view = View::Groups;
    let screen = text(&draw(&app, 140, 30));
    let titles = screen.lines().find(|l| l.contains("LEAKED")).expect("column titles");
    let col = titles.find("LEAKED").expect("LEAKED");
    let top = screen.lines().skip_while(|l| !l.contains("LEAKED")).nth(1).expect("top group");
    assert_eq!(top.chars().skip(titles[..col].chars().count()).take(6).collect::<String>().trim(), "-", "{screen}");

    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let screen = text(&draw(&app, 140, 40));
    assert!(screen.contains("leaked        no verdict (lean mode)"), "{screen}");
}

/// A console-subscriber target gives no stacks: the header says so once,
/// with what it does give; an agent of taskscope's gets no such line.
#[test]
fn a_console_target_says_once_what_it_cannot_give() {
    let app = app_in_mode("console-api");
    let screen = text(&draw(&app, 140, 30));
    let said = screen.lines().filter(|l| l.contains("a console-subscriber target")).count();
    assert_eq!(said, 1, "{screen}");
    assert!(screen.contains("no async stacks"), "{screen}");
    let agent = text(&draw(&app_in_mode("tracing"), 140, 30));
    assert!(!agent.contains("console-subscriber"), "{agent}");
}
