//! Completion Lambda: wiring only.

use ec2_build_core::{Completion, Settings};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())
        .inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let sdk = ec2_build_aws::load_sdk_config().await;
    let adapters = ec2_build_aws::Adapters::from_sdk_config(&sdk, &settings)?;
    let completion = &Completion::new(adapters.job_worker(settings), adapters.instances.clone());
    lambda_runtime::run(service_fn(move |event| {
        ec2_build_lambdas::completion::handle(event, completion)
    }))
    .await
}
