//! What to tell CodePipeline: reports built from a configuration error or an execution's state.

use crate::model::{
    ConfigError, ContinuationToken, ExecutionDescription, ExecutionStatus, FailureKind,
    FailureReport, JobReport, SuccessReport,
};
use crate::progress;
use crate::settings::Settings;
use serde::Deserialize;
use std::collections::BTreeMap;

/// CodePipeline's limit on `executionDetails.summary`.
pub const MAX_SUMMARY_LEN: usize = 2048;
/// CodePipeline's limit on `failureDetails.message`.
pub const MAX_MESSAGE_LEN: usize = 5000;

/// The action configuration is invalid: nothing was started.
pub fn configuration_failure(error: &ConfigError) -> FailureReport {
    FailureReport {
        kind: FailureKind::ConfigurationError,
        message: truncate_end(&format!("EC2 Build: {error}"), MAX_MESSAGE_LEN),
        external_execution_id: None,
    }
}

/// The job could not be turned into a build (bad job data, failed start) or its execution is
/// gone.
pub fn job_failure(message: impl AsRef<str>, execution_arn: Option<String>) -> FailureReport {
    FailureReport {
        kind: FailureKind::JobFailed,
        message: truncate_end(&format!("EC2 Build: {}", message.as_ref()), MAX_MESSAGE_LEN),
        external_execution_id: execution_arn,
    }
}

/// The answer to a new job whose execution was just started.
pub fn started(execution_arn: &str, settings: &Settings) -> JobReport {
    JobReport::Start(SuccessReport {
        summary: truncate_end(
            &format!(
                "Build started: {}",
                settings.execution_console_url(execution_arn)
            ),
            MAX_SUMMARY_LEN,
        ),
        external_execution_id: execution_arn.to_string(),
        percent_complete: Some(0),
        continuation_token: Some(execution_arn.to_string()),
        output_variables: BTreeMap::new(),
    })
}

/// The report for a build that still runs, from its token (the state it was last seen in),
/// how long it has been running when known, and how many times it was restarted after a spot
/// interruption. The new token carries the same state.
pub fn still_running(
    token: &ContinuationToken,
    running_for: Option<u64>,
    restarts: usize,
    settings: &Settings,
) -> JobReport {
    let arn = &token.execution_arn;
    let state = token.last_state.as_deref();
    let progress = state.and_then(progress::of_state);
    let doing = match (progress, state) {
        (Some(p), _) => format!("{} ({})", p.stage, p.state),
        (None, Some(state)) => state.to_string(),
        (None, None) => "starting".to_string(),
    };
    let time = running_for
        .map(|s| format!(", for {}m{:02}s", s / 60, s % 60))
        .unwrap_or_default();
    let restarted = match restarts {
        0 => String::new(),
        1 => ", restarted once on a new instance after a spot interruption".to_string(),
        n => format!(", restarted {n} times on new instances after spot interruptions"),
    };
    let link = settings.execution_console_url(arn);
    JobReport::Continue(SuccessReport {
        summary: truncate_end(
            &format!("Running: {doing}{time}{restarted}. {link}"),
            MAX_SUMMARY_LEN,
        ),
        external_execution_id: arn.clone(),
        percent_complete: progress.map(|p| p.percent),
        continuation_token: Some(token.to_string()),
        output_variables: BTreeMap::new(),
    })
}

