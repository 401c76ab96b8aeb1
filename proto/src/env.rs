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

/// Dump multi-thread runtimes anyway.
pub const MT_DUMPS: EnvVar = EnvVar {
    name: "TASKSCOPE_MT_DUMPS",
    default: "off",
    doc: "`1` captures stacks of multi-thread runtimes with several workers too. Off by default: \
          tokio 1.54's multi-thread task dump can leave a worker stuck for good when repeated \
          (tokio-rs/tokio#8370). Current-thread runtimes, and single-worker ones with at most 100 \
          tasks, are always dumped.",
};

/// Turn the agent off.
pub const DISABLE: EnvVar = EnvVar {
    name: "TASKSCOPE_DISABLE",
    default: "off",
    doc: "`1` makes `init()` do nothing: no subscriber, no socket.",
};

/// Every variable, in the order the docs list them.
pub const ALL: &[EnvVar] = &[DIR, TCP, TCP_ANY, RETAIN_DONE, RETAIN_FOR, DUMP_TIMEOUT, MT_DUMPS, DISABLE];

/// The table as Markdown, as it appears in the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for var in ALL {
        out.push_str(&format!("| `{}` | {} | {} |\n", var.name, var.default, var.doc));
    }
    out
}
