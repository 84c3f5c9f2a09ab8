//! `cargo xtask docs-check`: executable documentation. Every ```sh, ```bash, ```shell and
//! ```console block in `README.md` and `docs/**/*.md` runs against the real binaries, so a
//! snippet that no longer works fails CI.
//!
//! Per file: a fresh temporary directory, a `talos-server serve --dev` in it (on free ports), and
//! the file's blocks in order, each in `bash` with `set -euo pipefail` and a timeout. Variables
//! a block sets carry over to the next block of the same file (every assignment is exported and
//! the environment is saved between blocks), so a walkthrough may span blocks.
//!
//! Markers, as HTML comments (invisible when rendered), on the lines right before a block:
//! - `<!-- illustrative -->`: not run (Kubernetes, Docker, systemd, production hosts, commands
//!   that never return such as a foreground server, or the CI run itself).
//! - `<!-- docs-check: COMMANDS -->` (may span lines): hidden setup, run as a block of its own at
//!   that point (e.g. to create the file or the key id a runbook step assumes).
//!
//! The documentation's ports are the defaults (4420 API, 4422 metrics, 44xx for extra nodes); the
//! check maps every `44xx` port in a block to a free port, consistently within a file, so it can
//! run beside other servers. The dev server listens on the ports mapped from 4420 and 4422, and
//! `TALOS_URL` points at it. Other `TALOS_*` variables of the caller are removed.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::proc::{self, Server, TmpDir, tail};
use crate::workspace::{self, root, target_dir};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory holding `talos-server` and `talos` (default: <target>/debug).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Do not run `cargo build --bin talos-server --bin talos` first.
    #[arg(long)]
    pub no_build: bool,
    /// Seconds each block may take.
    #[arg(long, default_value_t = 90)]
    pub timeout: u64,
    /// Only files whose path contains one of these strings.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// One runnable block: where it starts (1-based line of the opening fence) and its script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub line: usize,
    pub script: String,
    /// A `<!-- docs-check: … -->` setup rather than a visible block.
    pub hidden: bool,
}

const SHELL_LANGS: &[&str] = &["sh", "bash", "shell", "console"];
const ILLUSTRATIVE: &str = "<!-- illustrative -->";
const SETUP: &str = "<!-- docs-check:";

/// Extracts the runnable blocks of a Markdown text, in order. Fences may be indented (inside list
/// items); the indentation is removed from the script.
pub fn extract(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    // The last non-blank line before the current one, to see markers.
    let mut prev_marker_illustrative = false;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(SETUP) {
            // Hidden setup, possibly spanning lines, until `-->`.
            let start = i + 1;
            let mut body = String::new();
            let mut rest = rest.to_string();
            loop {
                if let Some((before, _)) = rest.split_once("-->") {
                    body.push_str(before);
                    break;
                }
                body.push_str(&rest);
                body.push('\n');
                i += 1;
                if i >= lines.len() {
                    break;
                }
                rest = lines[i].trim_start().to_string();
            }
            blocks.push(Block {
                line: start,
                script: body.trim().to_string() + "\n",
                hidden: true,
            });
            prev_marker_illustrative = false;
            i += 1;
            continue;
        }
        if let Some(info) = trimmed.strip_prefix("```") {
            let indent = line.len() - trimmed.len();
            let lang = info.split([' ', ',', '{']).next().unwrap_or("").trim();
            let start = i + 1;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                let l = lines[i];
                let cut = l.len() - l.trim_start().len();
                body.push(&l[cut.min(indent)..]);
                i += 1;
            }
            if SHELL_LANGS.contains(&lang) && !prev_marker_illustrative {
                let script = if lang == "console" {
                    body.iter()
                        .filter_map(|l| l.strip_prefix("$ "))
                        .collect::<Vec<_>>()
                        .join("\n")
                } else {
                    body.join("\n")
                };
                blocks.push(Block {
                    line: start,
                    script: script + "\n",
                    hidden: false,
                });
            }
            prev_marker_illustrative = false;
            i += 1;
            continue;
        }
        if !trimmed.is_empty() {
            prev_marker_illustrative = trimmed == ILLUSTRATIVE;
        }
        i += 1;
    }
    blocks
}

/// Replaces every `44xx` port number (four digits, not part of a longer number) using `ports`,
/// adding a free port for each one seen first.
pub fn map_ports(
    script: &str,
    ports: &mut BTreeMap<u16, u16>,
    mut fresh: impl FnMut() -> u16,
) -> String {
    let b = script.as_bytes();
    let mut out = String::with_capacity(script.len());
    let mut i = 0;
    while i < b.len() {
        let boundary_before = i == 0 || !b[i - 1].is_ascii_digit();
        if boundary_before
            && i + 4 <= b.len()
            && b[i] == b'4'
            && b[i + 1] == b'4'
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i + 4 == b.len() || !b[i + 4].is_ascii_digit())
        {
            let port: u16 = script[i..i + 4].parse().unwrap_or(0);
            let mapped = *ports.entry(port).or_insert_with(&mut fresh);
            out.push_str(&mapped.to_string());
            i += 4;
            continue;
        }
        // Copy one UTF-8 character.
        let ch = script[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// A free port, or 0 (the bind then fails loudly in the block that uses it).
fn free_port() -> u16 {
    proc::free_port().unwrap_or(0)
}

fn doc_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut files = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut files)?;
    Ok(files)
}

/// A process group we started; killed (the whole group) on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The environment every block starts from: the caller's, minus `TALOS_*`, with the binaries
/// first on PATH and TALOS_URL pointing at the dev server.
fn base_env(bins: &Path, api_port: u16) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !k.starts_with("TALOS_") && k != "BASH_ENV" && k != "ENV")
        .collect();
    let path = std::env::var("PATH").unwrap_or_default();
    env.retain(|(k, _)| k != "PATH");
    env.push(("PATH".into(), format!("{}:{path}", bins.display())));
    env.push(("TALOS_URL".into(), format!("http://127.0.0.1:{api_port}")));
    env
}

