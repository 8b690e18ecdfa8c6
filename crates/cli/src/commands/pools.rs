//! `ec2-build pools`: instances of each warm pool by state. Pools do not exist yet: every build
//! launches a fresh instance, so this says so and succeeds.

use crate::error::CliError;
use crate::output::Style;

pub fn run(style: &Style) -> Result<i32, CliError> {
    if style.json {
        style.print_json(&serde_json::json!({ "pools": [] }))?;
    } else {
        println!(
            "No pools are configured: every build launches a fresh instance (pool \"-\" in \
             `ec2-build status`, \"cold\" in the build metrics)."
        );
    }
    Ok(0)
}
