//! Progress shown in CodePipeline while a build runs: the stage and percentage of every state of
//! `statemachine/build.asl.json`, by an explicit table. A test checks that the table names every
//! state of the definition and nothing else, so a renamed or added state cannot fall through.

use std::fmt;

/// The stages a build goes through, as failure messages and progress summaries name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Choosing the image and launching the instance.
    Acquire,
    /// Waiting for the instance's SSM Agent to come online.
    Agent,
    /// The SSM command runs: download, build, upload.
    Build,
    /// A spot interruption stopped the build: releasing that instance before building again on
    /// a new one.
    Restart,
    /// Terminating the instance and collecting the command's log location.
    Release,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Acquire => "acquire",
            Self::Agent => "agent",
            Self::Build => "build",
            Self::Restart => "restart after a spot interruption",
            Self::Release => "release",
        })
    }
}

/// Where a state puts the build: its stage, and the percentage shown in CodePipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateProgress {
    pub state: &'static str,
    pub stage: Stage,
    pub percent: i32,
}

const fn at(state: &'static str, stage: Stage, percent: i32) -> StateProgress {
    StateProgress {
        state,
        stage,
        percent,
    }
}

/// Every state of the build state machine, in the order of the definition.
pub const STATE_PROGRESS: &[StateProgress] = &[
    at("Prepare", Stage::Acquire, 5),
    at("ImageFromParameter?", Stage::Acquire, 5),
    at("ResolveImageParameter", Stage::Acquire, 5),
    at("DescribeImage", Stage::Acquire, 10),
    at("Launch", Stage::Acquire, 15),
    at("CapacityError?", Stage::Acquire, 15),
    at("LaunchThrottled", Stage::Acquire, 15),
    at("WaitAfterThrottle", Stage::Acquire, 15),
    at("NextSubnet", Stage::Acquire, 15),
    at("MoreSubnets?", Stage::Acquire, 15),
    at("NextInstanceType", Stage::Acquire, 15),
    at("MoreInstanceTypes?", Stage::Acquire, 15),
    at("FallBackToOnDemand", Stage::Acquire, 15),
    at("AcquireFailed", Stage::Acquire, 15),
    at("FindReadyInstance", Stage::Acquire, 10),
    at("PoolHasReady?", Stage::Acquire, 10),
    at("ClaimInstance", Stage::Acquire, 10),
    at("ClaimLost", Stage::Acquire, 10),
    at("ColdFallback", Stage::Acquire, 10),
    at("PoolInstanceStopped?", Stage::Acquire, 15),
    at("StartPoolInstance", Stage::Acquire, 15),
    at("PoolStartFailed", Stage::Release, 90),
    at("WaitForAgent", Stage::Agent, 25),
    at("CheckAgent", Stage::Agent, 25),
    at("AgentOffline", Stage::Agent, 25),
    at("AgentOnline?", Stage::Agent, 25),
    at("AgentBackoff", Stage::Agent, 25),
    at("AgentNextAttempt", Stage::Agent, 25),
    at("AgentTimeout", Stage::Agent, 30),
    at("AgentTooOld", Stage::Agent, 30),
    at("RunBuild", Stage::Build, 50),
    at("DownloadFailed", Stage::Release, 90),
    at("UploadFailed", Stage::Release, 90),
    at("BuildTimeout", Stage::Release, 90),
    at("BuildFailed", Stage::Release, 90),
    at("SpotInterrupted?", Stage::Restart, 15),
    at("PrepareRestart", Stage::Restart, 15),
    at("ReleaseInterrupted", Stage::Restart, 15),
    at("InterruptedReleaseFailed", Stage::Release, 95),
    at("SpotRestartsUsed", Stage::Release, 90),
    at("Release?", Stage::Release, 90),
    at("StopPoolInstance", Stage::Release, 90),
    at("ReturnToPool", Stage::Release, 90),
    at("ForgetPoolInstance", Stage::Release, 90),
    at("Release", Stage::Release, 90),
    at("EarlierFailure?", Stage::Release, 95),
    at("ReleaseFailedAfterSuccess", Stage::Release, 95),
    at("ReleaseFailedAfterFailure", Stage::Release, 95),
    at("FindCommand", Stage::Release, 95),
    at("Outcome?", Stage::Release, 95),
    at("CommandIdUnknown", Stage::Release, 95),
    at("AddCommandToFailure", Stage::Release, 95),
    at("Succeeded", Stage::Release, 99),
    at("Failed", Stage::Release, 99),
];