fn run_file(file: &Path, rel: &str, bins: &Path, timeout: Duration) -> Result<usize> {
    let text = std::fs::read_to_string(file)?;
    let blocks = extract(&text);
    if blocks.is_empty() {
        return Ok(0);
    }
    let work = TmpDir::new("docs-check-file")?;
    let mut ports = BTreeMap::new();
    let api = *ports.entry(4420).or_insert_with(free_port);
    let metrics = *ports.entry(4422).or_insert_with(free_port);
    let env = base_env(bins, api);

    // The dev server the docs' quickstart assumes.
    let mut cmd = Command::new(bins.join("talos-server"));
    cmd.args(["serve", "--dev"])
        .current_dir(&work.path)
        .env_clear()
        .envs(env.iter().cloned())
        .env("TALOS_SERVE_HTTP_PORT", api.to_string())
        .env("TALOS_SERVE_METRICS_PORT", metrics.to_string());
    let log_path = work.join("talos-server.log");
    let server = Server::start("talos-server serve --dev", cmd, api, &log_path)
        .with_context(|| format!("{rel}: the dev server did not come up"))?;
    let mut groups = Vec::new();

    let state = work.join(".docs-check-env");
    for (n, block) in blocks.iter().enumerate() {
        let script = map_ports(&block.script, &mut ports, free_port);
        let kind = if block.hidden { "setup" } else { "block" };
        let full = format!(
            "set -euo pipefail\n\
             if [ -f {state} ]; then source {state}; fi\n\
             set -a\n\
             trap 'export -p > {state}' EXIT\n\
             {script}",
            state = shell_quote(&state)
        );
        let script_path = work.join(format!(".block-{n}.sh"));
        std::fs::write(&script_path, full)?;
        let out_path = work.join(format!(".block-{n}.out"));
        let out = std::fs::File::create(&out_path)?;
        // Output goes to a file, not a pipe: a block may leave a server running in the background,
        // which would hold a pipe open.
        let child = Command::new("bash")
            .arg(&script_path)
            .current_dir(&work.path)
            .env_clear()
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .context("running bash")?;
        let mut group = Group(child);
        let started = Instant::now();
        let status = loop {
            if let Some(st) = group.0.try_wait()? {
                break Some(st);
            }
            if started.elapsed() > timeout {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let ok = status.is_some_and(|s| s.success());
        groups.push(group);
        if !ok {
            let why = match status {
                Some(st) => format!("exited with {st}"),
                None => format!("timed out after {} s", timeout.as_secs()),
            };
            bail!(
                "{rel}:{line}: {kind} {why}\n--- script (ports mapped: {ports:?})\n{script}--- output\n{output}--- dev server log (tail)\n{log}",
                line = block.line,
                log = tail(&log_path, 20),
            );
        }
        println!(
            "  ok {rel}:{} ({kind}, {:.1} s)",
            block.line,
            started.elapsed().as_secs_f64()
        );
    }
    drop(groups);
    server.stop();
    Ok(blocks.len())
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

pub fn run(args: Args) -> Result<()> {
    let root = root();
    if !args.no_build {
        workspace::cargo_build(&["--bin", "talos-server", "--bin", "talos"])?;
    }
    // Private copies: a concurrent build must not swap a binary under a running block.
    let src = args
        .bin_dir
        .clone()
        .unwrap_or_else(|| target_dir().join("debug"));
    let bins = TmpDir::new("docs-check-bin")?;
    workspace::private_copies(&src, &["talos-server", "talos"], &bins.path)?;
    let mut failures = Vec::new();
    let mut total = 0;
    for file in doc_files(&root)? {
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        if !args.only.is_empty() && !args.only.iter().any(|o| rel.contains(o.as_str())) {
            continue;
        }
        match run_file(&file, &rel, &bins.path, Duration::from_secs(args.timeout)) {
            Ok(n) => total += n,
            Err(e) => {
                eprintln!("FAIL {e:#}");
                failures.push(rel);
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "docs-check: {} file(s) with a failing block: {}",
            failures.len(),
            failures.join(", ")
        );
    }
    println!("docs-check: {total} block(s) passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_shell_blocks_and_honours_markers() {
        let md = "# T\n\
                  ```sh\necho one\n```\n\
                  ```yaml\na: 1\n```\n\
                  <!-- illustrative -->\n\n```bash\nkubectl apply -f x\n```\n\
                  1. step\n   ```sh\n   echo indented\n   ```\n\
                  <!-- docs-check: touch f\n  echo hidden -->\n\
                  ```console\n$ echo c\noutput line\n```\n";
        let b = extract(md);
        let scripts: Vec<(&str, bool)> = b.iter().map(|b| (b.script.as_str(), b.hidden)).collect();
        assert_eq!(
            scripts,
            vec![
                ("echo one\n", false),
                ("echo indented\n", false),
                ("touch f\necho hidden\n", true),
                ("echo c\n", false),
            ]
        );
        assert_eq!(b[0].line, 2);
    }

    #[test]
    fn maps_44xx_ports_consistently() {
        let mut ports = BTreeMap::new();
        let mut next = 50000;
        let s = map_ports(
            "curl http://127.0.0.1:4420/x; PORT=4430 y 4420 14420 44201 …4422",
            &mut ports,
            || {
                next += 1;
                next
            },
        );
        assert_eq!(
            s,
            "curl http://127.0.0.1:50001/x; PORT=50002 y 50001 14420 44201 …50003"
        );
    }
}
