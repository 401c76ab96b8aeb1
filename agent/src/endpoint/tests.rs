//! The endpoint against real sockets in throwaway directories: permissions,
//! replacement of a stale socket, refusal of a directory others can write.

use std::sync::atomic::AtomicUsize;

use taskscope_proto as proto;
use taskscope_proto::inspector_client::InspectorClient;
use taskscope_proto::inspector_server::{Inspector, InspectorServer};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Response, Status};

use super::*;

/// Answers `GetInfo` with a recognisable pid; needs no agent state.
struct StandIn;

type Empty<T> = futures::stream::Empty<Result<T, Status>>;

#[tonic::async_trait]
impl Inspector for StandIn {
    async fn get_info(&self, _: Request<proto::InfoRequest>) -> Result<Response<proto::ProcessInfo>, Status> {
        Ok(Response::new(proto::ProcessInfo { pid: 4242, ..Default::default() }))
    }
    type WatchStream = Empty<proto::WatchUpdate>;
    async fn watch(&self, _: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
    type DumpStream = Empty<proto::DumpChunk>;
    async fn dump(&self, _: Request<proto::DumpRequest>) -> Result<Response<Self::DumpStream>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
}

/// A fresh directory path (not created) under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("taskscope-endpoint-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    root.join(name)
}

/// [`scratch`], created with mode 0700.
fn private_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).expect("mkdir");
    dir
}

/// A socket file nobody listens on, as a process killed with SIGKILL leaves behind.
fn leave_socket(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).expect("bind a socket to leave behind"));
}

fn config(dir: &Path) -> Config {
    Config { socket_dir: dir.to_owned(), tcp: None, ..Config::default() }
}

fn start(config: Config) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { serve_routes(&config, Routes::new(InspectorServer::new(StandIn))).await })
}

async fn client(path: PathBuf) -> Result<InspectorClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await?;
    Ok(InspectorClient::new(channel))
}

/// Calls `GetInfo` over the socket until it answers (the server starts
/// asynchronously), for at most five seconds.
async fn pid_over(path: &Path) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut client) = client(path.to_owned()).await {
            if let Ok(info) = client.get_info(proto::InfoRequest {}).await {
                return info.into_inner().pid;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer on {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The PID of a process that has exited and been reaped: free here.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("reap");
    pid
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).map(|m| m.mode() & 0o7777).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn socket_in(dir: &Path) -> PathBuf {
    dir.join(format!("{}.sock", std::process::id()))
}

#[tokio::test]
async fn socket_and_directory_are_private() {
    let dir = scratch("nested/sockets");
    let server = start(config(&dir));
    let socket = socket_in(&dir);
    assert_eq!(pid_over(&socket).await, 4242);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&socket), 0o600);
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&fs::metadata(&socket).map(|m| m.file_type()).expect("stat")));
    server.abort();
    let _ = fs::remove_dir_all(dir.parent().and_then(Path::parent).unwrap_or(&dir));
}

#[tokio::test]
async fn stale_socket_of_our_pid_is_replaced() {
    let dir = private_dir("sockets");
    let socket = socket_in(&dir);
    leave_socket(&socket);
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_err());

    let server = start(config(&dir));
    assert_eq!(pid_over(&socket).await, 4242);
    assert_eq!(mode(&socket), 0o600);
    server.abort();
    let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}

#[tokio::test]
async fn sockets_of_dead_processes_are_swept_at_start() {
    let dir = private_dir("sweep");
    let dead = dead_pid();
    let dead_socket = dir.join(format!("{dead}.sock"));
    leave_socket(&dead_socket);
    // One of a process that runs (this test's own parent).
    let alive_socket = dir.join(format!("{}.sock", std::os::unix::process::parent_id()));
    leave_socket(&alive_socket);

    let server = start(config(&dir));
    let socket = socket_in(&dir);
    assert_eq!(pid_over(&socket).await, 4242, "the agent serves");
    assert!(!dead_socket.exists(), "the dead process's socket was removed");
    assert!(alive_socket.exists(), "a running process's socket stays");
    server.abort();
    let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}

