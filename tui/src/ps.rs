//! `taskscope ps`: the local processes that run an agent.
//!
//! Like `gops` without arguments: every `<pid>.sock` in the discovery
//! directory is one candidate. All are asked `GetInfo` at once with a short
//! limit, so one wedged agent costs a second, not a minute. A process that
//! does not answer is listed with its error rather than dropped: a silent
//! omission would read as "that program has no agent". Sockets left by dead
//! processes are removed, and each removal is reported on stderr.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use taskscope_proto::discovery;

use crate::client::{self, ConnectError, Timeouts};
use crate::target::Target;
use taskscope_report::provenance::{self, Harm};

/// Options of `taskscope ps`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,

    /// How long to wait for each agent (they are asked concurrently).
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = crate::duration::parse_wait)]
    timeout: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Args { json: false, timeout: Duration::from_secs(2) }
    }
}

/// One line of the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Process id.
    pub pid: u32,
    /// The agent runs in another PID namespace than this tool (a container
    /// sharing the socket directory): `pid` is its number there, and this
    /// namespace's process with that number is another one.
    pub other_pid_namespace: bool,
    /// Process name, from the agent or else from `/proc`.
    pub name: String,
    /// Socket path.
    pub address: String,
    /// Live tasks (running + scheduled + idle), when the agent answered.
    pub live: Option<u64>,
    /// Idle tasks.
    pub idle: Option<u64>,
    /// Leaked tasks (a subset of idle).
    pub leaked: Option<u64>,
    /// Process uptime in nanoseconds.
    pub uptime_ns: Option<u64>,
    /// Why the agent could not be queried.
    pub error: Option<String>,
    /// Runtimes tokio's dump harmed (the program should be restarted).
    pub harmed: Vec<Harm>,
}

/// Runs `taskscope ps`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = discovery::socket_dir();
    let sockets = list_sockets(&dir)?;
    let timeouts = Timeouts { connect: args.timeout, request: args.timeout };
    let probes = sockets.into_iter().map(|(pid, socket)| async move {
        let target = Target::Pid { pid, socket: socket.clone() };
        (pid, socket, client::connect_with(&target, timeouts).await)
    });
    let mut rows = Vec::new();
    for (pid, socket, result) in futures::future::join_all(probes).await {
        match result {
            Err(stale @ ConnectError::StaleSocket { .. }) => eprintln!("taskscope: {stale}"),
            Err(ConnectError::NotRunning { .. }) => {} // vanished while we looked
            result => rows.push(row(pid, &socket, result)),
        }
    }
    if args.json {
        let json = serde_json::to_string_pretty(&rows).context("cannot encode the listing as JSON")?;
        return crate::output::print(&(json + "\n"));
    }
    if rows.is_empty() {
        eprintln!("taskscope: no process with a taskscope agent (no sockets in {})", dir.display());
        return Ok(());
    }
    crate::output::print(&render(&rows))
}

/// `(pid, path)` of every `<pid>.sock` in `dir`, by PID; none if `dir` is
/// missing. `attach` looks for the next process of a program here too.
pub fn list_sockets(dir: &Path) -> anyhow::Result<Vec<(u32, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::anyhow!("cannot list the socket directory {}: {e}", dir.display())),
    };
    let mut sockets: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter_map(|path| Some((discovery::pid_of_socket(&path)?, path)))
        .collect();
    sockets.sort();
    Ok(sockets)
}

fn row(pid: u32, socket: &Path, result: Result<client::Connected, ConnectError>) -> Row {
    let address = socket.display().to_string();
    match result {
        Ok(conn) => {
            let counts = conn.info.counts.unwrap_or_default();
            let harmed = provenance::harmed(&conn.info);
            let theirs = conn.info.pid_namespace;
            Row {
                pid,
                other_pid_namespace: theirs != 0 && discovery::pid_namespace(None).is_some_and(|ours| ours != theirs),
                name: conn.info.process_name,
                address,
                live: Some(counts.running + counts.scheduled + counts.idle),
                idle: Some(counts.idle),
                leaked: Some(counts.leaked),
                uptime_ns: Some(conn.info.uptime_ns),
                error: None,
                harmed,
            }
        }
        Err(err) => Row {
            pid,
            other_pid_namespace: false,
            name: crate::process::name(pid).unwrap_or_else(|| "?".to_string()),
            address,
            live: None,
            idle: None,
            leaked: None,
            uptime_ns: None,
            error: Some(err.to_string()),
            harmed: Vec::new(),
        },
    }
}

