//! Where things are: the workspace root, the target directory, the conformance suite shared with
//! the specification, and building binaries with the cargo that runs `cargo xtask`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `CARGO_TARGET_DIR`, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The directory shared with the specification (`conformance/`, `spec/`): `TALOS_SHARED_DIR`,
/// else `../shared` next to the workspace.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("TALOS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("..").join("shared"))
}

/// `cargo build ARGS` in the workspace root, with the cargo running this xtask.
pub fn cargo_build(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .arg("build")
        .args(args)
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "cargo build {} failed", args.join(" "));
    Ok(())
}

/// Copies the binaries `names` from `from` into `to`, so a concurrent build cannot swap a binary
/// under a running check. Returns the copies' paths, in order.
pub fn private_copies(from: &Path, names: &[&str], to: &Path) -> Result<Vec<PathBuf>> {
    names
        .iter()
        .map(|name| {
            let (src, dst) = (from.join(name), to.join(name));
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
            Ok(dst)
        })
        .collect()
}
