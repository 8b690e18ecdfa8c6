//! `ec2-build show`: one build's timeline with durations, instance, links and result.

use crate::builds::{Build, Builds};
use crate::deployment::outputs;
use crate::error::CliError;
use crate::output::{ago, duration, Style, Tone};
use crate::Context;
use ec2_build_aws::CodePipelineJobs;
use ec2_build_core::model::{ExecutionDescription, ExecutionStatus, JobReport};
use ec2_build_core::ports::{CodePipeline, StepFunctions};
use ec2_build_core::timeline::{action_started_ms, BuildDurations, BuildTimeline};
use serde::Serialize;
use serde_json::Value;

/// Where a build's output is in CloudWatch Logs.
#[derive(Debug, Clone, Serialize)]
pub struct LogLocation {
    pub group: String,
    /// `<command id>/<instance id>/`: the streams of the build command (stdout, stderr).
    pub stream_prefix: String,
}

#[derive(Debug, Serialize)]
struct Shown {
    build: Build,
    timeline: BuildTimeline,
    durations: BuildDurations,
    result: String,
    console_url: String,
    log: Option<LogLocation>,
    log_console_url: Option<String>,
    /// What CodePipeline shows for the job (the functions' message), once the build ended.
    message: Option<String>,
}

pub async fn run(ctx: &Context, reference: &str) -> Result<i32, CliError> {
    let settings = ctx.deployment.settings()?;
    let builds = Builds::new(&ctx.sdk, ctx.deployment.state_machine_arn()?);
    let build = builds.resolve(reference).await?;
    let history = builds.port.execution_history(&build.execution_arn).await?;
    let queued_ms = action_started_at_ms(ctx, &build).await;
    let timeline = BuildTimeline::from_history(&history, queued_ms);
    let log = log_location(ctx, &build, timeline.instance_id.as_deref()).await;
    let message =
        (build.status != "RUNNING").then(|| {
            match ec2_build_core::report::for_execution(&description(&build), &settings) {
                JobReport::Fail(failure) => failure.message,
                JobReport::Succeed(report)
                | JobReport::Start(report)
                | JobReport::Continue(report) => report.summary,
            }
        });
    let shown = Shown {
        console_url: settings.execution_console_url(&build.execution_arn),
        log_console_url: log
            .as_ref()
            .map(|l| log_console_url(&ctx.deployment.region, l)),
        durations: timeline.durations(),
        result: timeline.result().to_string(),
        build,
        timeline,
        log,
        message,
    };
    if ctx.style.json {
        ctx.style.print_json(&shown)?;
    } else {
        print_human(&ctx.style, &shown);
    }
    Ok(0)
}

/// When CodePipeline started the action (ListActionExecutions), for the queue time; `None`
/// when it cannot be read (the timeline then starts at the execution).
async fn action_started_at_ms(ctx: &Context, build: &Build) -> Option<u64> {
    let pipeline =
        CodePipelineJobs::from_sdk_config(&ctx.sdk, &ctx.deployment.action_type().ok()?).ok()?;
    let actions = pipeline
        .action_executions(&build.pipeline, Some(&build.pipeline_execution_id))
        .await
        .ok()?;
    action_started_ms(&actions, &build.execution_arn)
}

/// The build's log streams: the `Log` of its result or failure, else the command SSM ran on its
/// instance (ListCommandInvocations); `None` before the command was sent.
pub async fn log_location(
    ctx: &Context,
    build: &Build,
    instance_id: Option<&str>,
) -> Option<LogLocation> {
    let group = ctx
        .deployment
        .output(outputs::BUILD_LOG_GROUP)
        .ok()?
        .to_string();
    for text in [&build.output, &build.cause].into_iter().flatten() {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if let Some(stream) = value["Log"]["Stream"].as_str().filter(|s| s.len() > 2) {
            return Some(LogLocation {
                group,
                stream_prefix: stream.to_string(),
            });
        }
    }
    let instance_id = instance_id?;
    let ssm = aws_sdk_ssm::Client::new(&ctx.sdk);
    let invocations = ssm
        .list_command_invocations()
        .instance_id(instance_id)
        .send()
        .await
        .ok()?;
    let command = invocations.command_invocations().first()?.command_id()?;
    Some(LogLocation {
        group,
        stream_prefix: format!("{command}/{instance_id}/"),
    })
}

/// The CloudWatch console page of the log group (the console escapes `/` as `$252F`).
fn log_console_url(region: &str, log: &LogLocation) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}",
        log.group.replace('/', "$252F")
    )
}

fn description(build: &Build) -> ExecutionDescription {
    ExecutionDescription {
        arn: build.execution_arn.clone(),
        status: ExecutionStatus::parse(&build.status),
        output: build.output.clone(),
        error: build.error.clone(),
        cause: build.cause.clone(),
        duration_seconds: build
            .stopped_at
            .map(|end| (end - build.started_at).max(0) as u64),
        started_at: Some(build.started_at.max(0) as u64),
    }
}

fn print_human(style: &Style, s: &Shown) {
    let b = &s.build;
    println!("Build {} ({})", b.job_id, b.execution_arn);
    println!(
        "Pipeline   {} / {} / {} (execution {})",
        b.pipeline, b.stage, b.action, b.pipeline_execution_id
    );
    let tone = match s.result.as_str() {
        "Succeeded" => Tone::Good,
        "Running" => Tone::Note,
        _ => Tone::Bad,
    };
    println!("Result     {}", style.paint(&s.result, tone));
    println!(
        "Instance   {} ({}, pool -)",
        s.timeline.instance_id.as_deref().unwrap_or("-"),
        s.timeline.market().as_str()
    );
    println!();
    let t = &s.timeline;
    let moments = [
        ("queued", t.queued_ms),
        ("picked up (execution started)", Some(t.started_ms)),
        ("instance acquired", t.acquired_ms),
        ("agent online", t.agent_online_ms),
        ("command running", t.command_running_ms),
        ("uploaded (build reported)", t.uploaded_ms),
        ("finished", t.finished_ms),
    ];
    let mut previous: Option<u64> = None;
    let rows: Vec<Vec<String>> = moments
        .iter()
        .map(|(what, at)| match at {
            Some(at) => {
                let step = previous.map_or("".into(), |p| {
                    format!("+{}", duration(at.saturating_sub(p) as f64 / 1000.0))
                });
                previous = Some(*at);
                vec![what.to_string(), ago((*at / 1000) as i64), step]
            }
            None => vec![what.to_string(), "-".into(), "".into()],
        })
        .collect();
    println!(
        "{}",
        crate::output::table(&["TIMELINE", "WHEN", "AFTER"], &rows)
    );
    println!();
    let d = &s.durations;
    let show = |v: Option<f64>| v.map_or("-".to_string(), duration);
    println!(
        "Durations  queue {}, acquisition {}, agent wait {}, build {}, upload {}, total {}",
        show(d.queue),
        show(d.acquisition),
        show(d.agent_wait),
        show(d.build),
        show(d.upload),
        show(d.total)
    );
    println!("Console    {}", s.console_url);
    match (&s.log, &s.log_console_url) {
        (Some(log), Some(url)) => println!(
            "Log        group {}, streams {}*\n           {url}",
            log.group, log.stream_prefix
        ),
        _ => println!("Log        none yet (the build command has not started)"),
    }
    if let Some(message) = &s.message {
        println!();
        println!("Message (as CodePipeline shows it):");
        for line in message.lines() {
            println!("  {line}");
        }
    }
}
