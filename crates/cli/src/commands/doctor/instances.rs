//! Checks of the build instances: the pipelines' images, the pool instances' SSM Agent, and
//! instances without a running build.

use super::Findings;
use crate::builds::{stack_instances, Builds};
use crate::error::{sdk_detail, CliError};
use crate::Context;
use std::collections::BTreeSet;

/// The images the pipelines' actions of our type use exist, with an architecture their first
/// instance type runs.
pub(super) async fn images(ctx: &Context, f: &mut Findings) {
    const CHECK: &str = "images";
    let Ok(wanted) = ctx.deployment.action_type() else {
        return;
    };
    let cp = aws_sdk_codepipeline::Client::new(&ctx.sdk);
    let mut uses = Vec::new();
    let mut pages = cp.list_pipelines().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => return f.note(CHECK, format!("ListPipelines failed: {}", sdk_detail(&e))),
        };
        for summary in page.pipelines() {
            let Some(name) = summary.name() else { continue };
            let Ok(out) = cp.get_pipeline().name(name).send().await else {
                continue;
            };
            for stage in out.pipeline().map(|p| p.stages()).unwrap_or_default() {
                for action in stage.actions() {
                    let ours = action.action_type_id().is_some_and(|id| {
                        id.owner().as_str() == "Custom"
                            && id.category().as_str() == wanted.category
                            && id.provider() == wanted.provider
                            && id.version() == wanted.version
                    });
                    if let (true, Some(config)) = (ours, action.configuration()) {
                        uses.push((
                            format!("{name} / {} / {}", stage.name(), action.name()),
                            config.get("ImageId").cloned().unwrap_or_default(),
                            config.get("InstanceType").cloned().unwrap_or_default(),
                        ));
                    }
                }
            }
        }
    }
    if uses.is_empty() {
        return f.note(CHECK, "no pipeline uses the action yet: nothing to check");
    }
    let ssm = aws_sdk_ssm::Client::new(&ctx.sdk);
    let ec2 = aws_sdk_ec2::Client::new(&ctx.sdk);
    for (action, image, instance_types) in uses {
        let image_id = match image.strip_prefix("resolve:ssm:") {
            None => image.clone(),
            Some(parameter) => match ssm.get_parameter().name(parameter).send().await {
                Ok(out) => out
                    .parameter()
                    .and_then(|p| p.value())
                    .unwrap_or_default()
                    .to_string(),
                Err(e) => {
                    f.problem(
                        CHECK,
                        format!(
                            "{action}: parameter {parameter} cannot be read: {}",
                            sdk_detail(&e)
                        ),
                        format!("create {parameter} with the AMI id, or set ImageId to an AMI id"),
                    );
                    continue;
                }
            },
        };
        let described = ec2.describe_images().image_ids(&image_id).send().await;
        let found = described.ok().and_then(|out| out.images().first().cloned());
        let Some(found) = found.filter(|i| i.state().is_none_or(|s| s.as_str() == "available"))
        else {
            f.problem(
                CHECK,
                format!("{action}: image {image} ({image_id}) does not exist or is not available in {}", ctx.deployment.region),
                "set the action's ImageId to an available AMI of this region (or resolve:ssm:/aws/service/... for Amazon's images)",
            );
            continue;
        };
        let platform = found.platform_details().unwrap_or("Linux/UNIX").to_string();
        let architecture = found
            .architecture()
            .map_or("unknown", |a| a.as_str())
            .to_string();
        let first_type = instance_types
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        match instance_architectures(&ec2, &first_type).await {
            Some(supported) if !supported.contains(&architecture) => f.problem(
                CHECK,
                format!("{action}: image {image_id} is {architecture}, instance type {first_type} runs {}", supported.iter().cloned().collect::<Vec<_>>().join(", ")),
                "choose an instance type of the image's architecture (e.g. t3.large for x86_64, t4g.large for arm64)",
            ),
            _ => f.ok(CHECK, format!("{action}: {image_id} ({platform}, {architecture}) exists")),
        }
    }
}

async fn instance_architectures(
    ec2: &aws_sdk_ec2::Client,
    instance_type: &str,
) -> Option<BTreeSet<String>> {
    let out = ec2
        .describe_instance_types()
        .instance_types(instance_type.into())
        .send()
        .await
        .ok()?;
    let info = out.instance_types().first()?;
    Some(
        info.processor_info()?
            .supported_architectures()
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
    )
}

