//! Lambda settings, read from environment variables (see docs/contracts.md).

use crate::model::pool::{parse_pools, PoolSpec};
use crate::model::SettingsError;
use std::time::Duration;

/// The custom action type whose jobs we handle (the owner is always `Custom`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionType {
    pub category: String,
    pub provider: String,
    pub version: String,
}

/// Everything the job handler needs to know about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub action_type: ActionType,
    /// ARN of the build state machine.
    pub state_machine_arn: String,
    /// Name of the DynamoDB table of held continuation jobs.
    pub held_jobs_table: String,
    /// `maxBatchSize` of each PollForJobs call.
    pub poll_batch_size: u32,
    /// How many PollForJobs calls one sweep makes at most while batches come back full.
    pub poll_max_rounds: u32,
    /// How many jobs of a batch are handled at the same time.
    pub job_concurrency: usize,
    /// `HeartbeatSeconds` of the build task. The document sends a heartbeat every 60 s plus the
    /// time the AWS CLI takes to start, so at least 120 (default 300).
    pub heartbeat_seconds: u32,
    /// Region used in console links.
    pub console_region: String,
    /// Attempts of the completion Lambda to find the continuation job of a finished execution.
    pub completion_poll_attempts: u32,
    /// Delay before the second attempt; it doubles after each attempt.
    pub completion_poll_delay: Duration,
    /// How long a held continuation job stays unanswered before the scheduled sweep answers it
    /// with fresh progress (which queues the next continuation job, held again at its next poll);
    /// 0 refreshes at every scheduled sweep.
    pub held_job_refresh: Duration,
    /// The stack's warm pools (`POOLS`, the stack parameter `Pools`); empty when there are none.
    pub pools: Vec<PoolSpec>,
}

impl Settings {
    /// Reads the settings through `var` (normally `std::env::var`), so tests need no environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let required = |name| required(&var, name);
        let number = |name, default, min, max| number(&var, name, default, min, max);
        let state_machine_arn = required("STATE_MACHINE_ARN")?;
        if !state_machine_arn.starts_with("arn:") || !state_machine_arn.contains(":stateMachine:") {
            return Err(SettingsError {
                name: "STATE_MACHINE_ARN",
                problem: format!("is not a state machine ARN: {state_machine_arn:?}"),
            });
        }
        let console_region = var("CONSOLE_REGION")
            .or_else(|| var("AWS_REGION"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| arn_region(&state_machine_arn).to_string());
        Ok(Self {
            action_type: ActionType {
                category: required("ACTION_CATEGORY")?,
                provider: required("ACTION_PROVIDER")?,
                version: required("ACTION_VERSION")?,
            },
            state_machine_arn,
            held_jobs_table: required("HELD_JOBS_TABLE")?,
            poll_batch_size: number("POLL_BATCH_SIZE", 10, 1, 100)? as u32,
            poll_max_rounds: number("POLL_MAX_ROUNDS", 10, 1, 100)? as u32,
            job_concurrency: number("JOB_CONCURRENCY", 8, 1, 64)? as usize,
            heartbeat_seconds: number("BUILD_HEARTBEAT_SECONDS", 300, 120, 3600)? as u32,
            console_region,
            completion_poll_attempts: number("COMPLETION_POLL_ATTEMPTS", 6, 1, 20)? as u32,
            completion_poll_delay: Duration::from_millis(number(
                "COMPLETION_POLL_DELAY_MS",
                250,
                10,
                5000,
            )?),
            held_job_refresh: Duration::from_secs(number(
                "HELD_JOB_REFRESH_SECONDS",
                300,
                0,
                3000,
            )?),
            pools: pools(&var)?,
        })
    }

    /// ARN an execution named `name` of our state machine has.
    pub fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1),
            name
        )
    }

    /// Console page of an execution (the same page the action's ExecutionUrlTemplate opens).
    pub fn execution_console_url(&self, execution_arn: &str) -> String {
        format!(
            "https://{r}.console.aws.amazon.com/states/home?region={r}#/v2/executions/details/{execution_arn}",
            r = self.console_region
        )
    }
}

