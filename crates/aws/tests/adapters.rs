//! The adapters against mocked SDK clients: requests carry what the domain asked for, and
//! service errors come back as the domain errors the handler relies on.

use aws_sdk_codepipeline::operation::acknowledge_job::{AcknowledgeJobError, AcknowledgeJobOutput};
use aws_sdk_codepipeline::operation::poll_for_jobs::PollForJobsOutput;
use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
use aws_sdk_codepipeline::operation::put_job_success_result::{
    PutJobSuccessResultError, PutJobSuccessResultOutput,
};
use aws_sdk_codepipeline::types as cp;
use aws_sdk_ec2::operation::describe_tags::DescribeTagsOutput;
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
use aws_sdk_ec2::types::InstanceStateName;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::DateTime;
use ec2_build_aws::{CodePipelineJobs, Ec2Instances, StepFunctionsExecutions};
use ec2_build_core::model::AckStatus;
use ec2_build_core::model::{ExecutionStatus, FailureKind, FailureReport, SuccessReport};
use ec2_build_core::ports::{CodePipeline, Instances, StepFunctions};
use ec2_build_core::{ActionType, ServiceError};
use std::collections::BTreeMap;

fn action_type() -> ActionType {
    ActionType {
        category: "Build".into(),
        provider: "EC2Build".into(),
        version: "1".into(),
    }
}

