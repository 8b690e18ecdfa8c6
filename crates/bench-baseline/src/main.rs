//! Benchmark baseline for `make bench`: the same start-up as the product's Lambdas
//! (default tracing subscriber, `aws_config::load_defaults`, one CodePipeline, one Step Functions
//! and one EC2 client) and a handler that answers at once without calling AWS. The cold start and
//! peak RSS of the real `poller` and `completion` binaries are compared against this one.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = (
        aws_sdk_codepipeline::Client::new(&sdk),
        aws_sdk_sfn::Client::new(&sdk),
        aws_sdk_ec2::Client::new(&sdk),
    );
    let clients = &clients;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        // Keep the clients alive (and in the binary) like the product's handlers do.
        let _ = clients;
        Ok::<Value, Error>(json!({ "action": "ignored", "reason": "baseline" }))
    }))
    .await
}
