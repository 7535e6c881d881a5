//! Property tests of `feature_adoption`, `funnel` and `churn_risk`: on many random small event logs
//! each must return exactly the rows of a plain SQL formulation of its contract
//! (`../shared/spec/metrics.md`, "Conventions" and the function's section, and the documented
//! choices in `udfs/src/{feature_adoption,funnel,window_funnel_events,churn_risk}.rs`).
//!
//! A lake is a few Parquet files of `events(user_id, ts, event, feature, plan)` written in no time
//! order: 5 to 40 actors over two to six weeks, 20 to 400 rows with NULL actors, times, events,
//! features and plans, exact duplicate rows, rows that share a timestamp, bursts of one actor's
//! events minutes to days apart (some exactly 5 minutes, 1 hour, 1 day, ... apart, the funnel
//! windows tried), times next to local midnights, in a random timestamp unit. Beside it,
//! `launches(feature, released_at)` (a DATE or a TIMESTAMP: releases before and after a feature's
//! first use, at it, and of features nobody uses) and `customers(user_id, plan)` (some actors,
//! some never seen, duplicates and a NULL).
//!
//! The plain SQL uses DataFusion's built-in functions only, never ours:
//!
//! - `feature_adoption`: first seen, first uses, the launch (the first use, moved earlier by
//!   `released_at`), the eligible actors (an event in the range at or after the launch, or the
//!   `customers` rows), adopters (at least `min_uses` uses in the range, and eligible) and their days
//!   to adopt, by joins and `percentile_cont`.
//! - `funnel`: each actor's level without ClickHouse's algorithm, as the existence of a chain:
//!   `l_k` holds every step-k event that ends a chain of steps 1..k (each step at or after the one
//!   before, ties ordered by step index, all within `within` of a step 1 in `[since, until)`),
//!   with the latest step-1 time of such chains. The times behind the medians are those of
//!   `window_funnel_events`' documented chain, "the chain that reached the highest level first":
//!   its last step is the earliest event that ends a chain of the actor's level, and each earlier
//!   step the latest step-(k-1) event ending a chain of k-1 steps at or before step k (the chain
//!   ClickHouse's run holds then). `strict_order` is formulated too: the run stops at the first
//!   event after the first step 1 that meets no step, or whose previous step no chain has reached
//!   yet, and only events before it count.
//! - `churn_risk`: the two windows of local days, counts and distinct days per account, the
//!   dropped features by `EXCEPT`, the reasons as rows aggregated in their order.
//!
//! Durations are computed from microseconds, as the functions read times (a nanosecond timestamp
//! is truncated to its microsecond before subtracting). Every column is compared as text; DOUBLEs
//! rounded to 9 significant digits. A NULL segment is a segment of its own: in the plain SQL it is
//! a string no plan has, as DataFusion 55 loses the NULL = NULL of an `IS NOT DISTINCT FROM` join
//! followed by another join.
//!
//! A failure lists every failing seed with its lake, the call and the differing rows;
//! `random_lake(seed)` rebuilds the lake of a seed.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use tempfile::TempDir;
use usagelake::lake::{discover, register_tables};
use usagelake::session::{SessionOptions, create_context};

use crate::properties::{
    Bound, Rng, before_until, compare_with_plain_sql, date_text, epoch_seconds, execute,
    from_since, local_midnight, local_time, text_rows, timestamp_text,
};

/// The lakes every function is checked on: `random_lake(seed)` for each.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=40;
const DAY: i64 = 86_400;
const NANOS: i64 = 1_000_000_000;
/// Zones other than UTC that some calls read the lake in.
const ZONES: [&str; 3] = ["America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata"];
/// Event names, in the order a burst of one actor's events tends to follow.
const FLOW: [&str; 5] = ["signup", "view", "cart", "buy", "home"];
/// Features used; `launches` also names the unused `e` and `f`.
const FEATURES: [&str; 4] = ["a", "b", "c", "d"];
const PLANS: [&str; 3] = ["free", "pro", "team"];
/// Gaps between the events of a burst, and funnel windows: seconds and as an INTERVAL's text.
const GAPS: [(i64, &str); 8] = [
    (300, "5 minutes"),
    (1_800, "30 minutes"),
    (3_600, "1 hour"),
    (5_400, "90 minutes"),
    (21_600, "6 hours"),
    (86_400, "1 day"),
    (172_800, "2 days"),
    (604_800, "7 days"),
];

/// One row of `events`; `ts` in nanoseconds since the epoch.
#[derive(Debug, Clone)]
struct Event {
    user_id: Option<i64>,
    ts: Option<i64>,
    event: Option<&'static str>,
    feature: Option<&'static str>,
    plan: Option<&'static str>,
}

/// The type of `launches.released_at`.
#[derive(Debug, Clone)]
enum Release {
    Date,
    Timestamp(TimeUnit, Option<Arc<str>>),
}

/// A lake on disk and what it holds.
struct Lake {
    dir: TempDir,
    /// Seconds since the epoch of the UTC midnight of its first day.
    first: i64,
    /// Days the events spread over.
    days: i64,
    /// The rows of `events`.
    events: Vec<Event>,
    release: Release,
    /// Seed, shape and types, for failure messages.
    about: String,
}

/// What one actor does: when it is around, its plan, and the features it favours before and
/// after a day.
struct Profile {
    from: i64,
    to: i64,
    plan: &'static str,
    early: &'static str,
    late: &'static str,
    switch: i64,
}

