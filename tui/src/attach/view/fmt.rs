//! Numbers and durations as the screens write them. Durations use the
//! format shared by all commands (`crate::duration`: "850ms", "5m12s").

/// A duration in nanoseconds, as every taskscope command writes it.
pub fn duration(ns: u64) -> String {
    crate::duration::format_ns(ns)
}

/// `duration` of an optional value, "-" for none.
pub fn opt_duration(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), duration)
}

/// A count with thin grouping: 100000 → "100,000".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A signed change: "+12", "-3", "0".
pub fn delta(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

/// `text` cut to `width` characters by dropping its start, which for a
/// source location keeps the file name and line ("…/src/server.rs:40:5").
pub fn tail(text: &str, width: usize) -> std::borrow::Cow<'_, str> {
    let len = text.chars().count();
    if len <= width {
        return text.into();
    }
    if width == 0 {
        return "".into();
    }
    let skip = len - (width - 1);
    format!("…{}", text.chars().skip(skip).collect::<String>()).into()
}

/// `text` broken at spaces into lines of at most `width` characters (a
/// word longer than that gets a line of its own), so that a warning is read
/// to its end instead of being cut at the screen's edge. Never empty.
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(10);
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    lines
}

/// The sort column shown as a hint, e.g. "PARKED ↓" (↓: largest first).
pub fn sort_hint(column: crate::attach::state::SortColumn, descending: bool) -> String {
    format!("{} {}", column.title(), sort_arrow(descending))
}

/// ↓ for largest first, ↑ for smallest first, in every column.
pub fn sort_arrow(descending: bool) -> &'static str {
    if descending {
        "↓"
    } else {
        "↑"
    }
}

/// Block characters of a text sparkline, lowest to highest.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A one-line sparkline of `buckets` scaled to their maximum; missing
/// buckets are blank.
pub fn sparkline(buckets: &[Option<u64>]) -> String {
    let max = buckets.iter().flatten().copied().max().unwrap_or(0);
    buckets
        .iter()
        .map(|b| match b {
            None => ' ',
            Some(_) if max == 0 => BARS[0],
            Some(v) => BARS[((v * 7).div_ceil(max) as usize).min(7)],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(opt_duration(Some(312_000_000_000)), "5m12s");
        assert_eq!(opt_duration(None), "-");
        assert_eq!(delta(3), "+3");
        assert_eq!(count(100_000), "100,000");
        assert_eq!(count(999), "999");
        assert_eq!(tail("src/server.rs:40:5", 10), "…r.rs:40:5");
        assert_eq!(tail("a.rs:1:1", 10), "a.rs:1:1");
        assert_eq!(
            wrap_words("process 7 is stopped: kill -CONT 7 resumes it", 16),
            ["process 7 is", "stopped: kill", "-CONT 7 resumes", "it"]
        );
        assert_eq!(wrap_words("", 20), [""]);
        assert_eq!(sparkline(&[None, Some(0), Some(4), Some(8)]), " ▁▅█");
    }
}
