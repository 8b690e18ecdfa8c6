//! A build's timeline, read from its execution's history (the StepFunctions port's
//! `execution_history`): when it was queued, got its instance, found the agent online, ran its
//! command, had its outputs uploaded and finished; the durations between; and the labels its
//! metrics carry (result, market, pool). Pure: the caller fetches the history, and the action's
//! start from CodePipeline for the queue time.

use crate::model::{ActionExecution, HistoryEvent};
use serde::Serialize;
use serde_json::Value;

/// The state the build waits in for the agent; entered only after a successful launch.
const AGENT_WAIT_STATE: &str = "WaitForAgent";
/// The state that sends the build command and waits for the document's report.
const BUILD_STATE: &str = "RunBuild";

/// Failure names a build's result metric keeps as they are (the `Fail` state's errors of
/// `statemachine/build.asl.json`, docs/contracts.md); any other failure counts as `Failed`, so
/// the dimension stays low-cardinality.
pub const FAILURE_RESULTS: &[&str] = &[
    "AcquireFailed",
    "AgentTimeout",
    "AgentTooOld",
    "DownloadFailed",
    "BuildFailed",
    "UploadFailed",
    "BuildTimeout",
    "ReleaseFailed",
];

/// Where a build's instance was bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    OnDemand,
    Spot,
    /// No instance was launched.
    None,
}

impl Market {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OnDemand => "on-demand",
            Self::Spot => "spot",
            Self::None => "none",
        }
    }
}

/// Where a build's instance came from when it was not a pool's: a fresh launch.
pub const POOL_COLD: &str = "cold";
/// The state a claimed pool instance is checked in first when its pool runs its instances (a
/// stopped pool's goes through the agent wait, as a fresh instance does).
const AGENT_CHECK_STATE: &str = "CheckAgent";

/// The moments of one build, in milliseconds since the epoch; `None` for what did not happen (yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BuildTimeline {
    /// CodePipeline started the action and queued its job (ListActionExecutions' start time).
    pub queued_ms: Option<u64>,
    /// The execution started (the job was picked up).
    pub started_ms: u64,
    /// The instance was launched (the first entry into the agent wait).
    pub acquired_ms: Option<u64>,
    /// The agent answered online (the build state was entered).
    pub agent_online_ms: Option<u64>,
    /// SSM accepted the build command (its task was submitted).
    pub command_running_ms: Option<u64>,
    /// The build task ended: the document reported after uploading, or failed, or timed out.
    pub uploaded_ms: Option<u64>,
    /// The execution ended.
    pub finished_ms: Option<u64>,
    /// Seconds the document spent zipping and uploading the output artifacts, as it reported
    /// them (`UploadSeconds` of the build result; successful builds only).
    pub upload_seconds: Option<f64>,
    pub instance_id: Option<String>,
    pub market: Option<Market>,
    /// The warm pool the instance was claimed from; `None` for a fresh launch.
    pub pool: Option<String>,
    /// The execution's final event type (`ExecutionSucceeded`, ...) and error, once it ended.
    pub ended: Option<(String, Option<String>)>,
}

/// Durations of one build, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BuildDurations {
    /// Action started → execution started; `None` without the action's start time.
    pub queue: Option<f64>,
    /// Execution started → instance launched.
    pub acquisition: Option<f64>,
    /// Instance launched → agent online.
    pub agent_wait: Option<f64>,
    /// Build command: download and build (the upload is taken out when the document reported it).
    pub build: Option<f64>,
    /// Zip and upload of the output artifacts.
    pub upload: Option<f64>,
    /// Action started (else execution started) → execution ended.
    pub total: Option<f64>,
}

