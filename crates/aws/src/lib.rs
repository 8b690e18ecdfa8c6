//! Adapters: the ports of `ec2-build-core` implemented over the AWS SDK clients. SDK errors become
//! domain errors here, so the core never sees an SDK type.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

mod codepipeline;
mod dynamodb;
mod ec2;
mod error;
mod fleet;
mod held_jobs;
mod pool_registry;
mod sfn;

pub use codepipeline::CodePipelineJobs;
pub use ec2::Ec2Instances;
pub use error::AdapterError;
pub use fleet::Ec2Fleet;
pub use held_jobs::{DynamoDbHeldJobs, RECORD_LIFETIME_SECONDS};
pub use pool_registry::DynamoDbPoolRegistry;
pub use sfn::StepFunctionsExecutions;

/// Tag key the state machine puts on instances: the execution ARN.
pub const EXECUTION_TAG: &str = "ec2-build:execution-arn";
/// Tag key the state machine puts on instances: the stack name.
pub const STACK_TAG: &str = "ec2-build:stack";

/// Longest wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a single attempt of a call may take: a stalled call is cut and retried instead of
/// running into the function's timeout between AcknowledgeJob and StartExecution.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a call may take with its retries; `ec2_build_core::use_cases::job::JOB_TIME_RESERVE`
/// counts on it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);
/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 4;

/// Loads the shared SDK configuration from the environment (credentials, region, and
/// `AWS_ENDPOINT_URL` when set, which is how the local stack is reached), with the timeouts above
/// and the standard retry mode: exponential backoff with full jitter on throttling and transient
/// errors, up to [`MAX_ATTEMPTS`]. Not the adaptive mode: its client-side rate limiter learns the
/// send rate of one short-lived function instance, and after two throttled PollForJobs calls it
/// held the third past a 25 s operation timeout (tests/e2e/test_throttling.py, local stack).
/// Every call the functions make is safe to retry (StartExecution is idempotent for the same
/// name and input; a repeated answer is refused as already given and counted so).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}

fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
}

impl CodePipelineJobs {
    /// Client from the shared SDK configuration.
    pub fn from_sdk_config(
        config: &aws_config::SdkConfig,
        action_type: &ec2_build_core::ActionType,
    ) -> Result<Self, AdapterError> {
        Self::new(aws_sdk_codepipeline::Client::new(config), action_type)
    }
}

impl StepFunctionsExecutions {
    /// Client from the shared SDK configuration.
    pub fn from_sdk_config(config: &aws_config::SdkConfig, state_machine_arn: &str) -> Self {
        Self::new(aws_sdk_sfn::Client::new(config), state_machine_arn)
    }
}

impl Ec2Instances {
    /// Client from the shared SDK configuration.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_ec2::Client::new(config))
    }
}

impl DynamoDbHeldJobs {
    /// Client from the shared SDK configuration, for the table named `table`.
    pub fn from_sdk_config(config: &aws_config::SdkConfig, table: &str) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), table)
    }
}

impl DynamoDbPoolRegistry {
    /// Client from the shared SDK configuration, for the registry table named `table`.
    pub fn from_sdk_config(config: &aws_config::SdkConfig, table: &str) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), table)
    }
}

impl Ec2Fleet {
    /// Client from the shared SDK configuration, for the instances of stack `stack_name`.
    pub fn from_sdk_config(config: &aws_config::SdkConfig, stack_name: &str) -> Self {
        Self::new(aws_sdk_ec2::Client::new(config), stack_name)
    }
}

/// The adapters of every port the functions use, over SDK clients from one configuration.
#[derive(Clone)]
pub struct Adapters {
    pub pipeline: CodePipelineJobs,
    pub steps: StepFunctionsExecutions,
    pub held: DynamoDbHeldJobs,
    pub instances: Ec2Instances,
}

/// The job worker both functions run, over the adapters.
pub type AwsJobWorker =
    ec2_build_core::JobWorker<CodePipelineJobs, StepFunctionsExecutions, DynamoDbHeldJobs>;

impl Adapters {
    /// Clients for the deployment `settings` describe.
    pub fn from_sdk_config(
        config: &aws_config::SdkConfig,
        settings: &ec2_build_core::Settings,
    ) -> Result<Self, AdapterError> {
        Ok(Self {
            pipeline: CodePipelineJobs::from_sdk_config(config, &settings.action_type)?,
            steps: StepFunctionsExecutions::from_sdk_config(config, &settings.state_machine_arn),
            held: DynamoDbHeldJobs::from_sdk_config(config, &settings.held_jobs_table),
            instances: Ec2Instances::from_sdk_config(config),
        })
    }

    /// The job worker both functions run.
    pub fn job_worker(&self, settings: ec2_build_core::Settings) -> AwsJobWorker {
        ec2_build_core::JobWorker::new(
            self.pipeline.clone(),
            self.steps.clone(),
            self.held.clone(),
            settings,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::retry::RetryMode;

    #[tokio::test]
    async fn clients_get_the_timeouts_and_the_standard_retry_mode() {
        let config = sdk_config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .test_credentials()
            .load()
            .await;
        let timeouts = config.timeout_config().unwrap();
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
        let retries = config.retry_config().unwrap();
        assert_eq!(retries.mode(), RetryMode::Standard);
        assert_eq!(retries.max_attempts(), MAX_ATTEMPTS);
    }
}
