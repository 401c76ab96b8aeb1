//! Shared helpers of the CLI integration tests: run the real `taskscope`
//! binary against a private `TASKSCOPE_DIR`, make dead and live PIDs, and
//! serve fake agents (real tonic servers on real Unix sockets) that misbehave
//! in precise ways.

#![allow(dead_code)] // each test file uses a different subset

pub mod example;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use taskscope_proto::inspector_server::{Inspector, InspectorServer};
use taskscope_proto::*;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `taskscope args...` with `TASKSCOPE_DIR=dir`.
pub fn taskscope(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args(args)
        .env("TASKSCOPE_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run taskscope");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `taskscope args...` until `done` says its run is the one awaited
/// (the program is still setting up), up to 20 s; returns the last run.
pub fn taskscope_until(dir: &Path, args: &[&str], done: impl Fn(&Run) -> bool) -> Run {
    let start = Instant::now();
    loop {
        let run = taskscope(dir, args);
        if done(&run) || start.elapsed() > Duration::from_secs(20) {
            return run;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts the run failed with exactly one `taskscope: ` line containing `needle`.
pub fn assert_one_line_error(run: &Run, needle: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("taskscope: "), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains(needle), "expected {needle:?} in {run:?}");
}

/// A PID that belonged to a process which has exited and been reaped.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("reap");
    pid
}

/// A live process without an agent (`sleep 30`), killed on drop.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("30").spawn().expect("spawn sleep"))
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary `TASKSCOPE_DIR`.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// `<dir>/<pid>.sock`.
pub fn socket_in(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("{pid}.sock"))
}

/// Leaves a socket file with nothing listening behind it.
pub fn dead_socket(path: &Path) {
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
    drop(listener);
    assert!(path.exists());
}

/// A server on its own runtime, stopped on drop.
pub struct Served {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

/// How a [`FakeAgent`] answers `Dump`.
#[derive(Clone)]
pub enum DumpAnswer {
    Chunks(Vec<DumpChunk>),
    Error(Status),
}

/// An `Inspector` with canned answers.
#[derive(Clone)]
pub struct FakeAgent {
    pub info: ProcessInfo,
    pub dump: DumpAnswer,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Inspector for FakeAgent {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<ProcessInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    type WatchStream = Stream<WatchUpdate>;
    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    type DumpStream = Stream<DumpChunk>;
    async fn dump(&self, _: Request<DumpRequest>) -> Result<Response<Self::DumpStream>, Status> {
        match &self.dump {
            DumpAnswer::Error(status) => Err(status.clone()),
            DumpAnswer::Chunks(chunks) => {
                let items: Vec<Result<DumpChunk, Status>> = chunks.iter().cloned().map(Ok).collect();
                Ok(Response::new(Box::pin(tokio_stream::iter(items))))
            }
        }
    }
}

/// Why the agent does not take tokio's dump of a runtime on a stock tokio
/// 1.54.1, as it words it (`RuntimeInfo.tokio_dumps_reason`, and the
/// `detail` of a `DUMP_STATUS_DISABLED` runtime).
pub const TOKIO_DUMP_OFF: &str = "tokio 1.54.1's task dump can leave a worker stuck for good (tokio-rs/tokio#8370), \
                                  so runtime `main` gets stacks only for tasks spawned with taskscope_agent::spawn; \
                                  for every task, build against the patched tokio (patches/tokio), or start the \
                                  program with TASKSCOPE_TOKIO_DUMPS=1 for a debugging session";

/// A plausible `ProcessInfo` for protocol version `version`: a program on a
/// stock tokio, whose tokio dumps are off, with ten wrapped futures.
pub fn info(version: u32) -> ProcessInfo {
    ProcessInfo {
        protocol_version: version,
        pid: 4242,
        process_name: "fakeprog".into(),
        agent_version: "0.1.0".into(),
        tokio_version: "1.54.1".into(),
        mode: "tracing".into(),
        runtimes: vec![RuntimeInfo {
            name: "main".into(),
            flavor: "multi_thread".into(),
            workers: 2,
            tokio_dumps: false,
            tokio_dumps_reason: TOKIO_DUMP_OFF.into(),
            harmed: String::new(),
        }],
        wrapped_tasks: 10,
        tokio_fixes: String::new(),
        time_resolution_ns: 10_000_000,
        dumps_supported: true,
        now_ns: 10_000_000_000,
        uptime_ns: 312_000_000_000,
        counts: Some(TaskCounts { running: 1, scheduled: 2, idle: 30, leaked: 20, ..Default::default() }),
        ..Default::default()
    }
}

/// Serves `agent` on a Unix socket at `path`.
pub fn serve_agent(path: &Path, agent: FakeAgent) -> Served {
    let rt = runtime();
    let listener = rt.block_on(async { UnixListener::bind(path) }).expect("bind fake agent");
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(InspectorServer::new(agent))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    Served { runtime: Some(rt) }
}

/// Serves a gRPC router with no service at all: every call is UNIMPLEMENTED,
/// as from an agent that speaks another `taskscope.vN` package.
pub fn serve_empty_router(path: &Path) -> Served {
    let rt = runtime();
    let listener = rt.block_on(async { UnixListener::bind(path) }).expect("bind empty router");
    rt.spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    Served { runtime: Some(rt) }
}

/// Accepts connections and closes them at once, as the agent does for a
/// client of another user.
pub fn serve_closer(path: &Path) -> Served {
    let rt = runtime();
    let listener = rt.block_on(async { UnixListener::bind(path) }).expect("bind closer");
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    Served { runtime: Some(rt) }
}

/// Accepts connections and never answers.
pub fn serve_silent(path: &Path) -> Served {
    let rt = runtime();
    let listener = rt.block_on(async { UnixListener::bind(path) }).expect("bind silent");
    rt.spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    Served { runtime: Some(rt) }
}

/// Waits until `path` exists (an agent's socket), up to `limit`.
pub fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