/// A random small event log: 5 to 40 actors, 20 to 400 rows over two to six weeks.
fn random_lake(seed: u64) -> Lake {
    let mut rng = Rng::new(seed);
    // First days before DST changes (US 2024-03-10 and 2024-11-03, EU 2024-03-31 and
    // 2024-10-27), a year's end and a plain summer.
    let first = epoch_seconds(rng.pick(&[
        "2024-02-26",
        "2024-03-20",
        "2024-10-14",
        "2024-10-28",
        "2023-12-18",
        "2024-06-20",
    ]));
    let days = rng.range(14, 42);
    let users = rng.range(5, 40);
    let rows = rng.range(20, 400) as usize;
    let unit = rng.pick(&[
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ]);
    let column_zone: Option<Arc<str>> = rng.chance(20).then(|| "UTC".into());
    let profiles: Vec<Profile> = (0..users)
        .map(|_| {
            let from = rng.range(0, days - 1);
            let to = if rng.chance(50) {
                days - 1
            } else {
                rng.range(from, days - 1)
            };
            Profile {
                from,
                to,
                plan: rng.pick(&PLANS),
                early: rng.pick(&FEATURES),
                late: rng.pick(&FEATURES),
                switch: rng.range(from, to + 3),
            }
        })
        .collect();
    let feature_of = |rng: &mut Rng, user: usize, second: i64| {
        let profile = &profiles[user];
        match rng.below(10) {
            0..=3 => None,
            4..=8 if (second - first) / DAY < profile.switch => Some(profile.early),
            4..=8 => Some(profile.late),
            _ => Some(rng.pick(&FEATURES)),
        }
    };
    let plan_of = |rng: &mut Rng, user: usize| match rng.below(20) {
        0 | 1 => None,
        2 => Some(rng.pick(&PLANS)),
        _ => Some(profiles[user].plan),
    };
    let fraction = |rng: &mut Rng| match rng.below(10) {
        0..=4 => 0,
        5 | 6 => NANOS - 1,
        _ => rng.range(0, NANOS - 1),
    };

    let mut events: Vec<Event> = Vec::with_capacity(rows);
    while events.len() < rows {
        let roll = rng.below(100);
        let with_user_and_time: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].user_id.is_some() && events[i].ts.is_some())
            .collect();
        if !events.is_empty() && roll < 8 {
            // An exact duplicate.
            let copy = events[rng.below(events.len() as u64) as usize].clone();
            events.push(copy);
            continue;
        }
        if !with_user_and_time.is_empty() && roll < 18 {
            // Another row at the time of an existing one, of any actor.
            let at = events[rng.pick(&with_user_and_time)].ts;
            let user = rng.below(users as u64) as usize;
            let second = at.unwrap().div_euclid(NANOS);
            events.push(Event {
                user_id: Some(1 + user as i64),
                ts: at,
                event: rng.chance(90).then(|| rng.pick(&FLOW)),
                feature: feature_of(&mut rng, user, second),
                plan: plan_of(&mut rng, user),
            });
            continue;
        }
        if !with_user_and_time.is_empty() && roll < 55 {
            // The next event of a burst: the same actor, a gap later (the same fraction of a
            // second, so that gaps are whole seconds in every unit).
            let base = events[rng.pick(&with_user_and_time)].clone();
            let user = (base.user_id.unwrap() - 1) as usize;
            let gap = match rng.below(20) {
                0..=5 => rng.pick(&GAPS[..7]).0,
                6..=8 => 0,
                9..=15 => rng.range(1, 7_200),
                _ => rng.range(1, 3 * DAY),
            };
            let ts = base.ts.unwrap() + gap * NANOS;
            let next = match base.event {
                Some(event) if rng.chance(70) => {
                    let at = FLOW.iter().position(|&e| e == event).unwrap();
                    FLOW.get(at + 1).copied()
                }
                _ => rng.chance(90).then(|| rng.pick(&FLOW)),
            };
            events.push(Event {
                user_id: Some(1 + user as i64),
                ts: Some(ts),
                event: next,
                feature: feature_of(&mut rng, user, ts.div_euclid(NANOS)),
                plan: if rng.chance(85) {
                    base.plan
                } else {
                    plan_of(&mut rng, user)
                },
            });
            continue;
        }
        let user = rng.below(users as u64) as usize;
        let (from, to) = if rng.chance(85) {
            (profiles[user].from, profiles[user].to)
        } else {
            (0, days - 1)
        };
        let day = first + rng.range(from, to) * DAY;
        let second = match rng.below(10) {
            // Next to a local midnight: UTC, Kolkata, Berlin, Los Angeles.
            0..=2 => {
                let midnight = day + rng.pick(&[0, -19_800, -3_600, -7_200, 25_200, 28_800]);
                {
                    let near = rng.range(-3_600, 3_600);
                    midnight + rng.pick(&[-1, 0, 1, near])
                }
            }
            _ => day + rng.range(0, DAY - 1),
        };
        events.push(Event {
            user_id: (!rng.chance(5)).then(|| 1 + user as i64),
            ts: (!rng.chance(5)).then(|| second * NANOS + fraction(&mut rng)),
            event: rng.chance(90).then(|| rng.pick(&FLOW)),
            feature: feature_of(&mut rng, user, second),
            plan: plan_of(&mut rng, user),
        });
    }
    // Files in no time order.
    for i in (1..events.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        events.swap(i, j);
    }
    let files = rng.range(1, 4) as usize;
    let dir = tempfile::tempdir().expect("temporary directory");
    let per_file = events.len().div_ceil(files);
    for (index, chunk) in events.chunks(per_file).enumerate() {
        write_batch(
            &dir.path().join(format!("events/part-{index}.parquet")),
            vec![
                (
                    "user_id",
                    Arc::new(Int64Array::from(
                        chunk.iter().map(|e| e.user_id).collect::<Vec<_>>(),
                    )),
                ),
                (
                    "ts",
                    time_array(
                        unit,
                        column_zone.clone(),
                        chunk.iter().map(|e| e.ts).collect(),
                    ),
                ),
                (
                    "event",
                    Arc::new(StringArray::from(
                        chunk.iter().map(|e| e.event).collect::<Vec<_>>(),
                    )),
                ),
                (
                    "feature",
                    Arc::new(StringArray::from(
                        chunk.iter().map(|e| e.feature).collect::<Vec<_>>(),
                    )),
                ),
                (
                    "plan",
                    Arc::new(StringArray::from(
                        chunk.iter().map(|e| e.plan).collect::<Vec<_>>(),
                    )),
                ),
            ],
        );
    }

    // Launches: a release before, at or after the first use of a used feature (by anyone with
    // a time), and releases of features nobody uses.
    let release = if rng.chance(40) {
        Release::Date
    } else {
        Release::Timestamp(
            rng.pick(&[
                TimeUnit::Second,
                TimeUnit::Microsecond,
                TimeUnit::Nanosecond,
            ]),
            rng.chance(30).then(|| "UTC".into()),
        )
    };
    let mut launches: Vec<(&str, i64)> = vec![];
    for feature in ["a", "b", "c", "d", "e", "f"] {
        if !rng.chance(80) {
            continue;
        }
        let first_use = events
            .iter()
            .filter(|e| e.user_id.is_some() && e.feature == Some(feature))
            .filter_map(|e| e.ts)
            .min();
        let released = match first_use {
            Some(nanos) => {
                let any = rng.range(-DAY, 20 * DAY);
                nanos + NANOS * rng.pick(&[-5 * DAY, -DAY, -1, 0, 1, 7_200, 3 * DAY, 10 * DAY, any])
            }
            None => (first + rng.range(-3, days + 3) * DAY + rng.range(0, DAY - 1)) * NANOS,
        };
        launches.push((feature, released));
    }
    let released: ArrayRef = match &release {
        Release::Date => Arc::new(Date32Array::from(
            launches
                .iter()
                .map(|(_, nanos)| nanos.div_euclid(NANOS * DAY) as i32)
                .collect::<Vec<_>>(),
        )),
        Release::Timestamp(unit, zone) => time_array(
            *unit,
            zone.clone(),
            launches.iter().map(|(_, nanos)| Some(*nanos)).collect(),
        ),
    };
    write_batch(
        &dir.path().join("launches/part-0.parquet"),
        vec![
            (
                "feature",
                Arc::new(StringArray::from(
                    launches.iter().map(|(f, _)| Some(*f)).collect::<Vec<_>>(),
                )),
            ),
            ("released_at", released),
        ],
    );

    // Customers: some actors, some never seen, a duplicate and a NULL.
    let mut customers: Vec<(Option<i64>, Option<&str>)> = vec![];
    for user in 1..=users + 3 {
        if rng.chance(45) {
            let plan = match rng.below(10) {
                0 => None,
                1..=3 => Some(rng.pick(&PLANS)),
                _ => Some(profiles.get(user as usize - 1).map_or("free", |p| p.plan)),
            };
            customers.push((Some(user), plan));
            if rng.chance(10) {
                customers.push((Some(user), plan));
            }
        }
    }
    customers.push((None, Some("pro")));
    write_batch(
        &dir.path().join("customers/part-0.parquet"),
        vec![
            (
                "user_id",
                Arc::new(Int64Array::from(
                    customers.iter().map(|c| c.0).collect::<Vec<_>>(),
                )),
            ),
            (
                "plan",
                Arc::new(StringArray::from(
                    customers.iter().map(|c| c.1).collect::<Vec<_>>(),
                )),
            ),
        ],
    );

    let about = format!(
        "seed {seed}: {} events of {users} users over {days} days from {}, in {} files, ts \
         Timestamp({unit:?}, {column_zone:?}); launches {launches:?} as {release:?}; {} customers",
        events.len(),
        date_text(first),
        events.len().div_ceil(per_file),
        customers.len(),
    );
    Lake {
        dir,
        first,
        days,
        events,
        release,
        about,
    }
}

