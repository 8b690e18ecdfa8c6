//! Adapters: the ports of `ec2-build-core` implemented over the AWS SDK clients. SDK errors become
//! domain errors here, so the core never sees an SDK type.

mod codepipeline;
mod ec2;
mod error;
mod sfn;

pub use codepipeline::CodePipelineJobs;
pub use ec2::Ec2Instances;
pub use error::AdapterError;
pub use sfn::StepFunctionsExecutions;

/// Tag key the state machine puts on instances: the execution ARN.
pub const EXECUTION_TAG: &str = "ec2-build:execution-arn";

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

/// The job handler both Lambdas run, over SDK clients from `config`.
pub fn job_handler(
    config: &aws_config::SdkConfig,
    settings: ec2_build_core::Settings,
) -> Result<ec2_build_core::JobHandler<CodePipelineJobs, StepFunctionsExecutions>, AdapterError> {
    Ok(ec2_build_core::JobHandler::new(
        CodePipelineJobs::from_sdk_config(config, &settings.action_type)?,
        StepFunctionsExecutions::from_sdk_config(config, &settings.state_machine_arn),
        settings,
    ))
}