fn sdk_job() -> cp::Job {
    let artifact = |name: &str, key: &str| {
        cp::Artifact::builder()
            .name(name)
            .location(
                cp::ArtifactLocation::builder()
                    .r#type(cp::ArtifactLocationType::S3)
                    .s3_location(
                        cp::S3ArtifactLocation::builder()
                            .bucket_name("artifacts")
                            .object_key(key)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .build()
    };
    cp::Job::builder()
        .id("job-1")
        .nonce("7")
        .data(
            cp::JobData::builder()
                .action_configuration(
                    cp::ActionConfiguration::builder()
                        .configuration("ImageId", "ami-12345678")
                        .build(),
                )
                .input_artifacts(artifact("SourceOutput", "app/Source/abc"))
                .output_artifacts(artifact("BuildOutput", "app/Build/def"))
                .pipeline_context(
                    cp::PipelineContext::builder()
                        .pipeline_name("app")
                        .stage(cp::StageContext::builder().name("Build").build())
                        .action(cp::ActionContext::builder().name("Compile").build())
                        .pipeline_execution_id("pe-1")
                        .build(),
                )
                .artifact_credentials(
                    cp::AwsSessionCredentials::builder()
                        .access_key_id("AKIA-SECRET")
                        .secret_access_key("SECRET")
                        .session_token("TOKEN")
                        .build()
                        .unwrap(),
                )
                .encryption_key(
                    cp::EncryptionKey::builder()
                        .id("alias/pipeline")
                        .r#type(cp::EncryptionKeyType::Kms)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn poll_for_jobs_asks_for_our_action_type_and_maps_the_job() {
    let rule = mock!(aws_sdk_codepipeline::Client::poll_for_jobs)
        .match_requests(|r| {
            let t = r.action_type_id().unwrap();
            t.owner() == &cp::ActionOwner::Custom
                && t.category() == &cp::ActionCategory::Build
                && t.provider() == "EC2Build"
                && t.version() == "1"
                && r.max_batch_size() == Some(5)
        })
        .then_output(|| PollForJobsOutput::builder().jobs(sdk_job()).build());
    let client = mock_client!(aws_sdk_codepipeline, [&rule]);
    let jobs = CodePipelineJobs::new(client, &action_type())
        .unwrap()
        .poll_for_jobs(5)
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
    let job = &jobs[0];
    assert_eq!((job.id.as_str(), job.nonce.as_str()), ("job-1", "7"));
    assert_eq!(job.data.configuration["ImageId"], "ami-12345678");
    assert_eq!(
        job.data.input_artifacts[0].location.as_ref().unwrap().key,
        "app/Source/abc"
    );
    assert_eq!(job.data.output_artifacts[0].name, "BuildOutput");
    assert_eq!(job.data.pipeline.action_name, "Compile");
    assert_eq!(
        job.data.encryption_key_id.as_deref(),
        Some("alias/pipeline")
    );
    assert!(
        !format!("{job:?}").contains("SECRET"),
        "artifact credentials must not be kept"
    );
}

#[tokio::test]
async fn acknowledge_maps_status_and_invalid_nonce() {
    let ok = mock!(aws_sdk_codepipeline::Client::acknowledge_job)
        .match_requests(|r| r.nonce() == Some("7"))
        .then_output(|| {
            AcknowledgeJobOutput::builder()
                .status(cp::JobStatus::InProgress)
                .build()
        });
    let foreign = mock!(aws_sdk_codepipeline::Client::acknowledge_job).then_error(|| {
        AcknowledgeJobError::InvalidNonceException(
            cp::error::InvalidNonceException::builder()
                .message("nope")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, [&ok, &foreign]);
    let jobs = CodePipelineJobs::new(client, &action_type()).unwrap();
    assert_eq!(
        jobs.acknowledge_job("job-1", "7").await.unwrap(),
        AckStatus::InProgress
    );
    assert_eq!(
        jobs.acknowledge_job("job-1", "8").await.unwrap_err(),
        ServiceError::InvalidNonce("job-1".into())
    );
}

#[tokio::test]
async fn success_carries_token_details_and_maps_invalid_job_state() {
    let continued = mock!(aws_sdk_codepipeline::Client::put_job_success_result)
        .match_requests(|r| {
            let d = r.execution_details().unwrap();
            r.continuation_token() == Some("arn:exec")
                && d.external_execution_id() == Some("arn:exec")
                && d.percent_complete() == Some(0)
                && r.output_variables().is_none()
        })
        .then_output(|| PutJobSuccessResultOutput::builder().build());
    let answered = mock!(aws_sdk_codepipeline::Client::put_job_success_result).then_error(|| {
        PutJobSuccessResultError::InvalidJobStateException(
            cp::error::InvalidJobStateException::builder().build(),
        )
    });
    let client = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::Sequential,
        [&continued, &answered]
    );
    let jobs = CodePipelineJobs::new(client, &action_type()).unwrap();
    let report = SuccessReport {
        summary: "Build started".into(),
        external_execution_id: "arn:exec".into(),
        percent_complete: Some(0),
        continuation_token: Some("arn:exec".into()),
        output_variables: BTreeMap::new(),
    };
    jobs.put_job_success("job-1", &report).await.unwrap();
    assert_eq!(continued.num_calls(), 1);
    assert_eq!(
        jobs.put_job_success("job-1", &report).await.unwrap_err(),
        ServiceError::InvalidJobState("job-1".into())
    );
}

#[tokio::test]
async fn failure_sends_type_and_message() {
    let rule = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .match_requests(|r| {
            let d = r.failure_details().unwrap();
            d.r#type() == &cp::FailureType::ConfigurationError && d.message().contains("ImageId")
        })
        .then_output(|| PutJobFailureResultOutput::builder().build());
    let client = mock_client!(aws_sdk_codepipeline, [&rule]);
    let jobs = CodePipelineJobs::new(client, &action_type()).unwrap();
    let report = FailureReport {
        kind: FailureKind::ConfigurationError,
        message: "ImageId is required".into(),
        external_execution_id: None,
    };
    jobs.put_job_failure("job-1", &report).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-build";
const EXEC: &str = "arn:aws:states:us-east-1:123456789012:execution:ec2-build:job-1";

#[tokio::test]
async fn start_execution_names_the_execution_and_maps_already_exists() {
    let started = mock!(aws_sdk_sfn::Client::start_execution)
        .match_requests(|r| {
            r.state_machine_arn() == Some(SM)
                && r.name() == Some("job-1")
                && r.input() == Some("{}")
        })
        .then_output(|| {
            StartExecutionOutput::builder()
                .execution_arn(EXEC)
                .start_date(DateTime::from_secs(0))
                .build()
                .unwrap()
        });
    let exists = mock!(aws_sdk_sfn::Client::start_execution).then_error(|| {
        StartExecutionError::ExecutionAlreadyExists(
            aws_sdk_sfn::types::error::ExecutionAlreadyExists::builder().build(),
        )
    });
    let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&started, &exists]);
    let steps = StepFunctionsExecutions::new(client, SM);
    assert_eq!(steps.start_execution("job-1", "{}").await.unwrap(), EXEC);
    assert_eq!(
        steps.start_execution("job-1", "{}").await.unwrap_err(),
        ServiceError::ExecutionAlreadyExists("job-1".into())
    );
}

#[tokio::test]
async fn describe_execution_maps_status_output_and_missing_execution() {
    let failed = mock!(aws_sdk_sfn::Client::describe_execution).then_output(|| {
        DescribeExecutionOutput::builder()
            .execution_arn(EXEC)
            .state_machine_arn(SM)
            .status(aws_sdk_sfn::types::ExecutionStatus::Failed)
            .start_date(DateTime::from_secs(100))
            .stop_date(DateTime::from_secs(190))
            .error("BuildFailed")
            .cause("{\"Stage\":\"build\"}")
            .build()
            .unwrap()
    });
    let missing = mock!(aws_sdk_sfn::Client::describe_execution).then_error(|| {
        DescribeExecutionError::ExecutionDoesNotExist(
            aws_sdk_sfn::types::error::ExecutionDoesNotExist::builder().build(),
        )
    });
    let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&failed, &missing]);
    let steps = StepFunctionsExecutions::new(client, SM);
    let d = steps.describe_execution(EXEC).await.unwrap();
    assert_eq!(d.status, ExecutionStatus::Failed);
    assert_eq!(d.error.as_deref(), Some("BuildFailed"));
    assert_eq!(d.duration_seconds, Some(90));
    assert_eq!(
        steps.describe_execution(EXEC).await.unwrap_err(),
        ServiceError::ExecutionNotFound(EXEC.into())
    );
}

/// A history event: `name` entered, at second `id`.
fn entered(id: i64, name: &str) -> aws_sdk_sfn::types::HistoryEvent {
    use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType, StateEnteredEventDetails};
    HistoryEvent::builder()
        .id(id)
        .timestamp(DateTime::from_secs(id))
        .r#type(HistoryEventType::TaskStateEntered)
        .state_entered_event_details(
            StateEnteredEventDetails::builder()
                .name(name)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn current_state_is_the_last_state_entered() {
    let rule = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| r.reverse_order() == Some(true))
        .then_output(move || {
            GetExecutionHistoryOutput::builder()
                .events(entered(9, "RunBuild"))
                .events(entered(5, "WaitForAgent"))
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_sfn, [&rule]);
    let steps = StepFunctionsExecutions::new(client, SM);
    assert_eq!(
        steps.current_state(EXEC).await.unwrap().as_deref(),
        Some("RunBuild")
    );
}

#[tokio::test]
async fn states_entered_lists_every_page_without_the_data_oldest_first() {
    use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
    let started = HistoryEvent::builder()
        .id(1)
        .timestamp(DateTime::from_secs(1))
        .r#type(HistoryEventType::ExecutionStarted)
        .build()
        .unwrap();
    let first = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| r.include_execution_data() == Some(false) && r.next_token().is_none())
        .then_output(move || {
            GetExecutionHistoryOutput::builder()
                .events(started.clone())
                .events(entered(2, "RunBuild"))
                .events(entered(3, "PrepareRestart"))
                .next_token("page-2")
                .build()
                .unwrap()
        });
    let second = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            GetExecutionHistoryOutput::builder()
                .events(entered(4, "Launch"))
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&first, &second]);
    let steps = StepFunctionsExecutions::new(client, SM);
    assert_eq!(
        steps.states_entered(EXEC).await.unwrap(),
        vec!["RunBuild", "PrepareRestart", "Launch"]
    );
}

