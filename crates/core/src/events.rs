//! What the Lambdas do with the events they receive. The envelope is parsed by the Lambda crates;
//! these functions decide on its `detail-type`, `source` and `detail`.

use crate::model::{
    CompletionTrigger, EventError, ExecutionEnded, ExecutionStatus, PollerTrigger, SweepScope,
};
use crate::settings::Settings;
use serde_json::Value;

pub const ACTION_STATE_CHANGE: &str = "CodePipeline Action Execution State Change";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";
pub const EXECUTION_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

impl PollerTrigger {
    /// Scheduled events sweep all jobs; an action of our type that STARTED sweeps new jobs.
    pub fn classify(
        detail_type: &str,
        detail: &Value,
        settings: &Settings,
    ) -> Result<Self, EventError> {
        match detail_type {
            SCHEDULED_EVENT => Ok(Self::Sweep(SweepScope::AllJobs)),
            ACTION_STATE_CHANGE => {
                let state = detail.get("state").and_then(Value::as_str).ok_or_else(|| {
                    EventError(format!("{ACTION_STATE_CHANGE} event has no detail.state"))
                })?;
                let action_type = detail.get("type").ok_or_else(|| {
                    EventError(format!("{ACTION_STATE_CHANGE} event has no detail.type"))
                })?;
                let field = |name: &str| action_type.get(name).and_then(Value::as_str).unwrap_or("");
                let ours = field("owner") == "Custom"
                    && field("category") == settings.action_type.category
                    && field("provider") == settings.action_type.provider
                    && field("version") == settings.action_type.version;
                if !ours {
                    Ok(Self::Ignore(format!(
                        "action type {}/{}/{}/{} is not ours",
                        field("owner"),
                        field("category"),
                        field("provider"),
                        field("version")
                    )))
                } else if state != "STARTED" {
                    Ok(Self::Ignore(format!("action state {state} needs no work")))
                } else {
                    Ok(Self::Sweep(SweepScope::NewJobs))
                }
            }
            other => Err(EventError(format!(
                "the poller handles \"{SCHEDULED_EVENT}\" and \"{ACTION_STATE_CHANGE}\" events, not {other:?}; check the EventBridge rule that targets it"
            ))),
        }
    }
}