/// The report for a continuation job, from the execution's state.
pub fn for_execution(execution: &ExecutionDescription, settings: &Settings) -> JobReport {
    let arn = &execution.arn;
    let link = settings.execution_console_url(arn);
    match &execution.status {
        ExecutionStatus::Running | ExecutionStatus::Other(_) => {
            still_running(&ContinuationToken::new(arn, None), None, 0, settings)
        }
        ExecutionStatus::Succeeded => {
            let outcome = execution
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str::<ExecutionOutput>(o).ok());
            match outcome {
                Some(out) if out.status.eq_ignore_ascii_case("FAILED") => {
                    JobReport::Fail(FailureReport {
                        kind: FailureKind::JobFailed,
                        message: failure_message(&out.details, &link),
                        external_execution_id: Some(arn.clone()),
                    })
                }
                Some(out) => JobReport::Succeed(success_report(&out, execution, &link)),
                None => JobReport::Succeed(SuccessReport {
                    summary: truncate_end(&format!("Build succeeded. {link}"), MAX_SUMMARY_LEN),
                    external_execution_id: arn.clone(),
                    percent_complete: Some(100),
                    continuation_token: None,
                    output_variables: BTreeMap::from([("ExecutionArn".to_string(), arn.clone())]),
                }),
            }
        }
        ExecutionStatus::Failed => {
            let failure = execution
                .cause
                .as_deref()
                .and_then(|c| serde_json::from_str::<FailureCause>(c).ok())
                .unwrap_or_else(|| FailureCause {
                    stage: None,
                    error: execution.error.clone(),
                    cause: execution.cause.clone().map(serde_json::Value::String),
                    ..FailureCause::default()
                });
            let failure = FailureCause {
                error: failure.error.clone().or_else(|| execution.error.clone()),
                ..failure
            };
            JobReport::Fail(FailureReport {
                kind: FailureKind::JobFailed,
                message: failure_message(&failure, &link),
                external_execution_id: Some(arn.clone()),
            })
        }
        ExecutionStatus::TimedOut => JobReport::Fail(job_failure(
            format!("the build execution timed out; its instance is released. Execution: {link}"),
            Some(arn.clone()),
        )),
        ExecutionStatus::Aborted => {
            // StopExecution's error and cause say who stopped the build and why (the keeper
            // always gives them); DescribeExecution returns them for the aborted execution.
            let why = match (
                execution.error.as_deref().filter(|e| !e.is_empty()),
                execution
                    .cause
                    .as_deref()
                    .map(|c| c.trim().trim_end_matches('.'))
                    .filter(|c| !c.is_empty()),
            ) {
                (Some(error), Some(cause)) => format!(" ({error}): {cause}"),
                (None, Some(cause)) => format!(": {cause}"),
                (Some(error), None) => format!(" ({error})"),
                (None, None) => String::new(),
            };
            JobReport::Fail(job_failure(
                format!("the build execution was stopped (aborted){why}. Its instance is released. Execution: {link}"),
                Some(arn.clone()),
            ))
        }
    }
}

/// The execution output of a finished build (docs/contracts.md).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecutionOutput {
    status: String,
    /// Stage, error, cause, instance, command and log: the same fields as a failure's cause.
    #[serde(flatten)]
    details: FailureCause,
    build: Option<BuildResult>,
    restart: Option<Restart>,
}

/// Restarts after spot interruptions: how many, the interrupted instances (space-separated) and
/// the last notice as the document reported it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Restart {
    count: u32,
    instances: String,
    reason: String,
}

