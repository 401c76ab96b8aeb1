//! Names for the async bodies that release builds leave nameless.
//!
//! Why: with line-tables-only debuginfo (the examples' release profile, and
//! what most services ship), an `async fn` whose body is inlined into its
//! caller's poll is named only `{async_fn#0}` in the debuginfo: a stack of
//! them says where each task waits (file and line) but not in which
//! function. The source says which: the innermost `fn` around that line and
//! column, and the `impl` it is in. The agent reads a file only while it
//! symbolises new addresses (on its blocking thread, never the program's),
//! once per file and batch (one scan gives every function body of the file),
//! and keeps only the names it derives (in the frames' own cache).
//!
//! The scan knows Rust only as far as braces, comments, strings and
//! character literals, `fn NAME` and `impl ... TYPE`: enough to find the
//! function around a line. Where it cannot tell (no source, a macro-made
//! function), the frame keeps the name the debuginfo gave.

use std::collections::HashMap;

/// The outlines of the source files read during one batch of resolutions;
/// `None` when unreadable. Each file is read and scanned once, whatever the
/// number of frames in it.
#[derive(Default)]
pub(crate) struct Sources {
    files: HashMap<String, Option<Outline>>,
}

/// Files larger than this are not read: no source file of a program is.
const MAX_FILE: u64 = 8 << 20;

impl Sources {
    /// A name that says which function the pathless `function` (such as
    /// `{async_fn#0}` or `{async_block#1}<T>`) at `file:line:column` is in:
    /// `handle_client::{async_fn#0}`, `Conn::serve::{async_block#1}<T>`.
    /// `None` when it is not such a name or the source does not tell.
    pub(crate) fn name(&mut self, function: &str, file: &str, line: u32, column: u32) -> Option<String> {
        let body_kind = anonymous_body(function)?;
        if file.is_empty() || line == 0 {
            return None;
        }
        let outline =
            self.files.entry(file.to_string()).or_insert_with(|| read(file).map(|s| Outline::of(&s))).as_ref()?;
        let found = outline.enclosing(line, column.max(1))?;
        // `{async_fn#N}` is an `async fn`'s own body: the function found
        // must be one, or the scan went wrong and the name would mislead.
        if body_kind == Body::AsyncFn && !found.is_async {
            return None;
        }
        Some(match &found.owner {
            Some(owner) => format!("{owner}::{}::{function}", found.name),
            None => format!("{}::{function}", found.name),
        })
    }
}

/// The file's text. Only an absolute path: a relative one would be read
/// against the program's working directory, perhaps another project's file.
fn read(file: &str) -> Option<String> {
    if !std::path::Path::new(file).is_absolute() {
        return None;
    }
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    std::fs::read_to_string(file).ok()
}

#[derive(Debug, PartialEq, Eq)]
enum Body {
    AsyncFn,
    Other,
}

/// What kind of anonymous body a pathless name is, if it is one.
fn anonymous_body(function: &str) -> Option<Body> {
    let bare = function.split('<').next().unwrap_or_default();
    if bare.contains("::") || !bare.starts_with('{') || !bare.ends_with('}') {
        return None;
    }
    if bare.starts_with("{async_fn#") {
        Some(Body::AsyncFn)
    } else if bare.starts_with("{async_block#") || bare.starts_with("{closure#") {
        Some(Body::Other)
    } else {
        None
    }
}

/// A function of a source file: what it is called, and whose method it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Enclosing {
    name: String,
    is_async: bool,
    /// The type of the `impl` block the function is directly in.
    owner: Option<String>,
}

/// A source file's function bodies, from one scan.
struct Outline {
    /// Byte offset of each line's start.
    line_starts: Vec<usize>,
    /// Each body's `{` and `}` offsets (`usize::MAX` if never closed), in
    /// the order the bodies open.
    bodies: Vec<(usize, usize, Enclosing)>,
}

impl Outline {
    fn of(source: &str) -> Outline {
        let mut scan = Scan::default();
        let mut i = 0;
        while i < source.len() {
            i += scan.step(source, i);
        }
        let line_starts = std::iter::once(0).chain(source.match_indices('\n').map(|(at, _)| at + 1)).collect();
        Outline { line_starts, bodies: scan.bodies }
    }

    /// The innermost `fn` whose body holds `line:column` (1-based; columns
    /// in bytes), with its `impl` type when it is a method.
    fn enclosing(&self, line: u32, column: u32) -> Option<&Enclosing> {
        let start = *self.line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let at = start + usize::try_from(column).ok()?.saturating_sub(1);
        // Bodies open in order, so the last one around `at` is the innermost.
        self.bodies.iter().rev().find(|(open, close, _)| *open < at && at <= *close).map(|(_, _, found)| found)
    }
}

#[derive(Debug)]
enum Scope<'a> {
    /// A function body: its index in [`Scan::bodies`].
    Fn(usize),
    Impl(Option<&'a str>),
    Other,
}

