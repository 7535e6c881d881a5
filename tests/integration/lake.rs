//! Lakes: tables found by folder, hive partitions pruned by time ranges, schemas merged across
//! files, and bad files named in errors.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::parquet::arrow::ArrowWriter;

use crate::support::{csv_rows, files_in_plan, run_err, run_ok, small_lake};

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn ints(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn single_value(out: &str) -> String {
    let rows = csv_rows(out);
    assert_eq!(rows.len(), 2, "one header and one row expected: {out}");
    rows[1][0].clone()
}

#[test]
fn every_folder_and_parquet_file_of_a_lake_is_a_table() {
    let out = run_ok(&[
        "--lake",
        small_lake().to_str().unwrap(),
        "-c",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    ]);
    assert_eq!(
        out,
        "table_name\naccounts\nevents\nfeatures\ninvitations\ninvoices\nsubscriptions\nsurveys\n"
    );
}

#[test]
fn hive_date_folders_become_a_date_column() {
    let out = run_ok(&[
        "--lake",
        small_lake().to_str().unwrap(),
        "-c",
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'date'",
        "-c",
        "SELECT count(*) AS wrong FROM events WHERE date <> CAST(ts AS DATE)",
    ]);
    assert_eq!(out, "data_type\nDate32\nwrong\n0\n");
}

/// The files a plan's scan opens, as listed by `EXPLAIN`.
fn scanned_files(lake: &str, table_override: Option<&str>, filter: &str) -> Vec<String> {
    let sql = format!("EXPLAIN SELECT count(*) FROM events WHERE {filter}");
    let mut args = vec!["--lake", lake, "--max-rows", "0", "-c", &sql];
    if let Some(table) = table_override {
        args.extend(["--table", table]);
    }
    let out = run_ok(&args);
    let plan = csv_rows(&out)
        .into_iter()
        .find(|row| row[0] == "physical_plan")
        .expect("a physical plan")[1]
        .clone();
    files_in_plan(&plan)
}

#[test]
fn time_range_prunes_date_partitions_in_explain() {
    let lake = small_lake().to_str().unwrap();
    let filter = "ts >= TIMESTAMP '2024-01-10 00:00:00' AND ts < TIMESTAMP '2024-01-12 00:00:00'";
    let files = scanned_files(lake, None, filter);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].contains("date=2024-01-10"), "{files:?}");
    assert!(files[1].contains("date=2024-01-11"), "{files:?}");

    // The same folder without the lake's declaration is not pruned by a time range.
    let events = format!("events={}", small_lake().join("events").display());
    let unpruned = scanned_files(lake, Some(&events), filter);
    assert!(
        unpruned.iter().any(|f| f.contains("date=2024-02")),
        "{unpruned:?}"
    );
}

#[test]
fn pruned_and_unpruned_scans_count_the_same_rows() {
    let lake = small_lake().to_str().unwrap();
    let events = format!("events={}", small_lake().join("events").display());
    for filter in [
        "ts >= TIMESTAMP '2024-01-10 12:00:00' AND ts <= TIMESTAMP '2024-01-20 06:30:00'",
        "ts > TIMESTAMP '2024-02-01 00:00:00'",
        "TIMESTAMP '2024-01-15 00:00:00' > ts",
    ] {
        let sql = format!("SELECT count(*) FROM events WHERE {filter}");
        let pruned = single_value(&run_ok(&["--lake", lake, "-c", &sql]));
        let unpruned = single_value(&run_ok(&["--lake", lake, "--table", &events, "-c", &sql]));
        assert_eq!(pruned, unpruned, "{filter}");
        assert_ne!(pruned, "0", "{filter}");
    }
}

#[test]
fn a_new_nullable_column_in_a_later_file_is_merged() {
    let lake = tempfile::tempdir().unwrap();
    write_parquet(
        &lake.path().join("visits/part-1.parquet"),
        vec![("id", ints(&[1, 2])), ("page", strings(&["a", "b"]))],
    );
    write_parquet(
        &lake.path().join("visits/part-2.parquet"),
        vec![
            ("id", ints(&[3])),
            ("page", strings(&["c"])),
            ("referrer", strings(&["search"])),
        ],
    );
    let out = run_ok(&[
        "--lake",
        lake.path().to_str().unwrap(),
        "-c",
        "SELECT id, page, referrer FROM visits ORDER BY id",
    ]);
    assert_eq!(out, "id,page,referrer\n1,a,\n2,b,\n3,c,search\n");
}

#[test]
fn a_column_type_conflict_names_both_files_and_the_column() {
    let lake = tempfile::tempdir().unwrap();
    write_parquet(
        &lake.path().join("visits/part-1.parquet"),
        vec![("id", ints(&[1]))],
    );
    write_parquet(
        &lake.path().join("visits/part-2.parquet"),
        vec![("id", strings(&["x"]))],
    );
    let error = run_err(&["--lake", lake.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert!(error.contains("column 'id'"), "{error}");
    assert!(
        error.contains("part-1.parquet") && error.contains("part-2.parquet"),
        "{error}"
    );
}

#[test]
fn a_file_that_is_not_parquet_is_named() {
    let lake = tempfile::tempdir().unwrap();
    write_parquet(
        &lake.path().join("visits/good.parquet"),
        vec![("id", ints(&[1]))],
    );
    std::fs::write(
        lake.path().join("visits/broken.parquet"),
        b"this is not parquet at all",
    )
    .unwrap();
    let error = run_err(&["--lake", lake.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert!(error.contains("visits/broken.parquet"), "{error}");
    assert!(error.contains("not a readable Parquet file"), "{error}");
}

#[test]
fn table_option_adds_a_single_file_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plans.parquet");
    write_parquet(&file, vec![("plan", strings(&["free", "pro"]))]);
    let table = format!("plans={}", file.display());
    let out = run_ok(&[
        "--lake",
        small_lake().to_str().unwrap(),
        "--table",
        &table,
        "-c",
        "SELECT count(*) AS n FROM plans JOIN accounts USING (plan)",
    ]);
    let joined: u64 = single_value(&out).parse().unwrap();
    let expected: u64 = single_value(&run_ok(&[
        "--lake",
        small_lake().to_str().unwrap(),
        "-c",
        "SELECT count(*) FROM accounts WHERE plan IN ('free', 'pro')",
    ]))
    .parse()
    .unwrap();
    assert_eq!(joined, expected);
}

#[test]
fn a_misspelt_key_in_usagelake_toml_is_an_error_with_its_line() {
    let lake = tempfile::tempdir().unwrap();
    write_parquet(
        &lake.path().join("visits/a.parquet"),
        vec![("id", ints(&[1]))],
    );
    std::fs::write(
        lake.path().join("usagelake.toml"),
        "[tables.visits]\nlocation = \"visits\"\ntime_colum = \"ts\"\n",
    )
    .unwrap();
    let error = run_err(&["--lake", lake.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert!(error.contains("usagelake.toml:3:"), "{error}");
    assert!(error.contains("time_colum"), "{error}");
}

#[test]
fn a_declared_time_column_must_exist() {
    let lake = tempfile::tempdir().unwrap();
    write_parquet(
        &lake.path().join("visits/a.parquet"),
        vec![("id", ints(&[1]))],
    );
    std::fs::write(
        lake.path().join("usagelake.toml"),
        "[tables.visits]\nlocation = \"visits\"\ntime_column = \"ts\"\n",
    )
    .unwrap();
    let error = run_err(&["--lake", lake.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert!(
        error.contains("time_column 'ts' is not a column"),
        "{error}"
    );
    assert!(error.contains("id"), "lists the columns: {error}");
}
