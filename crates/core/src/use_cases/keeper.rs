//! The keeper: on a schedule, makes sure nothing leaks and nothing bills for a stopped pipeline.
//!
//! Every decision rests on an execution's status or the pipeline's own record, never on age
//! alone, and a lookup that fails decides nothing: the item is counted and looked at again on the
//! next run. Each run is bounded by the invocation's deadline, and two runs at once do no harm
//! (terminating a terminated instance and stopping a stopped execution change nothing).

use super::deadline::Deadline;
use crate::model::{ActionExecution, ActionStatus, BuildInstance, ExecutionStatus, ServiceError};
use crate::ports::{CodePipeline, Fleet, StepFunctions};
use crate::progress::{self, Stage};
use crate::settings::KeeperSettings;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// `Error` of an execution the keeper stopped because its action is no longer in progress.
pub const ACTION_NOT_IN_PROGRESS: &str = "PipelineActionNotInProgress";
/// `Error` of an execution the keeper stopped because its instance is gone.
pub const INSTANCE_LOST: &str = "InstanceLost";

/// What one run found and did. The lists hold instance ids or execution ARNs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeeperReport {
    /// Instances carrying the stack's tag that are not yet terminated.
    pub live_instances: usize,
    /// RUNNING executions of the state machine.
    pub running_executions: usize,
    /// Instances terminated because their execution had ended or did not exist.
    pub terminated_orphans: Vec<String>,
    /// Instances terminated because they outlived their build timeout plus the grace period.
    pub terminated_overdue: Vec<String>,
    /// Executions stopped because their CodePipeline action is no longer in progress.
    pub stopped_not_in_progress: Vec<String>,
    /// Executions stopped because their instance was terminated or stopped outside the flow.
    pub stopped_instance_lost: Vec<String>,
    /// Lookups or actions that failed; their items are looked at again on the next run.
    pub failures: Vec<String>,
    /// The run stopped before the deadline with work left for the next one.
    pub deferred: bool,
}

/// Why a run could decide nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeeperError {
    /// The stack's instances could not be listed.
    #[error("listing the stack's instances failed: {0}")]
    ListInstances(ServiceError),
    /// The running executions could not be listed.
    #[error("listing the running executions failed: {0}")]
    ListExecutions(ServiceError),
}

/// The keeper over the CodePipeline, Step Functions and fleet ports.
pub struct Keeper<P, S, F> {
    pipeline: P,
    steps: S,
    fleet: F,
    settings: KeeperSettings,
}

impl<P: CodePipeline, S: StepFunctions, F: Fleet> Keeper<P, S, F> {
    pub fn new(pipeline: P, steps: S, fleet: F, settings: KeeperSettings) -> Self {
        Self {
            pipeline,
            steps,
            fleet,
            settings,
        }
    }

    /// One run at `now` (seconds since the epoch) with `time_left` until the deadline.
    pub async fn run(&self, now: u64, time_left: Duration) -> Result<KeeperReport, KeeperError> {
        let mut deadline = Deadline::new(time_left);
        let mut report = KeeperReport::default();
        // Instances first, executions second: an instance seen here was launched by an execution
        // that started before the listing below, so a RUNNING one is in it.
        let instances = self
            .fleet
            .build_instances()
            .await
            .map_err(KeeperError::ListInstances)?;
        let running: HashSet<String> = self
            .steps
            .running_executions()
            .await
            .map_err(KeeperError::ListExecutions)?
            .into_iter()
            .map(|e| e.arn)
            .collect();
        report.running_executions = running.len();
        report.live_instances = instances.iter().filter(|i| i.state.is_live()).count();

        let by_execution = group_by_execution(&instances);
        self.terminate_orphans(&by_execution, &running, now, &mut deadline, &mut report)
            .await;
        let running_builds: BTreeMap<&str, &Vec<&BuildInstance>> = by_execution
            .iter()
            .filter(|(arn, _)| running.contains(**arn))
            .map(|(arn, list)| (*arn, list))
            .collect();
        self.stop_lost_instances(&running_builds, &mut deadline, &mut report)
            .await;
        self.stop_not_in_progress(&running_builds, &mut deadline, &mut report)
            .await;
        info!(
            live_instances = report.live_instances,
            running_executions = report.running_executions,
            terminated_orphans = report.terminated_orphans.len(),
            terminated_overdue = report.terminated_overdue.len(),
            stopped_not_in_progress = report.stopped_not_in_progress.len(),
            stopped_instance_lost = report.stopped_instance_lost.len(),
            failures = report.failures.len(),
            deferred = report.deferred,
            "keeper run done"
        );
        Ok(report)
    }

