//! Property test of `revenue_churn`: on many random small MRR snapshot tables it must return
//! exactly the rows of a plain SQL formulation of its contract (`../shared/spec/metrics.md`,
//! section "revenue_churn", and the function's documentation in `udfs/src/revenue_churn.rs`).
//!
//! A lake is a few Parquet files of `subscriptions(account_id, month, mrr, plan)` written in no
//! time order: accounts that pay, stop and pay again after gaps of one or several months, that
//! expand, contract and change plan, several rows of one account at one snapshot (some of them
//! zero, or a negative discount line), zero rows, rows with a NULL account, month or mrr (at times
//! that would be a period's last snapshot if they counted), and, in some lakes, months without any
//! row. `mrr` is DECIMAL(12, 2), BIGINT or DOUBLE (multiples of 0.25, so that sums are exact in
//! any order); `month` is a DATE on the first of the month (sometimes also the 15th or 28th) or a
//! TIMESTAMP at a few times within each month, where only the rows at the last snapshot time
//! present in the (segment's) table in a period count.
//!
//! The plain SQL uses DataFusion's own functions only: it sums rows per (segment, account,
//! snapshot time), keeps each period's last snapshot time of the segment, builds the dense grid of
//! accounts × periods from the segment's first period to its last one (a calendar of period starts
//! from `generate_series`), with MRR 0 where absent, takes the previous period's MRR by `lag` and
//! "paid before" by `bool_or` over the earlier periods, sums the ChartMogul movements per period,
//! and computes the rates (NULL for a zero denominator), LTV over the up to 6 previous periods,
//! `period_complete`, and the `since` / `until` range. Every column is compared: money and counts
//! exactly, DOUBLE rates rounded to 9 significant digits. The roll-forward identities are checked
//! on the function's own rows on top.
//!
//! A failure lists every failing seed with its lake, the call and the differing rows;
//! `random_subscriptions(seed)` rebuilds the lake of a seed.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use chrono::{Months, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use tempfile::TempDir;
use usagelake::lake::{discover, register_tables};
use usagelake::session::{SessionOptions, create_context};

use crate::properties::{
    Bound, Rng, before_until, compare_with_plain_sql, date_text, ended_by_until, from_since,
    local_midnight, local_time, next_period, period_of, text_rows, timestamp_text,
};

/// The lakes the function is checked on: `random_subscriptions(seed)` for each.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=40;
const DAY: i64 = 86_400;
const PLANS: [&str; 3] = ["free", "pro", "team"];
/// Zones other than UTC that some calls read the lake in.
const ZONES: [&str; 3] = ["America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata"];
/// The DOUBLE columns that are ratios, compared to 9 significant digits; money is exact.
const RATIOS: [&str; 8] = [
    "logo_churn_rate",
    "gross_revenue_churn_rate",
    "net_revenue_churn_rate",
    "grr",
    "nrr",
    "quick_ratio",
    "arpa",
    "ltv",
];

/// The type of the `mrr` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Money {
    Decimal,
    Integer,
    Float,
}

impl Money {
    /// Cents every amount is a multiple of: whole units for BIGINT, quarters for DOUBLE (exact).
    fn quantum(self) -> i64 {
        match self {
            Self::Decimal => 1,
            Self::Integer => 100,
            Self::Float => 25,
        }
    }

    /// The SQL type of the money columns the function reports.
    fn sql_type(self) -> &'static str {
        match self {
            Self::Decimal => "DECIMAL(38, 2)",
            Self::Integer => "BIGINT",
            Self::Float => "DOUBLE",
        }
    }
}

/// The type of the `month` column: a DATE, or a TIMESTAMP in a unit, with or without a zone.
#[derive(Debug, Clone)]
enum Snapshot {
    Date,
    Timestamp(TimeUnit, Option<Arc<str>>),
}

