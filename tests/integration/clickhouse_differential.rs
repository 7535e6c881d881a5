//! Differential tests against ClickHouse itself: random event logs, written to Parquet, asked the
//! same question by our functions (an in-process session with every metric function, as the
//! binary makes it) and by ClickHouse (chdb from PyPI, in `tests/clients/clickhouse_reference.py`,
//! reading the same files with `file(glob, Parquet)`); the answers must be equal, actor by actor.
//!
//! The logs have no two events of one actor at the same second: ClickHouse sorts such ties in an
//! order it leaves undefined (an unstable sort), where ours is fixed. Gaps between events run from
//! a second to a day, so that windows and time conditions hold and fail at many lengths.
//!
//! Each question is a [`Case`]: a name and the full SQL for each engine, so that questions that
//! are not one aggregate per actor fit too: `sessionize` and `sessions` are checked against
//! ClickHouse's window functions (`lagInFrame` and a running `sum` of the pauses longer than the
//! gap), which number the sessions the way analysts do there.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampSecondArray,
    UInt64Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde_json::{Value, json};
use usagelake::session::{SessionOptions, create_context};

use crate::properties::{Rng, execute};
use crate::python::python;
use crate::support::scratch_dir;

/// The logs each function is checked on, one per seed.
const SEEDS: [u64; 5] = [11, 23, 37, 51, 64];

/// Random patterns per log for each of the `sequence_*` functions.
const PATTERNS: usize = 6;

/// Event names: a, b and c are what the conditions ask for; d meets none of them.
const EVENTS: [&str; 6] = ["a", "a", "b", "b", "c", "d"];

/// One question, asked of both engines; both answer with rows of plain values.
struct Case {
    name: String,
    ours: String,
    /// Reads the events as `{events}`.
    clickhouse: String,
    /// One row per actor, so every actor must have one.
    per_actor: bool,
}

impl Case {
    /// One aggregate per actor: `ours` and `clickhouse` are the two engines' expressions.
    fn per_actor(name: &str, ours: &str, clickhouse: &str) -> Self {
        Case {
            name: format!("{name}: {ours}"),
            ours: format!("SELECT actor, {ours} FROM events GROUP BY actor ORDER BY actor"),
            clickhouse: format!(
                "SELECT actor, {clickhouse} FROM {{events}} GROUP BY actor ORDER BY actor"
            ),
            per_actor: true,
        }
    }
}

