//! Where a task's stack came from, or why it has none, in the words every
//! surface uses: `stack` (text and `--json`), `attach`'s detail view and
//! header, and `ps`. One fact, one wording, kept here.
//!
//! Stacks have two sources (`StackSource` in the protocol). The *safe
//! capture*: a future the agent wraps (`taskscope_agent::spawn`, its task
//! `Builder`, the future `#[taskscope_agent::main]` runs) traces itself inside
//! its own next poll; that cannot harm the program and is always taken.
//! *tokio's dump* traces every task, but on a tokio without taskscope's
//! taskdump fixes it can wedge a worker or lose a task, so the agent takes
//! it only where its policy allows, and says why not in
//! `RuntimeDump.detail`. So a task can lack a stack for several reasons,
//! each with its own remedy, and the reader is told which one.
//!
//! A dump from an agent older than `StackSource` (every source unspecified,
//! no `SafeCapture`) reads as it did before: stacks came from tokio's dump.

use std::time::Duration;

use taskscope_proto::{DumpStatus, ProcessInfo, RuntimeDump, RuntimeInfo, SafeCapture, StackSource};

use crate::text::{explained, shown};

/// Where a stack that is present came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Traced inside the task's own poll (a wrapped future).
    Captured,
    /// tokio's task dump of its runtime.
    TokioDump,
    /// Not said: an older agent (whose stacks all came from tokio's dump).
    Unknown,
}

impl Origin {
    /// How a report names the source, `None` when not known.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Origin::Captured => Some("captured safely"),
            Origin::TokioDump => Some("tokio's dump"),
            Origin::Unknown => None,
        }
    }

    /// `stack (captured safely)`, the line above a stack's frames; `None`
    /// when the source is not known.
    pub fn heading(self) -> Option<String> {
        self.label().map(|l| format!("stack ({l})"))
    }
}

/// Why a task has no stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Missing {
    /// Traced (by either source), but parked on nothing tokio can trace.
    Untraceable,
    /// Not parked (running, or woken): only tasks that wait are traced.
    NotParked,
    /// Not wrapped, and tokio's dump of its runtime was not taken.
    NotWrapped,
    /// Wrapped, but not polled before the timeout.
    NotPolled,
    /// An older agent whose runtime was not dumped (the header says why).
    NotDumped,
}

impl Missing {
    /// The reason as one word, for `--json` (`no_stack`).
    pub fn word(self) -> &'static str {
        match self {
            Missing::Untraceable => "untraceable",
            Missing::NotParked => "not_parked",
            Missing::NotWrapped => "not_wrapped",
            Missing::NotPolled => "not_polled",
            Missing::NotDumped => "not_dumped",
        }
    }

    /// `no stack captured: <why>`: the text in place of a stack. `timeout`
    /// is the dump timeout asked for, when known (the not-polled reason
    /// names it).
    pub fn text(self, timeout: Option<Duration>) -> String {
        let why = match self {
            Missing::Untraceable => "it awaits nothing a task dump can trace, e.g. `std::future::pending()`, \
                                     a hand-written future, or `TcpListener::accept`"
                .to_string(),
            Missing::NotParked => "not parked; only tasks that wait are traced".to_string(),
            Missing::NotWrapped => "not wrapped, and tokio's dump of its runtime was not taken (see above); \
                                    spawn it with `taskscope_agent::spawn` to capture its stack safely"
                .to_string(),
            Missing::NotPolled => format!(
                "wrapped, but not polled {}: it is inside a long poll, or its runtime is blocked",
                timeout.map_or_else(
                    || "in time".to_string(),
                    |t| format!("within {}", taskscope_proto::duration::format(t))
                )
            ),
            Missing::NotDumped => return "no stack captured".to_string(),
        };
        format!("no stack captured: {why}")
    }
}

/// What a task's stack slot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Standing {
    /// A stack, from this source.
    Stack(Origin),
    /// No stack, for this reason.
    Missing(Missing),
}

