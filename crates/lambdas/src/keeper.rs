//! The keeper function: on its schedule, terminates what leaked and stops builds nobody waits
//! for (see `ec2_build_core::use_cases::keeper`).

use crate::{parse_envelope, time_left, FunctionError};
use ec2_build_core::events::SCHEDULED_EVENT;
use ec2_build_core::ports::{CodePipeline, Fleet, PoolRegistry, StepFunctions};
use ec2_build_core::{Keeper, PoolKeeper};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// The function's response: what the run found and did.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeeperResponse {
    pub live_instances: usize,
    pub running_executions: usize,
    pub terminated_orphans: Vec<String>,
    pub terminated_overdue: Vec<String>,
    pub stopped_not_in_progress: Vec<String>,
    pub stopped_instance_lost: Vec<String>,
    /// Lookups or actions that failed; looked at again on the next run.
    pub failures: Vec<String>,
    /// The run ended before its deadline with work left for the next one.
    pub deferred: bool,
    /// Each warm pool after the run.
    pub pools: Vec<PoolResponse>,
}

/// One warm pool after a keeper run.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct PoolResponse {
    pub pool: String,
    pub ready: usize,
    pub claimed: usize,
    pub preparing: usize,
    /// Preparations started (execution names).
    pub started: Vec<String>,
    /// Instances recycled, each with the reason.
    pub recycled: Vec<(String, String)>,
    /// Lookups or changes that failed; looked at again on the next run.
    pub failures: Vec<String>,
}

/// Handles one scheduled event: the keeper's run, then the pools' (with the time left).
pub async fn handle<P: CodePipeline, S: StepFunctions, F: Fleet, R: PoolRegistry>(
    event: LambdaEvent<Value>,
    keeper: &Keeper<P, S, F>,
    pools: &PoolKeeper<R, S, F>,
) -> Result<KeeperResponse, FunctionError> {
    let time_left = time_left(event.context.deadline);
    let envelope = parse_envelope(event.payload)?;
    if envelope.detail_type != SCHEDULED_EVENT {
        return Err(FunctionError::InvalidEvent(format!(
            "the keeper handles \"{SCHEDULED_EVENT}\" events, not {:?}; check the schedule that targets it",
            envelope.detail_type
        )));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let report = keeper.run(now, time_left).await?;
    let pool_reports = pools
        .run(now, crate::time_left(event.context.deadline))
        .await;
    let response = KeeperResponse {
        live_instances: report.live_instances,
        running_executions: report.running_executions,
        terminated_orphans: report.terminated_orphans,
        terminated_overdue: report.terminated_overdue,
        stopped_not_in_progress: report.stopped_not_in_progress,
        stopped_instance_lost: report.stopped_instance_lost,
        failures: report.failures,
        deferred: report.deferred,
        pools: pool_reports
            .into_iter()
            .map(|p| PoolResponse {
                pool: p.pool,
                ready: p.ready,
                claimed: p.claimed,
                preparing: p.preparing,
                started: p.started,
                recycled: p
                    .recycled
                    .into_iter()
                    .map(|(id, why)| (id, why.to_string()))
                    .collect(),
                failures: p.failures,
            })
            .collect(),
    };
    crate::metrics::record_keeper_run(&response);
    Ok(response)
}
