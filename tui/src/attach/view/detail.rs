//! The detail of a task or a group: lifecycle figures, then the async stack
//! captured on demand, with where it came from (the agent's safe capture or
//! tokio's dump) or why there is none, in the words `taskscope stack` uses
//! ([`taskscope_report::provenance`]).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};
use taskscope_proto as proto;

use super::super::app::{App, Detail, Target};
use taskscope_report::frames::{Line as FrameLine, Paths};
use taskscope_report::suspect::Rules;

use super::super::state::{Capture, Group, TaskRow, TaskStack, DUMP_TIMEOUT};
use super::{fmt, style};
use taskscope_report::provenance::Standing;

/// At most this many distinct stacks are drawn for a group.
const MAX_GROUP_STACKS: usize = 8;

pub fn render(app: &App, detail: &Detail, area: Rect, buf: &mut Buffer) {
    let (title, mut lines) = match detail.target {
        Target::Task(id) => (format!(" task {id} "), task_lines(app, id)),
        Target::Group(g) => (" group ".to_string(), group_lines(app, g)),
    };
    lines.push(Line::default());
    lines.extend(stack_lines(detail, area.width as usize));
    let block = Block::bordered().title(title).border_style(style::dim());
    let inner_height = area.height.saturating_sub(2);
    app.page.set(inner_height.max(1) as usize);
    let max = (lines.len() as u16).saturating_sub(inner_height);
    app.scroll_max.set(max);
    Paragraph::new(lines).block(block).scroll((detail.scroll.min(max), 0)).render(area, buf);
}

fn kv(label: &str, value: String) -> [Span<'static>; 2] {
    [Span::styled(format!("{label:<14}"), style::label()), Span::styled(value, style::value())]
}

fn line(parts: Vec<[Span<'static>; 2]>) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    for [k, v] in parts {
        let pad = 22usize.saturating_sub(v.content.chars().count());
        spans.extend([k, v, Span::raw(" ".repeat(pad))]);
    }
    Line::from(spans)
}

fn task_lines(app: &App, id: u64) -> Vec<Line<'static>> {
    let s = &app.state;
    let Some(t) = s.task(id) else {
        return vec![Line::styled(
            " this task is no longer in the table (finished and dropped by the agent)",
            style::dim(),
        )];
    };
    let now = s.now_ns;
    let (sym, word) = style::state_symbol(t.state, t.leaked);
    let mut state = format!("{} for {}", t.state.label(), fmt::opt_duration(t.parked_ns(now)));
    if t.parked_ns(now).is_none() {
        state = t.state.label().to_string();
    }
    let head = Line::from(vec![
        Span::raw(" "),
        Span::styled(format!("{sym} {word}"), style::state_cell_style(t)),
        Span::raw("  "),
        Span::styled(if t.name.is_empty() { "(unnamed)".to_string() } else { t.name.to_string() }, style::value()),
        // The lean mode does not know kinds: it sends none.
        Span::styled(format!("  {} spawned at ", if t.kind.is_empty() { "task" } else { &t.kind }), style::label()),
        Span::styled(t.location.to_string(), style::own_frame()),
    ]);
    let mut lines = vec![
        head,
        line(vec![kv("state", state), kv("age", fmt::duration(t.age_ns(now)))]),
        line(vec![kv("polls", fmt::count(t.polls)), kv("busy", fmt::duration(t.busy_ns))]),
    ];
    if s.wakers_observed() {
        lines.push(line(vec![kv("wakes", fmt::count(t.wakes)), kv("self wakes", fmt::count(t.self_wakes))]));
        lines.push(line(vec![
            kv("live wakers", t.live_wakers.to_string()),
            kv("clones/drops", format!("{}/{}", t.waker_clones, t.waker_drops)),
        ]));
    } else {
        lines.push(line(vec![kv("wakes", "not observed (lean mode: runtime hooks)".to_string())]));
    }
    lines.push(line(vec![kv("last poll", ago(now, t.last_poll_ended_ns))]));
    if t.completed_at_ns > 0 {
        lines.push(line(vec![kv("finished", ago(now, t.completed_at_ns))]));
    }
    if let Some(verdict) = verdict(app, t) {
        lines.push(Line::from(vec![
            Span::raw(" "),
            Span::styled(verdict, style::severity_style(t.severity(now, &s.thresholds))),
        ]));
    }
    lines
}