impl CompletionTrigger {
    /// Our executions' final statuses are handled; anything else is ignored or an error.
    pub fn classify(
        detail_type: &str,
        detail: &Value,
        settings: &Settings,
    ) -> Result<Self, EventError> {
        if detail_type != EXECUTION_STATUS_CHANGE {
            return Err(EventError(format!(
                "the completion function handles \"{EXECUTION_STATUS_CHANGE}\" events, not {detail_type:?}; check the EventBridge rule that targets it"
            )));
        }
        let text = |name: &str| {
            detail
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    EventError(format!(
                        "{EXECUTION_STATUS_CHANGE} event has no detail.{name}"
                    ))
                })
        };
        let state_machine = text("stateMachineArn")?;
        if state_machine != settings.state_machine_arn {
            return Ok(Self::Ignore(format!(
                "execution of another state machine ({state_machine})"
            )));
        }
        let execution_arn = text("executionArn")?.to_string();
        let status = ExecutionStatus::parse(text("status")?);
        if !status.is_terminal() {
            return Ok(Self::Ignore(format!("status {status:?} is not final")));
        }
        let job_id = detail
            .get("input")
            .and_then(Value::as_str)
            .and_then(|input| serde_json::from_str::<Value>(input).ok())
            .and_then(|input| {
                input
                    .get("JobId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .map(Ok)
            .unwrap_or_else(|| text("name").map(str::to_string))?;
        Ok(Self::Finished(ExecutionEnded {
            execution_arn,
            status,
            job_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings::from_lookup(|k| {
            match k {
                "STATE_MACHINE_ARN" => {
                    Some("arn:aws:states:us-east-1:123456789012:stateMachine:ec2-build")
                }
                "ACTION_CATEGORY" => Some("Build"),
                "ACTION_PROVIDER" => Some("EC2Build"),
                "ACTION_VERSION" => Some("1"),
                "HELD_JOBS_TABLE" => Some("held-jobs"),
                _ => None,
            }
            .map(Into::into)
        })
        .unwrap()
    }

    fn action_detail(provider: &str, state: &str) -> Value {
        json!({"pipeline": "app", "state": state, "type": {"owner": "Custom", "category": "Build", "provider": provider, "version": "1"}})
    }

    #[test]
    fn our_started_action_sweeps_new_jobs() {
        assert_eq!(
            PollerTrigger::classify(
                ACTION_STATE_CHANGE,
                &action_detail("EC2Build", "STARTED"),
                &settings()
            )
            .unwrap(),
            PollerTrigger::Sweep(SweepScope::NewJobs)
        );
    }

    #[test]
    fn other_action_type_is_ignored() {
        let t = PollerTrigger::classify(
            ACTION_STATE_CHANGE,
            &action_detail("CodeBuild", "STARTED"),
            &settings(),
        )
        .unwrap();
        assert!(matches!(t, PollerTrigger::Ignore(r) if r.contains("CodeBuild")));
    }

    #[test]
    fn finished_state_of_our_action_is_ignored() {
        let t = PollerTrigger::classify(
            ACTION_STATE_CHANGE,
            &action_detail("EC2Build", "SUCCEEDED"),
            &settings(),
        )
        .unwrap();
        assert!(matches!(t, PollerTrigger::Ignore(_)));
    }

    #[test]
    fn scheduled_event_sweeps_all_jobs() {
        assert_eq!(
            PollerTrigger::classify(SCHEDULED_EVENT, &json!({}), &settings()).unwrap(),
            PollerTrigger::Sweep(SweepScope::AllJobs)
        );
    }

    #[test]
    fn unknown_event_type_is_an_error_naming_it() {
        let e = PollerTrigger::classify("Object Created", &json!({}), &settings()).unwrap_err();
        assert!(e.to_string().contains("\"Object Created\""), "{e}");
    }

    #[test]
    fn action_event_without_type_is_an_error() {
        let e = PollerTrigger::classify(
            ACTION_STATE_CHANGE,
            &json!({"state": "STARTED"}),
            &settings(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("detail.type"), "{e}");
    }

    #[test]
    fn finished_execution_of_our_state_machine_is_handled() {
        let detail = json!({
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:ec2-build:job-1",
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-build",
            "name": "job-1", "status": "ABORTED", "input": "{\"JobId\":\"job-1\"}"
        });
        let t = CompletionTrigger::classify(EXECUTION_STATUS_CHANGE, &detail, &settings()).unwrap();
        assert_eq!(
            t,
            CompletionTrigger::Finished(ExecutionEnded {
                execution_arn: "arn:aws:states:us-east-1:123456789012:execution:ec2-build:job-1"
                    .into(),
                status: ExecutionStatus::Aborted,
                job_id: "job-1".into()
            })
        );
    }

    #[test]
    fn running_or_foreign_executions_are_ignored() {
        let mut detail = json!({
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:ec2-build:job-1",
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-build",
            "name": "job-1", "status": "RUNNING"
        });
        assert!(matches!(
            CompletionTrigger::classify(EXECUTION_STATUS_CHANGE, &detail, &settings()).unwrap(),
            CompletionTrigger::Ignore(_)
        ));
        detail["status"] = json!("SUCCEEDED");
        detail["stateMachineArn"] =
            json!("arn:aws:states:us-east-1:123456789012:stateMachine:other");
        assert!(matches!(
            CompletionTrigger::classify(EXECUTION_STATUS_CHANGE, &detail, &settings()).unwrap(),
            CompletionTrigger::Ignore(_)
        ));
    }

    #[test]
    fn execution_event_without_arn_is_an_error() {
        let detail = json!({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-build", "status": "FAILED"});
        let e =
            CompletionTrigger::classify(EXECUTION_STATUS_CHANGE, &detail, &settings()).unwrap_err();
        assert!(e.to_string().contains("detail.executionArn"), "{e}");
    }
}
