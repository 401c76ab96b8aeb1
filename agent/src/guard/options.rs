//! What a guard ignores and how long it re-checks: goleak's `Ignore*`
//! options, plus the leak verdict goleak has no equivalent of.

use std::time::Duration;

use taskscope_proto::{Stack, Task};

/// Options of a [`Guard`](super::Guard), [`verify_none_with`](super::verify_none_with)
/// and `#[taskscope_agent::test(...)]`.
///
/// ```
/// use taskscope_agent::guard::Options;
/// let options = Options::default()
///     .ignore_location("src/accept.rs")
///     .ignore_function("my_service::ticker")
///     .retry_for(std::time::Duration::from_secs(1));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(super) include_existing: bool,
    pub(super) leaked_only: bool,
    pub(super) retry: Duration,
    locations: Vec<String>,
    top_functions: Vec<String>,
    functions: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            include_existing: false,
            leaked_only: false,
            retry: super::DEFAULT_RETRY,
            locations: Vec::new(),
            top_functions: Vec::new(),
            functions: Vec::new(),
        }
    }
}

impl Options {
    /// Ignores tasks spawned at a location containing `pattern`
    /// (`file:line:column`). An empty pattern ignores nothing, as with each
    /// `ignore_*` option (so that one read from an unset variable cannot
    /// turn the guard off).
    pub fn ignore_location(mut self, pattern: impl Into<String>) -> Options {
        push_pattern(&mut self.locations, pattern.into());
        self
    }

    /// Ignores tasks whose innermost frame (where the task waits, e.g.
    /// `tokio::sync::notify::Notified::poll`) is in `function`: the
    /// function itself or anything nested in it (`function::{{closure}}`).
    /// goleak's `IgnoreTopFunction`. Needs the task's stack, so it applies
    /// only to tasks whose stack is captured (see [the module](super)).
    pub fn ignore_top_function(mut self, function: impl Into<String>) -> Options {
        push_pattern(&mut self.top_functions, function.into());
        self
    }

    /// Ignores tasks with `function` (or anything nested in it) in any
    /// frame of their stack, e.g. an accept loop's `my_crate::serve`.
    /// Needs the task's stack, as [`Options::ignore_top_function`] does.
    pub fn ignore_function(mut self, function: impl Into<String>) -> Options {
        push_pattern(&mut self.functions, function.into());
        self
    }

    /// Fails only on tasks the agent calls leaked (full mode).
    pub fn leaked_only(mut self) -> Options {
        self.leaked_only = true;
        self
    }

    /// Counts the tasks that were alive when the guard was taken too.
    pub fn include_existing(mut self) -> Options {
        self.include_existing = true;
        self
    }

    /// How long a failing check keeps re-checking; zero checks once.
    pub fn retry_for(mut self, retry: Duration) -> Options {
        self.retry = retry;
        self
    }

    /// Whether the checks need stacks to decide.
    pub(super) fn needs_stacks(&self) -> bool {
        !self.top_functions.is_empty() || !self.functions.is_empty()
    }

    pub(super) fn ignores_location(&self, task: &Task) -> bool {
        let Some(location) = task.location.as_ref() else { return false };
        let text = format!("{}:{}:{}", location.file, location.line, location.column);
        self.locations.iter().any(|pattern| text.contains(pattern.as_str()))
    }

    pub(super) fn ignores_stack(&self, stack: Option<&Stack>) -> bool {
        let Some(stack) = stack else { return false };
        // Frames go outermost first (see the protocol's `Backtrace`).
        let top = stack.backtraces.iter().filter_map(|b| b.frames.last());
        let any = stack.backtraces.iter().flat_map(|b| b.frames.iter());
        top.clone().any(|frame| self.top_functions.iter().any(|f| within(&frame.function, f)))
            || any.clone().any(|frame| self.functions.iter().any(|f| within(&frame.function, f)))
    }
}

/// Whether frame function `name` is `function` or nested in it.
fn within(name: &str, function: &str) -> bool {
    !function.is_empty() && name.strip_prefix(function).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Adds an `ignore_*` pattern, unless it is empty (see [`Options::ignore_location`]).
fn push_pattern(patterns: &mut Vec<String>, pattern: String) {
    if !pattern.trim().is_empty() {
        patterns.push(pattern);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_proto::{Backtrace, Frame, Location};

    fn frame(function: &str) -> Frame {
        Frame { function: function.into(), ..Frame::default() }
    }

    fn stack(functions: &[&str]) -> Stack {
        Stack { id: 1, backtraces: vec![Backtrace { frames: functions.iter().map(|f| frame(f)).collect() }] }
    }

    #[test]
    fn functions_match_themselves_and_what_they_nest_not_namesakes() {
        assert!(within("app::serve", "app::serve"));
        assert!(within("app::serve::{{closure}}", "app::serve"));
        assert!(!within("app::server::{{closure}}", "app::serve"));
        assert!(!within("app::serve", ""));
    }

    #[test]
    fn top_function_is_the_innermost_frame_only() {
        let s = stack(&["app::wait::{{closure}}", "tokio::sync::notify::Notified::poll"]);
        let top = Options::default().ignore_top_function("tokio::sync::notify::Notified::poll");
        assert!(top.ignores_stack(Some(&s)));
        let not_top = Options::default().ignore_top_function("app::wait");
        assert!(!not_top.ignores_stack(Some(&s)));
        assert!(Options::default().ignore_function("app::wait").ignores_stack(Some(&s)));
        assert!(!Options::default().ignore_function("app::wait").ignores_stack(None), "no stack, nothing to match");
    }

    #[test]
    fn locations_match_by_substring() {
        let task =
            Task { location: Some(Location { file: "src/accept.rs".into(), line: 40, column: 5 }), ..Task::default() };
        assert!(Options::default().ignore_location("src/accept.rs:40").ignores_location(&task));
        assert!(!Options::default().ignore_location("src/other.rs").ignores_location(&task));
        assert!(!Options::default().ignore_location("x").ignores_location(&Task::default()));
    }
}
