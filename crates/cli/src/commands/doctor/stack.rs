//! Checks of the stack itself: the action type, the EventBridge rules, the state machine and the
//! document.

use super::Findings;
use crate::deployment::outputs;
use crate::error::sdk_detail;
use crate::Context;

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

/// The stack's custom action type is registered, with the properties the functions read.
pub(super) async fn action_type(ctx: &Context, f: &mut Findings) {
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
pub(super) async fn rules(ctx: &Context, f: &mut Findings) {
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
pub(super) async fn state_machine_and_document(ctx: &Context, f: &mut Findings) {
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
