//! The keeper's metrics: valid embedded metric format, and the names the template uses.

use ec2_build_lambdas::keeper::KeeperResponse;
use ec2_build_lambdas::metrics::{self, KEEPER_METRICS, NAMESPACE, STACK_DIMENSION};
use serde_json::Value;

#[test]
fn a_keeper_run_is_one_valid_emf_document_with_every_count() {
    // The recorder is process-wide: this test binary installs it once.
    let collector = metrics::install("my-stack").unwrap();
    metrics::record_keeper_run(&KeeperResponse {
        live_instances: 3,
        running_executions: 2,
        terminated_orphans: vec!["i-1".into()],
        failures: vec!["DescribeExecution x: throttled".into(), "y".into()],
        ..Default::default()
    });
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let doc: Value = serde_json::from_str(lines[0]).unwrap();
    // The EMF specification: _aws.Timestamp (ms) and CloudWatchMetrics[{Namespace, Dimensions,
    // Metrics[{Name}]}], with each dimension and metric a top-level member.
    let aws = &doc["_aws"];
    assert!(aws["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    let directive = &aws["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], NAMESPACE);
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([[STACK_DIMENSION]])
    );
    assert_eq!(doc[STACK_DIMENSION], "my-stack");
    let names: Vec<&str> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    let mut expected = KEEPER_METRICS.to_vec();
    expected.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "zeros are emitted too");
    assert_eq!(doc["KeeperLiveInstances"], 3.0);
    assert_eq!(doc["KeeperTerminatedOrphans"], 1.0);
    assert_eq!(doc["KeeperFailures"], 2.0);
    assert_eq!(doc["KeeperStoppedInstanceLost"], 0.0);
}

#[test]
fn the_templates_alarms_use_metrics_the_keeper_emits() {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../cloudformation/template.yml"
    ))
    .unwrap();
    let used: Vec<&str> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("MetricName: "))
        .filter(|name| name.starts_with("Keeper"))
        .collect();
    assert!(!used.is_empty(), "the template has no keeper alarm");
    for name in used {
        assert!(KEEPER_METRICS.contains(&name), "{name} is not emitted");
    }
}
