//! Keeper Lambda: wiring only.

use ec2_build_aws::{CodePipelineJobs, DynamoDbPoolRegistry, Ec2Fleet, StepFunctionsExecutions};
use ec2_build_core::{Keeper, KeeperSettings, PoolKeeper, Settings};
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
    let required = |name: &str| {
        env(name).ok_or_else(|| {
            tracing::error!(setting = name, "setting is not set");
            format!("setting {name} is not set")
        })
    };
    let pool_table = required("POOL_TABLE")?;
    let preparations = required("POOL_PREPARATION_STATE_MACHINE_ARN")?;
    let sdk = ec2_build_aws::load_sdk_config().await;
    let builds = StepFunctionsExecutions::from_sdk_config(&sdk, &settings.state_machine_arn);
    let fleet = Ec2Fleet::from_sdk_config(&sdk, &keeper_settings.stack_name);
    let pools = &PoolKeeper::new(
        DynamoDbPoolRegistry::from_sdk_config(&sdk, &pool_table),
        builds.clone(),
        StepFunctionsExecutions::from_sdk_config(&sdk, &preparations),
        fleet.clone(),
        keeper_settings.clone(),
    );
    let keeper = &Keeper::new(
        CodePipelineJobs::from_sdk_config(&sdk, &settings.action_type)?,
        builds,
        fleet,
        keeper_settings,
    );
    let metrics = ec2_build_lambdas::metrics::install(&keeper_settings_stack)?;
    lambda_runtime::run(service_fn(move |event| async move {
        let response = ec2_build_lambdas::keeper::handle(event, keeper, pools).await;
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
