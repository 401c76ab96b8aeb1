//! Where the agent listens: a private Unix socket per process, and TCP only
//! when asked for.
//!
//! Task data (names, spawn locations, stacks) is as sensitive as a core dump,
//! so only the user the program runs as may read it. Three layers enforce
//! that: the socket directory is `0700` and must belong to us (a directory
//! another user prepared in `/tmp` is refused, not reused); the socket itself
//! is `0600`; and every connection whose peer uid differs from ours is closed
//! unanswered. TCP has no such check, which is why `TASKSCOPE_TCP` is opt-in
//! and loopback-only by default (see [`crate::config`]).
//!
//! The socket is named `<pid>.sock` so tools find it from the PID alone. A
//! file of that name is left over from a dead process that had our PID, and
//! is replaced, unless something still listens on it: then it belongs to a
//! program in another PID namespace sharing the directory, and we do not
//! listen on a Unix socket at all rather than cut that program off. The
//! file is removed at a normal exit (`atexit`); a process killed by a signal
//! leaves it behind, and tools treat a socket nobody answers on as stale.
//!
//! Nothing here may take the host program down: every failure is one line on
//! stderr and the program runs on uninspected.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tonic::service::Routes;
use tonic::transport::Server;

use crate::state::StateHandle;
use crate::Config;
use limit::{Counted, Limit, MAX_CONNECTIONS};

mod limit;

/// Why the agent could not listen somewhere.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EndpointError {
    #[error("cannot create the socket directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("not using the socket directory {}: it belongs to uid {owner}, not to this process's uid {ours}", path.display())]
    DirNotOurs { path: PathBuf, owner: u32, ours: u32 },
    #[error("not using the socket directory {}: other users can write to it (mode {mode:o}); run `chmod 700 {}`", path.display(), path.display())]
    DirOpen { path: PathBuf, mode: u32 },
    #[error("not listening on {}: another live agent serves it (a process with the same PID in another PID namespace?); give this program a TASKSCOPE_DIR of its own", path.display())]
    Taken { path: PathBuf },
    #[error("cannot replace the stale socket {}: {source}", path.display())]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot listen on {}: {source}", path.display())]
    BindUnix { path: PathBuf, source: io::Error },
    #[error("cannot make {} private (chmod 600): {source}", path.display())]
    Chmod { path: PathBuf, source: io::Error },
    #[error("cannot listen on TCP {addr}: {source}")]
    BindTcp { addr: SocketAddr, source: io::Error },
}

/// Serves the inspector on `<config.socket_dir>/<pid>.sock` and, when
/// configured, on TCP. Runs until the agent's runtime stops; returns early
/// only when it cannot listen anywhere. Never panics.
pub(crate) async fn serve(config: Arc<Config>, state: StateHandle) {
    let routes = Routes::new(crate::server::service(Arc::clone(&config), state));
    serve_routes(&config, routes).await;
}

/// [`serve`] for any gRPC routes (tests serve a stand-in inspector).
async fn serve_routes(config: &Config, routes: Routes) {
    serve_limited(config, routes, Limit::new(MAX_CONNECTIONS)).await;
}

/// [`serve_routes`] with the connection cap given (tests use a small one).
async fn serve_limited(config: &Config, routes: Routes, limit: Limit) {
    let unix = async {
        let (listener, path) = match listen_unix(&config.socket_dir) {
            Ok(listening) => listening,
            Err(e) => return log(&e),
        };
        let served =
            Server::builder().add_routes(routes.clone()).serve_with_incoming(same_user(listener, limit.clone())).await;
        if let Err(e) = served {
            log(&format!("the server on {} stopped: {e}", path.display()));
        }
        let _ = fs::remove_file(&path);
    };
    let tcp = async {
        let Some(addr) = config.tcp else { return };
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(source) => return log(&EndpointError::BindTcp { addr, source }),
        };
        let served = Server::builder()
            .add_routes(routes.clone())
            .serve_with_incoming(tcp_incoming(listener, limit.clone()))
            .await;
        if let Err(e) = served {
            log(&format!("the server on TCP {addr} stopped: {e}"));
        }
    };
    tokio::join!(unix, tcp);
}

fn log(e: &dyn std::fmt::Display) {
    eprintln!("taskscope-agent: {e}");
}

/// Prepares `dir`, removes the sockets of processes that are gone, replaces a
/// stale socket of our PID, binds and restricts the new one, and arranges for
/// its removal at exit.
fn listen_unix(dir: &Path) -> Result<(UnixListener, PathBuf), EndpointError> {
    prepare_dir(dir)?;
    sweep_dead(dir);
    let path = dir.join(format!("{}.sock", std::process::id()));
    if taken(&path) {
        return Err(EndpointError::Taken { path });
    }
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(EndpointError::RemoveStale { path, source }),
    }
    let listener =
        UnixListener::bind(&path).map_err(|source| EndpointError::BindUnix { path: path.clone(), source })?;
    if let Err(source) = fs::set_permissions(&path, fs::Permissions::from_mode(0o600)) {
        let _ = fs::remove_file(&path);
        return Err(EndpointError::Chmod { path, source });
    }
    remove_at_exit(&path);
    Ok((listener, path))
}

