//! `ec2-build status`: running builds, then the most recent finished ones.

use crate::builds::{stack_instances, Build, Builds};
use crate::error::CliError;
use crate::output::{ago, duration, table, Style, Tone};
use crate::Context;
use serde::Serialize;

/// A running build with where it is.
#[derive(Debug, Serialize)]
struct Running {
    #[serde(flatten)]
    build: Build,
    /// acquire, agent, build or release.
    current_stage: String,
    current_state: String,
    instance_id: Option<String>,
    market: Option<String>,
    /// The warm pool the instance came from, `cold` for a fresh launch.
    pool: String,
}

#[derive(Debug, Serialize)]
struct Status {
    running: Vec<Running>,
    finished: Vec<Build>,
}

pub async fn run(ctx: &Context, recent: i32) -> Result<i32, CliError> {
    let builds = Builds::new(&ctx.sdk, ctx.deployment.state_machine_arn()?);
    let instances = stack_instances(
        &aws_sdk_ec2::Client::new(&ctx.sdk),
        &ctx.deployment.stack_name,
    )
    .await?;
    // Pool builds: the registry names the execution holding each claimed instance (a pool
    // instance carries no execution tag). A stack without pools has an empty registry.
    let claims: Vec<crate::commands::pools::Member> = crate::commands::pools::registry(ctx)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.claimed_by.is_some())
        .collect();
    let mut running = Vec::new();
    for arn in builds.list(true, 0).await? {
        let build = builds.describe(&arn).await?;
        let (current_stage, current_state) = builds.current_stage(&arn).await?;
        let claim = claims
            .iter()
            .find(|m| m.claimed_by.as_deref() == Some(arn.as_str()));
        let instance = instances
            .iter()
            .filter(|i| match claim {
                Some(m) => i.id == m.instance_id,
                None => i.execution_arn.as_deref() == Some(arn.as_str()),
            })
            .find(|i| i.state != "terminated");
        running.push(Running {
            build,
            current_stage,
            current_state,
            instance_id: instance.map(|i| i.id.clone()),
            market: instance.map(|i| i.market.clone()),
            pool: claim.map_or_else(|| "cold".to_string(), |m| m.pool.clone()),
        });
    }
    let mut finished = Vec::new();
    for arn in builds.list(false, recent + running.len() as i32).await? {
        if running.iter().any(|r| r.build.execution_arn == arn) {
            continue;
        }
        let build = builds.describe(&arn).await?;
        if build.status != "RUNNING" && finished.len() < recent as usize {
            finished.push(build);
        }
    }
    let status = Status { running, finished };
    if ctx.style.json {
        ctx.style.print_json(&status)?;
    } else {
        print_human(&ctx.style, &status);
    }
    Ok(0)
}

fn where_(b: &Build) -> String {
    format!("{} / {} / {}", b.pipeline, b.stage, b.action)
}

fn print_human(style: &Style, status: &Status) {
    println!("Running builds: {}", status.running.len());
    if !status.running.is_empty() {
        let rows: Vec<Vec<String>> = status
            .running
            .iter()
            .map(|r| {
                vec![
                    where_(&r.build),
                    r.build.job_id.clone(),
                    format!("{} ({})", r.current_stage, r.current_state),
                    r.instance_id.clone().unwrap_or_else(|| "-".into()),
                    r.market.clone().unwrap_or_else(|| "-".into()),
                    r.pool.clone(),
                    ago(r.build.started_at).trim_end_matches(" ago").to_string(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &[
                    "PIPELINE / STAGE / ACTION",
                    "EXECUTION (JOB ID)",
                    "STAGE",
                    "INSTANCE",
                    "MARKET",
                    "POOL",
                    "AGE"
                ],
                &rows
            )
        );
    }
    println!();
    println!("Recently finished: {}", status.finished.len());
    if !status.finished.is_empty() {
        let rows: Vec<Vec<String>> = status
            .finished
            .iter()
            .map(|b| {
                let result = match (b.status.as_str(), &b.error) {
                    ("SUCCEEDED", _) => style.paint("SUCCEEDED", Tone::Good),
                    (status, Some(error)) => style.paint(&format!("{status} ({error})"), Tone::Bad),
                    (status, None) => style.paint(status, Tone::Bad),
                };
                let took = b
                    .stopped_at
                    .map_or("-".into(), |end| duration((end - b.started_at) as f64));
                let ended = b.stopped_at.map_or("-".into(), ago);
                vec![where_(b), b.job_id.clone(), result, took, ended]
            })
            .collect();
        println!(
            "{}",
            table(
                &[
                    "PIPELINE / STAGE / ACTION",
                    "EXECUTION (JOB ID)",
                    "RESULT",
                    "TOOK",
                    "ENDED"
                ],
                &rows
            )
        );
    }
}
