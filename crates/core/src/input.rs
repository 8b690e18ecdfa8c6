//! The input of a build execution, built from a job and its [`BuildSpec`].

use crate::model::{Artifact, Job, JobDataError};
use crate::spec::BuildSpec;
use serde::Serialize;

/// Seconds the build task waits beyond the build's own timeout, for download and upload.
pub const TRANSFER_ALLOWANCE_SECONDS: u32 = 300;

/// Execution input; its shape is fixed in docs/contracts.md and read by the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionInput {
    pub job_id: String,
    pub pipeline: PipelineInput,
    pub instance: InstanceInput,
    pub build: DocumentParameters,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PipelineInput {
    pub name: String,
    pub execution_id: String,
    pub stage: String,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceInput {
    pub image_id: String,
    pub instance_types: Vec<String>,
    pub capacity: &'static str,
    /// The warm pool to claim an instance from; absent for a fresh launch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// The SSM document's parameters (other than `TaskToken` and `Region`), as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DocumentParameters {
    pub job_id: String,
    pub build_kind: &'static str,
    pub command: String,
    pub build_target: String,
    pub working_directory: String,
    pub output_artifact_path: String,
    pub input_artifacts: String,
    pub output_artifacts: String,
    pub kms_key_id: String,
    pub timeout_seconds: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Timeouts {
    /// `TimeoutSeconds` of the build task.
    pub build_seconds: u32,
    /// `HeartbeatSeconds` of the build task.
    pub heartbeat_seconds: u32,
}

impl ExecutionInput {
    /// Builds the input deterministically, so a repeated start has the same input.
    pub fn new(job: &Job, spec: &BuildSpec, heartbeat_seconds: u32) -> Result<Self, JobDataError> {
        let data = &job.data;
        let build_seconds = spec.timeout_minutes * 60;
        Ok(Self {
            job_id: job.id.clone(),
            pipeline: PipelineInput {
                name: data.pipeline.pipeline_name.clone(),
                execution_id: data.pipeline.pipeline_execution_id.clone(),
                stage: data.pipeline.stage_name.clone(),
                action: data.pipeline.action_name.clone(),
            },
            instance: InstanceInput {
                image_id: spec.image_id.clone(),
                instance_types: spec.instance_types.clone(),
                capacity: spec.capacity.as_str(),
                pool: spec.pool.clone(),
            },
            build: DocumentParameters {
                job_id: job.id.clone(),
                build_kind: spec.kind.as_str(),
                command: spec.command.clone(),
                build_target: spec.target.clone(),
                working_directory: spec.working_directory.clone(),
                output_artifact_path: spec.output_paths.join(","),
                input_artifacts: artifact_list("input", &data.input_artifacts)?,
                output_artifacts: artifact_list("output", &data.output_artifacts)?,
                kms_key_id: data.encryption_key_id.clone().unwrap_or_default(),
                timeout_seconds: build_seconds.to_string(),
            },
            timeouts: Timeouts {
                build_seconds: build_seconds + TRANSFER_ALLOWANCE_SECONDS,
                heartbeat_seconds,
            },
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("execution input is plain data")
    }
}

/// `Name=s3://bucket/key` entries separated by spaces, after checking that each part is safe in
/// that format.
fn artifact_list(direction: &str, artifacts: &[Artifact]) -> Result<String, JobDataError> {
    const MAX_ARTIFACTS: usize = 5;
    if artifacts.len() > MAX_ARTIFACTS {
        return Err(JobDataError(format!(
            "the job has {} {direction} artifacts; the action supports at most {MAX_ARTIFACTS}",
            artifacts.len()
        )));
    }
    let mut entries = Vec::with_capacity(artifacts.len());
    for artifact in artifacts {
        let location = artifact.location.as_ref().ok_or_else(|| {
            JobDataError(format!(
                "{direction} artifact {:?} has no S3 location",
                artifact.name
            ))
        })?;
        let name_ok = !artifact.name.is_empty()
            && artifact
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let bucket_ok = !location.bucket.is_empty()
            && location
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        let key_ok = !location.key.is_empty()
            && location
                .key
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'=' && b != b'\\');
        if !(name_ok && bucket_ok && key_ok) {
            return Err(JobDataError(format!(
                "{direction} artifact {:?} has a name or S3 location (s3://{}/{}) the build cannot use",
                artifact.name, location.bucket, location.key
            )));
        }
        entries.push(format!(
            "{}=s3://{}/{}",
            artifact.name, location.bucket, location.key
        ));
    }
    Ok(entries.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ArtifactLocation, JobData, PipelineContext};
    use std::collections::BTreeMap;

    pub(crate) fn job() -> Job {
        let configuration: BTreeMap<String, String> = [
            ("ImageId", "ami-0123456789abcdef0"),
            ("InstanceType", "m5.large,m5a.large"),
            ("Command", "make"),
            ("OutputArtifactPath", "dist"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let artifact = |name: &str, key: &str| Artifact {
            name: name.into(),
            location: Some(ArtifactLocation {
                bucket: "artifacts-bucket".into(),
                key: key.into(),
            }),
        };
        Job {
            id: "11111111-2222-3333-4444-555555555555".into(),
            nonce: "1".into(),
            data: JobData {
                configuration,
                input_artifacts: vec![
                    artifact("SourceOutput", "app/SourceOutp/abc"),
                    artifact("Tools", "app/Tools/def"),
                ],
                output_artifacts: vec![artifact("BuildOutput", "app/BuildOutpu/xyz")],
                pipeline: PipelineContext {
                    pipeline_name: "app".into(),
                    stage_name: "Build".into(),
                    action_name: "Compile".into(),
                    pipeline_execution_id: "exec-1".into(),
                },
                encryption_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
                continuation_token: None,
            },
        }
    }

    #[test]
    fn input_carries_document_parameters_as_strings() {
        let job = job();
        let spec = BuildSpec::from_configuration(&job.data.configuration, 1).unwrap();
        let input = ExecutionInput::new(&job, &spec, 300).unwrap();
        let json: serde_json::Value = serde_json::from_str(&input.to_json()).unwrap();
        assert_eq!(json["JobId"], job.id.as_str());
        assert_eq!(
            json["Instance"]["InstanceTypes"],
            serde_json::json!(["m5.large", "m5a.large"])
        );
        assert_eq!(json["Instance"]["Capacity"], "on-demand");
        assert!(
            json["Instance"].get("Pool").is_none(),
            "a fresh launch's input has no Pool"
        );
        assert_eq!(
            json["Build"]["InputArtifacts"],
            "SourceOutput=s3://artifacts-bucket/app/SourceOutp/abc Tools=s3://artifacts-bucket/app/Tools/def"
        );
        assert_eq!(
            json["Build"]["OutputArtifacts"],
            "BuildOutput=s3://artifacts-bucket/app/BuildOutpu/xyz"
        );
        assert_eq!(json["Build"]["TimeoutSeconds"], "3600");
        assert_eq!(
            json["Build"]["KmsKeyId"],
            "arn:aws:kms:eu-west-1:123456789012:key/k"
        );
        assert_eq!(json["Timeouts"]["BuildSeconds"], 3900);
        assert!(json["Build"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.is_string()));
    }

    #[test]
    fn input_names_the_pool_when_the_action_does() {
        let mut job = job();
        job.data
            .configuration
            .insert("Pool".into(), "windows-warm".into());
        let spec = BuildSpec::from_configuration(&job.data.configuration, 1).unwrap();
        let input = ExecutionInput::new(&job, &spec, 300).unwrap();
        let json: serde_json::Value = serde_json::from_str(&input.to_json()).unwrap();
        assert_eq!(json["Instance"]["Pool"], "windows-warm");
    }

    #[test]
    fn same_job_gives_the_same_input() {
        let job = job();
        let spec = BuildSpec::from_configuration(&job.data.configuration, 1).unwrap();
        assert_eq!(
            ExecutionInput::new(&job, &spec, 300).unwrap().to_json(),
            ExecutionInput::new(&job, &spec, 300).unwrap().to_json()
        );
    }

    #[test]
    fn artifact_without_location_is_a_job_data_error() {
        let mut job = job();
        job.data.input_artifacts[0].location = None;
        let spec = BuildSpec::from_configuration(&job.data.configuration, 1).unwrap();
        let err = ExecutionInput::new(&job, &spec, 300).unwrap_err();
        assert_eq!(
            err,
            JobDataError("input artifact \"SourceOutput\" has no S3 location".into())
        );
    }

    #[test]
    fn artifact_key_with_a_space_is_refused() {
        let mut job = job();
        job.data.output_artifacts[0].location.as_mut().unwrap().key = "a b".into();
        let spec = BuildSpec::from_configuration(&job.data.configuration, 1).unwrap();
        assert!(matches!(
            ExecutionInput::new(&job, &spec, 300),
            Err(JobDataError(_))
        ));
    }
}
