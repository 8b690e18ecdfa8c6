//! The crate's imports run one way: each module uses only modules of lower layers, so no two
//! modules import each other and the shared types depend on nothing.

use std::collections::BTreeMap;
use std::path::Path;

/// Layers from the bottom; a module may import modules of its own family (`model::*` among
/// themselves, `use_cases::*` in the order listed) and of earlier layers only.
const LAYERS: &[&[&str]] = &[
    &["model"],
    &["ports", "settings"],
    &["spec", "progress"],
    &["input", "report", "events"],
    &["use_cases::deadline"],
    &["use_cases::job"],
    // `use_cases` itself: a grouped import (`crate::use_cases::{...}`) counts as its top layer.
    &[
        "use_cases::sweep",
        "use_cases::completion",
        "use_cases::keeper",
        "use_cases",
    ],
    &["testing"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| {
            layer.iter().any(|m| {
                module == *m || (*m != "use_cases" && module.starts_with(&format!("{m}::")))
            })
        })
        .unwrap_or_else(|| panic!("module {module} is in no layer of this test"))
}

/// `crate::a::b` paths a file names, as module names (`a` or `a::b` for `use_cases`).
fn imports(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut parts = path.split("::").filter(|p| !p.is_empty());
        let first = parts.next().unwrap_or_default().to_string();
        let module = match (first.as_str(), parts.next()) {
            ("use_cases", Some(second)) if second.chars().all(|c| c.is_lowercase() || c == '_') => {
                format!("use_cases::{second}")
            }
            _ => first,
        };
        found.push(module);
    }
    found
}

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
            let code = code.join("\n");
            out.insert(name, code);
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
    let mut wrong = Vec::new();
    for (module, code) in &all {
        let family = module.split("::").next().unwrap();
        for import in imports(code) {
            let same_family = import.split("::").next().unwrap() == family;
            let allowed = if family == "model" {
                same_family
            } else {
                layer_of(&import) < layer_of(module) || (same_family && family != "use_cases")
            };
            if !allowed && import != *module {
                wrong.push(format!("{module} imports {import}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn the_check_sees_a_wrong_import() {
    assert_eq!(
        imports("use crate::use_cases::job::JobWorker;"),
        ["use_cases::job"]
    );
    assert!(layer_of("use_cases::job") > layer_of("report"));
    assert!(layer_of("model::job") < layer_of("ports"));
}
