//! The one table of key bindings. Key handling ([`lookup`]), the footer
//! ([`footer`]) and the help screen ([`help`]) all read [`BINDINGS`], so
//! what the screen advertises is what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a key is read: decides which bindings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Tasks,
    Groups,
    Detail,
    Help,
    /// Typing a filter after `/`.
    FilterInput,
}

impl Context {
    pub const ALL: [Context; 5] = [Self::Tasks, Self::Groups, Self::Detail, Self::Help, Self::FilterInput];
}

/// A set of contexts, named for the help screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every context, even while typing.
    Always,
    /// Every context except typing.
    Global,
    /// The lists, the detail and the help: moving around.
    Moving,
    /// The tasks and groups lists.
    Lists,
    /// The tasks list.
    Tasks,
    /// The detail of a task or group.
    Detail,
    /// The help screen.
    Help,
    /// Typing a filter.
    FilterInput,
}

impl Scope {
    /// Every scope, in help-screen order.
    pub const ALL: [Scope; 8] = [
        Self::Always,
        Self::Global,
        Self::Moving,
        Self::Lists,
        Self::Tasks,
        Self::Detail,
        Self::Help,
        Self::FilterInput,
    ];

    /// Whether the binding applies in `ctx`.
    pub fn includes(self, ctx: Context) -> bool {
        use Context as C;
        match self {
            Self::Always => true,
            Self::Global => ctx != C::FilterInput,
            Self::Moving => matches!(ctx, C::Tasks | C::Groups | C::Detail | C::Help),
            Self::Lists => matches!(ctx, C::Tasks | C::Groups),
            Self::Tasks => ctx == C::Tasks,
            Self::Detail => ctx == C::Detail,
            Self::Help => ctx == C::Help,
            Self::FilterInput => ctx == C::FilterInput,
        }
    }

    /// Heading on the help screen.
    pub fn title(self) -> &'static str {
        match self {
            Self::Always => "Anywhere",
            Self::Global => "Anywhere but the filter prompt",
            Self::Moving => "Moving (lists, detail, help)",
            Self::Lists => "Tasks and groups",
            Self::Tasks => "Tasks",
            Self::Detail => "Detail",
            Self::Help => "Help",
            Self::FilterInput => "Filter prompt",
        }
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextView,
    PrevView,
    Open,
    Back,
    Filter,
    /// Drop the text filter of the lists (nothing when there is none).
    ClearFilter,
    SortNext,
    Reverse,
    /// Show/hide a state; the digit pressed (1–4) picks which.
    ToggleState,
    KeepDone,
    FullFrames,
    Recapture,
    FilterAccept,
    FilterCancel,
    FilterBackspace,
    /// Any printable character typed into the filter.
    FilterInsert,
}

/// A key: a code with modifiers. [`Key::ANY_CHAR`] stands for every
/// printable character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    const fn plain(code: KeyCode) -> Self {
        Self { code, mods: KeyModifiers::NONE }
    }

    const fn ch(c: char) -> Self {
        Self::plain(KeyCode::Char(c))
    }

    const fn ctrl(c: char) -> Self {
        Self { code: KeyCode::Char(c), mods: KeyModifiers::CONTROL }
    }

    /// Placeholder for "any printable character" (the NUL char never arrives).
    pub const ANY_CHAR: Key = Key::ch('\0');

    /// The crossterm event this key produces: what a test sends to press it
    /// (`tests/attach_ui`).
    pub fn event(self) -> KeyEvent {
        let code = if self == Self::ANY_CHAR { KeyCode::Char('x') } else { self.code };
        let mods = match code {
            KeyCode::Char(c) if c.is_ascii_uppercase() => self.mods | KeyModifiers::SHIFT,
            KeyCode::BackTab => self.mods | KeyModifiers::SHIFT,
            _ => self.mods,
        };
        KeyEvent::new(code, mods)
    }

    /// How the key is written on screen.
    pub fn name(self) -> String {
        if self == Self::ANY_CHAR {
            return "text".to_string();
        }
        let base = match self.code {
            KeyCode::Up => "↑".to_string(),
            KeyCode::Down => "↓".to_string(),
            KeyCode::Left => "←".to_string(),
            KeyCode::Right => "→".to_string(),
            KeyCode::PageUp => "PgUp".to_string(),
            KeyCode::PageDown => "PgDn".to_string(),
            KeyCode::Home => "Home".to_string(),
            KeyCode::End => "End".to_string(),
            KeyCode::Tab => "Tab".to_string(),
            KeyCode::BackTab => "S-Tab".to_string(),
            KeyCode::Enter => "Enter".to_string(),
            KeyCode::Esc => "Esc".to_string(),
            KeyCode::Backspace => "Bksp".to_string(),
            KeyCode::Char(c) if self.mods.contains(KeyModifiers::CONTROL) => {
                format!("Ctrl-{}", c.to_ascii_uppercase())
            }
            KeyCode::Char(c) => c.to_string(),
            other => format!("{other:?}"),
        };
        base
    }

    /// Whether a key event is this key (Shift is implied by the character).
    fn matches(self, ev: &KeyEvent) -> bool {
        let mods = ev.modifiers - KeyModifiers::SHIFT;
        if self == Self::ANY_CHAR {
            return matches!(ev.code, KeyCode::Char(c) if !c.is_control())
                && !mods.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        }
        self.code == ev.code && self.mods == mods
    }
}

/// One line of the table.
#[derive(Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    /// Shown instead of the key names when set ("1-4").
    pub keys_label: Option<&'static str>,
    pub scope: Scope,
    pub action: Action,
    /// Short text for the footer; `None`: help screen only.
    pub footer: Option<&'static str>,
    /// Sentence for the help screen.
    pub help: &'static str,
}

