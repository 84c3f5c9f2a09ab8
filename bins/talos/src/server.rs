//! `talos serve …` / `talos migrate …`: run `talos-server` with the same arguments, so the docs' single-binary
//! commands work. The server is looked up beside this executable first (a release ships both together), then
//! on `PATH`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::exit::CliError;

const SERVER: &str = "talos-server";

/// If the command line's first word (after global flags) is `serve` or `migrate`, the arguments for
/// `talos-server` from that word on. Done before clap so every flag reaches the server untouched.
pub fn passthrough(args: &[OsString]) -> Option<Vec<OsString>> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_str()?;
        match a {
            "-e" | "--endpoint" | "--format" | "--token" => i += 2,
            "-q" | "--quiet" => i += 1,
            _ if ["--endpoint=", "--format=", "--token="]
                .iter()
                .any(|p| a.starts_with(p)) =>
            {
                i += 1
            }
            _ if a.starts_with("-e") && a.len() > 2 => i += 1,
            "serve" | "migrate" => return Some(args[i..].to_vec()),
            _ => return None,
        }
    }
    None
}

fn find_server() -> Option<PathBuf> {
    let name = format!("{SERVER}{}", std::env::consts::EXE_SUFFIX);
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        let beside = dir.join(&name);
        if beside.is_file() {
            return Some(beside);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

/// Replaces this process with `talos-server ARGS` (on Unix; elsewhere runs it and returns its exit code).
pub fn exec(args: Vec<OsString>) -> Result<i32, CliError> {
    let path = find_server().ok_or_else(|| {
        CliError::Failed(format!(
            "{SERVER} not found beside this executable or on PATH; install it to run the server"
        ))
    })?;
    let mut cmd = std::process::Command::new(&path);
    cmd.args(&args);
    run(cmd).map_err(|e| CliError::Failed(format!("cannot run {}: {e}", path.display())))
}

/// Unix: `exec` keeps the pid, so signals (Ctrl-C, SIGTERM from a supervisor) reach the server directly.
#[cfg(unix)]
fn run(mut cmd: std::process::Command) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    Err(cmd.exec())
}

#[cfg(not(unix))]
fn run(mut cmd: std::process::Command) -> std::io::Result<i32> {
    Ok(cmd.status()?.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn serve_and_migrate_pass_through_after_global_flags() {
        for (line, want) in [
            (
                &["talos", "serve", "--config", "c.yaml"][..],
                Some(&["serve", "--config", "c.yaml"][..]),
            ),
            (
                &[
                    "talos",
                    "-e",
                    "http://x",
                    "-q",
                    "migrate",
                    "up",
                    "--database",
                    "sqlite://t.db",
                ],
                Some(&["migrate", "up", "--database", "sqlite://t.db"]),
            ),
            (
                &["talos", "--format=json", "serve", "--help"],
                Some(&["serve", "--help"]),
            ),
            (
                &["talos", "--token", "t", "serve", "admin"][..],
                Some(&["serve", "admin"][..]),
            ),
            (&["talos", "keys", "serve"], None),
            (&["talos", "--help"], None),
            (&["talos"], None),
        ] {
            assert_eq!(passthrough(&os(line)), want.map(os), "{line:?}");
        }
    }
}