    /// Live instances whose execution is not RUNNING (confirmed by DescribeExecution, since the
    /// listing may lag) or that outlived their timeout plus grace.
    async fn terminate_orphans(
        &self,
        by_execution: &BTreeMap<&str, Vec<&BuildInstance>>,
        running: &HashSet<String>,
        now: u64,
        deadline: &mut Deadline,
        report: &mut KeeperReport,
    ) {
        let mut orphans = Vec::new();
        let mut overdue = Vec::new();
        for (arn, list) in by_execution {
            let live: Vec<&BuildInstance> =
                list.iter().copied().filter(|i| i.state.is_live()).collect();
            if live.is_empty() {
                continue;
            }
            if running.contains(*arn) {
                overdue.extend(
                    live.iter()
                        .filter(|i| self.is_overdue(i, now))
                        .map(|i| i.id.clone()),
                );
                continue;
            }
            if !self.in_time(deadline, report) {
                break;
            }
            let started = Instant::now();
            let ended = match self.steps.describe_execution(arn).await {
                Ok(execution) => execution.status != ExecutionStatus::Running,
                Err(ServiceError::ExecutionNotFound(_)) => true,
                Err(e) => {
                    warn!(execution_arn = arn, error = %e, "cannot tell whether the execution runs; its instances stay until the next run");
                    report
                        .failures
                        .push(format!("DescribeExecution {arn}: {e}"));
                    false
                }
            };
            deadline.record_round(started.elapsed());
            if ended {
                orphans.extend(live.iter().map(|i| i.id.clone()));
            }
        }
        report.terminated_orphans = self.terminate(orphans, report).await;
        report.terminated_overdue = self.terminate(overdue, report).await;
    }

    fn is_overdue(&self, instance: &BuildInstance, now: u64) -> bool {
        match (instance.tags.build_seconds, instance.launched_at) {
            (Some(build), Some(launched)) => {
                now.saturating_sub(launched) > build + self.settings.grace_seconds
            }
            _ => false,
        }
    }

    async fn terminate(&self, ids: Vec<String>, report: &mut KeeperReport) -> Vec<String> {
        if ids.is_empty() {
            return ids;
        }
        match self.fleet.terminate(&ids).await {
            Ok(stopped) => {
                info!(instances = ?stopped, "terminated");
                stopped
            }
            Err(e) => {
                warn!(instances = ?ids, error = %e, "TerminateInstances failed; tried again next run");
                report
                    .failures
                    .push(format!("TerminateInstances {ids:?}: {e}"));
                Vec::new()
            }
        }
    }

