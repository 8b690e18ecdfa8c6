//! `ec2-build doctor`: checks a deployed stack and says what is wrong and how to fix it. Each
//! check ends `ok`, `problem` (with the fix) or `note` (skipped or not readable, never a
//! failure); any problem makes the exit code 1.

mod instances;
mod network;
mod stack;

use crate::error::CliError;
use crate::output::{Style, Tone};
use crate::Context;
use serde::Serialize;

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
    stack::action_type(ctx, &mut findings).await;
    stack::rules(ctx, &mut findings).await;
    stack::state_machine_and_document(ctx, &mut findings).await;
    instances::images(ctx, &mut findings).await;
    instances::pool_agents(ctx, &mut findings).await;
    network::subnets(ctx, &mut findings).await;
    network::function_errors(ctx, &mut findings).await;
    instances::orphans(ctx, &mut findings).await;
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
