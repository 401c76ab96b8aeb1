//! Agent settings: defaults, overridden by `TASKSCOPE_*` variables, overridden
//! by the [`crate::Builder`].
//!
//! The variables are listed once, in [`taskscope_proto::env`]. A value that does
//! not parse is reported on stderr and the default is kept: a typo in an
//! environment variable must never take the host program down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use taskscope_proto::env::{self, EnvVar};

/// Port used when `TASKSCOPE_TCP=1`.
pub const DEFAULT_TCP_PORT: u16 = 6669;

/// Port used when `TASKSCOPE_HTTP=1` (the OpenTelemetry Prometheus
/// exporter's, which scrape configs of a fleet often already allow).
pub const DEFAULT_HTTP_PORT: u16 = 9464;

/// Spawn locations `/metrics` names when `TASKSCOPE_METRICS_LOCATIONS` is unset.
pub const DEFAULT_METRICS_LOCATIONS: usize = 50;

/// Everything the agent can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the Unix socket (see `taskscope_proto::discovery`).
    pub socket_dir: PathBuf,
    /// Also listen on this TCP address.
    pub tcp: Option<SocketAddr>,
    /// Serve `/metrics` and `/debug/pprof/tasks` over HTTP on this address
    /// (the README's "Many services").
    pub http: Option<SocketAddr>,
    /// Spawn locations `/metrics` gives series of their own, at most.
    pub metrics_locations: usize,
    /// Completed tasks shown, at most (each thread keeps up to this many of its own).
    pub retain_done: usize,
    /// How long a completed task is kept for display.
    pub retain_for: Duration,
    /// Dump timeout when a request names none.
    pub dump_timeout: Duration,
    /// Take tokio's own task dump (see `TASKSCOPE_TOKIO_DUMPS`): `None` lets
    /// the agent decide from the tokio it was built with.
    pub tokio_dumps: Option<bool>,
    /// Read the counter at every poll rather than the 10 ms clock (see
    /// `TASKSCOPE_EXACT_TIMES`).
    pub exact_times: bool,
    /// `init()` does nothing.
    pub disabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket_dir: taskscope_proto::discovery::socket_dir(),
            tcp: None,
            http: None,
            metrics_locations: DEFAULT_METRICS_LOCATIONS,
            // Kept tasks hold their slots, and a thread's kept slots cycle
            // through the caches of the cores that spawn and finish tasks:
            // 256 per thread is 32 KiB of slots, 1000 was 125 KiB. On the
            // bench's spawn workload, 64 and 256 gave medians 4% and 10%
            // less CPU than 1000 (two batches of 61 rounds; the intervals
            // still overlap, and wall time stayed within the noise).
            retain_done: 256,
            retain_for: Duration::from_secs(10),
            dump_timeout: Duration::from_secs(5),
            tokio_dumps: None,
            exact_times: false,
            disabled: false,
        }
    }
}