impl Restart {
    /// "restarted on a new instance after a spot interruption of i-1 (notice)", or nothing for a
    /// build that ran once.
    fn sentence(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let instances: Vec<&str> = self.instances.split_whitespace().collect();
        let (times, interruptions) = match self.count {
            1 => (String::new(), "a spot interruption"),
            n => (format!(" {n} times"), "spot interruptions"),
        };
        let reason = self.reason.trim();
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        };
        Some(format!(
            "restarted{times} on a new instance after {interruptions} of {}{reason}",
            instances.join(", ")
        ))
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct LogLocation {
    group: Option<String>,
    stream: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct BuildResult {
    outputs: Vec<OutputArtifact>,
    image_uri: Option<String>,
    image_digest: Option<String>,
    packages: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct OutputArtifact {
    name: String,
}

/// The `Cause` of a failed execution (docs/contracts.md).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct FailureCause {
    stage: Option<String>,
    error: Option<String>,
    /// Text, or the document's `{"Step", "ExitCode", "Message", "Tail"}`.
    cause: Option<serde_json::Value>,
    instance_id: Option<String>,
    command_id: Option<String>,
    log: Option<LogLocation>,
}

fn success_report(
    out: &ExecutionOutput,
    execution: &ExecutionDescription,
    link: &str,
) -> SuccessReport {
    let mut parts = vec!["Build succeeded".to_string()];
    if let Some(id) = &out.details.instance_id {
        parts[0].push_str(&format!(" on {id}"));
    }
    if let Some(seconds) = execution.duration_seconds {
        parts[0].push_str(&format!(" in {}m{:02}s", seconds / 60, seconds % 60));
    }
    if let Some(restarted) = out.restart.as_ref().and_then(Restart::sentence) {
        parts.push(restarted);
    }
    let mut variables = BTreeMap::from([("ExecutionArn".to_string(), execution.arn.clone())]);
    if let Some(id) = &out.details.instance_id {
        variables.insert("InstanceId".into(), id.clone());
    }
    if let Some(build) = &out.build {
        if !build.outputs.is_empty() {
            let names: Vec<&str> = build.outputs.iter().map(|o| o.name.as_str()).collect();
            parts.push(format!("outputs: {}", names.join(", ")));
        }
        // The document sends "" for what a build kind does not produce.
        let image_uri = build.image_uri.as_deref().filter(|v| !v.is_empty());
        let image_digest = build.image_digest.as_deref().filter(|v| !v.is_empty());
        if let Some(uri) = image_uri {
            let digest = image_digest.map(|d| format!("@{d}")).unwrap_or_default();
            parts.push(format!("image: {uri}{digest}"));
            variables.insert("ImageUri".into(), uri.to_string());
        }
        if let Some(digest) = image_digest {
            variables.insert("ImageDigest".into(), digest.to_string());
        }
        if !build.packages.is_empty() {
            parts.push(format!("packages: {}", build.packages.join(", ")));
            variables.insert(
                "Packages".into(),
                truncate_end(&build.packages.join(","), 1000),
            );
        }
    }
    if let Some(log) = &out.details.log {
        if let (Some(group), Some(stream)) = (&log.group, &log.stream) {
            parts.push(format!("log: {group} {stream}"));
        }
    }
    parts.push(link.to_string());
    SuccessReport {
        summary: truncate_end(&parts.join("; "), MAX_SUMMARY_LEN),
        external_execution_id: execution.arn.clone(),
        percent_complete: Some(100),
        continuation_token: None,
        output_variables: variables,
    }
}

/// "Build failed at stage build (BuildFailed): exit code 2. Last output: ... Execution: ... Log: ..."
fn failure_message(failure: &FailureCause, link: &str) -> String {
    let stage = failure.stage.as_deref().unwrap_or("unknown");
    let error = failure.error.as_deref().unwrap_or("Failed");
    let (cause, tail) = describe_cause(failure.cause.as_ref());
    let mut head = format!("EC2 Build failed at stage {stage} ({error})");
    if !cause.is_empty() {
        head.push_str(": ");
        head.push_str(&cause);
    }
    let mut footer = format!("\nExecution: {link}");
    if let Some(id) = &failure.instance_id {
        footer.push_str(&format!("\nInstance: {id}"));
    }
    if let Some(log) = &failure.log {
        if let (Some(group), Some(stream)) = (&log.group, &log.stream) {
            footer.push_str(&format!("\nLog: group {group}, stream {stream}"));
        }
    } else if let Some(command) = &failure.command_id {
        footer.push_str(&format!("\nCommand: {command}"));
    }
    let head = truncate_end(&head, MAX_MESSAGE_LEN / 2);
    let room = MAX_MESSAGE_LEN.saturating_sub(head.chars().count() + footer.chars().count() + 20);
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!("\nLast output:\n{}", keep_end(&tail, room))
    };
    truncate_end(&format!("{head}{tail}{footer}"), MAX_MESSAGE_LEN)
}

/// The cause as a sentence, and the last output lines when the document sent them.
fn describe_cause(cause: Option<&serde_json::Value>) -> (String, String) {
    let parsed;
    let value = match cause {
        None => return (String::new(), String::new()),
        Some(serde_json::Value::String(text)) => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v @ serde_json::Value::Object(_)) => {
                    parsed = v;
                    &parsed
                }
                _ => return (text.trim().to_string(), String::new()),
            }
        }
        Some(other) => other,
    };
    let Some(object) = value.as_object() else {
        return (value.to_string(), String::new());
    };
    let mut sentence = Vec::new();
    if let Some(step) = object.get("Step").and_then(|v| v.as_str()) {
        sentence.push(format!("step {step}"));
    }
    if let Some(code) = object.get("ExitCode").filter(|v| !v.is_null()) {
        sentence.push(format!(
            "exit code {}",
            code.as_i64()
                .map(|c| c.to_string())
                .unwrap_or_else(|| code.to_string())
        ));
    }
    if let Some(message) = object
        .get("Message")
        .and_then(|v| v.as_str())
        .filter(|m| !m.is_empty())
    {
        sentence.push(message.trim().to_string());
    }
    if sentence.is_empty() {
        sentence.push(value.to_string());
    }
    let tail = object
        .get("Tail")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .trim_end()
        .to_string();
    (sentence.join(", "), tail)
}