#[tokio::test]
async fn release_terminates_the_tagged_instances_only_when_there_are_some() {
    let found = mock!(aws_sdk_ec2::Client::describe_tags)
        .match_requests(|r| {
            let has = |name: &str, value: &str| {
                r.filters()
                    .iter()
                    .any(|f| f.name() == Some(name) && f.values() == [value])
            };
            has("resource-type", "instance")
                && has("key", "ec2-build:execution-arn")
                && has("value", EXEC)
        })
        .then_output(|| tagged(&["i-0abc"]));
    let terminate = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0abc"])
        .then_output(|| stopped("i-0abc"));
    let none = mock!(aws_sdk_ec2::Client::describe_tags)
        .then_output(|| DescribeTagsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&found, &terminate, &none]
    );
    let instances = Ec2Instances::new(client);
    assert_eq!(
        instances.release_for_execution(EXEC).await.unwrap(),
        vec!["i-0abc"]
    );
    assert_eq!(terminate.num_calls(), 1);
    assert!(instances
        .release_for_execution(EXEC)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(terminate.num_calls(), 1);
}

#[tokio::test]
async fn release_reports_only_instances_it_stopped() {
    let tags = mock!(aws_sdk_ec2::Client::describe_tags)
        .then_output(|| tagged(&["i-0done", "i-0live", "i-0going"]));
    let terminate = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0done", "i-0live", "i-0going"])
        .then_output(|| {
            TerminateInstancesOutput::builder()
                .terminating_instances(state_change("i-0done", InstanceStateName::Terminated))
                .terminating_instances(state_change("i-0live", InstanceStateName::Running))
                .terminating_instances(state_change("i-0going", InstanceStateName::ShuttingDown))
                .build()
        });
    let client = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&tags, &terminate]);
    assert_eq!(
        Ec2Instances::new(client)
            .release_for_execution(EXEC)
            .await
            .unwrap(),
        vec!["i-0live"]
    );
}

