//! What listens at an address that did not answer in HTTP/2: a second,
//! raw look, taken only after a connection failed in a way that does not
//! say (the peer hung up, or sent bytes the HTTP/2 library rejected).
//!
//! It opens one more connection, sends the HTTP/2 client preface and an
//! empty SETTINGS frame, and reads the first bytes back: an HTTP/1 server
//! answers with a status line, an echo server with our own preface, an
//! HTTP/2 server (a gRPC server, an agent) with its SETTINGS frame. Only the
//! first two change the verdict; anything else keeps the original error.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ConnectError;
use crate::target::Target;

/// Connecting, writing and reading each get this long.
const LIMIT: Duration = Duration::from_secs(2);

/// The HTTP/2 client preface, then an empty SETTINGS frame.
const HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// `err`, or a clearer [`ConnectError::NotAnAgent`] when the peer turns
/// out to speak something other than HTTP/2. Only for errors that leave it
/// open ([`ConnectError::Closed`], [`ConnectError::NotAnAgent`]).
pub async fn explain(target: &Target, err: ConnectError) -> ConnectError {
    let who = match &err {
        ConnectError::Closed { who, .. } | ConnectError::NotAnAgent { who, .. } => who.clone(),
        _ => return err,
    };
    match tokio::time::timeout(LIMIT * 3, answer(target.transport())).await {
        Ok(Some(first)) => match what(&first) {
            Some(detail) => ConnectError::NotAnAgent { who, detail },
            None => err,
        },
        _ => err,
    }
}

/// The first bytes the peer sends back to [`HELLO`], if any.
async fn answer(target: &Target) -> Option<Vec<u8>> {
    match target {
        Target::Tcp { host, port } => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let conn = tokio::time::timeout(LIMIT, tokio::net::TcpStream::connect((host, *port))).await.ok()?.ok()?;
            exchange(conn).await
        }
        Target::Unix { path } | Target::Pid { socket: path, .. } => {
            let conn = tokio::time::timeout(LIMIT, tokio::net::UnixStream::connect(path)).await.ok()?.ok()?;
            exchange(conn).await
        }
        Target::Console { .. } => None,
    }
}

async fn exchange(mut conn: impl AsyncRead + AsyncWrite + Unpin) -> Option<Vec<u8>> {
    tokio::time::timeout(LIMIT, conn.write_all(HELLO)).await.ok()?.ok()?;
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(LIMIT, conn.read(&mut buf)).await.ok()?.ok()?;
    buf.truncate(n);
    Some(buf).filter(|b| !b.is_empty())
}

/// What the first bytes say about the peer, when they rule out HTTP/2.
fn what(first: &[u8]) -> Option<String> {
    if HELLO.starts_with(first) || first.starts_with(HELLO) {
        return Some("it sent our own bytes back, as an echo server does; it speaks no HTTP/2".to_string());
    }
    if first.starts_with(b"HTTP/") {
        let line = first.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or(first);
        let line = String::from_utf8_lossy(line);
        return Some(format!("it answered in HTTP/1, not in HTTP/2 as gRPC does: `{}`", line.escape_default()));
    }
    // A frame header whose type is SETTINGS (4): an HTTP/2 server.
    if first.len() >= 9 && first[3] == 4 {
        return None;
    }
    let shown: String = first.iter().take(16).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    Some(format!("it answered `{shown}`, which is not HTTP/2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_peer() {
        assert!(what(HELLO).is_some_and(|w| w.contains("echo")));
        assert!(what(&HELLO[..10]).is_some_and(|w| w.contains("echo")), "an echo cut short");
        assert_eq!(
            what(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n").as_deref(),
            Some("it answered in HTTP/1, not in HTTP/2 as gRPC does: `HTTP/1.1 400 Bad Request`")
        );
        assert_eq!(what(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03"), None, "an HTTP/2 SETTINGS frame");
        assert_eq!(what(b"+OK\r\n").as_deref(), Some("it answered `+OK\\r\\n`, which is not HTTP/2"));
    }
}
