//! Dependencies point one way (docs/ARCHITECTURE.md, "Invariants"): each workspace crate may
//! depend only on the workspace crates its layer allows, and the pure crates (no I/O) pull in no
//! tokio, diesel or actix, not even through another crate. Read from `cargo metadata`: the
//! manifests as cargo resolves them. Dev-dependencies are exempt: tests may assemble the stack.
//! The test-support crate goes the other way: anything may use it as a dev-dependency, only
//! xtask as a normal one, so no shipped crate ever links the test harness.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::Violation;

/// Which workspace crates a crate may depend on.
pub enum Uses {
    Only(&'static [&'static str]),
    /// Binaries and tools: anything.
    Any,
}

/// One row of the layering: a workspace crate, what it may use, and whether it must stay free of
/// I/O runtimes.
pub struct Layer {
    pub krate: &'static str,
    pub uses: Uses,
    pub pure: bool,
}

const SECRETS: &str = "talos-secrets";
const CREDENTIALS: &str = "talos-credentials";
const API: &str = "talos-api";
const STORAGE: &str = "talos-storage";
const CACHE: &str = "talos-cache";
const CORE: &str = "talos-core";
const TEST_SUPPORT: &str = "talos-test-support";
const XTASK: &str = "xtask";

/// Crates for tests only: a dev-dependency of anything, a normal dependency only of `TOOLS`.
const TEST_ONLY: &[&str] = &[TEST_SUPPORT];
/// Automation that ships nothing, so it may use test-only crates (the stall proxy, the JWKS).
const TOOLS: &[&str] = &[XTASK];

/// The layering of docs/ARCHITECTURE.md, lowest first. A new crate must be added here (and to
/// the architecture document) before tidy passes.
pub const LAYERS: &[Layer] = &[
    Layer {
        krate: SECRETS,
        uses: Uses::Only(&[]),
        pure: true,
    },
    Layer {
        krate: CREDENTIALS,
        uses: Uses::Only(&[SECRETS]),
        pure: true,
    },
    // The wire format: serde types only.
    Layer {
        krate: API,
        uses: Uses::Only(&[]),
        pure: true,
    },
    Layer {
        krate: STORAGE,
        uses: Uses::Only(&[SECRETS, CREDENTIALS]),
        pure: false,
    },
    Layer {
        krate: CACHE,
        uses: Uses::Only(&[SECRETS, CREDENTIALS]),
        pure: false,
    },
    Layer {
        krate: CORE,
        uses: Uses::Only(&[STORAGE, CACHE, SECRETS, CREDENTIALS]),
        pure: false,
    },
    Layer {
        krate: "talos-http",
        uses: Uses::Only(&[CORE, API]),
        pure: false,
    },
    // The client speaks the wire format only; it never embeds the service.
    Layer {
        krate: "talos-client",
        uses: Uses::Only(&[API]),
        pure: false,
    },
    // The guard embeds the service or calls a server; it answers in the wire format's terms.
    Layer {
        krate: "talos-guard",
        uses: Uses::Only(&[CORE, "talos-client", API]),
        pure: false,
    },
    Layer {
        krate: "talos-server",
        uses: Uses::Any,
        pure: false,
    },
    Layer {
        krate: "talos",
        uses: Uses::Any,
        pure: false,
    },
    Layer {
        krate: XTASK,
        uses: Uses::Any,
        pure: false,
    },
    // The test harness may assemble anything; `TEST_ONLY` keeps it out of shipped crates.
    Layer {
        krate: TEST_SUPPORT,
        uses: Uses::Any,
        pure: false,
    },
];

/// What a pure crate must not reach: async runtimes, database and web frameworks.
pub fn is_io_crate(name: &str) -> bool {
    name == "tokio"
        || name.starts_with("tokio-")
        || name.starts_with("diesel")
        || name.starts_with("actix")
}

/// A workspace crate: its manifest (relative path and text, for line numbers) and the workspace
/// crates it depends on outside dev-dependencies.
pub struct Member {
    pub name: String,
    pub manifest: String,
    pub manifest_text: String,
    pub uses: Vec<String>,
}

/// The workspace as cargo resolves it: members, and every package's non-dev dependencies by name
/// (package names are unique enough here: a duplicate version has the same name).
pub struct Workspace {
    pub members: Vec<Member>,
    pub edges: BTreeMap<String, BTreeSet<String>>,
}