/// Nanoseconds as a timestamp array of `unit` (floored) and `zone`.
pub(crate) fn time_array(
    unit: TimeUnit,
    zone: Option<Arc<str>>,
    nanos: Vec<Option<i64>>,
) -> ArrayRef {
    let per_unit = match unit {
        TimeUnit::Second => NANOS,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let times: Vec<Option<i64>> = nanos
        .into_iter()
        .map(|t| t.map(|t| t.div_euclid(per_unit)))
        .collect();
    match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from(times).with_timezone_opt(zone)),
        TimeUnit::Millisecond => {
            Arc::new(TimestampMillisecondArray::from(times).with_timezone_opt(zone))
        }
        TimeUnit::Microsecond => {
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone_opt(zone))
        }
        TimeUnit::Nanosecond => {
            Arc::new(TimestampNanosecondArray::from(times).with_timezone_opt(zone))
        }
    }
}

/// Writes one Parquet file of the named columns.
pub(crate) fn write_batch(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
        .expect("parquet writer");
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// One call of a function and its plain SQL formulation.
struct Case {
    /// Query parallelism.
    threads: usize,
    settings: Vec<String>,
    function_sql: String,
    /// The plain SQL, without ORDER BY.
    plain_sql: String,
    /// The documented order of the rows, as ORDER BY keys over the plain SQL's columns.
    order: String,
}

/// A call being built: its session, arguments and segment.
struct Call {
    threads: usize,
    settings: Vec<String>,
    /// Positional arguments after the table.
    positional: Vec<String>,
    /// Named arguments, given in a random order.
    named: Vec<(&'static str, String)>,
    segment: bool,
    /// The zone of the call.
    tz: &'static str,
}

impl Call {
    /// A call in a random zone (UTC by default, as an argument or a session setting), with or
    /// without `segment => 'plan'`.
    fn new(rng: &mut Rng) -> Self {
        let mut call = Self {
            threads: rng.range(1, 3) as usize,
            settings: vec![],
            positional: vec![],
            named: vec![],
            segment: rng.chance(40),
            tz: "UTC",
        };
        match rng.below(8) {
            0..=3 => {}
            4 => call.named.push(("tz", "'UTC'".into())),
            5 | 6 => {
                call.tz = rng.pick(&ZONES);
                call.named.push(("tz", format!("'{}'", call.tz)));
            }
            _ => {
                call.tz = rng.pick(&ZONES);
                call.settings
                    .push(format!("SET usagelake.tz = '{}'", call.tz));
            }
        }
        if call.segment {
            call.named.push(("segment", "'plan'".into()));
        }
        call
    }

    fn argument(&mut self, name: &'static str, value: String) {
        self.named.push((name, value));
    }

    fn sql(&self, rng: &mut Rng, function: &str, input: &str) -> String {
        let mut named = self.named.clone();
        if named.len() > 1 {
            let by = rng.below(named.len() as u64) as usize;
            named.rotate_left(by);
        }
        let mut sql = format!("SELECT * FROM {function}({input}");
        for value in &self.positional {
            write!(sql, ", {value}").unwrap();
        }
        for (name, value) in named {
            write!(sql, ", {name} => {value}").unwrap();
        }
        sql.push(')');
        sql
    }

    /// The segment of a row of the plain SQL: the plan (a NULL plan as a string no plan has),
    /// or one constant segment.
    fn segment_expr(&self) -> &'static str {
        if self.segment {
            "coalesce(plan, '<NULL>')"
        } else {
            "'-'"
        }
    }

    /// The segment as the first output column, or nothing.
    fn segment_output(&self, table: &str) -> String {
        if self.segment {
            format!("nullif({table}.seg, '<NULL>') AS plan, ")
        } else {
            String::new()
        }
    }

    /// The documented order: the segment (NULL first), then `keys`.
    fn order(&self, keys: &str) -> String {
        match self.segment {
            true => format!("plan ASC NULLS FIRST, {keys}"),
            false => keys.into(),
        }
    }

    fn case(self, function_sql: String, plain_sql: String, order: String) -> Case {
        Case {
            threads: self.threads,
            settings: self.settings,
            function_sql,
            plain_sql,
            order,
        }
    }
}

/// A bound at `seconds`: the exact instant as a TIMESTAMP, or else its UTC day as a DATE, a
/// 'YYYY-MM-DD' string or a TIMESTAMP at a random time of that day.
fn bound_at(rng: &mut Rng, seconds: i64, exact: bool) -> Bound {
    if exact {
        return Bound::Timestamp(timestamp_text(seconds));
    }
    let midnight = seconds.div_euclid(DAY) * DAY;
    match rng.below(3) {
        0 => Bound::Date(date_text(midnight)),
        1 => Bound::Text(date_text(midnight)),
        _ => Bound::Timestamp(timestamp_text(
            midnight + {
                let any = rng.range(0, DAY - 1);
                rng.pick(&[0, 1, 3_600 * 7, any])
            },
        )),
    }
}

/// A random `since` and `until` (each maybe absent), at least two days apart so that since is
/// before until in every zone; sometimes exactly at the time of one of `exact` (whole seconds).
fn random_range(rng: &mut Rng, lake: &Lake, exact: &[i64]) -> (Option<Bound>, Option<Bound>) {
    let at = |rng: &mut Rng, low: i64, high: i64| -> (i64, bool) {
        let fitting: Vec<i64> = exact
            .iter()
            .copied()
            .filter(|&t| t >= low && t <= high)
            .collect();
        if !fitting.is_empty() && rng.chance(40) {
            (rng.pick(&fitting), true)
        } else {
            (
                rng.range(low.div_euclid(DAY), high.div_euclid(DAY)) * DAY,
                false,
            )
        }
    };
    let (first, last) = (lake.first, lake.first + lake.days * DAY);
    match rng.below(4) {
        0 => (None, None),
        1 => {
            let (since, exact) = at(rng, first - 5 * DAY, last);
            (Some(bound_at(rng, since, exact)), None)
        }
        2 => {
            let (until, exact) = at(rng, first + DAY, last + 5 * DAY);
            (None, Some(bound_at(rng, until, exact)))
        }
        _ => {
            let (since, since_exact) = at(rng, first - 5 * DAY, last - 3 * DAY);
            let (until, until_exact) = at(rng, since + 3 * DAY, last + 10 * DAY);
            (
                Some(bound_at(rng, since, since_exact)),
                Some(bound_at(rng, until, until_exact)),
            )
        }
    }
}

/// A time as microseconds since the epoch, as the functions read times.
fn micros(time: &str) -> String {
    format!("CAST(arrow_cast({time}, 'Timestamp(Microsecond, Some(\"UTC\"))') AS BIGINT)")
}

/// The event time as a nanosecond timestamp in UTC, whatever the column's unit and zone.
const EVENT_TIME: &str =
    "arrow_cast(ts AT TIME ZONE 'UTC', 'Timestamp(Nanosecond, Some(\"UTC\"))')";

/// An instant as a nanosecond timestamp in UTC.
fn nanos(instant: &str) -> String {
    format!("arrow_cast({instant}, 'Timestamp(Nanosecond, Some(\"UTC\"))')")
}

/// A column's type as compared: strings are strings whatever their layout, lists by their items.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "Utf8".into(),
        DataType::List(item) | DataType::LargeList(item) => {
            format!("List({})", type_name(item.data_type()))
        }
        other => other.to_string(),
    }
}

