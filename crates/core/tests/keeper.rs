//! The keeper's decisions against fakes: what it terminates and stops, and what it leaves alone.

use ec2_build_core::model::{ActionExecution, ActionStatus, ExecutionStatus, InstanceState};
use ec2_build_core::testing::{Fakes, AMPLE_TIME};
use ec2_build_core::use_cases::keeper::{ACTION_NOT_IN_PROGRESS, INSTANCE_LOST};
use ec2_build_core::{KeeperError, KeeperReport, ServiceError};
use std::time::Duration;

/// Seconds after the fixtures' launch time (0) at which the keeper runs: well within the
/// one-hour build timeout plus grace.
const SOON: u64 = 600;

fn fakes_with_build(status: ExecutionStatus) -> Fakes {
    let fakes = Fakes::default();
    fakes.steps.set("job-1", status, None, None, None);
    fakes.instances.launch(&fakes.steps.arn("job-1"), &["i-1"]);
    fakes
}

/// An action execution of the fixtures' action (`app` / `pe-1` / `Build` / `Compile`) that runs
/// the build of `job`.
fn attempt(fakes: &Fakes, job: &str, status: ActionStatus) -> ActionExecution {
    ActionExecution {
        pipeline_execution_id: "pe-1".into(),
        stage: "Build".into(),
        action: "Compile".into(),
        status,
        external_execution_id: Some(fakes.steps.arn(job)),
        started_at_ms: None,
    }
}

/// What ListActionExecutions reports for the fixtures' pipeline.
fn set_actions(fakes: &Fakes, actions: Vec<ActionExecution>) {
    fakes
        .pipeline
        .action_executions
        .lock()
        .unwrap()
        .insert("app".into(), actions);
}

/// The action execution of job-1's build has `status`.
fn set_action(fakes: &Fakes, status: ActionStatus) {
    set_actions(fakes, vec![attempt(fakes, "job-1", status)]);
}

async fn run(fakes: &Fakes, now: u64) -> KeeperReport {
    fakes.keeper().run(now, AMPLE_TIME).await.unwrap()
}

#[tokio::test]
async fn instance_of_a_running_build_in_progress_is_left_alone() {
    let fakes = fakes_with_build(ExecutionStatus::Running);
    set_action(&fakes, ActionStatus::InProgress);
    let report = run(&fakes, SOON).await;
    assert_eq!(report.live_instances, 1);
    assert!(fakes.instances.terminated.lock().unwrap().is_empty());
    assert!(fakes.steps.stops.lock().unwrap().is_empty());
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}

#[tokio::test]
async fn instance_of_an_ended_or_unknown_execution_is_terminated() {
    for status in [
        ExecutionStatus::Succeeded,
        ExecutionStatus::Aborted,
        ExecutionStatus::Failed,
    ] {
        let fakes = fakes_with_build(status.clone());
        let report = run(&fakes, SOON).await;
        assert_eq!(report.terminated_orphans, vec!["i-1"], "{status:?}");
    }
    let fakes = Fakes::default();
    fakes
        .instances
        .launch(&fakes.steps.arn("never-started"), &["i-2"]);
    assert_eq!(run(&fakes, SOON).await.terminated_orphans, vec!["i-2"]);
}

#[tokio::test]
async fn a_failed_lookup_terminates_nothing_and_is_counted() {
    let fakes = fakes_with_build(ExecutionStatus::Succeeded);
    *fakes.steps.failing_describes.lock().unwrap() = 1;
    let report = run(&fakes, SOON).await;
    assert!(report.terminated_orphans.is_empty());
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(
        fakes.instances.state_of("i-1"),
        Some(InstanceState::Running)
    );
    // The next run looks again and terminates it.
    assert_eq!(run(&fakes, SOON).await.terminated_orphans, vec!["i-1"]);
}

#[tokio::test]
async fn instance_past_its_timeout_and_grace_is_terminated_even_if_running() {
    let fakes = fakes_with_build(ExecutionStatus::Running);
    // One-hour build, 2,400 s grace: at 6,000 s it is still within; at 6,001 s it is overdue.
    assert!(run(&fakes, 6000).await.terminated_overdue.is_empty());
    assert_eq!(run(&fakes, 6001).await.terminated_overdue, vec!["i-1"]);
}

