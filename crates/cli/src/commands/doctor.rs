//! `ec2-build doctor`: checks a deployed stack and says what is wrong and how to fix it. Each
//! check ends `ok`, `problem` (with the fix) or `note` (skipped or not readable, never a
//! failure); any problem makes the exit code 1.

use crate::builds::{stack_instances, Builds};
use crate::deployment::outputs;
use crate::error::{sdk_detail, CliError};
use crate::output::{Style, Tone};
use crate::Context;
use aws_sdk_ec2::types::Filter;
use serde::Serialize;
use std::collections::BTreeSet;

/// The action configuration properties the functions read (docs/contracts.md, "Action
/// configuration"; `crates/core/src/spec.rs`), with whether they must be required.
const CONFIGURATION_PROPERTIES: [(&str, bool); 9] = [
    ("ImageId", true),
    ("InstanceType", true),
    ("BuildKind", false),
    ("Command", false),
    ("BuildTarget", false),
    ("WorkingDirectory", false),
    ("OutputArtifactPath", false),
    ("TimeoutMinutes", false),
    ("Capacity", false),
];
/// Interface endpoints an instance in a private subnet needs to reach SSM.
const SSM_ENDPOINTS: [&str; 3] = ["ssm", "ssmmessages", "ec2messages"];
/// How far back function errors are counted.
const ERROR_WINDOW_SECONDS: i64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    Problem,
    Note,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    verdict: Verdict,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

/// The findings of one run.
#[derive(Default)]
struct Findings(Vec<Check>);

impl Findings {
    fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(check, Verdict::Ok, detail.into(), None);
    }
    fn problem(&mut self, check: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(check, Verdict::Problem, detail.into(), Some(fix.into()));
    }
    fn note(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(check, Verdict::Note, detail.into(), None);
    }
    fn push(&mut self, check: &'static str, verdict: Verdict, detail: String, fix: Option<String>) {
        self.0.push(Check {
            check,
            verdict,
            detail,
            fix,
        });
    }
}

pub async fn run(ctx: &Context) -> Result<i32, CliError> {
    let mut findings = Findings::default();
    action_type(ctx, &mut findings).await;
    rules(ctx, &mut findings).await;
    state_machine_and_document(ctx, &mut findings).await;
    images(ctx, &mut findings).await;
    pool_agents(ctx, &mut findings).await;
    subnets(ctx, &mut findings).await;
    function_errors(ctx, &mut findings).await;
    orphans(ctx, &mut findings).await;
    let problems = findings
        .0
        .iter()
        .filter(|c| c.verdict == Verdict::Problem)
        .count();
    if ctx.style.json {
        ctx.style.print_json(&serde_json::json!({
            "stack": ctx.deployment.stack_name,
            "problems": problems,
            "checks": findings.0,
        }))?;
    } else {
        print_human(&ctx.style, &findings, problems);
    }
    Ok(if problems > 0 { 1 } else { 0 })
}

fn print_human(style: &Style, findings: &Findings, problems: usize) {
    for c in &findings.0 {
        let word = match c.verdict {
            Verdict::Ok => style.paint("ok     ", Tone::Good),
            Verdict::Problem => style.paint("problem", Tone::Bad),
            Verdict::Note => style.paint("note   ", Tone::Note),
        };
        println!("{word}  {}: {}", c.check, c.detail);
        if let Some(fix) = &c.fix {
            println!("         fix: {fix}");
        }
    }
    println!();
    match problems {
        0 => println!("No problem found."),
        n => println!("{n} problem(s) found."),
    }
}

/// The stack's custom action type is registered, with the properties the functions read.
async fn action_type(ctx: &Context, f: &mut Findings) {
    const CHECK: &str = "action type";
    let wanted = match ctx.deployment.action_type() {
        Ok(t) => t,
        Err(e) => {
            return f.problem(
                CHECK,
                e.to_string(),
                "update the stack to this version's template",
            )
        }
    };
    let name = format!(
        "Custom/{}/{}/{}",
        wanted.category, wanted.provider, wanted.version
    );
    let cp = aws_sdk_codepipeline::Client::new(&ctx.sdk);
    let listed = cp
        .list_action_types()
        .action_owner_filter(aws_sdk_codepipeline::types::ActionOwner::Custom)
        .send()
        .await;
    let types = match listed {
        Ok(out) => out.action_types().to_vec(),
        Err(e) => return f.note(CHECK, format!("ListActionTypes failed: {}", sdk_detail(&e))),
    };
    let Some(found) = types.iter().find(|t| {
        t.id().is_some_and(|id| {
            id.category().as_str() == wanted.category
                && id.provider() == wanted.provider
                && id.version() == wanted.version
        })
    }) else {
        return f.problem(
            CHECK,
            format!("{name} is not registered in {}: pipelines cannot use it and the functions poll for nothing", ctx.deployment.region),
            "deploy the stack again (its BuildActionType resource registers it); the functions' ACTION_* settings come from the same parameters",
        );
    };
    let registered: Vec<(String, bool)> = found
        .action_configuration_properties()
        .iter()
        .map(|p| (p.name().to_string(), p.required()))
        .collect();
    let wrong: Vec<String> = CONFIGURATION_PROPERTIES
        .iter()
        .filter(|(name, required)| {
            !registered
                .iter()
                .any(|(n, r)| n == name && (!required || *r))
        })
        .map(|(name, required)| format!("{name}{}", if *required { " (required)" } else { "" }))
        .collect();
    if wrong.is_empty() {
        f.ok(
            CHECK,
            format!("{name} is registered with the properties the functions read"),
        );
    } else {
        f.problem(
            CHECK,
            format!("{name} lacks properties the functions read: {}", wrong.join(", ")),
            "a custom action type cannot be changed: deploy with a new ActionVersion and move the pipelines to it",
        );
    }
}

