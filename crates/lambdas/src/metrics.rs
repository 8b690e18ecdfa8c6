//! The stack's CloudWatch metrics, in embedded metric format (EMF): JSON documents on stdout,
//! which CloudWatch Logs turns into metrics without any API call. The keeper writes its counts
//! once per run; the completion function writes each finished build's durations.

use crate::keeper::KeeperResponse;
use ec2_build_core::model::ExecutionEnded;
use ec2_build_core::ports::{CodePipeline, HeldJobs, StepFunctions};
use ec2_build_core::timeline::{action_started_ms, pipeline_execution, BuildTimeline};
use ec2_build_core::JobWorker;
use metrics_cloudwatch_embedded::{Builder, Collector};

/// CloudWatch namespace of every metric the stack emits.
pub const NAMESPACE: &str = "ec2-build";
/// The dimension every metric carries: the stack name, so two deployments do not mix.
pub const STACK_DIMENSION: &str = "Stack";

/// Names of the keeper's metrics, as the template's alarms and dashboard use them.
pub const KEEPER_METRICS: [&str; 7] = [
    "KeeperLiveInstances",
    "KeeperRunningExecutions",
    "KeeperTerminatedOrphans",
    "KeeperTerminatedOverdue",
    "KeeperStoppedNotInProgress",
    "KeeperStoppedInstanceLost",
    "KeeperFailures",
];

/// Installs the process-wide metrics recorder for stack `stack_name`; call once, at start-up.
pub fn install(stack_name: &str) -> Result<&'static Collector, String> {
    Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(STACK_DIMENSION, stack_name.to_string())
        // Zeros too: an alarm on "terminations > 0" needs a data point every run.
        .emit_zeros(true)
        .init()
        .map_err(|e| e.to_string())
}

/// Records one keeper run; the collector's next flush writes it.
pub fn record_keeper_run(run: &KeeperResponse) {
    let counts = [
        run.live_instances,
        run.running_executions,
        run.terminated_orphans.len(),
        run.terminated_overdue.len(),
        run.stopped_not_in_progress.len(),
        run.stopped_instance_lost.len(),
        run.failures.len(),
    ];
    for (name, count) in KEEPER_METRICS.iter().zip(counts) {
        metrics::gauge!(*name).set(count as f64);
    }
    for pool in &run.pools {
        let counts = [
            pool.ready,
            pool.claimed,
            pool.preparing,
            pool.recycled.len(),
        ];
        for (name, count) in POOL_METRICS.iter().zip(counts) {
            metrics::gauge!(*name, POOL_DIMENSION => pool.pool.clone()).set(count as f64);
        }
    }
}

/// Per warm pool and keeper run, with the dimension [`POOL_DIMENSION`]: its ready, claimed
/// and preparing instances, and the instances the run recycled.
pub const POOL_METRICS: [&str; 4] = ["PoolReady", "PoolClaimed", "PoolPreparing", "PoolRecycled"];

/// Names of the per-build duration metrics (seconds), one value each per finished build, with
/// the dimensions [`MARKET_DIMENSION`] and [`POOL_DIMENSION`] besides the stack.
pub const BUILD_DURATION_METRICS: [&str; 6] = [
    "BuildQueueTime",
    "BuildAcquisitionTime",
    "BuildAgentWaitTime",
    "BuildTime",
    "BuildUploadTime",
    "BuildTotalTime",
];
/// One value (1) per finished build, with the dimension [`RESULT_DIMENSION`] besides the stack:
/// its sample count is the number of builds of each result.
pub const BUILDS_FINISHED_METRIC: &str = "BuildsFinished";
/// `Succeeded`, a failure stage (`BuildFailed`, ...), `Failed`, `Aborted` or `TimedOut`.
pub const RESULT_DIMENSION: &str = "Result";
/// `on-demand`, `spot`, or `none` when no instance was launched.
pub const MARKET_DIMENSION: &str = "Market";
/// The warm pool the build's instance came from, or `cold` (a fresh instance).
pub const POOL_DIMENSION: &str = "Pool";

/// Records one finished build; the collector's next flush writes it. Durations that did not
/// happen (no instance, no upload) are left out rather than written as zeros.
pub fn record_build(timeline: &BuildTimeline) {
    let d = timeline.durations();
    let durations = [
        d.queue,
        d.acquisition,
        d.agent_wait,
        d.build,
        d.upload,
        d.total,
    ];
    let market = timeline.market().as_str();
    let pool = timeline.pool().to_string();
    for (name, seconds) in BUILD_DURATION_METRICS.iter().zip(durations) {
        if let Some(seconds) = seconds {
            metrics::describe_histogram!(*name, metrics::Unit::Seconds, "");
            metrics::histogram!(*name, MARKET_DIMENSION => market, POOL_DIMENSION => pool.clone())
                .record(seconds);
        }
    }
    metrics::describe_histogram!(BUILDS_FINISHED_METRIC, metrics::Unit::Count, "");
    metrics::histogram!(BUILDS_FINISHED_METRIC, RESULT_DIMENSION => timeline.result().to_string())
        .record(1.0);
}

/// Reads a finished build's timeline (one GetExecutionHistory call a 1,000 events, one
/// ListActionExecutions call for the action's start) and records it. A failed lookup records
/// nothing and is logged: metrics never fail the function.
pub async fn record_finished_build<P: CodePipeline, S: StepFunctions, H: HeldJobs>(
    worker: &JobWorker<P, S, H>,
    ended: &ExecutionEnded,
) {
    let history = match worker.steps().execution_history(&ended.execution_arn).await {
        Ok(history) => history,
        Err(e) => {
            tracing::warn!(error = %e, "no build metrics: the execution history cannot be read");
            return;
        }
    };
    let queued_ms = match pipeline_execution(&history) {
        Some((pipeline, pipeline_execution_id)) => match worker
            .pipeline()
            .action_executions(&pipeline, Some(&pipeline_execution_id))
            .await
        {
            Ok(actions) => action_started_ms(&actions, &ended.execution_arn),
            Err(e) => {
                tracing::warn!(error = %e, "build metrics without the queue time");
                None
            }
        },
        None => None,
    };
    record_build(&BuildTimeline::from_history(&history, queued_ms));
}