/// A program in another PID namespace sharing the directory: its PID does
/// not exist here, or is ours, but it listens.
#[tokio::test]
async fn live_sockets_are_left_alone_whatever_their_pid() {
    let dir = private_dir("namespaces");
    let dead = dead_pid();
    let theirs = dir.join(format!("{dead}.sock"));
    let _listening = std::os::unix::net::UnixListener::bind(&theirs).expect("bind");
    let same_pid = socket_in(&dir);
    let other = std::os::unix::net::UnixListener::bind(&same_pid).expect("bind");
    let inode = fs::metadata(&same_pid).expect("stat").ino();

    let config = config(&dir);
    let served =
        tokio::time::timeout(Duration::from_secs(5), serve_routes(&config, Routes::new(InspectorServer::new(StandIn))))
            .await;
    assert!(served.is_ok(), "serve should give up instead of taking a live socket");
    assert!(matches!(listen_unix(&dir), Err(EndpointError::Taken { .. })));
    assert!(theirs.exists(), "a listening socket of a PID absent here stays");
    assert_eq!(fs::metadata(&same_pid).expect("stat").ino(), inode, "the live socket with our PID is not replaced");
    assert!(std::os::unix::net::UnixStream::connect(&same_pid).is_ok(), "and still reaches its listener");
    drop(other);
    let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    use std::io::Read;
    let dir = private_dir("cap");
    let config = config(&dir);
    let server =
        tokio::spawn(
            async move { serve_limited(&config, Routes::new(InspectorServer::new(StandIn)), Limit::new(2)).await },
        );
    let socket = socket_in(&dir);
    assert_eq!(pid_over(&socket).await, 4242);
    // Clients that connect and say nothing. An admitted one hears the
    // server's HTTP/2 settings; one past the cap reads end-of-file. (The
    // connection `pid_over` used may still hold a permit for a moment.)
    let mut held = Vec::new();
    let (mut admitted, mut closed) = (0, 0);
    for _ in 0..4 {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("the kernel accepts the connection");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let (stream, read) = tokio::task::spawn_blocking(move || {
            let read = stream.read(&mut [0u8; 64]).map_err(|e| e.kind());
            (stream, read)
        })
        .await
        .expect("join");
        match read {
            Ok(0) => closed += 1,
            Ok(_) => admitted += 1,
            Err(e) => panic!("neither served nor closed: {e:?}"),
        }
        held.push(stream);
    }
    assert!((1..=2).contains(&admitted) && closed >= 2, "admitted {admitted}, closed {closed}");
    drop(held);
    assert_eq!(pid_over(&socket).await, 4242, "permits come back when connections close");
    server.abort();
    let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}

#[tokio::test]
async fn directory_writable_by_others_is_refused() {
    let dir = private_dir("open");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let config = config(&dir);
    // Nothing to serve on: it gives up instead of running forever.
    let served =
        tokio::time::timeout(Duration::from_secs(5), serve_routes(&config, Routes::new(InspectorServer::new(StandIn))))
            .await;
    assert!(served.is_ok(), "serve should give up on an open directory");
    assert!(!socket_in(&dir).exists());
    assert!(matches!(prepare_dir(&dir), Err(EndpointError::DirOpen { mode: 0o777, .. })));
    let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}

#[test]
fn directory_of_another_user_is_refused() {
    // Only root can hand a directory to another user.
    if taskscope_proto::discovery::effective_uid() != 0 {
        return;
    }
    let dir = private_dir("theirs");
    std::os::unix::fs::chown(&dir, Some(65534), None).expect("chown");
    assert!(matches!(prepare_dir(&dir), Err(EndpointError::DirNotOurs { owner: 65534, .. })));
    let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}

#[tokio::test]
async fn tcp_listener_serves_too() {
    let dir = scratch("with-tcp");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let server = start(Config { tcp: Some(port), ..config(&dir) });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let pid = loop {
        let endpoint = Endpoint::from_shared(format!("http://{port}")).expect("valid url");
        if let Ok(channel) = endpoint.connect().await {
            if let Ok(info) = InspectorClient::new(channel).get_info(proto::InfoRequest {}).await {
                break info.into_inner().pid;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer on TCP {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(pid, 4242);
    server.abort();
    let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
}