/// Column types and rows of batches as text, DOUBLEs rounded to 9 significant digits.
pub(crate) fn rounded_rows(batches: &[RecordBatch]) -> (Vec<String>, Vec<String>) {
    let (_, rows) = text_rows(batches);
    let Some(batch) = batches.first() else {
        return (vec![], rows);
    };
    let types: Vec<DataType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let rows = rows
        .iter()
        .map(|row| {
            row.split(" | ")
                .zip(&types)
                .map(|(value, data_type)| match value.parse::<f64>() {
                    Ok(x) if *data_type == DataType::Float64 && x == 0.0 => "0".to_string(),
                    Ok(x) if *data_type == DataType::Float64 => format!("{x:.8e}"),
                    _ => value.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    (types.iter().map(type_name).collect(), rows)
}

/// Compares the function's rows with the plain SQL's: how many rows the function returned, or
/// what differs.
async fn compare(ctx: &SessionContext, case: &Case) -> Result<usize, String> {
    compare_with_plain_sql(
        ctx,
        &case.function_sql,
        &case.plain_sql,
        &case.order,
        &[],
        rounded_rows,
    )
    .await
}

/// Runs `case` on the lake of every seed of [`SEEDS`] and fails listing every mismatch.
async fn check_on_random_lakes(function: &str, salt: u64, case: impl Fn(&mut Rng, &Lake) -> Case) {
    let mut failures = vec![];
    let mut compared = 0;
    let mut nonempty = 0;
    for seed in SEEDS {
        let lake = random_lake(seed);
        let mut rng = Rng::new(seed ^ salt);
        let case = case(&mut rng, &lake);
        let options = SessionOptions {
            threads: Some(case.threads),
            ..SessionOptions::default()
        };
        let ctx = create_context(&options).expect("session");
        let tables = discover(lake.dir.path()).expect("lake");
        register_tables(&ctx, &tables).await.expect("tables");
        for setting in &case.settings {
            execute(&ctx, setting).await.expect("setting");
        }
        compared += 1;
        match compare(&ctx, &case).await {
            Ok(0) => {}
            Ok(_) => nonempty += 1,
            Err(report) => failures.push(format!(
                "{}\n  threads: {}, settings: {:?}\n  call: {}\n{report}",
                lake.about, case.threads, case.settings, case.function_sql
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{function} differs from its plain SQL formulation in {} of {compared} calls:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // Most calls must have something to compare.
    assert!(
        nonempty * 4 >= compared * 3,
        "{function}: only {nonempty} of {compared} calls returned rows"
    );
}

/// The whole-second times of the lake's events with an actor: exact bounds to try.
fn whole_seconds(lake: &Lake, event: impl Fn(&Event) -> bool) -> Vec<i64> {
    lake.events
        .iter()
        .filter(|e| e.user_id.is_some() && event(e))
        .filter_map(|e| e.ts)
        .filter(|t| t % NANOS == 0)
        .map(|t| t / NANOS)
        .collect()
}

#[tokio::test]
async fn feature_adoption_matches_plain_sql_on_random_lakes() {
    check_on_random_lakes("feature_adoption", 0xFEA7, |rng, lake| {
        let mut call = Call::new(rng);
        let tz = call.tz;
        let exact = whole_seconds(lake, |e| e.feature.is_some());
        let (since, until) = random_range(rng, lake, &exact);
        if let Some(since) = &since {
            call.argument("since", since.argument());
        }
        if let Some(until) = &until {
            call.argument("until", until.argument());
        }
        let min_uses = if rng.chance(60) { 1 } else { rng.range(2, 4) };
        if min_uses != 1 || rng.chance(30) {
            call.argument("min_uses", min_uses.to_string());
        }
        let launches = rng.chance(45);
        if launches {
            let table = rng.pick(&["'launches'", "'SELECT feature, released_at FROM launches'"]);
            call.argument("launches", table.into());
        }
        let eligible = rng.chance(30);
        if eligible {
            call.argument("eligible", "'customers'".into());
        }
        if rng.chance(20) {
            call.argument("actor", "'user_id'".into());
            call.argument("ts", "'ts'".into());
            call.argument("feature", "'feature'".into());
        }
        let input = if rng.chance(20) {
            "'SELECT * FROM events'"
        } else {
            "'events'"
        };
        let function_sql = call.sql(rng, "feature_adoption", input);

        let released = match (launches, &lake.release) {
            (false, _) => "SELECT feature, launch AS released FROM fa_first_any WHERE false".into(),
            (true, Release::Date) => format!(
                "SELECT feature, {} AS released FROM launches",
                nanos(&local_midnight("released_at", tz))
            ),
            (true, Release::Timestamp(..)) => format!(
                "SELECT feature, {} AS released FROM launches",
                nanos("released_at AT TIME ZONE 'UTC'")
            ),
        };
        // Eligible: an event in the range at or after the launch, or a row of `customers` (of
        // the segment).
        let eligible_sql = if eligible {
            format!(
                "SELECT DISTINCT l.seg, l.feature, c.actor FROM fa_launch l
                 JOIN (SELECT {seg} AS seg, user_id AS actor FROM customers
                       WHERE user_id IS NOT NULL) c ON c.seg = l.seg",
                seg = call.segment_expr()
            )
        } else {
            "SELECT DISTINCT l.seg, l.feature, i.actor FROM fa_launch l
             JOIN fa_in_range i ON i.seg = l.seg AND i.t >= l.launch"
                .into()
        };
        let plain_sql = format!(
            "WITH fa_events AS (
               SELECT {seg} AS seg, user_id AS actor, {t} AS t, feature FROM events
               WHERE user_id IS NOT NULL AND ts IS NOT NULL AND {before_until}),
             fa_in_range AS (SELECT * FROM fa_events WHERE {from_since}),
             fa_seen AS (SELECT seg, actor, min(t) AS first_seen FROM fa_events GROUP BY seg, actor),
             fa_first_use AS (
               SELECT seg, feature, actor, min(t) AS first_use FROM fa_events
               WHERE feature IS NOT NULL GROUP BY seg, feature, actor),
             fa_first_any AS (
               SELECT seg, feature, min(t) AS launch FROM fa_events
               WHERE feature IS NOT NULL GROUP BY seg, feature),
             fa_released AS ({released}),
             fa_features AS (
               SELECT DISTINCT seg, feature FROM fa_in_range WHERE feature IS NOT NULL
               UNION
               SELECT s.seg, r.feature FROM (SELECT DISTINCT seg FROM fa_events) s
               CROSS JOIN fa_released r),
             fa_launch AS (
               SELECT f.seg, f.feature,
                      CASE WHEN r.released IS NULL THEN a.launch
                           WHEN a.launch IS NULL OR r.released < a.launch THEN r.released
                           ELSE a.launch END AS launch
               FROM fa_features f
               LEFT JOIN fa_first_any a ON a.seg = f.seg AND a.feature = f.feature
               LEFT JOIN fa_released r ON r.feature = f.feature),
             fa_eligible AS ({eligible_sql}),
             fa_uses AS (
               SELECT seg, feature, actor, count(*) AS uses FROM fa_in_range
               WHERE feature IS NOT NULL GROUP BY seg, feature, actor),
             fa_adopters AS (
               SELECT e.seg, e.feature, e.actor,
                      CAST({first_use} - CASE WHEN s.first_seen > l.launch THEN {first_seen}
                                              ELSE {launch} END AS DOUBLE)
                        / 86400000000.0 AS days
               FROM fa_eligible e
               JOIN fa_uses x ON x.seg = e.seg AND x.feature = e.feature AND x.actor = e.actor
               JOIN fa_first_use u ON u.seg = e.seg AND u.feature = e.feature AND u.actor = e.actor
               JOIN fa_seen s ON s.seg = e.seg AND s.actor = e.actor
               JOIN fa_launch l ON l.seg = e.seg AND l.feature = e.feature
               WHERE x.uses >= {min_uses}),
             fa_eligible_counts AS (
               SELECT seg, feature, count(*) AS n FROM fa_eligible GROUP BY seg, feature),
             fa_adoption AS (
               SELECT seg, feature, count(*) AS n,
                      percentile_cont(days, 0.5) AS median_days,
                      percentile_cont(days, 0.9) AS p90_days
               FROM fa_adopters GROUP BY seg, feature)
             SELECT {segment}l.feature,
                    arrow_cast(l.launch, 'Timestamp(Microsecond, Some(\"UTC\"))') AS launched,
                    coalesce(e.n, 0) AS eligible, coalesce(a.n, 0) AS adopters,
                    CASE WHEN coalesce(e.n, 0) = 0 THEN NULL
                         ELSE CAST(coalesce(a.n, 0) AS DOUBLE) / CAST(e.n AS DOUBLE) END
                      AS adoption_rate,
                    a.median_days AS median_days_to_adopt, a.p90_days AS p90_days_to_adopt
             FROM fa_launch l
             LEFT JOIN fa_eligible_counts e ON e.seg = l.seg AND e.feature = l.feature
             LEFT JOIN fa_adoption a ON a.seg = l.seg AND a.feature = l.feature",
            seg = call.segment_expr(),
            t = EVENT_TIME,
            before_until = before_until(until.as_ref(), "ts", tz),
            from_since = from_since(since.as_ref(), "t", tz),
            first_use = micros("u.first_use"),
            first_seen = micros("s.first_seen"),
            launch = micros("l.launch"),
            segment = call.segment_output("l"),
        );
        let order = call.order("feature");
        call.case(function_sql, plain_sql, order)
    })
    .await;
}

#[tokio::test]
async fn funnel_matches_plain_sql_on_random_lakes() {
    check_on_random_lakes("funnel", 0xF0E1, |rng, lake| {
        let mut call = Call::new(rng);
        let tz = call.tz;
        let n = rng.range(2, 4) as usize;
        let steps: Vec<&str> = if rng.chance(65) {
            let start = rng.range(0, (FLOW.len() - n) as i64) as usize;
            FLOW[start..start + n].to_vec()
        } else {
            (0..n).map(|_| rng.pick(&FLOW)).collect()
        };
        let steps_sql = format!(
            "[{}]",
            steps
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if rng.chance(50) {
            call.positional.push(steps_sql);
        } else {
            call.argument("steps", steps_sql);
        }
        // The window: a round length, or exactly the time from a step 1 of the data to a later
        // step of the same actor, so that a step lands on the window's end.
        let mut boundaries = vec![];
        for a in &lake.events {
            for b in &lake.events {
                if let (Some(ua), Some(ub), Some(ta), Some(tb)) = (a.user_id, b.user_id, a.ts, b.ts)
                    && ua == ub
                    && a.event == Some(steps[0])
                    && b.event.is_some_and(|e| steps[1..].contains(&e))
                    && tb > ta
                    && (tb - ta) % NANOS == 0
                    && tb - ta <= 7 * DAY * NANOS
                {
                    boundaries.push((tb - ta) / NANOS);
                }
            }
        }
        let (within, within_text) = if !boundaries.is_empty() && rng.chance(50) {
            let seconds = rng.pick(&boundaries);
            (seconds, format!("{seconds} seconds"))
        } else {
            let (seconds, text) = rng.pick(&GAPS);
            (seconds, text.to_string())
        };
        match rng.below(5) {
            0 if within == 7 * DAY => {}
            0 | 1 => call.argument("within", format!("INTERVAL '{within_text}'")),
            _ => call.argument("within", format!("'{within_text}'")),
        }
        let strict_order = rng.chance(35);
        if strict_order {
            call.argument("mode", "'strict_order'".into());
        }
        let exact = whole_seconds(lake, |e| e.event == Some(steps[0]));
        let (since, until) = random_range(rng, lake, &exact);
        if let Some(since) = &since {
            call.argument("since", since.argument());
        }
        if let Some(until) = &until {
            call.argument("until", until.argument());
        }
        if rng.chance(20) {
            call.argument("step_column", "'event'".into());
            call.argument("actor", "'user_id'".into());
        }
        let input = if rng.chance(20) {
            "'SELECT * FROM events'"
        } else {
            "'events'"
        };
        let function_sql = call.sql(rng, "funnel", input);

        let window = format!("INTERVAL '{within} seconds'");
        let names: Vec<String> = steps.iter().map(|s| format!("'{s}'")).collect();
        let step_rows = names
            .iter()
            .enumerate()
            .map(|(k, name)| format!("SELECT CAST({} AS INT) AS k, {name} AS name", k + 1))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        // Read: the events from since to until + within (of the steps, unless strict_order).
        let read_until = until.as_ref().map_or("TRUE".into(), |u| {
            format!("t < {} + {window}", u.instant(tz))
        });
        let of_steps = if strict_order {
            "TRUE".to_string()
        } else {
            format!("event IN ({})", names.join(", "))
        };
        let first_before_until = before_until(until.as_ref(), "r.t", tz);
        // A row meets step 1 only before until; in strict_order mode a row that meets no step
        // is an event of its own (k = 0).
        let no_step = if strict_order {
            format!(
                "UNION ALL SELECT seg, actor, t, CAST(0 AS INT) AS k FROM fu_rows r
                 WHERE NOT coalesce(event IN ({later}) OR (event = {first} AND {first_before_until}), false)",
                later = names[1..].join(", "),
                first = names[0],
            )
        } else {
            String::new()
        };
        let mut ctes = vec![
            format!(
                "fu_rows AS (
                   SELECT * FROM (
                     SELECT {seg} AS seg, user_id AS actor, {t} AS t, event FROM events
                     WHERE user_id IS NOT NULL AND ts IS NOT NULL)
                   WHERE {from_since} AND {read_until} AND {of_steps})",
                seg = call.segment_expr(),
                t = EVENT_TIME,
                from_since = from_since(since.as_ref(), "t", tz),
            ),
            format!("fu_steps AS ({step_rows})"),
            format!(
                "fu_events AS (
                   SELECT r.seg, r.actor, r.t, s.k FROM fu_rows r JOIN fu_steps s ON s.name = r.event
                   WHERE s.k > 1 OR {first_before_until}
                   {no_step})"
            ),
            // l_k: the step-k events that end a chain of steps 1..k, with the latest step 1 of
            // such chains.
            "fu_l1 AS (SELECT DISTINCT seg, actor, t, t AS start FROM fu_events WHERE k = 1)".into(),
        ];
        for k in 2..=n {
            ctes.push(format!(
                "fu_l{k} AS (
                   SELECT e.seg, e.actor, e.t, max(p.start) AS start
                   FROM fu_events e JOIN fu_l{previous} p
                     ON p.seg = e.seg AND p.actor = e.actor AND p.t <= e.t
                     AND e.t <= p.start + {window}
                   WHERE e.k = {k}
                   GROUP BY e.seg, e.actor, e.t)",
                previous = k - 1
            ));
        }
        ctes.push(format!(
            "fu_all AS ({})",
            (1..=n)
                .map(|k| format!("SELECT seg, actor, t, CAST({k} AS INT) AS j FROM fu_l{k}"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        ));
        if strict_order {
            // The run stops at the first event after the first step 1 that meets no step, or
            // whose previous step no chain had reached; only the events before it count.
            ctes.extend([
                "fu_start AS (SELECT seg, actor, min(t) AS s0 FROM fu_events WHERE k = 1 GROUP BY seg, actor)"
                    .to_string(),
                "fu_reach AS (SELECT seg, actor, j, min(t) AS first_t FROM fu_all GROUP BY seg, actor, j)"
                    .into(),
                "fu_breaks AS (
                   SELECT e.seg, e.actor, e.t, e.k FROM fu_events e
                   JOIN fu_start s ON s.seg = e.seg AND s.actor = e.actor
                   LEFT JOIN fu_reach r ON r.seg = e.seg AND r.actor = e.actor AND r.j = e.k - 1
                   WHERE (e.t > s.s0 OR (e.t = s.s0 AND e.k > 1))
                     AND (e.k = 0 OR (e.k >= 2 AND (r.first_t IS NULL OR r.first_t > e.t))))"
                    .into(),
                "fu_cut_t AS (SELECT seg, actor, min(t) AS ct FROM fu_breaks GROUP BY seg, actor)".into(),
                "fu_cut AS (
                   SELECT b.seg, b.actor, b.t AS ct, min(b.k) AS ck FROM fu_breaks b
                   JOIN fu_cut_t c ON c.seg = b.seg AND c.actor = b.actor AND c.ct = b.t
                   GROUP BY b.seg, b.actor, b.t)"
                    .into(),
                "fu_kept AS (
                   SELECT a.seg, a.actor, a.t, a.j FROM fu_all a
                   LEFT JOIN fu_cut c ON c.seg = a.seg AND c.actor = a.actor
                   WHERE c.ct IS NULL OR a.t < c.ct OR (a.t = c.ct AND a.j < c.ck))"
                    .into(),
            ]);
        } else {
            ctes.push("fu_kept AS (SELECT * FROM fu_all)".into());
        }
        ctes.push(
            "fu_level AS (SELECT seg, actor, max(j) AS level FROM fu_kept GROUP BY seg, actor)"
                .into(),
        );
        // The chain of each actor of level `level`: its last step the earliest event ending a
        // chain of that level, each step before the latest event ending a chain one shorter at or
        // before the step after it.
        let mut seconds = vec![];
        for level in 2..=n {
            ctes.push(format!(
                "fu_c{level}_{level} AS (
                   SELECT x.seg, x.actor, min(x.t) AS t FROM fu_kept x
                   JOIN fu_level v ON v.seg = x.seg AND v.actor = x.actor AND v.level = {level}
                   WHERE x.j = {level} GROUP BY x.seg, x.actor)"
            ));
            for j in (1..level).rev() {
                ctes.push(format!(
                    "fu_c{level}_{j} AS (
                       SELECT x.seg, x.actor, max(x.t) AS t FROM fu_kept x
                       JOIN fu_c{level}_{next} c ON c.seg = x.seg AND c.actor = x.actor AND x.t <= c.t
                       WHERE x.j = {j} GROUP BY x.seg, x.actor)",
                    next = j + 1
                ));
            }
            for step in 2..=level {
                seconds.push(format!(
                    "SELECT a.seg, CAST({step} AS INT) AS step,
                            CAST({} - {} AS DOUBLE) / 1000000.0 AS seconds
                     FROM fu_c{level}_{step} a
                     JOIN fu_c{level}_{previous} b ON b.seg = a.seg AND b.actor = a.actor",
                    micros("a.t"),
                    micros("b.t"),
                    previous = step - 1
                ));
            }
        }
        ctes.push(format!("fu_seconds AS ({})", seconds.join(" UNION ALL ")));
        // Every step of every segment with events read (without a segment, always).
        let segments = if call.segment {
            "SELECT DISTINCT seg FROM fu_rows"
        } else {
            "SELECT '-' AS seg"
        };
        ctes.extend([
            format!("fu_segments AS ({segments})"),
            "fu_grid AS (SELECT g.seg, s.k AS step, s.name FROM fu_segments g CROSS JOIN fu_steps s)"
                .into(),
            "fu_reached AS (
               SELECT g.seg, g.step, count(v.actor) AS actors FROM fu_grid g
               LEFT JOIN fu_level v ON v.seg = g.seg AND v.level >= g.step
               GROUP BY g.seg, g.step)"
                .into(),
            "fu_medians AS (
               SELECT seg, step, percentile_cont(seconds, 0.5) AS median FROM fu_seconds
               GROUP BY seg, step)"
                .into(),
        ]);
        let plain_sql = format!(
            "WITH {}
             SELECT {segment}g.step, g.name AS step_name, r.actors,
                    CASE WHEN f.actors = 0 THEN NULL
                         ELSE CAST(r.actors AS DOUBLE) / CAST(f.actors AS DOUBLE) END
                      AS conversion_from_first,
                    CASE WHEN g.step = 1 THEN 1.0 WHEN p.actors = 0 THEN NULL
                         ELSE CAST(r.actors AS DOUBLE) / CAST(p.actors AS DOUBLE) END
                      AS conversion_from_previous,
                    m.median AS median_seconds_from_previous
             FROM fu_grid g
             JOIN fu_reached r ON r.seg = g.seg AND r.step = g.step
             JOIN fu_reached f ON f.seg = g.seg AND f.step = 1
             LEFT JOIN fu_reached p ON p.seg = g.seg AND p.step = g.step - 1
             LEFT JOIN fu_medians m ON m.seg = g.seg AND m.step = g.step",
            ctes.join(",\n"),
            segment = call.segment_output("g"),
        );
        let order = call.order("step");
        call.case(function_sql, plain_sql, order)
    })
    .await;
}