/// One input row; a time is seconds since the epoch (a DATE: its UTC midnight), money in cents.
#[derive(Debug, Clone)]
struct Row {
    account: Option<i64>,
    time: Option<i64>,
    cents: Option<i64>,
    plan: Option<&'static str>,
}

/// A lake on disk and what it holds.
struct Lake {
    dir: TempDir,
    /// Seconds since the epoch of the first month's first day.
    first: i64,
    months: i64,
    money: Money,
    snapshot: Snapshot,
    /// Seed, shape and types, for failure messages.
    about: String,
}

/// Seconds since the epoch of the first day of month `k` after (or before) `first`.
fn month_start(first: NaiveDate, k: i64) -> i64 {
    let date = if k >= 0 {
        first.checked_add_months(Months::new(k as u32))
    } else {
        first.checked_sub_months(Months::new((-k) as u32))
    };
    date.unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

/// A random MRR amount in cents, a multiple of the quantum.
fn random_amount(rng: &mut Rng, money: Money) -> i64 {
    let cents = if rng.chance(60) {
        rng.pick(&[900, 1_999, 2_500, 4_900, 9_900, 14_950, 29_900, 120_000])
    } else {
        rng.range(1, 60_000)
    };
    let quantum = money.quantum();
    (cents / quantum).max(1) * quantum
}

/// An amount after an expansion or a contraction, still above zero.
fn changed_amount(rng: &mut Rng, money: Money, amount: i64) -> i64 {
    let quantum = money.quantum();
    let delta = rng.range(1, 40) * quantum * rng.pick(&[1, 10, 100]);
    if rng.chance(50) {
        amount + delta
    } else if amount - delta > 0 {
        amount - delta
    } else {
        (amount / 2 / quantum).max(1) * quantum
    }
}

/// A random small table of MRR snapshots: 5 to 30 accounts over 1 to 14 months.
fn random_subscriptions(seed: u64) -> Lake {
    let mut rng = Rng::new(seed);
    let first_day = NaiveDate::parse_from_str(
        rng.pick(&[
            "2023-01-01",
            "2023-11-01",
            "2024-02-01",
            "2024-03-01",
            "2024-06-01",
            "2024-10-01",
            "2024-12-01",
        ]),
        "%Y-%m-%d",
    )
    .unwrap();
    let months = rng.range(1, 14);
    let accounts = rng.range(5, 30);
    let money = match rng.below(10) {
        0..=5 => Money::Decimal,
        6 | 7 => Money::Integer,
        _ => Money::Float,
    };
    let snapshot = if rng.chance(60) {
        Snapshot::Date
    } else {
        let unit = rng.pick(&[
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
            TimeUnit::Nanosecond,
        ]);
        Snapshot::Timestamp(unit, rng.chance(20).then(|| "UTC".into()))
    };
    // DATE snapshots sometimes twice a month, on the first and later.
    let dates_twice = matches!(snapshot, Snapshot::Date) && rng.chance(25);
    // The snapshot times of each month, ascending.
    let snapshots: Vec<Vec<i64>> = (0..months)
        .map(|k| {
            let start = month_start(first_day, k);
            match snapshot {
                Snapshot::Date => {
                    let mut times = vec![start];
                    if dates_twice && rng.chance(60) {
                        times.push(start + rng.pick(&[14, 27]) * DAY);
                    }
                    times
                }
                Snapshot::Timestamp(..) => {
                    let mut times: Vec<i64> = (0..rng.range(1, 3))
                        .map(|_| match rng.below(4) {
                            0 => start,
                            1 => start + rng.range(0, 27) * DAY,
                            _ => start + rng.range(0, 27) * DAY + rng.range(0, DAY - 1),
                        })
                        .collect();
                    times.sort_unstable();
                    times.dedup();
                    times
                }
            }
        })
        .collect();
    // Months with no row at all, in the middle.
    let mut empty = vec![];
    if months >= 3 && rng.chance(30) {
        for _ in 0..rng.range(1, 2) {
            empty.push(rng.range(1, months - 2));
        }
    }

    let mut rows: Vec<Row> = vec![];
    for account in 1..=accounts {
        let mut plan = rng.pick(&PLANS);
        let start = if rng.chance(40) {
            0
        } else {
            rng.range(0, months - 1)
        };
        let mut paying = true;
        let mut amount = random_amount(&mut rng, money);
        for k in start..months {
            if k > start {
                if paying {
                    paying = !rng.chance(15);
                } else if rng.chance(35) {
                    paying = true;
                    if rng.chance(50) {
                        amount = random_amount(&mut rng, money);
                    }
                }
                if paying && rng.chance(25) {
                    amount = changed_amount(&mut rng, money, amount);
                }
                if rng.chance(8) {
                    plan = rng.pick(&PLANS);
                }
            }
            if empty.contains(&k) {
                continue;
            }
            let times = &snapshots[k as usize];
            let last = *times.last().unwrap();
            let row_plan = (!rng.chance(3)).then_some(plan);
            let row = |time: i64, cents: i64, plan: Option<&'static str>| Row {
                account: Some(account),
                time: Some(time),
                cents: Some(cents),
                plan,
            };
            if !paying {
                // A zero row is the same as no row.
                if rng.chance(25) {
                    let time = if rng.chance(70) {
                        last
                    } else {
                        rng.pick(times)
                    };
                    rows.push(row(time, 0, row_plan));
                }
                continue;
            }
            let time = if rng.chance(85) {
                last
            } else {
                rng.pick(times)
            };
            let quantum = money.quantum();
            match rng.below(10) {
                // Several subscriptions at one snapshot, some of them at an earlier snapshot
                // time of the period (which does not count) or on another plan.
                0 | 1 if amount >= 3 * quantum => {
                    let units = amount / quantum;
                    let a = rng.range(1, units - 2);
                    let b = rng.range(1, units - a - 1);
                    for cents in [a * quantum, b * quantum, (units - a - b) * quantum] {
                        let time = if rng.chance(10) {
                            rng.pick(times)
                        } else {
                            time
                        };
                        let plan = if rng.chance(10) {
                            Some(rng.pick(&PLANS))
                        } else {
                            row_plan
                        };
                        rows.push(row(time, cents, plan));
                    }
                }
                // A discount line (sometimes the whole amount: a zero sum).
                2 => {
                    let discount = if rng.chance(20) {
                        amount
                    } else {
                        rng.range(1, 50) * quantum
                    };
                    rows.push(row(time, amount + discount, row_plan));
                    rows.push(row(time, -discount, row_plan));
                }
                // A zero line next to the paying one.
                3 => {
                    rows.push(row(time, amount, row_plan));
                    rows.push(row(time, 0, row_plan));
                }
                _ => rows.push(row(time, amount, row_plan)),
            }
            // A stale row at an earlier snapshot of the period: it must not count.
            if times.len() > 1 && rng.chance(40) {
                let earlier = times[rng.below(times.len() as u64 - 1) as usize];
                rows.push(row(earlier, random_amount(&mut rng, money), row_plan));
            }
        }
    }
    // Rows with a NULL account, month or mrr, late in a month (also the month after the last):
    // if they counted, they would be a period's last snapshot, or add a period or an account.
    for _ in 0..rng.range(0, 5) {
        let k = rng.range(0, months);
        let late = match snapshot {
            Snapshot::Date => month_start(first_day, k) + 20 * DAY,
            Snapshot::Timestamp(..) => month_start(first_day, k) + 27 * DAY + DAY - 1,
        };
        let mut row = Row {
            account: Some(rng.range(1, accounts + 2)),
            time: Some(late),
            cents: Some(random_amount(&mut rng, money)),
            plan: Some(rng.pick(&PLANS)),
        };
        match rng.below(3) {
            0 => row.account = None,
            1 => row.time = None,
            _ => row.cents = None,
        }
        rows.push(row);
    }
    // Files in no time order.
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
    let files = rng.range(1, 4) as usize;
    let dir = tempfile::tempdir().expect("temporary directory");
    let per_file = rows.len().div_ceil(files).max(1);
    for (index, chunk) in rows.chunks(per_file).enumerate() {
        write_rows(
            &dir.path()
                .join(format!("subscriptions/part-{index}.parquet")),
            chunk,
            money,
            &snapshot,
        );
    }
    let first = month_start(first_day, 0);
    let about = format!(
        "seed {seed}: {} rows of {accounts} accounts over {months} months from {}, in {} files, \
         mrr {money:?}, month {snapshot:?}{}{}",
        rows.len(),
        date_text(first),
        rows.len().div_ceil(per_file),
        if dates_twice {
            ", dates sometimes twice a month"
        } else {
            ""
        },
        if empty.is_empty() {
            String::new()
        } else {
            format!(
                ", no rows in {:?}",
                empty
                    .iter()
                    .map(|k| date_text(month_start(first_day, *k)))
                    .collect::<Vec<_>>()
            )
        },
    );
    Lake {
        dir,
        first,
        months,
        money,
        snapshot,
        about,
    }
}

