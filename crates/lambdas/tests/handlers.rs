//! The Lambda handlers called as the runtime calls them, with fakes behind the ports.

use ec2_build_core::model::JobData;
use ec2_build_core::testing::{
    self, FakePipeline, FakeSteps, Fakes, STATE_MACHINE_ARN as STATE_MACHINE,
};
use ec2_build_core::{ExecutionStatus, Job, ServiceError, Settings};
use ec2_build_lambdas::completion::{self, CompletionAction, CompletionResponse};
use ec2_build_lambdas::poller::{self, PollerAction, SweepResponse};
use ec2_build_lambdas::{keeper, FunctionError};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{json, Value};

fn settings() -> Settings {
    testing::settings(&[("COMPLETION_POLL_ATTEMPTS", "2")])
}

/// Fresh fakes; each function is built over handles on them, as its binary builds it over SDK
/// clients.
struct Functions {
    fakes: Fakes,
}

impl Functions {
    fn pipeline_port(&self) -> &FakePipeline {
        &self.fakes.pipeline
    }

    fn steps_port(&self) -> &FakeSteps {
        &self.fakes.steps
    }

    async fn poller(&self, event: LambdaEvent<Value>) -> Result<SweepResponse, FunctionError> {
        poller::handle(event, &self.fakes.sweep(settings())).await
    }

    async fn completion(
        &self,
        event: LambdaEvent<Value>,
    ) -> Result<CompletionResponse, FunctionError> {
        completion::handle(event, &self.fakes.completion(settings())).await
    }
}

fn handler() -> Functions {
    Functions {
        fakes: Fakes::default(),
    }
}

fn event(detail_type: &str, source: &str, detail: Value) -> LambdaEvent<Value> {
    let payload = json!({
        "version": "0", "id": "e-1", "detail-type": detail_type, "source": source,
        "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail
    });
    LambdaEvent::new(payload, context())
}