impl Config {
    /// The retention settings, as the task table takes them.
    pub(crate) fn retention(&self) -> crate::slots::Retention {
        crate::slots::Retention {
            done: self.retain_done,
            for_ns: u64::try_from(self.retain_for.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Defaults overridden by the environment. Bad values are reported and ignored.
    pub fn from_env() -> Config {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let mut config = Config::default();
        let get = |var: &EnvVar| lookup(var.name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(v) = get(&env::TCP) {
            let any = get(&env::TCP_ANY).and_then(|v| flag(&env::TCP_ANY, &v)).unwrap_or(false);
            match parse_listen(&v, any, DEFAULT_TCP_PORT, &env::TCP_ANY) {
                Ok(addr) => config.tcp = addr,
                Err(why) => warn(&env::TCP, &v, &why),
            }
        }
        if let Some(v) = get(&env::HTTP) {
            let any = get(&env::HTTP_ANY).and_then(|v| flag(&env::HTTP_ANY, &v)).unwrap_or(false);
            match parse_listen(&v, any, DEFAULT_HTTP_PORT, &env::HTTP_ANY) {
                Ok(addr) => config.http = addr,
                Err(why) => warn(&env::HTTP, &v, &why),
            }
        }
        if let Some(v) = get(&env::METRICS_LOCATIONS) {
            match v.parse() {
                Ok(n) => config.metrics_locations = n,
                Err(_) => warn(&env::METRICS_LOCATIONS, &v, "expected a whole number"),
            }
        }
        if let Some(v) = get(&env::RETAIN_DONE) {
            match v.parse() {
                Ok(n) => config.retain_done = n,
                Err(_) => warn(&env::RETAIN_DONE, &v, "expected a whole number"),
            }
        }
        if let Some(v) = get(&env::RETAIN_FOR) {
            match humantime::parse_duration(&v) {
                Ok(d) => config.retain_for = d,
                Err(e) => warn(&env::RETAIN_FOR, &v, &e.to_string()),
            }
        }
        if let Some(v) = get(&env::DUMP_TIMEOUT) {
            match humantime::parse_duration(&v) {
                Ok(d) if !d.is_zero() => config.dump_timeout = d,
                Ok(_) => warn(&env::DUMP_TIMEOUT, &v, "must be more than zero"),
                Err(e) => warn(&env::DUMP_TIMEOUT, &v, &e.to_string()),
            }
        }
        if let Some(on) = get(&env::TOKIO_DUMPS).and_then(|v| flag(&env::TOKIO_DUMPS, &v)) {
            config.tokio_dumps = Some(on);
        }
        if let Some(on) = get(&env::EXACT_TIMES).and_then(|v| flag(&env::EXACT_TIMES, &v)) {
            config.exact_times = on;
        }
        if let Some(on) = get(&env::DISABLE).and_then(|v| flag(&env::DISABLE, &v)) {
            config.disabled = on;
        }
        config
    }
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn is_false(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off")
}

/// An on/off variable's value; anything but `1`/`true`/`yes`/`on` or
/// `0`/`false`/`no`/`off` is reported and ignored (a typo must not silently
/// mean off, as `TASKSCOPE_DISABLE=2` would).
fn flag(var: &EnvVar, v: &str) -> Option<bool> {
    if is_true(v) {
        Some(true)
    } else if is_false(v) {
        Some(false)
    } else {
        warn(var, v, "expected 1 or 0 (or true/false, yes/no, on/off)");
        None
    }
}

/// A listening address (`TASKSCOPE_TCP`, `TASKSCOPE_HTTP`): `1` for the
/// loopback on `default_port`; a non-loopback address only with `any`,
/// the `_ANY` variable named in the refusal.
fn parse_listen(v: &str, allow_any: bool, default_port: u16, any: &EnvVar) -> Result<Option<SocketAddr>, String> {
    if is_false(v) {
        return Ok(None);
    }
    if is_true(v) {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], default_port))));
    }
    let addr: SocketAddr = v.parse().map_err(|_| "expected `1` or an address such as 127.0.0.1:7000".to_owned())?;
    if !addr.ip().is_loopback() && !allow_any {
        return Err(format!("{} is not a loopback address; set {}=1 to allow it", addr.ip(), any.name));
    }
    Ok(Some(addr))
}

