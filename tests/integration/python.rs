//! The Python that drives real PyPI clients: a venv made once, outside the clone, with the
//! pinned packages of `tests/clients/requirements.txt`.
//!
//! The venv lives in `$HOME/.cache/usagelake-venv` (or `$USAGELAKE_VENV`) so that a fresh clone
//! on the same machine reuses it; it is rebuilt when the requirements change, which a stamp file
//! holding the requirements' text tells.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/requirements.txt")
}

fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("USAGELAKE_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/usagelake-venv")
}

fn run(command: &mut Command) {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The venv's `python`, with the clients installed.
pub(crate) fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = venv_dir();
        let python = venv.join("bin/python");
        let wanted = std::fs::read_to_string(requirements()).expect("requirements file");
        let stamp = venv.join("usagelake-requirements.txt");
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return python;
        }
        if !python.exists() {
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        }
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements()));
        std::fs::write(&stamp, wanted).expect("stamp written");
        python
    })
}
