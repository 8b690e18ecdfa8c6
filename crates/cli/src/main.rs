//! `ec2-build`: the operator's command line for a deployed ec2-build stack. It reads the stack's
//! outputs (CloudFormation DescribeStacks) and talks to the same services as the functions,
//! through the standard AWS credential chain and region; `AWS_ENDPOINT_URL` points it at another
//! endpoint (the local stack). Exit codes: README, "Operating it".

mod builds;
mod commands;
mod deployment;
mod error;
mod output;

use clap::{Parser, Subcommand};
use deployment::Deployment;
use error::CliError;
use output::Style;

/// Operate an ec2-build deployment: running builds, their timelines and logs, cancelling, checks.
#[derive(Debug, Parser)]
#[command(name = "ec2-build", version)]
struct Cli {
    /// The CloudFormation stack of the deployment.
    #[arg(
        long,
        global = true,
        env = "EC2_BUILD_STACK",
        default_value = "ec2-build"
    )]
    stack: String,
    /// A stack output given instead of read (repeatable; e.g. StateMachineArn=arn:...), for a
    /// deployment made without CloudFormation or an output the stack lacks.
    #[arg(
        long = "output",
        global = true,
        value_name = "NAME=VALUE",
        env = "EC2_BUILD_OUTPUTS",
        value_delimiter = ','
    )]
    outputs: Vec<String>,
    /// Machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Running builds, and the most recent finished ones with their result.
    Status {
        /// How many finished builds to list.
        #[arg(long, default_value_t = 10)]
        recent: i32,
    },
    /// A build's timeline, durations, instance, links and message.
    Show {
        /// Job id, execution ARN or pipeline name (its latest build).
        build: String,
    },
    /// A build's output from CloudWatch Logs.
    Logs {
        /// Job id or execution ARN (or a pipeline name: its latest build).
        build: String,
        /// Keep printing new output until the build ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Stop a running build; its job fails saying it was cancelled, and why.
    Cancel {
        /// Job id or execution ARN (or a pipeline name: its latest build).
        build: String,
        /// Why, for the job's failure message.
        #[arg(long, default_value = "no reason given")]
        reason: String,
    },
    /// Warm pools and their instances by state, from the pool registry.
    Pools,
    /// Check the deployment and say what is wrong and how to fix it.
    Doctor,
}

/// What every command gets.
pub struct Context {
    pub sdk: aws_config::SdkConfig,
    pub deployment: Deployment,
    pub style: Style,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let style = Style::new(cli.json);
    let code = match run(cli, style).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ec2-build: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli, style: Style) -> Result<i32, CliError> {
    let sdk = ec2_build_aws::load_sdk_config().await;
    let deployment = Deployment::load(&sdk, &cli.stack, &cli.outputs).await?;
    let ctx = Context {
        sdk,
        deployment,
        style,
    };
    match &cli.command {
        Command::Status { recent } => commands::status::run(&ctx, *recent).await,
        Command::Show { build } => commands::show::run(&ctx, build).await,
        Command::Logs { build, follow } => commands::logs::run(&ctx, build, *follow).await,
        Command::Cancel { build, reason } => commands::cancel::run(&ctx, build, reason).await,
        Command::Doctor => commands::doctor::run(&ctx).await,
        Command::Pools => commands::pools::run(&ctx).await,
    }
}
