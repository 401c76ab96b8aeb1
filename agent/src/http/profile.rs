//! `/debug/pprof/tasks` (and `/debug/pprof/goroutine`): the grouped task
//! stacks as the gzipped `profile.proto` `taskscope stack --pprof` writes
//! (the same code, `taskscope_report::pprof`), for profilers that pull
//! pprof endpoints (Pyroscope, Grafana Alloy, Parca, `go tool pprof URL`).
//!
//! The dump is the one the `Dump` RPC takes: the safe capture of the
//! wrapped tasks, and tokio's own dump only where its policy allows it. A
//! task with no stack is still counted, under one frame `[no stack] spawned
//! at FILE:LINE:COL`, and the profile's comments say where the stacks came
//! from and why some are missing (tokio's dump off, a runtime that did not
//! answer in time). A blocked runtime costs the answer its dump timeout,
//! no more: nothing here waits on the program otherwise.
//!
//! As Go's handler does, `?debug=1` answers text instead: the grouped report
//! `taskscope stack` prints, and `?debug=2` every task on its own
//! (`stack --all`).

use std::time::Duration;

use bytes::Bytes;
use taskscope_proto as proto;
use taskscope_report::dump::Dump;
use taskscope_report::filter::Filter;
use taskscope_report::render::{self, View};
use taskscope_report::suspect::{Rules, Sort};

use super::{Answer, Failure};
use crate::state::{StateHandle, Summary};
use crate::Config;

/// What `?debug=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Debug {
    /// `0` or absent: the gzipped profile.
    Proto,
    /// `1`: the grouped text report.
    Groups,
    /// `2`: every task.
    Tasks,
}

impl Debug {
    /// From the query string; `None` for a `debug` value other than 0, 1, 2.
    /// Other parameters (`seconds`, which asks Go for a delta profile) are
    /// ignored: a task profile is a snapshot.
    pub(crate) fn from_query(query: Option<&str>) -> Option<Debug> {
        let value = query
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .filter(|(key, _)| *key == "debug")
            .map(|(_, value)| value)
            .next_back();
        match value {
            None | Some("0") | Some("") => Some(Debug::Proto),
            Some("1") => Some(Debug::Groups),
            Some("2") => Some(Debug::Tasks),
            Some(_) => None,
        }
    }
}

/// The profile (or text report) of every live task now.
pub(crate) async fn answer(config: &Config, state: &StateHandle, debug: Debug) -> Result<Answer, Failure> {
    let timeout = config.dump_timeout;
    let dump = take(state, timeout).await?;
    let info = crate::server::process_info(&Summary {
        now_ns: dump.header.now_ns,
        counts: dump.header.counts.unwrap_or_default(),
        dropped_events: dump.header.dropped_events,
    });
    let view = |all| View { all, full: false, timeout, sort: Sort::Suspects, rules: Rules::default() };
    let text = |all| Answer {
        body: Bytes::from(render::report(&info, &dump, &Filter::default(), view(all))),
        content_type: "text/plain; charset=utf-8",
        gzipped: false,
    };
    Ok(match debug {
        Debug::Groups => text(false),
        Debug::Tasks => text(true),
        Debug::Proto => {
            let program = info.cmdline.first().cloned().unwrap_or_else(|| info.process_name.clone());
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let (bytes, _) = taskscope_report::pprof::profile_noted(
                &dump,
                &program,
                wall,
                &taskscope_report::pprof::notes(&dump, timeout),
            );
            // The profile is a gzipped file, not a gzipped transfer.
            Answer { body: Bytes::from(bytes), content_type: "application/octet-stream", gzipped: false }
        }
    })
}

/// The dump, as the `Dump` RPC takes it: the records read just before the
/// stacks, and again after a runtime timed out (so that times are as of the
/// answer).
async fn take(state: &StateHandle, timeout: Duration) -> Result<Dump, Failure> {
    let gone = |e: crate::state::StateGone| Failure::unavailable(e.to_string());
    let snapshot = state.snapshot().await.map_err(gone)?;
    let capture = super::stats::timed(crate::dump::capture(timeout)).await;
    let timed_out = capture.runtimes.iter().any(|rt| rt.status == proto::DumpStatus::TimedOut as i32);
    let snapshot = if timed_out { state.snapshot().await.map_err(gone)? } else { snapshot };
    let chunks = crate::server::chunks::DumpChunks::new(snapshot, capture, &[]);
    Dump::from_chunks(chunks).map_err(|why| Failure::internal(format!("cannot assemble the dump: {why}")))
}
