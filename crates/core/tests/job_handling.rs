//! The decisions of job handling, the sweep and completion, against in-memory fakes of
//! CodePipeline, Step Functions and EC2.

use ec2_build_core::model::{epoch_now_ms, HeldJob};
use ec2_build_core::model::{FailureKind, SkipReason};
use ec2_build_core::testing::{
    self, continuation_job, new_job, Answer, FakeHeldJobs, FakePipeline, FakeSteps, Fakes,
    AMPLE_TIME,
};
use ec2_build_core::{
    CompletionError, CompletionSummary, ExecutionEnded, ExecutionStatus, JobOutcome, Reported,
    ServiceError, Settings, SweepError, SweepScope, SweepSummary,
};
use std::time::Duration;

fn settings() -> Settings {
    testing::settings(&[("POLL_BATCH_SIZE", "3")])
}

/// The fakes, and the sweep and completion use cases over handles on them.
struct Harness {
    fakes: Fakes,
}

impl Harness {
    fn pipeline(&self) -> &FakePipeline {
        &self.fakes.pipeline
    }

    fn steps(&self) -> &FakeSteps {
        &self.fakes.steps
    }

    fn held(&self) -> &FakeHeldJobs {
        &self.fakes.held
    }

    async fn sweep(
        &self,
        scope: SweepScope,
        time_left: Duration,
    ) -> Result<SweepSummary, SweepError> {
        self.fakes.sweep(settings()).run(scope, time_left).await
    }

    /// A scheduled sweep that refreshes every held job, however recently it was held.
    async fn refreshing_sweep(&self) -> SweepSummary {
        let settings =
            testing::settings(&[("POLL_BATCH_SIZE", "3"), ("HELD_JOB_REFRESH_SECONDS", "0")]);
        self.fakes
            .sweep(settings)
            .run(SweepScope::AllJobs, AMPLE_TIME)
            .await
            .unwrap()
    }

    /// Records `job_id` as held for the build `name`, with `token`, held at `held_at_ms`.
    fn hold(&self, name: &str, job_id: &str, token: &str, held_at_ms: u64) {
        self.pipeline().mark_in_progress(job_id);
        self.held().insert(HeldJob {
            execution_arn: self.steps().arn(name),
            job_id: job_id.into(),
            token: token.into(),
            held_at_ms,
        });
    }

    async fn finish(&self, ended: &ExecutionEnded) -> Result<CompletionSummary, CompletionError> {
        self.fakes
            .completion(settings())
            .finish(ended, AMPLE_TIME)
            .await
    }
}

fn handler(pipeline: FakePipeline) -> Harness {
    Harness {
        fakes: Fakes {
            pipeline,
            ..Fakes::default()
        },
    }
}

#[tokio::test]
async fn new_job_starts_an_execution_named_after_the_job_and_continues_with_its_arn() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let arn = h.steps().arn("job-1");
    assert_eq!(
        summary.outcomes,
        vec![JobOutcome::Started {
            job_id: "job-1".into(),
            execution_arn: arn.clone()
        }]
    );
    assert_eq!(
        h.pipeline().calls(),
        vec!["PollForJobs", "AcknowledgeJob", "PutJobSuccessResult"]
    );
    let Some(Answer::Success(report)) = h.pipeline().answer_for("job-1") else {
        panic!()
    };
    assert_eq!(report.continuation_token.as_deref(), Some(arn.as_str()));
    assert_eq!(report.external_execution_id, arn);
    assert!(
        report.summary.contains("console.aws.amazon.com/states/"),
        "{}",
        report.summary
    );
    let input: serde_json::Value =
        serde_json::from_str(&h.steps().input_of("job-1").unwrap()).unwrap();
    assert_eq!(input["Build"]["Command"], "make");
    assert!(!input.to_string().contains("artifactCredentials"));
}

