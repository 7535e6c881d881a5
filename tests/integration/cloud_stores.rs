//! Lakes and job outputs in Google Cloud Storage (`gs://`, on fake-gcs-server) and Azure Blob
//! Storage (`az://`, on Azurite): the same answers as on disk, hive partitions pruned, jobs
//! published and re-run, and bad input named. Each test body runs against both emulators, through
//! the environment variables a user would set, and a [`FaultProxy`] counts the requests where a
//! test needs to know which objects were read.
//!
//! What fake-gcs-server cannot do: object_store writes GCS objects with the XML API's
//! `PUT /BUCKET/OBJECT`, which fake-gcs-server answers `400 invalid uploadType` (it implements the
//! JSON API's uploads only). So on GCS the lake is uploaded through the JSON API, reads are tested
//! in full, and a job writing to `gs://` is tested to fail with exit code 3 publishing nothing.

use std::collections::BTreeSet;
use std::process::Command;

use crate::cloud_emulators::{AzuriteServer, CloudEmulator, GcsServer};
use crate::fault_proxy::FaultProxy;
use crate::jobs::{assert_success, direct, job_error, manifest, parquet_rows, published, run_job};
use crate::object_storage::{one_line_error, output_ok};
use crate::support::{csv_rows, run_ok, small_lake, usagelake};

/// The binary with `cloud`'s store pointed at `endpoint`.
fn usagelake_on(cloud: &dyn CloudEmulator, endpoint: &str) -> Command {
    let mut command = usagelake();
    cloud.configure(&mut command, endpoint);
    command
}

/// `cloud` with a bucket `lake` holding the small lake under `small/`.
fn with_small_lake(cloud: &dyn CloudEmulator) {
    cloud.create_bucket("lake");
    let uploaded = cloud.upload_folder(small_lake(), "lake", "small");
    assert!(uploaded > 60, "{uploaded} files uploaded");
}

