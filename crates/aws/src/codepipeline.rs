//! The CodePipeline job worker API.

use crate::error::service_error;
use crate::AdapterError;
use async_trait::async_trait;
use aws_sdk_codepipeline::config::http::HttpResponse;
use aws_sdk_codepipeline::error::SdkError;
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionExecutionFilter, ActionOwner, ActionTypeId, ExecutionDetails,
    FailureDetails, FailureType, JobStatus,
};
use aws_sdk_codepipeline::Client;
use ec2_build_core::model::AckStatus;
use ec2_build_core::model::{
    ActionExecution, ActionStatus, Artifact, ArtifactLocation, FailureKind, FailureReport, Job,
    JobData, PipelineContext, ServiceError, SuccessReport,
};
use ec2_build_core::ports::CodePipeline;
use ec2_build_core::ActionType;

const SERVICE: &str = "codepipeline";

/// [`CodePipeline`] over the SDK client, for one custom action type.
#[derive(Clone)]
pub struct CodePipelineJobs {
    client: Client,
    action_type: ActionTypeId,
}

impl CodePipelineJobs {
    pub fn new(client: Client, action_type: &ActionType) -> Result<Self, AdapterError> {
        let action_type = ActionTypeId::builder()
            .category(ActionCategory::from(action_type.category.as_str()))
            .owner(ActionOwner::Custom)
            .provider(&action_type.provider)
            .version(&action_type.version)
            .build()
            .map_err(|e| AdapterError::Request {
                operation: "PollForJobs",
                message: e.to_string(),
            })?;
        Ok(Self {
            client,
            action_type,
        })
    }
}

/// Errors of PutJobSuccessResult and PutJobFailureResult: a job answered before, or unknown.
/// `classify` tells (invalid job state, job not found) for the operation's error type.
fn answer_error<E>(
    job_id: &str,
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
    classify: impl Fn(&E) -> (bool, bool),
) -> ServiceError
where
    E: std::error::Error + 'static,
{
    match e.as_service_error().map(classify) {
        Some((true, _)) => ServiceError::InvalidJobState(job_id.to_string()),
        Some((_, true)) => ServiceError::JobNotFound(job_id.to_string()),
        _ => service_error(SERVICE, operation, e),
    }
}

fn to_job(job: &aws_sdk_codepipeline::types::Job) -> Job {
    let data = job.data();
    let artifacts = |list: &[aws_sdk_codepipeline::types::Artifact]| -> Vec<Artifact> {
        list.iter()
            .map(|a| Artifact {
                name: a.name().unwrap_or_default().to_string(),
                location: a
                    .location()
                    .and_then(|l| l.s3_location())
                    .map(|s3| ArtifactLocation {
                        bucket: s3.bucket_name().to_string(),
                        key: s3.object_key().to_string(),
                    }),
            })
            .collect()
    };
    let pipeline = data.and_then(|d| d.pipeline_context());
    Job {
        id: job.id().unwrap_or_default().to_string(),
        nonce: job.nonce().unwrap_or_default().to_string(),
        data: JobData {
            configuration: data
                .and_then(|d| d.action_configuration())
                .and_then(|c| c.configuration())
                .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            input_artifacts: artifacts(data.map(|d| d.input_artifacts()).unwrap_or_default()),
            output_artifacts: artifacts(data.map(|d| d.output_artifacts()).unwrap_or_default()),
            pipeline: PipelineContext {
                pipeline_name: pipeline
                    .and_then(|p| p.pipeline_name())
                    .unwrap_or_default()
                    .to_string(),
                stage_name: pipeline
                    .and_then(|p| p.stage())
                    .and_then(|s| s.name())
                    .unwrap_or_default()
                    .to_string(),
                action_name: pipeline
                    .and_then(|p| p.action())
                    .and_then(|a| a.name())
                    .unwrap_or_default()
                    .to_string(),
                pipeline_execution_id: pipeline
                    .and_then(|p| p.pipeline_execution_id())
                    .unwrap_or_default()
                    .to_string(),
            },
            encryption_key_id: data
                .and_then(|d| d.encryption_key())
                .map(|k| k.id().to_string()),
            continuation_token: data
                .and_then(|d| d.continuation_token())
                .map(str::to_string),
        },
    }
}

