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
    let sdk = ec2_build_aws::load_sdk_config().await;
    let keeper = &Keeper::new(
        CodePipelineJobs::from_sdk_config(&sdk, &settings.action_type)?,
        StepFunctionsExecutions::from_sdk_config(&sdk, &settings.state_machine_arn),
        Ec2Fleet::from_sdk_config(&sdk, &keeper_settings.stack_name),
        keeper_settings,
    );
    lambda_runtime::run(service_fn(move |event| {
        ec2_build_lambdas::keeper::handle(event, keeper)
    }))
    .await
}
