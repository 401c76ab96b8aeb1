//! The app around the model: what the selection does as the lists change.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use taskscope_proto as proto;

use crate::attach::app::App;
use crate::attach::event::DataEvent;
use crate::fixtures::*;

fn press(app: &mut App, code: KeyCode) {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
}

/// A batch at second 131 in which worker 9 (second in the list) runs.
fn wake_worker_9(app: &mut App) {
    app.handle_data(DataEvent::Update(Box::new(proto::WatchUpdate {
        now_ns: 131 * SEC,
        complete: true,
        tasks: vec![running(task(9, "worker", WORKER_LOC, 2 * SEC), 131 * SEC - MS, 311)],
        ..Default::default()
    })));
}

fn selected_id(app: &App) -> u64 {
    app.state.shown_task(app.tasks.selected).unwrap().id
}

#[test]
fn a_chosen_task_stays_selected_as_the_list_reorders() {
    let mut app = app(30);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert_eq!(selected_id(&app), 1001);
    wake_worker_9(&mut app);
    assert_eq!(app.tasks.selected, 1, "1001 moved up a row");
    assert_eq!(selected_id(&app), 1001);
}

#[test]
fn without_a_choice_the_selection_stays_on_the_top_row() {
    let mut app = app(30);
    assert_eq!(selected_id(&app), 10);
    app.handle_data(DataEvent::Update(Box::new(proto::WatchUpdate {
        now_ns: 131 * SEC,
        complete: true,
        tasks: vec![running(task(10, "worker", WORKER_LOC, 2 * SEC), 131 * SEC - MS, 13)],
        ..Default::default()
    })));
    assert_eq!((app.tasks.selected, selected_id(&app)), (0, 9), "the new top row");
    // Home goes back to following the top.
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Home);
    wake_worker_9(&mut app);
    assert_eq!((app.tasks.selected, selected_id(&app)), (0, 1001));
}

#[test]
fn a_chosen_group_stays_selected_as_the_groups_rerank() {
    let mut app = app(30);
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Down);
    let chosen = app.selected_group().unwrap();
    let location = app.state.groups().get(chosen).unwrap().location.clone();
    // A burst of long-parked tasks at a new place outranks everything.
    let burst = (0..50).map(|i| idle(task(5000 + i, "", ("src/new.rs", 1, 1), SEC), SEC + MS, 1, 0)).collect();
    app.handle_data(DataEvent::Update(Box::new(proto::WatchUpdate {
        now_ns: 131 * SEC,
        complete: true,
        tasks: burst,
        ..Default::default()
    })));
    assert_eq!(app.selected_group(), Some(chosen));
    assert_eq!(app.state.groups().get(app.selected_group().unwrap()).unwrap().location, location);
}