#[tokio::test]
async fn build_whose_action_was_abandoned_is_stopped_with_a_cause_that_says_why() {
    let fakes = fakes_with_build(ExecutionStatus::Running);
    set_action(&fakes, ActionStatus::Abandoned);
    let report = run(&fakes, SOON).await;
    let arn = fakes.steps.arn("job-1");
    assert_eq!(report.stopped_not_in_progress, vec![arn.clone()]);
    let stops = fakes.steps.stops.lock().unwrap().clone();
    assert_eq!(stops.len(), 1);
    assert_eq!(
        (stops[0].0.as_str(), stops[0].1.as_str()),
        (arn.as_str(), ACTION_NOT_IN_PROGRESS)
    );
    assert!(stops[0].2.contains("as Abandoned"), "{}", stops[0].2);
    // One lookup for the pipeline, none per execution.
    let lookups = fakes
        .pipeline
        .calls()
        .iter()
        .filter(|c| **c == "ListActionExecutions")
        .count();
    assert_eq!(lookups, 1);
}

#[tokio::test]
async fn builds_of_one_pipeline_cost_one_lookup() {
    let fakes = Fakes::default();
    for name in ["job-1", "job-2", "job-3"] {
        fakes
            .steps
            .set(name, ExecutionStatus::Running, None, None, None);
        fakes
            .instances
            .launch(&fakes.steps.arn(name), &[&format!("i-{name}")]);
    }
    let attempts = ["job-1", "job-2", "job-3"]
        .map(|job| attempt(&fakes, job, ActionStatus::InProgress))
        .to_vec();
    set_actions(&fakes, attempts);
    let report = run(&fakes, SOON).await;
    assert_eq!(fakes.pipeline.calls(), vec!["ListActionExecutions"]);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}

#[tokio::test]
async fn an_abandoned_action_that_names_no_build_still_stops_its_build() {
    // CodePipeline may leave the external execution id out of an abandoned action's record.
    let fakes = fakes_with_build(ExecutionStatus::Running);
    let mut abandoned = attempt(&fakes, "job-1", ActionStatus::Abandoned);
    abandoned.external_execution_id = None;
    set_actions(&fakes, vec![abandoned]);
    let report = run(&fakes, SOON).await;
    assert_eq!(
        report.stopped_not_in_progress,
        vec![fakes.steps.arn("job-1")]
    );
    // While another attempt of the action runs, an anonymous record decides nothing yet.
    let fakes = fakes_with_build(ExecutionStatus::Running);
    let mut abandoned = attempt(&fakes, "job-1", ActionStatus::Abandoned);
    abandoned.external_execution_id = None;
    let mut retry = attempt(&fakes, "job-2", ActionStatus::InProgress);
    retry.external_execution_id = None;
    set_actions(&fakes, vec![retry, abandoned]);
    assert!(run(&fakes, SOON).await.stopped_not_in_progress.is_empty());
}

#[tokio::test]
async fn action_not_in_the_recent_page_is_looked_up_by_its_pipeline_execution_and_never_guessed() {
    let fakes = fakes_with_build(ExecutionStatus::Running);
    // The pipeline knows nothing of pe-1: after the filtered lookup, still nothing. No stop.
    let report = run(&fakes, SOON).await;
    assert!(fakes.steps.stops.lock().unwrap().is_empty());
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(
        fakes.pipeline.calls(),
        vec!["ListActionExecutions", "ListActionExecutions"]
    );
    // A failing lookup stops nothing either.
    *fakes.pipeline.failing_action_lookups.lock().unwrap() = true;
    let report = run(&fakes, SOON).await;
    assert!(fakes.steps.stops.lock().unwrap().is_empty());
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
}

