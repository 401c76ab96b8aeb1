//! Helpers of the tests of the agent's HTTP endpoint (`TASKSCOPE_HTTP`):
//! a free loopback port, an example started with the endpoint on, a plain
//! HTTP/1.1 client over a std `TcpStream` (what a scraper sends, nothing
//! more), and a real Prometheus.

#![allow(dead_code)] // each test file uses what it needs

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::example::Example;

/// A loopback port nothing listens on (free a moment ago).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// An example serving HTTP on a free port, once its endpoint answers.
pub struct Served {
    pub example: Example,
    pub addr: SocketAddr,
}

/// Starts `name args...` with `TASKSCOPE_HTTP` on a free port (and `env`),
/// and waits until `/` answers.
pub fn start(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Served {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let http = addr.to_string();
    let mut env = env.to_vec();
    env.push(("TASKSCOPE_HTTP", &http));
    let example = Example::start_with(dir, name, args, &env);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "/").status != 200 {
        assert!(Instant::now() < deadline, "{name} never answered HTTP on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Served { example, addr }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 0 when no status line came back.
    pub status: u16,
    /// Header lines, lower-cased names: `name: value`.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.headers.iter().find_map(|h| h.strip_prefix(&prefix))
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[])
}

/// `method path` with extra header lines, on a fresh connection closed after it.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> Answer {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    raw(addr, head.as_bytes())
}

/// Sends `bytes` and reads the answer to its end (at most 30 s).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Answer {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return Answer { status: 0, headers: Vec::new(), body: Vec::new() };
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse(&answer)
}

/// The first answer in `bytes`.
pub fn parse(bytes: &[u8]) -> Answer {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(at) => (&bytes[..at], &bytes[at + 4..]),
        None => (bytes, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<String> =
        lines.filter_map(|l| l.split_once(": ").map(|(k, v)| format!("{}: {v}", k.to_ascii_lowercase()))).collect();
    let length = headers.iter().find_map(|h| h.strip_prefix("content-length: ")).and_then(|n| n.parse().ok());
    let body = match length {
        Some(n) if n <= body.len() => body[..n].to_vec(),
        _ => body.to_vec(),
    };
    Answer { status, headers, body }
}

/// The value of the one sample of `series` (its whole line up to the
/// value, e.g. `taskscope_tasks{location="a",name="",state="idle"}`) in a
/// Prometheus text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// Resident memory of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// `prometheus` on the PATH, or a panic saying how to get it: the test
/// does not pass by skipping.
pub fn prometheus_binary() -> String {
    for candidate in ["prometheus", "/usr/bin/prometheus"] {
        if Command::new(candidate).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return candidate.to_string();
        }
    }
    panic!("`prometheus` is needed to scrape the agent: install Debian's prometheus package (.ci/run does)");
}

/// A real Prometheus on a loopback port, its data in a temp dir, killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) in `dir`, and waits until it is ready.
    pub fn start(dir: &Path, config: &str) -> Prometheus {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("create prometheus.log");
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(addr, "/-/ready").status != 200 {
            assert!(Instant::now() < deadline, "prometheus never got ready: {}", prometheus.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// Its log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/<what>?<query>`'s JSON `data`, panicking on an error answer.
    pub fn api(&self, what: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", percent(v))).collect();
        let answer = get(self.addr, &format!("/api/v1/{what}?{}", query.join("&")));
        let json: serde_json::Value = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("prometheus answered {} {e}: {}", answer.status, answer.text()));
        assert_eq!(json["status"], "success", "{what} {query:?}: {json}");
        json["data"].clone()
    }

    /// An instant query's result: each series' labels and value.
    pub fn query(&self, expr: &str) -> Vec<(serde_json::Value, f64)> {
        let data = self.api("query", &[("query", expr)]);
        data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{expr}: not a vector: {data}"))
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                (r["metric"].clone(), value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` percent-encoded for a query string.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
