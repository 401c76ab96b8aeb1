//! Which local process listens at an address, read from `/proc`.
//!
//! console-subscriber's protocol never says which process it runs in: no
//! PID, no name. When the address is on this machine (a loopback TCP port or
//! a Unix socket) the kernel knows: the listening socket's inode is in
//! `/proc/net/{tcp,tcp6,unix}`, and the process holding it has a
//! `socket:[inode]` among its `/proc/<pid>/fd`. Only processes this user may
//! look into are found; otherwise the PID stays unknown and is shown so.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::target::Target;

/// The process found listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its PID.
    pub pid: u32,
    /// Its executable's short name (`/proc/<pid>/comm`).
    pub name: String,
    /// Its command line, `argv[0]` first.
    pub cmdline: Vec<String>,
}

impl Owner {
    /// How long it has been running.
    pub fn uptime_ns(&self) -> Option<u64> {
        crate::process::age(self.pid).map(|d: Duration| d.as_nanos().min(u128::from(u64::MAX)) as u64)
    }
}

/// The local process listening at `target`'s address, if there is one this
/// user may see.
pub async fn find(target: &Target) -> Option<Owner> {
    let inodes = match target.transport() {
        Target::Tcp { host, port } => {
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let ips: Vec<IpAddr> = match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                Err(_) => return None,
            };
            tcp_listeners(*port, &ips)
        }
        Target::Unix { path } | Target::Pid { socket: path, .. } => unix_listeners(path),
        Target::Console { .. } => return None,
    };
    if inodes.is_empty() {
        return None;
    }
    // Reading every process's descriptors takes a few milliseconds.
    tokio::task::spawn_blocking(move || holder(&inodes)).await.ok().flatten()
}

/// Inodes of the TCP sockets listening on `port` at one of `ips`: only
/// loopback addresses, or an address a socket here is bound to, are this
/// machine's for sure.
fn tcp_listeners(port: u16, ips: &[IpAddr]) -> Vec<u64> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ... inode (10th column); 0A is LISTEN.
            let (Some(local), Some("0A"), Some(inode)) = (cols.get(1), cols.get(3).copied(), cols.get(9)) else {
                continue;
            };
            let Some((ip, bound_port)) = parse_tcp_address(local, v6) else { continue };
            let matches = ips.iter().any(|want| {
                *want == ip || (ip.is_unspecified() && want.is_loopback()) || (v6_any(ip) && want.is_loopback())
            });
            if bound_port == port && matches {
                out.extend(inode.parse::<u64>().ok().filter(|&i| i != 0));
            }
        }
    }
    out
}

fn v6_any(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.is_unspecified() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()))
}

/// `0100007F:1A0D` (IPv4, the address's bytes as a little-endian word) or
/// 32 hex digits of four such words (IPv6), then the port.
fn parse_tcp_address(text: &str, v6: bool) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if v6 {
        if addr.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, word) in bytes.chunks_mut(4).enumerate() {
            let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
            word.copy_from_slice(&w.to_le_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        let w = u32::from_str_radix(addr, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(w.to_le_bytes()))
    };
    Some((ip, port))
}

/// Inodes of the listening Unix sockets bound to `path`.
fn unix_listeners(path: &Path) -> Vec<u64> {
    let Ok(wanted) = std::fs::canonicalize(path) else { return Vec::new() };
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else { return Vec::new() };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is "accepts connections".
        let (Some(flags), Some(inode), Some(bound)) = (cols.get(3), cols.get(6), cols.get(7)) else { continue };
        let listening = u32::from_str_radix(flags, 16).is_ok_and(|f| f & 0x10000 != 0);
        if listening && PathBuf::from(bound) == wanted {
            out.extend(inode.parse::<u64>().ok());
        }
    }
    out
}

/// The first process with one of `inodes` among its descriptors.
fn holder(inodes: &[u64]) -> Option<Owner> {
    let links: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str().is_some_and(|l| links.iter().any(|w| w == l)))
        });
        if holds {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            return Some(Owner {
                pid,
                name: crate::process::name(pid).unwrap_or_default(),
                cmdline: cmdline
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_are_decoded() {
        assert_eq!(parse_tcp_address("0100007F:1A0D", false), Some((IpAddr::from([127, 0, 0, 1]), 6669)));
        assert_eq!(parse_tcp_address("00000000:0050", false), Some((IpAddr::from([0, 0, 0, 0]), 80)));
        let v6_loopback = "00000000000000000000000001000000:1A0D";
        assert_eq!(parse_tcp_address(v6_loopback, true), Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 6669)));
        assert_eq!(parse_tcp_address("zz:1", false), None);
    }

    #[tokio::test]
    async fn a_listener_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let owner = find(&Target::Tcp { host: "127.0.0.1".into(), port }).await.expect("found");
        assert_eq!(owner.pid, std::process::id());
        assert!(owner.uptime_ns().is_some());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let _unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let owner = find(&Target::Unix { path }).await.expect("found");
        assert_eq!(owner.pid, std::process::id());
        drop(listener);
        assert_eq!(find(&Target::Tcp { host: "127.0.0.1".into(), port }).await, None);
    }
}