fn warn(var: &EnvVar, value: &str, why: &str) {
    eprintln!("taskscope-agent: ignoring {}={value:?}: {why}", var.name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_when_unset() {
        let c = with(&[]);
        assert_eq!(c.tcp, None);
        assert_eq!(c.retain_done, 256);
        assert!(!c.disabled);
    }

    #[test]
    fn bad_values_are_ignored_not_fatal() {
        let c = with(&[
            ("TASKSCOPE_TCP", "not an address"),
            ("TASKSCOPE_RETAIN_DONE", "-3"),
            ("TASKSCOPE_RETAIN_FOR", "forever"),
            ("TASKSCOPE_DUMP_TIMEOUT", "0s"),
        ]);
        let d = Config::default();
        assert_eq!(c.tcp, None);
        assert_eq!(c.retain_done, d.retain_done);
        assert_eq!(c.retain_for, d.retain_for);
        assert_eq!(c.dump_timeout, d.dump_timeout);
    }

    #[test]
    fn flags_take_only_on_and_off_words() {
        assert!(with(&[("TASKSCOPE_DISABLE", "yes")]).disabled);
        assert!(!with(&[("TASKSCOPE_DISABLE", "off")]).disabled);
        // A typo is reported and leaves the default, as any bad value does.
        assert!(!with(&[("TASKSCOPE_DISABLE", "2")]).disabled);
        assert_eq!(with(&[("TASKSCOPE_TOKIO_DUMPS", "enable")]).tokio_dumps, None);
        assert_eq!(with(&[("TASKSCOPE_TOKIO_DUMPS", "ON")]).tokio_dumps, Some(true));
        assert_eq!(with(&[("TASKSCOPE_TOKIO_DUMPS", "0")]).tokio_dumps, Some(false));
        assert!(with(&[("TASKSCOPE_EXACT_TIMES", "1")]).exact_times);
        assert!(!with(&[("TASKSCOPE_EXACT_TIMES", "exact")]).exact_times, "a typo keeps the default");
        assert_eq!(with(&[("TASKSCOPE_TCP", "0.0.0.0:7000"), ("TASKSCOPE_TCP_ANY", "y")]).tcp, None);
    }

    #[test]
    fn tcp_is_loopback_unless_allowed() {
        assert_eq!(with(&[("TASKSCOPE_TCP", "1")]).tcp, Some("127.0.0.1:6669".parse().unwrap()));
        assert_eq!(with(&[("TASKSCOPE_TCP", "0.0.0.0:7000")]).tcp, None);
        assert_eq!(
            with(&[("TASKSCOPE_TCP", "0.0.0.0:7000"), ("TASKSCOPE_TCP_ANY", "1")]).tcp,
            Some("0.0.0.0:7000".parse().unwrap())
        );
    }

    #[test]
    fn http_is_off_and_loopback_unless_allowed() {
        assert_eq!(with(&[]).http, None);
        assert_eq!(with(&[("TASKSCOPE_HTTP", "1")]).http, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(with(&[("TASKSCOPE_HTTP", "[::1]:9000")]).http, Some("[::1]:9000".parse().unwrap()));
        assert_eq!(with(&[("TASKSCOPE_HTTP", "0.0.0.0:9000")]).http, None);
        // The gRPC opt-in does not open HTTP to the network, nor the reverse.
        assert_eq!(with(&[("TASKSCOPE_HTTP", "0.0.0.0:9000"), ("TASKSCOPE_TCP_ANY", "1")]).http, None);
        assert_eq!(with(&[("TASKSCOPE_TCP", "0.0.0.0:7000"), ("TASKSCOPE_HTTP_ANY", "1")]).tcp, None);
        assert_eq!(
            with(&[("TASKSCOPE_HTTP", "0.0.0.0:9000"), ("TASKSCOPE_HTTP_ANY", "1")]).http,
            Some("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(with(&[("TASKSCOPE_METRICS_LOCATIONS", "7")]).metrics_locations, 7);
        assert_eq!(with(&[("TASKSCOPE_METRICS_LOCATIONS", "many")]).metrics_locations, DEFAULT_METRICS_LOCATIONS);
    }

    #[test]
    fn values_parse() {
        let c =
            with(&[("TASKSCOPE_RETAIN_DONE", "5"), ("TASKSCOPE_RETAIN_FOR", "250ms"), ("TASKSCOPE_DISABLE", "true")]);
        assert_eq!(c.retain_done, 5);
        assert_eq!(c.retain_for, Duration::from_millis(250));
        assert!(c.disabled);
    }
}