#[async_trait]
impl CodePipeline for CodePipelineJobs {
    async fn poll_for_jobs(&self, max_batch_size: u32) -> Result<Vec<Job>, ServiceError> {
        let out = self
            .client
            .poll_for_jobs()
            .action_type_id(self.action_type.clone())
            .max_batch_size(max_batch_size as i32)
            .send()
            .await
            .map_err(|e| service_error(SERVICE, "PollForJobs", e))?;
        Ok(out.jobs().iter().map(to_job).collect())
    }

    async fn acknowledge_job(&self, job_id: &str, nonce: &str) -> Result<AckStatus, ServiceError> {
        let result = self
            .client
            .acknowledge_job()
            .job_id(job_id)
            .nonce(nonce)
            .send()
            .await;
        match result {
            Ok(out) => Ok(match out.status() {
                Some(JobStatus::InProgress) => AckStatus::InProgress,
                Some(other) => AckStatus::Other(other.as_str().to_string()),
                None => AckStatus::Other("none".into()),
            }),
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_invalid_nonce_exception()) {
                    Err(ServiceError::InvalidNonce(job_id.to_string()))
                } else if service.is_some_and(|s| s.is_job_not_found_exception()) {
                    Err(ServiceError::JobNotFound(job_id.to_string()))
                } else {
                    Err(service_error(SERVICE, "AcknowledgeJob", e))
                }
            }
        }
    }

    async fn put_job_success(
        &self,
        job_id: &str,
        report: &SuccessReport,
    ) -> Result<(), ServiceError> {
        let details = ExecutionDetails::builder()
            .summary(&report.summary)
            .external_execution_id(&report.external_execution_id)
            .set_percent_complete(report.percent_complete)
            .build();
        let mut request = self
            .client
            .put_job_success_result()
            .job_id(job_id)
            .execution_details(details)
            .set_continuation_token(report.continuation_token.clone());
        if !report.output_variables.is_empty() {
            request = request
                .set_output_variables(Some(report.output_variables.clone().into_iter().collect()));
        }
        request.send().await.map(|_| ()).map_err(|e| {
            answer_error(job_id, "PutJobSuccessResult", e, |s| {
                (
                    s.is_invalid_job_state_exception(),
                    s.is_job_not_found_exception(),
                )
            })
        })
    }

    async fn put_job_failure(
        &self,
        job_id: &str,
        report: &FailureReport,
    ) -> Result<(), ServiceError> {
        let kind = match report.kind {
            FailureKind::ConfigurationError => FailureType::ConfigurationError,
            FailureKind::JobFailed => FailureType::JobFailed,
        };
        let details = FailureDetails::builder()
            .r#type(kind)
            .message(&report.message)
            .set_external_execution_id(report.external_execution_id.clone())
            .build()
            .map_err(|e| AdapterError::Request {
                operation: "PutJobFailureResult",
                message: e.to_string(),
            })?;
        self.client
            .put_job_failure_result()
            .job_id(job_id)
            .failure_details(details)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                answer_error(job_id, "PutJobFailureResult", e, |s| {
                    (
                        s.is_invalid_job_state_exception(),
                        s.is_job_not_found_exception(),
                    )
                })
            })
    }

    async fn action_executions(
        &self,
        pipeline: &str,
        pipeline_execution_id: Option<&str>,
    ) -> Result<Vec<ActionExecution>, ServiceError> {
        let filter = pipeline_execution_id.map(|id| {
            ActionExecutionFilter::builder()
                .pipeline_execution_id(id)
                .build()
        });
        let mut pages = self
            .client
            .list_action_executions()
            .pipeline_name(pipeline)
            .set_filter(filter)
            .max_results(100)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "ListActionExecutions", e))?;
            found.extend(page.action_execution_details().iter().map(|d| {
                ActionExecution {
                    pipeline_execution_id: d
                        .pipeline_execution_id()
                        .unwrap_or_default()
                        .to_string(),
                    stage: d.stage_name().unwrap_or_default().to_string(),
                    action: d.action_name().unwrap_or_default().to_string(),
                    status: ActionStatus::parse(d.status().map(|s| s.as_str()).unwrap_or_default()),
                    external_execution_id: d
                        .output()
                        .and_then(|o| o.execution_result())
                        .and_then(|r| r.external_execution_id())
                        .map(str::to_string),
                    started_at_ms: d
                        .start_time()
                        .and_then(|t| t.to_millis().ok())
                        .map(|ms| ms.max(0) as u64),
                }
            }));
            // Without a filter only the most recent page is wanted: one call per pipeline.
            if pipeline_execution_id.is_none() {
                break;
            }
        }
        Ok(found)
    }
}
