//! The Python that drives real PyPI clients and servers: the venv `.ci/install-test-clients`
//! makes once, outside the clone, with the pinned packages of `tests/clients/requirements.txt`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The venv's `python`, with the clients installed (once per test run, by one installer, so that
/// tests starting together never run two pip installs into one venv).
pub(crate) fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/install-test-clients");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs .ci/install-test-clients");
        assert!(output.status.success(), ".ci/install-test-clients failed");
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}
