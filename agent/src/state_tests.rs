//! The recorder and the state owner against a real tokio runtime: real task
//! spans and waker events go through the bare subscriber into slots, and the
//! state owner derives states, leaks, totals and retention from them. The
//! lean mode's runtime hooks are tested the same way, without a subscriber.

use std::future::pending;
use std::time::Duration;

use super::*;
#[cfg(feature = "tracing")]
use crate::subscriber::TaskSubscriber;
use crate::Config;

fn setup(config: Config) -> (&'static Recorder, StateOwner) {
    clock::start();
    let _ = FILES.set(crate::files::Files::new());
    let recorder: &'static Recorder = Box::leak(Box::new(Recorder::new(config.retention())));
    let (owner, _handle) = StateOwner::new(recorder);
    (recorder, owner)
}

#[cfg(feature = "tracing")]
fn by_name<'a>(scan: &'a Scan, name: &str) -> &'a proto::Task {
    scan.tasks.iter().map(|(t, _)| t).find(|t| t.name == name).unwrap_or_else(|| {
        panic!("no task named {name} in {:?}", scan.tasks.iter().map(|(t, _)| &t.name).collect::<Vec<_>>())
    })
}

/// A dispatcher for `recorder`'s subscriber, to set as a thread's default.
///
/// Why the second one, kept for good: while at most one dispatcher is
/// registered, tracing-core works out a callsite's interest, when the callsite
/// is first hit, from the default of whichever thread hits it. Another test
/// (the hooks ones, without a subscriber) hitting tokio's spawn span first
/// then cached "never" for it while this test ran, and none of its tasks was
/// recorded (seen in about half of the runs of this module's tests alone).
/// With two registered, the interest is that of all of them.
#[cfg(feature = "tracing")]
fn dispatch(recorder: &'static Recorder) -> tracing_core::Dispatch {
    static SECOND: std::sync::OnceLock<tracing_core::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing_core::Dispatch::new(tracing_core::subscriber::NoSubscriber::default()));
    tracing_core::Dispatch::new(TaskSubscriber::new(recorder))
}

/// Runs `body` on a current-thread runtime whose tasks report to `recorder`.
#[cfg(feature = "tracing")]
fn run_traced(recorder: &'static Recorder, body: impl std::future::Future<Output = ()>) -> tokio::runtime::Runtime {
    let dispatch = dispatch(recorder);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    tracing_core::dispatcher::with_default(&dispatch, || rt.block_on(body));
    rt
}