/// Runs a sweep over one new job with `configuration`; the job must fail as a configuration
/// error without any execution: its failure report.
async fn configuration_failure(
    configuration: &[(&str, &str)],
) -> ec2_build_core::model::FailureReport {
    let h = handler(FakePipeline::with_jobs(vec![new_job(
        "job-1",
        configuration,
    )]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(h.steps().count(), 0);
    let Some(Answer::Failure(report)) = h.pipeline().answer_for("job-1") else {
        panic!()
    };
    assert_eq!(report.kind, FailureKind::ConfigurationError);
    assert!(report.message.contains("Fix:"), "{}", report.message);
    report
}

#[tokio::test]
async fn invalid_configuration_fails_the_job_and_starts_nothing() {
    let report = configuration_failure(&[("InstanceType", "huge")]).await;
    assert!(
        report.message.contains("InstanceType"),
        "{}",
        report.message
    );
}

#[tokio::test]
async fn an_action_naming_an_unknown_pool_fails_with_the_pools_declared() {
    let report = configuration_failure(&[("Pool", "nightly")]).await;
    assert!(
        report.message.contains("Pool") && report.message.contains("nightly"),
        "{}",
        report.message
    );
    assert!(report.message.contains("Pools"), "{}", report.message);
}

#[tokio::test]
async fn job_owned_by_another_worker_is_left_alone() {
    let pipeline = FakePipeline::with_jobs(vec![new_job("job-1", &[])]);
    pipeline.foreign_jobs.lock().unwrap().insert("job-1".into());
    let h = handler(pipeline);
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert!(matches!(
        &summary.outcomes[0],
        JobOutcome::Skipped {
            reason: SkipReason::OwnedByAnotherWorker,
            ..
        }
    ));
    assert_eq!(h.steps().count(), 0);
    assert!(h.pipeline().answers().is_empty());
}

#[tokio::test]
async fn the_same_job_delivered_twice_gives_one_execution() {
    let h = handler(FakePipeline::default());
    h.pipeline().queue(new_job("job-1", &[]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    // At-least-once: the same job shows up again (say, a retried worker), with the execution running.
    h.pipeline().queue(new_job("job-1", &[]));
    let second = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(h.steps().count(), 1);
    assert_eq!(h.steps().starts.lock().unwrap().len(), 2);
    assert!(second
        .outcomes
        .iter()
        .any(|o| matches!(o, JobOutcome::Started { job_id, .. } if job_id == "job-1")));
}

#[tokio::test]
async fn execution_already_exists_is_looked_up_and_continued() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    // A closed execution with that name: StartExecution answers ExecutionAlreadyExists.
    h.steps()
        .set("job-1", ExecutionStatus::Succeeded, Some("{}"), None, None);
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let arn = h.steps().arn("job-1");
    assert_eq!(
        summary.outcomes,
        vec![JobOutcome::Started {
            job_id: "job-1".into(),
            execution_arn: arn.clone()
        }]
    );
    // The continuation job then reports the closed execution's result.
    let next = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert!(next.outcomes.iter().any(
        |o| matches!(o, JobOutcome::Succeeded { execution_arn, .. } if *execution_arn == arn)
    ));
}

#[tokio::test]
async fn a_running_builds_continuation_job_is_held_not_answered() {
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.steps()
        .set("job-1", ExecutionStatus::Running, None, None, None);
    h.pipeline().queue(continuation_job("c-1", &arn));
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(
        summary.outcomes,
        vec![JobOutcome::Held {
            job_id: "c-1".into(),
            execution_arn: arn.clone()
        }]
    );
    // Acknowledged, not answered: the job is out of the queue, and nothing new is queued.
    assert_eq!(h.pipeline().calls(), vec!["PollForJobs", "AcknowledgeJob"]);
    assert!(h.pipeline().queued().is_empty());
    let record = h
        .held()
        .records()
        .remove(&arn)
        .expect("the job is recorded");
    assert_eq!(
        (record.job_id.as_str(), record.token.as_str()),
        ("c-1", arn.as_str())
    );
    // One listing for the sweep: no DescribeExecution or history read for a listed build.
    assert_eq!(*h.steps().calls.lock().unwrap(), vec!["ListExecutions"]);
}

#[tokio::test]
async fn a_held_job_is_left_alone_until_its_refresh_is_due() {
    let h = handler(FakePipeline::default());
    h.steps()
        .set("job-1", ExecutionStatus::Running, None, None, None);
    let arn = h.steps().arn("job-1");
    h.hold("job-1", "c-1", &arn, epoch_now_ms());
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert!(summary.outcomes.is_empty(), "{:?}", summary.outcomes);
    assert!(h.pipeline().answers().is_empty());
    assert_eq!(*h.steps().calls.lock().unwrap(), vec!["ListExecutions"]);
}

#[tokio::test]
async fn a_held_job_due_for_refresh_is_answered_with_progress_and_its_successor_held() {
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.steps()
        .set("job-1", ExecutionStatus::Running, None, None, None);
    h.hold("job-1", "c-1", &arn, 0);
    let summary = h.refreshing_sweep().await;
    let Some(Answer::Success(report)) = h.pipeline().answer_for("c-1") else {
        panic!("{:?}", h.pipeline().answers())
    };
    // The token carries the state the build was seen in, for the next refresh.
    let token = format!("{arn}|RunBuild");
    assert_eq!(report.continuation_token.as_deref(), Some(token.as_str()));
    assert!(
        report
            .summary
            .starts_with("Running: build (RunBuild), for "),
        "{}",
        report.summary
    );
    assert_eq!(
        *h.steps().calls.lock().unwrap(),
        vec!["ListExecutions", "GetExecutionHistory"]
    );
    // The same sweep polls the continuation job the answer queued and holds it again; the hold
    // replaces the record, which is not deleted in between.
    assert!(!h.held().calls.lock().unwrap().contains(&"DeleteItem"));
    let successor = h.held().records().remove(&arn).expect("held again");
    assert_ne!(successor.job_id, "c-1");
    assert_eq!(successor.token, token);
    assert!(h.pipeline().queued().is_empty());
    assert!(summary
        .outcomes
        .iter()
        .any(|o| matches!(o, JobOutcome::Held { job_id, .. } if *job_id == successor.job_id)));

    // The next refresh reads the history again: a spot interruption restarted the build
    // meanwhile, which the summary says.
    *h.steps().restarts.lock().unwrap() = 1;
    h.held().insert(HeldJob {
        held_at_ms: 0,
        ..successor.clone()
    });
    h.refreshing_sweep().await;
    let Some(Answer::Success(again)) = h.pipeline().answer_for(&successor.job_id) else {
        panic!()
    };
    assert_eq!(again.continuation_token.as_deref(), Some(token.as_str()));
    assert!(
        again
            .summary
            .contains("restarted once on a new instance after a spot interruption"),
        "{}",
        again.summary
    );
}

#[tokio::test]
async fn a_scheduled_sweep_lists_running_builds_once_whatever_their_number() {
    let h = handler(FakePipeline::default());
    queue_running_builds(&h, 6);
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let calls = h.steps().calls.lock().unwrap().clone();
    assert_eq!(calls, vec!["ListExecutions"]);
    assert_eq!(h.held().records().len(), 6);
    assert!(h.pipeline().answers().is_empty());
}

#[tokio::test]
async fn a_build_that_ended_is_described_and_reported_by_the_scheduled_sweep() {
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.steps().set(
        "job-1",
        ExecutionStatus::Failed,
        None,
        Some("BuildFailed"),
        Some("boom"),
    );
    h.pipeline()
        .queue(continuation_job("c-1", &format!("{arn}|RunBuild")));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(
        *h.steps().calls.lock().unwrap(),
        vec!["ListExecutions", "DescribeExecution"]
    );
    assert!(matches!(
        h.pipeline().answer_for("c-1"),
        Some(Answer::Failure(_))
    ));
}

#[tokio::test]
async fn a_held_job_whose_build_ended_unreported_gets_its_result_from_the_scheduled_sweep() {
    // The completion event was lost: the held job is answered once the listing no longer shows
    // its build, however recently it was held.
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.steps().set(
        "job-1",
        ExecutionStatus::Failed,
        None,
        Some("BuildFailed"),
        Some("boom"),
    );
    h.hold("job-1", "c-1", &format!("{arn}|RunBuild"), epoch_now_ms());
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert!(matches!(
        h.pipeline().answer_for("c-1"),
        Some(Answer::Failure(_))
    ));
    assert!(summary.outcomes.iter().any(|o| o.is_final_answer()));
    assert!(h.held().records().is_empty(), "the record is forgotten");
    assert_eq!(
        *h.steps().calls.lock().unwrap(),
        vec!["ListExecutions", "DescribeExecution"]
    );
}

#[tokio::test]
async fn a_held_job_whose_build_cannot_be_read_stays_held() {
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.steps()
        .set("job-1", ExecutionStatus::Failed, None, None, None);
    h.hold("job-1", "c-1", &arn, epoch_now_ms());
    *h.steps().failing_describes.lock().unwrap() = 1;
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert!(h.pipeline().answers().is_empty());
    assert_eq!(h.held().records()[&arn].job_id, "c-1");
    // The next sweep reports it.
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert!(matches!(
        h.pipeline().answer_for("c-1"),
        Some(Answer::Failure(_))
    ));
}

#[tokio::test]
async fn a_continuation_job_that_cannot_be_recorded_is_answered_instead() {
    let h = handler(FakePipeline::default());
    queue_running_builds(&h, 1);
    *h.held().failing.lock().unwrap() = true;
    let summary = h.sweep(SweepScope::NewJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(
        summary.outcomes,
        vec![JobOutcome::Continued {
            job_id: "c-1".into(),
            execution_arn: h.steps().arn("job-1")
        }]
    );
    let Some(Answer::Success(r)) = h.pipeline().answer_for("c-1") else {
        panic!()
    };
    assert_eq!(r.continuation_token, Some(h.steps().arn("job-1")));
}

#[tokio::test]
async fn a_started_event_sweep_makes_no_step_functions_call_for_running_builds() {
    let h = handler(FakePipeline::default());
    queue_running_builds(&h, 2);
    h.pipeline().queue(new_job("job-new", &[]));
    h.sweep(SweepScope::NewJobs, AMPLE_TIME).await.unwrap();
    // The new job's start is the only Step Functions call; the running builds' continuation
    // jobs are held as their tokens last saw them.
    assert!(
        h.steps().calls.lock().unwrap().is_empty(),
        "{:?}",
        h.steps().calls.lock().unwrap()
    );
    assert_eq!(h.steps().starts.lock().unwrap().len(), 1);
    for i in 1..=2 {
        assert!(h.pipeline().answer_for(&format!("c-{i}")).is_none());
        let record = &h.held().records()[&h.steps().arn(&format!("job-{i}"))];
        assert_eq!(record.job_id, format!("c-{i}"));
    }
}

#[tokio::test]
async fn a_sweep_whose_listing_fails_describes_each_build() {
    let h = handler(FakePipeline::default());
    queue_running_builds(&h, 2);
    *h.steps().failing_listings.lock().unwrap() = 1;
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert!(summary
        .outcomes
        .iter()
        .all(|o| matches!(o, JobOutcome::Held { .. })));
    let calls = h.steps().calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| **c == "DescribeExecution").count(),
        2,
        "{calls:?}"
    );
    // Without a listing, held jobs are not looked through.
    assert!(!h.held().calls.lock().unwrap().contains(&"Scan"));
}

#[tokio::test]
async fn continuation_of_a_succeeded_execution_reports_final_success() {
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.steps().set("job-1", ExecutionStatus::Succeeded, Some(r#"{"Status":"SUCCEEDED","InstanceId":"i-1","Build":{"Outputs":[{"Name":"BuildOutput"}]}}"#), None, None);
    h.pipeline().queue(continuation_job("c-1", &arn));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let Some(Answer::Success(report)) = h.pipeline().answer_for("c-1") else {
        panic!()
    };
    assert_eq!(report.continuation_token, None);
    assert!(
        report.summary.contains("outputs: BuildOutput"),
        "{}",
        report.summary
    );
    assert!(h.pipeline().queued().is_empty());
}

#[tokio::test]
async fn continuation_of_failed_timed_out_and_aborted_executions_fails_the_job() {
    let cases = [
        (
            ExecutionStatus::Failed,
            r#"{"Stage":"build","Error":"BuildFailed","Cause":"exit 3"}"#,
            "stage build (BuildFailed): exit 3",
        ),
        (ExecutionStatus::TimedOut, "", "timed out"),
        (ExecutionStatus::Aborted, "", "aborted"),
    ];
    for (status, cause, expected) in cases {
        let h = handler(FakePipeline::default());
        let arn = h.steps().arn("job-1");
        h.steps().set(
            "job-1",
            status.clone(),
            None,
            Some("BuildFailed"),
            Some(cause).filter(|c| !c.is_empty()),
        );
        h.pipeline().queue(continuation_job("c-1", &arn));
        h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
        let Some(Answer::Failure(report)) = h.pipeline().answer_for("c-1") else {
            panic!("{status:?}")
        };
        assert_eq!(report.kind, FailureKind::JobFailed);
        assert!(
            report.message.contains(expected),
            "{status:?}: {}",
            report.message
        );
        assert_eq!(report.external_execution_id.as_deref(), Some(arn.as_str()));
    }
}

#[tokio::test]
async fn continuation_token_of_another_state_machine_is_refused() {
    let h = handler(FakePipeline::with_jobs(vec![continuation_job(
        "c-1",
        "arn:aws:states:us-east-1:1:execution:other:x",
    )]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let Some(Answer::Failure(report)) = h.pipeline().answer_for("c-1") else {
        panic!()
    };
    assert!(
        report.message.contains("is not an execution of"),
        "{}",
        report.message
    );
}

#[tokio::test]
async fn one_failing_job_does_not_stop_the_others() {
    let pipeline = FakePipeline::with_jobs(vec![
        new_job("job-1", &[]),
        new_job("job-2", &[("TimeoutMinutes", "0")]),
        new_job("job-3", &[]),
    ]);
    pipeline
        .unanswerable_jobs
        .lock()
        .unwrap()
        .insert("job-1".into());
    let h = handler(pipeline);
    let outcomes = h
        .sweep(SweepScope::AllJobs, AMPLE_TIME)
        .await
        .unwrap()
        .outcomes;
    let of = |id: &str| outcomes.iter().find(|o| o.job_id() == id).cloned().unwrap();
    assert!(matches!(of("job-1"), JobOutcome::Unanswered { .. }));
    assert!(matches!(of("job-2"), JobOutcome::Failed { .. }));
    assert!(matches!(of("job-3"), JobOutcome::Started { .. }));
}

#[tokio::test]
async fn a_build_whose_job_cannot_be_held_is_answered_once_a_sweep() {
    // Batch size 3, three running builds, and no record can be written: each continuation job is
    // answered instead, which queues the next one; the second poll returns those, they are
    // answered too (a polled job is never left aside), and the sweep then stops instead of
    // re-checking the same builds again and again.
    let h = handler(FakePipeline::default());
    queue_running_builds(&h, 3);
    *h.held().failing.lock().unwrap() = true;
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(summary.polls, 2);
    assert_eq!(summary.outcomes.len(), 6);
    assert!(
        summary
            .outcomes
            .iter()
            .all(|o| matches!(o, JobOutcome::Continued { .. })),
        "{:?}",
        summary.outcomes
    );
    assert_eq!(
        h.pipeline().answers().len(),
        6,
        "every polled job is answered"
    );
    assert_eq!(h.pipeline().queued().len(), 3);
}

/// Queues a continuation job for each of `count` running builds.
fn queue_running_builds(h: &Harness, count: usize) {
    for i in 1..=count {
        let name = format!("job-{i}");
        h.steps()
            .set(&name, ExecutionStatus::Running, None, None, None);
        h.pipeline()
            .queue(continuation_job(&format!("c-{i}"), &h.steps().arn(&name)));
    }
}

/// `running` builds' continuation jobs queued ahead of one new job, batch size 3.
fn new_job_behind_running_builds(running: usize) -> Harness {
    let h = handler(FakePipeline::default());
    queue_running_builds(&h, running);
    h.pipeline().queue(new_job("job-new", &[]));
    h
}

#[tokio::test]
async fn started_event_sweep_holds_continuation_jobs_until_it_reaches_the_new_job() {
    // Twelve running builds ahead of the new job: four batches of their continuation jobs, all
    // held (out of the queue), then the new job, started. Each build costs one acknowledgement.
    let h = new_job_behind_running_builds(12);
    let summary = h.sweep(SweepScope::NewJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(summary.polls, 5);
    assert!(summary.outcomes.contains(&JobOutcome::Started {
        job_id: "job-new".into(),
        execution_arn: h.steps().arn("job-new"),
    }));
    assert_eq!(h.held().records().len(), 12);
    // The only answer is the new job's; what it queued is the new build's continuation job.
    assert_eq!(h.pipeline().answers().len(), 1);
    assert_eq!(h.pipeline().queued().len(), 1);

    // A second STARTED event finds only that one job: no running build is checked again.
    let h2 = h.sweep(SweepScope::NewJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(h2.polls, 1);
    assert_eq!(h2.outcomes.len(), 1);
    assert_eq!(h.held().records().len(), 13);
}

#[tokio::test]
async fn started_event_sweep_stops_after_a_batch_without_new_jobs_once_it_found_one() {
    // [job-0, job-00, c-1], [c-2, c-3, c-4], ...: a new job in the first batch, none in the
    // second: stop, leaving the rest to the next poll.
    let h = handler(FakePipeline::with_jobs(vec![
        new_job("job-0", &[]),
        new_job("job-00", &[]),
    ]));
    queue_running_builds(&h, 6);
    let summary = h.sweep(SweepScope::NewJobs, AMPLE_TIME).await.unwrap();
    assert_eq!(summary.polls, 2);
    assert_eq!(h.steps().starts.lock().unwrap().len(), 2);
    assert_eq!(h.held().records().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn sweep_stops_before_a_batch_it_might_not_finish_by_the_deadline() {
    let jobs = || {
        (1..=10)
            .map(|i| new_job(&format!("job-{i}"), &[]))
            .collect()
    };
    let h = handler(FakePipeline::with_jobs(jobs()));
    *h.pipeline().poll_delay.lock().unwrap() = Duration::from_secs(10);
    // After batch 1 (t = 10 s): 10 + 2 × 10 + 5 ≤ 40, poll again. After batch 2 (t = 20 s):
    // 20 + 2 × 10 + 5 > 40, stop, leaving the rest queued for the next sweep.
    let summary = h
        .sweep(SweepScope::NewJobs, Duration::from_secs(40))
        .await
        .unwrap();
    assert_eq!(summary.polls, 2);
    assert_eq!(h.steps().count(), 6);
    let new_jobs_left = h
        .pipeline()
        .queued()
        .iter()
        .filter(|job| job.data.continuation_token.is_none())
        .count();
    assert_eq!(new_jobs_left, 4);

    // Out of time from the start: nothing is polled, so no job is left polled and not
    // acknowledged.
    let h = handler(FakePipeline::with_jobs(jobs()));
    let summary = h.sweep(SweepScope::NewJobs, Duration::ZERO).await.unwrap();
    assert_eq!(summary.polls, 0);
    assert_eq!(h.steps().count(), 0);
    assert_eq!(h.pipeline().queued().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_polled_only_with_the_time_its_jobs_need_and_then_handled_whole() {
    // Batch size 3, handled 8 at a time: one round, JOB_TIME_RESERVE.
    let reserve = ec2_build_core::use_cases::job::JOB_TIME_RESERVE;
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    let summary = h
        .sweep(SweepScope::NewJobs, reserve - Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(summary.polls, 0);
    assert!(h.pipeline().calls().is_empty());
    // Polled with just the time needed; the batch comes back late, and its job is still
    // acknowledged, started and answered: a polled job is never left aside.
    *h.pipeline().poll_delay.lock().unwrap() = Duration::from_secs(10);
    let summary = h.sweep(SweepScope::NewJobs, reserve).await.unwrap();
    assert_eq!(summary.polls, 1);
    assert_eq!(
        summary.outcomes,
        vec![JobOutcome::Started {
            job_id: "job-1".into(),
            execution_arn: h.steps().arn("job-1")
        }]
    );
}

#[tokio::test]
async fn poll_failure_is_an_error_of_the_sweep() {
    let pipeline = FakePipeline::default();
    *pipeline.failing_polls.lock().unwrap() = 1;
    let h = handler(pipeline);
    assert!(matches!(
        h.sweep(SweepScope::AllJobs, AMPLE_TIME).await,
        Err(SweepError::Poll(ServiceError::Call {
            operation: "PollForJobs",
            ..
        }))
    ));
}

#[tokio::test]
async fn full_batches_are_followed_by_more_polls() {
    let jobs = (1..=7).map(|i| new_job(&format!("job-{i}"), &[])).collect();
    let h = handler(FakePipeline::with_jobs(jobs));
    let summary = h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let started = summary
        .outcomes
        .iter()
        .filter(|o| matches!(o, JobOutcome::Started { .. }))
        .count();
    assert_eq!(started, 7);
    assert_eq!(h.steps().count(), 7);
}

/// Build job-1 succeeds; the completion function handles its end.
async fn succeed_and_finish(h: &Harness) -> CompletionSummary {
    h.steps().set(
        "job-1",
        ExecutionStatus::Succeeded,
        Some(r#"{"Status":"SUCCEEDED"}"#),
        None,
        None,
    );
    h.finish(&ended(h, ExecutionStatus::Succeeded))
        .await
        .unwrap()
}

fn ended(h: &Harness, status: ExecutionStatus) -> ExecutionEnded {
    ExecutionEnded {
        execution_arn: h.steps().arn("job-1"),
        status,
        job_id: "job-1".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn completion_reports_through_the_continuation_job() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let summary = succeed_and_finish(&h).await;
    assert_eq!(summary.reported, Reported::ContinuationJob);
    assert!(summary
        .outcomes
        .iter()
        .any(|o| matches!(o, JobOutcome::Succeeded { .. })));
    assert!(summary.released.is_empty());
}

#[tokio::test(start_paused = true)]
async fn completion_reports_on_the_original_job_when_it_was_never_continued() {
    let h = handler(FakePipeline::default());
    // The job was acknowledged and its execution started, but the worker died before answering.
    h.pipeline().mark_in_progress("job-1");
    h.steps().set(
        "job-1",
        ExecutionStatus::Failed,
        None,
        Some("BuildFailed"),
        Some("boom"),
    );
    let summary = h.finish(&ended(&h, ExecutionStatus::Failed)).await.unwrap();
    assert_eq!(summary.reported, Reported::OriginalJob);
    assert!(matches!(
        h.pipeline().answer_for("job-1"),
        Some(Answer::Failure(_))
    ));
    let polls = h
        .pipeline()
        .calls()
        .iter()
        .filter(|c| **c == "PollForJobs")
        .count();
    assert_eq!(polls, 3, "bounded number of polls");
}

#[tokio::test(start_paused = true)]
async fn completion_leaves_it_to_the_sweep_when_the_job_is_already_continued() {
    let h = handler(FakePipeline::default());
    h.steps()
        .set("job-1", ExecutionStatus::Succeeded, Some("{}"), None, None);
    let summary = h
        .finish(&ended(&h, ExecutionStatus::Succeeded))
        .await
        .unwrap();
    assert_eq!(summary.reported, Reported::LeftToSweep);
    assert!(h.pipeline().answers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn completion_of_an_aborted_execution_releases_its_instance_and_fails_the_job() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    h.steps()
        .set("job-1", ExecutionStatus::Aborted, None, None, None);
    let instances = &h.fakes.instances;
    instances.launch(&h.steps().arn("job-1"), &["i-0abc"]);
    let summary = h
        .finish(&ended(&h, ExecutionStatus::Aborted))
        .await
        .unwrap();
    assert_eq!(summary.released, vec!["i-0abc"]);
    assert_eq!(*instances.terminated.lock().unwrap(), vec!["i-0abc"]);
    assert!(summary
        .outcomes
        .iter()
        .any(|o| matches!(o, JobOutcome::Failed { message, .. } if message.contains("aborted"))));
}

#[tokio::test(start_paused = true)]
async fn completion_that_cannot_read_the_execution_still_releases_and_says_describe_failed() {
    // Never continued, so completion falls back to DescribeExecution, which fails.
    let h = handler(FakePipeline::default());
    h.steps()
        .set("job-1", ExecutionStatus::Failed, None, None, None);
    *h.steps().failing_describes.lock().unwrap() = 1;
    h.fakes
        .instances
        .launch(&h.steps().arn("job-1"), &["i-0abc"]);
    let err = h
        .finish(&ended(&h, ExecutionStatus::Failed))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CompletionError::Describe(ServiceError::Call {
                operation: "DescribeExecution",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        *h.fakes.instances.terminated.lock().unwrap(),
        vec!["i-0abc"],
        "the release is not skipped because reporting failed"
    );
}

#[tokio::test(start_paused = true)]
async fn completion_whose_release_fails_says_release_failed_after_reporting() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    h.steps()
        .set("job-1", ExecutionStatus::TimedOut, None, None, None);
    h.fakes
        .instances
        .launch(&h.steps().arn("job-1"), &["i-0abc"]);
    *h.fakes.instances.failing.lock().unwrap() = true;
    let err = h
        .finish(&ended(&h, ExecutionStatus::TimedOut))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CompletionError::Release(ServiceError::Call {
                operation: "TerminateInstances",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        *h.fakes.instances.release_calls.lock().unwrap(),
        vec![h.steps().arn("job-1")]
    );
    // The result was reported before the release was tried.
    assert!(h
        .pipeline()
        .answers()
        .iter()
        .any(|(_, a)| matches!(a, Answer::Failure(r) if r.message.contains("timed out"))));
}

#[tokio::test(start_paused = true)]
async fn completion_polls_no_longer_than_the_invocation_allows() {
    // Twenty attempts of doubling delays from 1 s would take days; with 70 s left the poll loop
    // stops early and the job is reported on the original job.
    let h = handler(FakePipeline::default());
    h.pipeline().mark_in_progress("job-1");
    h.steps().set(
        "job-1",
        ExecutionStatus::Failed,
        None,
        Some("BuildFailed"),
        Some("boom"),
    );
    let settings = testing::settings(&[
        ("COMPLETION_POLL_ATTEMPTS", "20"),
        ("COMPLETION_POLL_DELAY_MS", "1000"),
    ]);
    let started = tokio::time::Instant::now();
    let summary = h
        .fakes
        .completion(settings)
        .finish(&ended(&h, ExecutionStatus::Failed), Duration::from_secs(70))
        .await
        .unwrap();
    assert!(
        started.elapsed() <= Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(summary.reported, Reported::OriginalJob);
    let polls = h
        .pipeline()
        .calls()
        .iter()
        .filter(|c| **c == "PollForJobs")
        .count();
    // A batch of 10 handled 8 at a time needs two rounds of JOB_TIME_RESERVE (50 s): polls at
    // 0, 1, 3, 7 and 15 s; the next would be at 31 s, with less than that left.
    assert_eq!(polls, 5);
}

#[tokio::test(start_paused = true)]
async fn completion_describes_only_its_own_execution() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    // Two other builds' continuation jobs, polled on the way.
    for name in ["other-1", "other-2"] {
        h.steps()
            .set(name, ExecutionStatus::Running, None, None, None);
        h.pipeline()
            .queue(continuation_job(&format!("c-{name}"), &h.steps().arn(name)));
    }
    h.steps().set(
        "job-1",
        ExecutionStatus::Succeeded,
        Some(r#"{"Status":"SUCCEEDED"}"#),
        None,
        None,
    );
    h.steps().calls.lock().unwrap().clear();
    let summary = h
        .finish(&ended(&h, ExecutionStatus::Succeeded))
        .await
        .unwrap();
    assert_eq!(summary.reported, Reported::ContinuationJob);
    assert_eq!(*h.steps().calls.lock().unwrap(), vec!["DescribeExecution"]);
}

#[tokio::test(start_paused = true)]
async fn completion_whose_continuation_job_could_not_be_answered_does_not_claim_it_reported() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    let (continuation,) = match h.pipeline().queued().as_slice() {
        [job] => (job.id.clone(),),
        other => panic!("{other:?}"),
    };
    h.pipeline()
        .unanswerable_jobs
        .lock()
        .unwrap()
        .insert(continuation.clone());
    let summary = succeed_and_finish(&h).await;
    assert!(summary.outcomes.contains(&JobOutcome::Unanswered {
        job_id: continuation,
        error: ServiceError::Call {
            service: "codepipeline",
            operation: "PutJobSuccessResult",
            message: "internal error".into()
        }
    }));
    assert_eq!(summary.reported, Reported::LeftToSweep);
}

#[tokio::test(start_paused = true)]
async fn completion_answers_the_held_job_without_polling() {
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.hold("job-1", "c-1", &format!("{arn}|RunBuild"), epoch_now_ms());
    let summary = succeed_and_finish(&h).await;
    assert_eq!(summary.reported, Reported::HeldJob);
    assert!(matches!(
        h.pipeline().answer_for("c-1"),
        Some(Answer::Success(r)) if r.continuation_token.is_none()
    ));
    assert_eq!(h.pipeline().calls(), vec!["PutJobSuccessResult"]);
    assert_eq!(
        *h.held().calls.lock().unwrap(),
        vec!["GetItem", "DeleteItem"]
    );
    assert!(h.held().records().is_empty());
}

#[tokio::test(start_paused = true)]
async fn completion_with_an_out_of_date_held_record_polls_for_the_current_job() {
    // A progress refresh answered the recorded job just before the build ended; the job it
    // queued is found by polling.
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.held().insert(HeldJob {
        execution_arn: arn.clone(),
        job_id: "c-answered".into(),
        token: arn.clone(),
        held_at_ms: 0,
    });
    h.pipeline().queue(continuation_job("c-2", &arn));
    let summary = succeed_and_finish(&h).await;
    assert_eq!(summary.reported, Reported::ContinuationJob);
    assert!(matches!(
        h.pipeline().answer_for("c-2"),
        Some(Answer::Success(r)) if r.continuation_token.is_none()
    ));
    assert!(
        h.held().records().is_empty(),
        "the stale record is forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn completion_holds_other_builds_continuation_jobs_it_polls() {
    let h = handler(FakePipeline::with_jobs(vec![new_job("job-1", &[])]));
    h.sweep(SweepScope::AllJobs, AMPLE_TIME).await.unwrap();
    h.steps()
        .set("other", ExecutionStatus::Running, None, None, None);
    h.pipeline()
        .queue(continuation_job("c-other", &h.steps().arn("other")));
    h.steps().set(
        "job-1",
        ExecutionStatus::Succeeded,
        Some(r#"{"Status":"SUCCEEDED"}"#),
        None,
        None,
    );
    h.finish(&ended(&h, ExecutionStatus::Succeeded))
        .await
        .unwrap();
    assert!(h.pipeline().answer_for("c-other").is_none());
    assert_eq!(
        h.held().records()[&h.steps().arn("other")].job_id,
        "c-other"
    );
}

#[tokio::test(start_paused = true)]
async fn a_repeated_completion_event_polls_once_when_the_held_job_was_already_answered() {
    // The first event's invocation answered the held job with the result; the repeated event
    // finds the record (not yet forgotten) answered before: one more poll, not the full search.
    let h = handler(FakePipeline::default());
    let arn = h.steps().arn("job-1");
    h.held().insert(HeldJob {
        execution_arn: arn.clone(),
        job_id: "c-done".into(),
        token: arn.clone(),
        held_at_ms: 0,
    });
    let summary = succeed_and_finish(&h).await;
    assert_eq!(summary.reported, Reported::LeftToSweep);
    let polls = h
        .pipeline()
        .calls()
        .iter()
        .filter(|c| **c == "PollForJobs")
        .count();
    assert_eq!(polls, 1, "{:?}", h.pipeline().calls());
    assert!(
        h.held().records().is_empty(),
        "the answered record is forgotten"
    );
}