/// A context whose deadline is 15 minutes away (`Context::default()` has a deadline of 0, which
/// would leave a sweep time for one batch only).
fn context() -> Context {
    let mut context = Context::default();
    context.deadline = now_ms() + 15 * 60 * 1000;
    context
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn action_started(provider: &str) -> LambdaEvent<Value> {
    event(
        "CodePipeline Action Execution State Change",
        "aws.codepipeline",
        json!({"pipeline": "app", "execution-id": "pe-1", "stage": "Build", "action": "Compile", "state": "STARTED",
               "region": "us-east-1", "type": {"owner": "Custom", "category": "Build", "provider": provider, "version": "1"}, "version": 1.0}),
    )
}

fn job(id: &str) -> Job {
    testing::new_job(id, &[])
}

fn diagnostic(e: FunctionError) -> Diagnostic {
    e.into()
}

#[tokio::test]
async fn event_for_another_action_type_is_ignored_without_any_aws_call() {
    let h = handler();
    h.pipeline_port().queue(job("job-1"));
    let report = h.poller(action_started("CodeBuild")).await.unwrap();
    assert_eq!(report.action, PollerAction::Ignored);
    assert!(h.pipeline_port().calls().is_empty());
    assert!(h.steps_port().starts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn started_event_of_our_action_starts_the_build() {
    let h = handler();
    h.pipeline_port().queue(job("job-1"));
    let report = h.poller(action_started("EC2Build")).await.unwrap();
    assert_eq!(
        (report.action, report.polls, report.jobs.started),
        (PollerAction::Sweep, 1, 1)
    );
    assert_eq!(h.steps_port().count(), 1);
}

#[tokio::test]
async fn the_invocation_deadline_bounds_the_sweep() {
    let now_ms = now_ms();
    let sweep_with_deadline = |deadline: u64| async move {
        let h = handler();
        for i in 0..25 {
            h.pipeline_port().queue(job(&format!("job-{i}")));
        }
        let mut started = action_started("EC2Build");
        started.context.deadline = deadline;
        let report = h.poller(started).await.unwrap();
        (report.polls, report.jobs.started)
    };
    // Batch size 10, with time: all 25 jobs are started; the third batch also holds the first
    // builds' continuation jobs, the fourth only those, so the sweep stops there.
    assert_eq!(sweep_with_deadline(now_ms + 15 * 60 * 1000).await, (4, 25));
    // Two seconds left, less than a job needs once acknowledged: nothing is polled, so no job
    // is left taken and unanswered; the next sweep takes them all.
    assert_eq!(sweep_with_deadline(now_ms + 2000).await, (0, 0));
}

#[tokio::test]
async fn scheduled_event_sweeps_continuation_jobs() {
    let h = handler();
    let arn = h.steps_port().arn("job-1");
    h.steps_port().set(
        "job-1",
        ExecutionStatus::Succeeded,
        Some(r#"{"Status":"SUCCEEDED"}"#),
        None,
        None,
    );
    h.pipeline_port().queue(Job {
        id: "c-1".into(),
        nonce: "1".into(),
        data: JobData {
            continuation_token: Some(arn),
            ..Default::default()
        },
    });
    let report = h
        .poller(event("Scheduled Event", "aws.events", json!({})))
        .await
        .unwrap();
    assert_eq!(report.jobs.succeeded, 1);
}

#[tokio::test]
async fn malformed_payload_is_an_invalid_event_error() {
    let h = handler();
    let err = h
        .poller(LambdaEvent::new(
            json!({"hello": "world"}),
            Context::default(),
        ))
        .await
        .unwrap_err();
    let d = diagnostic(err);
    assert_eq!(d.error_type, "InvalidEvent");
    assert!(
        d.error_message.contains("not an EventBridge event"),
        "{}",
        d.error_message
    );
    assert!(h.pipeline_port().calls().is_empty());
}

#[tokio::test]
async fn unknown_event_type_is_an_invalid_event_error() {
    let h = handler();
    let err = h
        .poller(event("Object Created", "aws.s3", json!({})))
        .await
        .unwrap_err();
    let d = diagnostic(err);
    assert_eq!(d.error_type, "InvalidEvent");
    assert!(
        d.error_message.contains("\"Object Created\""),
        "{}",
        d.error_message
    );
}

#[tokio::test]
async fn poll_failure_is_reported_as_poll_failed() {
    let h = handler();
    *h.pipeline_port().failing_polls.lock().unwrap() = 1;
    let err = h
        .poller(event("Scheduled Event", "aws.events", json!({})))
        .await
        .unwrap_err();
    assert_eq!(diagnostic(err).error_type, "PollFailed");
}

fn execution_event(status: &str, state_machine: &str, h: &Functions) -> LambdaEvent<Value> {
    event(
        "Step Functions Execution Status Change",
        "aws.states",
        json!({"executionArn": h.steps_port().arn("job-1"), "stateMachineArn": state_machine, "name": "job-1",
               "status": status, "startDate": 1, "stopDate": 2, "input": "{\"JobId\":\"job-1\"}", "output": null}),
    )
}

#[tokio::test]
async fn completion_reports_the_result_through_the_continuation_job() {
    let h = handler();
    h.pipeline_port().queue(job("job-1"));
    h.poller(action_started("EC2Build")).await.unwrap();
    h.steps_port().set(
        "job-1",
        ExecutionStatus::Succeeded,
        Some(r#"{"Status":"SUCCEEDED"}"#),
        None,
        None,
    );
    let report = h
        .completion(execution_event("SUCCEEDED", STATE_MACHINE, &h))
        .await
        .unwrap();
    assert_eq!(report.action, CompletionAction::ReportedContinuation);
    assert_eq!(report.jobs.succeeded, 1);
    let response = serde_json::to_value(&report).unwrap();
    assert_eq!(response["action"], "reported-continuation");
    assert_eq!(response["jobs"]["succeeded"], 1);
}

#[tokio::test]
async fn completion_of_an_aborted_execution_releases_instances() {
    let h = handler();
    h.pipeline_port().queue(job("job-1"));
    h.poller(action_started("EC2Build")).await.unwrap();
    h.steps_port()
        .set("job-1", ExecutionStatus::Aborted, None, None, None);
    h.fakes
        .instances
        .launch(&h.steps_port().arn("job-1"), &["i-1"]);
    let report = h
        .completion(execution_event("ABORTED", STATE_MACHINE, &h))
        .await
        .unwrap();
    assert_eq!(report.released, vec!["i-1"]);
    assert_eq!(report.jobs.failed, 1);
}

#[tokio::test]
async fn completion_whose_release_fails_is_a_release_failed_error() {
    let h = handler();
    h.pipeline_port().queue(job("job-1"));
    h.poller(action_started("EC2Build")).await.unwrap();
    h.steps_port()
        .set("job-1", ExecutionStatus::Failed, None, None, None);
    h.fakes
        .instances
        .launch(&h.steps_port().arn("job-1"), &["i-1"]);
    *h.fakes.instances.failing.lock().unwrap() = true;
    let err = h
        .completion(execution_event("FAILED", STATE_MACHINE, &h))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FunctionError::ReleaseFailed(ServiceError::Call { .. })),
        "{err:?}"
    );
    let d = diagnostic(err);
    assert_eq!(d.error_type, "ReleaseFailed");
    assert!(
        d.error_message.contains("TerminateInstances"),
        "{}",
        d.error_message
    );
    assert_eq!(h.fakes.instances.release_calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn completion_that_cannot_read_the_execution_is_a_describe_failed_error_and_still_releases() {
    // Never continued: completion falls back to DescribeExecution, which fails.
    let h = handler();
    h.steps_port()
        .set("job-1", ExecutionStatus::Aborted, None, None, None);
    *h.steps_port().failing_describes.lock().unwrap() = 1;
    h.fakes
        .instances
        .launch(&h.steps_port().arn("job-1"), &["i-1"]);
    let err = h
        .completion(execution_event("ABORTED", STATE_MACHINE, &h))
        .await
        .unwrap_err();
    assert_eq!(diagnostic(err).error_type, "DescribeFailed");
    assert_eq!(*h.fakes.instances.terminated.lock().unwrap(), vec!["i-1"]);
}

#[tokio::test]
async fn completion_ignores_other_state_machines_without_any_aws_call() {
    let h = handler();
    let other = "arn:aws:states:us-east-1:123456789012:stateMachine:other";
    let report = h
        .completion(execution_event("SUCCEEDED", other, &h))
        .await
        .unwrap();
    assert_eq!(report.action, CompletionAction::Ignored);
    assert!(h.pipeline_port().calls().is_empty());
}

#[tokio::test]
async fn keeper_terminates_the_instance_of_an_ended_execution_on_its_schedule() {
    let h = handler();
    h.steps_port()
        .set("job-1", ExecutionStatus::Aborted, None, None, None);
    h.fakes
        .instances
        .launch(&h.steps_port().arn("job-1"), &["i-1"]);
    let response = keeper::handle(
        event("Scheduled Event", "aws.events", json!({})),
        &h.fakes.keeper(),
        &h.fakes.pool_keeper(),
    )
    .await
    .unwrap();
    assert_eq!(response.terminated_orphans, vec!["i-1"]);
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["terminated_orphans"], json!(["i-1"]));
}

#[tokio::test]
async fn keeper_refuses_other_events_and_reports_a_failed_inventory() {
    let h = handler();
    let err = keeper::handle(
        action_started("EC2Build"),
        &h.fakes.keeper(),
        &h.fakes.pool_keeper(),
    )
    .await
    .unwrap_err();
    assert_eq!(diagnostic(err).error_type, "InvalidEvent");
    *h.fakes.instances.failing_listing.lock().unwrap() = true;
    let err = keeper::handle(
        event("Scheduled Event", "aws.events", json!({})),
        &h.fakes.keeper(),
        &h.fakes.pool_keeper(),
    )
    .await
    .unwrap_err();
    let d = diagnostic(err);
    assert_eq!(d.error_type, "InventoryFailed");
    assert!(
        d.error_message.contains("DescribeInstances"),
        "{}",
        d.error_message
    );
}