/// Every function has its EventBridge rules, and they are enabled.
async fn rules(ctx: &Context, f: &mut Findings) {
    const CHECK: &str = "event rules";
    let events = aws_sdk_eventbridge::Client::new(&ctx.sdk);
    for output in outputs::FUNCTIONS {
        let arn = match ctx.deployment.output(output) {
            Ok(arn) => arn,
            Err(e) => {
                f.problem(
                    CHECK,
                    e.to_string(),
                    "update the stack to this version's template",
                );
                continue;
            }
        };
        let function = arn.rsplit(':').next().unwrap_or(arn);
        let names = match events
            .list_rule_names_by_target()
            .target_arn(arn)
            .send()
            .await
        {
            Ok(out) => out.rule_names().to_vec(),
            Err(e) => {
                f.note(
                    CHECK,
                    format!(
                        "{function}: ListRuleNamesByTarget failed: {}",
                        sdk_detail(&e)
                    ),
                );
                continue;
            }
        };
        if names.is_empty() {
            f.problem(
                CHECK,
                format!("no EventBridge rule invokes {function}: it never runs"),
                "deploy the stack again: the function's Events create its rules",
            );
            continue;
        }
        for name in names {
            match events.describe_rule().name(&name).send().await {
                Ok(rule) if rule.state().is_some_and(|s| s.as_str() == "ENABLED") => {
                    f.ok(CHECK, format!("{name} (invokes {function}) is enabled"))
                }
                Ok(rule) => f.problem(
                    CHECK,
                    format!(
                        "{name} (invokes {function}) is {}",
                        rule.state().map_or("in no state", |s| s.as_str())
                    ),
                    format!("aws events enable-rule --name {name}"),
                ),
                Err(e) => f.note(
                    CHECK,
                    format!("{name}: DescribeRule failed: {}", sdk_detail(&e)),
                ),
            }
        }
    }
}

/// The state machine is active and the SSM document exists.
async fn state_machine_and_document(ctx: &Context, f: &mut Findings) {
    match ctx.deployment.state_machine_arn() {
        Err(e) => f.problem(
            "state machine",
            e.to_string(),
            "pass --stack NAME of the deployed stack",
        ),
        Ok(arn) => {
            let sfn = aws_sdk_sfn::Client::new(&ctx.sdk);
            match sfn
                .describe_state_machine()
                .state_machine_arn(arn)
                .send()
                .await
            {
                Ok(out) if out.status().is_none_or(|s| s.as_str() == "ACTIVE") => {
                    f.ok("state machine", format!("{} is active", out.name()))
                }
                Ok(out) => f.problem(
                    "state machine",
                    format!("{} is {:?}", out.name(), out.status()),
                    "deploy the stack again",
                ),
                Err(e) => f.problem(
                    "state machine",
                    format!("{arn}: {}", sdk_detail(&e)),
                    "deploy the stack again: the state machine is one of its resources",
                ),
            }
        }
    }
    match ctx.deployment.output(outputs::BUILD_DOCUMENT) {
        Err(e) => f.problem(
            "SSM document",
            e.to_string(),
            "update the stack to this version's template",
        ),
        Ok(name) => {
            let ssm = aws_sdk_ssm::Client::new(&ctx.sdk);
            match ssm.describe_document().name(name).send().await {
                Ok(_) => f.ok("SSM document", format!("{name} exists")),
                Err(e) => f.problem(
                    "SSM document",
                    format!("{name}: {}", sdk_detail(&e)),
                    "deploy the stack again: the document is one of its resources",
                ),
            }
        }
    }
}

