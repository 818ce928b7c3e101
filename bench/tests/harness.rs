//! The measurement plan with stand-in runtimes (shell one-liners speaking the marker
//! protocol): interleaved order, probe failures and missing runtimes listed with their
//! reason, concurrency batches, and a stop flag that still yields results.

use bench::exec::{ConsoleMap, RunSpec};
use bench::harness::{self, Entry, Plan};
use bench::results::{RuntimeKind, RuntimeStatus};
use bench::runners::{RunCtx, Runner};
use std::sync::atomic::AtomicBool;
use timeline::event;

struct Sh {
    name: &'static str,
    script: &'static str,
    missing: Option<&'static str>,
}

impl Runner for Sh {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }
    fn ours(&self) -> bool {
        self.name.starts_with("ours")
    }
    fn check(&self) -> Result<(), String> {
        self.missing.map_or(Ok(()), |m| Err(m.to_owned()))
    }
    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let mut s = RunSpec::new("/bin/sh", ConsoleMap::Container).args(["-c", self.script]);
        s.required = vec![event::EXEC, event::DONE];
        s
    }
    fn version(&self) -> Option<String> {
        Some("sh".into())
    }
}

const GOOD: &str = "echo '@@bootlab init-start'; echo '@@bootlab exec'; echo '@@bootlab done'";

fn entries() -> Vec<Entry> {
    vec![
        Entry::new(Box::new(Sh {
            name: "ours-a",
            script: GOOD,
            missing: None,
        })),
        Entry::new(Box::new(Sh {
            name: "peer-b",
            script: GOOD,
            missing: None,
        })),
        Entry::new(Box::new(Sh {
            name: "peer-broken",
            script: "echo 'cannot do this here' >&2; exit 1",
            missing: None,
        })),
        Entry::new(Box::new(Sh {
            name: "peer-absent",
            script: GOOD,
            missing: Some("not installed"),
        })),
    ]
}

fn plan(runs: u32, concurrency: u32) -> Plan {
    Plan {
        name: "t".into(),
        runs,
        warmup: 2,
        concurrency,
        workload: "sh".into(),
        images: "-".into(),
        progress: false,
        load: None,
    }
}

#[test]
fn interleaves_and_lists_every_runtime_with_its_status() {
    let stop = AtomicBool::new(false);
    let r = harness::run(entries(), &plan(3, 2), &stop).unwrap();
    let order: Vec<&str> = r.runs.iter().map(|x| x.timeline.runtime.as_str()).collect();
    assert_eq!(
        order,
        ["ours-a", "peer-b", "ours-a", "peer-b", "ours-a", "peer-b"]
    );
    let rounds: Vec<u32> = r.runs.iter().map(|x| x.round).collect();
    assert_eq!(rounds, [0, 0, 1, 1, 2, 2]);
    assert!(r.runs.iter().all(|x| x.timeline.error.is_none()));
    assert_eq!(r.runtimes.len(), 4);
    match &r.runtime("peer-broken").unwrap().status {
        RuntimeStatus::Failed(why) => assert!(why.contains("cannot do this here"), "{why}"),
        s => panic!("broken peer: {s:?}"),
    }
    assert_eq!(
        r.runtime("peer-absent").unwrap().status,
        RuntimeStatus::Missing("not installed".into())
    );
    // Levels 1 and 2, CONCURRENCY_REPEATS batches each, for the two working runtimes.
    let reps = harness::CONCURRENCY_REPEATS as usize;
    assert_eq!(r.concurrency.len(), 2 * 2 * reps);
    for b in &r.concurrency {
        assert_eq!(u32::try_from(b.runs.len()).unwrap(), b.level);
        assert!(b.wall_ns > 0 && b.boots_per_second() > 0.0);
    }
    assert!(!r.method.interrupted);
}

#[test]
fn a_stop_request_ends_the_session_with_what_was_measured() {
    let stop = AtomicBool::new(true);
    let r = harness::run(entries(), &plan(50, 4), &stop).unwrap();
    assert!(r.method.interrupted);
    assert!(r.runs.is_empty() && r.concurrency.is_empty());
    assert_eq!(r.runtimes.len(), 4, "every runtime still listed");
}
