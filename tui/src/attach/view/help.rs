//! The `?` help screen, drawn over the body from the key table.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

use super::super::app::App;
use super::super::keys;
use super::super::state::SortColumn;
use super::style;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let lines = lines(app);
    let width = area.width.min(92);
    let [_, mid, _] =
        area.layout(&Layout::horizontal([Constraint::Fill(1), Constraint::Length(width), Constraint::Fill(1)]));
    Clear.render(mid, buf);
    let inner_height = mid.height.saturating_sub(2);
    let max = (lines.len() as u16).saturating_sub(inner_height);
    app.scroll_max.set(max);
    app.page.set(inner_height.max(1) as usize);
    Paragraph::new(lines)
        .block(Block::bordered().title(" help: keys (Esc or ? closes) ").border_style(style::value()))
        .scroll((app.help_scroll.min(max), 0))
        .render(mid, buf);
}

fn lines(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for (scope, bindings) in keys::help() {
        out.push(Line::styled(format!(" {}", scope.title()), style::value()));
        for (keys, text) in bindings {
            out.push(Line::from(vec![
                Span::raw("   "),
                Span::styled(format!("{keys:<16}"), style::own_frame()),
                Span::raw(text),
            ]));
        }
        out.push(Line::default());
    }
    out.push(Line::styled(
        " Sort columns (s cycles, r reverses): ↓ puts the largest first, ↑ the smallest",
        style::value(),
    ));
    for c in SortColumn::ALL {
        out.push(Line::from(vec![
            Span::raw("   "),
            Span::styled(format!("{:<16}", c.title()), style::own_frame()),
            Span::raw(format!("↓ {}; starts {}", c.descending(), super::fmt::sort_arrow(c.starts_descending()))),
        ]));
    }
    out.push(Line::default());
    let th = &app.state.thresholds;
    out.push(Line::styled(" Colours", style::value()));
    out.push(Line::from(vec![
        Span::raw("   "),
        Span::styled("yellow", style::severity_style(super::super::state::Severity::Warn)),
        Span::raw(format!(" parked ≥ {} (--warn-after)   ", super::fmt::duration(th.warn_after.as_nanos() as u64))),
        Span::styled("red", style::severity_style(super::super::state::Severity::Long)),
        Span::raw(format!(" parked ≥ {} (--leak-after)   ", super::fmt::duration(th.leak_after.as_nanos() as u64))),
        Span::styled("✗ LEAK", style::leaked_badge()),
        Span::raw(" no live waker: nothing can wake it"),
    ]));
    out
}
