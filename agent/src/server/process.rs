//! Facts about the inspected process for `GetInfo`: its name, command line,
//! PID namespace, uptime, and the tokio version it was built with.
//!
//! Read from `/proc/self` where available (it sees the real executable and
//! argv even after the program rewrote its own arguments), else from the
//! standard library.

use std::sync::OnceLock;

/// The tokio version in the build's `Cargo.lock`, found by `build.rs`;
/// `"unknown"` when the lock file was out of reach (e.g. a registry build).
pub(super) const TOKIO_VERSION: &str = env!("TASKSCOPE_TOKIO_VERSION");

/// What does not change while the process runs.
pub(super) struct Facts {
    /// The executable's file name.
    pub name: String,
    /// argv, argv\[0\] first.
    pub cmdline: Vec<String>,
    /// Inode of its PID namespace; 0 when unknown.
    pub pid_namespace: u64,
}

/// Read once, on first use.
pub(super) fn facts() -> &'static Facts {
    static FACTS: OnceLock<Facts> = OnceLock::new();
    FACTS.get_or_init(|| {
        let cmdline = cmdline();
        let pid_namespace = taskscope_proto::discovery::pid_namespace(None).unwrap_or(0);
        Facts { name: name(&cmdline), cmdline, pid_namespace }
    })
}

fn cmdline() -> Vec<String> {
    if let Ok(raw) = std::fs::read("/proc/self/cmdline") {
        let args: Vec<String> = raw.split(|&b| b == 0).map(|arg| String::from_utf8_lossy(arg).into_owned()).collect();
        // The file ends with a NUL, which leaves one empty piece at the end.
        let args = match args.split_last() {
            Some((last, rest)) if last.is_empty() => rest.to_vec(),
            _ => args,
        };
        if !args.is_empty() {
            return args;
        }
    }
    std::env::args_os().map(|arg| arg.to_string_lossy().into_owned()).collect()
}

fn name(cmdline: &[String]) -> String {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let name = exe.file_name()?.to_string_lossy().into_owned();
        Some(name.trim_end_matches(" (deleted)").to_owned())
    });
    let from_argv = || {
        let arg0 = cmdline.first()?;
        let name = std::path::Path::new(arg0).file_name()?.to_string_lossy().into_owned();
        Some(name)
    };
    let from_comm = || std::fs::read_to_string("/proc/self/comm").ok().map(|c| c.trim().to_owned());
    from_exe.or_else(from_argv).or_else(from_comm).filter(|n| !n.is_empty()).unwrap_or_else(|| "unknown".to_owned())
}

/// How long the process has been running, from the kernel's records.
#[cfg(target_os = "linux")]
pub(super) fn uptime_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let since_boot = std::fs::read_to_string("/proc/uptime").ok()?;
    // SAFETY: sysconf has no preconditions; it returns -1 on error.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    uptime_from(&stat, &since_boot, ticks_per_second)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn uptime_ns() -> Option<u64> {
    None
}

/// `stat` is `/proc/self/stat`, `since_boot` is `/proc/uptime`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn uptime_from(stat: &str, since_boot: &str, ticks_per_second: i64) -> Option<u64> {
    if ticks_per_second <= 0 {
        return None;
    }
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses; the fields after its last ')' start at field 3, so the
    // start time (field 22) is the 20th of them.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start_ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let now_secs: f64 = since_boot.split_whitespace().next()?.parse().ok()?;
    let start_secs = start_ticks as f64 / ticks_per_second as f64;
    let up_secs = now_secs - start_secs;
    (up_secs >= 0.0).then_some((up_secs * 1e9) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_from_proc_files() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 4 0 \
                    1000 123456789 300 18446744073709551615";
        assert_eq!(uptime_from(stat, "15.50 40.00\n", 100), Some(5_500_000_000));
        assert_eq!(uptime_from(stat, "garbage", 100), None);
        assert_eq!(uptime_from(stat, "15.50 40.00", -1), None);
        assert_eq!(uptime_from("no parens here", "15.50 1", 100), None);
    }

    #[test]
    fn facts_of_this_process() {
        let facts = facts();
        assert!(!facts.name.is_empty());
        assert!(!facts.cmdline.is_empty());
        if cfg!(target_os = "linux") {
            assert!(uptime_ns().is_some_and(|ns| ns > 0));
        }
        assert!(!TOKIO_VERSION.is_empty());
    }
}