#[tokio::test]
async fn release_skips_an_instance_ec2_no_longer_knows() {
    use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesError;
    use aws_smithy_types::error::ErrorMetadata;
    let not_found = || {
        TerminateInstancesError::generic(
            ErrorMetadata::builder()
                .code("InvalidInstanceID.NotFound")
                .message("The instance ID 'i-0gone' does not exist")
                .build(),
        )
    };
    let tags =
        mock!(aws_sdk_ec2::Client::describe_tags).then_output(|| tagged(&["i-0gone", "i-0live"]));
    let both = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0gone", "i-0live"])
        .then_error(not_found);
    let gone = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0gone"])
        .then_error(not_found);
    let live = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0live"])
        .then_output(|| stopped("i-0live"));
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&tags, &both, &gone, &live]
    );
    assert_eq!(
        Ec2Instances::new(client)
            .release_for_execution(EXEC)
            .await
            .unwrap(),
        vec!["i-0live"]
    );
    assert_eq!(live.num_calls(), 1);
}

/// DescribeTags' answer: the execution tag on each of these instances.
fn tagged(ids: &[&str]) -> DescribeTagsOutput {
    ids.iter()
        .fold(DescribeTagsOutput::builder(), |out, id| {
            out.tags(
                aws_sdk_ec2::types::TagDescription::builder()
                    .resource_id(*id)
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .key("ec2-build:execution-arn")
                    .value(EXEC)
                    .build(),
            )
        })
        .build()
}

/// TerminateInstances' answer for one running instance.
fn stopped(id: &str) -> TerminateInstancesOutput {
    TerminateInstancesOutput::builder()
        .terminating_instances(state_change(id, InstanceStateName::Running))
        .build()
}

