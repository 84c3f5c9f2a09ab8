//! `cargo xtask tidy`: the rules of docs/ARCHITECTURE.md and the house style that a program can
//! check, over every Rust file of `crates/`, `bins/` and `xtask/`:
//! - `docs`: every file starts with a `//!` module doc;
//! - `deps`: crate dependencies point one way, and the pure crates pull in no I/O runtime;
//! - `size`: no file over 800 lines;
//! - `wire`: wire strings (enum names, AIP-193 reasons) only in `crates/talos-api`.
//!
//! Each violation is printed as `path:line: what to do`. Where a rule cannot hold yet, its module
//! keeps an explicit allowlist with a reason per entry; entries that no longer apply are reported
//! too, so the lists only shrink.

mod deps;
mod docs;
mod lex;
mod size;
mod wire;

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::workspace;

#[derive(clap::Args, Debug)]
pub struct Args {}

/// A broken rule, where it is broken, and what to do about it.
#[derive(Debug)]
pub struct Violation {
    pub path: String,
    pub line: usize,
    pub msg: String,
}

impl Violation {
    pub fn new(path: &str, line: usize, msg: impl Into<String>) -> Violation {
        Violation {
            path: path.into(),
            line,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.msg)
    }
}

/// A Rust file: its path relative to the workspace root (with `/`) and its text.
pub struct Source {
    pub rel: String,
    pub text: String,
}

impl Source {
    #[cfg(test)]
    pub fn new(rel: &str, text: &str) -> Source {
        Source {
            rel: rel.into(),
            text: text.into(),
        }
    }
}

/// Entries of the allowlist `list` (in the tidy module `module`) naming files that do not exist.
fn missing_entries<'a>(
    files: &[Source],
    entries: impl IntoIterator<Item = &'a str>,
    module: &str,
    list: &str,
) -> Vec<Violation> {
    entries
        .into_iter()
        .filter(|path| !files.iter().any(|f| f.rel == *path))
        .map(|path| {
            Violation::new(
                &format!("xtask/src/tidy/{module}.rs"),
                1,
                format!("{list} names {path}, which does not exist: remove the entry"),
            )
        })
        .collect()
}

/// The directories tidy reads.
const DIRS: &[&str] = &["crates", "bins", "xtask"];

/// Every `.rs` file below `DIRS`, build output (`target/`) left out, sorted by path.
fn sources(root: &Path) -> Result<Vec<Source>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Source>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    walk(root, &path, out)?;
                }
            } else if name.ends_with(".rs") {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                out.push(Source { rel, text });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for d in DIRS {
        walk(root, &root.join(d), &mut out)?;
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

pub fn run(_args: Args) -> Result<()> {
    let root = workspace::root();
    let files = sources(&root)?;
    let ws = deps::load(&root)?;
    let checks = [
        ("module docs".to_string(), docs::check(&files)),
        ("crate layering".to_string(), deps::check(&ws)),
        (
            format!("files of at most {} lines", size::CEILING),
            size::check(&files),
        ),
        (
            format!("wire strings only in {}", wire::HOME),
            wire::check(&files),
        ),
    ];
    let mut failed = 0;
    for (name, violations) in &checks {
        if violations.is_empty() {
            println!("tidy: ok   {name}");
            continue;
        }
        println!("tidy: FAIL {name}");
        for v in violations {
            println!("  {v}");
        }
        failed += violations.len();
    }
    if failed > 0 {
        bail!("tidy: {failed} violation(s) in {} Rust files", files.len());
    }
    println!(
        "tidy: {} Rust files, {} crates: all rules hold",
        files.len(),
        ws.members.len()
    );
    Ok(())
}
