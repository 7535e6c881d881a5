//! The Flight SQL server as BI tools and notebooks meet it: the Python ADBC driver
//! (`adbc-driver-flightsql`) and `flightsql-dbapi` with SQLAlchemy (what Superset uses), from PyPI,
//! against the real `usagelake serve`. Answers are checked against the same SQL run by the
//! command line.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::python::python;
use crate::server::Server;
use crate::support::{csv_rows, run_ok, sample_lake, scratch_dir};

const USER: [&str; 4] = ["--user", "ann", "--password", "s3cret:pw"];

/// Runs the Python client with `args` on `steps` and returns one result per step.
fn client(uri: &str, args: &[&str], steps: Value) -> Vec<Value> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/flight_client.py");
    let mut child = std::process::Command::new(python())
        .arg(script)
        .arg(uri)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().expect("the client runs");
    assert!(
        output.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per step"))
        .collect();
    assert_eq!(
        results.len(),
        steps.as_array().unwrap().len(),
        "{results:?}"
    );
    results
}

/// The rows of `sql` on the sample lake as the command line prints them, without the header.
fn cli_rows(sql: &str) -> Vec<Vec<String>> {
    let lake = sample_lake().display().to_string();
    let mut rows = csv_rows(&run_ok(&["--lake", &lake, "--format", "csv", "-c", sql]));
    rows.remove(0);
    rows
}

/// A client's rows as the text the command line prints for them.
fn as_text(result: &Value) -> Vec<Vec<String>> {
    let rows = result["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {result}"));
    rows.iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|value| match value {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

fn error_of(result: &Value) -> &str {
    result["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error was expected, got {result}"))
}

/// The step failed, with `part` in its message.
fn assert_error(result: &Value, part: &str) {
    let error = error_of(result);
    assert!(error.contains(part), "expected {part:?} in: {error}");
}

#[test]
fn adbc_answers_metric_queries_and_parameters_as_the_command_line_does() {
    let server = Server::start(&USER);
    let by_literal = "SELECT day, dau, wau, mau FROM active_users('events', since => DATE '2024-12-01') ORDER BY day";
    let results = client(
        &server.uri("grpc"),
        &USER[..],
        json!([
            {"op": "query", "sql": by_literal},
            // A placeholder among a table function's arguments, bound before the function plans.
            {"op": "query", "sql": "SELECT day, dau, wau, mau FROM active_users('events', since => ?) ORDER BY day",
             "params": [{"date": "2024-12-01"}]},
            {"op": "query", "sql": "SELECT user_id, event, plan FROM events WHERE user_id = $1 AND event <> $2 ORDER BY ts, event",
             "params": [42, "page_view"]},
            {"op": "query", "sql": "SELECT cohort, period_number, cohort_size, retained FROM cohort_retention('events', period => 'month', periods => 3) ORDER BY cohort, period_number"},
        ]),
    );
    let expected = cli_rows(by_literal);
    assert_eq!(
        expected.len(),
        30,
        "the sample lake's 365 days end on 2024-12-30"
    );
    assert_eq!(as_text(&results[0]), expected);
    assert_eq!(as_text(&results[1]), expected);
    assert_eq!(
        as_text(&results[2]),
        cli_rows(
            "SELECT user_id, event, plan FROM events WHERE user_id = 42 AND event <> 'page_view' ORDER BY ts, event"
        )
    );
    assert_eq!(
        results[2]["types"],
        json!(["int64", "string", "string"]),
        "strings arrive as classic Utf8, not views"
    );
    assert_eq!(
        as_text(&results[3]),
        cli_rows(
            "SELECT cohort, period_number, cohort_size, retained FROM cohort_retention('events', period => 'month', periods => 3) ORDER BY cohort, period_number"
        )
    );
}

