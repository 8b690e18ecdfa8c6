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
    // The stack name is the metrics' Stack dimension; the template sets it.
    let stack_name = std::env::var("STACK_NAME").map_err(|_| {
        "STACK_NAME is not set: set it to the stack name (the template does) for the build metrics"
    })?;
    let metrics = ec2_build_lambdas::metrics::install(&stack_name)?;
    lambda_runtime::run(service_fn(move |event| async move {
        let response = ec2_build_lambdas::completion::handle(event, completion).await;
        // The finished build's EMF document, in this invocation's logs (nothing when none ended).
        if let Err(e) = metrics.flush(std::io::stdout()) {
            tracing::warn!(error = %e, "could not write the build metrics");
        }
        response
    }))
    .await
}
