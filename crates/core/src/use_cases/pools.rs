//! Pool maintenance, a part of the keeper's run: keeps every declared pool at its size, recycles
//! what is too old, worn or broken, and what a build or a preparation left behind.
//!
//! The registry says who holds a pool instance; whether that holder still runs is read from Step
//! Functions (never decided by age alone), and a lookup that fails decides nothing: the member is
//! looked at again on the next run. Every change of a member is a conditional write, so a build
//! claiming an instance while the keeper looks at it wins or loses cleanly.

use super::deadline::Deadline;
use crate::model::pool::{MemberState, PoolMember, PoolMode, PoolSpec, Reuse};
use crate::model::{BuildInstance, ExecutionStatus, InstanceState, ServiceError};
use crate::ports::{Fleet, PoolRegistry, StepFunctions};
use crate::settings::KeeperSettings;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tracing::{info, warn};

/// Most preparations one run starts per pool: a large deficit fills over a few runs, so a pool
/// declared with a large size does not hit EC2's launch throttling all at once.
pub const MAX_PREPARATIONS_PER_RUN: usize = 10;

/// What one run found and did for one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    pub pool: String,
    /// Members ready for a build after this run's recycling.
    pub ready: usize,
    /// Members serving a build.
    pub claimed: usize,
    /// Instances being prepared (running preparations).
    pub preparing: usize,
    /// Preparations started by this run (execution names).
    pub started: Vec<String>,
    /// Instances this run took out of the pool and terminated, with the reason.
    pub recycled: Vec<(String, &'static str)>,
    /// Lookups or changes that failed; looked at again on the next run.
    pub failures: Vec<String>,
}

/// Why a member leaves the pool.
mod reason {
    pub const EXECUTION_ENDED: &str = "its build execution is no longer running";
    pub const PREPARATION_ENDED: &str = "its preparation ended without making it ready";
    pub const TOO_OLD: &str = "older than the pool's MaxAgeHours";
    pub const WORN: &str = "served the pool's MaxBuilds";
    pub const BROKEN: &str = "its instance is gone or not in the pool's mode";
    pub const SURPLUS: &str = "the pool has more ready instances than its size";
    pub const LEFT_RECYCLING: &str = "an earlier run took it for recycling";
}

/// The keeper's pool part over the registry, the build and preparation workflows and EC2.
pub struct PoolKeeper<R, S, F> {
    registry: R,
    builds: S,
    preparations: S,
    fleet: F,
    settings: KeeperSettings,
}

impl<R: PoolRegistry, S: StepFunctions, F: Fleet> PoolKeeper<R, S, F> {
    /// `builds` is the build state machine, `preparations` the pool preparation workflow.
    pub fn new(
        registry: R,
        builds: S,
        preparations: S,
        fleet: F,
        settings: KeeperSettings,
    ) -> Self {
        Self {
            registry,
            builds,
            preparations,
            fleet,
            settings,
        }
    }

    /// One run over every declared pool at `now` (seconds since the epoch). A pool whose registry
    /// or preparations cannot be read is reported with the failure and left as it is.
    pub async fn run(&self, now: u64, time_left: Duration) -> Vec<PoolReport> {
        if self.settings.pools.is_empty() {
            return Vec::new();
        }
        let deadline = Deadline::new(time_left);
        let instances: Option<BTreeMap<String, BuildInstance>> = match self
            .fleet
            .build_instances()
            .await
        {
            Ok(list) => Some(list.into_iter().map(|i| (i.id.clone(), i)).collect()),
            Err(e) => {
                warn!(error = %e, "cannot list the instances; broken pool members are not looked for this run");
                None
            }
        };
        let running_preparations = self.preparations.running_executions().await;
        let mut reports = Vec::new();
        for (index, pool) in self.settings.pools.iter().enumerate() {
            let mut report = PoolReport {
                pool: pool.name.clone(),
                ..PoolReport::default()
            };
            if !deadline.allows_round_after(Duration::ZERO) {
                report
                    .failures
                    .push("no time left in this run; the pool is looked at next run".into());
                reports.push(report);
                continue;
            }
            let preparing: Result<HashSet<String>, ServiceError> = running_preparations
                .as_ref()
                .map(|list| {
                    list.iter()
                        .filter(|e| pool_of_preparation(&e.arn) == Some(pool.name.as_str()))
                        .map(|e| e.arn.clone())
                        .collect()
                })
                .map_err(Clone::clone);
            self.keep(pool, index, now, instances.as_ref(), preparing, &mut report)
                .await;
            info!(
                pool = %report.pool,
                ready = report.ready,
                claimed = report.claimed,
                preparing = report.preparing,
                started = report.started.len(),
                recycled = report.recycled.len(),
                failures = report.failures.len(),
                "pool kept"
            );
            reports.push(report);
        }
        reports
    }

