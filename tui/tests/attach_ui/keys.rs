//! The footer, the help screen and the key handling all come from the one
//! table, `keys::BINDINGS`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::attach::app::{App, View};
use crate::attach::event::Command;
use crate::attach::keys::{self, Action, Context, Key, Scope, BINDINGS};
use crate::attach::state::{SortColumn, TaskState};
use crate::fixtures::*;

/// An app showing `ctx`.
fn app_in(ctx: Context) -> App {
    let mut app = app(30);
    match ctx {
        Context::Tasks => {}
        Context::Groups => app.view = View::Groups,
        Context::Detail => {
            app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        }
        Context::Help => app.help = true,
        Context::FilterInput => app.filter_input = Some(String::new()),
    }
    assert_eq!(app.context(), ctx);
    app
}

fn row_text(buf: &ratatui::buffer::Buffer, y: u16) -> String {
    (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect()
}

#[test]
fn every_key_in_the_table_does_what_the_table_says() {
    for ctx in Context::ALL {
        for binding in BINDINGS.iter().filter(|b| b.scope.includes(ctx)) {
            for key in binding.keys {
                let found = keys::lookup(ctx, &key.event()).expect("bound key is handled");
                assert!(
                    std::ptr::eq(found, binding),
                    "{} in {ctx:?} is taken by an earlier binding ({})",
                    key.name(),
                    found.help
                );
                let mut app = app_in(ctx);
                assert_eq!(app.handle_key(key.event()), Some(binding.action), "{} in {ctx:?}", key.name());
            }
        }
    }
}

#[test]
fn keys_outside_the_table_do_nothing() {
    let unbound = [KeyCode::Char('x'), KeyCode::Char('Z'), KeyCode::F(5), KeyCode::Insert, KeyCode::Char('5')];
    for ctx in [Context::Tasks, Context::Groups, Context::Detail, Context::Help] {
        for code in unbound {
            let ev = KeyEvent::new(code, KeyModifiers::NONE);
            assert!(keys::lookup(ctx, &ev).is_none(), "{code:?} in {ctx:?}");
            let mut app = app_in(ctx);
            assert_eq!(app.handle_key(ev), None);
        }
    }
}

#[test]
fn the_footer_lists_the_tables_footer_entries_in_order() {
    for ctx in Context::ALL {
        let app = app_in(ctx);
        let buf = draw(&app, 250, 32);
        let footer = row_text(&buf, 31);
        let expected: Vec<(String, &str)> = BINDINGS
            .iter()
            .filter(|b| b.scope.includes(ctx))
            .filter_map(|b| Some((b.keys_text(), b.footer?)))
            .collect();
        assert!(!expected.is_empty());
        let mut at = 0;
        for (k, text) in &expected {
            let entry = format!(" {k}  {text}");
            let found = footer[at..].find(&entry).unwrap_or_else(|| panic!("{ctx:?}: `{entry}` in `{footer}`"));
            at += found + entry.len();
        }
        // Nothing else: every key cap in the footer is one of the entries.
        let caps = buf.content().iter().skip(31 * 250).filter(|c| c.bg == ratatui::style::Color::Cyan).count();
        let expected_caps: usize = expected.iter().map(|(k, _)| k.chars().count() + 2).sum::<usize>()
            + if ctx == Context::FilterInput { 3 } else { 0 };
        assert_eq!(caps, expected_caps, "{ctx:?}: footer has only the table's keys");
    }
}

#[test]
fn the_help_lists_every_binding() {
    let mut app = app(30);
    app.help = true;
    let buf = draw(&app, 120, 80);
    let screen = text(&buf);
    for b in BINDINGS {
        let line = format!("{:<16}{}", b.keys_text(), b.help);
        assert!(screen.contains(&line), "help shows `{line}`");
    }
    for scope in Scope::ALL {
        if BINDINGS.iter().any(|b| b.scope == scope) {
            assert!(screen.contains(scope.title()), "help has a section {}", scope.title());
        }
    }
}

#[test]
fn keys_change_the_app() {
    let mut app = app(30);
    let ev = |c: char| Key { code: KeyCode::Char(c), mods: KeyModifiers::NONE }.event();
    app.handle_key(ev('s'));
    assert_eq!(app.state.sort_column(), SortColumn::Polls);
    assert!(app.state.sort_descending(), "POLLS starts ↓, the most polls first");
    app.handle_key(ev('r'));
    assert!(!app.state.sort_descending());
    app.handle_key(ev('3'));
    assert!(!app.state.filter().shown[TaskState::Idle.index()]);
    app.handle_key(ev('d'));
    assert!(app.state.keep_done());
    app.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    assert_eq!(app.view, View::Groups);
    app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(app.view, View::Tasks);
    app.handle_key(KeyEvent::new(KeyCode::End, KeyModifiers::NONE));
    assert_eq!(app.tasks.selected, app.state.shown_count() - 1);
    app.handle_key(ev('g'));
    assert_eq!(app.tasks.selected, 0);
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert!(matches!(app.take_commands().as_slice(), [Command::Dump { .. }]));
    assert_eq!(app.context(), Context::Detail);
    app.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert_eq!(app.context(), Context::Tasks);
    // Typing a filter: letters go to the prompt, q does not quit, Ctrl-C does.
    app.handle_key(ev('/'));
    app.handle_key(ev('q'));
    assert!(!app.quit);
    assert_eq!(app.state.filter().text, "q");
    app.handle_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
    assert_eq!(app.state.filter().text, "");
    app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
    let mut app = app_in(Context::Tasks);
    app.handle_key(ev('q'));
    assert!(app.quit);
    assert!(matches!(keys::lookup(Context::Tasks, &ev('q')).map(|b| b.action), Some(Action::Quit)));
}

/// Esc is pressed to back out, often once too often: leaving a detail or the
/// help and then a list must not end the session. In a list it clears the
/// filter, if any; only `q` and Ctrl-C quit.
#[test]
fn esc_never_quits() {
    let esc = || KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
    for ctx in Context::ALL {
        let mut app = app_in(ctx);
        for _ in 0..3 {
            app.handle_key(esc());
            assert!(!app.quit, "Esc from {ctx:?}");
        }
        assert!(matches!(app.context(), Context::Tasks | Context::Groups), "{ctx:?} is left for its list");
    }

    // From a task's detail, twice: back to the list, then nothing.
    let mut app = app_in(Context::Detail);
    app.handle_key(esc());
    assert_eq!(app.context(), Context::Tasks);
    let shown = app.state.shown_count();
    assert_eq!(app.handle_key(esc()), Some(Action::ClearFilter));
    assert!(!app.quit);
    assert_eq!(app.state.shown_count(), shown, "no filter: nothing changes");

    // A kept filter is cleared by Esc in the list.
    let ch = |c: char| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    let mut app = app_in(Context::Groups);
    app.handle_key(ch('/'));
    for c in "worker".chars() {
        app.handle_key(ch(c));
    }
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(app.state.filter().text, "worker");
    app.handle_key(esc());
    assert_eq!(app.state.filter().text, "", "Esc clears the filter");
    assert!(!app.quit);

    // What quits.
    for (ev, ctx) in [
        (ch('q'), Context::Tasks),
        (ch('q'), Context::Detail),
        (KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), Context::FilterInput),
    ] {
        let mut app = app_in(ctx);
        app.handle_key(ev);
        assert!(app.quit, "{ev:?} in {ctx:?}");
    }
    // The help says so.
    let app = app_in(Context::Help);
    let screen = text(&draw(&app, 120, 80));
    assert!(screen.contains("clear the filter, if any (only q and Ctrl-C quit)"), "{screen}");
    assert!(!BINDINGS
        .iter()
        .any(|b| b.action == Action::Quit && b.keys.contains(&Key { code: KeyCode::Esc, mods: KeyModifiers::NONE })));
}
