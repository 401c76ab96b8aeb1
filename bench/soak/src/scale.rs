//! The scale mode: how a capture's time grows with the number of parked
//! wrapped tasks, in an idle program (2 workers), under the full mode
//! (`init()`) and the lean one (`build_runtime`). Each (mode, size) is a
//! fresh child; every capture must ask and hear from every task.

use std::path::Path;
use std::time::Duration;

use crate::child::{Agent, Spec};
use crate::client::{self, Capture};
use crate::load::{Kind, Shape};
use crate::process::{Finished, Proc};
use crate::soak::Sample;

/// One (mode, size).
#[derive(Debug)]
pub struct Row {
    pub agent: Agent,
    pub tasks: usize,
    pub samples: Vec<Sample>,
    /// Captures where every task answered.
    pub all_answered: usize,
    pub failed: Vec<String>,
    pub wedged: usize,
    pub anomalies: Vec<String>,
    pub finished: Finished,
    pub error: Option<String>,
}

impl Row {
    pub fn lost(&self) -> u64 {
        self.finished.lost().unwrap_or(self.tasks as u64)
    }

    pub fn ok(&self) -> bool {
        self.error.is_none() && self.wedged == 0 && self.failed.is_empty() && self.lost() == 0 && self.finished.clean()
    }
}

/// Runs `captures` Dumps against a fresh idle child holding `tasks` parked
/// wrapped tasks.
pub fn run(exe: &Path, dir: &Path, agent: Agent, tasks: usize, captures: usize, timeout_ms: u32) -> Row {
    let mut row = Row {
        agent,
        tasks,
        samples: Vec::new(),
        all_answered: 0,
        failed: Vec::new(),
        wedged: 0,
        anomalies: Vec::new(),
        finished: Finished::default(),
        error: None,
    };
    let spec = Spec { agent, workers: 2, shape: Shape::idle(tasks), socket_dir: dir.to_path_buf() };
    let proc = match Proc::start(exe, &spec) {
        Ok(proc) => proc,
        Err(why) => {
            row.error = Some(why);
            return row;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            row.error = Some(format!("client runtime: {e}"));
            return row;
        }
    };
    let mut client = match rt.block_on(client::connect(&proc.socket)) {
        Ok(client) => client,
        Err(why) => {
            row.error = Some(why);
            return row;
        }
    };
    for i in 1..=captures {
        match rt.block_on(client::dump(&mut client, timeout_ms, None)) {
            client::Outcome::Answered(capture) => check(&mut row, i, &capture),
            client::Outcome::Failed(why) => row.failed.push(format!("capture {i}: {why}")),
            client::Outcome::Cancelled => row.failed.push(format!("capture {i}: cancelled")),
            client::Outcome::Wedged => {
                row.wedged += 1;
                break;
            }
        }
    }
    drop(client);
    row.finished = proc.finish();
    row
}

fn check(row: &mut Row, i: usize, capture: &Capture) {
    let safe = &capture.safe;
    row.samples.push(Sample {
        rpc: capture.rpc,
        safe: Duration::from_nanos(safe.elapsed_ns),
        wanted: safe.wanted,
        answered: safe.answered,
    });
    if safe.answered == safe.wanted {
        row.all_answered += 1;
    }
    let parked = capture.kinds.get(&Kind::Parked).copied().unwrap_or_default();
    let mut wrong = Vec::new();
    if safe.wanted as usize != row.tasks {
        wrong.push(format!("{} wanted of {} wrapped tasks", safe.wanted, row.tasks));
    }
    if parked.captured as usize != row.tasks {
        wrong.push(format!(
            "{} of {} parked tasks captured ({} NOT_POLLED)",
            parked.captured, row.tasks, parked.not_polled
        ));
    }
    if parked.empty_stack + parked.wrong_stack > 0 {
        wrong.push(format!("{} with no stack, {} with a wrong one", parked.empty_stack, parked.wrong_stack));
    }
    if !wrong.is_empty() && row.anomalies.len() < 10 {
        row.anomalies.push(format!("capture {i}: {}", wrong.join("; ")));
    }
}