/// Every live instance of the stack belongs to a running execution.
/// The first SSM Agent that runs documents with `interpolationType: ENV_VAR`.
const MINIMUM_AGENT: [u64; 4] = [3, 3, 2746, 0];

/// Pool instances (the registry's members) whose SSM Agent is older than [`MINIMUM_AGENT`], as
/// SSM last saw them (a stopped instance keeps its last report).
pub(super) async fn pool_agents(ctx: &Context, f: &mut Findings) {
    const CHECK: &str = "pool agents";
    let members = match crate::commands::pools::registry(ctx).await {
        Ok(members) => members,
        Err(e) => return f.note(CHECK, format!("the pool registry cannot be read: {e}")),
    };
    if members.is_empty() {
        return f.note(
            CHECK,
            "no pool instances: skipped (each fresh instance's SSM Agent version is checked by the state machine before its build)",
        );
    }
    let ssm = aws_sdk_ssm::Client::new(&ctx.sdk);
    let mut old = Vec::new();
    let mut unseen = 0;
    for chunk in members.chunks(50) {
        let ids: Vec<String> = chunk.iter().map(|m| m.instance_id.clone()).collect();
        let filter = aws_sdk_ssm::types::InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .set_values(Some(ids.clone()))
            .build();
        let Ok(filter) = filter else { continue };
        let infos = match ssm
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
        {
            Ok(out) => out.instance_information_list().to_vec(),
            Err(e) => {
                return f.note(
                    CHECK,
                    CliError::aws("DescribeInstanceInformation", e).to_string(),
                )
            }
        };
        for id in &ids {
            match infos.iter().find(|i| i.instance_id() == Some(id.as_str())) {
                None => unseen += 1,
                Some(info) => {
                    let version = info.agent_version().unwrap_or("");
                    let parts: Vec<u64> =
                        version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
                    let padded: Vec<u64> =
                        (0..4).map(|i| parts.get(i).copied().unwrap_or(0)).collect();
                    if padded.as_slice() < MINIMUM_AGENT.as_slice() {
                        old.push(format!("{id} ({version})"));
                    }
                }
            }
        }
    }
    if old.is_empty() {
        f.ok(
            CHECK,
            format!(
                "{} pool instances, SSM Agent 3.3.2746.0 or later where SSM has seen it ({unseen} not seen yet)",
                members.len()
            ),
        );
    } else {
        f.problem(
            CHECK,
            format!("pool instances with an SSM Agent older than 3.3.2746.0: {}", old.join(", ")),
            "build the pool's image with a newer agent (or run AWS-UpdateSSMAgent in its warm-up), then let the keeper recycle the instances (lower MaxAgeHours or set the pool's Size to 0 and back)",
        );
    }
}

pub(super) async fn orphans(ctx: &Context, f: &mut Findings) {
    const CHECK: &str = "instances";
    let Ok(arn) = ctx.deployment.state_machine_arn() else {
        return;
    };
    let builds = Builds::new(&ctx.sdk, arn);
    let ec2 = aws_sdk_ec2::Client::new(&ctx.sdk);
    let (running, instances) = match (
        builds.list(true, 0).await,
        stack_instances(&ec2, &ctx.deployment.stack_name).await,
    ) {
        (Ok(r), Ok(i)) => (r, i),
        (Err(e), _) | (_, Err(e)) => return f.note(CHECK, format!("not readable: {e}")),
    };
    let live: Vec<_> = instances
        .iter()
        .filter(|i| !matches!(i.state.as_str(), "shutting-down" | "terminated"))
        .collect();
    let orphans: Vec<_> = live
        .iter()
        .filter(|i| {
            !i.execution_arn
                .as_ref()
                .is_some_and(|a| running.contains(a))
        })
        .collect();
    if orphans.is_empty() {
        return f.ok(
            CHECK,
            format!("{} live instance(s), each with a running build", live.len()),
        );
    }
    for i in orphans {
        f.problem(
            CHECK,
            format!(
                "{} ({}) runs without a running build (execution {})",
                i.id,
                i.state,
                i.execution_arn.as_deref().unwrap_or("unknown")
            ),
            format!(
                "the keeper terminates it within its period; if it stays, read the keeper's log, or: aws ec2 terminate-instances --instance-ids {}",
                i.id
            ),
        );
    }
}
