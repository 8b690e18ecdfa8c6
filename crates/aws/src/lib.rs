//! Adapters: the ports of `ec2-build-core` implemented over the AWS SDK clients. SDK errors become
//! domain errors here, so the core never sees an SDK type.

mod codepipeline;
mod ec2;
mod error;
mod fleet;
mod sfn;

pub use codepipeline::CodePipelineJobs;
pub use ec2::Ec2Instances;
pub use error::AdapterError;
pub use fleet::Ec2Fleet;
pub use sfn::StepFunctionsExecutions;

/// Tag key the state machine puts on instances: the execution ARN.
pub const EXECUTION_TAG: &str = "ec2-build:execution-arn";
/// Tag key the state machine puts on instances: the stack name.
pub const STACK_TAG: &str = "ec2-build:stack";

/// Loads the shared SDK configuration from the environment (credentials, region, and
/// `AWS_ENDPOINT_URL` when set, which is how the local stack is reached).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
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
    pub instances: Ec2Instances,
}

impl Adapters {
    /// Clients for the deployment `settings` describe.
    pub fn from_sdk_config(
        config: &aws_config::SdkConfig,
        settings: &ec2_build_core::Settings,
    ) -> Result<Self, AdapterError> {
        Ok(Self {
            pipeline: CodePipelineJobs::from_sdk_config(config, &settings.action_type)?,
            steps: StepFunctionsExecutions::from_sdk_config(config, &settings.state_machine_arn),
            instances: Ec2Instances::from_sdk_config(config),
        })
    }

    /// The job worker both functions run.
    pub fn job_worker(
        &self,
        settings: ec2_build_core::Settings,
    ) -> ec2_build_core::JobWorker<CodePipelineJobs, StepFunctionsExecutions> {
        ec2_build_core::JobWorker::new(self.pipeline.clone(), self.steps.clone(), settings)
    }
}