fn verdict(app: &App, t: &TaskRow) -> Option<String> {
    use super::super::state::Severity;
    let th = &app.state.thresholds;
    match t.severity(app.state.now_ns, th) {
        Severity::Leaked => Some("leaked: idle with no live waker, nothing can wake it again".to_string()),
        Severity::Long => {
            Some(format!("parked longer than {} (--leak-after)", fmt::duration(th.leak_after.as_nanos() as u64)))
        }
        Severity::Warn => {
            Some(format!("parked longer than {} (--warn-after)", fmt::duration(th.warn_after.as_nanos() as u64)))
        }
        Severity::Normal => None,
    }
}

fn ago(now: u64, at: u64) -> String {
    if at == 0 {
        "never".to_string()
    } else {
        format!("{} ago", fmt::duration(now.saturating_sub(at)))
    }
}

fn group_lines(app: &App, g: u32) -> Vec<Line<'static>> {
    let s = &app.state;
    let Some(g): Option<&Group> = s.groups().get(g) else {
        return Vec::new();
    };
    let totals = s.totals(&g.location);
    vec![
        Line::from(vec![
            Span::raw(" "),
            Span::styled(g.location.to_string(), style::own_frame()),
            Span::styled("  name ", style::label()),
            Span::styled(if g.name.is_empty() { "(unnamed)".to_string() } else { g.name.to_string() }, style::value()),
        ]),
        line(vec![
            kv("live", fmt::count(g.live)),
            kv("idle", fmt::count(g.idle)),
            kv(
                "leaked",
                match s.no_leak_verdict() {
                    Some(why) => format!("no verdict ({why})"),
                    None => fmt::count(g.leaked),
                },
            ),
        ]),
        line(vec![
            kv("stuck", fmt::count(g.stuck)),
            kv("longest", fmt::opt_duration(g.longest_parked_ns(s.now_ns))),
            kv("growth 1m", fmt::delta(g.growth)),
        ]),
        line(vec![kv(
            "waits on",
            g.wait.as_ref().map_or_else(
                || "not known yet (no survey has placed these tasks)".to_string(),
                |w| format!("{} ({})", w.phrase, w.class.word()),
            ),
        )]),
        line(vec![kv(
            "suspect",
            g.suspect.map_or_else(|| "no".to_string(), |why| why.why(&Rules { long_after: s.thresholds.warn_after })),
        )]),
        line(vec![
            kv("spawned", fmt::count(totals.spawned)),
            kv("ended", fmt::count(totals.completed)),
            kv("done kept", fmt::count(g.done)),
        ]),
    ]
}

