//! The completion function's per-build metrics: valid embedded metric format, one document per
//! dimension set, written once per finished build.

use ec2_build_core::model::HistoryEvent;
use ec2_build_core::timeline::BuildTimeline;
use ec2_build_lambdas::metrics::{
    self, BUILDS_FINISHED_METRIC, BUILD_DURATION_METRICS, MARKET_DIMENSION, NAMESPACE,
    POOL_DIMENSION, RESULT_DIMENSION, STACK_DIMENSION,
};
use serde_json::{json, Value};

fn event(at_ms: u64, kind: &str, state: Option<&str>, data: Option<Value>) -> HistoryEvent {
    HistoryEvent {
        at_ms,
        kind: kind.into(),
        state: state.map(str::to_string),
        data: data.map(|d| d.to_string()),
        error: None,
    }
}

/// A spot build that succeeded: queued at 9 s, started at 10 s, launched at 12 s, agent online
/// at 15 s, command until 45 s with 2 s of upload, ended at 46 s.
fn spot_build() -> BuildTimeline {
    let launched = json!({
        "Launched": {"InstanceId": "i-1"},
        "Run": {"Markets": {"Names": ["on-demand", "spot"]}, "Acquire": {"MarketIndex": 1}}
    });
    let history = vec![
        event(10_000, "ExecutionStarted", None, None),
        event(
            12_000,
            "WaitStateEntered",
            Some("WaitForAgent"),
            Some(launched),
        ),
        event(15_000, "TaskStateEntered", Some("RunBuild"), None),
        event(45_000, "TaskStateExited", Some("RunBuild"), None),
        event(
            46_000,
            "ExecutionSucceeded",
            None,
            Some(json!({"Build": {"UploadSeconds": 2.0}})),
        ),
    ];
    BuildTimeline::from_history(&history, Some(9_000))
}

fn documents(collector: &metrics_cloudwatch_embedded::Collector) -> Vec<Value> {
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect()
}

fn metric_names(doc: &Value) -> Vec<String> {
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_finished_build_is_valid_emf_once_and_only_once() {
    let collector = metrics::install("my-stack").unwrap();
    metrics::record_build(&spot_build());
    let docs = documents(collector);
    assert_eq!(docs.len(), 2, "durations and the result: {docs:?}");
    for doc in &docs {
        // The EMF specification: _aws.Timestamp (ms) and CloudWatchMetrics[{Namespace,
        // Dimensions, Metrics[{Name, Unit}]}], each dimension and metric a top-level member.
        assert!(doc["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[dimension.as_str().unwrap()].is_string(), "{doc}");
        }
        for name in metric_names(doc) {
            assert!(doc[&name].is_array(), "{name} has its values: {doc}");
        }
        assert_eq!(doc[STACK_DIMENSION], "my-stack");
    }
    let durations = docs
        .iter()
        .find(|d| d.get(MARKET_DIMENSION).is_some())
        .unwrap();
    assert_eq!(
        durations["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([[STACK_DIMENSION, MARKET_DIMENSION, POOL_DIMENSION]])
    );
    assert_eq!(durations[MARKET_DIMENSION], "spot");
    assert_eq!(durations[POOL_DIMENSION], "cold");
    let mut names = metric_names(durations);
    names.sort();
    let mut expected: Vec<String> = BUILD_DURATION_METRICS.map(String::from).to_vec();
    expected.sort();
    assert_eq!(names, expected);
    assert!(durations["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["Unit"] == "Seconds"));
    assert_eq!(durations["BuildQueueTime"], json!([1.0]));
    assert_eq!(durations["BuildAcquisitionTime"], json!([2.0]));
    assert_eq!(durations["BuildAgentWaitTime"], json!([3.0]));
    assert_eq!(durations["BuildTime"], json!([28.0]));
    assert_eq!(durations["BuildUploadTime"], json!([2.0]));
    assert_eq!(durations["BuildTotalTime"], json!([37.0]));

    let result = docs
        .iter()
        .find(|d| d.get(RESULT_DIMENSION).is_some())
        .unwrap();
    assert_eq!(result[RESULT_DIMENSION], "Succeeded");
    assert_eq!(
        metric_names(result),
        vec![BUILDS_FINISHED_METRIC.to_string()]
    );
    assert_eq!(result[BUILDS_FINISHED_METRIC], json!([1.0]));

    // The next flush (the next invocation) repeats nothing of this build.
    assert!(documents(collector).is_empty());
}