/// At most `max` characters, cut at the end.
pub fn truncate_end(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// At most `max` characters, keeping the end (the last lines of a log matter most).
fn keep_end(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let rest: String = text.chars().skip(count - max.saturating_sub(1)).collect();
    format!("…{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ActionType;
    use std::time::Duration;

    fn settings() -> Settings {
        Settings {
            action_type: ActionType {
                category: "Build".into(),
                provider: "EC2Build".into(),
                version: "1".into(),
            },
            state_machine_arn: "arn:aws:states:eu-west-1:123456789012:stateMachine:ec2-build"
                .into(),
            held_jobs_table: "held".into(),
            poll_batch_size: 10,
            poll_max_rounds: 10,
            job_concurrency: 4,
            heartbeat_seconds: 300,
            console_region: "eu-west-1".into(),
            completion_poll_attempts: 3,
            completion_poll_delay: Duration::from_millis(10),
            held_job_refresh: Duration::from_secs(300),
            pools: Vec::new(),
        }
    }

    const ARN: &str = "arn:aws:states:eu-west-1:123456789012:execution:ec2-build:job-1";

    fn execution(
        status: ExecutionStatus,
        output: Option<&str>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> ExecutionDescription {
        ExecutionDescription {
            arn: ARN.into(),
            status,
            output: output.map(Into::into),
            error: error.map(Into::into),
            cause: cause.map(Into::into),
            duration_seconds: Some(125),
            started_at: Some(0),
        }
    }

    #[test]
    fn a_restarted_build_says_so_while_it_runs() {
        let token = ContinuationToken::new(ARN, Some("RunBuild"));
        let JobReport::Continue(once) = still_running(&token, Some(190), 1, &settings()) else {
            panic!()
        };
        assert!(
            once.summary.starts_with(
                "Running: build (RunBuild), for 3m10s, restarted once on a new instance after a spot interruption. "
            ),
            "{}",
            once.summary
        );
        let JobReport::Continue(twice) = still_running(&token, None, 2, &settings()) else {
            panic!()
        };
        assert!(
            twice
                .summary
                .contains("restarted 2 times on new instances after spot interruptions"),
            "{}",
            twice.summary
        );
    }

    #[test]
    fn running_execution_continues_with_its_state() {
        let token = ContinuationToken::new(ARN, Some("RunBuild"));
        let report = still_running(&token, None, 0, &settings());
        let JobReport::Continue(r) = report else {
            panic!("{report:?}")
        };
        assert_eq!(
            r.continuation_token.as_deref(),
            Some(format!("{ARN}|RunBuild").as_str())
        );
        assert!(
            r.summary.starts_with("Running: build (RunBuild)."),
            "{}",
            r.summary
        );
        assert_eq!(r.percent_complete, Some(50));
        assert!(r.output_variables.is_empty());
    }

    #[test]
    fn succeeded_execution_reports_outputs_image_and_packages() {
        let output = r#"{"Status":"SUCCEEDED","Stage":"done","InstanceId":"i-0abc","CommandId":"c-1",
            "Log":{"Group":"/ec2-build/builds","Stream":"c-1/i-0abc/aws-runShellScript/stdout"},
            "Build":{"Outputs":[{"Name":"BuildOutput","Bucket":"b","Key":"k"}],
                     "ImageUri":"123.dkr.ecr.eu-west-1.amazonaws.com/app:1","ImageDigest":"sha256:abc",
                     "Packages":["win-64/pkg-1.0-0.conda"]}}"#;
        let report = for_execution(
            &execution(ExecutionStatus::Succeeded, Some(output), None, None),
            &settings(),
        );
        let JobReport::Succeed(r) = report else {
            panic!("{report:?}")
        };
        assert_eq!(r.continuation_token, None);
        assert_eq!(r.percent_complete, Some(100));
        assert!(r.summary.contains("on i-0abc in 2m05s"), "{}", r.summary);
        assert!(r.summary.contains("outputs: BuildOutput"), "{}", r.summary);
        assert!(
            r.summary
                .contains("image: 123.dkr.ecr.eu-west-1.amazonaws.com/app:1@sha256:abc"),
            "{}",
            r.summary
        );
        assert!(
            r.summary.contains("packages: win-64/pkg-1.0-0.conda"),
            "{}",
            r.summary
        );
        assert_eq!(r.output_variables["ImageDigest"], "sha256:abc");
        assert_eq!(r.output_variables["ExecutionArn"], ARN);
    }

    #[test]
    fn a_restarted_build_says_so_and_why() {
        let output = r#"{"Status":"SUCCEEDED","InstanceId":"i-new",
            "Restart":{"Count":1,"Instances":" i-old","Reason":"Spot interruption notice for i-old: terminate at 2025-01-01T00:02:00Z."}}"#;
        let report = for_execution(
            &execution(ExecutionStatus::Succeeded, Some(output), None, None),
            &settings(),
        );
        let JobReport::Succeed(r) = report else {
            panic!("{report:?}")
        };
        assert!(
            r.summary.starts_with("Build succeeded on i-new in 2m05s; restarted on a new instance after a spot interruption of i-old (Spot interruption notice for i-old: terminate at 2025-01-01T00:02:00Z.)"),
            "{}",
            r.summary
        );

        let twice =
            r#"{"Status":"SUCCEEDED","Restart":{"Count":2,"Instances":" i-1 i-2","Reason":""}}"#;
        let JobReport::Succeed(r) = for_execution(
            &execution(ExecutionStatus::Succeeded, Some(twice), None, None),
            &settings(),
        ) else {
            panic!()
        };
        assert!(
            r.summary.contains(
                "; restarted 2 times on a new instance after spot interruptions of i-1, i-2; "
            ),
            "{}",
            r.summary
        );

        let once = r#"{"Status":"SUCCEEDED","Restart":{"Count":0,"Instances":"","Reason":""}}"#;
        let JobReport::Succeed(r) = for_execution(
            &execution(ExecutionStatus::Succeeded, Some(once), None, None),
            &settings(),
        ) else {
            panic!()
        };
        assert!(!r.summary.contains("restarted"), "{}", r.summary);
    }

    #[test]
    fn empty_image_fields_of_command_builds_are_left_out() {
        let output = r#"{"Status":"SUCCEEDED","Build":{"Outputs":[],"ImageUri":"","ImageDigest":"","Packages":[]}}"#;
        let report = for_execution(
            &execution(ExecutionStatus::Succeeded, Some(output), None, None),
            &settings(),
        );
        let JobReport::Succeed(r) = report else {
            panic!("{report:?}")
        };
        assert!(!r.summary.contains("image:"), "{}", r.summary);
        assert!(!r.output_variables.contains_key("ImageUri"));
        assert!(!r.output_variables.contains_key("ImageDigest"));
    }

    #[test]
    fn failed_execution_names_stage_exit_code_tail_and_links() {
        let cause = serde_json::json!({
            "Stage": "build", "Error": "BuildFailed", "InstanceId": "i-0abc", "CommandId": "c-1",
            "Cause": serde_json::json!({"Step": "build", "ExitCode": 2, "Tail": "compiling\nerror: boom"}).to_string(),
            "Log": {"Group": "/ec2-build/builds", "Stream": "c-1/i-0abc/aws-runShellScript/stdout"}
        })
        .to_string();
        let report = for_execution(
            &execution(
                ExecutionStatus::Failed,
                None,
                Some("BuildFailed"),
                Some(&cause),
            ),
            &settings(),
        );
        let JobReport::Fail(r) = report else {
            panic!("{report:?}")
        };
        assert_eq!(r.kind, FailureKind::JobFailed);
        assert!(
            r.message.starts_with(
                "EC2 Build failed at stage build (BuildFailed): step build, exit code 2"
            ),
            "{}",
            r.message
        );
        assert!(
            r.message.contains("Last output:\ncompiling\nerror: boom"),
            "{}",
            r.message
        );
        assert!(
            r.message
                .contains("Execution: https://eu-west-1.console.aws.amazon.com/states/"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains(
                "Log: group /ec2-build/builds, stream c-1/i-0abc/aws-runShellScript/stdout"
            ),
            "{}",
            r.message
        );
    }

    #[test]
    fn failed_execution_with_plain_cause_keeps_the_text() {
        let report = for_execution(
            &execution(
                ExecutionStatus::Failed,
                None,
                Some("States.Runtime"),
                Some("An error occurred while executing the state"),
            ),
            &settings(),
        );
        let JobReport::Fail(r) = report else {
            panic!("{report:?}")
        };
        assert!(
            r.message.starts_with(
                "EC2 Build failed at stage unknown (States.Runtime): An error occurred"
            ),
            "{}",
            r.message
        );
    }

    #[test]
    fn timed_out_and_aborted_executions_fail_the_job() {
        for (status, word) in [
            (ExecutionStatus::TimedOut, "timed out"),
            (ExecutionStatus::Aborted, "aborted"),
        ] {
            let report = for_execution(&execution(status, None, None, None), &settings());
            let JobReport::Fail(r) = report else {
                panic!("{report:?}")
            };
            assert!(r.message.contains(word), "{}", r.message);
            assert_eq!(r.external_execution_id.as_deref(), Some(ARN));
        }
    }

    #[test]
    fn aborted_execution_names_who_stopped_it_and_why() {
        let report = for_execution(
            &execution(
                ExecutionStatus::Aborted,
                None,
                Some("InstanceLost"),
                Some("i-1 is Terminated (User initiated shutdown). The keeper stopped the build."),
            ),
            &settings(),
        );
        let JobReport::Fail(r) = report else {
            panic!("{report:?}")
        };
        assert!(
            r.message.starts_with(
                "EC2 Build: the build execution was stopped (aborted) (InstanceLost): i-1 is Terminated (User initiated shutdown). The keeper stopped the build. Its instance is released."
            ),
            "{}",
            r.message
        );
    }

    #[test]
    fn succeeded_execution_whose_output_says_failed_is_a_failure() {
        let output = r#"{"Status":"FAILED","Stage":"release","Error":"ReleaseFailed","Cause":"TerminateInstances denied"}"#;
        let report = for_execution(
            &execution(ExecutionStatus::Succeeded, Some(output), None, None),
            &settings(),
        );
        let JobReport::Fail(r) = report else {
            panic!("{report:?}")
        };
        assert!(
            r.message
                .contains("stage release (ReleaseFailed): TerminateInstances denied"),
            "{}",
            r.message
        );
    }

    #[test]
    fn long_output_is_cut_from_the_front_and_message_fits() {
        let tail = format!("{}\nTHE END", "x".repeat(20_000));
        let cause = serde_json::json!({"Stage":"build","Error":"BuildFailed","Cause":{"ExitCode":1,"Tail":tail}}).to_string();
        let report = for_execution(
            &execution(ExecutionStatus::Failed, None, None, Some(&cause)),
            &settings(),
        );
        let JobReport::Fail(r) = report else {
            panic!("{report:?}")
        };
        assert!(r.message.chars().count() <= MAX_MESSAGE_LEN);
        assert!(r.message.contains("THE END"));
        assert!(r.message.contains("Execution: https://"));
    }
}
