//! The one table of `TASKSCOPE_*` environment variables.
//!
//! The agent reads these when it starts; the README's table is checked against
//! this one by a test, so code and docs cannot drift apart. A value that does
//! not parse is reported on stderr and ignored; it never stops the host program.

/// One environment variable understood by taskscope.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// What it does when unset, as shown in the docs.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Socket directory (see [`crate::discovery`]).
pub const DIR: EnvVar = EnvVar {
    name: "TASKSCOPE_DIR",
    default: "`$XDG_RUNTIME_DIR/taskscope`, else `<tmp>/taskscope-<uid>`",
    doc: "Directory of the per-process Unix sockets; agent and CLI must agree on it.",
};

/// Optional TCP listener.
pub const TCP: EnvVar = EnvVar {
    name: "TASKSCOPE_TCP",
    default: "off",
    doc: "Also serve on TCP: `1` for `127.0.0.1:6669`, or an address such as `127.0.0.1:7000`. \
          Non-loopback addresses are refused unless `TASKSCOPE_TCP_ANY=1`.",
};

/// Allow non-loopback TCP.
pub const TCP_ANY: EnvVar = EnvVar {
    name: "TASKSCOPE_TCP_ANY",
    default: "off",
    doc: "`1` allows `TASKSCOPE_TCP` to bind a non-loopback address (anyone who can reach it can read task data).",
};

/// Optional HTTP listener: `/metrics` and `/debug/pprof/tasks`.
pub const HTTP: EnvVar = EnvVar {
    name: "TASKSCOPE_HTTP",
    default: "off",
    doc: "Also serve HTTP for fleets: Prometheus metrics on `/metrics`, the task profile (pprof) on \
          `/debug/pprof/tasks` and `/debug/pprof/goroutine`. `1` for `127.0.0.1:9464`, or an address \
          such as `127.0.0.1:9000`. Non-loopback addresses are refused unless `TASKSCOPE_HTTP_ANY=1`.",
};

/// Allow non-loopback HTTP.
pub const HTTP_ANY: EnvVar = EnvVar {
    name: "TASKSCOPE_HTTP_ANY",
    default: "off",
    doc: "`1` allows `TASKSCOPE_HTTP` to bind a non-loopback address (anyone who can reach it can read \
          spawn locations, task names and stacks).",
};

/// How many spawn locations `/metrics` names.
pub const METRICS_LOCATIONS: EnvVar = EnvVar {
    name: "TASKSCOPE_METRICS_LOCATIONS",
    default: "50",
    doc: "Spawn locations `/metrics` gives series of their own, at most: those with the most live tasks; \
          the rest are summed under `location=\"other\"`.",
};

/// How many completed tasks are kept.
pub const RETAIN_DONE: EnvVar = EnvVar {
    name: "TASKSCOPE_RETAIN_DONE",
    default: "256",
    doc: "Completed tasks shown, at most (the newest); each thread keeps up to this many of its own.",
};

/// How long completed tasks are kept.
pub const RETAIN_FOR: EnvVar = EnvVar {
    name: "TASKSCOPE_RETAIN_FOR",
    default: "10s",
    doc: "How long a completed task is kept for display (`500ms`, `10s`, `2m`).",
};

/// Default dump timeout.
pub const DUMP_TIMEOUT: EnvVar = EnvVar {
    name: "TASKSCOPE_DUMP_TIMEOUT",
    default: "5s",
    doc: "How long a dump waits for a runtime when the request names no timeout.",
};

/// Take tokio's own task dump.
pub const TOKIO_DUMPS: EnvVar = EnvVar {
    name: "TASKSCOPE_TOKIO_DUMPS",
    default: "on with a fixed tokio, else off",
    doc: "`1` also takes tokio's own task dump, which traces every task, wrapped or not, on a tokio \
          without taskscope's taskdump fixes (`patches/tokio`), at the program's risk: there it can \
          leave a multi-thread worker stuck for good (tokio-rs/tokio#8370) and lose or kill a \
          current-thread task that wakes another during the dump (tokio-rs/tokio#8391), which can \
          abort even a program that unwinds; a current-thread runtime under `panic = \"abort\"` is \
          never dumped that way. `0` turns it \
          off on a fixed tokio too. Wrapped tasks (`taskscope_agent::spawn`, \
          `#[taskscope_agent::main]`) are always captured safely, whatever this says.",
};

/// Read the CPU's counter at every poll instead of the 10 ms clock.
pub const EXACT_TIMES: EnvVar = EnvVar {
    name: "TASKSCOPE_EXACT_TIMES",
    default: "off",
    doc: "`1` reads the CPU's time-stamp counter at every poll's start and end, so busy, running and \
          parked times are exact rather than at most a 10 ms tick late; it costs the program about \
          two counter reads per poll (see the README's modes).",
};

/// Turn the agent off.
pub const DISABLE: EnvVar = EnvVar {
    name: "TASKSCOPE_DISABLE",
    default: "off",
    doc: "`1` makes `init()` do nothing: no subscriber, no socket.",
};

/// Every variable, in the order the docs list them.
pub const ALL: &[EnvVar] = &[
    DIR,
    TCP,
    TCP_ANY,
    HTTP,
    HTTP_ANY,
    METRICS_LOCATIONS,
    RETAIN_DONE,
    RETAIN_FOR,
    DUMP_TIMEOUT,
    TOKIO_DUMPS,
    EXACT_TIMES,
    DISABLE,
];

/// The table as Markdown, as it appears in the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for var in ALL {
        out.push_str(&format!("| `{}` | {} | {} |\n", var.name, var.default, var.doc));
    }
    out
}
