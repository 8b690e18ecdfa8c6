//! The keeper's pool part against in-memory fakes: refill, recycling, and the holders' status.

use ec2_build_core::model::pool::{parse_pools, MemberState};
use ec2_build_core::model::{BuildInstance, BuildTags, ExecutionStatus, InstanceState};
use ec2_build_core::testing::{FakeInstances, FakePoolRegistry, FakeSteps, AMPLE_TIME};
use ec2_build_core::use_cases::pools::pool_of_preparation;
use ec2_build_core::{KeeperSettings, PoolKeeper, PoolReport};

const BUILDS: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-build";
const PREPARATIONS: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:prepare";
const NOW: u64 = 100_000;

struct Harness {
    registry: FakePoolRegistry,
    builds: FakeSteps,
    preparations: FakeSteps,
    fleet: FakeInstances,
    settings: KeeperSettings,
}

fn harness(pools: &str) -> Harness {
    Harness {
        registry: FakePoolRegistry::default(),
        builds: FakeSteps::new(BUILDS),
        preparations: FakeSteps::new(PREPARATIONS),
        fleet: FakeInstances::default(),
        settings: KeeperSettings {
            stack_name: "stack".into(),
            grace_seconds: 2400,
            pools: parse_pools(pools).unwrap(),
            subnet_ids: vec!["subnet-0000000a".into(), "subnet-0000000b".into()],
        },
    }
}

const STOPPED_NEVER: &str = r#"[{"Name": "win", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "Size": 3, "MaxAgeHours": 1}]"#;
const RUNNING_ALWAYS: &str = r#"[{"Name": "lin", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["t3.large"], "Size": 2, "Mode": "running", "Reuse": "always", "MaxBuilds": 3}]"#;

impl Harness {
    async fn run(&self) -> PoolReport {
        let keeper = PoolKeeper::new(
            self.registry.clone(),
            self.builds.clone(),
            self.preparations.clone(),
            self.fleet.clone(),
            self.settings.clone(),
        );
        let mut reports = keeper.run(NOW, AMPLE_TIME).await;
        assert_eq!(reports.len(), 1);
        reports.remove(0)
    }

    /// A registry member with its instance in `state`.
    fn member(&self, pool: &str, id: &str, member: MemberState, instance: InstanceState) {
        self.registry.add(pool, id, member, NOW - 60);
        self.fleet.fleet.lock().unwrap().push(BuildInstance {
            id: id.into(),
            state: instance,
            state_reason: None,
            launched_at: Some(NOW - 60),
            tags: BuildTags::default(),
        });
    }
}

