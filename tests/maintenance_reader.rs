//! Our reader of Kopia's maintenance state judged by real Kopia: after `kopia maintenance run
//! --full`, the `kopia.maintenance` blob we decrypt natively and the parameters manifest say
//! what `kopia maintenance info --json` says, in current and format-v1 repositories (whose
//! schedule key derives from the format key instead of the master key).

use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, PASSWORD};
use kopia_repo::go_json::go_time;
use kopia_repo::maintenance::{self, Params, Task};
use kopia_repo::manifest::Labels;
use kopia_repo::repository::Repository;
use serde_json::Value;

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    go_time::parse(value.as_str().expect("a time string")).expect("a Go time")
}

fn assert_schedule_matches_kopia(repo: &KopiaRepo) -> usize {
    let info: Value =
        serde_json::from_str(&repo.run_ok(&["maintenance", "info", "--json"])).expect("JSON");
    let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).expect("open");
    let schedule = maintenance::read_schedule(&repository).expect("read kopia.maintenance");

    let theirs = &info["schedule"];
    assert_eq!(
        schedule.next_full,
        Some(time(&theirs["nextFullMaintenance"]))
    );
    assert_eq!(
        schedule.next_quick,
        Some(time(&theirs["nextQuickMaintenance"]))
    );
    let their_runs = theirs["runs"].as_object().expect("runs");
    let our_tasks: Vec<&str> = schedule.runs.keys().map(Task::as_str).collect();
    let mut their_tasks: Vec<&str> = their_runs.keys().map(String::as_str).collect();
    their_tasks.sort_unstable();
    let mut sorted_ours = our_tasks.clone();
    sorted_ours.sort_unstable();
    assert_eq!(sorted_ours, their_tasks);
    assert!(
        schedule.runs.contains_key(&Task::SnapshotGc),
        "a full cycle runs snapshot-gc: {our_tasks:?}"
    );
    for (task, runs) in &schedule.runs {
        let theirs = their_runs[task.as_str()].as_array().expect("run list");
        assert_eq!(runs.len(), theirs.len(), "{task}");
        for (ours, theirs) in runs.iter().zip(theirs) {
            assert_eq!(ours.start, time(&theirs["start"]), "{task}");
            assert_eq!(ours.end, time(&theirs["end"]), "{task}");
            assert_eq!(
                ours.success,
                theirs["success"].as_bool().unwrap_or(false),
                "{task}"
            );
            assert_eq!(ours.error, theirs["error"].as_str().unwrap_or(""), "{task}");
        }
    }

    let mut store = repository.manifest_store();
    store.refresh().expect("manifests");
    let filter: Labels = [(
        "type".to_string(),
        maintenance::PARAMS_MANIFEST_TYPE.to_string(),
    )]
    .into();
    let found = store.find(&filter);
    assert_eq!(found.len(), 1);
    let params = Params::parse(&found[0].id, found[0].data.get()).expect("params");
    assert_eq!(params.owner, info["owner"].as_str().unwrap());
    assert_eq!(
        params.quick.enabled,
        info["quick"]["enabled"].as_bool().unwrap()
    );
    assert_eq!(
        params.full.interval.num_nanoseconds(),
        info["full"]["interval"].as_i64()
    );
    schedule.runs.len()
}

#[test]
fn maintenance_schedule_reads_as_kopia_reports_it() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    for format_version in [None, Some(1)] {
        let repo = KopiaRepo::create(
            &kopia,
            &CreateOptions {
                format_version,
                ..CreateOptions::default()
            },
        );
        // Before any maintenance there is no blob: the empty schedule, as Kopia reads it.
        let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).expect("open");
        assert_eq!(
            maintenance::read_schedule(&repository).unwrap(),
            maintenance::Schedule::default()
        );
        let tree = repo.make_tree(2, 3);
        repo.snapshot(&tree);
        repo.maintenance_full();
        let tasks = assert_schedule_matches_kopia(&repo);
        repo.maintenance_quick();
        assert!(assert_schedule_matches_kopia(&repo) >= tasks);
    }
}