/// The images the pipelines' actions of our type use exist, with an architecture their first
/// instance type runs.
async fn images(ctx: &Context, f: &mut Findings) {
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

/// Each subnet reaches SSM: a default route to a NAT or internet gateway, or the VPC's interface
/// endpoints for ssm, ssmmessages and ec2messages.
async fn subnets(ctx: &Context, f: &mut Findings) {
    const CHECK: &str = "route to SSM";
    let subnets = match ctx.deployment.output(outputs::SUBNETS) {
        Ok(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>(),
        Err(e) => {
            return f.problem(
                CHECK,
                e.to_string(),
                "update the stack to this version's template",
            )
        }
    };
    let ec2 = aws_sdk_ec2::Client::new(&ctx.sdk);
    let described = match ec2
        .describe_subnets()
        .set_subnet_ids(Some(subnets.clone()))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            return f.problem(
                CHECK,
                format!("subnets {}: {}", subnets.join(", "), sdk_detail(&e)),
                "deploy the stack with SubnetIds of existing subnets",
            )
        }
    };
    for subnet in described.subnets() {
        let id = subnet.subnet_id().unwrap_or_default();
        let vpc = subnet.vpc_id().unwrap_or_default();
        let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
        let mut tables = ec2
            .describe_route_tables()
            .filters(filter("association.subnet-id", id))
            .send()
            .await
            .map(|o| o.route_tables().to_vec())
            .unwrap_or_default();
        if tables.is_empty() {
            tables = ec2
                .describe_route_tables()
                .filters(filter("vpc-id", vpc))
                .filters(filter("association.main", "true"))
                .send()
                .await
                .map(|o| o.route_tables().to_vec())
                .unwrap_or_default();
        }
        let gateway = tables.iter().flat_map(|t| t.routes()).find_map(|r| {
            (r.destination_cidr_block() == Some("0.0.0.0/0"))
                .then(|| {
                    r.nat_gateway_id()
                        .or(r.gateway_id().filter(|g| g.starts_with("igw-")))
                })
                .flatten()
        });
        let endpoints: BTreeSet<String> = ec2
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .map(|o| {
                o.vpc_endpoints()
                    .iter()
                    .filter_map(|e| e.service_name()?.rsplit('.').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&str> = SSM_ENDPOINTS
            .iter()
            .copied()
            .filter(|e| !endpoints.contains(*e))
            .collect();
        match (gateway, missing.is_empty()) {
            (Some(gateway), _) => f.ok(CHECK, format!("{id}: default route through {gateway}")),
            (None, true) => f.ok(CHECK, format!("{id}: VPC endpoints for {}", SSM_ENDPOINTS.join(", "))),
            (None, false) => f.problem(
                CHECK,
                format!("{id} ({vpc}) has no default route to a NAT or internet gateway and no VPC endpoint for {}", missing.join(", ")),
                format!(
                    "add a NAT gateway route, or interface endpoints com.amazonaws.{}.{{ssm,ssmmessages,ec2messages}} (builds also need S3, logs and states)",
                    ctx.deployment.region
                ),
            ),
        }
    }
}

/// Errors of the functions in the last hour (AWS/Lambda Errors).
async fn function_errors(ctx: &Context, f: &mut Findings) {
    const CHECK: &str = "function errors";
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&ctx.sdk);
    let now = std::time::SystemTime::now();
    let start = now - std::time::Duration::from_secs(ERROR_WINDOW_SECONDS as u64);
    for output in outputs::FUNCTIONS {
        let Ok(arn) = ctx.deployment.output(output) else {
            continue;
        };
        let function = arn.rsplit(':').next().unwrap_or(arn);
        let stats = cloudwatch
            .get_metric_statistics()
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("FunctionName")
                    .value(function)
                    .build(),
            )
            .start_time(start.into())
            .end_time(now.into())
            .period(ERROR_WINDOW_SECONDS as i32)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
            .send()
            .await;
        match stats {
            Err(e) => f.note(
                CHECK,
                format!("{function}: not readable ({})", sdk_detail(&e)),
            ),
            Ok(out) => {
                let errors: f64 = out.datapoints().iter().filter_map(|d| d.sum()).sum();
                if errors > 0.0 {
                    f.problem(
                        CHECK,
                        format!("{function}: {errors} failed invocation(s) in the last hour"),
                        format!("read its log group (/ec2-build/{}/...) and the FailedInvocationsQueueUrl queue", ctx.deployment.stack_name),
                    );
                } else {
                    f.ok(
                        CHECK,
                        format!("{function}: no failed invocation in the last hour"),
                    );
                }
            }
        }
    }
}

/// Every live instance of the stack belongs to a running execution.
/// The first SSM Agent that runs documents with `interpolationType: ENV_VAR`.
const MINIMUM_AGENT: [u64; 4] = [3, 3, 2746, 0];

/// Pool instances (the registry's members) whose SSM Agent is older than [`MINIMUM_AGENT`], as
/// SSM last saw them (a stopped instance keeps its last report).
async fn pool_agents(ctx: &Context, f: &mut Findings) {
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

async fn orphans(ctx: &Context, f: &mut Findings) {
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
