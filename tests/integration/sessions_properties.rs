//! Property tests of `sessionize` and `sessions`: on many random small event logs each must give
//! exactly the rows of a plain SQL formulation of its contract (`../shared/spec/metrics.md`, the
//! `sessionize` row and `sessions(...)`, and the choices documented in `udfs/src/sessions.rs`).
//!
//! A lake is one to three Parquet files of `events(user_id, ts, plan)` in no time order: 2 to 12
//! actors, 10 to 200 rows with NULL actors, times and plans, bursts of one actor's events 0 seconds
//! (ties) to days apart (some exactly the gap, or a second more), around the US DST change of
//! 2024-03-10, in a random timestamp unit, with or without a zone.
//!
//! The plain SQL uses DataFusion's built-in functions only, never ours: `lag` flags the events more
//! than `gap` after the actor's previous one, a running `sum` of the flags (ties ordered with the
//! flag first) numbers the sessions, `GROUP BY` gives each session's first and last event, and
//! the report counts them per local period (`date_trunc` of `to_local_time`), with `median` and
//! `percentile_cont`. Sessions are cut from all the events, with no range: the function reads from
//! `gap` before `since` only, and must agree. DOUBLEs are compared to 9 significant digits.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::prelude::SessionContext;
use tempfile::TempDir;
use usagelake::lake::{discover, register_tables};
use usagelake::session::{SessionOptions, create_context};

use crate::adoption_properties::{rounded_rows, time_array, write_batch};
use crate::properties::{
    Rng, compare_with_plain_sql, epoch_seconds, local_midnight, local_time, next_period, period_of,
    text_rows, timestamp_text,
};

/// The lakes every property is checked on.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=40;
const DAY: i64 = 86_400;
const NANOS: i64 = 1_000_000_000;
/// Gaps tried: seconds and as an INTERVAL's text.
const GAPS: [(i64, &str); 4] = [
    (1_800, "30 minutes"),
    (600, "10 minutes"),
    (3_600, "1 hour"),
    (DAY, "1 day"),
];
/// Pauses within a burst of one actor's events, in seconds: ties, the gaps and a second more.
const PAUSES: [i64; 12] = [
    0, 1, 59, 600, 601, 1_799, 1_800, 1_801, 3_600, 3_601, 7_200, DAY,
];
const ZONES: [&str; 3] = ["UTC", "America/Los_Angeles", "Asia/Kolkata"];
const PERIODS: [&str; 3] = ["day", "week", "month"];

/// A lake on disk and what it holds.
struct Lake {
    dir: TempDir,
    /// Seconds since the epoch of the UTC midnight of its first day.
    first: i64,
    days: i64,
    unit: TimeUnit,
    zone: Option<Arc<str>>,
    about: String,
}

