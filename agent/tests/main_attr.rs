//! `#[taskscope_agent::main]` in place of `#[tokio::main]`, multi-thread
//! flavour: the body runs on a runtime the lean mode records, which the agent
//! serves over the real socket. Two workers: tokio 1.54's own dump of such a
//! runtime is off, and the stacks of the wrapped task and of the body itself
//! come from the safe capture.
//! (The current-thread flavour is in `main_attr_current.rs`: the agent is
//! process-wide, one runtime per file.)

mod common;

use std::path::PathBuf;

use taskscope_proto as proto;

#[taskscope_agent::main(flavor = "multi_thread", worker_threads = 2)]
async fn program(dir: PathBuf) -> Result<common::Seen, String> {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    // `?` in the body: its error type comes from the function's signature.
    (workers == 2).then_some(()).ok_or(format!("{workers} workers"))?;
    Ok(common::own_agent(dir).await)
}

#[test]
fn the_attribute_builds_a_hooked_multi_thread_runtime() {
    let dir = common::socket_dir("main-attr");
    // Before the agent starts: it reads the environment once.
    std::env::set_var("TASKSCOPE_DIR", &*dir);
    let (info, (task, functions), (main, main_functions)) = program(dir.to_path_buf()).expect("the program ran");
    assert_eq!(info.mode, "hooks");
    assert!(
        info.runtimes.iter().any(|r| r.name == "main" && r.flavor == "multi_thread" && r.workers == 2),
        "{:?}",
        info.runtimes
    );
    assert_eq!(task.state, proto::TaskState::Idle as i32, "{task:?}");
    assert!(task.location.as_ref().is_some_and(|l| l.file.ends_with("mod.rs")), "{task:?}");
    assert!(functions.iter().any(|f| f.contains("parked_under_main_attr")), "{functions:#?}");
    // The body itself, listed as the `block_on` task spawned at the attribute,
    // parked in `own_agent` waiting for the dump it asked for.
    assert!(main.id > u64::MAX / 2, "the agent's own ids count down from u64::MAX: {main:?}");
    assert!(
        main.location
            .as_ref()
            .is_some_and(|l| l.file.ends_with("main_attr.rs") || l.file.ends_with("main_attr_current.rs")),
        "{main:?}"
    );
    assert!(main_functions.iter().any(|f| f.contains("own_agent")), "{main_functions:#?}");
    assert!(main_functions.iter().any(|f| f.contains("program")), "{main_functions:#?}");
}