#[test]
fn adbc_browses_the_catalog_and_the_server_describes_itself() {
    let server = Server::start(&USER);
    let results = client(
        &server.uri("grpc"),
        &USER[..],
        json!([
            {"op": "get_objects"},
            {"op": "table_schema", "table": "events"},
            {"op": "table_types"},
            {"op": "info"},
        ]),
    );
    let columns = cli_rows(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position",
    );
    let columns: Vec<Value> = columns.into_iter().map(|row| json!(row[0])).collect();
    assert_eq!(
        results[0]["catalogs"]["datafusion"]["public"]["events"],
        json!(columns)
    );
    let tables: Vec<String> = results[0]["catalogs"]["datafusion"]["public"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        tables,
        [
            "accounts",
            "events",
            "features",
            "invitations",
            "invoices",
            "subscriptions",
            "surveys"
        ]
    );
    let schema = results[1]["columns"].as_array().unwrap();
    assert_eq!(schema.len(), columns.len());
    assert_eq!(schema[0], json!(["ts", "timestamp[us, tz=UTC]"]));
    assert!(schema.contains(&json!(["event", "string"])), "{schema:?}");
    assert_eq!(
        results[2]["table_types"],
        json!(["LOCAL TEMPORARY", "TABLE", "VIEW"])
    );
    assert_eq!(results[3]["info"]["vendor_name"], "usagelake");
}

#[test]
fn a_wrong_password_or_none_is_unauthenticated() {
    let server = Server::start(&USER);
    let query = json!([{"op": "query", "sql": "SELECT 1"}]);
    let wrong = client(
        &server.uri("grpc"),
        &["--user", "ann", "--password", "S3cret:pw"],
        query.clone(),
    );
    assert_error(&wrong[0], "UNAUTHENTICATED");
    assert_error(&wrong[0], "wrong user name or password");
    let unknown = client(
        &server.uri("grpc"),
        &["--user", "bob", "--password", "s3cret:pw"],
        query.clone(),
    );
    assert_error(&unknown[0], "UNAUTHENTICATED");
    let anonymous = client(&server.uri("grpc"), &[], query);
    assert_error(&anonymous[0], "UNAUTHENTICATED");
}

#[test]
fn a_read_only_server_refuses_each_write_and_a_writable_one_stays_in_the_lake() {
    let steps = json!([
        {"op": "query", "sql": "CREATE EXTERNAL TABLE secrets STORED AS CSV LOCATION '/etc'"},
        {"op": "query", "sql": "SELECT * FROM '/etc/passwd'"},
        {"op": "query", "sql": "COPY (SELECT 1 AS a) TO '/tmp/usagelake-copy.csv'"},
        {"op": "query", "sql": "SET datafusion.runtime.memory_limit = '100G'"},
        {"op": "query", "sql": "SET usagelake.tz = 'America/Los_Angeles'"},
        {"op": "query", "sql": "SELECT day, dau FROM active_users('events', since => DATE '2024-03-09', until => DATE '2024-03-11') ORDER BY day"},
    ]);
    let read_only = Server::start(&[]);
    let results = client(&read_only.uri("grpc"), &[], steps.clone());
    assert_error(
        &results[0],
        "CreateExternalTable is not allowed: the server is read-only",
    );
    assert_error(
        &results[1],
        "table 'datafusion.public./etc/passwd' not found",
    );
    assert_error(&results[2], "COPY is not allowed");
    assert_error(
        &results[3],
        "SET datafusion.runtime.memory_limit is not allowed",
    );
    assert!(!std::path::Path::new("/tmp/usagelake-copy.csv").exists());
    // The connection's own time zone is allowed, and the metric functions follow it.
    assert_eq!(results[4]["rows"], json!([]));
    assert_eq!(
        as_text(&results[5]),
        cli_rows(
            "SELECT day, dau FROM active_users('events', since => DATE '2024-03-09', until => DATE '2024-03-11', tz => 'America/Los_Angeles') ORDER BY day"
        )
    );

    let writable = Server::start(&["--allow-writes"]);
    let results = client(&writable.uri("grpc"), &[], steps);
    assert_error(
        &results[0],
        "external table location '/etc' is outside the lake",
    );
    assert_error(
        &results[2],
        "COPY output '/tmp/usagelake-copy.csv' is outside the lake",
    );
    assert_error(
        &results[3],
        "SET datafusion.runtime.memory_limit is not allowed",
    );
}