fn random_lake(seed: u64) -> Lake {
    let mut rng = Rng::new(seed);
    let first = epoch_seconds(rng.pick(&["2024-03-06", "2024-03-09", "2024-02-26"]));
    let days = rng.range(1, 20);
    let users = rng.range(2, 12);
    let rows = rng.range(10, 200);
    let unit = rng.pick(&[
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ]);
    let zone: Option<Arc<str>> = rng.chance(50).then(|| Arc::from("UTC"));
    let mut last: Vec<Option<i64>> = vec![None; users as usize + 1];
    let mut events: Vec<(Option<i64>, Option<i64>, Option<&str>)> = vec![];
    for _ in 0..rows {
        let user = rng.range(1, users);
        let nanos = match last[user as usize] {
            Some(previous) if rng.chance(70) => previous + rng.pick(&PAUSES) * NANOS,
            _ => {
                let seconds = first + rng.range(0, days * DAY);
                // Some times off the whole second, in units that keep them.
                seconds * NANOS
                    + if rng.chance(20) {
                        rng.range(1, 999) * 1_000_000
                    } else {
                        0
                    }
            }
        };
        last[user as usize] = Some(nanos);
        let plan = match rng.below(20) {
            0 => None,
            1..=9 => Some("free"),
            _ => Some("pro"),
        };
        let user_id = (!rng.chance(5)).then_some(user);
        let ts = (!rng.chance(5)).then_some(nanos);
        events.push((user_id, ts, plan));
    }
    // Out of time order: a random permutation.
    for index in (1..events.len()).rev() {
        events.swap(index, rng.below(index as u64 + 1) as usize);
    }
    let dir = tempfile::tempdir().unwrap();
    let files = rng.range(1, 3) as usize;
    let per_file = events.len().div_ceil(files);
    for (index, chunk) in events.chunks(per_file).enumerate() {
        let users: ArrayRef = Arc::new(Int64Array::from(
            chunk.iter().map(|e| e.0).collect::<Vec<_>>(),
        ));
        let times = time_array(unit, zone.clone(), chunk.iter().map(|e| e.1).collect());
        let plans: ArrayRef = Arc::new(StringArray::from(
            chunk.iter().map(|e| e.2).collect::<Vec<_>>(),
        ));
        write_batch(
            &dir.path().join(format!("events/part-{index}.parquet")),
            vec![("user_id", users), ("ts", times), ("plan", plans)],
        );
    }
    let about = format!(
        "seed {seed}: {rows} events of {users} users over {days} days from {first}, in {files} \
         files, ts Timestamp({unit:?}, {zone:?})"
    );
    Lake {
        dir,
        first,
        days,
        unit,
        zone,
        about,
    }
}

/// A session on the lake, as the engine builds it.
async fn session(lake: &Lake, threads: usize) -> SessionContext {
    let options = SessionOptions {
        threads: Some(threads),
        ..SessionOptions::default()
    };
    let ctx = create_context(&options).expect("session");
    let tables = discover(lake.dir.path()).expect("lake");
    register_tables(&ctx, &tables).await.expect("tables");
    ctx
}

/// The time column in whole microseconds since the epoch, as the function reads it.
const MICROS: &str = "CAST(arrow_cast(ts, 'Timestamp(Microsecond, Some(\"UTC\"))') AS BIGINT)";

/// The sessions of all the events, per segment `seg` (a NULL plan as a string no plan has, or
/// one segment): `cut(seg, user_id, started, ended, events)` in microseconds, and the segment's
/// last event `last(seg, t)`.
fn cut_sessions(gap_seconds: i64, segment: bool) -> String {
    let seg = if segment {
        "coalesce(plan, '(none)')"
    } else {
        "'all'"
    };
    let gap = gap_seconds * 1_000_000;
    format!(
        "WITH e AS (SELECT {seg} AS seg, user_id, {MICROS} AS t FROM events \
           WHERE user_id IS NOT NULL AND ts IS NOT NULL), \
         f AS (SELECT seg, user_id, t, CASE WHEN t - lag(t) OVER (PARTITION BY seg, user_id \
           ORDER BY t) <= {gap} THEN 0 ELSE 1 END AS starts FROM e), \
         n AS (SELECT seg, user_id, t, sum(starts) OVER (PARTITION BY seg, user_id ORDER BY t, \
           starts DESC ROWS UNBOUNDED PRECEDING) AS s FROM f), \
         cut AS (SELECT seg, user_id, min(t) AS started, max(t) AS ended, count(*) AS events \
           FROM n GROUP BY seg, user_id, s), \
         last AS (SELECT seg, max(t) AS t FROM e GROUP BY seg)"
    )
}

/// A random instant in the lake's days, in whole seconds.
fn random_instant(rng: &mut Rng, lake: &Lake) -> i64 {
    lake.first + rng.range(-DAY, (lake.days + 1) * DAY)
}

/// One random call: its SQL, the plain SQL and the order.
struct Case {
    threads: usize,
    function_sql: String,
    plain_sql: String,
    order: String,
}

