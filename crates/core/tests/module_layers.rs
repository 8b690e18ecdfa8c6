//! The crate's imports run one way: each module uses only modules of lower layers, so no two
//! modules import each other and the shared types in `model` depend on nothing else.

use std::collections::BTreeMap;
use std::path::Path;

/// Layers from the bottom. A module may import modules of lower layers only; the modules of
/// one layer do not import each other. `model` and `use_cases` (their `mod.rs`, which only
/// declares and re-exports) sit above their own submodules.
const LAYERS: &[&[&str]] = &[
    &["model::error"],
    &[
        "model::shape",
        "model::execution",
        "model::job",
        "model::fleet",
        "model::report",
        "model::outcome",
        "model::token",
    ],
    &["model::trigger", "model::pool"],
    &["model"],
    &["ports", "settings"],
    &["spec", "progress", "timeline"],
    &["input", "report", "events"],
    &["use_cases::deadline"],
    &["use_cases::job"],
    &[
        "use_cases::sweep",
        "use_cases::completion",
        "use_cases::keeper",
        "use_cases::pools",
    ],
    &["use_cases"],
    &["testing::fakes"],
    &["testing::fleet", "testing::pools"],
    &["testing"],
];

/// The layer of a module; `None` for a module this test does not know (a failure).
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The modules a file's code names through `crate::` or `super::` paths. Paths are cut to the
/// depth modules have here (`model::job`, `use_cases::sweep`, `ports`); `module` is the file's
/// own module, against which `super::` resolves.
fn imports(module: &str, code: &str) -> Vec<String> {
    let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
    let is_dir = |name: &str| {
        LAYERS
            .iter()
            .flat_map(|l| l.iter())
            .any(|m| m.starts_with(&format!("{name}::")))
    };
    let mut found = Vec::new();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent.to_string())] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            // `crate::` inside `$crate::` or a longer identifier is not an import of ours.
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut parts = path.split("::").filter(|p| !p.is_empty());
            let Some(first) = parts.next() else { continue };
            let first = if base.is_empty() {
                first.to_string()
            } else {
                format!("{base}::{first}")
            };
            let module = match parts.next() {
                Some(second)
                    if is_dir(&first) && second.chars().all(|c| c.is_lowercase() || c == '_') =>
                {
                    format!("{first}::{second}")
                }
                _ => first,
            };
            found.push(module);
        }
    }
    found
}

/// Every import that goes against the layers, as "a imports b".
fn violations(modules: &BTreeMap<String, String>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (module, code) in modules {
        let Some(own) = layer_of(module) else {
            wrong.push(format!("{module} is in no layer of this test"));
            continue;
        };
        for import in imports(module, code) {
            if import == *module {
                continue;
            }
            match layer_of(&import) {
                Some(layer) if layer < own => {}
                _ => wrong.push(format!("{module} imports {import}")),
            }
        }
    }
    wrong
}

/// Module name → code without unit tests and comments, for every file under `dir`.
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            modules(&path, &format!("{prefix}{stem}::"), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = match stem.as_str() {
                "lib" => continue,
                "mod" => prefix.trim_end_matches("::").to_string(),
                _ => format!("{prefix}{stem}"),
            };
            let source = std::fs::read_to_string(&path).unwrap();
            // Unit tests may reach anything; comments are not imports.
            let code: Vec<&str> = source
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect();
            out.insert(name, code.join("\n"));
        }
    }
}

#[test]
fn every_module_imports_only_lower_layers() {
    let mut all = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut all,
    );
    assert!(all.len() >= 20, "{:?}", all.keys());
    let wrong = violations(&all);
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn the_check_finds_imports_against_the_layers() {
    let map = |entries: &[(&str, &str)]| -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(m, code)| (m.to_string(), code.to_string()))
            .collect()
    };
    // Fine: a use case importing a lower one through `super::`, a model type through `crate::`.
    let fine = map(&[(
        "use_cases::sweep",
        "use super::job::JobWorker;\nuse crate::model::{Job, JobOutcome};",
    )]);
    assert_eq!(violations(&fine), Vec::<String>::new());
    // Wrong: upwards through `super::`, sideways inside `model`, and out of `model`.
    let wrong = map(&[
        ("use_cases::job", "use super::sweep::Sweep;"),
        ("model::job", "use super::fleet::BuildInstance;"),
        ("model::error", "use crate::settings::Settings;"),
        ("ports", "use crate::report::truncate_end;"),
    ]);
    assert_eq!(
        violations(&wrong),
        vec![
            "model::error imports settings",
            "model::job imports model::fleet",
            "ports imports report",
            "use_cases::job imports use_cases::sweep",
        ]
    );
}
