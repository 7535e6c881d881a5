//! `usagelake run`: the example jobs, publishing to a folder and to a bucket, re-runs, usage
//! errors, a job killed mid-write, and storage faults injected by a proxy in front of moto.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use crate::fault_proxy::{Fault, FaultProxy};
use crate::object_storage::{output_ok, server_with_small_lake, usagelake_s3};
use crate::support::{run_ok, small_lake, usagelake};

fn job_file(name: &str) -> String {
    format!("{}/queries/{name}.sql", env!("CARGO_MANIFEST_DIR"))
}

/// A job's SQL with its variables put in by text replacement: the test's own way of getting
/// what the job should publish, as a plain query.
pub(crate) fn job_sql(job: &str, vars: &[(&str, &str)]) -> String {
    let mut sql = std::fs::read_to_string(job_file(job)).unwrap();
    for (name, value) in vars {
        sql = sql.replace(&format!("${{{name}}}"), &format!("'{value}'"));
    }
    sql
}

/// What a job's SQL returns on the small lake, run as a plain query (see [`job_sql`]).
pub(crate) fn direct(job: &str, vars: &[(&str, &str)]) -> String {
    let sql = job_sql(job, vars);
    // `=` keeps the leading `--` comment from reading as an option.
    run_ok(&[
        "--lake",
        small_lake().to_str().unwrap(),
        &format!("--command={sql}"),
    ])
}

/// `command` set to run `job` over the small lake with `args`.
pub(crate) fn job_command(mut command: Command, job: &str, args: &[&str]) -> Command {
    command
        .args([
            "run",
            &job_file(job),
            "--lake",
            small_lake().to_str().unwrap(),
        ])
        .args(args);
    command
}

pub(crate) fn run_job(command: Command, job: &str, args: &[&str]) -> Output {
    job_command(command, job, args).output().unwrap()
}

pub(crate) fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "job failed ({:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The error of a job that must fail with `code`: its last line of standard error, the only
/// `Error: ` line (the lines before it are the job's log).
pub(crate) fn job_error(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    errors[0].to_string()
}

pub(crate) fn manifest(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("the manifest is JSON")
}

/// Rows in Parquet bytes, counted by the parquet crate from the file's footer.
pub(crate) fn parquet_rows(bytes: Vec<u8>) -> i64 {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&bytes).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    reader.metadata().file_metadata().num_rows()
}

/// What the published output at `table` (a folder or URL) reads as, through the lake reader.
pub(crate) fn published(command: Command, table: &str, order_by: &str) -> String {
    output_ok(
        command,
        &[
            "--table",
            &format!("t={table}"),
            "-c",
            &format!("SELECT * FROM t ORDER BY {order_by}"),
        ],
    )
}

const JOBS: [(&str, &str, &str, &str); 3] = [
    ("daily_kpis", "run_date", "2024-01-20", "plan"),
    (
        "weekly_retention_report",
        "week_start",
        "2024-01-15",
        "device",
    ),
    ("monthly_revenue", "month", "2024-02", "plan"),
];