/// The table: aligned columns, then the error (if any) at the end of its row.
/// A PID is marked `*` when in another PID namespace and `!` when tokio's
/// dump harmed one of its runtimes, each mark with its footnote.
pub fn render(rows: &[Row]) -> String {
    let dash = || "-".to_string();
    let num = |n: Option<u64>| n.map_or_else(dash, |n| n.to_string());
    let mut cells: Vec<[String; 7]> =
        vec![["PID", "NAME", "LIVE", "IDLE", "LEAKED", "UPTIME", "ADDRESS"].map(String::from)];
    for r in rows {
        cells.push([
            format!(
                "{}{}{}",
                r.pid,
                if r.other_pid_namespace { "*" } else { "" },
                if r.harmed.is_empty() { "" } else { "!" }
            ),
            crate::output::shown(&r.name).into_owned(),
            num(r.live),
            num(r.idle),
            num(r.leaked),
            r.uptime_ns.map_or_else(dash, crate::duration::format_ns),
            r.address.clone(),
        ]);
    }
    let mut widths = [0usize; 7];
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, line) in cells.iter().enumerate() {
        let mut text = String::new();
        for (col, cell) in line.iter().enumerate() {
            let pad = widths[col] - cell.chars().count();
            // Numbers right-aligned, text left-aligned; no padding after the last column.
            match col {
                0 | 2..=5 => text.push_str(&format!("{}{cell}", " ".repeat(pad))),
                6 => text.push_str(cell),
                _ => text.push_str(&format!("{cell}{}", " ".repeat(pad))),
            }
            if col < 6 {
                text.push_str("  ");
            }
        }
        if let Some(err) = i.checked_sub(1).and_then(|r| rows[r].error.as_ref()) {
            text.push_str(&format!("  error: {err}"));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    if rows.iter().any(|r| r.other_pid_namespace) {
        out.push_str(
            "* in another PID namespace (e.g. a container sharing the socket directory): its PID there, \
             not this namespace's process of that number; `taskscope stack` reaches it by that PID all the same\n",
        );
    }
    if rows.iter().any(|r| !r.harmed.is_empty()) {
        out.push_str(provenance::HARM_FOOTNOTE);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_shows_errors() {
        let rows = vec![
            Row {
                pid: 1234,
                other_pid_namespace: false,
                name: "done_signal".into(),
                address: "/run/t/1234.sock".into(),
                live: Some(1003),
                idle: Some(1002),
                leaked: Some(1000),
                uptime_ns: Some(312_000_000_000),
                error: None,
                harmed: Vec::new(),
            },
            Row {
                pid: 77,
                other_pid_namespace: false,
                name: "web".into(),
                address: "/run/t/77.sock".into(),
                live: None,
                idle: None,
                leaked: None,
                uptime_ns: None,
                error: Some("no answer from process 77 (web) within 2s".into()),
                harmed: Vec::new(),
            },
        ];
        let expected = "\
\x20PID  NAME         LIVE  IDLE  LEAKED  UPTIME  ADDRESS
1234  done_signal  1003  1002    1000   5m12s  /run/t/1234.sock
  77  web             -     -       -       -  /run/t/77.sock  error: no answer from process 77 (web) within 2s
";
        assert_eq!(render(&rows), expected);
    }

    #[test]
    fn pids_of_other_namespaces_are_starred() {
        let row = Row {
            pid: 1,
            other_pid_namespace: true,
            name: "svc".into(),
            address: "/run/t/1.sock".into(),
            live: Some(3),
            idle: Some(2),
            leaked: Some(0),
            uptime_ns: Some(2_000_000_000),
            error: None,
            harmed: Vec::new(),
        };
        let out = render(&[row]);
        assert!(out.contains("\n 1*  svc"), "{out}");
        assert!(out.ends_with("`taskscope stack` reaches it by that PID all the same\n"), "{out}");
    }

    #[test]
    fn a_process_whose_runtime_tokios_dump_harmed_is_marked() {
        let row = |pid, harmed: Vec<Harm>| Row {
            pid,
            other_pid_namespace: pid == 9,
            name: "svc".into(),
            address: format!("/run/t/{pid}.sock"),
            live: Some(3),
            idle: Some(2),
            leaked: Some(0),
            uptime_ns: Some(2_000_000_000),
            error: None,
            harmed,
        };
        let harm = Harm { runtime: "main".into(), what: "worker 1 lost".into() };
        let out = render(&[row(12, vec![]), row(7025, vec![harm.clone()]), row(9, vec![harm.clone()])]);
        let expected = "\
\x20 PID  NAME  LIVE  IDLE  LEAKED  UPTIME  ADDRESS
   12  svc      3     2       0      2s  /run/t/12.sock
7025!  svc      3     2       0      2s  /run/t/7025.sock
  9*!  svc      3     2       0      2s  /run/t/9.sock
";
        assert!(out.starts_with(expected), "{out}");
        assert!(out.ends_with(
            "\n! tokio's dump harmed a runtime of this program: restart it (`taskscope stack <pid>` says what happened)\n"
        ), "{out}");
        let json = serde_json::to_value(row(7025, vec![harm])).expect("json");
        assert_eq!(json["harmed"][0]["runtime"], "main");
        assert_eq!(json["harmed"][0]["what"], "worker 1 lost");
        assert!(!render(&[row(12, vec![])]).contains('!'));
    }

    #[test]
    fn only_pid_sockets_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["12.sock", "3.sock", "x.sock", "12.sock.tmp", "notes"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let pids: Vec<u32> = list_sockets(dir.path()).unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(pids, vec![3, 12]);
        assert!(list_sockets(&dir.path().join("missing")).unwrap().is_empty());
    }
}
