//! The header (process and link, counts, then any warning) and the tab line.
//! A runtime tokio's dump harmed is the worst news there is about the
//! program (it should be restarted), so it gets a red marker on the first
//! line. A warning (why the link is down) is wrapped over as many lines as it
//! needs rather than cut at the screen's edge: its last words are usually
//! what to do about it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::super::app::{App, View};
use super::super::state::TaskState;
use super::{fmt, style};

/// The lines under the two fixed ones, wrapped to `width`: what is wrong
/// with the link (in the warning colour), and which process of a followed
/// program is watched now.
fn warning_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut wrapped = |text: &str, mark: &str, style| {
        // The continuation lines under the first one's text.
        for (i, part) in fmt::wrap_words(text, (width as usize).saturating_sub(4)).into_iter().enumerate() {
            lines.push(Line::styled(format!("{}{part}", if i == 0 { mark } else { "   " }), style));
        }
    };
    if let Some(problem) = app.state.link_problem() {
        wrapped(&problem, " ⚠ ", style::severity_style(super::super::state::Severity::Warn));
    }
    if let Some(notice) = app.state.follow_notice() {
        wrapped(&notice, " → ", style::value());
    }
    // Said once, here, rather than as a missing stack under every group.
    if app.state.process.as_ref().is_some_and(|p| p.mode == taskscope_report::render::CONSOLE_MODE) {
        wrapped(
            "a console-subscriber target: lifecycles, wakers and the leaked verdict only; no async stacks, \
             so no wait reasons and no blocked-runtime diagnosis (embed taskscope's agent for those)",
            " ℹ ",
            style::dim(),
        );
    }
    lines
}

/// How many lines the header needs at `width`: two, plus its warnings.
pub fn height(app: &App, width: u16) -> u16 {
    2 + warning_lines(app, width).len().min(u16::MAX as usize - 2) as u16
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let s = &app.state;
    // The link state right after the name: when it is bad, it is the news.
    let mut first = vec![
        Span::styled(" taskscope ", style::active_tab()),
        Span::raw(" "),
        Span::styled(format!(" {} ", s.connection.describe(app.now)), style::link(s.connection.is_live())),
        Span::raw("  "),
    ];
    match &s.process {
        Some(p) => {
            first.push(Span::styled(p.process_name.clone(), style::value()));
            // 0: not told (a console-subscriber elsewhere than this machine).
            first.extend(pair("pid", if p.pid == 0 { "unknown".to_string() } else { p.pid.to_string() }));
            first.extend(pair("up", fmt::opt_duration(s.uptime_ns())));
            if !p.tokio_version.is_empty() {
                first.extend(pair("tokio", p.tokio_version.clone()));
            }
            if p.mode != "tracing" && !p.mode.is_empty() {
                first.extend(pair("mode", p.mode.clone()));
            }
            // 0: exact times (or a console-subscriber, which does not say).
            if p.time_resolution_ns > 0 {
                first.extend(pair("times to", taskscope_proto::duration::format_ns(p.time_resolution_ns)));
            }
            for harm in s.harms() {
                first.push(Span::raw("  "));
                first.push(Span::styled(format!(" {} ", harm.marker()), style::harmed()));
            }
        }
        None => first.push(Span::styled("(no process info yet)", style::dim())),
    }

    let c = &s.counts;
    let by_state = [c.running, c.scheduled, c.idle, c.done];
    let mut second = vec![Span::raw(" ")];
    for (state, n) in TaskState::ALL.iter().zip(by_state) {
        let (sym, _) = style::state_symbol(*state, false);
        second.push(Span::styled(format!("{sym} "), style::state_style(*state)));
        second.push(Span::styled(fmt::count(n), style::value()));
        second.push(Span::styled(format!(" {}  ", state.label()), style::label()));
    }
    match s.no_leak_verdict() {
        // Not "0 leaked": this agent cannot tell.
        Some(why) => second.push(Span::styled(format!("leaked: no verdict ({why})"), style::label())),
        None => {
            let leaked_style = if c.leaked > 0 { style::leaked_badge() } else { style::value() };
            second.push(Span::styled(format!("✗ {} leaked", fmt::count(c.leaked)), leaked_style));
        }
    }
    second.extend(pair("longest parked", fmt::opt_duration(s.longest_parked_ns())));
    second.extend(pair("spawned", fmt::count(c.spawned_total)));
    let dropped_style =
        if s.dropped_events > 0 { style::severity_style(super::super::state::Severity::Warn) } else { style::value() };
    second.push(Span::styled("  dropped events ", style::label()));
    second.push(Span::styled(fmt::count(s.dropped_events), dropped_style));
    let mut lines = vec![Line::from(first), Line::from(second)];
    lines.extend(warning_lines(app, area.width));
    Paragraph::new(lines).render(area, buf);
}

/// The tab line: views with their sizes, then sort and filter.
pub fn render_tabs(app: &App, area: Rect, buf: &mut Buffer) {
    let s = &app.state;
    let tab = |on: bool, text: String| {
        Span::styled(format!(" {text} "), if on { style::active_tab() } else { style::label() })
    };
    let tasks_text = if s.shown_count() == s.task_count() {
        format!("Tasks {}", fmt::count(s.task_count() as u64))
    } else {
        format!("Tasks {} of {}", fmt::count(s.shown_count() as u64), fmt::count(s.task_count() as u64))
    };
    let mut spans = vec![
        Span::raw(" "),
        tab(app.view == View::Tasks, tasks_text),
        Span::raw(" "),
        tab(app.view == View::Groups, format!("Groups {}", fmt::count(s.groups().ordered().len() as u64))),
    ];
    spans.extend(pair("sort", fmt::sort_hint(s.sort_column(), s.sort_descending())));
    let shown: String = TaskState::ALL
        .iter()
        .map(|st| if s.filter().shown[st.index()] { style::state_symbol(*st, false).0 } else { "·" })
        .collect();
    spans.extend(pair("states", shown));
    if s.keep_done() {
        spans.push(Span::styled("  keeping done", style::value()));
    }
    if !s.filter().text.is_empty() && app.filter_input.is_none() {
        spans.extend(pair("filter", format!("\"{}\"", s.filter().text)));
    }
    spans.push(Span::styled(
        format!(
            "  warn ≥{} leak ≥{}",
            fmt::duration(s.thresholds.warn_after.as_nanos() as u64),
            fmt::duration(s.thresholds.leak_after.as_nanos() as u64)
        ),
        style::label(),
    ));
    Line::from(spans).render(area, buf);
}

fn pair(label: &str, value: String) -> [Span<'static>; 2] {
    [Span::styled(format!("  {label} "), style::label()), Span::styled(value, style::value())]
}