impl BuildTimeline {
    /// Reads the timeline from the execution's history (oldest first); `queued_ms` is when
    /// CodePipeline started the action, milliseconds since the epoch, when known.
    pub fn from_history(history: &[HistoryEvent], queued_ms: Option<u64>) -> Self {
        let mut timeline = Self {
            queued_ms,
            ..Self::default()
        };
        let mut in_build = false;
        for event in history {
            let state = event.state.as_deref();
            match event.kind.as_str() {
                "ExecutionStarted" => timeline.started_ms = event.at_ms,
                kind if kind.ends_with("StateEntered") => {
                    let agent = matches!(state, Some(AGENT_WAIT_STATE | AGENT_CHECK_STATE));
                    if agent && timeline.acquired_ms.is_none() {
                        timeline.acquired_ms = Some(event.at_ms);
                        let input = parse(event.data.as_deref());
                        timeline.instance_id =
                            input["Launched"]["InstanceId"].as_str().map(str::to_string);
                        timeline.pool = input["Launched"]["Pool"].as_str().map(str::to_string);
                        // Pool instances are launched on demand by the preparation workflow.
                        timeline.market = Some(if timeline.pool.is_some() {
                            Market::OnDemand
                        } else {
                            market_of(&input)
                        });
                    }
                    if in_build && state != Some(BUILD_STATE) {
                        in_build = false;
                        timeline.uploaded_ms.get_or_insert(event.at_ms);
                    }
                    if state == Some(BUILD_STATE) && timeline.agent_online_ms.is_none() {
                        timeline.agent_online_ms = Some(event.at_ms);
                        in_build = true;
                    }
                }
                "TaskSubmitted" if in_build => {
                    timeline.command_running_ms.get_or_insert(event.at_ms);
                }
                "TaskStateExited" if in_build && state == Some(BUILD_STATE) => {
                    in_build = false;
                    timeline.uploaded_ms.get_or_insert(event.at_ms);
                }
                kind @ ("ExecutionSucceeded" | "ExecutionFailed" | "ExecutionAborted"
                | "ExecutionTimedOut") => {
                    timeline.finished_ms = Some(event.at_ms);
                    timeline.ended = Some((kind.to_string(), event.error.clone()));
                    if kind == "ExecutionSucceeded" {
                        timeline.upload_seconds = parse(event.data.as_deref())["Build"]
                            ["UploadSeconds"]
                            .as_f64()
                            .filter(|s| *s >= 0.0);
                    }
                }
                _ => {}
            }
        }
        if timeline.agent_online_ms.is_some() {
            timeline.command_running_ms = timeline.command_running_ms.or(timeline.agent_online_ms);
        }
        timeline
    }

    /// The durations between the moments that happened.
    pub fn durations(&self) -> BuildDurations {
        let between = |from: Option<u64>, to: Option<u64>| match (from, to) {
            (Some(from), Some(to)) => Some(to.saturating_sub(from) as f64 / 1000.0),
            _ => None,
        };
        let started = Some(self.started_ms);
        let command = between(self.command_running_ms, self.uploaded_ms);
        BuildDurations {
            queue: between(self.queued_ms, started),
            acquisition: between(started, self.acquired_ms),
            agent_wait: between(self.acquired_ms, self.agent_online_ms),
            build: command.map(|c| (c - self.upload_seconds.unwrap_or(0.0)).max(0.0)),
            upload: self.upload_seconds.filter(|_| command.is_some()),
            total: between(self.queued_ms.or(started), self.finished_ms),
        }
    }

    /// The result label: `Succeeded`, a failure stage of [`FAILURE_RESULTS`], `Failed` for any
    /// other failure, `Aborted`, `TimedOut`; `Running` before the end.
    pub fn result(&self) -> &str {
        match &self.ended {
            None => "Running",
            Some((kind, error)) => match kind.as_str() {
                "ExecutionSucceeded" => "Succeeded",
                "ExecutionAborted" => "Aborted",
                "ExecutionTimedOut" => "TimedOut",
                _ => error
                    .as_deref()
                    .and_then(|e| FAILURE_RESULTS.iter().find(|known| **known == e))
                    .copied()
                    .unwrap_or("Failed"),
            },
        }
    }

    /// The pool label: the pool's name, or [`POOL_COLD`] for a fresh instance (or none).
    pub fn pool(&self) -> &str {
        self.pool.as_deref().unwrap_or(POOL_COLD)
    }

    /// The market label; `none` when no instance was launched.
    pub fn market(&self) -> Market {
        self.market.unwrap_or(Market::None)
    }
}

/// The pipeline name and pipeline execution id of the execution's input (docs/contracts.md), from
/// its `ExecutionStarted` event.
pub fn pipeline_execution(history: &[HistoryEvent]) -> Option<(String, String)> {
    let started = history.iter().find(|e| e.kind == "ExecutionStarted")?;
    let input = parse(started.data.as_deref());
    let text = |v: &Value| v.as_str().map(str::to_string);
    Some((
        text(&input["Pipeline"]["Name"])?,
        text(&input["Pipeline"]["ExecutionId"])?,
    ))
}

