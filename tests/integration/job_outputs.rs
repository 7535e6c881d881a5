//! A table over several job outputs (`job_outputs = true` in `usagelake.toml`), in a real moto S3
//! bucket: it reads the union of the files each output's `_SUCCESS` manifest names, not a run in
//! flight that has no manifest yet, nor files beside a manifest that it does not name.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::fault_proxy::{Fault, FaultProxy};
use crate::jobs::{assert_success, job_command, job_sql, run_job};
use crate::object_storage::{one_line_error, output_ok, server_with_small_lake, usagelake_s3};
use crate::support::{csv_rows, run_ok, small_lake, usagelake};

const OUTPUTS: &str = "s3://lake/reports/daily_kpis/";

/// A lake whose only file is a `usagelake.toml` of `text`.
fn lake_with_config(text: &str) -> tempfile::TempDir {
    let lake = tempfile::tempdir().unwrap();
    std::fs::write(lake.path().join("usagelake.toml"), text).unwrap();
    lake
}

/// The rows of `daily_kpis` for `dates`, by the job's SQL as one plain query over the small lake.
fn daily_kpis_of(dates: &[&str]) -> String {
    let days: Vec<String> = dates
        .iter()
        .map(|date| {
            let sql = job_sql("daily_kpis", &[("run_date", date)]);
            format!("SELECT * FROM ({})", sql.trim_end().trim_end_matches(';'))
        })
        .collect();
    run_ok(&[
        "--lake",
        small_lake().to_str().unwrap(),
        &format!("--command={} ORDER BY day, plan", days.join(" UNION ALL ")),
    ])
}

#[test]
fn a_table_over_job_outputs_reads_the_union_of_their_manifests() {
    let server = server_with_small_lake();
    for date in ["2024-02-05", "2024-02-06"] {
        let output = format!("{OUTPUTS}date={date}/");
        let args = ["--var", &format!("run_date={date}"), "--output", &output];
        assert_success(&run_job(
            usagelake_s3(&server.endpoint()),
            "daily_kpis",
            &args,
        ));
    }

    // A third run, killed while it puts its manifest: its files are all written, but nothing
    // says they are the output, so they are a run in flight.
    let proxy = FaultProxy::start(server.port());
    proxy.set_rule(|method, target| {
        if method == "PUT" && target.ends_with("/_SUCCESS") {
            Fault::Stall
        } else {
            Fault::Forward
        }
    });
    let in_flight_output = format!("{OUTPUTS}date=2024-02-07/");
    let mut child = job_command(
        usagelake_s3(&proxy.endpoint()),
        "daily_kpis",
        &[
            "--var",
            "run_date=2024-02-07",
            "--output",
            &in_flight_output,
        ],
    )
    .spawn()
    .unwrap();
    let started = Instant::now();
    while !proxy.take_seen().iter().any(|r| r.fault == Fault::Stall) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never put its manifest"
        );
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let in_flight = server.list("lake", "reports/daily_kpis/date=2024-02-07/");
    assert!(
        in_flight.iter().any(|key| key.ends_with(".parquet")),
        "{in_flight:?}"
    );
    assert!(
        !in_flight.iter().any(|key| key.ends_with("_SUCCESS")),
        "{in_flight:?}"
    );

    // A stray copy of a published file beside a manifest (outside its run): read, it would
    // double that day's rows.
    let published = server.list("lake", "reports/daily_kpis/date=2024-02-05/runs/");
    let file = published
        .iter()
        .find(|key| key.ends_with(".parquet"))
        .unwrap();
    server.put_public(
        "lake",
        "reports/daily_kpis/date=2024-02-05/stray.parquet",
        &server.get("lake", file),
    );

    let lake = lake_with_config(&format!(
        "[tables.daily_kpis]\nlocation = \"{OUTPUTS}\"\njob_outputs = true\n"
    ));
    let read = output_ok(
        usagelake_s3(&server.endpoint()),
        &[
            "--lake",
            lake.path().to_str().unwrap(),
            "-c",
            "SELECT * FROM daily_kpis ORDER BY day, plan",
        ],
    );
    let expected = daily_kpis_of(&["2024-02-05", "2024-02-06"]);
    assert_eq!(read, expected);
    let days: Vec<String> = csv_rows(&read)[1..].iter().map(|r| r[0].clone()).collect();
    assert!(days.contains(&"2024-02-05".to_string()), "{read}");
    assert!(days.contains(&"2024-02-06".to_string()), "{read}");
    assert!(!days.contains(&"2024-02-07".to_string()), "{read}");
}

#[test]
fn a_folder_without_job_outputs_is_named_in_one_line() {
    let server = server_with_small_lake();
    let lake = lake_with_config(
        "[tables.daily_kpis]\nlocation = \"s3://lake/small/events/\"\njob_outputs = true\n",
    );
    let output = usagelake_s3(&server.endpoint())
        .args(["--lake", lake.path().to_str().unwrap(), "-c", "SELECT 1"])
        .output()
        .unwrap();
    let error = one_line_error(&output, 1);
    assert!(
        error.contains(
            "table 'daily_kpis': no job outputs under 's3://lake/small/events/' (prefixes holding a _SUCCESS manifest)"
        ),
        "{error}"
    );
}

#[test]
fn job_outputs_on_disk_are_read_the_same_way_and_must_be_parquet() {
    let outputs = tempfile::tempdir().unwrap();
    let publish = |date: &str, format: &str| {
        let output = outputs.path().join(format!("date={date}"));
        assert_success(&run_job(
            usagelake(),
            "daily_kpis",
            &[
                "--var",
                &format!("run_date={date}"),
                "--format",
                format,
                "--output",
                output.to_str().unwrap(),
            ],
        ));
    };
    publish("2024-01-20", "parquet");
    publish("2024-01-21", "parquet");
    let lake = lake_with_config(&format!(
        "[tables.daily_kpis]\nlocation = \"{}\"\njob_outputs = true\n",
        outputs.path().display()
    ));
    let read = |lake: &Path| {
        usagelake()
            .args(["--lake", lake.to_str().unwrap()])
            .arg("-c")
            .arg("SELECT * FROM daily_kpis ORDER BY day, plan")
            .output()
            .unwrap()
    };
    let output = read(lake.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        daily_kpis_of(&["2024-01-20", "2024-01-21"])
    );

    publish("2024-01-22", "csv");
    let error = one_line_error(&read(lake.path()), 1);
    assert!(
        error.contains("date=2024-01-22/_SUCCESS' names csv files, but tables read Parquet"),
        "{error}"
    );
}
