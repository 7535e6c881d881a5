//! The REPL through a pseudo-terminal, as a person types into it.

use rexpect::session::PtySession;

use crate::support::{interactive_usagelake, scratch_dir, small_lake};

const PROMPT: &str = "usagelake> ";

fn start_repl(state_dir: &str) -> PtySession {
    start_repl_on_terminal(state_dir, "dumb")
}

fn start_repl_on_terminal(state_dir: &str, term: &str) -> PtySession {
    let mut command = interactive_usagelake();
    command
        .args(["--lake", small_lake().to_str().unwrap()])
        .env("XDG_STATE_HOME", scratch_dir(state_dir))
        .env("TERM", term);
    let mut session = rexpect::spawn_with_options(
        command,
        rexpect::reader::Options::new()
            .timeout_ms(Some(30_000))
            .strip_ansi_escape_codes(false),
    )
    .expect("the REPL starts");
    session.exp_string(PROMPT).expect("a first prompt");
    session
}

#[test]
fn a_statement_spans_lines_until_its_semicolon() {
    let mut repl = start_repl("repl-multiline");
    repl.send_line("SELECT 40").unwrap();
    repl.send_line("  + 2 AS answer, 'a;b' AS text").unwrap();
    repl.send_line(";").unwrap();
    repl.exp_string("answer").unwrap();
    // rexpect reads bytes as Latin-1, so patterns stay ASCII and skip the box borders.
    repl.exp_regex(r"42[^\r\n]*a;b").unwrap();
    repl.exp_string("1 row").unwrap();
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn backslash_d_lists_and_describes_tables() {
    let mut repl = start_repl("repl-describe");
    repl.send_line("\\d").unwrap();
    repl.exp_string("surveys").unwrap();
    repl.exp_string("7 rows").unwrap();
    repl.send_line("\\d events").unwrap();
    repl.exp_regex(r#"ts[^\r\n]*Timestamp\([^\r\n]*"UTC"\)"#)
        .unwrap();
    repl.exp_string("user_id").unwrap();
    repl.send_line("\\d nowhere").unwrap();
    repl.exp_string("no table named 'nowhere'").unwrap();
    repl.send_line("\\zz").unwrap();
    repl.exp_string("unknown command \\zz").unwrap();
    repl.send_line("SELECT 'still here' AS s;").unwrap();
    repl.exp_string("still here").unwrap();
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn function_help_and_settings_commands_work() {
    let mut repl = start_repl("repl-help");
    repl.send_line("\\h date_trunc").unwrap();
    repl.exp_string("date_trunc (scalar function)").unwrap();
    repl.exp_string("Syntax:").unwrap();
    repl.send_line("\\df to_time").unwrap();
    repl.exp_string("to_timestamp_seconds").unwrap();
    repl.send_line("\\h usagelake_functions").unwrap();
    repl.exp_string("usagelake_functions (table function)")
        .unwrap();
    repl.exp_string("kind: Only functions of this kind")
        .unwrap();
    repl.send_line("\\df usagelake").unwrap();
    repl.exp_regex(r"usagelake_functions[^\r\n]*table[^\r\n]*Lists the functions")
        .unwrap();
    repl.send_line("\\h period_start").unwrap();
    repl.exp_string("period_start (scalar function)").unwrap();
    repl.send_line("\\x on").unwrap();
    repl.exp_string("Expanded display is on.").unwrap();
    repl.send_line("SELECT 5 AS five, 6 AS six;").unwrap();
    repl.exp_string("RECORD 1").unwrap();
    repl.exp_regex(r"six\s*\|\s*6").unwrap();
    repl.send_line("\\x off").unwrap();
    repl.send_line("\\pset format csv").unwrap();
    repl.exp_string("Output format is csv.").unwrap();
    repl.send_line("SELECT 'x' AS letter;").unwrap();
    repl.exp_regex(r"letter\r?\nx").unwrap();
    repl.send_line("\\timing").unwrap();
    repl.exp_string("Timing is on.").unwrap();
    repl.send_line("SELECT 1 AS one;").unwrap();
    repl.exp_regex(r"Time: \d+\.\d{3}s").unwrap();
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn ctrl_c_cancels_a_running_query_and_keeps_the_session() {
    let mut repl = start_repl("repl-cancel");
    repl.send_line(
        "SELECT count(*) FROM generate_series(1, 100000000000) AS t(v) WHERE v % 7 = 3;",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    repl.send_control('c').unwrap();
    repl.exp_string("Query cancelled.").unwrap();
    repl.exp_string(PROMPT).unwrap();
    repl.send_line("SELECT 2 + 2 AS four;").unwrap();
    repl.exp_regex(r"four[\s\S]*4").unwrap();
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn results_go_to_a_file_and_statements_come_from_one() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sql");
    let results = dir.path().join("results.csv");
    std::fs::write(&script, "SELECT 'from a file' AS origin;\n").unwrap();
    let mut repl = start_repl("repl-files");
    repl.send_line("\\pset format csv").unwrap();
    repl.send_line(&format!("\\o {}", results.display()))
        .unwrap();
    repl.send_line(&format!("\\i {}", script.display()))
        .unwrap();
    repl.send_line("SELECT 3 AS three;").unwrap();
    repl.send_line("\\o").unwrap();
    repl.send_line("SELECT 'screen' AS back;").unwrap();
    repl.exp_string("screen").unwrap();
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
    let written = std::fs::read_to_string(&results).unwrap();
    assert_eq!(written, "origin\nfrom a file\nthree\n3\n");
}

#[test]
fn tab_completes_table_names() {
    let mut repl = start_repl_on_terminal("repl-complete", "xterm");
    repl.send("SELECT count(*) AS n FROM invoi").unwrap();
    repl.send("\t").unwrap();
    repl.flush().unwrap();
    repl.exp_string("FROM invoices").unwrap();
    repl.send(";\r").unwrap();
    repl.flush().unwrap();
    repl.exp_string("1 row").unwrap();
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn history_is_kept_in_the_state_folder() {
    let state = scratch_dir("repl-history");
    let history = state.join("usagelake").join("history");
    let _ = std::fs::remove_file(&history);
    let mut repl = start_repl("repl-history");
    repl.send_line("SELECT 'remember me' AS m;").unwrap();
    repl.exp_string("remember me").unwrap();
    repl.send_line("\\q").unwrap();
    repl.exp_eof().unwrap();
    let text = std::fs::read_to_string(&history).expect("a history file");
    assert!(text.contains("SELECT 'remember me' AS m;"), "{text}");
}
