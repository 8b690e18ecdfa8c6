//! Keeper Lambda: wiring only.

use ec2_build_aws::{CodePipelineJobs, Ec2Fleet, StepFunctionsExecutions};
use ec2_build_core::{Keeper, KeeperSettings, Settings};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::from_lookup(env)
        .inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let keeper_settings = KeeperSettings::from_lookup(env)
        .inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let keeper_settings_stack = keeper_settings.stack_name.clone();
    let sdk = ec2_build_aws::load_sdk_config().await;
    let keeper = &Keeper::new(
        CodePipelineJobs::from_sdk_config(&sdk, &settings.action_type)?,
        StepFunctionsExecutions::from_sdk_config(&sdk, &settings.state_machine_arn),
        Ec2Fleet::from_sdk_config(&sdk, &keeper_settings.stack_name),
        keeper_settings,
    );
    let metrics = ec2_build_lambdas::metrics::install(&keeper_settings_stack)?;
    lambda_runtime::run(service_fn(move |event| async move {
        let response = ec2_build_lambdas::keeper::handle(event, keeper).await;
        // One EMF document per completed run, written before the response so the run's logs
        // hold it. A failed run records nothing, and flushing then would repeat the last run's
        // gauges (the function's Errors metric counts failed runs).
        if response.is_ok() {
            if let Err(e) = metrics.flush(std::io::stdout()) {
                tracing::warn!(error = %e, "could not write the keeper's metrics");
            }
        }
        response
    }))
    .await
}
