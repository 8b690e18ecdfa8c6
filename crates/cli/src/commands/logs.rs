//! `ec2-build logs`: the build's output from CloudWatch Logs, where the document's command sends
//! it (SendCommand's CloudWatchOutputConfig: the stack's build log group, streams
//! `<command id>/<instance id>/<step>/stdout|stderr`). `--follow` prints new lines until the
//! build ends.

use super::show::{log_location, LogLocation};
use crate::builds::Builds;
use crate::error::CliError;
use crate::Context;
use aws_sdk_cloudwatchlogs::Client;
use ec2_build_core::ports::StepFunctions;
use ec2_build_core::timeline::BuildTimeline;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Pause between two reads while following.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
struct Line {
    /// Milliseconds since the epoch.
    timestamp: i64,
    stream: String,
    message: String,
}

/// Where each stream was read up to (GetLogEvents' forward token).
#[derive(Default)]
struct Cursor {
    tokens: BTreeMap<String, String>,
}

pub async fn run(ctx: &Context, reference: &str, follow: bool) -> Result<i32, CliError> {
    let builds = Builds::new(&ctx.sdk, ctx.deployment.state_machine_arn()?);
    let logs = Client::new(&ctx.sdk);
    let mut cursor = Cursor::default();
    let mut build = builds.resolve(reference).await?;
    let mut location: Option<LogLocation> = None;
    loop {
        if location.is_none() {
            let history = builds.port.execution_history(&build.execution_arn).await?;
            let instance = BuildTimeline::from_history(&history, None).instance_id;
            location = log_location(ctx, &build, instance.as_deref()).await;
        }
        let running = build.status == "RUNNING";
        if let Some(location) = &location {
            let lines = read_new(&logs, location, &mut cursor).await?;
            print_lines(ctx, &lines)?;
        }
        if !follow || !running {
            break;
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        build = builds.describe(&build.execution_arn).await?;
        if build.status != "RUNNING" {
            // One more read: what the build wrote before it ended.
            location = None;
        }
    }
    if location.is_none() {
        eprintln!(
            "Build {} has no output yet: its command has not started ({}).",
            build.job_id, build.status
        );
    }
    Ok(0)
}

/// Every event the build's streams got since the last read, in time order.
async fn read_new(
    logs: &Client,
    location: &LogLocation,
    cursor: &mut Cursor,
) -> Result<Vec<Line>, CliError> {
    let streams = logs
        .describe_log_streams()
        .log_group_name(&location.group)
        .log_stream_name_prefix(&location.stream_prefix)
        .send()
        .await
        .map_err(|e| CliError::aws("DescribeLogStreams", e))?;
    let mut lines = Vec::new();
    for stream in streams
        .log_streams()
        .iter()
        .filter_map(|s| s.log_stream_name())
    {
        loop {
            let mut request = logs
                .get_log_events()
                .log_group_name(&location.group)
                .log_stream_name(stream)
                .start_from_head(true);
            if let Some(token) = cursor.tokens.get(stream) {
                request = request.next_token(token);
            }
            let page = request
                .send()
                .await
                .map_err(|e| CliError::aws("GetLogEvents", e))?;
            let events = page.events();
            lines.extend(events.iter().map(|e| Line {
                timestamp: e.timestamp().unwrap_or_default(),
                stream: stream.to_string(),
                message: e.message().unwrap_or_default().to_string(),
            }));
            let next = page.next_forward_token().map(str::to_string);
            let same = next.is_none() || next.as_ref() == cursor.tokens.get(stream);
            if let Some(next) = next {
                cursor.tokens.insert(stream.to_string(), next);
            }
            // GetLogEvents returns the same token once a stream is read to its end.
            if same || events.is_empty() {
                break;
            }
        }
    }
    lines.sort_by_key(|l| l.timestamp);
    Ok(lines)
}

fn print_lines(ctx: &Context, lines: &[Line]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        if ctx.style.json {
            serde_json::to_writer(&mut out, line).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", line.message.trim_end_matches('\n'))?;
        }
    }
    out.flush()?;
    Ok(())
}