/// `cargo metadata` for the workspace at `root`.
pub fn load(root: &Path) -> Result<Workspace> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    parse(&meta, root)
}

fn parse(meta: &Value, root: &Path) -> Result<Workspace> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let names: BTreeMap<String, String> = list(&meta["packages"])
        .iter()
        .map(|p| (str_of(&p["id"]), str_of(&p["name"])))
        .collect();
    let member_ids: BTreeSet<String> = list(&meta["workspace_members"])
        .iter()
        .map(str_of)
        .collect();
    let member_names: BTreeSet<&String> =
        member_ids.iter().filter_map(|id| names.get(id)).collect();
    let mut members = Vec::new();
    for p in list(&meta["packages"]) {
        if !member_ids.contains(&str_of(&p["id"])) {
            continue;
        }
        let manifest = str_of(&p["manifest_path"]);
        let uses = list(&p["dependencies"])
            .iter()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .map(|d| str_of(&d["name"]))
            .filter(|n| member_names.contains(n))
            .collect();
        members.push(Member {
            name: str_of(&p["name"]),
            manifest_text: std::fs::read_to_string(&manifest).unwrap_or_default(),
            manifest: Path::new(&manifest)
                .strip_prefix(root)
                .map_or(manifest.clone(), |p| p.display().to_string()),
            uses,
        });
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in list(&meta["resolve"]["nodes"]) {
        let from = names.get(&str_of(&node["id"])).cloned().unwrap_or_default();
        let entry = edges.entry(from).or_default();
        for d in list(&node["deps"]) {
            let normal = list(&d["dep_kinds"])
                .iter()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if normal && let Some(to) = names.get(&str_of(&d["pkg"])) {
                entry.insert(to.clone());
            }
        }
    }
    Ok(Workspace { members, edges })
}

/// The line of `manifest` that declares dependency `dep` (1 when not found).
fn dep_line(manifest: &str, dep: &str) -> usize {
    manifest
        .lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(dep)
                .is_some_and(|rest| rest.starts_with([' ', '=', '.']))
        })
        .map_or(1, |i| i + 1)
}

/// The shortest chain of normal dependencies from `from` to an I/O crate, if any.
fn io_path(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        for next in edges.get(at).into_iter().flatten() {
            if next == from || parent.contains_key(next.as_str()) {
                continue;
            }
            parent.insert(next, at);
            if is_io_crate(next) {
                let mut chain = vec![next.to_string()];
                let mut cur = next.as_str();
                while let Some(&p) = parent.get(cur) {
                    chain.push(p.to_string());
                    cur = p;
                }
                chain.reverse();
                return Some(chain);
            }
            queue.push_back(next);
        }
    }
    None
}

pub fn check(ws: &Workspace) -> Vec<Violation> {
    check_with(ws, LAYERS)
}