/// A random log: a few hundred actors with 1 to 24 events each, strictly increasing in time, or,
/// `with_ties`, with events of one actor at the same second too, but never two of one name there
/// (their order would then be ClickHouse's insertion order); and the number of actors (numbered
/// from 0).
fn random_log(rng: &mut Rng, with_ties: bool) -> (RecordBatch, usize) {
    let (mut actors, mut times, mut events, mut plans) = (vec![], vec![], vec![], vec![]);
    let start = 1_717_200_000; // 2024-06-01
    let actor_count = rng.range(250, 350);
    for actor in 0..actor_count {
        let mut time = start + rng.range(0, 86_400);
        let mut at_this_second: Vec<&str> = vec![];
        for _ in 0..rng.range(1, 24) {
            let mut event = rng.pick(&EVENTS);
            while at_this_second.contains(&event) {
                event = rng.pick(&EVENTS);
            }
            at_this_second.push(event);
            actors.push(actor);
            times.push(time);
            events.push(event);
            plans.push(rng.pick(&["free", "pro"]));
            let gap = match rng.below(4) {
                _ if with_ties && rng.chance(25) => 0,
                0 => rng.range(1, 5),
                1 => rng.range(6, 120),
                2 => rng.range(121, 4_000),
                _ => rng.range(4_001, 90_000),
            };
            // Four names: a fourth event at one second has to move on.
            if gap > 0 || at_this_second.len() == 4 {
                time += gap.max(1);
                at_this_second.clear();
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("actor", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
            false,
        ),
        Field::new("event", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(actors)),
        Arc::new(TimestampSecondArray::from(times).with_timezone("UTC")),
        Arc::new(StringArray::from(events)),
        Arc::new(StringArray::from(plans)),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    (batch, actor_count as usize)
}

/// Files of a log: rows dealt round-robin into this many, so that each actor's rows come out of
/// time order and from several partitions, whose partial states our aggregates merge.
const FILES: usize = 3;

/// Writes the log into folder `dir` as [`FILES`] Parquet files.
fn write_parquet(batch: &RecordBatch, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for part in 0..FILES {
        let rows: Vec<u64> = (part..batch.num_rows())
            .step_by(FILES)
            .map(|row| row as u64)
            .collect();
        let rows = UInt64Array::from(rows);
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|column| take(column, &rows, None).unwrap())
            .collect();
        let part_batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let file = std::fs::File::create(dir.join(format!("part-{part}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&part_batch).unwrap();
        writer.close().unwrap();
    }
}

/// A pattern of 1 to 5 elements over conditions 1 to 3, with `.`, `.*` and time conditions of
/// every operator; `last_is_step` makes it end with a `(?N)`.
fn random_pattern(rng: &mut Rng, last_is_step: bool) -> String {
    let mut pattern = String::new();
    let mut after_time = false;
    let elements = rng.range(1, 5);
    for element in 0..elements {
        let last = element == elements - 1;
        let choice = if last && last_is_step {
            0
        } else {
            rng.below(6)
        };
        match choice {
            1 => pattern += ".",
            2 => pattern += ".*",
            3 | 4 if !after_time => {
                let op = rng.pick(&["<=", ">", "<", ">=", "=="]);
                let seconds = rng.pick(&[0, 5, 60, 600, 3_600, 86_400]);
                pattern += &format!("(?t{op}{seconds})");
                after_time = true;
                continue;
            }
            _ => pattern += &format!("(?{})", rng.range(1, 3)),
        }
        after_time = false;
    }
    pattern
}

const CONDITIONS: &str = "event = 'a', event = 'b', event = 'c'";

/// The questions of one log: every mode of `window_funnel` that ClickHouse has, `retention`,
/// random patterns for the `sequence_*` functions, and `sequence_next_node` with each direction
/// and base.
fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut cases = vec![];
    let window = rng.pick(&[60, 600, 3_600, 86_400]);
    for mode in [
        "",
        "strict_order",
        "strict_deduplication",
        "strict_increase",
    ] {
        let (ours_mode, clickhouse_mode) = match mode {
            "" => (String::new(), String::new()),
            mode => (format!(", '{mode}'"), format!(", '{mode}'")),
        };
        cases.push(Case::per_actor(
            "window_funnel",
            &format!("window_funnel({window}, ts, {CONDITIONS}{ours_mode})"),
            &format!("windowFunnel({window}{clickhouse_mode})(toDateTime(ts), {CONDITIONS})"),
        ));
    }
    cases.push(Case::per_actor(
        "retention",
        &format!("retention({CONDITIONS})"),
        &format!("retention({CONDITIONS})"),
    ));
    for _ in 0..PATTERNS {
        let pattern = random_pattern(rng, false);
        cases.push(Case::per_actor(
            "sequence_match",
            &format!("sequence_match('{pattern}', ts, {CONDITIONS})"),
            &format!("sequenceMatch('{pattern}')(toDateTime(ts), {CONDITIONS})"),
        ));
        let pattern = random_pattern(rng, false);
        cases.push(Case::per_actor(
            "sequence_count",
            &format!("sequence_count('{pattern}', ts, {CONDITIONS})"),
            &format!("sequenceCount('{pattern}')(toDateTime(ts), {CONDITIONS})"),
        ));
        // Ending with a step: after a match ClickHouse 26.9 reports the first chain that met
        // every step, which is not the match when an element after the last step failed after
        // it (sequence_pattern.rs tests that case); the spec asks for the match.
        let pattern = random_pattern(rng, true);
        cases.push(Case::per_actor(
            "sequence_match_events",
            &format!("sequence_match_events('{pattern}', ts, {CONDITIONS})"),
            &format!(
                "arrayMap(x -> toUnixTimestamp(x), \
                 sequenceMatchEvents('{pattern}')(toDateTime(ts), {CONDITIONS}))"
            ),
        ));
    }
    cases.extend(next_node_cases(rng));
    cases.extend(session_cases(rng));
    cases
}

/// `sessionize`, and `sessions` per session and per day, with a gap of random length, against
/// the sessions ClickHouse's window functions cut: a new one after a pause longer than the gap.
/// ClickHouse reads the times as whole seconds (BIGINT), which its SQL keeps.
fn session_cases(rng: &mut Rng) -> Vec<Case> {
    let gap = rng.pick(&[5, 60, 1_800, 3_600]);
    let sessionized = format!(
        "SELECT actor, ts, 1 + sum(pause > {gap}) OVER (PARTITION BY actor ORDER BY ts \
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session \
         FROM (SELECT actor, ts, ts - lagInFrame(ts, 1, ts) OVER (PARTITION BY actor \
             ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS pause FROM {{events}})"
    );
    let cut = format!(
        "SELECT actor, session, min(ts) AS started, max(ts) AS ended, count() AS events \
         FROM ({sessionized}) GROUP BY actor, session"
    );
    let sessions = |per_session: bool| {
        format!(
            "sessions('events', actor => 'actor', gap => INTERVAL '{gap} seconds', \
             per_session => {per_session})"
        )
    };
    vec![
        Case {
            name: format!("sessionize: gap {gap} s"),
            ours: format!(
                "SELECT actor, ts, sessionize(ts, INTERVAL '{gap} seconds') \
                 OVER (PARTITION BY actor ORDER BY ts) FROM events ORDER BY actor, ts"
            ),
            clickhouse: format!(
                "SELECT actor, ts, session FROM ({sessionized}) \
                 ORDER BY actor, ts"
            ),
            per_actor: false,
        },
        Case {
            name: format!("sessions per session: gap {gap} s"),
            ours: format!(
                "SELECT actor, session, started, ended, events FROM {} ORDER BY actor, session",
                sessions(true)
            ),
            clickhouse: format!(
                "SELECT actor, session, started, ended, events FROM ({cut}) \
                 ORDER BY actor, session"
            ),
            per_actor: false,
        },
        // Per UTC day: the median in half seconds and the events in all, whole numbers that
        // both engines compute exactly (the p90's interpolation weight is ours truncated to a
        // millionth, as the documentation says, and ClickHouse's is not).
        Case {
            name: format!("sessions per day: gap {gap} s"),
            ours: format!(
                "SELECT CAST(period AS VARCHAR) AS day, sessions, actors, \
                 CAST(round(median_session_minutes * 120) AS BIGINT), \
                 CAST(round(events_per_session * sessions) AS BIGINT), period_complete \
                 FROM {} ORDER BY day",
                sessions(false)
            ),
            clickhouse: format!(
                "SELECT toString(toDate(toDateTime(started, 'UTC'), 'UTC')) AS day, count(), \
                 uniqExact(actor), \
                 toInt64(round(2 * quantileExactInclusive(0.5)(ended - started))), sum(events), \
                 toUInt8(day < (SELECT toString(toDate(toDateTime(max(ts), 'UTC'), 'UTC')) \
                 FROM {{events}})) \
                 FROM ({cut}) GROUP BY day ORDER BY day"
            ),
            per_actor: false,
        },
    ]
}

/// `sequence_next_node` with each direction and base that ClickHouse accepts.
fn next_node_cases(rng: &mut Rng) -> Vec<Case> {
    let mut cases = vec![];
    for (direction, base) in [
        ("forward", "head"),
        ("forward", "first_match"),
        ("forward", "last_match"),
        ("backward", "tail"),
        ("backward", "first_match"),
        ("backward", "last_match"),
    ] {
        let base_condition = rng.pick(&["plan = 'pro'", "event = 'a'", "event != 'd'"]);
        let chain: Vec<String> = (0..rng.range(1, 3))
            .map(|_| format!("event = '{}'", rng.pick(&EVENTS)))
            .collect();
        let chain = chain.join(", ");
        cases.push(Case::per_actor(
            "sequence_next_node",
            &format!(
                "sequence_next_node('{direction}', '{base}', ts, event, {base_condition}, {chain})"
            ),
            &format!(
                "sequenceNextNode('{direction}', '{base}')(toDateTime(ts), event, \
                 {base_condition}, {chain})"
            ),
        ));
    }
    cases
}

/// A value of our answer as the reference prints it: booleans as ClickHouse's 0 and 1,
/// timestamps as seconds since the epoch.
fn json_value(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => json!(u8::from(array.as_boolean().value(row))),
        DataType::UInt8
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Int32
        | DataType::Int64 => {
            let numbers = cast(array, &DataType::Int64).unwrap();
            json!(numbers.as_primitive::<Int64Type>().value(row))
        }
        DataType::Timestamp(..) => {
            let seconds = cast(array, &DataType::Timestamp(TimeUnit::Second, None)).unwrap();
            let seconds = cast(&seconds, &DataType::Int64).unwrap();
            json!(seconds.as_primitive::<Int64Type>().value(row))
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            let text = cast(array, &DataType::Utf8).unwrap();
            json!(text.as_string::<i32>().value(row))
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Value::Array((0..items.len()).map(|i| json_value(&items, i)).collect())
        }
        other => panic!("no JSON form for {other}"),
    }
}

fn json_rows(batches: &[RecordBatch]) -> Vec<Value> {
    batches
        .iter()
        .flat_map(|batch| {
            (0..batch.num_rows()).map(|row| {
                Value::Array(
                    batch
                        .columns()
                        .iter()
                        .map(|column| json_value(column, row))
                        .collect(),
                )
            })
        })
        .collect()
}

/// ClickHouse's answers to `queries` over the Parquet files of folder `log`, and its version.
fn clickhouse(log: &Path, queries: &[&str]) -> (String, Vec<Value>) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/clickhouse_reference.py");
    let mut child = std::process::Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the ClickHouse reference starts");
    let files = log.join("*.parquet");
    let request = json!({"parquet": files.to_str().unwrap(), "queries": queries});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child
        .wait_with_output()
        .expect("the ClickHouse reference runs");
    assert!(
        output.status.success(),
        "the ClickHouse reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: Value = serde_json::from_slice(&output.stdout).expect("JSON from the reference");
    let version = reply["version"].as_str().unwrap_or_default().to_string();
    let Value::Array(answers) = reply["answers"].clone() else {
        panic!("no answers in {reply}");
    };
    (version, answers)
}

/// The rows where the answers differ, as (ours, ClickHouse's), the first few.
fn differences(ours: &[Value], theirs: &[Value]) -> Vec<String> {
    let longest = ours.len().max(theirs.len());
    (0..longest)
        .filter(|&i| ours.get(i) != theirs.get(i))
        .take(5)
        .map(|i| format!("ours {:?} ClickHouse {:?}", ours.get(i), theirs.get(i)))
        .collect()
}

/// Checks `cases` on one log, written to `folder`, in both engines: returns the failures, and
/// adds to `telling`, per function, the cases whose answers differ from actor to actor (an answer
/// that is the same for everyone would prove little).
async fn check_log(
    folder: &Path,
    log: &RecordBatch,
    actors: usize,
    cases: &[Case],
    telling: &mut BTreeMap<String, usize>,
) -> Vec<String> {
    write_parquet(log, folder);
    let ctx: SessionContext = create_context(&SessionOptions::default()).expect("session");
    ctx.register_parquet(
        "events",
        &format!("{}/", folder.display()),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let queries: Vec<&str> = cases.iter().map(|case| case.clickhouse.as_str()).collect();
    let (version, answers) = clickhouse(folder, &queries);
    assert_eq!(answers.len(), cases.len());
    let mut failures = vec![];
    for (case, theirs) in cases.iter().zip(&answers) {
        let Value::Array(theirs) = theirs else {
            failures.push(format!(
                "{}: ClickHouse {version} failed: {theirs}",
                case.name
            ));
            continue;
        };
        let ours = json_rows(&execute(&ctx, &case.ours).await.unwrap_or_else(|error| {
            panic!("{}: {error}", case.name);
        }));
        if case.per_actor {
            assert_eq!(ours.len(), actors, "{}: every actor has a row", case.name);
        }
        let function = case.name.split(':').next().unwrap_or_default().to_string();
        // The answer column: the last.
        let distinct: BTreeSet<String> = ours
            .iter()
            .map(|row| {
                row.as_array()
                    .and_then(|row| row.last())
                    .unwrap()
                    .to_string()
            })
            .collect();
        *telling.entry(function).or_default() += usize::from(distinct.len() > 1);
        let differ = differences(&ours, theirs);
        if !differ.is_empty() {
            failures.push(format!(
                "{} (ClickHouse {version}):\n  {}",
                case.name,
                differ.join("\n  ")
            ));
        }
    }
    failures
}

#[tokio::test]
async fn metric_functions_answer_as_clickhouse_on_random_logs() {
    let dir = scratch_dir("clickhouse-differential");
    let mut checked = 0;
    let mut telling = BTreeMap::new();
    let mut failures = vec![];
    for seed in SEEDS {
        let mut rng = Rng::new(seed);
        let (log, actors) = random_log(&mut rng, false);
        let cases = cases(&mut rng);
        let folder = dir.join(format!("events-{seed}"));
        for failure in check_log(&folder, &log, actors, &cases, &mut telling).await {
            failures.push(format!("seed {seed}, no ties: {failure}"));
        }
        checked += cases.len();

        // ClickHouse orders the nodes of sequenceNextNode at one second by their value.
        let (log, actors) = random_log(&mut rng, true);
        let cases = next_node_cases(&mut rng);
        let folder = dir.join(format!("events-{seed}-ties"));
        for failure in check_log(&folder, &log, actors, &cases, &mut telling).await {
            failures.push(format!("seed {seed}, ties: {failure}"));
        }
        checked += cases.len();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Four window_funnel modes, retention, three sequence functions, six next-node bases, three
    // session questions, and the six next-node bases again on the log with ties.
    assert_eq!(checked, SEEDS.len() * (4 + 1 + 3 * PATTERNS + 6 + 3 + 6));
    eprintln!("cases with varied answers, per function: {telling:?}");
    // window_funnel, retention, sequence_match, sequence_count, sequence_match_events,
    // sequence_next_node, sessionize, sessions per session and per day.
    assert_eq!(telling.len(), 9, "{telling:?}");
    assert!(telling.values().all(|&cases| cases > 0), "{telling:?}");
}
