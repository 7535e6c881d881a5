//! What the integration tests share: the binary, and lakes made once per test run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A command for the built `usagelake` binary with a history folder of its own, so that tests
/// never touch a developer's history; standard input is left for a pseudo-terminal to set.
pub(crate) fn interactive_usagelake() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_usagelake"));
    command
        .env("XDG_STATE_HOME", scratch_dir("state"))
        .env_remove("USAGELAKE_LAKE");
    command
}

/// The binary with no standard input, as a script or scheduler runs it.
pub(crate) fn usagelake() -> Command {
    let mut command = interactive_usagelake();
    command.stdin(Stdio::null());
    command
}

/// Runs the binary with `args` and returns what it did.
pub(crate) fn run(args: &[&str]) -> Output {
    usagelake().args(args).output().expect("usagelake runs")
}

/// Standard output of a run that must succeed.
pub(crate) fn run_ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "usagelake {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Standard error of a run that must fail with exit code 1; it must be one line.
pub(crate) fn run_err(args: &[&str]) -> String {
    let output = run(args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "usagelake {args:?} should fail with 1; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr).expect("utf-8 errors");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one-line error expected: {stderr}"
    );
    assert!(stderr.starts_with("Error: "), "{stderr}");
    stderr.trim_end().to_string()
}

/// A folder under the cargo target directory for this test run.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("usagelake-tests")
        .join(name);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// A small generated lake (300 users, 60 days from 2024-01-01), made once per test run.
pub(crate) fn small_lake() -> &'static Path {
    static LAKE: OnceLock<PathBuf> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = scratch_dir("small-lake");
        let output = usagelake()
            .args(["gen", "--out"])
            .arg(&dir)
            .args([
                "--users",
                "300",
                "--days",
                "60",
                "--seed",
                "7",
                "--start",
                "2024-01-01",
            ])
            .output()
            .expect("usagelake gen runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
}

/// The sample lake committed in the repository.
pub(crate) fn sample_lake() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("sample")
}

/// Parses CSV output into rows of fields.
pub(crate) fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("valid csv").iter().map(str::to_string).collect())
        .collect()
}

/// Every file under `dir` (not the folders), sorted.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a readable folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The Parquet files an `EXPLAIN` plan's scans open, each once, in order: a scan may read a file
/// in byte ranges (`part-00000.parquet:0..1451`), one per partition.
pub(crate) fn files_in_plan(plan: &str) -> Vec<String> {
    let mut files: Vec<String> = plan
        .split(['[', ']', ',', ' '])
        .filter_map(|part| {
            let file = match part.rsplit_once(':') {
                Some((file, range)) if range.contains("..") => file,
                _ => part,
            };
            file.ends_with(".parquet").then(|| file.to_string())
        })
        .collect();
    files.sort();
    files.dedup();
    files
}
