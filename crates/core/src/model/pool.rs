//! Warm instance pools: their declarations (the stack parameter `Pools`) and the registry's
//! members (docs/contracts.md, "Pool registry").

use super::error::ConfigError;
use super::shape::{is_instance_type, shorten, validate_image_id};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Most pools one stack declares.
pub const MAX_POOLS: usize = 10;
/// Largest `Size` of one pool.
pub const MAX_POOL_SIZE: u32 = 50;
/// Default `MaxAgeHours`: an instance older than this is replaced.
pub const DEFAULT_MAX_AGE_HOURS: u32 = 24;
/// Default `MaxBuilds`: a `reuse: always` instance that served this many builds is replaced.
pub const DEFAULT_MAX_BUILDS: u32 = 20;

/// Warm-up documents are named with this prefix: the workflows may run only those.
pub const WARM_UP_DOCUMENT_PREFIX: &str = "ec2-build-";

/// How a ready pool instance waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// Stopped (EBS only is billed); the build starts it.
    Stopped,
    /// Running, agent online; the build uses it at once.
    Running,
}

impl PoolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Running => "running",
        }
    }
}

/// What happens to a pool instance after a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Terminated after one build: no build ever sees another's leftovers.
    Never,
    /// Returned to the pool after a successful build (stopped first in a `stopped` pool), keeping
    /// caches such as docker layers and conda packages.
    Always,
}

impl Reuse {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Always => "always",
        }
    }
}

/// One declared pool, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// `[A-Za-z0-9-]`, 1 to 32 characters; what an action's `Pool` names.
    pub name: String,
    /// An AMI id or `resolve:ssm:<parameter>`; an action naming the pool has the same `ImageId`.
    pub image_id: String,
    /// Tried in order when a launch finds no capacity.
    pub instance_types: Vec<String>,
    /// Subnets to launch in; empty means the stack's `SubnetIds`.
    pub subnet_ids: Vec<String>,
    /// Instances the keeper keeps ready (with `reuse: always`, ready or serving a build).
    pub size: u32,
    pub mode: PoolMode,
    pub reuse: Reuse,
    /// An instance older than this is replaced when it is next ready.
    pub max_age_hours: u32,
    /// A `reuse: always` instance that served this many builds is replaced.
    pub max_builds: u32,
    /// SSM Command document (named `ec2-build-*`) run once when an instance is prepared; empty
    /// for none.
    pub warm_up_document: String,
}

/// A pool declaration that cannot be used: which pool, which field, what is wrong, the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Pools parameter, pool {pool:?}, field {field} {problem}. Fix: {fix}")]
pub struct PoolsError {
    /// The pool's `Name` (or its position when it has none).
    pub pool: String,
    /// The field of the declaration.
    pub field: &'static str,
    pub problem: String,
    pub fix: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawPool {
    name: Option<String>,
    image_id: Option<String>,
    instance_types: Option<Vec<String>>,
    subnet_ids: Option<Vec<String>>,
    size: Option<u32>,
    mode: Option<String>,
    reuse: Option<String>,
    max_age_hours: Option<u32>,
    max_builds: Option<u32>,
    warm_up_document: Option<String>,
}

/// Parses the stack parameter `Pools`: a JSON list of declarations (docs/contracts.md). Blank
/// text means no pools.
pub fn parse_pools(text: &str) -> Result<Vec<PoolSpec>, PoolsError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<RawPool> = serde_json::from_str(text).map_err(|e| PoolsError {
        pool: String::new(),
        field: "(whole parameter)",
        problem: format!("is not a JSON list of pool declarations: {e}"),
        fix: "write a JSON list such as [{\"Name\": \"linux\", \"ImageId\": \"ami-0123456789abcdef0\", \"InstanceTypes\": [\"m5.large\"], \"Size\": 2, \"Mode\": \"stopped\"}] (docs/contracts.md, Pool declarations)".into(),
    })?;
    if raw.len() > MAX_POOLS {
        return Err(PoolsError {
            pool: String::new(),
            field: "(whole parameter)",
            problem: format!("declares {} pools, more than {MAX_POOLS}", raw.len()),
            fix: "merge pools that share an image and instance type".into(),
        });
    }
    let mut names = BTreeSet::new();
    let mut pools = Vec::with_capacity(raw.len());
    for (index, pool) in raw.into_iter().enumerate() {
        let spec = validate(index, pool)?;
        if !names.insert(spec.name.clone()) {
            return Err(PoolsError {
                pool: spec.name,
                field: "Name",
                problem: "is used by two pools".into(),
                fix: "give every pool its own name".into(),
            });
        }
        pools.push(spec);
    }
    Ok(pools)
}