fn sessions_case(rng: &mut Rng, lake: &Lake, per_session: bool) -> Case {
    let (gap, gap_text) = rng.pick(&GAPS);
    let segment = rng.chance(40);
    let since = rng.chance(50).then(|| random_instant(rng, lake));
    let until = rng
        .chance(50)
        .then(|| since.unwrap_or(lake.first - DAY) + rng.range(1, (lake.days + 2) * DAY));
    let tz = rng.pick(&ZONES);
    let period = rng.pick(&PERIODS);
    let mut arguments = vec![format!("gap => INTERVAL '{gap_text}'")];
    if segment {
        arguments.push("segment => 'plan'".into());
    }
    for (name, bound) in [("since", since), ("until", until)] {
        if let Some(seconds) = bound {
            arguments.push(format!("{name} => TIMESTAMP '{}'", timestamp_text(seconds)));
        }
    }
    // `instant >= since AND instant < until`, in microseconds.
    let in_range = |instant: &str| {
        let mut range = vec!["TRUE".to_string()];
        if let Some(since) = since {
            range.push(format!("{instant} >= {}", since * 1_000_000));
        }
        if let Some(until) = until {
            range.push(format!("{instant} < {}", until * 1_000_000));
        }
        range.join(" AND ")
    };
    let segment_output = |table: &str| {
        if segment {
            format!("CASE WHEN {table}.seg = '(none)' THEN NULL ELSE {table}.seg END AS plan, ")
        } else {
            String::new()
        }
    };
    let segment_order = if segment { "plan NULLS FIRST, " } else { "" };
    let cut = cut_sessions(gap, segment);
    let zone = match &lake.zone {
        Some(zone) => format!("Some(\"{zone}\")"),
        None => "None".into(),
    };
    let timestamp = |micros: &str| {
        format!("arrow_cast(to_timestamp_micros({micros}), 'Timestamp(Microsecond, {zone})')")
    };
    if per_session {
        arguments.push("per_session => true".into());
        let plain_sql = format!(
            "{cut}, \
             reported AS (SELECT * FROM cut WHERE {}) \
             SELECT {}user_id, CAST(row_number() OVER (PARTITION BY seg, user_id ORDER BY \
               started) AS BIGINT) AS session, {} AS started, {} AS ended, events FROM reported",
            in_range("started"),
            segment_output("reported"),
            timestamp("started"),
            timestamp("ended"),
        );
        return Case {
            threads: rng.range(1, 4) as usize,
            function_sql: call_sql(rng, arguments),
            plain_sql,
            order: format!("{segment_order}user_id, session"),
        };
    }
    arguments.push(format!("period => '{period}'"));
    arguments.push(format!("tz => '{tz}'"));
    // The local time of an instant in microseconds, as `local_time` reads a column `ts`.
    let local = |micros: &str| {
        local_time(tz).replace("ts AT", &format!("to_timestamp_micros({micros}) AT"))
    };
    let start_of = |date: &str| format!("CAST({} AS BIGINT)", local_midnight(date, tz));
    let complete_at = if let Some(until) = until {
        format!("least(last.t, {})", until * 1_000_000)
    } else {
        "last.t".into()
    };
    let plain_sql = format!(
        "{cut}, \
         periods AS (SELECT cut.seg, user_id, events, \
           CAST(ended - started AS DOUBLE) / 60000000.0 AS minutes, \
           {} AS period, last.t AS last_t FROM cut JOIN last ON cut.seg = last.seg), \
         reported AS (SELECT * FROM periods WHERE {}) \
         SELECT {}period, count(*) AS sessions, count(DISTINCT user_id) AS actors, \
           CAST(count(*) AS DOUBLE) / count(DISTINCT user_id) AS sessions_per_actor, \
           median(minutes) AS median_session_minutes, \
           percentile_cont(0.9) WITHIN GROUP (ORDER BY minutes) AS p90_session_minutes, \
           avg(CAST(events AS DOUBLE)) AS events_per_session, \
           CAST({} AS TIMESTAMP) <= {} AS period_complete \
         FROM reported JOIN last ON reported.seg = last.seg \
         GROUP BY reported.seg, period, last.t",
        period_of(&local("started"), period, "monday"),
        in_range(&start_of("period")),
        segment_output("reported"),
        next_period("period", period),
        local(&complete_at),
    );
    Case {
        threads: rng.range(1, 4) as usize,
        function_sql: call_sql(rng, arguments),
        plain_sql,
        order: format!("{segment_order}period"),
    }
}