/// When CodePipeline started the action this execution runs (and queued its job): among a
/// pipeline execution's action executions, the one reporting this execution ARN (a retried
/// stage's earlier attempt reports another).
pub fn action_started_ms(actions: &[ActionExecution], execution_arn: &str) -> Option<u64> {
    actions
        .iter()
        .find(|a| a.external_execution_id.as_deref() == Some(execution_arn))
        .and_then(|a| a.started_at_ms)
}

fn parse(data: Option<&str>) -> Value {
    data.and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

/// The market of the launch that succeeded: the definition's `Run.Markets.Names` at
/// `Run.Acquire.MarketIndex` (0 on demand, 1 spot).
fn market_of(input: &Value) -> Market {
    let index = input["Run"]["Acquire"]["MarketIndex"].as_u64().unwrap_or(0) as usize;
    match input["Run"]["Markets"]["Names"][index].as_str() {
        Some("spot") => Market::Spot,
        _ => Market::OnDemand,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: u64, kind: &str, state: Option<&str>, data: Option<Value>) -> HistoryEvent {
        HistoryEvent {
            at_ms,
            kind: kind.into(),
            state: state.map(str::to_string),
            data: data.map(|d| d.to_string()),
            error: None,
        }
    }

    fn launched(market_index: u64) -> Value {
        serde_json::json!({
            "Launched": {"InstanceId": "i-0abc", "InstanceType": "t3.large"},
            "Run": {"Markets": {"Names": ["on-demand", "spot"]}, "Acquire": {"MarketIndex": market_index}}
        })
    }

    /// A successful build: started at 10 s, launched at 14 s, agent online at 20 s, command
    /// submitted at 20.5 s, report at 80.5 s (3.5 s of it uploading), ended at 83 s.
    fn succeeded() -> Vec<HistoryEvent> {
        vec![
            event(
                10_000,
                "ExecutionStarted",
                None,
                Some(serde_json::json!({"JobId": "j"})),
            ),
            event(10_010, "PassStateEntered", Some("Prepare"), None),
            event(11_000, "TaskStateEntered", Some("Launch"), None),
            event(
                14_000,
                "WaitStateEntered",
                Some("WaitForAgent"),
                Some(launched(0)),
            ),
            event(15_000, "TaskStateEntered", Some("CheckAgent"), None),
            event(
                16_000,
                "WaitStateEntered",
                Some("WaitForAgent"),
                Some(launched(0)),
            ),
            event(20_000, "TaskStateEntered", Some("RunBuild"), None),
            event(20_500, "TaskSubmitted", None, None),
            event(80_500, "TaskSucceeded", None, None),
            event(80_500, "TaskStateExited", Some("RunBuild"), None),
            event(80_600, "TaskStateEntered", Some("Release"), None),
            event(
                83_000,
                "ExecutionSucceeded",
                None,
                Some(serde_json::json!({"Build": {"UploadSeconds": 3.5}})),
            ),
        ]
    }

    #[test]
    fn a_successful_build_has_every_duration() {
        let timeline = BuildTimeline::from_history(&succeeded(), Some(9_000));
        let d = timeline.durations();
        assert_eq!(d.queue, Some(1.0));
        assert_eq!(d.acquisition, Some(4.0));
        assert_eq!(d.agent_wait, Some(6.0), "from the first agent wait");
        assert_eq!(d.build, Some(56.5), "the command's 60 s less the upload");
        assert_eq!(d.upload, Some(3.5));
        assert_eq!(d.total, Some(74.0), "from the action's start");
        assert_eq!(timeline.result(), "Succeeded");
        assert_eq!(timeline.market(), Market::OnDemand);
        assert_eq!(timeline.instance_id.as_deref(), Some("i-0abc"));
    }

    #[test]
    fn a_running_pool_instance_is_acquired_at_its_first_agent_check_and_labelled_with_its_pool() {
        let pooled = serde_json::json!({
            "Launched": {"InstanceId": "i-0pool", "InstanceType": "t3.large", "Pool": "linux-warm",
                         "Mode": "running", "Reuse": "never"},
            "Run": {"Markets": {"Names": ["on-demand", "spot"]}, "Acquire": {"MarketIndex": 1}}
        });
        let mut history = succeeded();
        history.remove(3); // no agent wait: the agent of a running pool instance is online
        history[3] = event(15_000, "TaskStateEntered", Some("CheckAgent"), Some(pooled));
        history.remove(4);
        let timeline = BuildTimeline::from_history(&history, None);
        assert_eq!(timeline.pool(), "linux-warm");
        assert_eq!(timeline.instance_id.as_deref(), Some("i-0pool"));
        assert_eq!(timeline.durations().acquisition, Some(5.0));
        assert_eq!(
            timeline.market(),
            Market::OnDemand,
            "pool instances are on demand"
        );
        assert_eq!(
            BuildTimeline::from_history(&succeeded(), None).pool(),
            POOL_COLD
        );
    }

    #[test]
    fn without_the_actions_start_the_total_counts_from_the_execution() {
        let d = BuildTimeline::from_history(&succeeded(), None).durations();
        assert_eq!(d.queue, None);
        assert_eq!(d.total, Some(73.0));
    }

    #[test]
    fn a_spot_launch_is_labelled_spot() {
        let mut history = succeeded();
        history[3].data = Some(launched(1).to_string());
        assert_eq!(
            BuildTimeline::from_history(&history, None).market(),
            Market::Spot
        );
    }

    #[test]
    fn a_failed_build_ends_its_command_at_the_catch_and_names_the_stage() {
        let mut history = succeeded()[..8].to_vec();
        history.push(event(50_000, "PassStateEntered", Some("BuildFailed"), None));
        history.push(HistoryEvent {
            error: Some("BuildFailed".into()),
            ..event(53_000, "ExecutionFailed", None, None)
        });
        let timeline = BuildTimeline::from_history(&history, None);
        let d = timeline.durations();
        assert_eq!(d.build, Some(29.5));
        assert_eq!(d.upload, None);
        assert_eq!(timeline.result(), "BuildFailed");
    }

    #[test]
    fn an_unknown_failure_name_is_counted_as_failed() {
        let history = vec![
            event(1_000, "ExecutionStarted", None, None),
            HistoryEvent {
                error: Some("States.Runtime".into()),
                ..event(2_000, "ExecutionFailed", None, None)
            },
        ];
        let timeline = BuildTimeline::from_history(&history, None);
        assert_eq!(timeline.result(), "Failed");
        assert_eq!(timeline.market(), Market::None);
        assert_eq!(timeline.durations().acquisition, None);
    }

    #[test]
    fn a_stopped_build_is_aborted_whatever_its_error() {
        let mut history = succeeded()[..8].to_vec();
        history.push(HistoryEvent {
            error: Some("Cancelled".into()),
            ..event(30_000, "ExecutionAborted", None, None)
        });
        let timeline = BuildTimeline::from_history(&history, None);
        assert_eq!(timeline.result(), "Aborted");
        assert_eq!(timeline.uploaded_ms, None, "the command never reported");
        assert_eq!(timeline.durations().total, Some(20.0));
    }

    #[test]
    fn the_queue_starts_at_the_action_execution_of_this_build() {
        let history = vec![event(
            1_000,
            "ExecutionStarted",
            None,
            Some(serde_json::json!({"Pipeline": {"Name": "app", "ExecutionId": "pe-1"}})),
        )];
        assert_eq!(
            pipeline_execution(&history),
            Some(("app".into(), "pe-1".into()))
        );
        let attempt = |arn: &str, at: u64| ActionExecution {
            pipeline_execution_id: "pe-1".into(),
            stage: "Build".into(),
            action: "Compile".into(),
            status: crate::model::ActionStatus::InProgress,
            external_execution_id: Some(arn.into()),
            started_at_ms: Some(at),
        };
        let actions = [attempt("arn:first", 100), attempt("arn:retry", 900)];
        assert_eq!(action_started_ms(&actions, "arn:retry"), Some(900));
        assert_eq!(action_started_ms(&actions, "arn:other"), None);
    }

    #[test]
    fn a_running_build_has_no_end() {
        let timeline = BuildTimeline::from_history(&succeeded()[..8], None);
        assert_eq!(timeline.result(), "Running");
        assert_eq!(timeline.durations().build, None);
        assert_eq!(timeline.command_running_ms, Some(20_500));
    }
}