/// `POOLS`: the pool declarations (JSON, docs/contracts.md); unset or blank for none.
fn pools(var: &impl Fn(&str) -> Option<String>) -> Result<Vec<PoolSpec>, SettingsError> {
    parse_pools(&var("POOLS").unwrap_or_default()).map_err(|e| SettingsError {
        name: "POOLS",
        problem: e.to_string(),
    })
}

/// What the keeper needs beyond [`Settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperSettings {
    /// Value of the `ec2-build:stack` tag on this stack's instances.
    pub stack_name: String,
    /// Seconds an instance may live beyond its build timeout: acquisition (launch and the agent
    /// wait, up to about 25 minutes), release and a margin.
    pub grace_seconds: u64,
    /// The warm pools the keeper keeps at their size (`POOLS`).
    pub pools: Vec<PoolSpec>,
    /// The stack's subnets (`SUBNET_IDS`, comma-separated), for pools that name none.
    pub subnet_ids: Vec<String>,
}

impl KeeperSettings {
    /// Reads `STACK_NAME`, `KEEPER_GRACE_SECONDS`, `POOLS` and `SUBNET_IDS` through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let pools = pools(&var)?;
        let subnet_ids: Vec<String> = var("SUBNET_IDS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if subnet_ids.is_empty() {
            if let Some(pool) = pools.iter().find(|p| p.subnet_ids.is_empty()) {
                return Err(SettingsError {
                    name: "SUBNET_IDS",
                    problem: format!(
                        "is empty, and the pool {:?} names no SubnetIds of its own",
                        pool.name
                    ),
                });
            }
        }
        Ok(Self {
            stack_name: required(&var, "STACK_NAME")?,
            grace_seconds: number(&var, "KEEPER_GRACE_SECONDS", 2400, 600, 86_400)?,
            pools,
            subnet_ids,
        })
    }
}

fn required(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, SettingsError> {
    var(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(SettingsError {
            name,
            problem: "is not set".into(),
        })
}

fn number(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, SettingsError> {
    match var(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(SettingsError {
                name,
                problem: format!("must be a whole number from {min} to {max}, got {v:?}"),
            }),
        },
    }
}

fn arn_region(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or("us-east-1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 5] = [
        (
            "STATE_MACHINE_ARN",
            "arn:aws:states:eu-west-1:123456789012:stateMachine:ec2-build",
        ),
        ("ACTION_CATEGORY", "Build"),
        ("ACTION_PROVIDER", "EC2Build"),
        ("ACTION_VERSION", "1"),
        ("HELD_JOBS_TABLE", "ec2-build-HeldJobs"),
    ];

    #[test]
    fn defaults_apply_and_region_comes_from_the_arn() {
        let s = Settings::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(s.poll_batch_size, 10);
        assert_eq!(s.console_region, "eu-west-1");
        assert_eq!(
            s.execution_arn("job-1"),
            "arn:aws:states:eu-west-1:123456789012:execution:ec2-build:job-1"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let err = Settings::from_lookup(lookup(&[BASE[0], BASE[1], BASE[2], BASE[4]])).unwrap_err();
        assert_eq!(
            err,
            SettingsError {
                name: "ACTION_VERSION",
                problem: "is not set".into()
            }
        );
    }

    #[test]
    fn out_of_range_number_is_rejected() {
        let mut pairs = BASE.to_vec();
        pairs.push(("POLL_BATCH_SIZE", "0"));
        let err = Settings::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(
            matches!(
                err,
                SettingsError {
                    name: "POLL_BATCH_SIZE",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn heartbeat_leaves_room_for_the_documents_minute() {
        let mut pairs = BASE.to_vec();
        pairs.push(("BUILD_HEARTBEAT_SECONDS", "60"));
        assert!(matches!(
            Settings::from_lookup(lookup(&pairs)),
            Err(SettingsError {
                name: "BUILD_HEARTBEAT_SECONDS",
                ..
            })
        ));
    }

    #[test]
    fn state_machine_arn_must_be_an_arn() {
        let mut pairs = BASE.to_vec();
        pairs[0] = ("STATE_MACHINE_ARN", "ec2-build");
        assert!(matches!(
            Settings::from_lookup(lookup(&pairs)),
            Err(SettingsError {
                name: "STATE_MACHINE_ARN",
                ..
            })
        ));
    }
}
