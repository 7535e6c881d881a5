//! The command line: one-shot queries, formats, row limits, options and errors.

use std::io::Write;
use std::process::Stdio;

use crate::support::{csv_rows, run, run_err, run_ok, small_lake, usagelake};

fn lake_arg() -> String {
    small_lake().display().to_string()
}

#[test]
fn csv_is_the_default_when_stdout_is_not_a_terminal() {
    let out = run_ok(&["--lake", &lake_arg(), "-c", "SELECT 1 AS a, 'x,y' AS b"]);
    assert_eq!(out, "a,b\n1,\"x,y\"\n");
}

#[test]
fn repeated_commands_run_in_order() {
    let out = run_ok(&[
        "--lake",
        &lake_arg(),
        "-c",
        "SELECT 1 AS first",
        "-c",
        "SELECT 2 AS second; SELECT 3 AS third",
    ]);
    assert_eq!(out, "first\n1\nsecond\n2\nthird\n3\n");
}

#[test]
fn sql_file_and_stdin_run_every_statement() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "-- two statements\nSELECT 'a;b' AS s;\nSELECT 40 + 2 AS n;\n",
    )
    .unwrap();
    let out = run_ok(&["--lake", &lake_arg(), "-f", file.to_str().unwrap()]);
    assert_eq!(out, "s\na;b\nn\n42\n");

    let mut child = usagelake()
        .args(["--lake", &lake_arg()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 7 AS seven;\nSELECT 8 AS eight")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "seven\n7\neight\n8\n"
    );
}

const NESTED: &str = "SELECT 1 AS id, [1, 2] AS list, named_struct('k', 'v', 'n', 3) AS rec, \
     CAST(NULL AS VARCHAR) AS missing";

#[test]
fn every_format_prints_lists_and_structs() {
    let lake = lake_arg();
    let csv = run_ok(&["--lake", &lake, "--format", "csv", "-c", NESTED]);
    assert_eq!(csv, "id,list,rec,missing\n1,\"[1, 2]\",\"{k: v, n: 3}\",\n");
    let tsv = run_ok(&["--lake", &lake, "--format", "tsv", "-c", NESTED]);
    assert_eq!(tsv, "id\tlist\trec\tmissing\n1\t[1, 2]\t{k: v, n: 3}\t\n");
    let json = run_ok(&["--lake", &lake, "--format", "json", "-c", NESTED]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"id": 1, "list": [1, 2], "rec": {"k": "v", "n": 3}, "missing": null}])
    );
    let ndjson = run_ok(&["--lake", &lake, "--format", "ndjson", "-c", NESTED]);
    assert_eq!(ndjson.lines().count(), 1);
    assert!(ndjson.contains("\"list\":[1,2]"), "{ndjson}");
    let markdown = run_ok(&["--lake", &lake, "--format", "markdown", "-c", NESTED]);
    assert!(
        markdown.starts_with("| id | list | rec | missing |\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| 1 | [1, 2] | {k: v, n: 3} |"),
        "{markdown}"
    );
    let table = run_ok(&["--lake", &lake, "--format", "table", "-c", NESTED]);
    assert!(
        table.contains("[1, 2]") && table.contains("{k: v, n: 3}"),
        "{table}"
    );
    assert!(table.contains("NULL"), "{table}");
    assert!(table.trim_end().ends_with("1 row"), "{table}");
}

#[test]
fn row_limit_footer_says_how_many_rows_there_were() {
    let out = run_ok(&[
        "--lake",
        &lake_arg(),
        "--format",
        "table",
        "--max-rows",
        "3",
        "-c",
        "SELECT value FROM generate_series(1, 1500) AS t(value)",
    ]);
    assert!(out.trim_end().ends_with("1,500 rows (3 shown)"), "{out}");
    assert!(out.contains("│     3 │") || out.contains(" 3 "), "{out}");
    assert!(!out.contains(" 4 "), "{out}");

    let output = run(&[
        "--lake",
        &lake_arg(),
        "--max-rows",
        "2",
        "-c",
        "SELECT value FROM generate_series(1, 10) AS t(value)",
    ]);
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "value\n1\n2\n");
    let note = String::from_utf8(output.stderr).unwrap();
    assert!(note.contains("10 rows, 2 shown"), "{note}");
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let mut child = usagelake()
        .args(["--lake", &lake_arg(), "-c", "SELECT * FROM events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn tz_option_and_set_change_the_session_time_zone() {
    let out = run_ok(&[
        "--lake",
        &lake_arg(),
        "--tz",
        "Europe/Istanbul",
        "-c",
        "SELECT value FROM information_schema.df_settings WHERE name = 'usagelake.tz'",
        "-c",
        "SET usagelake.tz = 'America/Los_Angeles'",
        "-c",
        "SELECT value FROM information_schema.df_settings WHERE name = 'usagelake.tz'",
    ]);
    assert_eq!(out, "value\nEurope/Istanbul\nvalue\nAmerica/Los_Angeles\n");
}

#[test]
fn memory_limit_and_threads_are_accepted() {
    let out = run_ok(&[
        "--lake",
        &lake_arg(),
        "--memory-limit",
        "256m",
        "--threads",
        "1",
        "-c",
        "SELECT count(*) AS n FROM (SELECT user_id FROM events ORDER BY ts DESC)",
    ]);
    let rows = csv_rows(&out);
    assert_eq!(rows[0], vec!["n"]);
    assert!(rows[1][0].parse::<u64>().unwrap() > 1000, "{out}");
}

#[test]
fn missing_lake_is_a_one_line_error_with_the_fix() {
    let error = run_err(&["--lake", "/no/such/lake", "-c", "SELECT 1"]);
    assert!(error.contains("'/no/such/lake' does not exist"), "{error}");
    assert!(error.contains("usagelake gen --out"), "{error}");
}

#[test]
fn unknown_table_names_the_table() {
    let error = run_err(&["--lake", &lake_arg(), "-c", "SELECT * FROM evnts"]);
    assert!(error.contains("evnts"), "{error}");
    assert!(error.contains("events"), "lists the tables: {error}");
}

#[test]
fn bad_memory_limit_is_refused() {
    let error = run_err(&[
        "--lake",
        &lake_arg(),
        "--memory-limit",
        "4x",
        "-c",
        "SELECT 1",
    ]);
    assert!(error.contains("'4x'") && error.contains("4g"), "{error}");
}

#[test]
fn unterminated_string_is_refused_with_its_position() {
    let error = run_err(&["--lake", &lake_arg(), "-c", "SELECT 1;\nSELECT 'abc"]);
    assert!(error.contains("line 2"), "{error}");
    assert!(error.contains("never closed"), "{error}");
}

#[test]
fn a_failing_statement_stops_the_script_with_exit_code_1() {
    let output = run(&[
        "--lake",
        &lake_arg(),
        "-c",
        "SELECT 1 AS ok; SELECT nonsense FROM events; SELECT 2 AS never",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "ok\n1\n");
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("nonsense"), "{error}");
}

#[test]
fn unknown_option_is_a_usage_error() {
    let output = run(&["--frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8(output.stderr).unwrap();
    assert_eq!(error.trim_end().lines().count(), 1, "{error}");
    assert!(error.contains("--frobnicate"), "{error}");
}