fn state_change(
    id: &str,
    previous: aws_sdk_ec2::types::InstanceStateName,
) -> aws_sdk_ec2::types::InstanceStateChange {
    use aws_sdk_ec2::types::{InstanceState, InstanceStateChange};
    InstanceStateChange::builder()
        .instance_id(id)
        .previous_state(InstanceState::builder().name(previous).build())
        .current_state(
            InstanceState::builder()
                .name(InstanceStateName::ShuttingDown)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn running_executions_lists_every_page_of_running_ones() {
    use aws_sdk_sfn::operation::list_executions::ListExecutionsOutput;
    use aws_sdk_sfn::types::ExecutionListItem;
    let item = |name: &str| {
        ExecutionListItem::builder()
            .execution_arn(format!("{EXEC}-{name}"))
            .state_machine_arn(SM)
            .name(name)
            .status(aws_sdk_sfn::types::ExecutionStatus::Running)
            .start_date(DateTime::from_secs(1))
            .build()
            .unwrap()
    };
    let running = |r: &aws_sdk_sfn::operation::list_executions::ListExecutionsInput| {
        r.status_filter() == Some(&aws_sdk_sfn::types::ExecutionStatus::Running)
            && r.state_machine_arn() == Some(SM)
    };
    let first = mock!(aws_sdk_sfn::Client::list_executions)
        .match_requests(move |r| running(r) && r.next_token().is_none())
        .then_output(move || {
            ListExecutionsOutput::builder()
                .executions(item("a"))
                .next_token("page-2")
                .build()
                .unwrap()
        });
    let second = mock!(aws_sdk_sfn::Client::list_executions)
        .match_requests(move |r| running(r) && r.next_token() == Some("page-2"))
        .then_output(move || {
            ListExecutionsOutput::builder()
                .executions(item("b"))
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&first, &second]);
    let steps = StepFunctionsExecutions::new(client, SM);
    let running = steps.running_executions().await.unwrap();
    let arns: Vec<&str> = running.iter().map(|e| e.arn.as_str()).collect();
    assert_eq!(arns, vec![format!("{EXEC}-a"), format!("{EXEC}-b")]);
    assert_eq!(running[0].started_at, Some(1));
}

#[tokio::test]
async fn stop_execution_sends_error_and_cause_and_maps_a_missing_execution() {
    use aws_sdk_sfn::operation::stop_execution::{StopExecutionError, StopExecutionOutput};
    let stop = mock!(aws_sdk_sfn::Client::stop_execution)
        .match_requests(|r| {
            r.execution_arn() == Some(EXEC)
                && r.error() == Some("InstanceLost")
                && r.cause() == Some("i-1 is Terminated")
        })
        .then_output(|| {
            StopExecutionOutput::builder()
                .stop_date(DateTime::from_secs(5))
                .build()
                .unwrap()
        });
    let missing = mock!(aws_sdk_sfn::Client::stop_execution).then_error(|| {
        StopExecutionError::ExecutionDoesNotExist(
            aws_sdk_sfn::types::error::ExecutionDoesNotExist::builder().build(),
        )
    });
    let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&stop, &missing]);
    let steps = StepFunctionsExecutions::new(client, SM);
    steps
        .stop_execution(EXEC, "InstanceLost", "i-1 is Terminated")
        .await
        .unwrap();
    assert_eq!(
        steps.stop_execution(EXEC, "X", "y").await.unwrap_err(),
        ServiceError::ExecutionNotFound(EXEC.into())
    );
}

