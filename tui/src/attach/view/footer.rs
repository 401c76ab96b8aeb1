//! The footer: the main keys of the current context, from the key table, or
//! the filter prompt while typing one.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::super::app::App;
use super::super::keys;
use super::style;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = Vec::new();
    if let Some(text) = &app.filter_input {
        spans.push(Span::styled(" / ", style::key()));
        spans.push(Span::styled(format!(" {text}▏"), style::value()));
        spans.push(Span::raw("  "));
    }
    for (keys, text) in keys::footer(app.context()) {
        spans.push(Span::styled(format!(" {keys} "), style::key()));
        spans.push(Span::raw(format!(" {text}  ")));
    }
    Line::from(spans).render(area, buf);
}
