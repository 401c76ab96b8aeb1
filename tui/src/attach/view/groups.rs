//! The groups list (the leak finder: the groups of `taskscope stack`, in its
//! order, suspects first) and the live-count chart of the selected group.
//! STUCK counts the parked tasks of suspect groups only.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Sparkline, Table, Widget};

use super::super::app::App;
use super::super::state::{Group, HISTORY_LEN};
use super::{fmt, style};

/// Width of the per-row trend.
const TREND: u16 = 12;
/// Seconds the per-row trend covers.
const TREND_WINDOW: usize = 120;

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let [list, chart] = area.layout(&Layout::vertical([Constraint::Min(3), Constraint::Length(6)]));
    let s = &app.state;
    let height = list.height.saturating_sub(1) as usize;
    app.page.set(height.max(1));
    let ordered = s.groups().ordered();
    let len = ordered.len();
    if len == 0 {
        let msg = if s.task_count() == 0 { "no tasks" } else { "no group matches the filter" };
        Line::styled(format!(" {msg}"), style::dim()).render(Rect { y: list.y + 1, height: 1, ..list }, buf);
    }
    let offset = app.groups.visible_offset(len, height);
    let selected = app.groups.selected.min(len.saturating_sub(1));
    let loc_width = super::tasks::fill_width(list.width, &WIDTHS);
    let rows = (offset..(offset + height).min(len)).filter_map(|i| {
        let g = s.groups().get(ordered[i])?;
        Some(row(app, g, i == selected, loc_width))
    });
    let titles = ["LIVE", "Δ1m", "TREND 2m", "STUCK", "LEAKED", "LONGEST", "SPAWNED", "WAIT", "NAME", "LOCATION"];
    Table::new(rows, WIDTHS).header(Row::new(titles).style(style::table_header())).column_spacing(1).render(list, buf);

    if let Some(g) = app.selected_group().and_then(|i| s.groups().get(i)) {
        render_chart(g, chart, buf);
    }
}

const WIDTHS: [Constraint; 10] = [
    Constraint::Length(6),
    Constraint::Length(6),
    Constraint::Length(TREND),
    Constraint::Length(6),
    Constraint::Length(6),
    Constraint::Length(7),
    Constraint::Length(7),
    Constraint::Length(24),
    Constraint::Length(10),
    Constraint::Fill(1),
];

fn row<'a>(app: &App, g: &'a Group, selected: bool, loc_width: usize) -> Row<'a> {
    let s = &app.state;
    let totals = s.totals(&g.location);
    let trend = fmt::sparkline(&g.history.buckets(TREND as usize, TREND_WINDOW));
    let name: &str = if g.name.is_empty() { "-" } else { &g.name };
    // An agent that gives no leak verdict leaves the column blank, not 0.
    let leaked = match s.no_leak_verdict() {
        Some(_) => Cell::from("-"),
        None => Cell::from(fmt::count(g.leaked)),
    };
    let leaked = if g.leaked > 0 { leaked.style(style::leaked_badge()) } else { leaked };
    Row::new([
        Cell::from(fmt::count(g.live)),
        Cell::from(fmt::delta(g.growth)),
        Cell::from(trend),
        Cell::from(fmt::count(g.stuck)),
        leaked,
        Cell::from(fmt::opt_duration(g.longest_parked_ns(s.now_ns))),
        Cell::from(fmt::count(totals.spawned)),
        Cell::from(g.wait.as_ref().map_or("-", |w| w.phrase.as_str())),
        Cell::from(name),
        Cell::from(fmt::tail(&g.location, loc_width)),
    ])
    .style(style::row(style::severity_style(g.severity()), selected))
}

/// The selected group's live count over the whole history kept.
fn render_chart(g: &Group, area: Rect, buf: &mut Buffer) {
    let width = area.width.saturating_sub(2) as usize;
    let data: Vec<Option<u64>> = g.history.buckets(width, HISTORY_LEN);
    let max = data.iter().flatten().copied().max().unwrap_or(0);
    let suspect = g.suspect.map(|s| format!(" suspect: {} ", s.word().replace('_', " "))).unwrap_or_default();
    let title = format!(
        " live tasks at {}{}: last {} min, now {}, peak {} {suspect}",
        g.location,
        if g.name.is_empty() { String::new() } else { format!(" ({})", g.name) },
        HISTORY_LEN / 60,
        fmt::count(g.live),
        fmt::count(max)
    );
    Sparkline::default()
        .block(Block::bordered().title(title).border_style(style::dim()))
        .data(data)
        .max(max.max(1))
        .style(style::severity_style(g.severity()))
        .render(area, buf);
}