#[test]
fn sqlalchemy_reflects_the_lake_as_superset_does() {
    let server = Server::start(&USER);
    let sql = "SELECT plan, count(*) AS events FROM events GROUP BY plan ORDER BY plan";
    let results = client(
        &server.uri("grpc"),
        &USER[..],
        json!([{"op": "sqlalchemy", "sql": sql}]),
    );
    let result = &results[0];
    assert_eq!(result["schemas"], json!(["public"]), "{result}");
    assert_eq!(
        result["tables"],
        json!([
            "accounts",
            "events",
            "features",
            "invitations",
            "invoices",
            "subscriptions",
            "surveys"
        ])
    );
    let columns = result["columns"]["events"].as_array().unwrap();
    assert_eq!(columns[0], json!(["ts", "TIMESTAMP"]));
    assert_eq!(columns[1], json!(["user_id", "BIGINT"]));
    assert_eq!(as_text(result), cli_rows(sql));
}

#[test]
fn a_ten_million_row_result_streams_in_bounded_server_memory() {
    let server = Server::start(&[]);
    let before = server.memory_kb("VmRSS");
    let results = client(
        &server.uri("grpc"),
        &[],
        json!([{"op": "stream_count", "sql": "SELECT value, value * 2 AS doubled FROM generate_series(1, 10000000)"}]),
    );
    assert_eq!(results[0]["rows"], 10_000_000, "{}", results[0]);
    assert!(
        results[0]["batches"].as_u64().unwrap() >= 100,
        "{}",
        results[0]
    );
    // The result is 160 MB of Arrow data; streamed, the server holds a few batches of it.
    let growth_mb = server.memory_kb("VmHWM").saturating_sub(before) / 1024;
    assert!(
        growth_mb < 80,
        "the server's peak memory grew by {growth_mb} MB"
    );
}