/// The `StackSource` a `DumpedTask.stack_source` value stands for
/// (`Unspecified` for values this build does not know).
pub fn source(raw: i32) -> StackSource {
    StackSource::try_from(raw).unwrap_or(StackSource::Unspecified)
}

/// `stack_source` in `--json`: `null` when the agent did not say.
pub fn source_word(source: StackSource) -> Option<&'static str> {
    match source {
        StackSource::Captured => Some("captured"),
        StackSource::TokioDump => Some("tokio_dump"),
        StackSource::NotWrapped => Some("not_wrapped"),
        StackSource::NotPolled => Some("not_polled"),
        StackSource::NotTraced => Some("not_traced"),
        StackSource::Unspecified => None,
    }
}

/// What one task shows: `has_stack` when a non-empty stack came with it,
/// `parked` when it is idle, `all_dumped` when every runtime's tokio dump
/// succeeded (used only for an older agent, which does not say the source).
pub fn standing(source: StackSource, has_stack: bool, parked: bool, all_dumped: bool) -> Standing {
    if has_stack {
        return Standing::Stack(match source {
            StackSource::Captured => Origin::Captured,
            StackSource::TokioDump => Origin::TokioDump,
            // An older agent's stacks; or a source contradicting the stack.
            _ => Origin::Unknown,
        });
    }
    let after_dump = if parked { Missing::Untraceable } else { Missing::NotParked };
    Standing::Missing(match source {
        StackSource::Captured => Missing::Untraceable,
        StackSource::TokioDump => after_dump,
        // A running or woken task has no stack from either source (only
        // waiting tasks are traced), and a wrapped one that has not parked
        // yet is not known to the agent as wrapped: "not parked" is what is
        // sure. The header says which tasks get stacks at all.
        StackSource::NotWrapped if !parked => Missing::NotParked,
        StackSource::NotWrapped => Missing::NotWrapped,
        StackSource::NotPolled => Missing::NotPolled,
        // tokio's dump ran while it was running or woken.
        StackSource::NotTraced => Missing::NotParked,
        StackSource::Unspecified if all_dumped => after_dump,
        StackSource::Unspecified => Missing::NotDumped,
    })
}

/// Whether no stack can come from any source: no safe capture, and task
/// dumps unsupported for every runtime (a console-subscriber). Then the
/// header says so once, and no task repeats it.
pub fn no_source(runtimes: &[RuntimeDump], safe: Option<&SafeCapture>) -> bool {
    safe.is_none() && !runtimes.is_empty() && runtimes.iter().all(|r| r.status == DumpStatus::Unsupported as i32)
}

/// Whether every runtime's tokio dump succeeded (false without runtimes).
pub fn all_dumped(runtimes: &[RuntimeDump]) -> bool {
    !runtimes.is_empty() && runtimes.iter().all(|r| r.status == DumpStatus::Ok as i32)
}

/// Where a dump's stacks came from, in one line of text, e.g.
/// `12 wrapped tasks captured safely; tokio's dump of runtime main is off: <why>`.
/// The agent's explanations are long, so they are given here, once, and the
/// per-task reasons refer to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// No stack at all: no task has one, no runtime was dumped, no wrapped
    /// task answered.
    pub none: bool,
    /// The sources, `; `-separated.
    pub text: String,
    /// More than one runtime was asked.
    several: bool,
}

impl Summary {
    /// As a line of `stack`'s header: `stacks: <text>`, or when there is no
    /// stack at all, `warning: no stacks: <text>; tasks are shown by spawn
    /// location only`.
    pub fn line(&self) -> String {
        if self.none {
            let whose = if self.several { "its tasks are shown" } else { "tasks are shown" };
            format!("warning: {}; {whose} by spawn location only", self.short())
        } else {
            self.short()
        }
    }

    /// `stacks: <text>` or `no stacks: <text>`, for a status line.
    pub fn short(&self) -> String {
        format!("{}: {}", if self.none { "no stacks" } else { "stacks" }, self.text)
    }
}