/// `SELECT * FROM sessions('events', ...)` with the named arguments in a random order.
fn call_sql(rng: &mut Rng, mut arguments: Vec<String>) -> String {
    for index in (1..arguments.len()).rev() {
        arguments.swap(index, rng.below(index as u64 + 1) as usize);
    }
    format!("SELECT * FROM sessions('events', {})", arguments.join(", "))
}

/// Runs `case` on the lake of every seed and fails listing every mismatch; most calls must
/// return rows.
async fn check_on_random_lakes(
    what: &str,
    salt: u64,
    rounded: bool,
    case: impl Fn(&mut Rng, &Lake) -> Case,
) {
    let (mut failures, mut nonempty) = (vec![], 0);
    for seed in SEEDS {
        let lake = random_lake(seed);
        let mut rng = Rng::new(seed ^ salt);
        let case = case(&mut rng, &lake);
        let ctx = session(&lake, case.threads).await;
        let result = if rounded {
            compare_with_plain_sql(
                &ctx,
                &case.function_sql,
                &case.plain_sql,
                &case.order,
                &[],
                rounded_rows,
            )
            .await
        } else {
            compare_with_plain_sql(
                &ctx,
                &case.function_sql,
                &case.plain_sql,
                &case.order,
                &[],
                text_rows,
            )
            .await
        };
        match result {
            Ok(0) => {}
            Ok(_) => nonempty += 1,
            Err(report) => failures.push(format!(
                "{}\n  threads: {}\n  call: {}\n{report}",
                lake.about, case.threads, case.function_sql
            )),
        }
    }
    let calls = SEEDS.count();
    assert!(
        failures.is_empty(),
        "{what} differs from its plain SQL formulation in {} of {calls} calls:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        nonempty * 2 >= calls,
        "{what}: only {nonempty} of {calls} calls returned rows"
    );
}

#[tokio::test]
async fn sessions_per_period_match_plain_sql_on_random_lakes() {
    check_on_random_lakes("sessions", 0x5e55, true, |rng, lake| {
        sessions_case(rng, lake, false)
    })
    .await;
}

#[tokio::test]
async fn sessions_per_session_match_plain_sql_on_random_lakes() {
    check_on_random_lakes("sessions per session", 0x5e56, false, |rng, lake| {
        sessions_case(rng, lake, true)
    })
    .await;
}

#[tokio::test]
async fn sessionize_matches_lag_and_a_running_sum_on_random_lakes() {
    check_on_random_lakes("sessionize", 0x5e57, false, |rng, lake| {
        let (gap, gap_text) = rng.pick(&GAPS);
        let ticks_per_second = match lake.unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => NANOS,
        };
        let gap_ticks = gap * ticks_per_second;
        let ticks = "CAST(ts AS BIGINT)";
        Case {
            threads: rng.range(1, 4) as usize,
            function_sql: format!(
                "SELECT user_id, {ticks} AS t, sessionize(ts, INTERVAL '{gap_text}') OVER \
                 (PARTITION BY user_id ORDER BY ts) AS s FROM events WHERE user_id IS NOT NULL \
                 ORDER BY user_id, t, s"
            ),
            plain_sql: format!(
                "WITH f AS (SELECT user_id, {ticks} AS t, CASE WHEN {ticks} - lag({ticks}) OVER \
                   (PARTITION BY user_id ORDER BY ts) <= {gap_ticks} THEN 0 ELSE 1 END AS starts \
                   FROM events WHERE user_id IS NOT NULL AND ts IS NOT NULL) \
                 SELECT user_id, t, sum(starts) OVER (PARTITION BY user_id ORDER BY t, starts \
                   DESC ROWS UNBOUNDED PRECEDING) AS s FROM f \
                 UNION ALL SELECT user_id, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM events \
                   WHERE user_id IS NOT NULL AND ts IS NULL"
            ),
            order: "user_id, t, s".into(),
        }
    })
    .await;
}
