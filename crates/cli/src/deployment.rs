//! Which deployment the CLI looks at: the CloudFormation stack's outputs (DescribeStacks), with
//! `--output NAME=VALUE` overrides for a deployment made without CloudFormation or an output the
//! stack lacks.

use crate::error::{sdk_detail, CliError};
use ec2_build_core::{ActionType, Settings};
use std::collections::BTreeMap;

/// Output names of cloudformation/template.yml the CLI reads.
pub mod outputs {
    pub const STATE_MACHINE: &str = "StateMachineArn";
    pub const ACTION_TYPE: &str = "ActionType";
    pub const BUILD_LOG_GROUP: &str = "BuildLogGroupName";
    pub const BUILD_DOCUMENT: &str = "BuildDocumentName";
    pub const SUBNETS: &str = "SubnetIds";
    pub const FUNCTIONS: [&str; 3] = [
        "PollerFunctionArn",
        "CompletionFunctionArn",
        "KeeperFunctionArn",
    ];
}

/// A deployed stack, as its outputs describe it.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The stack name, which is also the `ec2-build:stack` tag of its instances.
    pub stack_name: String,
    pub region: String,
    outputs: BTreeMap<String, String>,
}

impl Deployment {
    /// Reads the stack's outputs, then applies `overrides` (`NAME=VALUE`). A stack that does not
    /// exist is fine when the overrides name the state machine.
    pub async fn load(
        sdk: &aws_config::SdkConfig,
        stack_name: &str,
        overrides: &[String],
    ) -> Result<Self, CliError> {
        let mut given = BTreeMap::new();
        for entry in overrides {
            let (name, value) = entry.split_once('=').ok_or_else(|| {
                CliError::BadInput(format!(
                    "--output {entry:?} is not NAME=VALUE. Fix: e.g. --output StateMachineArn=arn:aws:states:..."
                ))
            })?;
            given.insert(name.trim().to_string(), value.trim().to_string());
        }
        let client = aws_sdk_cloudformation::Client::new(sdk);
        let mut outputs = BTreeMap::new();
        match client.describe_stacks().stack_name(stack_name).send().await {
            Ok(found) => {
                for output in found.stacks().iter().flat_map(|s| s.outputs()) {
                    if let (Some(k), Some(v)) = (output.output_key(), output.output_value()) {
                        outputs.insert(k.to_string(), v.to_string());
                    }
                }
            }
            Err(_) if given.contains_key(outputs::STATE_MACHINE) => {}
            Err(e) => {
                return Err(CliError::StackNotFound {
                    stack: stack_name.to_string(),
                    detail: sdk_detail(&e),
                })
            }
        }
        outputs.extend(given);
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        Ok(Self {
            stack_name: stack_name.to_string(),
            region,
            outputs,
        })
    }

    /// An output's value, or an error naming it and the fix.
    pub fn output(&self, name: &str) -> Result<&str, CliError> {
        self.outputs
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CliError::MissingOutput {
                stack: self.stack_name.clone(),
                name: name.to_string(),
            })
    }

    pub fn state_machine_arn(&self) -> Result<&str, CliError> {
        self.output(outputs::STATE_MACHINE)
    }

    /// The custom action type of the `ActionType` output (`Custom/<category>/<provider>/<version>`).
    pub fn action_type(&self) -> Result<ActionType, CliError> {
        let text = self.output(outputs::ACTION_TYPE)?;
        match text.split('/').collect::<Vec<_>>()[..] {
            ["Custom", category, provider, version] => Ok(ActionType {
                category: category.to_string(),
                provider: provider.to_string(),
                version: version.to_string(),
            }),
            _ => Err(CliError::BadInput(format!(
                "output ActionType {text:?} is not Custom/<category>/<provider>/<version>. Fix: pass --output ActionType=Custom/Build/EC2Build/1"
            ))),
        }
    }

    /// The functions' settings for this deployment, for console links and failure messages as
    /// the functions write them.
    pub fn settings(&self) -> Result<Settings, CliError> {
        let action_type = self.action_type()?;
        let state_machine = self.state_machine_arn()?.to_string();
        let held_jobs_table = self.output("HeldJobsTableName")?.to_string();
        Settings::from_lookup(|name| match name {
            "STATE_MACHINE_ARN" => Some(state_machine.clone()),
            "HELD_JOBS_TABLE" => Some(held_jobs_table.clone()),
            "ACTION_CATEGORY" => Some(action_type.category.clone()),
            "ACTION_PROVIDER" => Some(action_type.provider.clone()),
            "ACTION_VERSION" => Some(action_type.version.clone()),
            "CONSOLE_REGION" => Some(self.region.clone()),
            _ => None,
        })
        .map_err(|e| CliError::BadInput(format!("the stack's outputs: {e}")))
    }
}