    async fn keep(
        &self,
        pool: &PoolSpec,
        index: usize,
        now: u64,
        instances: Option<&BTreeMap<String, BuildInstance>>,
        preparing: Result<HashSet<String>, ServiceError>,
        report: &mut PoolReport,
    ) {
        let preparing = match preparing {
            Ok(set) => set,
            Err(e) => {
                report
                    .failures
                    .push(format!("ListExecutions of the preparations: {e}"));
                return;
            }
        };
        let members = match self.registry.members(&pool.name).await {
            Ok(members) => members,
            Err(e) => {
                report.failures.push(format!("reading the registry: {e}"));
                return;
            }
        };
        let mut ready: Vec<&PoolMember> = Vec::new();
        for member in &members {
            let verdict = match member.state {
                MemberState::Recycling => Some(reason::LEFT_RECYCLING),
                MemberState::Claimed => {
                    report.claimed += 1;
                    self.holder_ended(&self.builds, member.claimed_by.as_deref(), report)
                        .await
                        .then_some(reason::EXECUTION_ENDED)
                }
                MemberState::Preparing => {
                    let holder = member.prepared_by.as_deref();
                    let running = holder.is_some_and(|arn| preparing.contains(arn));
                    if running {
                        None
                    } else {
                        self.holder_ended(&self.preparations, holder, report)
                            .await
                            .then_some(reason::PREPARATION_ENDED)
                    }
                }
                MemberState::Ready => {
                    let verdict = ready_verdict(pool, member, now, instances);
                    if verdict.is_none() {
                        ready.push(member);
                    }
                    verdict
                }
            };
            if let Some(why) = verdict {
                if member.state == MemberState::Claimed {
                    report.claimed -= 1;
                }
                self.recycle(member, why, report).await;
            }
        }
        // Oldest first out when there are too many, so the pool renews itself.
        ready.sort_by_key(|m| m.created_at);
        let held = match pool.reuse {
            Reuse::Never => 0,
            Reuse::Always => report.claimed,
        };
        let have = ready.len() + preparing.len() + held;
        let size = pool.size as usize;
        if have > size {
            let surplus = (have - size).min(ready.len());
            for member in ready.drain(..surplus) {
                self.recycle(member, reason::SURPLUS, report).await;
            }
        } else {
            let missing = (size - have).min(MAX_PREPARATIONS_PER_RUN);
            for n in 0..missing {
                self.prepare(pool, index + n, now, n, report).await;
            }
        }
        report.ready = ready.len();
        report.preparing = preparing.len() + report.started.len();
    }

    /// Whether the execution holding a member has ended; `false` when that cannot be told.
    async fn holder_ended(&self, steps: &S, holder: Option<&str>, report: &mut PoolReport) -> bool {
        let Some(arn) = holder else {
            return true;
        };
        match steps.describe_execution(arn).await {
            Ok(execution) => execution.status != ExecutionStatus::Running,
            Err(ServiceError::ExecutionNotFound(_)) => true,
            Err(e) => {
                report
                    .failures
                    .push(format!("DescribeExecution {arn}: {e}"));
                false
            }
        }
    }

