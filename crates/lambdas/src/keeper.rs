//! The keeper function: on its schedule, terminates what leaked and stops builds nobody waits
//! for (see `ec2_build_core::use_cases::keeper`).

use crate::{parse_envelope, time_left, FunctionError};
use ec2_build_core::events::SCHEDULED_EVENT;
use ec2_build_core::ports::{CodePipeline, Fleet, StepFunctions};
use ec2_build_core::Keeper;
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
}

/// Handles one scheduled event.
pub async fn handle<P: CodePipeline, S: StepFunctions, F: Fleet>(
    event: LambdaEvent<Value>,
    keeper: &Keeper<P, S, F>,
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
    let response = KeeperResponse {
        live_instances: report.live_instances,
        running_executions: report.running_executions,
        terminated_orphans: report.terminated_orphans,
        terminated_overdue: report.terminated_overdue,
        stopped_not_in_progress: report.stopped_not_in_progress,
        stopped_instance_lost: report.stopped_instance_lost,
        failures: report.failures,
        deferred: report.deferred,
    };
    crate::metrics::record_keeper_run(&response);
    Ok(response)
}