/// True for a pool name: `[A-Za-z0-9-]`, 1 to 32 characters.
pub fn is_pool_name(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn validate(index: usize, raw: RawPool) -> Result<PoolSpec, PoolsError> {
    let label = raw
        .name
        .clone()
        .unwrap_or_else(|| format!("#{}", index + 1));
    let err = |field: &'static str, problem: String, fix: &str| PoolsError {
        pool: label.clone(),
        field,
        problem,
        fix: fix.to_string(),
    };
    let name = raw.name.clone().unwrap_or_default();
    if !is_pool_name(&name) {
        return Err(err(
            "Name",
            format!("is {:?}", shorten(&name)),
            "give 1 to 32 letters, digits or -",
        ));
    }
    let image_id = raw.image_id.unwrap_or_default();
    validate_image_id(&image_id).map_err(|e: ConfigError| err("ImageId", e.problem, &e.fix))?;
    let instance_types = raw.instance_types.unwrap_or_default();
    let types_fix = "list 1 to 5 instance types such as [\"m5.large\", \"m5a.large\"]";
    if instance_types.is_empty() || instance_types.len() > 5 {
        return Err(err(
            "InstanceTypes",
            format!("lists {} instance types", instance_types.len()),
            types_fix,
        ));
    }
    if let Some(bad) = instance_types.iter().find(|t| !is_instance_type(t)) {
        return Err(err(
            "InstanceTypes",
            format!("contains {:?}, which is not an instance type", shorten(bad)),
            types_fix,
        ));
    }
    let subnet_ids = raw.subnet_ids.unwrap_or_default();
    if let Some(bad) = subnet_ids.iter().find(|s| !is_subnet_id(s)) {
        return Err(err(
            "SubnetIds",
            format!("contains {:?}, which is not a subnet id", shorten(bad)),
            "list subnet ids such as subnet-0123456789abcdef0, or leave SubnetIds out for the stack's subnets",
        ));
    }
    let size = raw.size.unwrap_or(0);
    if size > MAX_POOL_SIZE {
        return Err(err(
            "Size",
            format!("is {size}, more than {MAX_POOL_SIZE}"),
            "give a size from 0 to 50",
        ));
    }
    let mode = match raw.mode.as_deref() {
        None | Some("stopped") => PoolMode::Stopped,
        Some("running") => PoolMode::Running,
        Some(other) => {
            return Err(err(
                "Mode",
                format!("has the unknown value {:?}", shorten(other)),
                "use stopped or running (lower case), or leave it out for stopped",
            ))
        }
    };
    let reuse = match raw.reuse.as_deref() {
        None | Some("never") => Reuse::Never,
        Some("always") => Reuse::Always,
        Some(other) => {
            return Err(err(
                "Reuse",
                format!("has the unknown value {:?}", shorten(other)),
                "use never or always (lower case), or leave it out for never",
            ))
        }
    };
    let max_age_hours = raw.max_age_hours.unwrap_or(DEFAULT_MAX_AGE_HOURS);
    if !(1..=720).contains(&max_age_hours) {
        return Err(err(
            "MaxAgeHours",
            format!("is {max_age_hours}"),
            "give 1 to 720 hours, or leave it out for 24",
        ));
    }
    let max_builds = raw.max_builds.unwrap_or(DEFAULT_MAX_BUILDS);
    if !(1..=1000).contains(&max_builds) {
        return Err(err(
            "MaxBuilds",
            format!("is {max_builds}"),
            "give 1 to 1000 builds, or leave it out for 20",
        ));
    }
    let warm_up_document = raw.warm_up_document.unwrap_or_default();
    let document_ok = warm_up_document.is_empty()
        || (warm_up_document.starts_with(WARM_UP_DOCUMENT_PREFIX)
            && warm_up_document.len() <= 128
            && warm_up_document
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
    if !document_ok {
        return Err(err(
            "WarmUpDocument",
            format!("is {:?}, not an SSM document name", shorten(&warm_up_document)),
            "give the name of an SSM Command document in this account and region that starts with ec2-build- (the only documents the stack may run; up to 128 letters, digits, _ . -), or leave it out",
        ));
    }
    Ok(PoolSpec {
        name,
        image_id,
        instance_types,
        subnet_ids,
        size,
        mode,
        reuse,
        max_age_hours,
        max_builds,
        warm_up_document,
    })
}

fn is_subnet_id(value: &str) -> bool {
    value.strip_prefix("subnet-").is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Where a pool instance is in its life (the registry's `State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Launched by the preparation workflow: first boot, agent, warm-up, stop.
    Preparing,
    /// Waiting for a build (stopped or running, per the pool's mode).
    Ready,
    /// Serving the build execution `ClaimedBy`.
    Claimed,
    /// Taken by the keeper to be terminated (too old, too many builds, surplus, broken).
    Recycling,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preparing => "preparing",
            Self::Ready => "ready",
            Self::Claimed => "claimed",
            Self::Recycling => "recycling",
        }
    }

    /// The state named `value`, if it is one.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Preparing, Self::Ready, Self::Claimed, Self::Recycling]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// One item of the pool registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    pub pool: String,
    pub instance_id: String,
    pub state: MemberState,
    /// Builds the instance served.
    pub builds: u32,
    /// When the instance was launched, seconds since the epoch.
    pub created_at: u64,
    /// The build execution that claimed it (state `claimed`).
    pub claimed_by: Option<String>,
    /// The preparation execution that launched it (state `preparing`).
    pub prepared_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"[{"Name": "linux", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "Size": 2}]"#;

    #[test]
    fn defaults_apply() {
        let pools = parse_pools(ONE).unwrap();
        let p = &pools[0];
        assert_eq!(
            (p.mode, p.reuse, p.size),
            (PoolMode::Stopped, Reuse::Never, 2)
        );
        assert_eq!((p.max_age_hours, p.max_builds), (24, 20));
        assert!(p.subnet_ids.is_empty() && p.warm_up_document.is_empty());
    }

    #[test]
    fn blank_means_no_pools() {
        assert_eq!(parse_pools("  ").unwrap(), Vec::new());
        assert_eq!(parse_pools("[]").unwrap(), Vec::new());
    }

    fn error(json: &str) -> PoolsError {
        parse_pools(json).unwrap_err()
    }

    #[test]
    fn errors_name_the_pool_and_the_field() {
        let e = error(
            r#"[{"Name": "w", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "Mode": "warm"}]"#,
        );
        assert_eq!((e.pool.as_str(), e.field), ("w", "Mode"));
        assert!(e.to_string().contains("stopped or running"), "{e}");
        let e = error(r#"[{"Name": "w", "ImageId": "ami-1", "InstanceTypes": ["m5.large"]}]"#);
        assert_eq!(e.field, "ImageId");
        let e =
            error(r#"[{"Name": "w", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": []}]"#);
        assert_eq!(e.field, "InstanceTypes");
        let e = error(r#"[{"ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"]}]"#);
        assert_eq!((e.pool.as_str(), e.field), ("#1", "Name"));
        let e = error(
            r#"[{"Name": "w", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "Reuse": "sometimes"}]"#,
        );
        assert_eq!(e.field, "Reuse");
        let e = error(
            r#"[{"Name": "w", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "Size": 51}]"#,
        );
        assert_eq!(e.field, "Size");
        let e = error(
            r#"[{"Name": "w", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "SubnetIds": ["sn-1"]}]"#,
        );
        assert_eq!(e.field, "SubnetIds");
        let e = error(
            r#"[{"Name": "w", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "WarmUpDocument": "a b"}]"#,
        );
        assert_eq!(e.field, "WarmUpDocument");
    }

    #[test]
    fn unknown_fields_and_bad_json_are_refused() {
        assert_eq!(
            error(r#"[{"Name": "w", "Image": "x"}]"#).field,
            "(whole parameter)"
        );
        assert_eq!(error("{").field, "(whole parameter)");
    }

    #[test]
    fn names_are_unique() {
        let two = format!("[{0}, {0}]", &ONE[1..ONE.len() - 1]);
        let e = error(&two);
        assert_eq!((e.pool.as_str(), e.field), ("linux", "Name"));
    }

    #[test]
    fn member_states_round_trip() {
        for s in ["preparing", "ready", "claimed", "recycling"] {
            assert_eq!(MemberState::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(MemberState::parse("gone"), None);
    }
}