/// The [`Summary`] of a dump: `runtimes` and `safe` from its header,
/// `any_stack` when some task came with a stack, `timeout` the dump timeout
/// asked for. `None` for an older agent whose runtimes were all dumped:
/// nothing to say.
pub fn summary(
    runtimes: &[RuntimeDump],
    safe: Option<&SafeCapture>,
    any_stack: bool,
    timeout: Duration,
) -> Option<Summary> {
    if safe.is_none() && all_dumped(runtimes) {
        return None;
    }
    let answered = safe.is_some_and(|s| s.answered > 0);
    let dumped = runtimes.iter().any(|r| r.status == DumpStatus::Ok as i32);
    let mut parts: Vec<String> = Vec::new();
    // "No wrapped tasks" matters only when tokio's dump gave nothing either.
    if let Some(safe) = safe.filter(|s| s.wanted > 0 || !dumped) {
        parts.push(safe_part(safe, timeout));
    }
    parts.extend(runtimes.iter().map(|rt| runtime_part(rt, timeout)));
    if parts.is_empty() {
        return None;
    }
    Some(Summary { none: !(any_stack || answered || dumped), text: parts.join("; "), several: runtimes.len() > 1 })
}

fn safe_part(safe: &SafeCapture, timeout: Duration) -> String {
    let tasks = |n: u32| if n == 1 { "task" } else { "tasks" };
    match (safe.wanted, safe.answered) {
        (0, _) => "no wrapped tasks to capture safely".to_string(),
        (w, a) if a >= w => format!("{w} wrapped {} captured safely", tasks(w)),
        (w, a) => format!(
            "{a} of {w} wrapped {} captured safely ({} not polled within {})",
            tasks(w),
            w - a,
            taskscope_proto::duration::format(timeout)
        ),
    }
}

fn runtime_part(rt: &RuntimeDump, timeout: Duration) -> String {
    let runtime = shown(&rt.runtime);
    let detail = if rt.detail.is_empty() { String::new() } else { format!(" ({})", explained(&rt.detail)) };
    match DumpStatus::try_from(rt.status) {
        Ok(DumpStatus::Ok) => format!("tokio dumped runtime {runtime}"),
        Ok(DumpStatus::TimedOut) => {
            // The agent's detail usually restates the timeout before its
            // explanation; keep only the explanation.
            let why = match rt.detail.split_once(": ") {
                Some((lead, rest)) if lead.contains("did not answer") => rest,
                _ if rt.detail.is_empty() => "a task may be blocking a worker thread",
                _ => rt.detail.as_str(),
            };
            format!(
                "runtime {runtime} did not answer within {}: {}",
                taskscope_proto::duration::format(timeout),
                explained(why)
            )
        }
        // No runtime is named when none is known (a console-subscriber).
        Ok(DumpStatus::Unsupported) if rt.runtime.is_empty() => format!("task dumps are not supported{detail}"),
        Ok(DumpStatus::Unsupported) => format!("task dumps are not supported for runtime {runtime}{detail}"),
        Ok(DumpStatus::Disabled) => {
            // Older agents started the detail with "not dumped: ".
            let why = rt.detail.strip_prefix("not dumped: ").unwrap_or(&rt.detail);
            if why.is_empty() {
                format!("tokio's dump of runtime {runtime} is off")
            } else {
                format!("tokio's dump of runtime {runtime} is off: {}", explained(why))
            }
        }
        Ok(DumpStatus::Harmed) => format!("tokio's dump of runtime {runtime} is refused: it harmed the runtime"),
        Ok(DumpStatus::Failed) => format!("dump of runtime {runtime} failed{detail}"),
        Ok(DumpStatus::Unspecified) | Err(_) => {
            format!("runtime {runtime} sent an unknown dump status {}{detail}", rt.status)
        }
    }
}

/// One runtime that tokio's dump harmed, and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct Harm {
    /// The runtime's registered name.
    pub runtime: String,
    /// What the agent says happened.
    pub what: String,
}

