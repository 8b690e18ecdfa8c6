//! The action configuration, validated: [`BuildSpec`].

use crate::model::pool::{is_pool_name, PoolSpec};
use crate::model::shape::{is_instance_type, shorten, validate_image_id};
use crate::model::ConfigError;
use std::collections::BTreeMap;

/// Longest `Command` accepted. SSM Run Command accepts documents and parameters far larger, but a
/// command this long belongs in a script inside the source artifact.
pub const MAX_COMMAND_LEN: usize = 8_000;
/// Instance types tried in order at most.
pub const MAX_INSTANCE_TYPES: usize = 5;
/// SSM Run Command's own limit on `executionTimeout` is 48 h, but a CodePipeline custom action
/// job times out after 24 h and SendCommand's `timeoutSeconds` plus delivery must fit; 8 h is the
/// longest build the action promises.
pub const MAX_TIMEOUT_MINUTES: u32 = 480;
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 60;
const MAX_PATH_LEN: usize = 255;
pub use crate::model::shape::ALLOWED_PARAMETER_PREFIXES;

/// What the instance does with the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    /// Run `Command`.
    Command,
    /// `docker build` the source and tag (and push to ECR) `BuildTarget`.
    Docker,
    /// `conda build` the recipe folder `BuildTarget`.
    Conda,
}

impl BuildKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Docker => "docker",
            Self::Conda => "conda",
        }
    }
}

/// How the instance is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    OnDemand,
    Spot,
    /// Spot first; on-demand when spot has no capacity.
    SpotThenOnDemand,
}

impl Capacity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnDemand => "on-demand",
            Self::Spot => "spot",
            Self::SpotThenOnDemand => "spot-then-on-demand",
        }
    }
}

/// A validated action configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// An AMI id or `resolve:ssm:<parameter>`.
    pub image_id: String,
    /// Tried in order on capacity errors.
    pub instance_types: Vec<String>,
    pub kind: BuildKind,
    /// Commands, one per line; empty when not given.
    pub command: String,
    /// docker: image reference; conda: recipe folder; empty for `command`.
    pub target: String,
    /// Relative to the unpacked source; empty means the source root.
    pub working_directory: String,
    /// One entry per output artifact, each a `;`-separated list of paths.
    pub output_paths: Vec<String>,
    pub timeout_minutes: u32,
    pub capacity: Capacity,
    /// The warm pool to take the instance from (`Pool`); a fresh launch when `None` or when the
    /// pool has no ready instance.
    pub pool: Option<String>,
}