/// What the scan has seen so far (words borrowed from the source).
#[derive(Default)]
struct Scan<'a> {
    scopes: Vec<Scope<'a>>,
    /// The function bodies opened so far (see [`Outline::bodies`]).
    bodies: Vec<(usize, usize, Enclosing)>,
    /// `fn NAME` seen, its body not opened yet (`async` before it).
    pending_fn: Option<(&'a str, bool)>,
    /// `impl` seen, its block not opened yet: the words at angle depth 0.
    pending_impl: Option<Vec<&'a str>>,
    angle: u32,
    /// The last three words, for `async fn`, `async unsafe fn` and `fn NAME`.
    last: [&'a str; 3],
}

impl<'a> Scan<'a> {
    /// Takes in what starts at byte `i` of `source` and returns how many
    /// bytes it spans.
    fn step(&mut self, source: &'a str, i: usize) -> usize {
        let rest = &source.as_bytes()[i..];
        match rest[0] {
            b'/' if rest.get(1) == Some(&b'/') => until(rest, b"\n"),
            b'/' if rest.get(1) == Some(&b'*') => block_comment(rest),
            b'"' => string(rest, 1),
            b'r' if raw_string_start(rest).is_some() => raw_string(rest),
            b'b' if rest.get(1) == Some(&b'"') => 1 + string(&rest[1..], 1),
            b'\'' => char_or_lifetime(rest),
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let len = rest.iter().take_while(|c| **c == b'_' || c.is_ascii_alphanumeric()).count();
                // ASCII at both ends: `i..i + len` is on char boundaries.
                self.word(&source[i..i + len]);
                len
            }
            b'{' => {
                let scope = if let Some((name, is_async)) = self.pending_fn.take() {
                    let owner = match self.scopes.last() {
                        Some(Scope::Impl(owner)) => owner.map(String::from),
                        _ => None,
                    };
                    self.bodies.push((i, usize::MAX, Enclosing { name: name.to_string(), is_async, owner }));
                    Scope::Fn(self.bodies.len() - 1)
                } else if let Some(words) = self.pending_impl.take() {
                    Scope::Impl(impl_type(&words))
                } else {
                    Scope::Other
                };
                self.scopes.push(scope);
                self.angle = 0;
                1
            }
            b'}' => {
                if let Some(Scope::Fn(body)) = self.scopes.pop() {
                    self.bodies[body].1 = i;
                }
                1
            }
            b';' => {
                // A declaration without a body (a trait's `fn f();`).
                self.pending_fn = None;
                1
            }
            b'<' if self.pending_impl.is_some() => {
                self.angle += 1;
                1
            }
            b'>' if self.pending_impl.is_some() && rest.get(1) != Some(&b'=') => {
                self.angle = self.angle.saturating_sub(1);
                1
            }
            _ => {
                // Any other character ends a word pair (`fn (` is a type).
                if !rest[0].is_ascii_whitespace() {
                    self.last = ["", "", ""];
                }
                1
            }
        }
    }

    fn word(&mut self, word: &'a str) {
        if self.last[2] == "fn" && self.pending_fn.is_none() {
            let is_async = matches!(self.last[..2], [_, "async"] | ["async", "unsafe"]);
            self.pending_fn = Some((word, is_async));
            self.pending_impl = None;
        } else if word == "impl" && self.pending_fn.is_none() && self.pending_impl.is_none() {
            // (In a signature, `-> impl Trait` is no block.)
            self.pending_impl = Some(Vec::new());
            self.angle = 0;
        } else if let Some(words) = self.pending_impl.as_mut() {
            if self.angle == 0 {
                words.push(word);
            }
        }
        self.last = [self.last[1], self.last[2], word];
    }
}

/// The type an `impl` header names: after `for` when it has one, the last
/// path segment before any `where`.
fn impl_type<'a>(words: &[&'a str]) -> Option<&'a str> {
    let words = match words.iter().position(|w| *w == "where") {
        Some(at) => &words[..at],
        None => words,
    };
    let after_for = match words.iter().rposition(|w| *w == "for") {
        Some(at) => &words[at + 1..],
        None => words,
    };
    after_for.iter().rev().find(|w| !matches!(**w, "dyn" | "mut" | "const" | "unsafe")).copied()
}

/// Bytes up to and including `end` (or to the end).
fn until(rest: &[u8], end: &[u8]) -> usize {
    rest.windows(end.len()).position(|w| w == end).map_or(rest.len(), |at| at + end.len())
}