/// The runtimes tokio's dump harmed, from `GetInfo` (`RuntimeInfo.harmed`)
/// and from a dump's statuses (`DUMP_STATUS_HARMED`), each once, in that
/// order. `GetInfo`'s text is the plain account of the harm; a later
/// dump's detail wraps it in the refusal, so it is used only for a runtime
/// `GetInfo` did not know harmed (the harm happened during this dump).
pub fn harms(known: &[RuntimeInfo], dumped: &[RuntimeDump]) -> Vec<Harm> {
    let mut out: Vec<Harm> = known
        .iter()
        .filter(|r| !r.harmed.is_empty())
        .map(|r| Harm { runtime: r.name.clone(), what: r.harmed.clone() })
        .collect();
    for rt in dumped.iter().filter(|r| r.status == DumpStatus::Harmed as i32) {
        if !out.iter().any(|h| h.runtime == rt.runtime) {
            out.push(Harm { runtime: rt.runtime.clone(), what: rt.detail.clone() });
        }
    }
    out
}

/// The runtimes of `info` that tokio's dump harmed.
pub fn harmed(info: &ProcessInfo) -> Vec<Harm> {
    harms(&info.runtimes, &[])
}

impl Harm {
    /// `warning: tokio's dump harmed runtime main (<what>); the program should be restarted`.
    pub fn warning(&self) -> String {
        let what = if self.what.is_empty() { String::new() } else { format!(" ({})", explained(&self.what)) };
        format!("warning: tokio's dump harmed runtime {}{what}; the program should be restarted", shown(&self.runtime))
    }

    /// The short form for a status line: `tokio dump harmed runtime main: restart`.
    pub fn marker(&self) -> String {
        format!("tokio dump harmed runtime {}: restart", shown(&self.runtime))
    }
}

