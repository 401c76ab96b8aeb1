//! A real Prometheus (Debian's `prometheus`; `.ci/run` installs it) scraping
//! the agent's `/metrics` every second: on `done_signal`, which leaves one
//! task parked per call, the leaking location's series are there and grow;
//! on its fix they do not; on `orphan_receiver` the leaked task is counted.
//! The README's two alert rules are loaded into that Prometheus (it must
//! find them valid) and their expressions, windows shortened to the
//! test's seconds, catch exactly the leaking processes.

mod common;
mod http_common;

use std::time::{Duration, Instant};

use common::temp_dir;
use http_common::Prometheus;

/// Where `done_signal` spawns the task each call leaves behind.
const LEAKING: &str = "examples/src/bin/done_signal.rs:165:5";

/// The README's alert rules (the YAML between its `rules` markers).
fn readme_rules() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let block = readme
        .split("<!-- rules:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- rules:end -->").next())
        .expect("the README's rules markers");
    let yaml = block.trim().trim_start_matches("```yaml").trim_end_matches("```");
    format!("{}\n", yaml.trim())
}

/// Each rule's alert name and expression, from the rules YAML.
fn exprs(rules: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut alert = None;
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            alert = Some(name.to_string());
        } else if let (Some(expr), Some(name)) = (line.strip_prefix("expr: "), alert.take()) {
            out.push((name, expr.to_string()));
        }
    }
    out
}

fn label(metric: &serde_json::Value, name: &str) -> String {
    metric[name].as_str().unwrap_or_default().to_string()
}

#[test]
fn prometheus_sees_the_leaking_location_grow_and_the_fix_stay_flat() {
    let dir = temp_dir();
    let interval = ["--calls", "0", "--interval", "50ms"];
    let leaky = http_common::start(dir.path(), "done_signal", &interval, &[]);
    let fixed = http_common::start(dir.path(), "done_signal", &[&interval[..], &["--fixed"]].concat(), &[]);
    let orphan = http_common::start(dir.path(), "orphan_receiver", &[], &[]);

    let rules = readme_rules();
    let rules_file = dir.path().join("rules.yml");
    std::fs::write(&rules_file, &rules).expect("write rules.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: [\"{}\"]\n\
         scrape_configs:\n\
         \x20 - job_name: leaky\n    static_configs: [{{targets: [\"{}\"]}}]\n\
         \x20 - job_name: fixed\n    static_configs: [{{targets: [\"{}\"]}}]\n\
         \x20 - job_name: orphan\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        rules_file.display(),
        leaky.addr,
        fixed.addr,
        orphan.addr
    );
    let prometheus = Prometheus::start(dir.path(), &config);

    // Every target up, and a few seconds of samples.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = prometheus.query("up == 1");
        if up.len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "targets not all up: {up:?}\n{}", prometheus.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(4));

    // The leaking location's series, with the labels the README gives.
    let idle = format!("taskscope_tasks{{job=\"leaky\",location=\"{LEAKING}\",state=\"idle\"}}");
    let first = prometheus.query(&idle);
    assert_eq!(first.len(), 1, "{idle}: {first:?}");
    assert_eq!(label(&first[0].0, "name"), "", "its tasks are not named: {first:?}");
    for series in [
        "taskscope_tasks_spawned_total",
        "taskscope_tasks_completed_total",
        "taskscope_task_longest_parked_seconds",
        "taskscope_tasks_leaked",
    ] {
        let found = prometheus.query(&format!("{series}{{job=\"leaky\",location=\"{LEAKING}\"}}"));
        assert_eq!(found.len(), 1, "{series}: {found:?}");
    }
    std::thread::sleep(Duration::from_secs(4));
    let later = prometheus.query(&idle);
    assert!(later[0].1 >= first[0].1 + 20.0, "the leak grows, 20 tasks a second: {first:?} then {later:?}");
    let spawned = prometheus
        .query(&format!("increase(taskscope_tasks_spawned_total{{job=\"leaky\",location=\"{LEAKING}\"}}[5s])"));
    assert!(spawned[0].1 > 20.0, "{spawned:?}");

    // The fix spawns at the same place as fast, and keeps none.
    let fixed_live = prometheus.query(&format!("sum(taskscope_tasks{{job=\"fixed\",location=\"{LEAKING}\"}})"));
    assert!(fixed_live[0].1 <= 2.0, "the fix leaves no tasks: {fixed_live:?}");
    let fixed_growth = prometheus.query("sum without (state) (delta(taskscope_tasks{job=\"fixed\"}[5s]))");
    assert!(
        !fixed_growth.is_empty() && fixed_growth.iter().all(|(_, v)| v.abs() <= 2.0),
        "no growth: {fixed_growth:?}"
    );
    let fixed_spawned = prometheus
        .query(&format!("increase(taskscope_tasks_spawned_total{{job=\"fixed\",location=\"{LEAKING}\"}}[5s])"));
    assert!(fixed_spawned[0].1 > 20.0, "the fix does the same work: {fixed_spawned:?}");

    // The README's rules: loaded and evaluated without error...
    let deadline = Instant::now() + Duration::from_secs(10);
    let loaded = loop {
        let data = prometheus.api("rules", &[]);
        let rules: Vec<serde_json::Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if rules.len() == 2 && rules.iter().all(|r| r["health"] == "ok") {
            break rules;
        }
        assert!(Instant::now() < deadline, "the README's rules did not load: {data}\n{}", prometheus.log());
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        loaded.iter().map(|r| r["name"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        ["TasksKeepGrowing", "TaskLeaked"]
    );
    // ...and their expressions, with an hour shortened to 8 s, catch the
    // leaking process and location, and nothing else.
    let exprs = exprs(&rules);
    assert_eq!(exprs.len(), 2, "{rules}");
    let growing = prometheus.query(&exprs[0].1.replace("[1h]", "[8s]"));
    let caught: Vec<(String, String)> = growing.iter().map(|(m, _)| (label(m, "job"), label(m, "location"))).collect();
    assert_eq!(caught, [("leaky".to_string(), LEAKING.to_string())], "{}: {growing:?}", exprs[0].1);
    let leaked = prometheus.query(&exprs[1].1);
    let caught: Vec<(String, String)> = leaked.iter().map(|(m, _)| (label(m, "job"), label(m, "location"))).collect();
    assert_eq!(caught.len(), 1, "{leaked:?}");
    assert_eq!(caught[0].0, "orphan", "{leaked:?}");
    assert!(caught[0].1.starts_with("examples/src/bin/orphan_receiver.rs:"), "{leaked:?}");
}