/// A `/* */` comment, nested ones included.
fn block_comment(rest: &[u8]) -> usize {
    let mut depth = 0;
    let mut i = 0;
    while i < rest.len() {
        if rest[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if rest[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    rest.len()
}

/// A `"..."` literal whose quote is at `rest[from - 1]`, escapes included.
fn string(rest: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < rest.len() {
        match rest[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    rest.len()
}

/// The number of `#` of a raw string starting here (`r"`, `r#"`, `br"`...).
fn raw_string_start(rest: &[u8]) -> Option<usize> {
    let hashes = rest[1..].iter().take_while(|c| **c == b'#').count();
    (rest.get(1 + hashes) == Some(&b'"')).then_some(hashes)
}

fn raw_string(rest: &[u8]) -> usize {
    let hashes = raw_string_start(rest).unwrap_or(0);
    let mut end = vec![b'"'];
    end.extend(std::iter::repeat_n(b'#', hashes));
    let open = 2 + hashes;
    open + until(&rest[open..], &end)
}

/// `'x'`, `'\n'`, `'\u{7b}'` or a lifetime (`'a`, which ends at its name).
fn char_or_lifetime(rest: &[u8]) -> usize {
    if rest.get(1) == Some(&b'\\') {
        // The escaped character itself may be a quote (`'\''`).
        return (3 + until(rest.get(3..).unwrap_or_default(), b"'")).min(rest.len());
    }
    // A character literal closes after one character (of up to 4 bytes).
    let width = match rest.get(1) {
        Some(c) if *c < 0x80 => 1,
        Some(c) if *c >= 0xF0 => 4,
        Some(c) if *c >= 0xE0 => 3,
        Some(_) => 2,
        None => return 1,
    };
    if rest.get(1 + width) == Some(&b'\'') {
        2 + width
    } else {
        1 // a lifetime: its name is read as a word next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r##"
//! A service.
use std::time::Duration;

/// Not a body: { braces in a doc comment }
async fn handle_client(stream: Conn) {
    let greeting = "}{ not code";
    let brace = '{';
    let quote = '\'';
    stream.read().await;
}

struct Conn;

impl<'a, T: Send> fmt::Display for Wrapper<'a, T> where T: Clone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, r#"{"#)
    }
}

impl Conn {
    pub async fn serve(&self) -> impl Sized {
        let job = tokio::spawn(async move {
            /* nested /* comment { */ still */
            tick().await;
        });
        fn helper(f: fn(u32) -> u32) {}
        job.await
    }

    fn plain(&self) {}
}
"##;

    fn at(line: u32, column: u32) -> Option<Enclosing> {
        Outline::of(SOURCE).enclosing(line, column).cloned()
    }

    fn found(name: &str, is_async: bool, owner: Option<&str>) -> Option<Enclosing> {
        Some(Enclosing { name: name.into(), is_async, owner: owner.map(Into::into) })
    }

    #[test]
    fn finds_the_function_around_a_line() {
        // Lines count from the raw string's first line break.
        assert_eq!(at(10, 5), found("handle_client", true, None));
        assert_eq!(at(17, 9), found("fmt", false, Some("Wrapper")));
        assert_eq!(at(25, 13), found("serve", true, Some("Conn")), "inside the async block, serve is around it");
        assert_eq!(at(28, 9), found("serve", true, Some("Conn")), "after the nested fn closed");
        assert_eq!(at(13, 1), None, "between functions");
        assert_eq!(at(4, 1), None);
    }

    #[test]
    fn names_only_anonymous_bodies_and_only_when_the_source_agrees() {
        let dir = std::env::temp_dir().join(format!("taskscope-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("service.rs");
        std::fs::write(&file, SOURCE).expect("write source");
        let file = file.to_string_lossy().into_owned();
        let mut sources = Sources::default();
        assert_eq!(sources.name("{async_fn#0}", &file, 10, 5).as_deref(), Some("handle_client::{async_fn#0}"));
        assert_eq!(
            sources.name("{async_block#0}<T>", &file, 25, 13).as_deref(),
            Some("Conn::serve::{async_block#0}<T>")
        );
        // `fmt` is no async fn: its `{async_fn#0}` would be a wrong guess.
        assert_eq!(sources.name("{async_fn#0}", &file, 17, 9), None);
        assert_eq!(sources.name("service::handle_client::{async_fn#0}", &file, 10, 5), None, "already named");
        assert_eq!(sources.name("poll_fn", &file, 10, 5), None, "not an anonymous body");
        assert_eq!(sources.name("{async_fn#0}", "/no/such/file.rs", 10, 5), None);
        assert_eq!(sources.name("{async_fn#0}", "Cargo.toml", 10, 5), None, "a relative path is not read");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn qualifiers_between_async_and_fn_keep_it_async() {
        let outline =
            Outline::of("pub(crate) async unsafe fn raw() {\n    x.await;\n}\nunsafe fn sync() {\n    y;\n}\n");
        assert_eq!(outline.enclosing(2, 5).cloned(), found("raw", true, None));
        assert_eq!(outline.enclosing(5, 1).cloned(), found("sync", false, None));
    }

    #[test]
    fn impl_headers_name_their_type() {
        let words = |s: &'static str| s.split_whitespace().collect::<Vec<_>>();
        assert_eq!(impl_type(&words("fmt Display for Wrapper where T")), Some("Wrapper"));
        assert_eq!(impl_type(&words("Conn")), Some("Conn"));
        assert_eq!(impl_type(&words("Future for dyn Job")), Some("Job"));
    }
}
