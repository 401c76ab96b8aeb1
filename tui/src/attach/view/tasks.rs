//! The tasks list: one row per task, only the visible rows built.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, Widget};

use super::super::app::App;
use super::super::state::{SortColumn, TaskRow, Thresholds};
use super::{fmt, style};

/// Widths of the columns, in [`SortColumn::ALL`] order.
const WIDTHS: [Constraint; 10] = [
    Constraint::Length(7),
    Constraint::Length(11),
    Constraint::Length(12),
    Constraint::Length(7),
    Constraint::Length(7),
    Constraint::Length(7),
    Constraint::Length(7),
    Constraint::Length(6),
    Constraint::Length(20),
    Constraint::Fill(1),
];

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let s = &app.state;
    let height = area.height.saturating_sub(1) as usize;
    app.page.set(height.max(1));
    let len = s.shown_count();
    if len == 0 {
        let msg = if s.task_count() == 0 { "no tasks" } else { "no task matches the filter and state toggles" };
        Line::styled(format!(" {msg}"), style::dim()).render(Rect { y: area.y + 1, height: 1, ..area }, buf);
    }
    let offset = app.tasks.visible_offset(len, height);
    let selected = app.tasks.selected.min(len.saturating_sub(1));
    let loc_width = fill_width(area.width, &WIDTHS);
    let rows = (offset..(offset + height).min(len)).filter_map(|i| {
        let task = s.shown_task(i)?;
        Some(row(task, s.now_ns, &s.thresholds, i == selected, loc_width, s.wakers_observed()))
    });
    let header = Row::new(SortColumn::ALL.iter().map(|c| {
        let title = if *c == s.sort_column() {
            format!("{}{}", c.title(), fmt::sort_arrow(s.sort_descending()))
        } else {
            c.title().to_string()
        };
        Cell::from(title)
    }))
    .style(style::table_header());
    Table::new(rows, WIDTHS).header(header).column_spacing(1).render(area, buf);
}

/// Width left for the one `Fill` column after the fixed ones and the gaps.
pub fn fill_width(total: u16, widths: &[Constraint]) -> usize {
    let fixed: u16 = widths.iter().map(|c| if let Constraint::Length(n) = c { *n } else { 0 }).sum();
    total.saturating_sub(fixed + widths.len() as u16 - 1) as usize
}

fn row<'a>(
    t: &'a TaskRow,
    now_ns: u64,
    thresholds: &Thresholds,
    selected: bool,
    loc_width: usize,
    wakers_observed: bool,
) -> Row<'a> {
    let (sym, word) = style::state_symbol(t.state, t.leaked);
    let name: &str = if t.name.is_empty() { "-" } else { &t.name };
    let busy = if t.polls == 0 { "-".to_string() } else { fmt::duration(t.busy_ns) };
    let cells = [
        Cell::from(t.id.to_string()),
        Cell::from(Line::from(Span::styled(format!("{sym} {word}"), style::state_cell_style(t)))),
        Cell::from(name),
        Cell::from(fmt::duration(t.age_ns(now_ns))),
        Cell::from(fmt::opt_duration(t.parked_ns(now_ns))),
        Cell::from(fmt::count(t.polls)),
        Cell::from(busy),
        Cell::from(if wakers_observed { t.live_wakers.to_string() } else { "-".to_string() }),
        Cell::from(t.wait.as_deref().unwrap_or("-")),
        Cell::from(fmt::tail(&t.location, loc_width)),
    ];
    Row::new(cells).style(style::row(style::severity_style(t.severity(now_ns, thresholds)), selected))
}
