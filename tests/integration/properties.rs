//! Property tests of the metric table functions: each of `active_users`, `lifecycle`,
//! `usage_frequency` and `cohort_retention` must return exactly the rows of a plain SQL formulation
//! of its contract (`../shared/spec/metrics.md`) on many random small lakes.
//!
//! A lake is a few Parquet files of `events(user_id, ts, event, plan)` written in no time order,
//! with NULL actors, times and segments, exact duplicate rows, times next to the local midnights of
//! the zones tested and around their DST changes, in a random timestamp unit. Each function runs on
//! it through the engine's own session and lake reading, with random parameters (zone, week start,
//! period, range, segment, mode, filters, windows), given as arguments or as session settings.
//!
//! The plain SQL uses DataFusion's own functions only, never our scalars or fold aggregates: a
//! local time is `to_local_time(ts AT TIME ZONE 'UTC' AT TIME ZONE tz)`, a period starts at
//! `date_trunc` of it (a Sunday week is the Monday week of the next day, one day earlier), and the
//! first instant of a local date `d` is `arrow_cast(CAST(d AS TIMESTAMP), 'Timestamp(..., tz)')`
//! (a time without a zone cast to a zone is read as local time). Periods are numbered by
//! `row_number()` over a calendar of local dates. Results must match row for row, in the
//! documented order; a few invariants the contract states are checked on top.
//!
//! A failure lists every failing seed with its lake, the call, and the differing rows;
//! `random_lake(seed)` rebuilds the lake of a seed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, TimeZone, Weekday};
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use tempfile::TempDir;
use usagelake::lake::{discover, register_tables};
use usagelake::session::{SessionOptions, create_context};

/// The lakes every function is checked on: `random_lake(seed)` for each.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=40;
/// Calls of each function per lake, each with its own parameters.
const CALLS_PER_LAKE: usize = 1;

const ZONES: [&str; 4] = [
    "UTC",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Asia/Kolkata",
];
const DAY: i64 = 86_400;
const NANOS: i64 = 1_000_000_000;

/// SplitMix64: a tiny deterministic generator, so that a seed always makes the same lake.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `low..=high`.
    pub(crate) fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Seconds since the epoch of a date's UTC midnight.