impl BuildSpec {
    /// Validates the configuration of a job with `output_artifact_count` output artifacts.
    /// Properties that are absent, empty or only blanks count as not set.
    pub fn from_configuration(
        config: &BTreeMap<String, String>,
        output_artifact_count: usize,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| config.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let image_id = get("ImageId").ok_or_else(|| {
            ConfigError::new(
                "ImageId",
                "is required",
                "set it to an AMI id (ami-0123456789abcdef0) or resolve:ssm:<parameter name>",
            )
        })?;
        validate_image_id(image_id)?;

        let instance_types = parse_instance_types(get("InstanceType"))?;

        let kind = match get("BuildKind") {
            None | Some("command") => BuildKind::Command,
            Some("docker") => BuildKind::Docker,
            Some("conda") => BuildKind::Conda,
            Some(other) => {
                return Err(ConfigError::new(
                    "BuildKind",
                    format!("has the unknown value {:?}", shorten(other)),
                    "use command, docker or conda (lower case), or leave it empty for command",
                ))
            }
        };

        let command = config
            .get("Command")
            .map(|c| c.trim_matches(|c: char| c.is_whitespace()))
            .unwrap_or("");
        if command.len() > MAX_COMMAND_LEN {
            return Err(ConfigError::new(
                "Command",
                format!(
                    "is {} characters long, more than {MAX_COMMAND_LEN}",
                    command.len()
                ),
                "move the commands into a script in the source artifact and call it",
            ));
        }
        if command.contains('\0') {
            return Err(ConfigError::new(
                "Command",
                "contains a NUL character",
                "remove it",
            ));
        }
        if kind == BuildKind::Command && command.is_empty() {
            return Err(ConfigError::new(
                "Command",
                "is required when BuildKind is command",
                "give the commands to run, one per line, or set BuildKind to docker or conda",
            ));
        }

        let target = get("BuildTarget").unwrap_or("");
        match kind {
            BuildKind::Command => {
                if !target.is_empty() {
                    return Err(ConfigError::new(
                        "BuildTarget",
                        "is only used when BuildKind is docker or conda",
                        "leave it empty, or set BuildKind",
                    ));
                }
            }
            BuildKind::Docker => validate_image_reference(target)?,
            BuildKind::Conda => {
                if target.is_empty() {
                    return Err(ConfigError::new(
                        "BuildTarget",
                        "is required when BuildKind is conda",
                        "give the recipe folder (the one holding meta.yaml), relative to the source root",
                    ));
                }
                validate_relative_path("BuildTarget", target)?;
            }
        }

        let working_directory = get("WorkingDirectory").unwrap_or("").replace('\\', "/");
        if !working_directory.is_empty() {
            validate_relative_path("WorkingDirectory", &working_directory)?;
        }

        let output_paths =
            parse_output_paths(get("OutputArtifactPath"), kind, output_artifact_count)?;

        let timeout_minutes = match get("TimeoutMinutes") {
            None => DEFAULT_TIMEOUT_MINUTES,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_TIMEOUT_MINUTES).contains(&n) => n,
                _ => {
                    return Err(ConfigError::new(
                        "TimeoutMinutes",
                        format!("is {:?}, not a whole number from 1 to {MAX_TIMEOUT_MINUTES}", shorten(v)),
                        format!("give the build's time limit in minutes, at most {MAX_TIMEOUT_MINUTES}, or leave it empty for {DEFAULT_TIMEOUT_MINUTES}"),
                    ))
                }
            },
        };

        let capacity =
            match get("Capacity") {
                None | Some("on-demand") => Capacity::OnDemand,
                Some("spot") => Capacity::Spot,
                Some("spot-then-on-demand") => Capacity::SpotThenOnDemand,
                Some(other) => return Err(ConfigError::new(
                    "Capacity",
                    format!("has the unknown value {:?}", shorten(other)),
                    "use on-demand, spot or spot-then-on-demand, or leave it empty for on-demand",
                )),
            };

        let pool = match get("Pool") {
            None => None,
            Some(name) if is_pool_name(name) => Some(name.to_string()),
            Some(other) => {
                return Err(ConfigError::new(
                    "Pool",
                    format!("is {:?}, not a pool name", shorten(other)),
                    "give the name of a pool declared in the stack parameter Pools (letters, digits and -), or leave it empty for a fresh instance",
                ))
            }
        };

        Ok(Self {
            image_id: image_id.to_string(),
            instance_types,
            kind,
            command: command.to_string(),
            target: target.to_string(),
            working_directory,
            output_paths,
            timeout_minutes,
            capacity,
            pool,
        })
    }

    /// Checks `Pool` against the stack's declared pools: the pool must exist and use the
    /// action's `ImageId`, so a build runs on the same image whether it gets a pool instance or,
    /// when the pool has none ready, a fresh one.
    pub fn check_pool(&self, pools: &[PoolSpec]) -> Result<(), ConfigError> {
        let Some(name) = self.pool.as_deref() else {
            return Ok(());
        };
        let declared: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        let Some(pool) = pools.iter().find(|p| p.name == name) else {
            let fix = if declared.is_empty() {
                "declare the pool in the stack parameter Pools, or leave Pool empty for a fresh instance".to_string()
            } else {
                format!(
                    "use one of the pools the stack declares ({}), or leave Pool empty for a fresh instance",
                    declared.join(", ")
                )
            };
            return Err(ConfigError::new(
                "Pool",
                format!("names the pool {name:?}, which the stack does not declare"),
                fix,
            ));
        };
        if pool.image_id != self.image_id {
            return Err(ConfigError::new(
                "ImageId",
                format!(
                    "is {:?} but the pool {name:?} holds instances of {:?}",
                    shorten(&self.image_id),
                    shorten(&pool.image_id)
                ),
                format!("set ImageId to {} (the image the build also gets when the pool has no ready instance), or use another pool", pool.image_id),
            ));
        }
        Ok(())
    }
}

fn parse_instance_types(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let fix = "give an instance type such as m5.large, or up to 5 separated by commas (m5.large,m5a.large) to try in order";
    let value = value.ok_or_else(|| ConfigError::new("InstanceType", "is required", fix))?;
    let mut types: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim) {
        if !is_instance_type(item) {
            return Err(ConfigError::new(
                "InstanceType",
                format!(
                    "contains {:?}, which is not an instance type",
                    shorten(item)
                ),
                fix,
            ));
        }
        if types.iter().any(|t| t == item) {
            return Err(ConfigError::new(
                "InstanceType",
                format!("lists {item} twice"),
                "list each instance type once",
            ));
        }
        types.push(item.to_string());
    }
    if types.len() > MAX_INSTANCE_TYPES {
        return Err(ConfigError::new(
            "InstanceType",
            format!(
                "lists {} instance types, more than {MAX_INSTANCE_TYPES}",
                types.len()
            ),
            fix,
        ));
    }
    Ok(types)
}

