//! Writing a command's report to stdout.
//!
//! Reports are built as strings (so rendering is testable) and written in
//! one go. A closed pipe (`taskscope stack 1 | head`) is not an error: the
//! reader has what it wanted, so we stop quietly instead of panicking the way
//! `println!` does.
//!
//! Text that comes from the inspected program goes through [`shown`]
//! (see [`taskscope_report::text`]) on its way into a report.

use std::io::Write;

pub use taskscope_report::text::shown;

/// Writes `text` to stdout; a broken pipe counts as success.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!("cannot write to stdout: {e}")),
        _ => Ok(()),
    }
}
