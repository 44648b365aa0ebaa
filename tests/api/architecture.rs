//! Dependencies point one way: entry -> HTTP -> services and real-time -> store -> domain.
//! Read from the source, so that a `use` that points back up fails here, with the edge named.

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module and its layer: a module may use only modules of lower layers (and
/// itself). Read top to bottom, this is the README's architecture map.
const LAYERS: &[(&str, u8)] = &[
    ("startup", 9),   // entry: wires everything
    ("openapi", 8),   // the document of the routes
    ("routes", 7),    // HTTP layer
    ("state", 6),     // what handlers share
    ("push", 5),      // background worker: push notifications from the event log
    ("telemetry", 5), // logging setup
    ("auth", 4),      // services
    ("realtime", 4),  // hub, fan-out, presence, event payloads
    ("config", 4),    // the environment
    ("limits", 3),    // per-user rate limits
    ("files", 3),     // the bytes of uploads: local folder or S3
    ("outbound", 3),  // the rules for calling URLs that users supply
    ("error", 2),     // the JSON error envelope, mapping store errors
    ("views", 2),     // JSON shapes shared by answers and event payloads
    ("store", 1),     // the only SQL
    ("domain", 0),    // validated input types
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer)
}

/// (module of the file, module it names through `crate::`) for every Rust file under `src`.
fn crate_edges(folder: &Path, edges: &mut BTreeSet<(String, String)>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            crate_edges(&path, edges);
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let relative = path.strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/src")).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        for line in source.lines().filter(|line| !line.trim_start().starts_with("//")) {
            for (index, _) in line.match_indices("crate::") {
                let rest = &line[index + "crate::".len()..];
                // `crate::{a, b::c}` names several modules at once.
                let named: Vec<String> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split([',', '}'])
                        .map(|item| item.trim().split("::").next().unwrap_or_default().to_string())
                        .take_while(|item| !item.contains(';'))
                        .collect(),
                    None => vec![
                        rest.chars()
                            .take_while(|character| character.is_ascii_alphanumeric() || *character == '_')
                            .collect(),
                    ],
                };
                for named in named.into_iter().filter(|named| !named.is_empty() && named != "self") {
                    edges.insert((module.clone(), named));
                }
            }
        }
    }
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let mut edges = BTreeSet::new();
    crate_edges(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")), &mut edges);
    let mut upward = Vec::new();
    for (from, to) in &edges {
        // The binaries (main.rs, bin/) and lib.rs sit above everything.
        if matches!(from.as_str(), "main" | "lib" | "bin") || from == to {
            continue;
        }
        let (Some(from_layer), Some(to_layer)) = (layer(from), layer(to)) else {
            upward.push(format!("{from} -> {to}: a module missing from LAYERS"));
            continue;
        };
        if to_layer >= from_layer {
            upward.push(format!("{from} -> {to}"));
        }
    }
    assert!(
        edges.len() > 20,
        "read only {} edges: is the source where it was?",
        edges.len()
    );
    assert!(
        upward.is_empty(),
        "dependencies that point up or sideways:\n{}",
        upward.join("\n")
    );
}