fn validate_relative_path(property: &'static str, value: &str) -> Result<(), ConfigError> {
    let fix =
        "give a path relative to the source root using letters, digits, _ . - and /, without ..";
    if value.len() > MAX_PATH_LEN {
        return Err(ConfigError::new(
            property,
            format!("is longer than {MAX_PATH_LEN} characters"),
            fix,
        ));
    }
    if value.starts_with('/') || value.contains(':') {
        return Err(ConfigError::new(
            property,
            format!("is {:?}, an absolute path", shorten(value)),
            fix,
        ));
    }
    if value.split('/').any(|part| part == "..") {
        return Err(ConfigError::new(
            property,
            format!("is {:?}, which leaves the source folder", shorten(value)),
            fix,
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
    {
        return Err(ConfigError::new(
            property,
            format!(
                "is {:?}, which has characters other than letters, digits, _ . - and /",
                shorten(value)
            ),
            fix,
        ));
    }
    Ok(())
}

/// `[registry/]repository[:tag][@digest]`, lower-case repository, as docker accepts.
fn validate_image_reference(value: &str) -> Result<(), ConfigError> {
    let fix = "give the image to build, such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.2 (ECR repositories are pushed) or app:latest";
    if value.is_empty() {
        return Err(ConfigError::new(
            "BuildTarget",
            "is required when BuildKind is docker",
            fix,
        ));
    }
    let ok = value.len() <= 255
        && !value.starts_with(['-', '.', '/', ':'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && !value.contains("//");
    let repository = value.split(['@']).next().unwrap_or(value);
    let repository = match repository.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => repository,
    };
    if !ok || repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ConfigError::new(
            "BuildTarget",
            format!("is {:?}, not a docker image reference", shorten(value)),
            fix,
        ));
    }
    Ok(())
}

fn parse_output_paths(
    value: Option<&str>,
    kind: BuildKind,
    outputs: usize,
) -> Result<Vec<String>, ConfigError> {
    let fix = "give the files or folders to put in each output artifact, paths separated by ; and one group per output artifact separated by ,";
    let Some(value) = value else {
        if kind == BuildKind::Command && outputs > 0 {
            return Err(ConfigError::new(
                "OutputArtifactPath",
                format!("is required because the action has {outputs} output artifact(s)"),
                fix,
            ));
        }
        return Ok(Vec::new());
    };
    if outputs == 0 {
        return Err(ConfigError::new(
            "OutputArtifactPath",
            "is set but the action has no output artifact",
            "add an output artifact to the action, or leave OutputArtifactPath empty",
        ));
    }
    let groups: Vec<String> = value
        .split(',')
        .map(|g| g.trim().replace('\\', "/"))
        .collect();
    if groups.len() != outputs {
        return Err(ConfigError::new(
            "OutputArtifactPath",
            format!(
                "has {} comma-separated group(s) but the action has {outputs} output artifacts",
                groups.len()
            ),
            fix,
        ));
    }
    for group in &groups {
        for path in group.split(';').map(str::trim) {
            if path.is_empty() {
                return Err(ConfigError::new(
                    "OutputArtifactPath",
                    "has an empty path",
                    fix,
                ));
            }
            let plain = path.replace(['*', '?'], "x");
            validate_relative_path("OutputArtifactPath", &plain)?;
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = [
            ("ImageId", "ami-0123456789abcdef0"),
            ("InstanceType", "m5.large"),
            ("Command", "make"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        map
    }

    fn error(pairs: &[(&str, &str)], outputs: usize) -> ConfigError {
        BuildSpec::from_configuration(&config(pairs), outputs).unwrap_err()
    }

    #[test]
    fn minimal_configuration_gets_defaults() {
        let spec = BuildSpec::from_configuration(&config(&[]), 0).unwrap();
        assert_eq!(spec.kind, BuildKind::Command);
        assert_eq!(spec.timeout_minutes, 60);
        assert_eq!(spec.capacity, Capacity::OnDemand);
        assert_eq!(spec.instance_types, vec!["m5.large"]);
        assert!(spec.output_paths.is_empty());
    }

    fn pools() -> Vec<PoolSpec> {
        crate::model::pool::parse_pools(
            r#"[{"Name": "win", "ImageId": "ami-0123456789abcdef0", "InstanceTypes": ["m5.large"], "Size": 1}]"#,
        )
        .unwrap()
    }

    #[test]
    fn pool_is_optional_and_checked_against_the_declared_pools() {
        let spec = BuildSpec::from_configuration(&config(&[]), 0).unwrap();
        assert_eq!(spec.pool, None);
        assert!(spec.check_pool(&[]).is_ok());
        let spec = BuildSpec::from_configuration(&config(&[("Pool", " win ")]), 0).unwrap();
        assert_eq!(spec.pool.as_deref(), Some("win"));
        assert!(spec.check_pool(&pools()).is_ok());
        let e = spec.check_pool(&[]).unwrap_err();
        assert_eq!(e.property, "Pool");
        assert!(e.fix.contains("Pools"), "{e}");
        let spec = BuildSpec::from_configuration(&config(&[("Pool", "linux")]), 0).unwrap();
        let e = spec.check_pool(&pools()).unwrap_err();
        assert_eq!(e.property, "Pool");
        assert!(e.fix.contains("(win)"), "{e}");
    }

    #[test]
    fn pool_must_use_the_actions_image() {
        let spec = BuildSpec::from_configuration(
            &config(&[("Pool", "win"), ("ImageId", "ami-0123456789abcdef1")]),
            0,
        )
        .unwrap();
        let e = spec.check_pool(&pools()).unwrap_err();
        assert_eq!(e.property, "ImageId");
        assert!(e.fix.contains("ami-0123456789abcdef0"), "{e}");
    }

    #[test]
    fn pool_name_shape_is_checked() {
        assert_eq!(error(&[("Pool", "a b")], 0).property, "Pool");
    }

    #[test]
    fn image_id_is_required() {
        let e = error(&[("ImageId", "  ")], 0);
        assert_eq!((e.property, e.problem.as_str()), ("ImageId", "is required"));
    }

    #[test]
    fn image_id_must_be_ami_or_ssm_parameter() {
        for bad in [
            "ami-123",
            "ami-0123456789ABCDEF0",
            "image-0123456789abcdef0",
            "resolve:ssm:",
            "resolve:ssm:/ec2-build/a b",
        ] {
            assert_eq!(error(&[("ImageId", bad)], 0).property, "ImageId", "{bad}");
        }
        for good in [
            "ami-12345678",
            "resolve:ssm:/ec2-build/windows-ami",
            "resolve:ssm:/aws/service/ami:3",
        ] {
            assert!(
                BuildSpec::from_configuration(&config(&[("ImageId", good)]), 0).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn image_parameter_must_be_one_the_build_may_read() {
        let e = error(&[("ImageId", "resolve:ssm:/prod/database-password")], 0);
        assert_eq!(e.property, "ImageId");
        assert!(e.fix.contains("/ec2-build/"), "{e}");
    }

    #[test]
    fn instance_type_is_required() {
        assert_eq!(error(&[("InstanceType", "")], 0).property, "InstanceType");
    }

    #[test]
    fn instance_type_pattern_is_checked() {
        for bad in [
            "large",
            "M5.large",
            "m5.",
            "m5.large;rm",
            "m5.large,,c5.large",
        ] {
            assert_eq!(
                error(&[("InstanceType", bad)], 0).property,
                "InstanceType",
                "{bad}"
            );
        }
    }

    #[test]
    fn instance_type_list_keeps_order_and_is_bounded() {
        let spec = BuildSpec::from_configuration(
            &config(&[("InstanceType", "m5.large, m5a.large ,c5.xlarge")]),
            0,
        )
        .unwrap();
        assert_eq!(
            spec.instance_types,
            vec!["m5.large", "m5a.large", "c5.xlarge"]
        );
        let e = error(
            &[(
                "InstanceType",
                "a1.large,a2.large,a3.large,a4.large,a5.large,a6.large",
            )],
            0,
        );
        assert!(e.problem.contains("more than 5"), "{e}");
        let e = error(&[("InstanceType", "m5.large,m5.large")], 0);
        assert!(e.problem.contains("twice"), "{e}");
    }

    #[test]
    fn unknown_build_kind_is_rejected() {
        let e = error(&[("BuildKind", "msbuild")], 0);
        assert_eq!(e.property, "BuildKind");
        assert!(e.fix.contains("command, docker or conda"));
    }

    #[test]
    fn command_is_required_for_command_builds() {
        let e = error(&[("Command", "\n  \n")], 0);
        assert_eq!(
            (e.property, e.problem.as_str()),
            ("Command", "is required when BuildKind is command")
        );
    }

    #[test]
    fn command_length_is_bounded() {
        let long = "x".repeat(MAX_COMMAND_LEN + 1);
        assert_eq!(error(&[("Command", &long)], 0).property, "Command");
    }

    #[test]
    fn docker_needs_a_valid_image_reference() {
        assert_eq!(error(&[("BuildKind", "docker")], 0).property, "BuildTarget");
        for bad in ["App:latest", "-app", "app latest", "repo//x"] {
            assert_eq!(
                error(&[("BuildKind", "docker"), ("BuildTarget", bad)], 0).property,
                "BuildTarget",
                "{bad}"
            );
        }
        let spec = BuildSpec::from_configuration(
            &config(&[
                ("BuildKind", "docker"),
                (
                    "BuildTarget",
                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.2",
                ),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(spec.kind, BuildKind::Docker);
    }

    #[test]
    fn conda_needs_a_relative_recipe_folder() {
        assert_eq!(error(&[("BuildKind", "conda")], 0).property, "BuildTarget");
        for bad in ["/recipe", "../recipe", "C:/recipe", "re cipe"] {
            assert_eq!(
                error(&[("BuildKind", "conda"), ("BuildTarget", bad)], 0).property,
                "BuildTarget",
                "{bad}"
            );
        }
    }

    #[test]
    fn build_target_is_refused_for_command_builds() {
        assert_eq!(error(&[("BuildTarget", "app")], 0).property, "BuildTarget");
    }

    #[test]
    fn working_directory_must_stay_inside_the_source() {
        for bad in ["../x", "/tmp", "a/../../b", "C:\\build"] {
            assert_eq!(
                error(&[("WorkingDirectory", bad)], 0).property,
                "WorkingDirectory",
                "{bad}"
            );
        }
        let spec =
            BuildSpec::from_configuration(&config(&[("WorkingDirectory", "src\\app")]), 0).unwrap();
        assert_eq!(spec.working_directory, "src/app");
    }

    #[test]
    fn output_artifact_path_matches_the_output_artifacts() {
        assert_eq!(error(&[], 1).property, "OutputArtifactPath");
        assert_eq!(
            error(&[("OutputArtifactPath", "dist")], 0).property,
            "OutputArtifactPath"
        );
        assert_eq!(
            error(&[("OutputArtifactPath", "dist,docs")], 3).property,
            "OutputArtifactPath"
        );
        assert_eq!(
            error(&[("OutputArtifactPath", "../dist")], 1).property,
            "OutputArtifactPath"
        );
        let spec = BuildSpec::from_configuration(
            &config(&[("OutputArtifactPath", "dist/*.whl;README.md, docs")]),
            2,
        )
        .unwrap();
        assert_eq!(spec.output_paths, vec!["dist/*.whl;README.md", "docs"]);
    }

    #[test]
    fn docker_and_conda_need_no_output_artifact_path() {
        let spec = BuildSpec::from_configuration(
            &config(&[("BuildKind", "conda"), ("BuildTarget", "recipe")]),
            1,
        )
        .unwrap();
        assert!(spec.output_paths.is_empty());
    }

    #[test]
    fn timeout_is_bounded() {
        for bad in ["0", "481", "1.5", "sixty"] {
            assert_eq!(
                error(&[("TimeoutMinutes", bad)], 0).property,
                "TimeoutMinutes",
                "{bad}"
            );
        }
        let spec = BuildSpec::from_configuration(&config(&[("TimeoutMinutes", "480")]), 0).unwrap();
        assert_eq!(spec.timeout_minutes, 480);
    }

    #[test]
    fn unknown_capacity_is_rejected() {
        assert_eq!(error(&[("Capacity", "reserved")], 0).property, "Capacity");
        let spec =
            BuildSpec::from_configuration(&config(&[("Capacity", "spot-then-on-demand")]), 0)
                .unwrap();
        assert_eq!(spec.capacity, Capacity::SpotThenOnDemand);
    }

    #[test]
    fn error_message_names_property_and_fix() {
        let e = error(&[("TimeoutMinutes", "999")], 0);
        let text = e.to_string();
        assert!(
            text.starts_with("Configuration property TimeoutMinutes is \"999\""),
            "{text}"
        );
        assert!(
            text.contains("Fix: give the build's time limit in minutes"),
            "{text}"
        );
    }
}
