//! `ec2-build cancel`: stops a running build. StopExecution with the error `Cancelled` and a
//! cause naming the reason; the completion function then fails the job with that cause and
//! terminates the instance, as for any stopped execution (README, "Failure handling").

use crate::builds::Builds;
use crate::error::CliError;
use crate::Context;
use ec2_build_core::ports::StepFunctions;
use serde::Serialize;

/// The StopExecution error name of a cancelled build.
pub const CANCEL_ERROR: &str = "Cancelled";

#[derive(Debug, Serialize)]
struct Cancelled<'a> {
    job_id: &'a str,
    execution_arn: &'a str,
    /// Whether this call stopped it (false: it had already ended).
    stopped: bool,
    status: &'a str,
    cause: Option<String>,
}

pub async fn run(ctx: &Context, reference: &str, reason: &str) -> Result<i32, CliError> {
    let builds = Builds::new(&ctx.sdk, ctx.deployment.state_machine_arn()?);
    let build = builds.resolve(reference).await?;
    if build.status != "RUNNING" {
        let report = Cancelled {
            job_id: &build.job_id,
            execution_arn: &build.execution_arn,
            stopped: false,
            status: &build.status,
            cause: None,
        };
        if ctx.style.json {
            ctx.style.print_json(&report)?;
        } else {
            eprintln!(
                "Build {} already ended ({}): nothing to cancel.",
                build.job_id, build.status
            );
        }
        return Ok(1);
    }
    let cause = format!("cancelled with ec2-build cancel: {reason}");
    builds
        .port
        .stop_execution(&build.execution_arn, CANCEL_ERROR, &cause)
        .await?;
    if ctx.style.json {
        ctx.style.print_json(&Cancelled {
            job_id: &build.job_id,
            execution_arn: &build.execution_arn,
            stopped: true,
            status: "ABORTED",
            cause: Some(cause),
        })?;
    } else {
        println!(
            "Stopped build {} ({} / {} / {}).\nThe completion function now terminates its \
             instance and fails the job with: stopped (aborted) ({CANCEL_ERROR}): {cause}",
            build.job_id, build.pipeline, build.stage, build.action
        );
    }
    Ok(0)
}
