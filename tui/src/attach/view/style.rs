//! The palette: every colour the screens use, in one place.

use ratatui::style::{Color, Modifier, Style};

use super::super::state::{Severity, TaskRow, TaskState};

/// Symbol and short word of a task state.
pub fn state_symbol(state: TaskState, leaked: bool) -> (&'static str, &'static str) {
    // The words of `taskscope stack`.
    match (state, leaked) {
        (TaskState::Idle, true) => ("✗", "leaked"),
        (TaskState::Running, _) => ("▶", "running"),
        (TaskState::Scheduled, _) => ("●", "scheduled"),
        (TaskState::Idle, false) => ("○", "idle"),
        (TaskState::Done, _) => ("✓", "done"),
    }
}

/// Colour of a state's symbol.
pub fn state_style(state: TaskState) -> Style {
    match state {
        TaskState::Running => Style::new().fg(Color::Green),
        TaskState::Scheduled => Style::new().fg(Color::Cyan),
        TaskState::Idle => Style::new(),
        TaskState::Done => Style::new().fg(Color::DarkGray),
    }
}

/// The state cell of a task: leaked tasks stand out on their own.
pub fn state_cell_style(task: &TaskRow) -> Style {
    if task.leaked && task.state == TaskState::Idle {
        leaked_badge()
    } else {
        state_style(task.state)
    }
}

/// White on red: the agent says nothing can wake it.
pub fn leaked_badge() -> Style {
    Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD)
}

/// White on red too: tokio's dump harmed a runtime, restart the program.
pub fn harmed() -> Style {
    leaked_badge()
}

/// A row's colour from how long it has been parked.
pub fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Normal => Style::new(),
        Severity::Warn => Style::new().fg(Color::Yellow),
        Severity::Long => Style::new().fg(Color::LightRed),
        Severity::Leaked => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// A list row: its own colour, reversed under the cursor.
pub fn row(base: Style, selected: bool) -> Style {
    if selected {
        base.add_modifier(Modifier::REVERSED)
    } else {
        base
    }
}

/// Column titles.
pub fn table_header() -> Style {
    Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
}

/// Labels such as "pid", "up".
pub fn label() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Values next to labels.
pub fn value() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Keys in the footer and help.
pub fn key() -> Style {
    Style::new().fg(Color::Black).bg(Color::Cyan)
}

/// The program's own frames in a stack.
pub fn own_frame() -> Style {
    Style::new().fg(Color::LightCyan).add_modifier(Modifier::BOLD)
}

/// Runtime-internal frames and other secondary text.
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Connection state colours.
pub fn link(live: bool) -> Style {
    if live {
        Style::new().fg(Color::Green)
    } else {
        Style::new().fg(Color::Black).bg(Color::Yellow)
    }
}

/// The active tab.
pub fn active_tab() -> Style {
    Style::new().fg(Color::Black).bg(Color::White).add_modifier(Modifier::BOLD)
}
