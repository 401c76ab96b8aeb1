//! Text that comes from the inspected program (task, runtime and process
//! names, paths, function names) goes through [`shown`] on its way into a
//! text report: a task named `"\x1b[2J"` must not clear the reader's
//! terminal, nor a name with a newline forge a line of the report.

use std::borrow::Cow;

/// The most characters of one piece of the program's text a report shows.
pub const MAX_SHOWN: usize = 300;

/// The most characters of an explanation from the agent a report shows:
/// its reasons (why tokio's dump is off, what harmed a runtime) run to a few
/// hundred characters and end with what to do, so they are cut later.
pub const MAX_EXPLAINED: usize = 2000;

/// [`shown`] for the agent's explanations, which may quote the program's
/// text (a runtime's name) but are longer: cut at [`MAX_EXPLAINED`].
pub fn explained(text: &str) -> Cow<'_, str> {
    shown_up_to(text, MAX_EXPLAINED)
}

/// `text` fit for one line of a terminal report: control characters
/// (escape, newline, carriage return, ...) written as escapes (`\u{1b}`,
/// `\n`), and anything past [`MAX_SHOWN`] characters cut, with `…`.
pub fn shown(text: &str) -> Cow<'_, str> {
    shown_up_to(text, MAX_SHOWN)
}

fn shown_up_to(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max && !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_text_cannot_drive_the_terminal() {
        assert!(matches!(shown("worker-1 ✓"), Cow::Borrowed("worker-1 ✓")));
        assert_eq!(shown("\x1b[2J\x1b[31mred"), "\\u{1b}[2J\\u{1b}[31mred");
        assert_eq!(shown("line1\nfake: taskscope: error\r"), "line1\\nfake: taskscope: error\\r");
        let long = "é".repeat(1_000_000);
        let cut = shown(&long);
        assert_eq!(cut.chars().count(), MAX_SHOWN + 1);
        assert!(cut.ends_with('…'));
        let reason = "x".repeat(400);
        assert_eq!(explained(&reason), reason, "the agent's reasons are longer");
        assert_eq!(explained("a\nb"), "a\\nb");
    }
}