    /// Takes the member (conditional write), terminates its instance and forgets it. A member
    /// that changed meanwhile is left alone; a failed termination leaves it `recycling` for the
    /// next run.
    async fn recycle(&self, member: &PoolMember, why: &'static str, report: &mut PoolReport) {
        if member.state != MemberState::Recycling {
            match self.registry.take_for_recycling(member).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    report
                        .failures
                        .push(format!("taking {} for recycling: {e}", member.instance_id));
                    return;
                }
            }
        }
        if let Err(e) = self
            .fleet
            .terminate(std::slice::from_ref(&member.instance_id))
            .await
        {
            report
                .failures
                .push(format!("TerminateInstances {}: {e}", member.instance_id));
            return;
        }
        if let Err(e) = self
            .registry
            .forget(&member.pool, &member.instance_id)
            .await
        {
            report
                .failures
                .push(format!("forgetting {}: {e}", member.instance_id));
            return;
        }
        info!(pool = %member.pool, instance = %member.instance_id, reason = why, "pool instance recycled");
        report.recycled.push((member.instance_id.clone(), why));
    }

    /// Starts one preparation; the subnet turns with `slot`, so a pool spreads over its subnets.
    async fn prepare(
        &self,
        pool: &PoolSpec,
        slot: usize,
        now: u64,
        n: usize,
        report: &mut PoolReport,
    ) {
        let subnets = if pool.subnet_ids.is_empty() {
            &self.settings.subnet_ids
        } else {
            &pool.subnet_ids
        };
        let Some(subnet) = subnets.get((now as usize + slot) % subnets.len().max(1)) else {
            report.failures.push("no subnet to launch in".into());
            return;
        };
        let name = format!("{}{PREPARATION_NAME_SEPARATOR}{now}-{n}", pool.name);
        let input = serde_json::json!({
            "Pool": pool.name,
            "ImageId": pool.image_id,
            "InstanceType": pool.instance_types[0],
            "SubnetId": subnet,
            "Mode": pool.mode.as_str(),
            "Reuse": pool.reuse.as_str(),
            "WarmUpDocument": pool.warm_up_document,
            "CreatedAt": now,
        });
        match self
            .preparations
            .start_execution(&name, &input.to_string())
            .await
        {
            Ok(_) => report.started.push(name),
            Err(e) => report.failures.push(format!("StartExecution {name}: {e}")),
        }
    }
}

/// Between the pool's name and the rest of a preparation's execution name (pool names have no
/// `_`), so the name tells the pool.
pub const PREPARATION_NAME_SEPARATOR: char = '_';

/// The pool a preparation execution (by ARN) works for.
pub fn pool_of_preparation(arn: &str) -> Option<&str> {
    let name = arn.rsplit(':').next()?;
    name.split_once(PREPARATION_NAME_SEPARATOR)
        .map(|(pool, _)| pool)
}

/// Why a ready member must go, if it must: too old, worn, or its instance broken.
fn ready_verdict(
    pool: &PoolSpec,
    member: &PoolMember,
    now: u64,
    instances: Option<&BTreeMap<String, BuildInstance>>,
) -> Option<&'static str> {
    if now.saturating_sub(member.created_at) > u64::from(pool.max_age_hours) * 3600 {
        return Some(reason::TOO_OLD);
    }
    if member.builds >= pool.max_builds {
        return Some(reason::WORN);
    }
    let instances = instances?;
    let broken = match instances.get(&member.instance_id).map(|i| &i.state) {
        None => true,
        Some(state) => {
            !state.is_live() || (pool.mode == PoolMode::Running && *state == InstanceState::Stopped)
        }
    };
    broken.then_some(reason::BROKEN)
}
