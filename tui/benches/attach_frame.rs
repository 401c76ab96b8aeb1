//! How long `taskscope attach` takes to apply one update and draw one frame
//! with 100k tasks. Not a test: run it with
//!
//! ```text
//! cargo bench -p taskscope --bench attach_frame
//! ```
//!
//! The program modelled: 100,000 live tasks (a leak of 60,000 helpers at one
//! place, the rest spread over 400 spawn locations), spawning and finishing
//! 2,000 tasks per second and re-polling 2,000 more, as one `Watch` batch per
//! second. Each step applies the batch to the model and draws a 200×50 frame
//! on ratatui's `TestBackend` (everything but the terminal's own I/O).

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use taskscope::attach;
use taskscope_proto as proto;

use attach::app::App;
use attach::event::{DataEvent, LinkEvent};
use attach::state::{State, Thresholds};

const SEC: u64 = 1_000_000_000;
const LIVE: u64 = 100_000;
const LEAK: u64 = 60_000;
const CHURN: u64 = 2_000;
const STEPS: usize = 60;

fn task(id: u64, now: u64) -> proto::Task {
    let (file, line, name) = if id <= LEAK {
        ("src/bin/service.rs".to_string(), 31, String::new())
    } else {
        let site = id % 400;
        (format!("src/handlers/h{site}.rs"), 10 + (site % 7) as u32, format!("handler-{}", site % 3))
    };
    let spawned = now.saturating_sub((id % 600) * SEC);
    proto::Task {
        id,
        name,
        kind: "task".into(),
        location: Some(proto::Location { file, line, column: 5 }),
        state: proto::TaskState::Idle as i32,
        leaked: id % 5 == 0,
        spawned_at_ns: spawned,
        last_poll_started_ns: spawned + 1_000,
        last_poll_ended_ns: spawned + 2_000 + (id % 1000) * 1_000_000,
        polls: 1 + id % 50,
        busy_ns: (id % 977) * 10_000,
        live_wakers: (id % 5 != 0) as i64,
        ..Default::default()
    }
}

fn snapshot(now: u64) -> Vec<proto::WatchUpdate> {
    let ids: Vec<u64> = (1..=LIVE).collect();
    let chunks: Vec<&[u64]> = ids.chunks(5_000).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| proto::WatchUpdate {
            now_ns: now,
            reset: i == 0,
            complete: i == last,
            tasks: chunk.iter().map(|id| task(*id, now)).collect(),
            counts: (i == last).then(|| proto::TaskCounts { idle: LIVE, spawned_total: LIVE, ..Default::default() }),
            ..Default::default()
        })
        .collect()
}

/// Second `step`: CHURN new tasks, the CHURN oldest non-leak tasks gone,
/// CHURN others re-polled; 100k tasks throughout.
fn batch(step: u64) -> proto::WatchUpdate {
    let now = (1_000 + step) * SEC;
    let first_new = LIVE + 1 + (step - 1) * CHURN;
    let oldest = LEAK + 1 + (step - 1) * CHURN;
    let removed = (oldest..oldest + CHURN).collect();
    let window = first_new - (oldest + CHURN);
    let mut tasks: Vec<proto::Task> = (first_new..first_new + CHURN).map(|id| task(id, now)).collect();
    tasks.extend((0..CHURN).map(|i| {
        let mut t = task(oldest + CHURN + (step * 7_919 + i * 13) % window, now);
        t.last_poll_ended_ns = now - 1_000_000;
        t.polls += step;
        t
    }));
    proto::WatchUpdate {
        now_ns: now,
        complete: true,
        tasks,
        removed,
        counts: Some(proto::TaskCounts { idle: LIVE, ..Default::default() }),
        ..Default::default()
    }
}

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{name:<44} median {:>8.2?}  p90 {:>8.2?}  max {:>8.2?}  (n={})",
        pct(0.5),
        pct(0.9),
        samples[samples.len() - 1],
        samples.len()
    );
}

fn main() {
    let now = 1_000 * SEC;
    let mut app = App::new(State::new(Thresholds::default(), false), Instant::now());
    app.handle_data(DataEvent::Link(LinkEvent::Live));
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).expect("backend");

    let snap = snapshot(now);
    let t = Instant::now();
    for u in snap {
        app.handle_data(DataEvent::Update(Box::new(u)));
    }
    let initial = t.elapsed();
    terminal.draw(|f| f.render_widget(&app, f.area())).expect("draw");
    println!("{} tasks in {} groups", app.state.task_count(), app.state.groups().ordered().len());
    println!("{:<44} {:>8.2?}", "initial snapshot (100k tasks, 20 messages)", initial);

    let (mut apply, mut render, mut both) = (Vec::new(), Vec::new(), Vec::new());
    let mut groups_render = Vec::new();
    for step in 1..=STEPS as u64 {
        let update = batch(step);
        let t0 = Instant::now();
        app.handle_data(DataEvent::Update(Box::new(update)));
        let t1 = Instant::now();
        terminal.draw(|f| f.render_widget(&app, f.area())).expect("draw");
        let t2 = Instant::now();
        apply.push(t1 - t0);
        render.push(t2 - t1);
        both.push(t2 - t0);
        if step % 2 == 0 {
            app.view = attach::app::View::Groups;
            let t = Instant::now();
            terminal.draw(|f| f.render_widget(&app, f.area())).expect("draw");
            groups_render.push(t.elapsed());
            app.view = attach::app::View::Tasks;
        }
    }
    println!("{} tasks after {STEPS} batches", app.state.task_count());
    stats("apply one batch (2k new, 2k changed, 2k gone)", apply);
    stats("render one frame, tasks view", render);
    stats("apply + render (one second of updates)", both);
    stats("render one frame, groups view", groups_render);

    let mut keys = Vec::new();
    for code in [KeyCode::Char('s'), KeyCode::Char('r'), KeyCode::Char('3'), KeyCode::Char('3'), KeyCode::PageDown] {
        let t = Instant::now();
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
        terminal.draw(|f| f.render_widget(&app, f.area())).expect("draw");
        keys.push(t.elapsed());
    }
    stats("key + frame (sort, reverse, toggle, page)", keys);

    let mut typing = Vec::new();
    app.handle_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
    for code in [KeyCode::Char('h'), KeyCode::Char('1'), KeyCode::Char('2'), KeyCode::Backspace, KeyCode::Esc] {
        let t = Instant::now();
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
        terminal.draw(|f| f.render_widget(&app, f.area())).expect("draw");
        typing.push(t.elapsed());
    }
    stats("filter keystroke + frame (100k tasks)", typing);
}