#[test]
fn example_jobs_publish_what_their_sql_returns() {
    for (job, var, value, order_by) in JOBS {
        let out = tempfile::tempdir().unwrap();
        let output = run_job(
            usagelake(),
            job,
            &[
                "--var",
                &format!("{var}={value}"),
                "--output",
                out.path().to_str().unwrap(),
            ],
        );
        assert_success(&output);
        let direct = direct(job, &[(var, value)]);
        let read_back = published(usagelake(), out.path().to_str().unwrap(), order_by);
        assert_eq!(read_back, direct, "{job}");
        assert!(
            direct.lines().count() > 1,
            "{job} returned no rows: {direct}"
        );

        let manifest = manifest(&std::fs::read(out.path().join("_SUCCESS")).unwrap());
        assert_eq!(manifest["job"], job);
        assert_eq!(manifest["variables"][var], value);
        let files = manifest["files"].as_array().unwrap();
        let rows: i64 = files
            .iter()
            .map(|f| {
                parquet_rows(std::fs::read(out.path().join(f["path"].as_str().unwrap())).unwrap())
            })
            .sum();
        assert_eq!(rows, manifest["rows"].as_i64().unwrap());
        assert_eq!(rows as usize, direct.lines().count() - 1, "{job}");
    }
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = crate::support::files_under(dir)
        .iter()
        .map(|path| path.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn a_rerun_publishes_the_same_rows_and_removes_the_older_run() {
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--var",
        "run_date=2024-02-10",
        "--output",
        out.path().to_str().unwrap(),
    ];
    assert_success(&run_job(usagelake(), "daily_kpis", &args));
    let first = manifest(&std::fs::read(out.path().join("_SUCCESS")).unwrap());
    let first_rows = published(usagelake(), out.path().to_str().unwrap(), "plan");

    let rerun = run_job(
        usagelake(),
        "daily_kpis",
        &[&args[..], &["--log-format", "json"]].concat(),
    );
    assert_success(&rerun);
    let second = manifest(&std::fs::read(out.path().join("_SUCCESS")).unwrap());
    assert_ne!(first["run_id"], second["run_id"]);
    assert_eq!(
        published(usagelake(), out.path().to_str().unwrap(), "plan"),
        first_rows
    );

    // Only the new run's files and the manifest are left.
    let mut expected: Vec<String> = second["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    expected.push("_SUCCESS".to_string());
    expected.sort();
    assert_eq!(files_under(out.path()), expected);

    // The JSON log: one object a line, the last saying what was published.
    let log = String::from_utf8(rerun.stderr).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "published");
    assert_eq!(last["job"], "daily_kpis");
    assert_eq!(last["rows"], second["rows"]);
    assert_eq!(last["removed_files"], 1);
    assert!(
        last["duration_ms"].is_u64() && last["bytes"].is_u64(),
        "{last}"
    );
}

#[test]
fn a_job_publishes_partitioned_parquet_to_a_bucket() {
    let server = server_with_small_lake();
    let output = "s3://lake/jobs/daily_kpis/";
    let ran = run_job(
        usagelake_s3(&server.endpoint()),
        "daily_kpis",
        &[
            "--var",
            "run_date=2024-01-31",
            "--output",
            output,
            "--partition-by",
            "plan",
        ],
    );
    assert_success(&ran);
    let manifest = manifest(&server.get("lake", "jobs/daily_kpis/_SUCCESS"));
    let named: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("jobs/daily_kpis/{}", f["path"].as_str().unwrap()))
        .collect();
    assert!(named.iter().all(|f| f.contains("/plan=")), "{named:?}");
    let mut stored = server.list("lake", "jobs/daily_kpis/runs");
    stored.sort();
    let mut named_sorted = named.clone();
    named_sorted.sort();
    assert_eq!(stored, named_sorted);
    let rows: i64 = named
        .iter()
        .map(|key| parquet_rows(server.get("lake", key)))
        .sum();
    assert_eq!(rows, manifest["rows"].as_i64().unwrap());

    // Read back by the lake reader, plan (a partition column now) comes last.
    let read_back = output_ok(
        usagelake_s3(&server.endpoint()),
        &[
            "--table",
            &format!("t={output}"),
            "-c",
            "SELECT day, plan, events, active_users, active_accounts, signups, features_used FROM t ORDER BY plan",
        ],
    );
    let direct = direct("daily_kpis", &[("run_date", "2024-01-31")]);
    assert_eq!(read_back, direct);
    assert_eq!(rows as usize, direct.lines().count() - 1);
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let out = tempfile::tempdir().unwrap();
    let output = out.path().to_str().unwrap();
    assert_success(&run_job(
        usagelake(),
        "daily_kpis",
        &["--var", "run_date=2024-02-01", "--output", output],
    ));
    let before = files_under(out.path());
    let manifest_before = std::fs::read(out.path().join("_SUCCESS")).unwrap();

    let error = job_error(
        &run_job(
            usagelake(),
            "daily_kpis",
            &["--var", "run_dat=2024-02-01", "--output", output],
        ),
        2,
    );
    assert!(
        error.contains("--var run_dat is not used") && error.contains("${run_date}"),
        "{error}"
    );
    let error = job_error(
        &run_job(usagelake(), "daily_kpis", &["--output", output]),
        2,
    );
    assert!(error.contains("--var run_date=VALUE"), "{error}");
    let error = job_error(
        &run_job(
            usagelake(),
            "monthly_revenue",
            &["--var", "month=2024-02", "--output", output],
        ),
        2,
    );
    assert!(
        error.contains("holds the output of job 'daily_kpis'"),
        "{error}"
    );
    let error = job_error(
        &run_job(usagelake(), "daily_kpis", &["--var", "run_date=2024-02-01"]),
        2,
    );
    assert!(error.contains("--output is missing"), "{error}");
    let error = job_error(
        &run_job(
            usagelake(),
            "daily_kpis",
            &[
                "--var",
                "run_date=2024-02-01",
                "--output",
                output,
                "--partition-by",
                "nope",
            ],
        ),
        2,
    );
    assert!(
        error.contains("--partition-by nope") && error.contains("active_users"),
        "{error}"
    );
    assert_eq!(files_under(out.path()), before);
    assert_eq!(
        std::fs::read(out.path().join("_SUCCESS")).unwrap(),
        manifest_before
    );

    // A folder of someone else's data is not taken over.
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("report.csv"), "a\n1\n").unwrap();
    let error = job_error(
        &run_job(
            usagelake(),
            "daily_kpis",
            &[
                "--var",
                "run_date=2024-02-01",
                "--output",
                foreign.path().to_str().unwrap(),
            ],
        ),
        2,
    );
    assert!(error.contains("report.csv"), "{error}");
    assert_eq!(files_under(foreign.path()), vec!["report.csv".to_string()]);

    // A query error is 1, and --dry-run prints the SQL it would run and writes nothing.
    let broken = out.path().join("broken.sql");
    std::fs::write(&broken, "SELECT no_such_column FROM events").unwrap();
    let ran = usagelake()
        .args([
            "run",
            broken.to_str().unwrap(),
            "--lake",
            small_lake().to_str().unwrap(),
            "--output",
            output,
        ])
        .output()
        .unwrap();
    let error = job_error(&ran, 1);
    assert!(error.contains("no_such_column"), "{error}");
    let dry = run_job(
        usagelake(),
        "daily_kpis",
        &["--var", "run_date=2024-02-01", "--dry-run"],
    );
    assert_success(&dry);
    assert!(String::from_utf8_lossy(&dry.stdout).contains("DATE '2024-02-01'"));
    let mut expected = [&before[..], &["broken.sql".to_string()]].concat();
    expected.sort();
    assert_eq!(files_under(out.path()), expected);
}

