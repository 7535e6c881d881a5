//! Lakes in an S3 bucket (a real moto server on loopback): the same answers as on disk, hive
//! partitions pruned, SQL locations, per-table options, and bad input named in one line.

use std::process::{Command, Output};

use crate::fault_proxy::FaultProxy;
use crate::s3_server::S3Server;
use crate::support::{csv_rows, files_in_plan, run_ok, small_lake, usagelake};

/// The binary with its S3 store pointed at `endpoint`.
pub(crate) fn usagelake_s3(endpoint: &str) -> Command {
    let mut command = usagelake();
    S3Server::configure(&mut command, endpoint);
    command
}

pub(crate) fn output_ok(mut command: Command, args: &[&str]) -> String {
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "usagelake {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Standard error of a run that must fail with `code`, checked to be one `Error: ` line.
pub(crate) fn one_line_error(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    stderr
}

/// A server with the small lake uploaded to `s3://lake/small/`.
pub(crate) fn server_with_small_lake() -> S3Server {
    let server = S3Server::start();
    server.create_bucket("lake");
    let uploaded = server.upload_folder(small_lake(), "lake", "small");
    assert!(uploaded > 60, "{uploaded} files uploaded");
    server
}

fn query_file(name: &str) -> String {
    format!("{}/queries/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_lake_in_a_bucket_answers_like_the_same_lake_on_disk() {
    let server = server_with_small_lake();
    let local = small_lake().to_str().unwrap();
    let tables =
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1";
    for args in [
        vec!["-c", tables],
        vec!["-f", &query_file("stickiness.sql")],
        vec!["-f", &query_file("cohort_retention.sql")],
    ] {
        let remote = output_ok(
            usagelake_s3(&server.endpoint()),
            &[&["--lake", "s3://lake/small/"], args.as_slice()].concat(),
        );
        let on_disk = run_ok(&[&["--lake", local], args.as_slice()].concat());
        assert_eq!(remote, on_disk, "{args:?}");
        assert!(csv_rows(&remote).len() > 2, "{remote}");
    }
}

/// The events files the plan of a count over `filter` scans, and the requests the query made.
fn scan_through_proxy(proxy: &FaultProxy, filter: &str) -> (Vec<String>, usize) {
    let sql = format!("SELECT count(*) FROM events WHERE {filter}");
    let explain = output_ok(
        usagelake_s3(&proxy.endpoint()),
        &[
            "--lake",
            "s3://lake/small",
            "--max-rows",
            "0",
            "-c",
            &format!("EXPLAIN {sql}"),
        ],
    );
    let plan = csv_rows(&explain)
        .into_iter()
        .find(|row| row[0] == "physical_plan")
        .expect("a physical plan")[1]
        .clone();
    let files = files_in_plan(&plan);
    proxy.take_seen();
    output_ok(
        usagelake_s3(&proxy.endpoint()),
        &["--lake", "s3://lake/small", "-c", &sql],
    );
    (files, proxy.take_seen().len())
}

#[test]
fn time_ranges_prune_date_partitions_in_a_bucket() {
    let server = server_with_small_lake();
    let proxy = FaultProxy::start(server.port());
    let (pruned, pruned_requests) = scan_through_proxy(
        &proxy,
        "ts >= TIMESTAMP '2024-01-10 00:00:00' AND ts < TIMESTAMP '2024-01-12 00:00:00'",
    );
    assert_eq!(pruned.len(), 2, "{pruned:?}");
    assert!(pruned[0].contains("date=2024-01-10"), "{pruned:?}");
    assert!(pruned[1].contains("date=2024-01-11"), "{pruned:?}");
    // EXPLAIN names a few files of a long list and elides the rest; more than 2 is the point.
    let (all, all_requests) = scan_through_proxy(&proxy, "event <> 'no such event'");
    assert!(all.len() > 2, "{all:?}");
    eprintln!("requests: {pruned_requests} for 2 of 60 days, {all_requests} for all 60");
    assert!(
        pruned_requests < all_requests,
        "{pruned_requests} >= {all_requests}"
    );
}

#[test]
fn sql_and_table_options_reach_a_bucket() {
    let server = server_with_small_lake();
    let local = small_lake().to_str().unwrap();
    let count = "SELECT count(*) AS n FROM accounts";
    let expected = run_ok(&["--lake", local, "-c", count]);

    let created = output_ok(
        usagelake_s3(&server.endpoint()),
        &[
            "--table",
            &format!("accounts_local={local}/accounts.parquet"),
            "-c",
            "CREATE EXTERNAL TABLE accounts STORED AS PARQUET LOCATION 's3://lake/small/accounts.parquet'",
            "-c",
            count,
        ],
    );
    assert_eq!(created, expected);

    // An https:// or http:// table is one file: here, an object anyone may read, over plain HTTP.
    let accounts = std::fs::read(small_lake().join("accounts.parquet")).unwrap();
    server.put_public("lake", "public/accounts.parquet", &accounts);
    let over_http = output_ok(
        usagelake(),
        &[
            "--table",
            &format!(
                "accounts={}/lake/public/accounts.parquet",
                server.endpoint()
            ),
            "-c",
            count,
        ],
    );
    assert_eq!(over_http, expected);

    // The endpoint only in the table's options: no AWS_ENDPOINT in the environment.
    let lake = tempfile::tempdir().unwrap();
    std::fs::write(
        lake.path().join("usagelake.toml"),
        format!(
            "[tables.accounts]\nlocation = \"s3://lake/small/accounts.parquet\"\n\
             options = {{ aws_endpoint = \"{}\", aws_allow_http = \"true\" }}\n",
            server.endpoint()
        ),
    )
    .unwrap();
    let mut command = usagelake_s3(&server.endpoint());
    command
        .env_remove("AWS_ENDPOINT")
        .env_remove("AWS_ALLOW_HTTP");
    let configured = output_ok(
        command,
        &["--lake", lake.path().to_str().unwrap(), "-c", count],
    );
    assert_eq!(configured, expected);
}

#[test]
fn bad_storage_input_is_named_in_one_line() {
    let server = S3Server::start();
    server.create_bucket("lake");
    let run = |args: &[&str]| {
        usagelake_s3(&server.endpoint())
            .args(args)
            .output()
            .unwrap()
    };

    let error = one_line_error(
        &run(&["--lake", "s3://no-such-bucket/lake/", "-c", "SELECT 1"]),
        1,
    );
    assert!(error.contains("NoSuchBucket"), "{error}");
    assert!(
        error.contains("bucket 'no-such-bucket' does not exist"),
        "{error}"
    );

    let error = one_line_error(&run(&["--lake", "s3:///lake/", "-c", "SELECT 1"]), 1);
    assert!(
        error.contains("'s3:///lake/' is not a storage URL"),
        "{error}"
    );
    assert!(error.contains("s3://BUCKET/PREFIX/"), "{error}");

    let error = one_line_error(&run(&["--lake", "s4://lake/x", "-c", "SELECT 1"]), 1);
    assert!(error.contains("'s4'"), "{error}");

    let error = one_line_error(&run(&["--lake", "s3://lake/empty/", "-c", "SELECT 1"]), 1);
    assert!(error.contains("holds no tables"), "{error}");

    let error = one_line_error(
        &run(&[
            "--store-option",
            "aws_endpont=http://127.0.0.1:1",
            "--lake",
            "s3://lake/x/",
            "-c",
            "SELECT 1",
        ]),
        1,
    );
    assert!(error.contains("'aws_endpont'"), "{error}");
}

#[test]
fn wrong_credentials_are_named_in_one_line() {
    let server = S3Server::start_checking_credentials();
    let output = usagelake_s3(&server.endpoint())
        .args(["--lake", "s3://lake/small/", "-c", "SELECT 1"])
        .output()
        .unwrap();
    let error = one_line_error(&output, 1);
    assert!(error.contains("InvalidAccessKeyId"), "{error}");
    assert!(
        error.contains("the credentials were refused: check AWS_ACCESS_KEY_ID"),
        "{error}"
    );
}