#[tokio::test]
async fn churn_risk_matches_plain_sql_on_random_lakes() {
    check_on_random_lakes("churn_risk", 0xC4A5, |rng, lake| {
        let mut call = Call::new(rng);
        let tz = call.tz;
        let as_of = rng.chance(65).then(|| {
            let day = lake.first + rng.range(lake.days / 3, lake.days + 4) * DAY;
            bound_at(rng, day, false)
        });
        if let Some(as_of) = &as_of {
            call.argument("as_of", as_of.argument());
        }
        let window = if rng.chance(25) { 28 } else { rng.range(1, 21) };
        if window != 28 || rng.chance(50) {
            call.argument("window_days", window.to_string());
        }
        let inactive = if rng.chance(25) { 14 } else { rng.range(1, 12) };
        if inactive != 14 || rng.chance(50) {
            call.argument("inactive_days", inactive.to_string());
        }
        let threshold = if rng.chance(25) {
            0.5
        } else {
            rng.pick(&[0.0, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0])
        };
        if threshold != 0.5 || rng.chance(50) {
            call.argument("drop_threshold", format!("{threshold:?}"));
        }
        let feature = if rng.chance(20) { "event" } else { "feature" };
        if feature != "feature" || rng.chance(30) {
            call.argument("feature", format!("'{feature}'"));
        }
        let input = if rng.chance(30) {
            "'SELECT user_id AS account_id, ts, event, feature, plan FROM events'"
        } else {
            call.argument("account", "'user_id'".into());
            "'events'"
        };
        let function_sql = call.sql(rng, "churn_risk", input);

        // as_of: its local date, else the segment's last day with data ("as if each segment
        // were its own table").
        let as_of_day = match &as_of {
            Some(bound) => bound.local_date(tz),
            None => "max(day)".into(),
        };
        let plain_sql = format!(
            "WITH cr_events AS (
               SELECT {seg} AS seg, user_id AS account, ts AS raw,
                      CAST({local} AS DATE) AS day, {feature} AS feature
               FROM events WHERE user_id IS NOT NULL AND ts IS NOT NULL),
             cr_as_of AS (SELECT seg, {as_of_day} AS as_of FROM cr_events GROUP BY seg),
             cr_windows AS (
               SELECT e.*, a.as_of, CAST(a.as_of AS INT) - CAST(e.day AS INT) AS ago
               FROM cr_events e JOIN cr_as_of a ON a.seg = e.seg
               WHERE CAST(a.as_of AS INT) - CAST(e.day AS INT) BETWEEN 0 AND {two_windows}),
             cr_accounts AS (
               SELECT seg, account, max(raw) AS last_seen, max(as_of) AS as_of, max(day) AS last_day,
                      count(CASE WHEN ago < {window} THEN 1 END) AS events_current,
                      count(CASE WHEN ago >= {window} THEN 1 END) AS events_previous,
                      CAST(count(DISTINCT CASE WHEN ago < {window} THEN day END) AS INT)
                        AS active_days_current,
                      CAST(count(DISTINCT CASE WHEN ago >= {window} THEN day END) AS INT)
                        AS active_days_previous
               FROM cr_windows GROUP BY seg, account),
             cr_measures AS (
               SELECT *, CAST(CAST(as_of AS INT) - CAST(last_day AS INT) AS INT) AS days_inactive,
                      CASE WHEN events_previous = 0 THEN NULL
                           ELSE CAST(events_current AS DOUBLE) / CAST(events_previous AS DOUBLE) - 1.0
                      END AS usage_change
               FROM cr_accounts),
             cr_dropped AS (
               SELECT seg, account, feature FROM cr_windows
               WHERE ago >= {window} AND feature IS NOT NULL
               EXCEPT
               SELECT seg, account, feature FROM cr_windows
               WHERE ago < {window} AND feature IS NOT NULL),
             cr_dropped_lists AS (
               SELECT seg, account, array_agg(feature ORDER BY feature) AS features
               FROM cr_dropped GROUP BY seg, account),
             cr_reasons AS (
               SELECT seg, account, 1 AS o, 'inactive' AS reason FROM cr_measures
               WHERE days_inactive >= {inactive}
               UNION ALL
               SELECT seg, account, 2 AS o, 'usage_drop' AS reason FROM cr_measures
               WHERE usage_change < -{threshold:?}
               UNION ALL
               SELECT seg, account, 3 AS o, 'feature_dropped' AS reason FROM cr_dropped_lists),
             cr_reason_lists AS (
               SELECT seg, account, array_agg(reason ORDER BY o) AS reasons FROM cr_reasons
               GROUP BY seg, account)
             SELECT {segment}m.account, m.last_seen, m.days_inactive, m.events_current,
                    m.events_previous, m.usage_change, m.active_days_current,
                    m.active_days_previous, coalesce(d.features, make_array()) AS features_dropped,
                    r.reasons
             FROM cr_measures m
             JOIN cr_reason_lists r ON r.seg = m.seg AND r.account = m.account
             LEFT JOIN cr_dropped_lists d ON d.seg = m.seg AND d.account = m.account",
            seg = call.segment_expr(),
            local = local_time(tz),
            two_windows = 2 * window - 1,
            segment = call.segment_output("m"),
        );
        let order = call.order("days_inactive DESC, usage_change ASC NULLS LAST, account");
        call.case(function_sql, plain_sql, order)
    })
    .await;
}