fn query_file(name: &str) -> String {
    format!("{}/queries/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The `date=` partition of each GET of an events file through `proxy` since it was last asked
/// (listings are not reads), one entry a request.
fn partition_reads(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .take_seen()
        .into_iter()
        .filter(|request| request.method == "GET")
        .filter_map(|request| {
            // GCS's client percent-escapes the object name, `/` and `=` included.
            let target = request.target.split('?').next().unwrap();
            let query = format!("path={target}");
            let (_, path) = url::form_urlencoded::parse(query.as_bytes())
                .next()
                .unwrap();
            if !path.ends_with(".parquet") || !path.contains("/events/") {
                return None;
            }
            path.split('/')
                .find(|part| part.starts_with("date="))
                .map(str::to_string)
        })
        .collect()
}

/// The partitions whose files `sql` reads beyond what opening the lake reads (DataFusion reads
/// every file's footer to infer the schema): the reads of a run of `sql` less those of a run of
/// `SELECT 1`, both through `proxy`.
fn partitions_read_by(
    cloud: &dyn CloudEmulator,
    proxy: &FaultProxy,
    lake: &str,
    sql: &str,
) -> BTreeSet<String> {
    let run = |sql: &str| {
        proxy.take_seen();
        output_ok(
            usagelake_on(cloud, &proxy.endpoint()),
            &["--lake", lake, "-c", sql],
        );
        partition_reads(proxy)
    };
    let mut opening = run("SELECT 1");
    let mut read = BTreeSet::new();
    for partition in run(sql) {
        match opening.iter().position(|p| *p == partition) {
            Some(at) => {
                opening.swap_remove(at);
            }
            None => {
                read.insert(partition);
            }
        }
    }
    read
}

fn lake_answers_like_disk_and_prunes_partitions(cloud: &dyn CloudEmulator) {
    with_small_lake(cloud);
    let lake = format!("{}://lake/small/", cloud.scheme());
    let local = small_lake().to_str().unwrap();
    for script in ["stickiness.sql", "cohort_retention.sql"] {
        let args = ["-f", &query_file(script)];
        let remote = output_ok(
            usagelake_on(cloud, &cloud.process().endpoint()),
            &[&["--lake", lake.as_str()], &args[..]].concat(),
        );
        let on_disk = run_ok(&[&["--lake", local], &args[..]].concat());
        assert_eq!(remote, on_disk, "{script}");
        assert!(csv_rows(&remote).len() > 2, "{remote}");
    }

    // A filter on the partitions' time range reads only those days' files.
    let proxy = FaultProxy::start(cloud.process().port());
    let two_days = "SELECT count(DISTINCT user_id) AS n FROM events \
         WHERE ts >= TIMESTAMP '2024-01-10 00:00:00' AND ts < TIMESTAMP '2024-01-12 00:00:00'";
    assert_eq!(
        partitions_read_by(cloud, &proxy, &lake, two_days),
        BTreeSet::from(["date=2024-01-10".to_string(), "date=2024-01-11".to_string()])
    );
    assert_eq!(
        output_ok(
            usagelake_on(cloud, &proxy.endpoint()),
            &["--lake", &lake, "-c", two_days]
        ),
        run_ok(&["--lake", local, "-c", two_days])
    );
    // Without the filter it reads them all: the request log does see every read.
    let all = partitions_read_by(
        cloud,
        &proxy,
        &lake,
        "SELECT count(DISTINCT user_id) FROM events",
    );
    assert!(all.len() > 50, "{all:?}");
}

#[test]
fn a_lake_in_gcs_answers_like_disk_and_prunes_partitions() {
    lake_answers_like_disk_and_prunes_partitions(&GcsServer::start());
}

#[test]
fn a_lake_in_azure_answers_like_disk_and_prunes_partitions() {
    lake_answers_like_disk_and_prunes_partitions(&AzuriteServer::start());
}

/// The keys of the files `manifest` names, under `prefix`, sorted.
fn named_files(manifest: &serde_json::Value, prefix: &str) -> Vec<String> {
    let mut named: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{prefix}/{}", f["path"].as_str().unwrap()))
        .collect();
    named.sort();
    named
}

#[test]
fn a_job_publishes_to_azure_and_a_rerun_replaces_it() {
    let cloud = AzuriteServer::start();
    cloud.create_bucket("lake");
    let output = "az://lake/jobs/daily_kpis/";
    let args = [
        "--var",
        "run_date=2024-01-31",
        "--output",
        output,
        "--partition-by",
        "plan",
    ];
    let expected = direct("daily_kpis", &[("run_date", "2024-01-31")]);
    let read_back = || {
        output_ok(
            usagelake_on(&cloud, &cloud.process().endpoint()),
            &[
                "--table",
                &format!("t={output}"),
                "-c",
                "SELECT day, plan, events, active_users, active_accounts, signups, features_used FROM t ORDER BY plan",
            ],
        )
    };
    let mut run_ids = Vec::new();
    for _ in 0..2 {
        assert_success(&run_job(
            usagelake_on(&cloud, &cloud.process().endpoint()),
            "daily_kpis",
            &args,
        ));
        let manifest = manifest(&cloud.get("lake", "jobs/daily_kpis/_SUCCESS"));
        let named = named_files(&manifest, "jobs/daily_kpis");
        assert!(named.iter().all(|f| f.contains("/plan=")), "{named:?}");
        // Only this run's files are left: a re-run removes the older run's.
        assert_eq!(cloud.list("lake", "jobs/daily_kpis/runs"), named);
        let rows: i64 = named
            .iter()
            .map(|key| parquet_rows(cloud.get("lake", key)))
            .sum();
        assert_eq!(rows, manifest["rows"].as_i64().unwrap());
        assert_eq!(rows as usize, expected.lines().count() - 1);
        assert_eq!(read_back(), expected);
        run_ids.push(manifest["run_id"].clone());
    }
    assert_ne!(run_ids[0], run_ids[1]);
}

#[test]
fn a_job_reads_a_gcs_lake_but_cannot_write_to_fake_gcs_server() {
    let cloud = GcsServer::start();
    with_small_lake(&cloud);
    let endpoint = cloud.process().endpoint();
    let expected = direct("daily_kpis", &[("run_date", "2024-01-31")]);

    // Reading the lake from GCS, publishing on disk: the job's SQL result.
    let out = tempfile::tempdir().unwrap();
    let mut command = usagelake_on(&cloud, &endpoint);
    command.args([
        "run",
        &query_file("daily_kpis.sql"),
        "--lake",
        "gs://lake/small/",
    ]);
    let ran = command
        .args(["--var", "run_date=2024-01-31", "--output"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_success(&ran);
    assert_eq!(
        published(usagelake(), out.path().to_str().unwrap(), "plan"),
        expected
    );

    // Writing to GCS: the emulator refuses object_store's XML API upload, so the job fails
    // with exit code 3 and publishes nothing (see this module's doc).
    let ran = run_job(
        usagelake_on(&cloud, &endpoint),
        "daily_kpis",
        &[
            "--var",
            "run_date=2024-01-31",
            "--output",
            "gs://lake/jobs/daily_kpis/",
        ],
    );
    let error = job_error(&ran, 3);
    assert!(error.contains("gs://lake/jobs/daily_kpis/runs/"), "{error}");
    assert!(
        error.contains("PUT")
            && error.contains("400 Bad Request")
            && error.contains("invalid uploadType"),
        "{error}"
    );
    assert_eq!(cloud.list("lake", "jobs"), Vec::<String>::new());
}

/// A query and a job on `{scheme}://no-such-bucket/`: exit codes 1 and 3, and errors naming it.
fn a_missing_bucket_is_named(cloud: &dyn CloudEmulator, missing: &str) {
    let endpoint = cloud.process().endpoint();
    let location = format!("{}://no-such-bucket/lake/", cloud.scheme());
    let output = usagelake_on(cloud, &endpoint)
        .args([
            "--lake",
            &location,
            "--store-option",
            "max_retries=0",
            "-c",
            "SELECT 1",
        ])
        .output()
        .unwrap();
    let error = one_line_error(&output, 1);
    assert!(error.contains(&format!("'{location}'")), "{error}");
    assert!(error.contains(missing), "{error}");

    let ran = run_job(
        usagelake_on(cloud, &endpoint),
        "daily_kpis",
        &[
            "--var",
            "run_date=2024-01-31",
            "--output",
            &location,
            "--store-option",
            "max_retries=0",
        ],
    );
    let error = job_error(&ran, 3);
    assert!(error.contains(&format!("'{location}'")), "{error}");
    assert!(error.contains(missing), "{error}");
}

#[test]
fn a_missing_gcs_bucket_and_a_bad_service_account_are_named() {
    let cloud = GcsServer::start();
    // fake-gcs-server answers a missing bucket's listing 500 "no bucket named ..." (GCS answers
    // 404 NoSuchBucket); the hint names what to check.
    a_missing_bucket_is_named(&cloud, "check that bucket 'no-such-bucket' exists");

    // fake-gcs-server checks no credentials, so wrong ones cannot be refused; a service-account
    // key that is not one is named before any request.
    let output = usagelake()
        .env("GOOGLE_SERVICE_ACCOUNT_KEY", "not json")
        .args(["--lake", "gs://lake/small/", "-c", "SELECT 1"])
        .output()
        .unwrap();
    let error = one_line_error(&output, 1);
    assert!(error.contains("'gs://lake/small/'"), "{error}");
    assert!(
        error.contains("Unable to decode service account file"),
        "{error}"
    );
}

#[test]
fn a_missing_azure_container_and_wrong_credentials_are_named() {
    let cloud = AzuriteServer::start();
    a_missing_bucket_is_named(
        &cloud,
        "container 'no-such-bucket' does not exist: check its name",
    );

    // A key Azurite does not have: every request is refused.
    cloud.create_bucket("lake");
    let wrong_key = |cloud: &AzuriteServer| {
        let mut command = usagelake_on(cloud, &cloud.process().endpoint());
        command.env("AZURE_STORAGE_ACCOUNT_KEY", "d3Jvbmcta2V5");
        command
    };
    let output = wrong_key(&cloud)
        .args(["--lake", "az://lake/small/", "-c", "SELECT 1"])
        .output()
        .unwrap();
    let error = one_line_error(&output, 1);
    assert!(error.contains("AuthorizationFailure"), "{error}");
    assert!(
        error.contains("the credentials were refused: check AZURE_STORAGE_ACCOUNT_NAME"),
        "{error}"
    );
    let ran = run_job(
        wrong_key(&cloud),
        "daily_kpis",
        &[
            "--var",
            "run_date=2024-01-31",
            "--output",
            "az://lake/jobs/daily_kpis/",
        ],
    );
    let error = job_error(&ran, 3);
    assert!(
        error.starts_with("Error: manifest 'az://lake/jobs/daily_kpis/_SUCCESS': "),
        "{error}"
    );
    assert!(error.contains("AuthorizationFailure"), "{error}");
    assert!(
        error.contains("the credentials were refused: check AZURE_STORAGE_ACCOUNT_NAME"),
        "{error}"
    );
    assert_eq!(cloud.list("lake", ""), Vec::<String>::new());
}