#[test]
fn a_client_that_hangs_up_mid_stream_stops_its_query() {
    // One slot and no queue: while the abandoned query ran, every other query would be refused.
    let server = Server::start(&["--max-concurrent", "1", "--max-queued", "0"]);
    let endless = "SELECT value FROM generate_series(1, 100000000000)";
    let results = client(
        &server.uri("grpc"),
        &[],
        json!([{"op": "read_one_close", "sql": endless}]),
    );
    assert!(
        results[0]["first_batch_rows"].as_u64().unwrap() > 0,
        "{}",
        results[0]
    );
    let started = Instant::now();
    loop {
        let next = client(
            &server.uri("grpc"),
            &[],
            json!([{"op": "query", "sql": "SELECT 41 + 1 AS answer"}]),
        );
        if next[0].get("rows").is_some() {
            assert_eq!(next[0]["rows"], json!([[42]]));
            break;
        }
        assert!(
            error_of(&next[0]).contains("RESOURCE_EXHAUSTED")
                || error_of(&next[0]).contains("busy"),
            "{}",
            next[0]
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the abandoned query still holds its slot after 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn thirty_two_clients_at_once_get_every_answer() {
    let server = Server::start(&["--max-queued", "64"]);
    let results = client(
        &server.uri("grpc"),
        &[],
        json!([{"op": "concurrent", "clients": 32, "seconds": 5,
                "sql": "SELECT count(*) FROM events WHERE user_id % 7 = 3"}]),
    );
    assert_eq!(results[0]["errors"], json!([]), "{}", results[0]);
    let queries = results[0]["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 32);
    assert!(
        queries.iter().all(|n| n.as_u64().unwrap() >= 1),
        "{}",
        results[0]
    );
}

#[test]
fn a_query_past_its_time_limit_is_stopped_with_deadline_exceeded() {
    let server = Server::start(&["--query-timeout", "1s"]);
    let started = Instant::now();
    let results = client(
        &server.uri("grpc"),
        &[],
        json!([
            {"op": "query", "sql": "SELECT count(*) FROM generate_series(1, 100000000000)"},
            {"op": "query", "sql": "SELECT 1 AS still_serving"},
        ]),
    );
    let error = error_of(&results[0]);
    assert!(
        error.contains("DEADLINE_EXCEEDED")
            || error.contains("ran longer than the server's limit of 1 s"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(results[1]["rows"], json!([[1]]));
}

#[test]
fn tls_clients_connect_with_the_servers_certificate() {
    let dir = scratch_dir("tls");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let mut args = vec![
        "--tls-cert",
        cert_arg.as_str(),
        "--tls-key",
        key_arg.as_str(),
    ];
    args.extend(USER);
    let server = Server::start(&args);
    let mut tls_args = vec!["--tls-root", cert_arg.as_str()];
    tls_args.extend(&USER[..]);
    let query = json!([{"op": "query", "sql": "SELECT count(*) AS events FROM events"}]);
    let results = client(&server.uri("grpc+tls"), &tls_args, query.clone());
    assert_eq!(
        as_text(&results[0]),
        cli_rows("SELECT count(*) AS events FROM events")
    );
    let plaintext = client(&server.uri("grpc"), &USER[..], query);
    assert!(
        plaintext[0].get("error").is_some(),
        "a plaintext client reached a TLS server: {}",
        plaintext[0]
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let server = Server::start(&[]);
    let (status, log) = server.terminate(Duration::from_secs(40));
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("stopping"), "{log}");
}

/// The users-file line `usagelake hash-password` prints for a password given on stdin.
fn users_line(user: &str, password: &str) -> String {
    let mut hashing = crate::support::usagelake()
        .args(["hash-password", "--user", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hashing
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let output = hashing.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_users_file_made_by_hash_password_lets_its_users_in() {
    let line = users_line("carol", "correct horse");
    assert!(line.starts_with("carol:$argon2id$"), "{line}");
    assert!(!line.contains("correct horse"));
    let no_password = crate::support::run_err(&["hash-password", "--user", "carol"]);
    assert!(
        no_password.contains("no password on standard input"),
        "{no_password}"
    );
    let users = scratch_dir("users").join("users");
    std::fs::write(&users, format!("# analysts\n{line}")).unwrap();

    let server = Server::start(&["--users", users.to_str().unwrap()]);
    let query = json!([{"op": "query", "sql": "SELECT 7 AS n"}]);
    let admitted = client(
        &server.uri("grpc"),
        &["--user", "carol", "--password", "correct horse"],
        query.clone(),
    );
    assert_eq!(admitted[0]["rows"], json!([[7]]));
    let refused = client(
        &server.uri("grpc"),
        &["--user", "carol", "--password", "correct horse\n"],
        query,
    );
    assert_error(&refused[0], "UNAUTHENTICATED");
}

/// A lake whose `usagelake.toml` names the sample lake's events and says how to serve it.
fn lake_with_server_section(name: &str, server_section: &str) -> std::path::PathBuf {
    let lake = scratch_dir(name);
    let events = sample_lake().join("events");
    std::fs::write(
        lake.join("usagelake.toml"),
        format!(
            "[tables.events]\nlocation = \"{}\"\ntime_column = \"ts\"\ndate_partition = \"date\"\n\n[server]\n{server_section}",
            events.display()
        ),
    )
    .unwrap();
    lake
}

#[test]
fn the_lakes_server_section_sets_what_the_command_line_does_not() {
    let lake =
        lake_with_server_section("served-lake", "users = \"users\"\nquery_timeout = \"1s\"\n");
    std::fs::write(lake.join("users"), users_line("ann", "pw")).unwrap();
    let server = Server::start_on(&lake, &[]);
    let steps = json!([
        {"op": "query", "sql": "SELECT count(*) AS events FROM events"},
        {"op": "query", "sql": "SELECT count(*) FROM generate_series(1, 100000000000)"},
    ]);
    let anonymous = client(&server.uri("grpc"), &[], steps.clone());
    assert_error(&anonymous[0], "UNAUTHENTICATED");
    let ann = client(
        &server.uri("grpc"),
        &["--user", "ann", "--password", "pw"],
        steps,
    );
    assert_eq!(
        as_text(&ann[0]),
        cli_rows("SELECT count(*) AS events FROM events")
    );
    assert_error(&ann[1], "limit of 1 s");
}

#[test]
fn a_bad_server_section_stops_the_server_at_start_naming_the_key() {
    let lake = lake_with_server_section("badly-served-lake", "query_timeout = \"soon\"\n");
    let lake_arg = lake.display().to_string();
    let error = crate::support::run_err(&["serve", "--addr", "127.0.0.1:0", "--lake", &lake_arg]);
    assert!(
        error.contains("usagelake.toml [server] query_timeout: 'soon' is not a duration"),
        "{error}"
    );
}
