//! The screens, one file each. [`App`] renders as a widget borrowing the
//! model, so a frame costs no copy of 100k tasks, only the visible rows.

mod detail;
pub mod fmt;
mod footer;
mod groups;
mod header;
mod help;
pub mod style;
mod tasks;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};

use super::app::{App, View};

/// The smallest window the screens fit in: header, tabs, three rows of
/// body and the footer; and room for the columns that identify a task.
const MIN_HEIGHT: u16 = 7;
const MIN_WIDTH: u16 = 40;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height < MIN_HEIGHT || area.width < MIN_WIDTH {
            return too_small(area, buf);
        }
        // The header grows with its warnings, but leaves the tabs, three
        // rows of body and the footer their place (MIN_HEIGHT less its two).
        let head_height = header::height(self, area.width).min(area.height - (MIN_HEIGHT - 2));
        let [head, tabs, body, foot] = area.layout(&Layout::vertical([
            Constraint::Length(head_height),
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ]));
        header::render(self, head, buf);
        header::render_tabs(self, tabs, buf);
        if let Some(detail) = &self.detail {
            detail::render(self, detail, body, buf);
        } else if !self.state.has_data() {
            waiting(self, body, buf);
        } else {
            match self.view {
                View::Tasks => tasks::render(self, body, buf),
                View::Groups => groups::render(self, body, buf),
            }
        }
        footer::render(self, foot, buf);
        if self.help {
            help::render(self, body, buf);
        }
    }
}

/// A window too small for any screen: says so (as much of it as fits)
/// rather than drawing the screens over one another.
fn too_small(area: Rect, buf: &mut Buffer) {
    let text =
        format!("window too small ({}x{}): taskscope needs {MIN_WIDTH}x{MIN_HEIGHT}; q quits", area.width, area.height);
    let [_, mid, _] = area.layout(&Layout::vertical([Constraint::Fill(1), Constraint::Length(1), Constraint::Fill(1)]));
    Paragraph::new(Line::from(text)).render(mid, buf);
}

/// Before the first complete snapshot: say what we are waiting for, wrapped
/// (a narrow window must not cut it).
fn waiting(app: &App, area: Rect, buf: &mut Buffer) {
    let text = format!("waiting for the agent's task table ({})", app.state.connection.describe(app.now));
    let lines = fmt::wrap_words(&text, area.width.saturating_sub(2) as usize);
    let [_, mid, _] = area.layout(&Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(lines.len().min(area.height as usize) as u16),
        Constraint::Fill(1),
    ]));
    Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
        .style(style::dim())
        .centered()
        .render(mid, buf);
}