/// Whether something listens on `path` for good. A listener closed a moment
/// ago can still accept for a few milliseconds: a child forked meanwhile
/// holds a copy of its descriptor until it execs. So "in use" must hold
/// over 100 ms; only a path that exists is probed at all.
fn taken(path: &Path) -> bool {
    use taskscope_proto::discovery::in_use;
    (0..5).all(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(25));
        }
        in_use(path)
    })
}

/// Removes the sockets in `dir` of processes that no longer run: a program
/// killed with SIGKILL leaves its socket behind, and `taskscope ps` is not
/// the only way to find one. A PID that is running again (reused) keeps its
/// file; the CLI tells that case apart when it connects. A socket something
/// still listens on stays too, whatever its PID: its program may live in
/// another PID namespace sharing the directory.
fn sweep_dead(dir: &Path) {
    use taskscope_proto::discovery::{in_use, liveness, pid_of_socket, Liveness};
    let Ok(entries) = fs::read_dir(dir) else { return };
    let ours = std::process::id();
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let Some(pid) = pid_of_socket(&path) else { continue };
        if pid != ours && liveness(pid) == Liveness::Dead && !in_use(&path) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Creates `dir` (mode 0700) or checks that the existing one is ours and
/// closed to other users.
fn prepare_dir(dir: &Path) -> Result<(), EndpointError> {
    let create_err = |source| EndpointError::CreateDir { path: dir.to_owned(), source };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(create_err)?;
    // Follows a symlink on purpose: what matters is who controls the
    // directory the socket ends up in.
    let meta = fs::metadata(dir).map_err(create_err)?;
    let ours = taskscope_proto::discovery::effective_uid();
    if meta.uid() != ours {
        return Err(EndpointError::DirNotOurs { path: dir.to_owned(), owner: meta.uid(), ours });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(EndpointError::DirOpen { path: dir.to_owned(), mode: meta.mode() & 0o7777 });
    }
    Ok(())
}

/// Connections from our own user, within the [`limit`] cap; others are
/// closed unanswered. Accept errors (e.g. out of file descriptors) pause
/// accepting briefly instead of spinning. The first refusal and the first
/// error are logged, not each one: another user must not be able to flood
/// the program's stderr.
fn same_user(listener: UnixListener, limit: Limit) -> impl Stream<Item = Result<Counted<UnixStream>, io::Error>> {
    static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);
    let ours = taskscope_proto::discovery::effective_uid();
    futures::stream::unfold(listener, move |listener| {
        let limit = limit.clone();
        async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        accept_failed(&e).await;
                        continue;
                    }
                };
                match stream.peer_cred() {
                    Ok(peer) if peer.uid() == ours => match limit.admit(stream) {
                        Some(counted) => return Some((Ok(counted), listener)),
                        None => continue,
                    },
                    Ok(peer) if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) => {
                        log(&format!(
                            "refused a connection from uid {} (only uid {ours} may inspect this process)",
                            peer.uid()
                        ));
                    }
                    Err(e) if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) => {
                        log(&format!("refused a connection whose user could not be checked: {e}"));
                    }
                    _ => {}
                }
            }
        }
    })
}

fn tcp_incoming(listener: TcpListener, limit: Limit) -> impl Stream<Item = Result<Counted<TcpStream>, io::Error>> {
    futures::stream::unfold(listener, move |listener| {
        let limit = limit.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        if let Some(counted) = limit.admit(stream) {
                            return Some((Ok(counted), listener));
                        }
                    }
                    Err(e) => accept_failed(&e).await,
                }
            }
        }
    })
}

async fn accept_failed(e: &io::Error) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        log(&format!("cannot accept a connection (will keep trying): {e}"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The socket to remove at exit; set once, by the first successful bind.
static SOCKET_PATH: OnceLock<PathBuf> = OnceLock::new();

fn remove_at_exit(path: &Path) {
    if SOCKET_PATH.set(path.to_owned()).is_err() {
        return;
    }
    extern "C" fn at_exit() {
        remove_socket();
    }
    // SAFETY: `at_exit` is a plain `extern "C" fn()` that only removes a file
    // and cannot unwind; registering it has no other precondition.
    if unsafe { libc::atexit(at_exit) } != 0 {
        log(&format!("cannot arrange to remove {} at exit; it will stay behind", path.display()));
    }
}

/// Removes the agent's socket file, if one was created. Safe to call more
/// than once.
#[allow(dead_code)] // for `lib.rs`'s shutdown path
pub(crate) fn remove_socket() {
    if let Some(path) = SOCKET_PATH.get() {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests;