fn write_rows(path: &Path, rows: &[Row], money: Money, snapshot: &Snapshot) {
    let times = |per_second: i64| -> Vec<Option<i64>> {
        rows.iter()
            .map(|r| r.time.map(|t| t * per_second))
            .collect()
    };
    let month: ArrayRef = match snapshot {
        Snapshot::Date => Arc::new(Date32Array::from(
            rows.iter()
                .map(|r| r.time.map(|t| (t / DAY) as i32))
                .collect::<Vec<_>>(),
        )),
        Snapshot::Timestamp(unit, zone) => match unit {
            TimeUnit::Second => {
                Arc::new(TimestampSecondArray::from(times(1)).with_timezone_opt(zone.clone()))
            }
            TimeUnit::Millisecond => Arc::new(
                TimestampMillisecondArray::from(times(1_000)).with_timezone_opt(zone.clone()),
            ),
            TimeUnit::Microsecond => Arc::new(
                TimestampMicrosecondArray::from(times(1_000_000)).with_timezone_opt(zone.clone()),
            ),
            TimeUnit::Nanosecond => Arc::new(
                TimestampNanosecondArray::from(times(1_000_000_000))
                    .with_timezone_opt(zone.clone()),
            ),
        },
    };
    let cents = rows.iter().map(|r| r.cents);
    let mrr: ArrayRef = match money {
        Money::Decimal => Arc::new(
            Decimal128Array::from(cents.map(|c| c.map(i128::from)).collect::<Vec<_>>())
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
        Money::Integer => Arc::new(Int64Array::from(
            cents.map(|c| c.map(|c| c / 100)).collect::<Vec<_>>(),
        )),
        Money::Float => Arc::new(Float64Array::from(
            cents
                .map(|c| c.map(|c| c as f64 / 100.0))
                .collect::<Vec<_>>(),
        )),
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Int64, true),
        Field::new("month", month.data_type().clone(), true),
        Field::new("mrr", mrr.data_type().clone(), true),
        Field::new("plan", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.account).collect::<Vec<_>>(),
        )),
        month,
        mrr,
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.plan).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
        .expect("parquet writer");
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// One call of `revenue_churn` and its plain SQL formulation.
struct Case {
    threads: usize,
    settings: Vec<String>,
    function_sql: String,
    /// The plain SQL, without ORDER BY.
    plain_sql: String,
    /// The documented order, as ORDER BY keys over the output columns.
    order: String,
    /// Invariants: queries over the function's rows (table `result`) that count violations.
    checks: Vec<(&'static str, String)>,
}

/// A random `since` or `until` on day `day` counted from the lake's first day, of a random type.
fn random_bound(rng: &mut Rng, lake: &Lake, day: i64) -> Bound {
    let midnight = lake.first + day * DAY;
    match rng.below(3) {
        0 => Bound::Date(date_text(midnight)),
        1 => Bound::Text(date_text(midnight)),
        _ => {
            let seconds = match rng.below(3) {
                0 => 0,
                1 => rng.pick(&[-1, 1, 7 * 3600, 18 * 3600 + 1800]),
                _ => rng.range(0, DAY - 1),
            };
            Bound::Timestamp(timestamp_text(midnight + seconds))
        }
    }
}

/// A random call of `revenue_churn` on `lake`, and its plain SQL.
fn random_case(rng: &mut Rng, lake: &Lake) -> Case {
    let mut settings = vec![];
    let mut arguments: Vec<(&'static str, String)> = vec![];
    let period = if rng.chance(60) { "month" } else { "quarter" };
    if period == "quarter" || rng.chance(30) {
        arguments.push(("period", format!("'{period}'")));
    }
    let segment = rng.chance(40);
    if segment {
        arguments.push(("segment", "'plan'".into()));
    }
    let tz = match rng.below(20) {
        0..=10 => "UTC",
        11..=13 => {
            arguments.push(("tz", "'UTC'".into()));
            "UTC"
        }
        _ => {
            let zone = rng.pick(&ZONES);
            if rng.chance(40) {
                settings.push(format!("SET usagelake.tz = '{zone}'"));
            } else {
                arguments.push(("tz", format!("'{zone}'")));
            }
            zone
        }
    };
    let with_reactivation = rng.chance(50);
    if with_reactivation || rng.chance(40) {
        arguments.push(("reactivation_in_quick_ratio", with_reactivation.to_string()));
    }
    if rng.chance(20) {
        arguments.push(("account", "'account_id'".into()));
        arguments.push(("ts", "'month'".into()));
        arguments.push(("mrr", "'mrr'".into()));
    }
    // A range that starts or ends near a month's start or within a month.
    let month_day = |rng: &mut Rng, k: i64| {
        let start = (month_start(
            NaiveDate::parse_from_str(&date_text(lake.first), "%Y-%m-%d").unwrap(),
            k,
        ) - lake.first)
            / DAY;
        start + if rng.chance(60) { 0 } else { rng.range(-3, 27) }
    };
    let since_month = rng.range(-1, lake.months - 1);
    let since_day = month_day(rng, since_month);
    let since = rng.chance(35).then(|| random_bound(rng, lake, since_day));
    let until = rng.chance(35).then(|| {
        let until_day = match since {
            Some(_) => since_day + 2 + rng.range(0, (lake.months + 1) * 31),
            None => {
                let until_month = rng.range(0, lake.months + 1);
                month_day(rng, until_month)
            }
        };
        random_bound(rng, lake, until_day)
    });
    for (name, bound) in [("since", &since), ("until", &until)] {
        if let Some(bound) = bound {
            arguments.push((name, bound.argument()));
        }
    }
    let input = if rng.chance(15) {
        "'SELECT * FROM subscriptions'"
    } else {
        "'subscriptions'"
    };
    // Named arguments come in any order.
    if arguments.len() > 1 {
        let by = rng.below(arguments.len() as u64) as usize;
        arguments.rotate_left(by);
    }
    let mut function_sql = format!("SELECT * FROM revenue_churn({input}");
    for (name, value) in &arguments {
        write!(function_sql, ", {name} => {value}").unwrap();
    }
    function_sql.push(')');

    let money = lake.money.sql_type();
    let zero = format!("CAST(0 AS {money})");
    // A snapshot's instant and local time; a DATE is the local midnight that starts it.
    let (instant, local) = match lake.snapshot {
        Snapshot::Date => (
            local_midnight("month", tz),
            "CAST(month AS TIMESTAMP)".to_string(),
        ),
        Snapshot::Timestamp(..) => ("ts AT TIME ZONE 'UTC'".to_string(), local_time(tz)),
    };
    let period_start = local_midnight("out.p", tz);
    let period_end = local_midnight(&next_period("out.p", period), tz);
    let first_day = lake.first / DAY;
    let gains = if with_reactivation {
        "new_mrr + expansion_mrr + reactivation_mrr"
    } else {
        "new_mrr + expansion_mrr"
    };
    let ratio = |numerator: &str, denominator: &str, name: &str| {
        format!(
            "CASE WHEN {denominator} = 0 THEN NULL ELSE CAST({numerator} AS DOUBLE) / \
             CAST({denominator} AS DOUBLE) END AS {name}"
        )
    };
    let plain_sql = format!(
        "WITH base AS (
           SELECT {seg} AS seg, account_id AS account, {instant} AS t, {p_local} AS p, mrr
           FROM (SELECT account_id, month, month AS ts, mrr, plan FROM subscriptions)
           WHERE account_id IS NOT NULL AND month IS NOT NULL AND mrr IS NOT NULL),
         sums AS (
           SELECT seg, account, t, p, CAST(sum(mrr) AS {money}) AS m FROM base
           GROUP BY seg, account, t, p),
         last_snapshots AS (SELECT seg, p, max(t) AS t FROM base GROUP BY seg, p),
         at_last AS (
           SELECT s.seg, s.account, s.p, s.m
           FROM sums s JOIN last_snapshots l
             ON l.seg = s.seg AND l.p = s.p AND l.t = s.t),
         bounds AS (
           SELECT seg, min(p) AS first_p, max(p) AS last_p, max(t) AS last_t FROM base
           GROUP BY seg),
         cal AS (
           SELECT DISTINCT {p_day} AS p
           FROM (SELECT arrow_cast(CAST(value AS INT), 'Date32') AS day
                 FROM generate_series({cal_from}, {cal_to}))),
         accounts AS (SELECT DISTINCT seg, account FROM base),
         grid AS (
           SELECT a.seg, a.account, c.p, coalesce(x.m, {zero}) AS m
           FROM accounts a
           JOIN bounds b ON b.seg = a.seg
           JOIN cal c ON c.p >= b.first_p AND c.p <= b.last_p
           LEFT JOIN at_last x
             ON x.seg = a.seg AND x.account = a.account AND x.p = c.p),
         history AS (
           SELECT seg, account, p, m,
                  coalesce(lag(m) OVER (PARTITION BY seg, account ORDER BY p), {zero}) AS prev,
                  coalesce(bool_or(m > 0) OVER (PARTITION BY seg, account ORDER BY p
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false) AS paid_before
           FROM grid),
         movements AS (
           SELECT seg, p,
             CAST(sum(prev) AS {money}) AS starting_mrr,
             CAST(sum(CASE WHEN prev = 0 AND m > 0 AND NOT paid_before THEN m ELSE {zero} END)
               AS {money}) AS new_mrr,
             CAST(sum(CASE WHEN prev > 0 AND m > prev THEN m - prev ELSE {zero} END)
               AS {money}) AS expansion_mrr,
             CAST(sum(CASE WHEN prev = 0 AND m > 0 AND paid_before THEN m ELSE {zero} END)
               AS {money}) AS reactivation_mrr,
             CAST(sum(CASE WHEN m > 0 AND m < prev THEN m - prev ELSE {zero} END)
               AS {money}) AS contraction_mrr,
             CAST(sum(CASE WHEN prev > 0 AND m = 0 THEN -prev ELSE {zero} END)
               AS {money}) AS churned_mrr,
             CAST(sum(m) AS {money}) AS ending_mrr,
             sum(CASE WHEN prev > 0 THEN 1 ELSE 0 END) AS customers_start,
             sum(CASE WHEN prev = 0 AND m > 0 AND NOT paid_before THEN 1 ELSE 0 END)
               AS new_customers,
             sum(CASE WHEN prev = 0 AND m > 0 AND paid_before THEN 1 ELSE 0 END)
               AS reactivated_customers,
             sum(CASE WHEN prev > 0 AND m = 0 THEN 1 ELSE 0 END) AS churned_customers,
             sum(CASE WHEN m > 0 THEN 1 ELSE 0 END) AS customers_end
           FROM history GROUP BY seg, p),
         rates AS (
           SELECT *,
             {logo},
             {gross},
             {net},
             {grr},
             {nrr},
             {quick},
             {arpa}
           FROM movements),
         with_ltv AS (
           SELECT *, avg(logo_churn_rate) OVER (PARTITION BY seg ORDER BY p
                       ROWS BETWEEN 6 PRECEDING AND 1 PRECEDING) AS mean_churn
           FROM rates)
         SELECT {seg_out}out.p AS period, starting_mrr, new_mrr, expansion_mrr,
                reactivation_mrr, contraction_mrr, churned_mrr, ending_mrr, customers_start,
                new_customers, reactivated_customers, churned_customers, customers_end,
                logo_churn_rate, gross_revenue_churn_rate, net_revenue_churn_rate, grr, nrr,
                quick_ratio, arpa,
                CASE WHEN mean_churn IS NULL OR mean_churn = 0 THEN NULL
                     ELSE arpa / mean_churn END AS ltv,
                {period_end} <= b.last_t AND {ended_by_until} AS period_complete
         FROM with_ltv out JOIN bounds b ON b.seg = out.seg
         WHERE {from_since} AND {before_until}",
        // A NULL plan is a segment of its own: in the plain SQL, a string no plan has, as
        // DataFusion 55 loses the NULL = NULL of an `IS NOT DISTINCT FROM` join followed by
        // another join.
        seg = if segment {
            "coalesce(plan, '<NULL>')"
        } else {
            "'-'"
        },
        p_local = period_of(&local, period, "monday"),
        p_day = period_of("day", period, "monday"),
        cal_from = first_day - 400,
        cal_to = first_day + (lake.months + 14) * 31,
        logo = ratio("churned_customers", "customers_start", "logo_churn_rate"),
        gross = ratio(
            "-(contraction_mrr + churned_mrr)",
            "starting_mrr",
            "gross_revenue_churn_rate"
        ),
        net = ratio(
            "-(contraction_mrr + churned_mrr + expansion_mrr + reactivation_mrr)",
            "starting_mrr",
            "net_revenue_churn_rate"
        ),
        grr = ratio(
            "starting_mrr + contraction_mrr + churned_mrr",
            "starting_mrr",
            "grr"
        ),
        nrr = ratio(
            "starting_mrr + expansion_mrr + contraction_mrr + churned_mrr",
            "starting_mrr",
            "nrr"
        ),
        quick = ratio(gains, "-(contraction_mrr + churned_mrr)", "quick_ratio"),
        arpa = ratio("ending_mrr", "customers_end", "arpa"),
        seg_out = if segment {
            "nullif(out.seg, '<NULL>') AS plan, "
        } else {
            ""
        },
        ended_by_until = ended_by_until(until.as_ref(), &period_end, tz),
        from_since = from_since(since.as_ref(), &period_start, tz),
        before_until = before_until(until.as_ref(), &period_start, tz),
    );

    let (partition, order) = if segment {
        (
            "PARTITION BY plan",
            "plan ASC NULLS FIRST, period".to_string(),
        )
    } else {
        ("", "period".to_string())
    };
    let step = match period {
        "month" => "1",
        _ => "3",
    };
    let mut checks = vec![
        (
            "ending = starting + new + reactivation + expansion + contraction + churned",
            "SELECT count(*) FROM result WHERE ending_mrr <> starting_mrr + new_mrr + \
             reactivation_mrr + expansion_mrr + contraction_mrr + churned_mrr"
                .to_string(),
        ),
        (
            "customers_end = customers_start + new + reactivated - churned",
            "SELECT count(*) FROM result WHERE customers_end <> customers_start + new_customers \
             + reactivated_customers - churned_customers"
                .to_string(),
        ),
        (
            "movements have their signs",
            "SELECT count(*) FROM result WHERE new_mrr < 0 OR expansion_mrr < 0 OR \
             reactivation_mrr < 0 OR contraction_mrr > 0 OR churned_mrr > 0 OR starting_mrr < 0 \
             OR ending_mrr < 0 OR new_customers < 0 OR reactivated_customers < 0 OR \
             churned_customers < 0 OR churned_customers > customers_start"
                .to_string(),
        ),
        (
            "a period starts where the previous one ended, and follows it",
            format!(
                "SELECT count(*) FROM (
                   SELECT period, starting_mrr, customers_start,
                          lag(period) OVER ({partition} ORDER BY period) AS previous_period,
                          lag(ending_mrr) OVER ({partition} ORDER BY period) AS previous_ending,
                          lag(customers_end) OVER ({partition} ORDER BY period)
                            AS previous_customers
                   FROM result)
                 WHERE previous_period IS NOT NULL AND (starting_mrr <> previous_ending
                   OR customers_start <> previous_customers
                   OR CAST(previous_period + INTERVAL '{step}' MONTH AS DATE) <> period)"
            ),
        ),
    ];
    if since.is_none() {
        checks.push((
            "the first period starts from nothing",
            format!(
                "SELECT count(*) FROM (
                   SELECT starting_mrr, customers_start, reactivated_customers,
                          row_number() OVER ({partition} ORDER BY period) AS n
                   FROM result)
                 WHERE n = 1 AND (starting_mrr <> 0 OR customers_start <> 0
                   OR reactivated_customers <> 0)"
            ),
        ));
    }
    Case {
        threads: rng.range(1, 3) as usize,
        settings,
        function_sql,
        plain_sql,
        order,
        checks,
    }
}