#[tokio::test]
async fn build_whose_instance_was_terminated_from_outside_is_stopped_naming_it() {
    let fakes = fakes_with_build(ExecutionStatus::Running);
    fakes.instances.set_state(
        "i-1",
        InstanceState::Terminated,
        "Client.UserInitiatedShutdown: User initiated shutdown",
    );
    *fakes.steps.current_state.lock().unwrap() = Some("RunBuild".into());
    let report = run(&fakes, SOON).await;
    assert_eq!(report.stopped_instance_lost, vec![fakes.steps.arn("job-1")]);
    let stops = fakes.steps.stops.lock().unwrap().clone();
    assert_eq!(stops[0].1, INSTANCE_LOST);
    assert!(stops[0].2.contains("i-1 is Terminated"), "{}", stops[0].2);
    assert!(
        stops[0].2.contains("User initiated shutdown"),
        "{}",
        stops[0].2
    );
}

#[tokio::test]
async fn instance_terminated_by_the_flows_own_release_is_not_lost() {
    let fakes = fakes_with_build(ExecutionStatus::Running);
    fakes
        .instances
        .set_state("i-1", InstanceState::ShuttingDown, "User initiated");
    *fakes.steps.current_state.lock().unwrap() = Some("Release".into());
    let report = run(&fakes, SOON).await;
    assert!(report.stopped_instance_lost.is_empty());
    assert!(fakes.steps.stops.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_listing_decides_nothing() {
    let fakes = fakes_with_build(ExecutionStatus::Succeeded);
    *fakes.instances.failing_listing.lock().unwrap() = true;
    let err = fakes.keeper().run(SOON, AMPLE_TIME).await.unwrap_err();
    assert!(
        matches!(err, KeeperError::ListInstances(ServiceError::Call { .. })),
        "{err:?}"
    );
    assert!(fakes.instances.terminated.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_second_run_repeats_nothing() {
    // Two keepers at once see the same state; what the second does after the first is what a
    // concurrent one would do at worst: terminate or stop again, which changes nothing.
    let fakes = fakes_with_build(ExecutionStatus::Aborted);
    let first = run(&fakes, SOON).await;
    let second = run(&fakes, SOON).await;
    assert_eq!(first.terminated_orphans, vec!["i-1"]);
    assert!(second.terminated_orphans.is_empty(), "{second:?}");
    assert!(first.failures.is_empty() && second.failures.is_empty());
}

#[tokio::test]
async fn a_retried_stage_is_told_apart_by_the_build_it_runs() {
    // The stage failed once (job-0's build) and was retried (job-1's build, running): both
    // attempts share the pipeline execution, stage and action.
    let fakes = fakes_with_build(ExecutionStatus::Running);
    set_actions(
        &fakes,
        vec![
            attempt(&fakes, "job-1", ActionStatus::InProgress),
            attempt(&fakes, "job-0", ActionStatus::Failed),
        ],
    );
    let report = run(&fakes, SOON).await;
    assert!(report.stopped_not_in_progress.is_empty(), "{report:?}");
    assert!(fakes.steps.stops.lock().unwrap().is_empty());

    // The other way round: job-1's attempt was abandoned and the retry runs job-2's build.
    let fakes = fakes_with_build(ExecutionStatus::Running);
    set_actions(
        &fakes,
        vec![
            attempt(&fakes, "job-2", ActionStatus::InProgress),
            attempt(&fakes, "job-1", ActionStatus::Abandoned),
        ],
    );
    let report = run(&fakes, SOON).await;
    assert_eq!(
        report.stopped_not_in_progress,
        vec![fakes.steps.arn("job-1")]
    );
}

#[tokio::test]
async fn an_instance_without_a_launch_time_is_never_overdue() {
    let fakes = fakes_with_build(ExecutionStatus::Running);
    fakes.instances.fleet.lock().unwrap()[0].launched_at = None;
    assert!(run(&fakes, 1_000_000).await.terminated_overdue.is_empty());
}

#[tokio::test]
async fn a_run_out_of_time_defers_its_lookups() {
    let fakes = fakes_with_build(ExecutionStatus::Succeeded);
    let report = fakes
        .keeper()
        .run(SOON, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(report.deferred);
    assert!(report.terminated_orphans.is_empty());
}