#[cfg(feature = "tracing")]
#[test]
fn states_leaks_and_wakers_are_derived_from_real_tasks() {
    let (recorder, mut owner) = setup(Config::default());
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let (tx2, mut rx2) = mpsc::channel::<()>(1);
    let tx2_in = tx2.clone();
    let _rt = run_traced(recorder, async move {
        tokio::task::Builder::new()
            .name("twice")
            .spawn(async move {
                // Woken once by value (the channel's waker, used up by the
                // send below), then parked on the channel again.
                rx2.recv().await;
                rx2.recv().await;
            })
            .expect("spawn");
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx2_in.send(()).await.expect("twice is alive");
        tokio::task::Builder::new().name("forever").spawn(pending::<()>()).expect("spawn");
        tokio::task::Builder::new()
            .name("receiver")
            .spawn(async move {
                rx.recv().await;
            })
            .expect("spawn");
        tokio::task::Builder::new().name("short").spawn(async {}).expect("spawn");
        tokio::task::Builder::new()
            .name("yielder")
            .spawn(async {
                // Wakes itself from inside its own poll once, then finishes.
                let mut woken = false;
                std::future::poll_fn(|cx| {
                    if woken {
                        return std::task::Poll::Ready(());
                    }
                    woken = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                })
                .await;
            })
            .expect("spawn");
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    let scan = owner.scan();
    let forever = by_name(&scan, "forever");
    assert_eq!(forever.state, proto::TaskState::Idle as i32);
    assert!(forever.leaked, "nothing holds a waker of a task on pending(): {forever:?}");
    assert_eq!(forever.polls, 1);
    assert!(forever.location.as_ref().is_some_and(|l| l.file.ends_with("state_tests.rs") && l.line > 0));

    let receiver = by_name(&scan, "receiver");
    assert_eq!(receiver.state, proto::TaskState::Idle as i32);
    assert!(!receiver.leaked, "the channel holds its waker: {receiver:?}");
    assert_eq!(receiver.live_wakers, 1);

    let twice = by_name(&scan, "twice");
    assert_eq!(twice.state, proto::TaskState::Idle as i32);
    assert!(!twice.leaked, "{twice:?}");
    assert_eq!((twice.wakes, twice.polls), (1, 2), "{twice:?}");
    assert_eq!(twice.live_wakers, 1, "the first waker was used up by its wake: {twice:?}");
    assert_eq!(twice.waker_clones, twice.waker_drops + 1, "{twice:?}");

    let short = by_name(&scan, "short");
    assert_eq!(short.state, proto::TaskState::Done as i32);
    assert!(short.completed_at_ns >= short.spawned_at_ns);

    let yielder = by_name(&scan, "yielder");
    assert_eq!(yielder.state, proto::TaskState::Done as i32);
    assert_eq!(yielder.polls, 2);
    assert!(yielder.self_wakes >= 1, "it woke itself inside its own poll: {yielder:?}");

    let counts = owner.counts(&scan.tasks);
    assert!(counts.leaked >= 1 && counts.idle >= 2 && counts.done >= 2, "{counts:?}");
    // Five tasks spawned and the block_on future; short, yielder and the
    // block_on future (whose runtime returned) completed; the other three
    // are parked, "forever" on nothing.
    assert_eq!(counts.spawned_total, 6, "{counts:?}");
    assert_eq!(counts.completed_total, 3, "{counts:?}");
    assert_eq!((counts.running, counts.scheduled, counts.idle, counts.leaked), (0, 0, 3, 1), "{counts:?}");
    drop((tx, tx2));
}

/// A multi-thread runtime built under the subscriber runs its workers as
/// blocking tasks spawned in tokio's `src/runtime/`: they are marked as the
/// runtime's own and counted apart. A `block_on` future is polled with the
/// blocking thread's waker, which tokio reports nothing of, so it is never
/// called leaked however long it waits.
#[cfg(feature = "tracing")]
#[test]
fn runtime_workers_are_apart_and_block_on_is_never_leaked() {
    let (recorder, mut owner) = setup(Config::default());
    let dispatch = dispatch(recorder);
    let rt = tracing_core::dispatcher::with_default(&dispatch, || {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
    });
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let blocker = std::thread::spawn({
        let (dispatch, handle) = (dispatch.clone(), rt.handle().clone());
        move || {
            tracing_core::dispatcher::with_default(&dispatch, || {
                handle.block_on(async {
                    let _ = released.await;
                })
            })
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let scan = loop {
        let scan = owner.scan();
        let parked = scan.tasks.iter().any(|(t, _)| t.kind == "block_on" && t.state == proto::TaskState::Idle as i32);
        if parked || std::time::Instant::now() > deadline {
            break scan;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let block_on = scan.tasks.iter().map(|(t, _)| t).find(|t| t.kind == "block_on").expect("the block_on future");
    assert_eq!(block_on.state, proto::TaskState::Idle as i32, "{block_on:?}");
    assert!(!block_on.leaked, "its waker is not a task's: {block_on:?}");
    assert!(!block_on.runtime_internal);
    let workers: Vec<&proto::Task> = scan.tasks.iter().map(|(t, _)| t).filter(|t| t.runtime_internal).collect();
    assert_eq!(workers.len(), 2, "one per worker thread: {:?}", scan.tasks);
    for w in &workers {
        assert_eq!(w.kind, "blocking");
        assert!(w.location.as_ref().is_some_and(|l| l.file.contains("/src/runtime/")), "{w:?}");
    }
    let counts = owner.counts(&scan.tasks);
    assert_eq!(counts.runtime_internal, 2, "{counts:?}");
    assert_eq!(counts.running + counts.scheduled + counts.idle, 1, "the block_on future alone: {counts:?}");
    assert_eq!(counts.leaked, 0, "{counts:?}");
    let _ = release.send(());
    blocker.join().expect("block_on returns");
    drop(rt);
}

#[cfg(feature = "tracing")]
#[test]
fn completed_tasks_are_recycled_past_retention() {
    let (recorder, mut owner) = setup(Config { retain_done: 3, ..Config::default() });
    let _rt = run_traced(recorder, async {
        for _ in 0..50 {
            tokio::spawn(async {}).await.expect("join");
        }
    });
    assert_eq!(done_shown(&owner.scan()), 3, "only the 3 most recent completed tasks are kept");
    assert!(recorder.table.len() <= 52, "50 tasks and block_on: {}", recorder.table.len());
    // Slots are reused: a second round does not grow the table.
    let before = recorder.table.len();
    let _rt = run_traced(recorder, async {
        for _ in 0..50 {
            tokio::spawn(async {}).await.expect("join");
            tokio::task::yield_now().await;
        }
    });
    owner.count_completions();
    assert!(recorder.table.len() <= before + 5, "table grew from {before} to {}", recorder.table.len());
    assert_eq!(owner.completed_total, 102, "100 tasks and 2 block_on futures");
}

#[cfg(feature = "tracing")]
#[test]
fn watch_sends_snapshot_then_only_changes() {
    let (recorder, mut owner) = setup(Config::default());
    let _rt = run_traced(recorder, async {
        for i in 0..5 {
            tokio::task::Builder::new().name(&format!("p{i}")).spawn(pending::<()>()).expect("spawn");
        }
        tokio::task::yield_now().await;
    });
    let (tx, mut rx) = mpsc::channel(16);
    owner.watchers.push(Watcher {
        tx,
        interval: MIN_INTERVAL,
        next: Instant::now(),
        sent: FastMap::default(),
        needs_reset: true,
        totals_sent: FastMap::default(),
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        owner.feed_watchers();
        let first = rx.recv().await.expect("snapshot");
        assert!(first.reset && first.complete);
        assert!(first.tasks.len() >= 5);
        assert!(first.location_totals.iter().any(|t| t.spawned >= 5));
        tokio::time::sleep(MIN_INTERVAL * 2).await;
        owner.feed_watchers();
        let second = rx.recv().await.expect("delta");
        assert!(!second.reset && second.complete);
        assert!(second.tasks.is_empty(), "nothing changed: {:?}", second.tasks);
        assert!(second.location_totals.is_empty());
    });
}

/// A current-thread runtime whose tasks report to `recorder` through the
/// lean mode's hooks.
fn hooked_runtime(recorder: &'static Recorder) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    crate::hooks::install(builder.enable_all(), recorder);
    builder.build().expect("runtime")
}

/// How many completed tasks a scan shows.
fn done_shown(scan: &Scan) -> usize {
    scan.tasks.iter().filter(|(t, _)| t.state == proto::TaskState::Done as i32).count()
}

fn by_id(scan: &Scan, id: u64) -> &proto::Task {
    scan.tasks.iter().map(|(t, _)| t).find(|t| t.id == id).unwrap_or_else(|| panic!("no task {id}"))
}

#[test]
fn hooks_record_states_parked_times_and_completions() {
    let (recorder, mut owner) = setup(Config::default());
    let rt = hooked_runtime(recorder);
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let (forever, receiver, short) = rt.block_on(async move {
        let forever = tokio::spawn(pending::<()>());
        let receiver = tokio::spawn(async move {
            rx.recv().await;
        });
        let short = tokio::spawn(async {});
        tokio::time::sleep(Duration::from_millis(20)).await;
        (forever, receiver, short)
    });
    let scan = owner.scan();
    let id = |h: &tokio::task::JoinHandle<()>| crate::hooks::id_u64(h.id());
    let forever = by_id(&scan, id(&forever));
    assert_eq!(forever.state, proto::TaskState::Idle as i32);
    assert!(!forever.leaked, "hooks see no wakers, so they never call a task leaked: {forever:?}");
    assert_eq!(forever.polls, 1);
    assert_eq!(forever.kind, "", "hooks are not told the kind");
    assert!(forever.last_poll_ended_ns > 0 && forever.last_poll_ended_ns >= forever.spawned_at_ns);
    assert!(forever.location.as_ref().is_some_and(|l| l.file.ends_with("state_tests.rs") && l.line > 0));
    assert_eq!(by_id(&scan, id(&receiver)).state, proto::TaskState::Idle as i32);
    let short = by_id(&scan, id(&short));
    assert_eq!(short.state, proto::TaskState::Done as i32);
    assert_eq!(short.polls, 1);
    assert!(short.completed_at_ns >= short.spawned_at_ns);

    // A woken task is polled again; its poll count says so.
    rt.block_on(async {
        tx.send(()).await.expect("receiver alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    let scan = owner.scan();
    let receiver = by_id(&scan, id(&receiver));
    assert_eq!(receiver.state, proto::TaskState::Done as i32);
    assert_eq!(receiver.polls, 2);
}

#[test]
fn hooked_slots_are_recycled_past_retention() {
    let (recorder, mut owner) = setup(Config { retain_done: 3, ..Config::default() });
    let rt = hooked_runtime(recorder);
    for _ in 0..2 {
        rt.block_on(async {
            for _ in 0..50 {
                tokio::spawn(async {}).await.expect("join");
            }
        });
    }
    assert_eq!(done_shown(&owner.scan()), 3, "only the 3 most recent completed tasks are kept");
    assert!(recorder.table.len() <= 60, "slots are reused: {}", recorder.table.len());
    assert_eq!(owner.completed_total, 100, "block_on is not a task, so only the 100 spawned");
}

/// With no completed task kept, a task's slot is freed by its terminate
/// hook, inside its last poll, and the next spawn takes it: the after-poll
/// hook that tokio calls after that must not write to it.
#[test]
fn a_slot_freed_at_completion_is_not_written_by_the_after_poll_hook() {
    let (recorder, mut owner) = setup(Config { retain_done: 0, ..Config::default() });
    let rt = hooked_runtime(recorder);
    let (forever, late) = rt.block_on(async {
        let forever = tokio::spawn(pending::<()>());
        tokio::task::yield_now().await;
        for _ in 0..200 {
            tokio::spawn(async {}).await.expect("join");
        }
        // Spawned into the slot the last short task left, never polled.
        let late = tokio::spawn(pending::<()>());
        (forever, late)
    });
    let scan = owner.scan();
    let id = |h: &tokio::task::JoinHandle<()>| crate::hooks::id_u64(h.id());
    // (Slots are taken 32 at a time from the table.)
    assert!(recorder.table.len() <= 64, "slots are reused at once: {}", recorder.table.len());
    let late = by_id(&scan, id(&late));
    assert_eq!(late.state, proto::TaskState::Scheduled as i32, "{late:?}");
    assert_eq!((late.polls, late.busy_ns, late.last_poll_ended_ns), (0, 0, 0), "{late:?}");
    let forever = by_id(&scan, id(&forever));
    assert_eq!((forever.state, forever.polls), (proto::TaskState::Idle as i32, 1), "{forever:?}");
    assert_eq!(done_shown(&scan), 0);
    assert_eq!(owner.completed_total, 200);
}

/// Scans taken while two workers spawn, finish and recycle thousands of
/// tasks: every scan is consistent (no task twice, totals add up), and the
/// final totals are exact.
#[test]
fn scans_stay_consistent_while_workers_churn_slots() {
    const TASKS: u64 = 20_000;
    let (recorder, mut owner) = setup(Config { retain_done: 50, ..Config::default() });
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    crate::hooks::install(builder.enable_all(), recorder);
    let rt = builder.build().expect("runtime");
    let churn = rt.spawn(async {
        let spawners: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async {
                    for _ in 0..TASKS / 4 {
                        tokio::spawn(async { tokio::task::yield_now().await }).await.expect("join");
                    }
                })
            })
            .collect();
        for spawner in spawners {
            spawner.await.expect("spawner");
        }
    });
    let mut scans = 0;
    let mut last = proto::TaskCounts::default();
    let mut spawned_at = HashMap::new();
    while !churn.is_finished() {
        let scan = owner.scan();
        let ids: HashSet<u64> = scan.tasks.iter().map(|(t, _)| t.id).collect();
        assert_eq!(ids.len(), scan.tasks.len(), "a task appears twice in one scan");
        let counts = owner.counts(&scan.tasks);
        // Known from the program, not from how the counts are summed: at
        // most the churn task, its 4 spawners and one child each live at
        // once; nothing is spawned beyond TASKS + 5; totals never go back
        // (Prometheus reads a counter that does as a restart).
        let live = counts.running + counts.scheduled + counts.idle;
        assert!(live <= 9, "at most 9 tasks live at once: {counts:?}");
        assert!(counts.spawned_total <= TASKS + 5, "{counts:?}");
        assert!(counts.completed_total >= last.completed_total, "{last:?} then {counts:?}");
        assert!(counts.spawned_total >= last.spawned_total, "{last:?} then {counts:?}");
        let files = FILES.get().map(|f| f.all()).unwrap_or_default();
        for (location, totals) in owner.location_totals(&files, &scan) {
            let before = spawned_at.insert(location, totals.spawned).unwrap_or(0);
            assert!(totals.spawned >= before, "{location:?}: {before} then {totals:?}");
        }
        // At most retain_done completed tasks are picked; a few picked as
        // live may complete while the scan reads them.
        assert!(counts.done <= 50 + 10, "retention bounds what is shown: {counts:?}");
        last = counts;
        scans += 1;
    }
    rt.block_on(churn).expect("churn");
    assert!(scans > 0);
    let scan = owner.scan();
    let counts = owner.counts(&scan.tasks);
    // The churn task, its 4 spawners and their TASKS children.
    assert_eq!(counts.spawned_total, TASKS + 5, "{counts:?}");
    assert_eq!(counts.completed_total, TASKS + 5, "{counts:?}");
    assert_eq!(counts.running + counts.scheduled + counts.idle, 0, "{counts:?}");
}
