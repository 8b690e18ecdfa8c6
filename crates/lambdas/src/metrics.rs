//! The keeper's counts as CloudWatch metrics, in embedded metric format (EMF): one JSON document
//! per run on stdout, which CloudWatch Logs turns into metrics without any API call.

use crate::keeper::KeeperResponse;
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
}