#[tokio::test]
async fn action_executions_reads_one_page_per_pipeline_and_every_page_per_execution() {
    use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
    use ec2_build_core::model::ActionStatus;
    let detail = |id: &str, status: cp::ActionExecutionStatus| {
        cp::ActionExecutionDetail::builder()
            .pipeline_execution_id(id)
            .stage_name("Build")
            .action_name("Compile")
            .status(status)
            .output(
                cp::ActionExecutionOutput::builder()
                    .execution_result(
                        cp::ActionExecutionResult::builder()
                            .external_execution_id(EXEC)
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    let recent = mock!(aws_sdk_codepipeline::Client::list_action_executions)
        .match_requests(|r| r.pipeline_name() == Some("app") && r.filter().is_none())
        .then_output(move || {
            ListActionExecutionsOutput::builder()
                .action_execution_details(detail("pe-2", cp::ActionExecutionStatus::Abandoned))
                .next_token("more")
                .build()
        });
    let filtered_1 = mock!(aws_sdk_codepipeline::Client::list_action_executions)
        .match_requests(|r| {
            r.filter().and_then(|f| f.pipeline_execution_id()) == Some("pe-1")
                && r.next_token().is_none()
        })
        .then_output(move || {
            ListActionExecutionsOutput::builder()
                .action_execution_details(detail("pe-1", cp::ActionExecutionStatus::Failed))
                .next_token("p2")
                .build()
        });
    let filtered_2 = mock!(aws_sdk_codepipeline::Client::list_action_executions)
        .match_requests(|r| r.next_token() == Some("p2"))
        .then_output(move || {
            ListActionExecutionsOutput::builder()
                .action_execution_details(detail("pe-1", cp::ActionExecutionStatus::InProgress))
                .build()
        });
    let client = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::Sequential,
        [&recent, &filtered_1, &filtered_2]
    );
    let jobs = CodePipelineJobs::new(client, &action_type()).unwrap();
    let page = jobs.action_executions("app", None).await.unwrap();
    assert_eq!(page.len(), 1, "one page only without a filter");
    assert_eq!(page[0].status, ActionStatus::Abandoned);
    assert_eq!(page[0].external_execution_id.as_deref(), Some(EXEC));
    let all = jobs.action_executions("app", Some("pe-1")).await.unwrap();
    let statuses: Vec<_> = all.iter().map(|a| a.status.clone()).collect();
    assert_eq!(
        statuses,
        vec![ActionStatus::Failed, ActionStatus::InProgress]
    );
}

#[tokio::test]
async fn build_instances_asks_for_the_stack_tag_and_reads_the_build_tags() {
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::types::{Instance, InstanceState, Reservation, StateReason, Tag};
    use ec2_build_core::model::InstanceState as State;
    use ec2_build_core::ports::Fleet;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let rule = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|r| {
            r.filters()
                .iter()
                .any(|f| f.name() == Some("tag:ec2-build:stack") && f.values() == ["my-stack"])
        })
        .then_output(move || {
            DescribeInstancesOutput::builder()
                .reservations(
                    Reservation::builder()
                        .instances(
                            Instance::builder()
                                .instance_id("i-1")
                                .state(
                                    InstanceState::builder()
                                        .name(InstanceStateName::Terminated)
                                        .build(),
                                )
                                .state_reason(
                                    StateReason::builder()
                                        .message("Client.UserInitiatedShutdown")
                                        .build(),
                                )
                                .launch_time(DateTime::from_secs(1000))
                                .tags(tag("ec2-build:execution-arn", EXEC))
                                .tags(tag("ec2-build:pipeline-execution-id", "pe-1"))
                                .tags(tag("ec2-build:build-seconds", "3900"))
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let client = mock_client!(aws_sdk_ec2, [&rule]);
    let fleet = ec2_build_aws::Ec2Fleet::new(client, "my-stack");
    let instances = fleet.build_instances().await.unwrap();
    assert_eq!(instances.len(), 1);
    let instance = &instances[0];
    assert_eq!(instance.state, State::Terminated);
    assert_eq!(
        instance.state_reason.as_deref(),
        Some("Client.UserInitiatedShutdown")
    );
    assert_eq!(instance.launched_at, Some(1000));
    assert_eq!(instance.tags.execution_arn.as_deref(), Some(EXEC));
    assert_eq!(instance.tags.pipeline_execution_id.as_deref(), Some("pe-1"));
    assert_eq!(instance.tags.build_seconds, Some(3900));
    assert_eq!(instance.tags.stage, None);
}
