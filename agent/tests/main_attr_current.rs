//! `#[taskscope_agent::main(flavor = "current_thread")]`: as `main_attr.rs`,
//! on a current-thread runtime, with a function that returns nothing.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;

use taskscope_proto as proto;

static SEEN: Mutex<Option<common::Seen>> = Mutex::new(None);

#[taskscope_agent::main(flavor = "current_thread")]
async fn program(dir: PathBuf) {
    let seen = common::own_agent(dir).await;
    *SEEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
}

#[test]
fn the_attribute_builds_a_hooked_current_thread_runtime() {
    let dir = common::socket_dir("main-attr-current");
    std::env::set_var("TASKSCOPE_DIR", &*dir);
    program(dir.to_path_buf());
    let (info, (task, functions), (main, main_functions)) =
        SEEN.lock().unwrap_or_else(|e| e.into_inner()).take().expect("the program ran");
    assert_eq!(info.mode, "hooks");
    assert!(info.runtimes.iter().any(|r| r.name == "main" && r.flavor == "current_thread"), "{:?}", info.runtimes);
    assert_eq!(task.state, proto::TaskState::Idle as i32, "{task:?}");
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