fn stack_lines(detail: &Detail, width: usize) -> Vec<Line<'static>> {
    // Explanations can be long; they wrap rather than run off the screen.
    let note = |text: String| wrap(&text, width.saturating_sub(5), "   ", warn());
    let aside = |text: String| wrap(&text, width.saturating_sub(5), "   ", style::dim());
    let heading = |text: String| Line::styled(format!(" {text}"), style::value());
    let outcome = match &detail.capture {
        Capture::Capturing => return vec![heading("async stack".into()), Line::styled("   capturing…", style::dim())],
        Capture::Failed(why) => {
            let mut lines = vec![heading("async stack".into())];
            lines.extend(note(format!("could not capture: {why}")));
            return lines;
        }
        Capture::Ready(outcome) => outcome,
    };
    // Where the stacks came from, once, above the tasks that have none:
    // their reasons refer to it (a stack names its source itself).
    let summary = |shown: bool| match outcome.summary() {
        Some(s) if s.none => note(s.short()),
        Some(s) if shown => aside(s.short()),
        _ => Vec::new(),
    };
    let paths = Paths::new(&outcome.dump, detail.full_frames);
    match detail.target {
        Target::Task(id) => match outcome.stack_for(id) {
            TaskStack::Found(stack, origin) => {
                let title = match origin.heading() {
                    Some(what) => format!("async {what}, awaited leaf first"),
                    None => "async stack, awaited leaf first".to_string(),
                };
                let mut lines = vec![heading(title)];
                lines.extend(frames(stack, &paths));
                lines
            }
            TaskStack::Missing(why) => {
                let mut lines = vec![heading("async stack".into())];
                lines.extend(summary(true));
                lines.extend(note(why));
                lines
            }
        },
        Target::Group(_) => {
            let shared = outcome.shared();
            let total: usize = shared.iter().map(|s| s.tasks).sum();
            let mut lines = vec![heading(format!(
                "async stacks of {} dumped tasks: {} distinct",
                fmt::count(total as u64),
                shared.iter().filter(|s| s.stack_id != 0).count()
            ))];
            lines.extend(summary(shared.iter().any(|s| matches!(s.standing, Standing::Missing(_)))));
            for sh in shared.iter().take(MAX_GROUP_STACKS) {
                lines.push(Line::default());
                let tasks = |n: usize| format!("{} task{}", fmt::count(n as u64), if n == 1 { "" } else { "s" });
                let origin = match sh.standing {
                    Standing::Stack(origin) => origin,
                    Standing::Missing(missing) => {
                        let text = format!("{}: {}", tasks(sh.tasks), missing.text(Some(DUMP_TIMEOUT)));
                        for (i, part) in fmt::wrap_words(&text, width.saturating_sub(7)).into_iter().enumerate() {
                            let bullet = if i == 0 { " ■ " } else { "   " };
                            lines.push(Line::styled(format!("{bullet}{part}"), style::dim()));
                        }
                        continue;
                    }
                };
                let mut who = if sh.tasks == total {
                    format!("all {} share this stack", tasks(total))
                } else {
                    format!("{} of {} share this stack", fmt::count(sh.tasks as u64), fmt::count(total as u64))
                };
                if let Some(label) = origin.label() {
                    who.push_str(&format!(" ({label})"));
                }
                lines.push(Line::styled(format!(" ■ {who}"), style::value()));
                if let Some(stack) = outcome.dump.stacks.get(&sh.stack_id) {
                    lines.extend(frames(stack, &paths));
                }
            }
            if shared.len() > MAX_GROUP_STACKS {
                lines.push(Line::styled(
                    format!(" … and {} more stacks", shared.len() - MAX_GROUP_STACKS),
                    style::dim(),
                ));
            }
            lines
        }
    }
}

/// `text` wrapped into lines of at most `width` characters (see
/// [`fmt::wrap_words`]), each starting with `indent`.
fn wrap(text: &str, width: usize, indent: &str, style: ratatui::style::Style) -> Vec<Line<'static>> {
    fmt::wrap_words(text, width).into_iter().map(|l| Line::styled(format!("{indent}{l}"), style)).collect()
}

fn warn() -> ratatui::style::Style {
    style::severity_style(super::super::state::Severity::Warn)
}

/// A stack's frames as `taskscope stack` prints them: leaf first (what the
/// task awaits, then its callers), runs of runtime frames folded into a
/// count unless `f` (full) is on but the awaited primitive kept, paths
/// shortened the same way; the program's own frames bright.
fn frames(stack: &proto::Stack, paths: &Paths) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let n = stack.backtraces.len();
    for (i, bt) in stack.backtraces.iter().enumerate() {
        if n > 1 {
            lines.push(Line::styled(format!("   awaiting {} of {n}:", i + 1), style::dim()));
        }
        for line in taskscope_report::frames::visible(&bt.frames, paths.full) {
            match line {
                FrameLine::Collapsed(k) => lines.push(Line::styled(
                    format!("     ... {k} runtime frame{} (f shows them)", if k == 1 { "" } else { "s" }),
                    style::dim(),
                )),
                FrameLine::Frame(f) => {
                    let fstyle = if f.internal { style::dim() } else { style::own_frame() };
                    let function = if f.function.is_empty() { "<unknown>" } else { f.function.as_str() };
                    lines.push(Line::from(vec![Span::raw("     "), Span::styled(function.to_string(), fstyle)]));
                    if let Some(position) = paths.position(f) {
                        lines.push(Line::styled(format!("         {position}"), style::dim()));
                    }
                }
            }
        }
    }
    if lines.is_empty() {
        lines.push(Line::styled("   (empty stack)", style::dim()));
    }
    lines
}