pub(crate) fn epoch_seconds(date: &str) -> i64 {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

pub(crate) fn date_text(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

pub(crate) fn timestamp_text(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A lake on disk and what it holds.
struct Lake {
    dir: TempDir,
    /// The zone most calls read it in.
    zone: &'static str,
    /// Seconds since the epoch of the UTC midnight of its first day.
    first: i64,
    /// Days the events spread over.
    days: i64,
    /// Seed, shape and types, for failure messages.
    about: String,
}

#[derive(Clone)]
struct Event {
    user_id: Option<i64>,
    /// Nanoseconds since the epoch.
    ts: Option<i64>,
    event: Option<&'static str>,
    plan: Option<&'static str>,
}

/// A random small lake: tens to a few hundred events of a few users over days to months.
fn random_lake(seed: u64) -> Lake {
    let mut rng = Rng::new(seed);
    // First days close to DST changes (US 2024-03-10 and 2024-11-03, EU 2024-03-31 and
    // 2024-10-27, 2023-03-12 and 2023-03-26), a year's end and a quarter's end.
    let first = epoch_seconds(rng.pick(&[
        "2024-02-26",
        "2024-03-04",
        "2024-10-14",
        "2024-10-28",
        "2023-12-18",
        "2024-06-20",
        "2023-03-01",
        "2024-12-20",
    ]));
    let days = rng.range(8, 120);
    let users = rng.range(2, 25);
    let rows = rng.range(15, 240) as usize;
    let unit = rng.pick(&[
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ]);
    let column_zone: Option<Arc<str>> = rng.chance(20).then(|| "UTC".into());
    // The zone the lake is mostly read in.
    let zone = rng.pick(&ZONES);
    // DST changes as UTC instants.
    let transitions: Vec<i64> = [
        ("2023-03-12", 10),
        ("2023-03-26", 1),
        ("2024-03-10", 10),
        ("2024-03-31", 1),
        ("2024-10-27", 1),
        ("2024-11-03", 9),
        ("2025-03-09", 10),
        ("2025-03-30", 1),
    ]
    .iter()
    .map(|(date, hour)| epoch_seconds(date) + hour * 3600)
    .filter(|&t| t >= first && t < first + days * DAY)
    .collect();
    // Each user is around for part of the span, so that actors come, go and come back.
    let spans: Vec<(i64, i64)> = (0..users)
        .map(|_| {
            let from = rng.range(0, days - 1);
            (from, rng.range(from, days - 1))
        })
        .collect();

    let mut events: Vec<Event> = Vec::with_capacity(rows);
    while events.len() < rows {
        if !events.is_empty() && rng.chance(8) {
            let copy = events[rng.below(events.len() as u64) as usize].clone();
            events.push(copy);
            continue;
        }
        let user = rng.below(users as u64) as usize;
        let (from, to) = if rng.chance(85) {
            spans[user]
        } else {
            (0, days - 1)
        };
        let day = first + rng.range(from, to) * DAY;
        let seconds = match rng.below(10) {
            0..=2 => day + rng.range(0, DAY - 1),
            // Next to the local midnight of a zone: UTC, Los Angeles (PDT, PST), Berlin (CEST,
            // CET), Kolkata.
            3..=7 => {
                let midnight = day + rng.pick(&[0, 7, 8, 22, 23]) * 3600;
                let midnight = if rng.chance(15) {
                    day + 18 * 3600 + 1800
                } else {
                    midnight
                };
                let near = rng.range(-5400, 5400);
                midnight + rng.pick(&[-1, 0, 1, near])
            }
            _ if !transitions.is_empty() => {
                let near = rng.range(-4 * 3600, 4 * 3600);
                rng.pick(&transitions) + rng.pick(&[-1, 0, 1, near])
            }
            _ => day + rng.range(0, DAY - 1),
        };
        let fraction = match rng.below(4) {
            0 => rng.range(0, NANOS - 1),
            1 => NANOS - 1,
            _ => 0,
        };
        events.push(Event {
            user_id: (!rng.chance(5)).then(|| 1 + user as i64),
            ts: (!rng.chance(5)).then_some(seconds * NANOS + fraction),
            event: match rng.below(20) {
                0..=3 => Some("signup"),
                4..=14 => Some("view"),
                15..=18 => Some("invite"),
                _ => None,
            },
            plan: match rng.below(20) {
                0..=9 => Some("free"),
                10..=15 => Some("pro"),
                16..=18 => Some("team"),
                _ => None,
            },
        });
    }
    // Often the last event comes days after the others, at a local midnight of the lake's zone
    // that starts a week (or a month), where a period has just ended.
    if rng.chance(60) {
        let boundaries: Vec<i64> = (days + 1..days + 8)
            .map(|day| first + day * DAY)
            .filter(|&midnight| {
                let date = chrono::DateTime::from_timestamp(midnight, 0).unwrap();
                date.weekday() == Weekday::Mon || date.weekday() == Weekday::Sun || date.day() == 1
            })
            .collect();
        let midnight = chrono::DateTime::from_timestamp(rng.pick(&boundaries), 0).unwrap();
        let local_midnight = zone
            .parse::<chrono_tz::Tz>()
            .unwrap()
            .from_local_datetime(&midnight.naive_utc())
            .earliest()
            .unwrap();
        events.push(Event {
            user_id: Some(1 + rng.below(users as u64) as i64),
            ts: Some(local_midnight.timestamp() * NANOS),
            event: Some("view"),
            plan: Some(rng.pick(&["free", "pro", "team"])),
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
        write_events(
            &dir.path().join(format!("events/part-{index}.parquet")),
            chunk,
            unit,
            column_zone.clone(),
        );
    }
    let about = format!(
        "seed {seed}: {} events of {users} users over {days} days from {}, in {} files, ts \
         Timestamp({unit:?}, {column_zone:?}), read mostly in {zone}",
        events.len(),
        date_text(first),
        events.len().div_ceil(per_file)
    );
    Lake {
        dir,
        zone,
        first,
        days,
        about,
    }
}

fn write_events(path: &Path, events: &[Event], unit: TimeUnit, zone: Option<Arc<str>>) {
    let per_unit = match unit {
        TimeUnit::Second => NANOS,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let times: Vec<Option<i64>> = events
        .iter()
        .map(|e| e.ts.map(|t| t.div_euclid(per_unit)))
        .collect();
    let ts: ArrayRef = match unit {
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
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", ts.data_type().clone(), true),
        Field::new("event", DataType::Utf8, true),
        Field::new("plan", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            events.iter().map(|e| e.user_id).collect::<Vec<_>>(),
        )),
        ts,
        Arc::new(StringArray::from(
            events.iter().map(|e| e.event).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            events.iter().map(|e| e.plan).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
        .expect("parquet writer");
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A session as the engine builds it, on the lake, with the call's threads and settings.
async fn session(lake: &Lake, call: &Call) -> SessionContext {
    let options = SessionOptions {
        threads: Some(call.threads),
        ..SessionOptions::default()
    };
    let ctx = create_context(&options).expect("session");
    let tables = discover(lake.dir.path()).expect("lake");
    register_tables(&ctx, &tables).await.expect("tables");
    for setting in &call.settings {
        ctx.sql(setting).await.unwrap().collect().await.unwrap();
    }
    ctx
}

/// A `since`, `until` or `as_of` argument.
#[derive(Debug, Clone)]
pub(crate) enum Bound {
    Date(String),
    Text(String),
    Timestamp(String),
}

impl Bound {
    /// A random bound on the lake's day `day` (counted from its first), of a random type.
    fn random(rng: &mut Rng, lake: &Lake, day: i64) -> Self {
        let midnight = lake.first + day * DAY;
        match rng.below(3) {
            0 => Self::Date(date_text(midnight)),
            1 => Self::Text(date_text(midnight)),
            _ => {
                let seconds = match rng.below(3) {
                    0 => 0,
                    1 => rng.pick(&[-1, 1, 7 * 3600, 8 * 3600 - 1, 18 * 3600 + 1800]),
                    _ => rng.range(0, DAY - 1),
                };
                Self::Timestamp(timestamp_text(midnight + seconds))
            }
        }
    }

    /// Two bounds at least two days apart, so the first is before the second in every zone.
    fn random_pair(rng: &mut Rng, lake: &Lake) -> (Self, Self) {
        let since = rng.range(-10, lake.days + 5);
        let until = since + rng.range(2, lake.days + 10);
        let since = Self::random(rng, lake, since);
        (since, Self::random(rng, lake, until))
    }

    pub(crate) fn argument(&self) -> String {
        match self {
            Self::Date(date) => format!("DATE '{date}'"),
            Self::Text(date) => format!("'{date}'"),
            Self::Timestamp(time) => format!("TIMESTAMP '{time}'"),
        }
    }

    /// The instant it means in `tz` (a date: its local midnight), as SQL.
    pub(crate) fn instant(&self, tz: &str) -> String {
        match self {
            Self::Date(date) | Self::Text(date) => local_midnight(&format!("DATE '{date}'"), tz),
            Self::Timestamp(time) => {
                format!("arrow_cast(TIMESTAMP '{time}', 'Timestamp(Microsecond, Some(\"UTC\"))')")
            }
        }
    }

    /// The local date it means in `tz`, as SQL.
    pub(crate) fn local_date(&self, tz: &str) -> String {
        match self {
            Self::Date(date) | Self::Text(date) => format!("DATE '{date}'"),
            Self::Timestamp(time) => format!(
                "CAST(to_local_time(TIMESTAMP '{time}' AT TIME ZONE 'UTC' AT TIME ZONE '{tz}') AS \
                 DATE)"
            ),
        }
    }
}

/// The first instant of the local date `date` in `tz`: a time without a zone cast to a zone is
/// read as local time there.
pub(crate) fn local_midnight(date: &str, tz: &str) -> String {
    format!("arrow_cast(CAST({date} AS TIMESTAMP), 'Timestamp(Microsecond, Some(\"{tz}\"))')")
}

/// The local time of `ts` in `tz`, without a zone.
pub(crate) fn local_time(tz: &str) -> String {
    format!("to_local_time(ts AT TIME ZONE 'UTC' AT TIME ZONE '{tz}')")
}

/// The local date that starts the calendar period holding `local` (a local time or a DATE).
pub(crate) fn period_of(local: &str, period: &str, week_start: &str) -> String {
    match (period, week_start) {
        ("week", "sunday") => format!(
            "CAST(date_trunc('week', {local} + INTERVAL '1' DAY) - INTERVAL '1' DAY AS DATE)"
        ),
        _ => format!("CAST(date_trunc('{period}', {local}) AS DATE)"),
    }
}

/// The start of the period after the one starting on `start`.
pub(crate) fn next_period(start: &str, period: &str) -> String {
    let step = match period {
        "day" => "INTERVAL '1' DAY",
        "week" => "INTERVAL '7' DAY",
        "month" => "INTERVAL '1' MONTH",
        "quarter" => "INTERVAL '3' MONTH",
        "year" => "INTERVAL '1' YEAR",
        other => panic!("period {other}"),
    };
    format!("CAST({start} + {step} AS DATE)")
}

/// Every local date from before the lake's first day and its earliest `since` to after its
/// latest `until`, as `cal(day)`.
fn local_dates(lake: &Lake) -> String {
    let first = lake.first / DAY;
    format!(
        "SELECT arrow_cast(CAST(value AS INT), 'Date32') AS day FROM generate_series({}, {})",
        first - 40,
        first + 2 * lake.days + 60
    )
}

/// `instant >= since`, or `TRUE` without since.
pub(crate) fn from_since(since: Option<&Bound>, instant: &str, tz: &str) -> String {
    since.map_or("TRUE".into(), |s| format!("{instant} >= {}", s.instant(tz)))
}

/// `instant < until`, or `TRUE` without until.
pub(crate) fn before_until(until: Option<&Bound>, instant: &str, tz: &str) -> String {
    until.map_or("TRUE".into(), |u| format!("{instant} < {}", u.instant(tz)))
}

/// `instant <= until`: a period ending at `instant` had ended at until (`TRUE` without until).
pub(crate) fn ended_by_until(until: Option<&Bound>, instant: &str, tz: &str) -> String {
    until.map_or("TRUE".into(), |u| format!("{instant} <= {}", u.instant(tz)))
}

/// The zone and week start of a call, given as arguments or as session settings.
struct Calendar {
    tz: &'static str,
    week_start: &'static str,
}

/// One call of a table function.
struct Call {
    /// Query parallelism: partial states of the fold aggregates merge when above 1.
    threads: usize,
    settings: Vec<String>,
    arguments: Vec<(&'static str, String)>,
    input: String,
    segment: bool,
}

impl Call {
    fn new(rng: &mut Rng, lake: &Lake, with_week_start: bool) -> (Self, Calendar) {
        let calendar = Calendar {
            tz: match rng.chance(50) {
                true => lake.zone,
                false => rng.pick(&ZONES),
            },
            week_start: if with_week_start {
                rng.pick(&["monday", "sunday"])
            } else {
                "monday"
            },
        };
        let mut call = Self {
            threads: rng.range(1, 3) as usize,
            settings: vec![],
            arguments: vec![],
            input: if rng.chance(20) {
                "'SELECT * FROM events'".into()
            } else {
                "'events'".into()
            },
            segment: rng.chance(40),
        };
        if rng.chance(30) {
            call.settings
                .push(format!("SET usagelake.tz = '{}'", calendar.tz));
        } else if calendar.tz != "UTC" || rng.chance(50) {
            call.arguments.push(("tz", format!("'{}'", calendar.tz)));
        }
        if with_week_start {
            if rng.chance(30) {
                call.settings.push(format!(
                    "SET usagelake.week_start = '{}'",
                    calendar.week_start
                ));
            } else if calendar.week_start != "monday" || rng.chance(50) {
                call.arguments
                    .push(("week_start", format!("'{}'", calendar.week_start)));
            }
        }
        if call.segment {
            call.arguments.push(("segment", "'plan'".into()));
        }
        (call, calendar)
    }

    fn argument(&mut self, name: &'static str, value: String) {
        self.arguments.push((name, value));
    }

    fn sql(&self, function: &str, rng_order: u64) -> String {
        let mut arguments = self.arguments.clone();
        // Named arguments come in any order.
        let len = arguments.len();
        if len > 1 {
            arguments.rotate_left(rng_order as usize % len);
        }
        let mut sql = format!("SELECT * FROM {function}({}", self.input);
        for (name, value) in arguments {
            write!(sql, ", {name} => {value}").unwrap();
        }
        sql.push(')');
        sql
    }

    /// The segment column of the plain SQL's rows: `plan`, or one constant segment.
    fn segment_expr(&self) -> &'static str {
        if self.segment { "plan" } else { "'-'" }
    }

    /// The segment as the first output column, or nothing.
    fn segment_output(&self, table: &str) -> String {
        if self.segment {
            format!("{table}.seg AS plan, ")
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

    /// The segment column and the `GROUP BY` of checks on the function's result.
    fn segment_group(&self) -> (&'static str, &'static str) {
        if self.segment {
            ("plan, ", "GROUP BY plan")
        } else {
            ("", "")
        }
    }
}

/// A query's result.
pub(crate) async fn execute(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(frame) => frame.collect().await,
        Err(error) => Err(error),
    }
    .map_err(|e| e.strip_backtrace())
}

/// Column types and rows of batches, each row as its values' text.
pub(crate) fn text_rows(batches: &[RecordBatch]) -> (Vec<DataType>, Vec<String>) {
    let mut types = vec![];
    let mut rows = vec![];
    let options = FormatOptions::new().with_null("NULL");
    for batch in batches {
        types = batch
            .schema()
            .fields()
            .iter()
            .map(|f| normalized(f.data_type()))
            .collect();
        let columns = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .expect("printable columns");
        for row in 0..batch.num_rows() {
            let values: Vec<String> = columns.iter().map(|c| c.value(row).to_string()).collect();
            rows.push(values.join(" | "));
        }
    }
    (types, rows)
}

/// Batches as a table named `name` for the queries `use_it` runs; `None` without rows.
pub(crate) async fn with_table<T>(
    ctx: &SessionContext,
    name: &str,
    batches: Vec<RecordBatch>,
    use_it: impl AsyncFnOnce(&SessionContext) -> T,
) -> Option<T> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return None;
    }
    ctx.register_table(name, ctx.read_batches(batches).unwrap().into_view())
        .unwrap();
    let result = use_it(ctx).await;
    ctx.deregister_table(name).unwrap();
    Some(result)
}

/// Types compared as SQL sees them: a string view is a string.
fn normalized(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        other => other.clone(),
    }
}

/// One call of a function and its plain SQL formulation.
struct Case {
    call: Call,
    function_sql: String,
    /// The plain SQL, without ORDER BY.
    plain_sql: String,
    /// The documented order of the rows, as ORDER BY keys over the output columns.
    order: String,
    /// Invariants: queries over the function's rows (table `result`) that count violations.
    checks: Vec<(&'static str, String)>,
}

/// The common table expressions of `WITH name AS (query), ... SELECT ...` as (name, query), and
/// the final SELECT.
pub(crate) fn common_table_expressions(sql: &str) -> (Vec<(&str, &str)>, &str) {
    let mut steps = vec![];
    let Some(mut rest) = sql.trim_start().strip_prefix("WITH ") else {
        return (steps, sql);
    };
    loop {
        let rest_trimmed = rest.trim_start();
        let (name, after) = rest_trimmed.split_once(" AS (").expect("name AS (");
        // The query runs to the parenthesis that closes the one opened, outside quotes.
        let (mut depth, mut quoted, mut end) = (1, false, None);
        for (at, c) in after.char_indices() {
            match c {
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(at);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.expect("a closing parenthesis");
        steps.push((name.trim(), &after[..end]));
        rest = after[end + 1..].trim_start();
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None => return (steps, rest),
        }
    }
}

/// Compares the function's rows with the plain SQL's: how many rows the function returned, or
/// what is wrong.
async fn compare(ctx: &SessionContext, case: &Case) -> Result<usize, String> {
    compare_with_plain_sql(
        ctx,
        &case.function_sql,
        &case.plain_sql,
        &case.order,
        &case.checks,
        text_rows,
    )
    .await
}

/// Reads result batches as column types and one text per row.
pub(crate) type RowReader<T> = fn(&[RecordBatch]) -> (Vec<T>, Vec<String>);

/// Runs `function_sql` and `plain_sql` (sorted by `order`), reads both with `rows` (column
/// types, then one text per row), and says how many rows the function returned, or what
/// differs; when they agree, each of `checks` (a query over the function's rows as `result`)
/// must return 0.
pub(crate) async fn compare_with_plain_sql<T: PartialEq + std::fmt::Debug>(
    ctx: &SessionContext,
    function_sql: &str,
    plain_sql: &str,
    order: &str,
    checks: &[(&'static str, String)],
    rows: RowReader<T>,
) -> Result<usize, String> {
    let function = execute(ctx, function_sql)
        .await
        .map_err(|error| format!("the function failed: {error}"))?;
    let (got_types, got) = rows(&function);
    let failed = |error| format!("the plain SQL failed: {error}\n{plain_sql}");
    // Each common table expression is materialised first: planning the whole query at once
    // inlines each one wherever it is used, which takes seconds in a debug build.
    let (steps, last) = common_table_expressions(plain_sql);
    for (name, query) in steps {
        execute(ctx, &format!("CREATE TABLE {name} AS {query}"))
            .await
            .map_err(failed)?;
    }
    let plain = execute(ctx, last).await.map_err(failed)?;
    // The plain rows are sorted once materialised: DataFusion 55 can drop an ORDER BY key of a
    // query whose functional dependencies it misreads (one taken from before a CROSS JOIN).
    let sort = format!("SELECT * FROM plain ORDER BY {order}");
    let plain = with_table(ctx, "plain", plain, async |ctx| execute(ctx, &sort).await).await;
    let (want_types, want) = match plain {
        Some(sorted) => rows(&sorted.map_err(|e| format!("sorting the plain rows: {e}"))?),
        None => (vec![], vec![]),
    };
    let mut report = String::new();
    if !got.is_empty() && !want.is_empty() && got_types != want_types {
        writeln!(
            report,
            "column types {got_types:?}, expected {want_types:?}"
        )
        .unwrap();
    }
    if got != want {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for row in &got {
            *counts.entry(row).or_default() += 1;
        }
        for row in &want {
            *counts.entry(row).or_default() -= 1;
        }
        let only = |function: bool| -> Vec<&str> {
            counts
                .iter()
                .filter(|(_, n)| if function { **n > 0 } else { **n < 0 })
                .map(|(row, _)| *row)
                .collect()
        };
        let (only_function, only_plain) = (only(true), only(false));
        if only_function.is_empty() && only_plain.is_empty() {
            let at = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(0);
            writeln!(
                report,
                "the same rows in another order: row {at} is {:?}, expected {:?}",
                got[at], want[at]
            )
            .unwrap();
        } else {
            writeln!(
                report,
                "{} rows, expected {}; only in the function ({}): {:#?}\nonly in the plain SQL \
                 ({}): {:#?}",
                got.len(),
                want.len(),
                only_function.len(),
                &only_function[..only_function.len().min(8)],
                only_plain.len(),
                &only_plain[..only_plain.len().min(8)]
            )
            .unwrap();
        }
        writeln!(report, "plain SQL:\n{plain_sql}").unwrap();
    }
    if report.is_empty() {
        // The invariants, on the function's own rows.
        let broken = with_table(ctx, "result", function, async |ctx| {
            let mut broken = String::new();
            for (what, sql) in checks {
                match execute(ctx, sql).await.map(|b| text_rows(&b).1) {
                    Ok(rows) if rows == ["0"] => {}
                    Ok(rows) => writeln!(broken, "{what}: {rows:?} ({sql})").unwrap(),
                    Err(error) => writeln!(broken, "{what}: {error} ({sql})").unwrap(),
                }
            }
            broken
        })
        .await;
        report = broken.unwrap_or_default();
    }
    match report.is_empty() {
        true => Ok(got.len()),
        false => Err(report),
    }
}

/// Runs `case` on every lake of [`SEEDS`], `CALLS_PER_LAKE` times, and fails listing every
/// mismatch. `case` returns the session settings, the function's SQL, the plain SQL and checks.
async fn check_on_random_lakes(function: &str, salt: u64, case: impl Fn(&mut Rng, &Lake) -> Case) {
    let mut failures = vec![];
    let mut compared = 0;
    let mut nonempty = 0;
    for seed in SEEDS {
        let lake = random_lake(seed);
        let mut rng = Rng::new(seed ^ salt);
        for _ in 0..CALLS_PER_LAKE {
            let case = case(&mut rng, &lake);
            let ctx = session(&lake, &case.call).await;
            compared += 1;
            match compare(&ctx, &case).await {
                Ok(0) => {}
                Ok(_) => nonempty += 1,
                Err(report) => failures.push(format!(
                    "{}\n  threads: {}, settings: {:?}\n  call: {}\n{report}",
                    lake.about, case.call.threads, case.call.settings, case.function_sql
                )),
            }
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

/// The events the functions read: those with an actor and a time.
fn events(call: &Call, tz: &str, extra: &str) -> String {
    format!(
        "SELECT {} AS seg, user_id AS actor, ts AT TIME ZONE 'UTC' AS t, {} AS lt{extra} FROM \
         events WHERE user_id IS NOT NULL AND ts IS NOT NULL",
        call.segment_expr(),
        local_time(tz)
    )
}

#[tokio::test]
async fn active_users_matches_plain_sql_on_random_lakes() {
    check_on_random_lakes("active_users", 0xA1, |rng, lake| {
        let (mut call, calendar) = Call::new(rng, lake, false);
        let tz = calendar.tz;
        let (mut since, mut until) = (None, None);
        match rng.below(4) {
            0 => {}
            1 => {
                let day = rng.range(-5, lake.days + 3);
                since = Some(Bound::random(rng, lake, day));
            }
            2 => {
                let day = rng.range(-3, lake.days + 10);
                until = Some(Bound::random(rng, lake, day));
            }
            _ => {
                let (s, u) = Bound::random_pair(rng, lake);
                (since, until) = (Some(s), Some(u));
            }
        }
        if let Some(since) = &since {
            call.argument("since", since.argument());
        }
        if let Some(until) = &until {
            call.argument("until", until.argument());
        }
        let function_sql = call.sql("active_users", rng.next());
        // Reported: the days whose first instant is in [since, until); without since from the
        // segment's first day with data, without until to its last. The windows read the days
        // before, wherever they are.
        let first_day = match &since {
            Some(_) => from_since(since.as_ref(), &local_midnight("c.day", tz), tz),
            None => "c.day >= s.first_day".into(),
        };
        let last_day = match &until {
            Some(_) => before_until(until.as_ref(), &local_midnight("c.day", tz), tz),
            None => "c.day <= s.last_day".into(),
        };
        // With both bounds, a segment without events in the days the report reads, [since - 29,
        // until), reports nothing, as the function does (like an empty table). The contract is
        // silent there; `lifecycle` reports such a range zero-filled.
        let read = match (&since, &until) {
            (Some(_), Some(_)) => "d.day BETWEEN r.low - INTERVAL '29' DAY AND r.high",
            _ => "TRUE",
        };
        let plain_sql = format!(
            "WITH ev AS ({events}),
            d AS (SELECT DISTINCT seg, actor, CAST(lt AS DATE) AS day FROM ev),
            cal AS ({calendar}),
            s AS (SELECT seg, min(day) AS first_day, max(day) AS last_day FROM d GROUP BY seg),
            all_days AS (SELECT s.seg, c.day FROM s CROSS JOIN cal c WHERE {first_day} AND {last_day}),
            r AS (SELECT seg, min(day) AS low, max(day) AS high FROM all_days GROUP BY seg),
            reads AS (
              SELECT DISTINCT r.seg FROM r JOIN d ON (d.seg IS NOT DISTINCT FROM r.seg) WHERE {read}),
            days AS (
              SELECT all_days.seg, all_days.day FROM all_days
              JOIN reads ON (reads.seg IS NOT DISTINCT FROM all_days.seg)),
            counts AS (
              SELECT days.seg, days.day,
                     count(DISTINCT CASE WHEN d.day = days.day THEN d.actor END) AS dau,
                     count(DISTINCT CASE WHEN d.day > days.day - INTERVAL '7' DAY THEN d.actor END) AS wau,
                     count(DISTINCT d.actor) AS mau
              FROM days LEFT JOIN d ON (d.seg IS NOT DISTINCT FROM days.seg)
                AND d.day > days.day - INTERVAL '30' DAY AND d.day <= days.day
              GROUP BY days.seg, days.day)
            SELECT {segment}counts.day, dau, wau, mau,
                   CASE WHEN mau = 0 THEN NULL ELSE CAST(dau AS DOUBLE) / CAST(mau AS DOUBLE) END AS dau_mau,
                   CASE WHEN wau = 0 THEN NULL ELSE CAST(dau AS DOUBLE) / CAST(wau AS DOUBLE) END AS dau_wau
            FROM counts",
            events = events(&call, tz, ""),
            calendar = local_dates(lake),
            segment = call.segment_output("counts"),
        );
        let (segment, group_by) = call.segment_group();
        let checks = vec![
            (
                "dau <= wau <= mau",
                "SELECT count(*) FROM result WHERE NOT (dau <= wau AND wau <= mau)".into(),
            ),
            (
                "one row for every day from the first to the last",
                format!(
                    "SELECT count(*) FROM (SELECT {segment}count(*) AS n, count(DISTINCT day) AS \
                     distinct_days, max(day) - min(day) + 1 AS span FROM result {group_by}) \
                     WHERE n <> distinct_days OR n <> span"
                ),
            ),
        ];
        let order = call.order("day");
        Case { call, function_sql, plain_sql, order, checks }
    })
    .await;
}

#[tokio::test]
async fn lifecycle_matches_plain_sql_on_random_lakes() {
    check_on_random_lakes("lifecycle", 0x11FE, |rng, lake| {
        let (mut call, calendar) = Call::new(rng, lake, true);
        let (tz, week_start) = (calendar.tz, calendar.week_start);
        let period = rng.pick(&["day", "week", "week", "month", "month", "quarter", "year"]);
        if period != "week" || rng.chance(50) {
            call.argument("period", format!("'{period}'"));
        }
        let (since, until) = random_range(rng, lake, &mut call);
        let function_sql = call.sql("lifecycle", rng.next());
        let p = |x: &str| period_of(x, period, week_start);
        let start = local_midnight("c.p", tz);
        let first_period = match &since {
            Some(_) => from_since(since.as_ref(), &start, tz),
            None => "c.p >= s.first_p".into(),
        };
        let last_period = match &until {
            Some(_) => before_until(until.as_ref(), &start, tz),
            None => "c.p <= s.last_p".into(),
        };
        let end = local_midnight(&next_period("counts.p", period), tz);
        // Every actor of a segment in every reported period, with its activity in that period
        // and in the one before (the period holding the day before it starts).
        let plain_sql = format!(
            "WITH ev AS ({events}),
            act AS (SELECT DISTINCT seg, actor, {p_lt} AS p FROM ev),
            first_seen AS (SELECT seg, actor, min(p) AS fp FROM act GROUP BY seg, actor),
            s AS (SELECT seg, min({p_lt}) AS first_p, max({p_lt}) AS last_p, max(t) AS last_t FROM ev GROUP BY seg),
            cal AS ({calendar}),
            periods AS (
              SELECT s.seg, c.p FROM s CROSS JOIN (SELECT DISTINCT {p_day} AS p FROM cal) c
              WHERE {first_period} AND {last_period}),
            grid AS (
              SELECT periods.seg, periods.p, f.actor, f.fp, {p_before} AS before
              FROM periods JOIN first_seen f ON (f.seg IS NOT DISTINCT FROM periods.seg)),
            flags AS (
              SELECT grid.seg, grid.p, grid.fp, now.actor IS NOT NULL AS active,
                     was.actor IS NOT NULL AS was_active
              FROM grid
              LEFT JOIN act now ON (now.seg IS NOT DISTINCT FROM grid.seg) AND now.actor = grid.actor AND now.p = grid.p
              LEFT JOIN act was ON (was.seg IS NOT DISTINCT FROM grid.seg) AND was.actor = grid.actor AND was.p = grid.before),
            counts AS (
              SELECT seg, p,
                sum(CASE WHEN active AND p = fp THEN 1 ELSE 0 END) AS n_new,
                sum(CASE WHEN active AND was_active THEN 1 ELSE 0 END) AS n_returning,
                sum(CASE WHEN active AND NOT was_active AND fp < p THEN 1 ELSE 0 END) AS n_resurrecting,
                -sum(CASE WHEN NOT active AND was_active THEN 1 ELSE 0 END) AS n_dormant
              FROM flags GROUP BY seg, p),
            statuses AS (
              SELECT seg, p, 'new' AS status, n_new AS actors FROM counts
              UNION ALL SELECT seg, p, 'returning', n_returning FROM counts
              UNION ALL SELECT seg, p, 'resurrecting', n_resurrecting FROM counts
              UNION ALL SELECT seg, p, 'dormant', n_dormant FROM counts)
            SELECT {segment}counts.p AS period, counts.status, CAST(counts.actors AS BIGINT) AS actors,
                   {end} <= s.last_t AND {ended_by_until} AS period_complete
            FROM statuses counts JOIN s ON (s.seg IS NOT DISTINCT FROM counts.seg)",
            events = events(&call, tz, ""),
            p_lt = p("lt"),
            p_day = p("day"),
            p_before = p("periods.p - INTERVAL '1' DAY"),
            calendar = local_dates(lake),
            segment = call.segment_output("counts"),
            ended_by_until = ended_by_until(until.as_ref(), &end, tz),
        );
        let (segment, _) = call.segment_group();
        let checks = vec![
            (
                "four statuses for every period",
                format!(
                    "SELECT count(*) FROM (SELECT {segment}period, count(*) AS n, \
                     count(DISTINCT status) AS statuses FROM result GROUP BY {segment}period) \
                     WHERE n <> 4 OR statuses <> 4"
                ),
            ),
            (
                "dormant is negative, the others positive",
                "SELECT count(*) FROM result WHERE (status = 'dormant') <> (actors <= 0) AND \
                 actors <> 0"
                    .into(),
            ),
        ];
        let order = call.order("period, CASE status WHEN 'new' THEN 1 WHEN 'returning' THEN 2 WHEN 'resurrecting' THEN 3 ELSE 4 END");
        Case { call, function_sql, plain_sql, order, checks }
    })
    .await;
}

/// A random `since` and `until` for a function reporting by periods, added to the call.
fn random_range(rng: &mut Rng, lake: &Lake, call: &mut Call) -> (Option<Bound>, Option<Bound>) {
    let (mut since, mut until) = (None, None);
    match rng.below(4) {
        0 => {}
        1 => {
            let day = rng.range(-10, lake.days);
            since = Some(Bound::random(rng, lake, day));
        }
        2 => {
            let day = rng.range(1, lake.days + 20);
            until = Some(Bound::random(rng, lake, day));
        }
        _ => {
            let (s, u) = Bound::random_pair(rng, lake);
            (since, until) = (Some(s), Some(u));
        }
    }
    if let Some(since) = &since {
        call.argument("since", since.argument());
    }
    if let Some(until) = &until {
        call.argument("until", until.argument());
    }
    (since, until)
}

#[tokio::test]
async fn usage_frequency_matches_plain_sql_on_random_lakes() {
    check_on_random_lakes("usage_frequency", 0x05E, |rng, lake| {
        let (mut call, calendar) = Call::new(rng, lake, false);
        let tz = calendar.tz;
        let (window, lookback) = match rng.below(3) {
            0 => (28, 90),
            _ => {
                let window = rng.range(7, 35);
                (window, rng.range(window, window + 70))
            }
        };
        if window != 28 || rng.chance(50) {
            call.argument("window_days", window.to_string());
        }
        if lookback != 90 || rng.chance(50) {
            call.argument("lookback_days", lookback.to_string());
        }
        let as_of = match rng.chance(35) {
            true => None,
            false => {
                let day = rng.range(-3, lake.days + 5);
                Some(Bound::random(rng, lake, day))
            }
        };
        if let Some(as_of) = &as_of {
            call.argument("as_of", as_of.argument());
        }
        let function_sql = call.sql("usage_frequency", rng.next());
        // as_of: its local date, else the segment's last day with data.
        let as_of_day = match &as_of {
            Some(bound) => bound.local_date(tz),
            None => "max(day)".into(),
        };
        let plain_sql = format!(
            "WITH ev AS ({events}),
            d AS (SELECT DISTINCT seg, actor, CAST(lt AS DATE) AS day FROM ev),
            a AS (SELECT seg, {as_of_day} AS as_of FROM d GROUP BY seg),
            seen AS (
              SELECT d.seg, d.actor,
                     count(CASE WHEN d.day > a.as_of - INTERVAL '{window}' DAY THEN 1 END) AS n
              FROM d JOIN a ON (a.seg IS NOT DISTINCT FROM d.seg)
              WHERE d.day > a.as_of - INTERVAL '{lookback}' DAY AND d.day <= a.as_of
              GROUP BY d.seg, d.actor),
            total AS (SELECT seg, count(*) AS t FROM seen GROUP BY seg),
            k AS (SELECT seg, t, CAST(value AS INT) AS days_active FROM total CROSS JOIN generate_series(0, {window}))
            SELECT {segment}k.days_active,
                   count(CASE WHEN seen.n = k.days_active THEN 1 END) AS actors,
                   CAST(count(CASE WHEN seen.n = k.days_active THEN 1 END) AS DOUBLE) / CAST(k.t AS DOUBLE) AS share,
                   CAST(count(seen.actor) AS DOUBLE) / CAST(k.t AS DOUBLE) AS cumulative_share,
                   CASE WHEN 28 * k.days_active >= 20 * {window} THEN 'daily'
                        WHEN 28 * k.days_active >= 4 * {window} THEN 'weekly'
                        WHEN k.days_active >= 1 THEN 'monthly' ELSE 'forgettable' END AS band
            FROM k LEFT JOIN seen ON (seen.seg IS NOT DISTINCT FROM k.seg) AND seen.n >= k.days_active
            GROUP BY k.seg, k.t, k.days_active",
            events = events(&call, tz, ""),
            segment = call.segment_output("k"),
        );
        let (segment, group_by) = call.segment_group();
        let checks = vec![
            (
                "a row for every days_active from 0 to window_days",
                format!(
                    "SELECT count(*) FROM (SELECT {segment}count(*) AS n, min(days_active) AS low, \
                     max(days_active) AS high FROM result {group_by}) \
                     WHERE n <> {} OR low <> 0 OR high <> {window}",
                    window + 1
                ),
            ),
            (
                "shares sum to 1 and everyone has at least 0 days",
                format!(
                    "SELECT count(*) FROM (SELECT {segment}sum(share) AS total, \
                     max(CASE WHEN days_active = 0 THEN cumulative_share END) AS everyone \
                     FROM result {group_by}) WHERE abs(total - 1.0) > 1e-9 OR everyone <> 1.0"
                ),
            ),
        ];
        let order = call.order("days_active");
        Case { call, function_sql, plain_sql, order, checks }
    })
    .await;
}

#[tokio::test]
async fn cohort_retention_matches_plain_sql_on_random_lakes() {
    check_on_random_lakes("cohort_retention", 0xC0407, |rng, lake| {
        let (mut call, calendar) = Call::new(rng, lake, true);
        let (tz, week_start) = (calendar.tz, calendar.week_start);
        let period = rng.pick(&["day", "week", "week", "month", "month", "quarter"]);
        if period != "week" || rng.chance(50) {
            call.argument("period", format!("'{period}'"));
        }
        let periods = rng.range(1, 8);
        call.argument("periods", periods.to_string());
        let recurring = rng.chance(40);
        if recurring {
            call.argument("mode", "'recurring'".into());
        } else if rng.chance(30) {
            call.argument("mode", "'first_time'".into());
        }
        let cumulative = rng.chance(40);
        if cumulative || rng.chance(20) {
            call.argument("cumulative", cumulative.to_string());
        }
        let start_filter = rng.pick(&[
            None,
            None,
            Some("event = 'signup'"),
            Some("event IN ('signup', 'invite')"),
            Some("event <> 'view'"),
        ]);
        let return_filter = rng.pick(&[
            None,
            None,
            Some("event = 'view'"),
            Some("event <> 'signup'"),
            Some("plan = 'pro'"),
        ]);
        for (name, filter) in [
            ("start_filter", start_filter),
            ("return_filter", return_filter),
        ] {
            if let Some(filter) = filter {
                call.argument(name, format!("'{}'", filter.replace('\'', "''")));
            }
        }
        let (since, until) = random_range(rng, lake, &mut call);
        let function_sql = call.sql("cohort_retention", rng.next());

        let p = |x: &str| period_of(x, period, week_start);
        // First time: the period of the actor's first start event, over all of the history;
        // recurring: every period with a start event.
        let cohorts = if recurring {
            "SELECT seg, actor, p AS c FROM starts"
        } else {
            "SELECT seg, actor, min(p) AS c FROM starts GROUP BY seg, actor"
        };
        let cohort_start = local_midnight("c", tz);
        let cell_start = local_midnight("cp.p", tz);
        let return_start = local_midnight("p", tz);
        // Retained in cell k: a return event in period cohort + k; cumulative, in that period or
        // a later one that starts before until ("returns after until do not count" read by
        // period, as cells are computed over their whole extent: a cumulative cell then counts
        // every actor its plain cell counts).
        let kept = if cumulative {
            format!(
                "last_return AS (
                   SELECT seg, actor, max(p) AS last_r FROM returns WHERE {before} GROUP BY seg, actor),
                 kept AS (
                   SELECT cells.seg, cells.c, cells.cell, count(*) AS n
                   FROM cells
                   JOIN reported r ON (r.seg IS NOT DISTINCT FROM cells.seg) AND r.c = cells.c
                   JOIN last_return l ON (l.seg IS NOT DISTINCT FROM r.seg) AND l.actor = r.actor
                   WHERE l.last_r >= cells.cell
                   GROUP BY cells.seg, cells.c, cells.cell)",
                before = before_until(until.as_ref(), &return_start, tz)
            )
        } else {
            "kept AS (
               SELECT r.seg, r.c, x.p AS cell, count(*) AS n
               FROM reported r JOIN returns x
                 ON (x.seg IS NOT DISTINCT FROM r.seg) AND x.actor = r.actor AND x.p > r.c
               GROUP BY r.seg, r.c, x.p)"
                .into()
        };
        let end = local_midnight(&next_period("out.cell", period), tz);
        let plain_sql = format!(
            "WITH ev AS ({events}),
            e AS (SELECT seg, actor, t, {p_lt} AS p, is_start, is_return FROM ev),
            s AS (SELECT seg, max(p) AS last_p, max(t) AS last_t FROM e GROUP BY seg),
            cal AS ({calendar}),
            numbered AS (
              SELECT p, row_number() OVER (ORDER BY p) AS i FROM (SELECT DISTINCT {p_day} AS p FROM cal)),
            starts AS (SELECT DISTINCT seg, actor, p FROM e WHERE is_start),
            returns AS (SELECT DISTINCT seg, actor, p FROM e WHERE is_return),
            cohorts AS ({cohorts}),
            reported AS (SELECT * FROM cohorts WHERE {cohort_from} AND {cohort_before}),
            sizes AS (SELECT seg, c, count(*) AS size FROM reported GROUP BY seg, c),
            cells AS (
              SELECT sizes.seg, sizes.c, sizes.size, CAST(ks.k AS INT) AS k, cp.p AS cell
              FROM sizes
              JOIN numbered ci ON ci.p = sizes.c
              CROSS JOIN (SELECT value AS k FROM generate_series(0, {last_k})) ks
              JOIN numbered cp ON cp.i = ci.i + ks.k
              JOIN s ON (s.seg IS NOT DISTINCT FROM sizes.seg)
              WHERE cp.p <= s.last_p AND {cell_before}),
            {kept},
            counted AS (
              SELECT cells.seg, cells.c, cells.size, cells.k, cells.cell,
                     CASE WHEN cells.k = 0 THEN cells.size ELSE coalesce(kept.n, 0) END AS retained
              FROM cells LEFT JOIN kept
                ON (kept.seg IS NOT DISTINCT FROM cells.seg) AND kept.c = cells.c AND kept.cell = cells.cell)
            SELECT {segment}out.c AS cohort, out.size AS cohort_size, out.k AS period_number,
                   out.retained, CAST(out.retained AS DOUBLE) / CAST(out.size AS DOUBLE) AS retention_rate,
                   {end} <= s.last_t AND {ended_by_until} AS period_complete
            FROM counted out JOIN s ON (s.seg IS NOT DISTINCT FROM out.seg)",
            events = events(
                &call,
                tz,
                &format!(
                    ", coalesce(({}), false) AS is_start, coalesce(({}), false) AS is_return",
                    start_filter.unwrap_or("true"),
                    return_filter.unwrap_or("true")
                )
            ),
            p_lt = p("lt"),
            p_day = p("day"),
            calendar = local_dates(lake),
            cohort_from = from_since(since.as_ref(), &cohort_start, tz),
            cohort_before = before_until(until.as_ref(), &cohort_start, tz),
            cell_before = before_until(until.as_ref(), &cell_start, tz),
            last_k = periods - 1,
            segment = call.segment_output("out"),
            ended_by_until = ended_by_until(until.as_ref(), &end, tz),
        );
        let checks = vec![
            (
                "period 0 retains the whole cohort",
                "SELECT count(*) FROM result WHERE period_number = 0 AND retained <> cohort_size"
                    .into(),
            ),
            (
                "0 <= retained <= cohort_size, period_number < periods",
                format!(
                    "SELECT count(*) FROM result WHERE retained < 0 OR retained > cohort_size \
                     OR period_number >= {periods}"
                ),
            ),
        ];
        let order = call.order("cohort, period_number");
        Case { call, function_sql, plain_sql, order, checks }
    })
    .await;
}
