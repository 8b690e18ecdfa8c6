//! Checks of what the instances and functions reach: the subnets' route to SSM, the functions'
//! recent errors.

use super::Findings;
use crate::deployment::outputs;
use crate::error::sdk_detail;
use crate::Context;
use aws_sdk_ec2::types::Filter;
use std::collections::BTreeSet;

/// Interface endpoints an instance in a private subnet needs to reach SSM.
const SSM_ENDPOINTS: [&str; 3] = ["ssm", "ssmmessages", "ec2messages"];
/// How far back function errors are counted.
const ERROR_WINDOW_SECONDS: i64 = 3600;

/// Each subnet reaches SSM: a default route to a NAT or internet gateway, or the VPC's interface
/// endpoints for ssm, ssmmessages and ec2messages.
pub(super) async fn subnets(ctx: &Context, f: &mut Findings) {
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
pub(super) async fn function_errors(ctx: &Context, f: &mut Findings) {
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