/// The output's manifest and what it reads as, through `proxy`.
fn published_state(server: &crate::s3_server::S3Server, proxy: &FaultProxy) -> (Vec<u8>, String) {
    (
        server.get("lake", "jobs/kpis/_SUCCESS"),
        published(
            usagelake_s3(&proxy.endpoint()),
            "s3://lake/jobs/kpis/",
            "plan",
        ),
    )
}

const KPIS_OUTPUT: &str = "s3://lake/jobs/kpis/";

fn is_run_write(method: &str, target: &str) -> bool {
    method == "PUT" && target.contains("/runs/")
}

#[test]
fn a_job_killed_mid_write_leaves_the_old_output_intact() {
    let server = server_with_small_lake();
    let proxy = FaultProxy::start(server.port());
    let args = ["--var", "run_date=2024-02-05", "--output", KPIS_OUTPUT];
    assert_success(&run_job(
        usagelake_s3(&proxy.endpoint()),
        "daily_kpis",
        &args,
    ));
    let before = published_state(&server, &proxy);

    proxy.set_rule(|method, target| {
        if is_run_write(method, target) {
            Fault::Stall
        } else {
            Fault::Forward
        }
    });
    let mut child = job_command(
        usagelake_s3(&proxy.endpoint()),
        "daily_kpis",
        &["--var", "run_date=2024-02-06", "--output", KPIS_OUTPUT],
    )
    .spawn()
    .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|r: &crate::fault_proxy::SeenRequest| r.fault == Fault::Stall)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never wrote: {seen:?}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
        seen.extend(proxy.take_seen());
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    proxy.set_rule(|_, _| Fault::Forward);
    assert_eq!(published_state(&server, &proxy), before);
}

#[test]
fn storage_faults_are_retried_or_fail_with_exit_3_publishing_nothing() {
    let server = server_with_small_lake();
    let proxy = FaultProxy::start(server.port());
    let first = ["--var", "run_date=2024-02-05", "--output", KPIS_OUTPUT];

    // Three writes answered 503 on the way: retries get the job through.
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&failures);
    proxy.set_rule(move |method, _| {
        if method == "PUT" && counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
            Fault::Status(503)
        } else {
            Fault::Forward
        }
    });
    assert_success(&run_job(
        usagelake_s3(&proxy.endpoint()),
        "daily_kpis",
        &first,
    ));
    let injected: Vec<_> = proxy
        .take_seen()
        .into_iter()
        .filter(|r| matches!(r.fault, Fault::Status(_)))
        .collect();
    assert_eq!(injected.len(), 3, "{injected:?}");
    assert!(
        injected
            .iter()
            .all(|r| r.target.starts_with("/lake/jobs/kpis/runs/")),
        "{injected:?}"
    );
    proxy.set_rule(|_, _| Fault::Forward);
    let before = published_state(&server, &proxy);
    let direct = direct("daily_kpis", &[("run_date", "2024-02-05")]);
    assert_eq!(before.1, direct);

    // A store that keeps failing, or never answers: exit 3 after the retries, nothing published.
    let second = [
        "--var",
        "run_date=2024-02-06",
        "--output",
        KPIS_OUTPUT,
        "--store-option",
        "max_retries=2",
        "--store-option",
        "timeout=1s",
    ];
    for fault in [Fault::Status(503), Fault::Stall] {
        proxy.set_rule(move |method, _| {
            if method == "PUT" {
                fault
            } else {
                Fault::Forward
            }
        });
        let started = Instant::now();
        let ran = run_job(usagelake_s3(&proxy.endpoint()), "daily_kpis", &second);
        let error = job_error(&ran, 3);
        assert!(error.contains("s3://lake/jobs/kpis/"), "{error}");
        let puts = proxy
            .take_seen()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .count();
        eprintln!(
            "{fault:?}: exit 3 after {puts} PUT(s) in {:?}",
            started.elapsed()
        );
        assert_eq!(puts, 3, "one try and two retries of the first write");
        proxy.set_rule(|_, _| Fault::Forward);
        assert_eq!(published_state(&server, &proxy), before);
    }
}