impl Binding {
    /// The keys as written on screen: "↑/k".
    pub fn keys_text(&self) -> String {
        match self.keys_label {
            Some(label) => label.to_string(),
            None => self.keys.iter().map(|k| k.name()).collect::<Vec<_>>().join("/"),
        }
    }
}

const fn bind(
    scope: Scope,
    keys: &'static [Key],
    action: Action,
    footer: Option<&'static str>,
    help: &'static str,
) -> Binding {
    Binding { keys, keys_label: None, scope, action, footer, help }
}

use Action as A;
use KeyCode as K;
use Scope as S;

/// Every key binding. Order matters: the first match wins, and the footer
/// and help list bindings in this order.
#[rustfmt::skip] // a table: one binding per line
pub static BINDINGS: &[Binding] = &[
    bind(S::Always, &[Key::ctrl('c')], A::Quit, None, "quit"),
    bind(S::Global, &[Key::ch('q')], A::Quit, Some("quit"), "quit (the terminal is restored)"),
    bind(S::Global, &[Key::ch('?')], A::Help, Some("help"), "show or hide this help"),
    // Not quit: Esc is pressed to back out of things, often twice.
    bind(S::Lists, &[Key::plain(K::Esc)], A::ClearFilter, None, "clear the filter, if any (only q and Ctrl-C quit)"),
    bind(S::Lists, &[Key::plain(K::Tab), Key::plain(K::Right), Key::ch('l')], A::NextView, Some("tasks/groups"), "next view (tasks, groups)"),
    bind(S::Lists, &[Key::plain(K::BackTab), Key::plain(K::Left), Key::ch('h')], A::PrevView, None, "previous view"),
    bind(S::Lists, &[Key::plain(K::Enter)], A::Open, Some("stack"), "open the selected task or group: lifecycle and async stack"),
    bind(S::Lists, &[Key::ch('/')], A::Filter, Some("filter"), "filter by name, location or id"),
    bind(S::Tasks, &[Key::ch('s')], A::SortNext, Some("sort"), "sort by the next column"),
    bind(S::Tasks, &[Key::ch('r')], A::Reverse, Some("reverse"), "reverse the order"),
    Binding {
        keys: &[Key::ch('1'), Key::ch('2'), Key::ch('3'), Key::ch('4')],
        keys_label: Some("1-4"),
        scope: S::Tasks,
        action: A::ToggleState,
        footer: Some("run/sched/idle/done"),
        help: "show/hide running (1), scheduled (2), idle (3), done (4) tasks",
    },
    bind(S::Tasks, &[Key::ch('d')], A::KeepDone, Some("keep done"), "keep finished tasks after the agent drops them"),
    bind(S::Detail, &[Key::plain(K::Esc), Key::plain(K::Left), Key::ch('h'), Key::plain(K::Backspace)], A::Back, Some("back"), "back to the list"),
    bind(S::Detail, &[Key::ch('f')], A::FullFrames, Some("runtime frames"), "show or hide runtime-internal frames"),
    bind(S::Detail, &[Key::ch('c')], A::Recapture, Some("capture again"), "capture the stack again"),
    bind(S::Help, &[Key::plain(K::Esc)], A::Back, Some("close"), "close the help"),
    bind(S::Moving, &[Key::plain(K::Up), Key::ch('k')], A::Up, None, "up"),
    bind(S::Moving, &[Key::plain(K::Down), Key::ch('j')], A::Down, None, "down"),
    bind(S::Moving, &[Key::plain(K::PageUp), Key::ctrl('b')], A::PageUp, None, "page up"),
    bind(S::Moving, &[Key::plain(K::PageDown), Key::ctrl('f')], A::PageDown, None, "page down"),
    bind(S::Moving, &[Key::plain(K::Home), Key::ch('g')], A::Top, None, "first row"),
    bind(S::Moving, &[Key::plain(K::End), Key::ch('G')], A::Bottom, None, "last row"),
    bind(S::FilterInput, &[Key::plain(K::Enter)], A::FilterAccept, Some("keep filter"), "keep the filter and return to the list"),
    bind(S::FilterInput, &[Key::plain(K::Esc)], A::FilterCancel, Some("clear"), "clear the filter and return to the list"),
    bind(S::FilterInput, &[Key::plain(K::Backspace)], A::FilterBackspace, None, "delete the last character"),
    bind(S::FilterInput, &[Key::ANY_CHAR], A::FilterInsert, None, "type the filter (it applies as you type)"),
];

/// The binding a key event triggers in `ctx`, if any.
pub fn lookup(ctx: Context, ev: &KeyEvent) -> Option<&'static Binding> {
    BINDINGS.iter().find(|b| b.scope.includes(ctx) && b.keys.iter().any(|k| k.matches(ev)))
}

/// The footer entries for `ctx`: (keys, text), in table order.
pub fn footer(ctx: Context) -> impl Iterator<Item = (String, &'static str)> {
    BINDINGS.iter().filter(move |b| b.scope.includes(ctx)).filter_map(|b| Some((b.keys_text(), b.footer?)))
}

/// The help screen's sections: scope, then (keys, text) per binding.
pub fn help() -> Vec<(Scope, Vec<(String, &'static str)>)> {
    Scope::ALL
        .iter()
        .map(|scope| {
            let lines = BINDINGS.iter().filter(|b| b.scope == *scope).map(|b| (b.keys_text(), b.help)).collect();
            (*scope, lines)
        })
        .filter(|(_, lines): &(Scope, Vec<_>)| !lines.is_empty())
        .collect()
}