    /// RUNNING executions in the agent or build stage whose every instance is down.
    async fn stop_lost_instances(
        &self,
        running_builds: &BTreeMap<&str, &Vec<&BuildInstance>>,
        deadline: &mut Deadline,
        report: &mut KeeperReport,
    ) {
        for (arn, list) in running_builds {
            if list.is_empty() || !list.iter().all(|i| i.state.is_down()) {
                continue;
            }
            if !self.in_time(deadline, report) {
                return;
            }
            let started = Instant::now();
            // The flow terminates the instance itself in its release stage: only an instance
            // gone while the build needs it is lost.
            let stage = match self.steps.current_state(arn).await {
                Ok(state) => state
                    .as_deref()
                    .and_then(progress::of_state)
                    .map(|p| p.stage),
                Err(e) => {
                    report
                        .failures
                        .push(format!("GetExecutionHistory {arn}: {e}"));
                    None
                }
            };
            if matches!(stage, Some(Stage::Agent | Stage::Build)) {
                let lost = list
                    .iter()
                    .map(|i| {
                        let reason = i.state_reason.as_deref().unwrap_or("no reason given");
                        format!("{} is {:?} ({reason})", i.id, i.state)
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                let cause = format!(
                    "The build instance stopped running outside the build flow: {lost}. The keeper stopped the build."
                );
                if self.stop(arn, INSTANCE_LOST, &cause, report).await {
                    report.stopped_instance_lost.push(arn.to_string());
                }
            }
            deadline.record_round(started.elapsed());
        }
    }

    /// RUNNING executions whose CodePipeline action execution is no longer in progress, looked up
    /// with one ListActionExecutions per pipeline (and one per pipeline execution that page does
    /// not hold).
    async fn stop_not_in_progress(
        &self,
        running_builds: &BTreeMap<&str, &Vec<&BuildInstance>>,
        deadline: &mut Deadline,
        report: &mut KeeperReport,
    ) {
        let mut by_pipeline: BTreeMap<&str, Vec<(&str, ActionKey)>> = BTreeMap::new();
        for (arn, list) in running_builds {
            if report.stopped_instance_lost.iter().any(|a| a == arn) {
                continue;
            }
            if let Some((pipeline, key)) = list.first().and_then(|i| action_key(i)) {
                by_pipeline.entry(pipeline).or_default().push((arn, key));
            }
        }
        for (pipeline, builds) in by_pipeline {
            if !self.in_time(deadline, report) {
                return;
            }
            let started = Instant::now();
            let mut known = match self.pipeline.action_executions(pipeline, None).await {
                Ok(list) => list,
                Err(e) => {
                    report
                        .failures
                        .push(format!("ListActionExecutions {pipeline}: {e}"));
                    continue;
                }
            };
            let mut fetched = HashSet::new();
            for (arn, key) in builds {
                if find_build(&known, arn, &key).is_none() && fetched.insert(key.0.clone()) {
                    match self
                        .pipeline
                        .action_executions(pipeline, Some(&key.0))
                        .await
                    {
                        Ok(list) => known.extend(list),
                        Err(e) => {
                            report
                                .failures
                                .push(format!("ListActionExecutions {pipeline} {}: {e}", key.0));
                            continue;
                        }
                    }
                }
                match find_build(&known, arn, &key) {
                    Some(status) if status.is_over() => {
                        let cause = format!(
                            "CodePipeline reports action {} of stage {} in pipeline execution {} of {pipeline} as {}: the pipeline was stopped and the action abandoned, or it ended without this build. The keeper stopped the build.",
                            key.2,
                            key.1,
                            key.0,
                            status.as_str()
                        );
                        if self.stop(arn, ACTION_NOT_IN_PROGRESS, &cause, report).await {
                            report.stopped_not_in_progress.push(arn.to_string());
                        }
                    }
                    Some(ActionStatus::InProgress) => {}
                    Some(other) => report.failures.push(format!(
                        "action {} of stage {} in pipeline execution {} of {pipeline} has status {}, which the keeper does not act on",
                        key.2,
                        key.1,
                        key.0,
                        other.as_str()
                    )),
                    None => report.failures.push(format!(
                        "no action execution of {pipeline} reports build {arn}"
                    )),
                }
            }
            deadline.record_round(started.elapsed());
        }
    }

    async fn stop(&self, arn: &str, error: &str, cause: &str, report: &mut KeeperReport) -> bool {
        match self.steps.stop_execution(arn, error, cause).await {
            Ok(()) => {
                info!(execution_arn = arn, error, "stopped the execution");
                true
            }
            Err(e) => {
                warn!(execution_arn = arn, error = %e, "StopExecution failed; tried again next run");
                report.failures.push(format!("StopExecution {arn}: {e}"));
                false
            }
        }
    }

    fn in_time(&self, deadline: &Deadline, report: &mut KeeperReport) -> bool {
        let ok = deadline.allows_round_after(Duration::ZERO);
        if !ok {
            report.deferred = true;
        }
        ok
    }
}

/// (pipeline execution id, stage, action) of a build.
type ActionKey = (String, String, String);

/// The pipeline and action a build instance was launched for, from its tags.
fn action_key(instance: &BuildInstance) -> Option<(&str, ActionKey)> {
    let tags = &instance.tags;
    Some((
        tags.pipeline.as_deref()?,
        (
            tags.pipeline_execution_id.clone()?,
            tags.stage.clone()?,
            tags.action.clone()?,
        ),
    ))
}

/// The status of the action execution that runs build `arn`: the one reporting the ARN as its
/// external execution id. A retried stage keeps the pipeline execution id, so the same (pipeline
/// execution, stage, action) can hold an earlier attempt that failed beside the one in progress;
/// the ARN tells which is this build's. When no record names the ARN (the start answer is not
/// recorded, or CodePipeline leaves the id out of an abandoned action), an attempt in progress
/// for the action keeps the build running, and otherwise the most recent attempt decides.
fn find_build<'a>(
    known: &'a [ActionExecution],
    arn: &str,
    key: &ActionKey,
) -> Option<&'a ActionStatus> {
    let same_action = |a: &&ActionExecution| {
        a.pipeline_execution_id == key.0 && a.stage == key.1 && a.action == key.2
    };
    if let Some(named) = known
        .iter()
        .find(|a| a.external_execution_id.as_deref() == Some(arn))
    {
        return Some(&named.status);
    }
    let attempts: Vec<&ActionExecution> = known
        .iter()
        .filter(same_action)
        .filter(|a| a.external_execution_id.is_none())
        .collect();
    attempts
        .iter()
        .find(|a| a.status == ActionStatus::InProgress)
        .or_else(|| attempts.first())
        .map(|a| &a.status)
}

fn group_by_execution(instances: &[BuildInstance]) -> BTreeMap<&str, Vec<&BuildInstance>> {
    let mut groups: BTreeMap<&str, Vec<&BuildInstance>> = BTreeMap::new();
    for instance in instances {
        if let Some(arn) = instance.tags.execution_arn.as_deref() {
            groups.entry(arn).or_default().push(instance);
        }
    }
    groups
}
