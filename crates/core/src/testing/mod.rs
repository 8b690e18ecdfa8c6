//! Test support for this crate and the Lambda crates: fakes of the ports ([`fakes`], [`fleet`]) and
//! fixtures (settings, jobs, and the use cases built over fakes).

pub mod fakes;
pub mod fleet;
pub mod pools;

pub use fakes::{
    Answer, FakeHeldJobs, FakePipeline, FakeSteps, HeldJobsFake, PipelineFake, StepsFake,
};
pub use fleet::{build_tags, FakeInstances, InstancesFake};
pub use pools::{FakePoolRegistry, PoolRegistryFake};

use crate::model::{Job, JobData};
use crate::settings::{KeeperSettings, Settings};
use crate::use_cases::{
    completion::Completion, job::JobWorker, keeper::Keeper, pools::PoolKeeper, sweep::Sweep,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// A time budget no test sweep reaches: the deadline never stops it.
pub const AMPLE_TIME: Duration = Duration::from_secs(15 * 60);

/// State machine of the fixtures below.
pub const STATE_MACHINE_ARN: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-build";

/// Settings for action type Custom/Build/EC2Build/1 and [`STATE_MACHINE_ARN`], with short
/// completion polling; `overrides` are further environment variables.
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    let base = [
        ("STATE_MACHINE_ARN", STATE_MACHINE_ARN),
        ("ACTION_CATEGORY", "Build"),
        ("ACTION_PROVIDER", "EC2Build"),
        ("ACTION_VERSION", "1"),
        ("HELD_JOBS_TABLE", "held-jobs"),
        ("COMPLETION_POLL_ATTEMPTS", "3"),
        ("COMPLETION_POLL_DELAY_MS", "10"),
    ];
    Settings::from_lookup(|name| {
        overrides
            .iter()
            .chain(base.iter())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("fixture settings are valid")
}

/// A new job of a valid `command` build with one input and one output artifact; `configuration`
/// overrides properties.
pub fn new_job(id: &str, configuration: &[(&str, &str)]) -> Job {
    use crate::model::{Artifact, ArtifactLocation, PipelineContext};
    let config: BTreeMap<String, String> = [
        ("ImageId", "ami-0123456789abcdef0"),
        ("InstanceType", "m5.large"),
        ("Command", "make"),
        ("OutputArtifactPath", "dist"),
    ]
    .iter()
    .chain(configuration.iter())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let artifact = |name: &str| Artifact {
        name: name.into(),
        location: Some(ArtifactLocation {
            bucket: "artifacts".into(),
            key: format!("app/{name}/obj"),
        }),
    };
    Job {
        id: id.into(),
        nonce: format!("nonce-{id}"),
        data: JobData {
            configuration: config,
            input_artifacts: vec![artifact("SourceOutput")],
            output_artifacts: vec![artifact("BuildOutput")],
            pipeline: PipelineContext {
                pipeline_name: "app".into(),
                stage_name: "Build".into(),
                action_name: "Compile".into(),
                pipeline_execution_id: "pe-1".into(),
            },
            encryption_key_id: None,
            continuation_token: None,
        },
    }
}

/// A continuation job carrying `token`.
pub fn continuation_job(id: &str, token: &str) -> Job {
    let data = JobData {
        continuation_token: Some(token.into()),
        ..Default::default()
    };
    Job {
        id: id.into(),
        nonce: "n".into(),
        data,
    }
}

/// Fresh fakes of every port, and the use cases built over handles on them.
#[derive(Clone)]
pub struct Fakes {
    pub pipeline: FakePipeline,
    pub steps: FakeSteps,
    pub held: FakeHeldJobs,
    pub instances: FakeInstances,
}

impl Default for Fakes {
    fn default() -> Self {
        Self {
            pipeline: FakePipeline::default(),
            steps: FakeSteps::new(STATE_MACHINE_ARN),
            held: FakeHeldJobs::default(),
            instances: FakeInstances::default(),
        }
    }
}

impl Fakes {
    /// Fakes whose CodePipeline has these jobs queued.
    pub fn with_jobs(jobs: Vec<Job>) -> Self {
        Self {
            pipeline: FakePipeline::with_jobs(jobs),
            ..Self::default()
        }
    }

    pub fn worker(&self, settings: Settings) -> JobWorker<FakePipeline, FakeSteps, FakeHeldJobs> {
        JobWorker::new(
            self.pipeline.clone(),
            self.steps.clone(),
            self.held.clone(),
            settings,
        )
    }

    pub fn sweep(&self, settings: Settings) -> Sweep<FakePipeline, FakeSteps, FakeHeldJobs> {
        Sweep::new(self.worker(settings))
    }

    pub fn completion(
        &self,
        settings: Settings,
    ) -> Completion<FakePipeline, FakeSteps, FakeHeldJobs, FakeInstances> {
        Completion::new(self.worker(settings), self.instances.clone())
    }

    /// The keeper's pool part for a stack that declares no pools.
    pub fn pool_keeper(&self) -> PoolKeeper<FakePoolRegistry, FakeSteps, FakeInstances> {
        PoolKeeper::new(
            FakePoolRegistry::default(),
            self.steps.clone(),
            FakeSteps::new("arn:aws:states:us-east-1:123456789012:stateMachine:prepare"),
            self.instances.clone(),
            self.keeper_settings(),
        )
    }

    fn keeper_settings(&self) -> KeeperSettings {
        KeeperSettings {
            stack_name: "stack".into(),
            grace_seconds: 2400,
            pools: Vec::new(),
            subnet_ids: Vec::new(),
        }
    }

    /// The keeper of stack `stack` with the default grace period.
    pub fn keeper(&self) -> Keeper<FakePipeline, FakeSteps, FakeInstances> {
        Keeper::new(
            self.pipeline.clone(),
            self.steps.clone(),
            self.instances.clone(),
            self.keeper_settings(),
        )
    }
}
