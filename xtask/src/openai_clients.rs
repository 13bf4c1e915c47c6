//! `cargo xtask openai-clients`: the official OpenAI clients the `wisp serve` tests drive
//! (crates/cli/tests/serve_clients.rs), at pinned versions: PyPI `openai` and its
//! dependencies from `tests/openai-clients/requirements.txt` into
//! `target/openai-clients/py` (`pip --target`, no venv needed), and npm `openai` from
//! the committed `package-lock.json` into `tests/openai-clients/node_modules`. Each is
//! installed again only when its pin file changes (a copy beside the install says what
//! it was made from).

use crate::{run, workspace_root};
use std::path::Path;
use std::process::Command;

/// Install `what` unless `marker` holds exactly `pins`; write the marker after.
fn once(
    marker: &Path,
    pins: &str,
    install: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    if std::fs::read_to_string(marker).is_ok_and(|m| m == pins) {
        return Ok(());
    }
    install()?;
    std::fs::write(marker, pins).map_err(|e| format!("cannot write {}: {e}", marker.display()))
}

pub fn install() -> Result<(), String> {
    let root = workspace_root();
    let src = root.join("tests/openai-clients");
    let read = |name: &str| {
        std::fs::read_to_string(src.join(name))
            .map_err(|e| format!("cannot read tests/openai-clients/{name}: {e}"))
    };

    let py = root.join("target/openai-clients/py");
    let requirements = read("requirements.txt")?;
    once(
        &root.join("target/openai-clients/py.installed"),
        &requirements,
        || {
            let _ = std::fs::remove_dir_all(&py);
            std::fs::create_dir_all(&py)
                .map_err(|e| format!("cannot create {}: {e}", py.display()))?;
            eprintln!("installing PyPI openai into {}", py.display());
            // Every dependency is pinned in the file, so none is resolved afresh.
            run(Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--no-warn-conflicts",
                ])
                .args(["--disable-pip-version-check", "--target"])
                .arg(&py)
                .arg("-r")
                .arg(src.join("requirements.txt")))
        },
    )?;

    let lock = read("package-lock.json")?;
    once(
        &root.join("target/openai-clients/npm.installed"),
        &lock,
        || {
            eprintln!(
                "installing npm openai into {}",
                src.join("node_modules").display()
            );
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&src)
                .status()
                .map_err(|e| format!("cannot run npm (install Node.js 18+): {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err("npm ci in tests/openai-clients failed".into())
            }
        },
    )
}