fn check_with(ws: &Workspace, layers: &[Layer]) -> Vec<Violation> {
    let mut out = Vec::new();
    for m in &ws.members {
        let Some(layer) = layers.iter().find(|l| l.krate == m.name) else {
            out.push(Violation::new(
                &m.manifest,
                1,
                format!(
                    "crate {} is not in the layering: add it to LAYERS in xtask/src/tidy/deps.rs \
                     and to docs/ARCHITECTURE.md",
                    m.name
                ),
            ));
            continue;
        };
        let test_only = |d: &String| TEST_ONLY.contains(&d.as_str());
        if !TOOLS.contains(&m.name.as_str()) {
            for dep in m.uses.iter().filter(|d| test_only(d)) {
                out.push(Violation::new(
                    &m.manifest,
                    dep_line(&m.manifest_text, dep),
                    format!(
                        "{} depends on {dep}, which is for tests: make it a dev-dependency",
                        m.name
                    ),
                ));
            }
        }
        if let Uses::Only(allowed) = layer.uses {
            let refused = |d: &&String| !allowed.contains(&d.as_str()) && !test_only(d);
            for dep in m.uses.iter().filter(refused) {
                out.push(Violation::new(
                    &m.manifest,
                    dep_line(&m.manifest_text, dep),
                    format!(
                        "{} depends on {dep}, against the layering (docs/ARCHITECTURE.md): it may \
                         use {}",
                        m.name,
                        if allowed.is_empty() {
                            "no other workspace crate".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
        }
        if layer.pure
            && let Some(chain) = io_path(&ws.edges, &m.name)
        {
            out.push(Violation::new(
                &m.manifest,
                dep_line(&m.manifest_text, &chain[1]),
                format!(
                    "{} pulls in {} ({}); it must do no I/O",
                    m.name,
                    chain.last().map_or("", String::as_str),
                    chain.join(" → ")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, uses: &[&str]) -> Member {
        let manifest_text = std::iter::once("[dependencies]".to_string())
            .chain(uses.iter().map(|u| format!("{u}.workspace = true")))
            .collect::<Vec<_>>()
            .join("\n");
        Member {
            name: name.into(),
            manifest: format!("crates/{name}/Cargo.toml"),
            manifest_text,
            uses: uses.iter().map(|u| u.to_string()).collect(),
        }
    }

    fn workspace(members: Vec<Member>, edges: &[(&str, &str)]) -> Workspace {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            map.entry(a.to_string()).or_default().insert(b.to_string());
        }
        Workspace {
            members,
            edges: map,
        }
    }

    #[test]
    fn the_layering_as_documented() {
        // (crate, workspace dependency, allowed)
        let cases = [
            ("talos-credentials", SECRETS, true),
            ("talos-secrets", CREDENTIALS, false),
            ("talos-storage", CREDENTIALS, true),
            ("talos-storage", CACHE, false),
            ("talos-cache", CORE, false),
            ("talos-core", STORAGE, true),
            ("talos-http", CORE, true),
            ("talos-http", API, true),
            ("talos-http", STORAGE, false),
            ("talos-client", API, true),
            ("talos-client", CORE, false),
            ("talos-api", CORE, false),
            ("talos-server", STORAGE, true),
            ("talos", "talos-client", true),
            ("talos-test-support", "talos-http", true),
            ("xtask", TEST_SUPPORT, true),
        ];
        for (krate, dep, allowed) in cases {
            let ws = workspace(vec![member(krate, &[dep])], &[]);
            let v = check(&ws);
            assert_eq!(v.is_empty(), allowed, "{krate} → {dep}: {v:?}");
            if !allowed {
                let text = v[0].to_string();
                assert!(
                    text.starts_with(&format!(
                        "crates/{krate}/Cargo.toml:2: {krate} depends on {dep}"
                    )),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn test_support_is_for_tests_and_xtask_only() {
        for krate in ["talos-server", "talos", "talos-core", "talos-secrets"] {
            let v = check(&workspace(vec![member(krate, &[TEST_SUPPORT])], &[]));
            assert_eq!(v.len(), 1, "{krate}: {v:?}");
            assert!(
                v[0].to_string().starts_with(&format!(
                    "crates/{krate}/Cargo.toml:2: {krate} depends on talos-test-support, which \
                     is for tests"
                )),
                "{}",
                v[0]
            );
        }
    }

    #[test]
    fn pure_crates_reach_no_io_runtime() {
        let ws = workspace(
            vec![member(SECRETS, &[]), member(STORAGE, &[])],
            &[
                (SECRETS, "hmac"),
                (SECRETS, "helper"),
                ("helper", "tokio"),
                (STORAGE, "tokio"),
            ],
        );
        let v = check(&ws);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].to_string()
                .contains("talos-secrets pulls in tokio (talos-secrets → helper → tokio)"),
            "{}",
            v[0]
        );
        let clean = workspace(vec![member(SECRETS, &[])], &[(SECRETS, "hmac")]);
        assert!(check(&clean).is_empty());
    }

    #[test]
    fn an_unknown_crate_must_be_placed() {
        let v = check(&workspace(vec![member("talos-new", &[])], &[]));
        assert!(
            v[0].to_string()
                .contains("talos-new is not in the layering")
        );
    }

    #[test]
    fn io_crates() {
        for (name, io) in [
            ("tokio", true),
            ("tokio-postgres", true),
            ("diesel-async", true),
            ("diesel_migrations", true),
            ("actix-web", true),
            ("serde", false),
            ("tokenizers", false),
        ] {
            assert_eq!(is_io_crate(name), io, "{name}");
        }
    }
}