/// The footnote of `ps` for a process marked `!`.
pub const HARM_FOOTNOTE: &str = "! tokio's dump harmed a runtime of this program: restart it \
                                 (`taskscope stack <pid>` says what happened)";

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(status: DumpStatus, detail: &str) -> RuntimeDump {
        RuntimeDump { runtime: "main".into(), status: status as i32, detail: detail.into(), elapsed_ns: 0 }
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn each_source_and_state_gets_its_reason() {
        use Missing::*;
        let s = |source, has, parked| standing(source, has, parked, false);
        assert_eq!(s(StackSource::Captured, true, true), Standing::Stack(Origin::Captured));
        assert_eq!(s(StackSource::TokioDump, true, true), Standing::Stack(Origin::TokioDump));
        assert_eq!(s(StackSource::Unspecified, true, true), Standing::Stack(Origin::Unknown));
        assert_eq!(s(StackSource::Captured, false, false), Standing::Missing(Untraceable));
        assert_eq!(s(StackSource::TokioDump, false, true), Standing::Missing(Untraceable));
        assert_eq!(s(StackSource::TokioDump, false, false), Standing::Missing(NotParked));
        assert_eq!(s(StackSource::NotWrapped, false, false), Standing::Missing(NotParked), "running or woken");
        assert_eq!(s(StackSource::NotWrapped, false, true), Standing::Missing(NotWrapped));
        assert_eq!(s(StackSource::NotPolled, false, true), Standing::Missing(NotPolled));
        // Listed as idle now, but running or woken while tokio's dump ran.
        assert_eq!(s(StackSource::NotTraced, false, true), Standing::Missing(NotParked));
        assert_eq!(source_word(StackSource::NotTraced), Some("not_traced"));
        // An older agent: as before, by whether every runtime was dumped.
        assert_eq!(s(StackSource::Unspecified, false, true), Standing::Missing(NotDumped));
        assert_eq!(standing(StackSource::Unspecified, false, true, true), Standing::Missing(Untraceable));
        assert_eq!(standing(StackSource::Unspecified, false, false, true), Standing::Missing(NotParked));
    }

    #[test]
    fn reasons_read_as_documented() {
        assert_eq!(Missing::NotDumped.text(Some(T)), "no stack captured");
        assert_eq!(
            Missing::NotPolled.text(Some(Duration::from_secs(2))),
            "no stack captured: wrapped, but not polled within 2s: it is inside a long poll, or its runtime is blocked"
        );
        assert!(Missing::NotPolled.text(None).contains("not polled in time"));
        assert!(Missing::NotWrapped.text(None).contains("`taskscope_agent::spawn`"));
        assert_eq!(Origin::Captured.heading().as_deref(), Some("stack (captured safely)"));
        assert_eq!(Origin::TokioDump.heading().as_deref(), Some("stack (tokio's dump)"));
        assert_eq!(Origin::Unknown.heading(), None);
    }

    #[test]
    fn the_summary_names_both_sources_and_warns_only_without_any_stack() {
        let safe = SafeCapture { wanted: 12, answered: 12, ..Default::default() };
        let off = rt(DumpStatus::Disabled, "tokio 1.54.1's task dump can leave a worker stuck");
        let line = |runtimes: &[RuntimeDump], safe, any, t| summary(runtimes, safe, any, t).map(|s| s.line());
        assert_eq!(
            line(std::slice::from_ref(&off), Some(&safe), true, T).as_deref(),
            Some("stacks: 12 wrapped tasks captured safely; tokio's dump of runtime main is off: tokio 1.54.1's task dump can leave a worker stuck")
        );
        let none = SafeCapture::default();
        assert_eq!(
            summary(std::slice::from_ref(&off), Some(&none), false, T).map(|s| s.short()).as_deref(),
            Some(
                "no stacks: no wrapped tasks to capture safely; tokio's dump of runtime main is off: \
                  tokio 1.54.1's task dump can leave a worker stuck"
            )
        );
        assert_eq!(
            line(&[off], Some(&none), false, T).as_deref(),
            Some(
                "warning: no stacks: no wrapped tasks to capture safely; tokio's dump of runtime main is off: \
                  tokio 1.54.1's task dump can leave a worker stuck; tasks are shown by spawn location only"
            )
        );
        let late = SafeCapture { wanted: 3, answered: 1, ..Default::default() };
        assert_eq!(
            line(&[rt(DumpStatus::Ok, "")], Some(&late), true, Duration::from_secs(2)).as_deref(),
            Some("stacks: 1 of 3 wrapped tasks captured safely (2 not polled within 2s); tokio dumped runtime main")
        );
        assert_eq!(summary(&[rt(DumpStatus::Ok, "")], None, true, T), None, "an older agent, all well");
        assert_eq!(
            line(&[rt(DumpStatus::Ok, "")], Some(&none), true, T).as_deref(),
            Some("stacks: tokio dumped runtime main"),
            "no wrapped tasks: worth saying only when tokio's dump gave nothing either"
        );
    }

    #[test]
    fn a_source_without_stacks_is_said_once_without_a_runtime_name() {
        let none = RuntimeDump { runtime: String::new(), ..rt(DumpStatus::Unsupported, "records only") };
        assert!(no_source(std::slice::from_ref(&none), None));
        assert!(!no_source(std::slice::from_ref(&none), Some(&SafeCapture::default())));
        assert!(!no_source(&[rt(DumpStatus::Disabled, "")], None));
        assert!(!no_source(&[], None));
        assert_eq!(
            summary(&[none], None, false, T).map(|s| s.line()).as_deref(),
            Some("warning: no stacks: task dumps are not supported (records only); tasks are shown by spawn location only")
        );
    }

    #[test]
    fn harm_is_told_once_per_runtime_with_the_plainest_account() {
        let known = vec![RuntimeInfo { name: "main".into(), harmed: "worker 1 lost".into(), ..Default::default() }];
        let dumped = vec![
            rt(DumpStatus::Harmed, "refused for good: an earlier one harmed it (worker 1 lost)"),
            RuntimeDump {
                runtime: "io".into(),
                status: DumpStatus::Harmed as i32,
                detail: "a panic".into(),
                elapsed_ns: 0,
            },
        ];
        let h = harms(&known, &dumped);
        assert_eq!(h.len(), 2);
        assert_eq!(
            h[0].warning(),
            "warning: tokio's dump harmed runtime main (worker 1 lost); the program should be restarted"
        );
        assert_eq!(h[1].what, "a panic");
        assert_eq!(h[0].marker(), "tokio dump harmed runtime main: restart");
    }
}