/// A session as the engine builds it, on the lake, with the case's threads and settings.
async fn session(lake: &Lake, case: &Case) -> SessionContext {
    let options = SessionOptions {
        threads: Some(case.threads),
        ..SessionOptions::default()
    };
    let ctx = create_context(&options).expect("session");
    let tables = discover(lake.dir.path()).expect("lake");
    register_tables(&ctx, &tables).await.expect("tables");
    for setting in &case.settings {
        ctx.sql(setting).await.unwrap().collect().await.unwrap();
    }
    ctx
}

/// Column types and rows of batches as text, the ratios rounded to 9 significant digits.
fn rounded_rows(batches: &[RecordBatch]) -> (Vec<DataType>, Vec<String>) {
    let (types, rows) = text_rows(batches);
    let Some(batch) = batches.first() else {
        return (types, rows);
    };
    let ratios: Vec<bool> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| RATIOS.contains(&f.name().as_str()))
        .collect();
    let rows = rows
        .iter()
        .map(|row| {
            row.split(" | ")
                .zip(&ratios)
                .map(|(value, ratio)| match value.parse::<f64>() {
                    Ok(x) if *ratio && x == 0.0 => "0".to_string(),
                    Ok(x) if *ratio => format!("{x:.8e}"),
                    _ => value.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    (types, rows)
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
        rounded_rows,
    )
    .await
}

#[tokio::test]
async fn revenue_churn_matches_plain_sql_on_random_lakes() {
    let mut failures = vec![];
    let mut compared = 0;
    let mut nonempty = 0;
    for seed in SEEDS {
        let lake = random_subscriptions(seed);
        let mut rng = Rng::new(seed ^ 0x4E7);
        let case = random_case(&mut rng, &lake);
        let ctx = session(&lake, &case).await;
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
        "revenue_churn differs from its plain SQL formulation in {} of {compared} calls:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // Most calls must have something to compare.
    assert!(
        nonempty * 4 >= compared * 3,
        "revenue_churn: only {nonempty} of {compared} calls returned rows"
    );
}