#[tokio::test]
async fn an_empty_pool_is_filled_through_the_preparation_workflow() {
    let h = harness(STOPPED_NEVER);
    let report = h.run().await;
    assert_eq!(report.started.len(), 3);
    assert_eq!((report.ready, report.preparing), (0, 3));
    let starts = h.preparations.starts.lock().unwrap().clone();
    let input: serde_json::Value = serde_json::from_str(&starts[0].1).unwrap();
    assert_eq!(input["Pool"], "win");
    assert_eq!(input["Mode"], "stopped");
    assert_eq!(input["InstanceType"], "m5.large");
    assert_eq!(input["CreatedAt"], NOW);
    let subnets: Vec<String> = starts
        .iter()
        .map(|(_, i)| {
            serde_json::from_str::<serde_json::Value>(i).unwrap()["SubnetId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        subnets.contains(&"subnet-0000000a".to_string())
            && subnets.contains(&"subnet-0000000b".to_string())
    );
    assert_eq!(
        pool_of_preparation(&h.preparations.arn(&starts[0].0)),
        Some("win")
    );
    // The next run counts the running preparations: nothing more is started.
    let again = h.run().await;
    assert!(again.started.is_empty(), "{again:?}");
    assert_eq!(again.preparing, 3);
}

#[tokio::test]
async fn a_full_pool_is_left_alone_and_claimed_instances_of_running_builds_stay() {
    let h = harness(STOPPED_NEVER);
    for id in ["i-1", "i-2", "i-3"] {
        h.member("win", id, MemberState::Ready, InstanceState::Stopped);
    }
    h.member("win", "i-4", MemberState::Claimed, InstanceState::Running);
    h.builds
        .set("job-4", ExecutionStatus::Running, None, None, None);
    h.registry
        .update("i-4", |m| m.claimed_by = Some(h.builds.arn("job-4")));
    let report = h.run().await;
    assert!(
        report.started.is_empty() && report.recycled.is_empty(),
        "{report:?}"
    );
    assert_eq!((report.ready, report.claimed), (3, 1));
    assert!(h.fleet.terminated.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_instance_claimed_by_an_execution_that_ended_is_recycled() {
    let h = harness(STOPPED_NEVER);
    h.member("win", "i-1", MemberState::Claimed, InstanceState::Running);
    h.builds
        .set("job-1", ExecutionStatus::Aborted, None, None, None);
    h.registry
        .update("i-1", |m| m.claimed_by = Some(h.builds.arn("job-1")));
    h.member("win", "i-2", MemberState::Claimed, InstanceState::Running);
    h.registry.update("i-2", |m| {
        m.claimed_by = Some(h.builds.arn("never-started"))
    });
    let report = h.run().await;
    let recycled: Vec<&str> = report.recycled.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(recycled, ["i-1", "i-2"]);
    assert_eq!(*h.fleet.terminated.lock().unwrap(), ["i-1", "i-2"]);
    assert_eq!(h.registry.state_of("i-1"), None);
    assert_eq!(report.claimed, 0);
    assert_eq!(report.started.len(), 3, "the pool is refilled");
}

#[tokio::test]
async fn a_failed_lookup_of_the_holder_decides_nothing() {
    let h = harness(STOPPED_NEVER);
    h.member("win", "i-1", MemberState::Claimed, InstanceState::Running);
    h.registry
        .update("i-1", |m| m.claimed_by = Some(h.builds.arn("job-1")));
    *h.builds.failing_describes.lock().unwrap() = 1;
    let report = h.run().await;
    assert!(report.recycled.is_empty());
    assert_eq!(h.registry.state_of("i-1"), Some(MemberState::Claimed));
    assert_eq!(report.failures.len(), 1, "{report:?}");
}

#[tokio::test]
async fn old_worn_broken_and_surplus_instances_are_recycled() {
    let h = harness(RUNNING_ALWAYS);
    h.member("lin", "i-old", MemberState::Ready, InstanceState::Running);
    h.registry
        .update("i-old", |m| m.created_at = NOW - 25 * 3600);
    h.member("lin", "i-worn", MemberState::Ready, InstanceState::Running);
    h.registry.update("i-worn", |m| m.builds = 3);
    h.member(
        "lin",
        "i-stopped",
        MemberState::Ready,
        InstanceState::Stopped,
    );
    h.registry
        .add("lin", "i-gone", MemberState::Ready, NOW - 60);
    for id in ["i-a", "i-b", "i-c"] {
        h.member("lin", id, MemberState::Ready, InstanceState::Running);
    }
    h.registry.update("i-a", |m| m.created_at = NOW - 600);
    let report = h.run().await;
    let why = |id: &str| {
        report
            .recycled
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, w)| *w)
    };
    assert!(why("i-old").unwrap().contains("MaxAgeHours"));
    assert!(why("i-worn").unwrap().contains("MaxBuilds"));
    assert!(why("i-stopped").unwrap().contains("not in the pool's mode"));
    assert!(why("i-gone").unwrap().contains("gone"));
    // Size 2: of the three good ones the oldest goes.
    assert!(why("i-a").unwrap().contains("more ready instances"));
    assert_eq!(report.ready, 2);
    assert!(report.started.is_empty());
}

#[tokio::test]
async fn with_reuse_always_instances_serving_builds_count_towards_the_size() {
    let h = harness(RUNNING_ALWAYS);
    h.member("lin", "i-1", MemberState::Ready, InstanceState::Running);
    h.member("lin", "i-2", MemberState::Claimed, InstanceState::Running);
    h.builds
        .set("job-2", ExecutionStatus::Running, None, None, None);
    h.registry
        .update("i-2", |m| m.claimed_by = Some(h.builds.arn("job-2")));
    let report = h.run().await;
    assert!(
        report.started.is_empty(),
        "i-2 comes back after its build: {report:?}"
    );
}

#[tokio::test]
async fn a_member_claimed_again_meanwhile_is_left_to_its_new_holder() {
    let h = harness(RUNNING_ALWAYS);
    h.member("lin", "i-1", MemberState::Claimed, InstanceState::Running);
    h.builds
        .set("job-1", ExecutionStatus::Succeeded, None, None, None);
    h.registry
        .update("i-1", |m| m.claimed_by = Some(h.builds.arn("job-1")));
    // Between the keeper's read and its write, job-1 returns i-1 and job-5 claims it.
    let new_holder = h.builds.arn("job-5");
    *h.registry.after_read.lock().unwrap() = Some(Box::new(move |members| {
        members[0].claimed_by = Some(new_holder);
    }));
    let report = h.run().await;
    assert!(report.recycled.is_empty(), "{report:?}");
    assert!(h.fleet.terminated.lock().unwrap().is_empty());
    assert_eq!(h.registry.state_of("i-1"), Some(MemberState::Claimed));
}

#[tokio::test]
async fn a_recycling_left_unfinished_is_finished() {
    let h = harness(RUNNING_ALWAYS);
    h.member("lin", "i-2", MemberState::Recycling, InstanceState::Running);
    let report = h.run().await;
    assert_eq!(report.recycled.len(), 1, "{report:?}");
    assert_eq!(*h.fleet.terminated.lock().unwrap(), ["i-2"]);
    assert_eq!(h.registry.state_of("i-2"), None);
}

#[tokio::test]
async fn an_unreadable_registry_is_reported_and_nothing_is_started() {
    let h = harness(STOPPED_NEVER);
    *h.registry.failing_reads.lock().unwrap() = true;
    let report = h.run().await;
    assert!(report.started.is_empty());
    assert_eq!(report.failures.len(), 1);
}