/// The progress of a state of the build state machine; `None` for a name it does not have.
pub fn of_state(state: &str) -> Option<&'static StateProgress> {
    STATE_PROGRESS.iter().find(|p| p.state == state)
}

/// The state a build enters once per restart after a spot interruption.
pub const RESTART_STATE: &str = "PrepareRestart";

/// Where a running build is, from the names of the states it entered (oldest first): the last
/// one, and how many times it was restarted after a spot interruption.
pub fn of_states_entered(states: &[String]) -> (Option<&str>, usize) {
    let restarts = states.iter().filter(|s| *s == RESTART_STATE).count();
    (states.last().map(String::as_str), restarts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const DEFINITION: &str = include_str!("../../../statemachine/build.asl.json");

    /// Every state name of a `States` object, nested ones (Parallel branches, Map processors)
    /// included.
    fn state_names(states: &serde_json::Value, names: &mut Vec<String>) {
        for (name, state) in states.as_object().expect("States is an object") {
            names.push(name.clone());
            let nested = state
                .get("Branches")
                .and_then(|b| b.as_array())
                .into_iter()
                .flatten()
                .chain(state.get("ItemProcessor"))
                .chain(state.get("Iterator"));
            for machine in nested {
                state_names(&machine["States"], names);
            }
        }
    }

    #[test]
    fn the_table_names_every_state_of_the_definition_once() {
        let definition: serde_json::Value =
            serde_json::from_str(DEFINITION).expect("the definition is JSON");
        let mut in_definition = Vec::new();
        state_names(&definition["States"], &mut in_definition);
        let in_table: Vec<String> = STATE_PROGRESS.iter().map(|p| p.state.to_string()).collect();
        let unique: BTreeSet<&String> = in_table.iter().collect();
        assert_eq!(
            unique.len(),
            in_table.len(),
            "a state is in the table twice"
        );
        let definition_set: BTreeSet<&String> = in_definition.iter().collect();
        let missing: Vec<_> = definition_set.difference(&unique).collect();
        let unknown: Vec<_> = unique.difference(&definition_set).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "states without progress: {missing:?}; table entries that are not states: {unknown:?}"
        );
    }

    #[test]
    fn percentages_are_within_a_running_build() {
        for p in STATE_PROGRESS {
            assert!((1..100).contains(&p.percent), "{p:?}");
        }
    }

    #[test]
    fn a_state_after_release_is_not_mistaken_for_the_build() {
        // The old rule matched "command" in the name: FindCommand showed 50 %, after RunBuild.
        let find = of_state("FindCommand").unwrap();
        assert_eq!(find.stage, Stage::Release);
        assert!(find.percent > of_state("RunBuild").unwrap().percent);
        assert_eq!(of_state("NoSuchState"), None);
    }

    #[test]
    fn restart_states_are_not_taken_for_the_build_or_release() {
        // The keeper stops a build whose instances are all down only in the agent and build
        // stages: between an interrupted instance's release and the next launch they are.
        for state in ["SpotInterrupted?", "PrepareRestart", "ReleaseInterrupted"] {
            assert_eq!(of_state(state).unwrap().stage, Stage::Restart, "{state}");
        }
        assert_eq!(
            Stage::Restart.to_string(),
            "restart after a spot interruption"
        );
    }
}
