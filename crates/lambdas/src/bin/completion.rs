//! Completion Lambda: wiring only.

use ec2_build_aws::{load_sdk_config, CodePipelineJobs, Ec2Instances, StepFunctionsExecutions};
use ec2_build_core::{JobHandler, Settings};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())
        .inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let sdk = load_sdk_config().await;
    let instances = Ec2Instances::from_sdk_config(&sdk);
    let handler = JobHandler::new(
        CodePipelineJobs::from_sdk_config(&sdk, &settings.action_type)?,
        StepFunctionsExecutions::from_sdk_config(&sdk, &settings.state_machine_arn),
        settings,
    );
    let (handler, instances) = (&handler, &instances);
    lambda_runtime::run(service_fn(move |event| {
        ec2_build_lambdas::completion::handle(event, handler, instances)
    }))
    .await
}
