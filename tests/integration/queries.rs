//! Every file in `queries/` runs on the sample lake, and its numbers are checked against the
//! same question answered in plain Rust over the rows read straight from the Parquet files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{csv_rows, run_ok, sample_lake};

/// One row of `events`, as the files hold it.
struct Event {
    ts: DateTime<chrono::Utc>,
    user_id: i64,
    account_id: i64,
    event: String,
    feature: Option<String>,
    plan: String,
}

fn parquet_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            parquet_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
}

fn read_events(lake: &Path) -> Vec<Event> {
    let mut files = Vec::new();
    parquet_files(&lake.join("events"), &mut files);
    let mut events = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
            let ts = column("ts");
            let ts = ts.as_primitive::<TimestampMicrosecondType>();
            let user_id = column("user_id");
            let user_id = user_id.as_primitive::<Int64Type>();
            let account_id = column("account_id");
            let account_id = account_id.as_primitive::<Int64Type>();
            let event = column("event");
            let event = event.as_string::<i32>();
            let feature = column("feature");
            let feature = feature.as_string::<i32>();
            let plan = column("plan");
            let plan = plan.as_string::<i32>();
            for i in 0..batch.num_rows() {
                events.push(Event {
                    ts: DateTime::from_timestamp_micros(ts.value(i)).unwrap(),
                    user_id: user_id.value(i),
                    account_id: account_id.value(i),
                    event: event.value(i).to_string(),
                    feature: feature.is_valid(i).then(|| feature.value(i).to_string()),
                    plan: plan.value(i).to_string(),
                });
            }
        }
    }
    assert!(events.len() > 10_000, "the sample lake holds events");
    events
}

fn run_query(file: &str) -> Vec<Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("queries")
        .join(file);
    let lake = sample_lake();
    let out = run_ok(&[
        "--lake",
        lake.to_str().unwrap(),
        "-f",
        path.to_str().unwrap(),
    ]);
    csv_rows(&out)
}

#[test]
fn events_per_day_matches_the_rows_of_each_day() {
    let mut expected: BTreeMap<NaiveDate, (u64, BTreeSet<i64>)> = BTreeMap::new();
    for event in read_events(&sample_lake()) {
        let day = expected.entry(event.ts.date_naive()).or_default();
        day.0 += 1;
        day.1.insert(event.user_id);
    }
    let rows = run_query("events_per_day.sql");
    assert_eq!(rows[0], vec!["day", "events", "active_users"]);
    let actual: Vec<Vec<String>> = rows[1..].to_vec();
    let expected: Vec<Vec<String>> = expected
        .into_iter()
        .map(|(day, (events, users))| {
            vec![day.to_string(), events.to_string(), users.len().to_string()]
        })
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn events_per_feature_matches_the_feature_use_rows() {
    let mut expected: BTreeMap<String, (u64, BTreeSet<i64>, DateTime<chrono::Utc>)> =
        BTreeMap::new();
    for event in read_events(&sample_lake()) {
        if event.event != "feature_use" {
            continue;
        }
        let feature = event.feature.expect("feature_use names its feature");
        let entry = expected
            .entry(feature)
            .or_insert((0, BTreeSet::new(), event.ts));
        entry.0 += 1;
        entry.1.insert(event.user_id);
        entry.2 = entry.2.min(event.ts);
    }
    let mut expected: Vec<(String, u64, usize, DateTime<chrono::Utc>)> = expected
        .into_iter()
        .map(|(feature, (uses, users, first))| (feature, uses, users.len(), first))
        .collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let rows = run_query("events_per_feature.sql");
    assert_eq!(rows[0], vec!["feature", "uses", "users", "first_use"]);
    assert_eq!(rows.len() - 1, expected.len());
    for (row, (feature, uses, users, first)) in rows[1..].iter().zip(&expected) {
        assert_eq!(&row[0], feature);
        assert_eq!(row[1], uses.to_string());
        assert_eq!(row[2], users.to_string());
        let first_use = DateTime::parse_from_rfc3339(&row[3]).unwrap();
        assert_eq!(first_use, *first, "{feature}");
    }
}

#[test]
fn signups_per_week_counts_each_users_signup_in_its_monday_week() {
    let mut expected: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for event in read_events(&sample_lake()) {
        if event.event == "signup" {
            let day = event.ts.date_naive();
            let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            *expected.entry(monday).or_default() += 1;
        }
    }
    let rows = run_query("signups_per_week.sql");
    assert_eq!(rows[0], vec!["week", "signups", "total_users"]);
    let mut total = 0;
    let expected: Vec<Vec<String>> = expected
        .into_iter()
        .map(|(week, signups)| {
            total += signups;
            vec![week.to_string(), signups.to_string(), total.to_string()]
        })
        .collect();
    assert_eq!(rows[1..].to_vec(), expected);
}

#[test]
fn stickiness_matches_daily_and_monthly_actives_counted_from_the_rows() {
    let mut active_days: BTreeMap<NaiveDate, BTreeSet<i64>> = BTreeMap::new();
    for event in read_events(&sample_lake()) {
        active_days
            .entry(event.ts.date_naive())
            .or_default()
            .insert(event.user_id);
    }
    let first = *active_days.keys().next().unwrap();
    let last = *active_days.keys().last().unwrap();
    let actors_between = |from: NaiveDate, to: NaiveDate| -> usize {
        active_days
            .range(from..=to)
            .flat_map(|(_, users)| users)
            .collect::<BTreeSet<_>>()
            .len()
    };
    let rows = run_query("stickiness.sql");
    assert_eq!(rows[0], vec!["day", "dau", "wau", "mau", "dau_mau"]);
    let mut day = first;
    for row in &rows[1..] {
        let dau = active_days.get(&day).map_or(0, BTreeSet::len);
        let wau = actors_between(day - Duration::days(6), day);
        let mau = actors_between(day - Duration::days(29), day);
        assert_eq!(row[0], day.to_string());
        assert_eq!(
            row[1..4],
            [dau.to_string(), wau.to_string(), mau.to_string()],
            "{day}"
        );
        let dau_mau: f64 = row[4].parse().unwrap();
        assert!((dau_mau - dau as f64 / mau as f64).abs() < 1e-12, "{day}");
        day += Duration::days(1);
    }
    assert_eq!(
        day - Duration::days(1),
        last,
        "every day up to the last with data"
    );
}

#[test]
fn usage_frequency_matches_active_days_counted_from_the_rows() {
    let mut user_days: BTreeMap<i64, BTreeSet<NaiveDate>> = BTreeMap::new();
    for event in read_events(&sample_lake()) {
        user_days
            .entry(event.user_id)
            .or_default()
            .insert(event.ts.date_naive());
    }
    // As of the last day with data: a 28-day window and a 90-day look-back, both ending on it.
    let as_of = user_days.values().flatten().max().copied().unwrap();
    let window_start = as_of - Duration::days(27);
    let lookback_start = as_of - Duration::days(89);
    let mut actors = [0u64; 29];
    for days in user_days.values() {
        if days.range(lookback_start..=as_of).next().is_some() {
            actors[days.range(window_start..=as_of).count()] += 1;
        }
    }
    let total: u64 = actors.iter().sum();
    assert!(actors[0] > 0 && total > actors[0], "{actors:?}");

    let rows = run_query("usage_frequency.sql");
    assert_eq!(
        rows[0],
        vec!["days_active", "actors", "share", "cumulative_share", "band"]
    );
    assert_eq!(rows.len() - 1, 29);
    let mut at_least = total;
    for (days_active, row) in rows[1..].iter().enumerate() {
        let band = match days_active {
            0 => "forgettable",
            1..=3 => "monthly",
            4..=19 => "weekly",
            _ => "daily",
        };
        let share = actors[days_active] as f64 / total as f64;
        let cumulative_share = at_least as f64 / total as f64;
        assert_eq!(row[0], days_active.to_string());
        assert_eq!(row[1], actors[days_active].to_string(), "{days_active}");
        assert_eq!(row[2].parse::<f64>().unwrap(), share, "{days_active}");
        assert_eq!(
            row[3].parse::<f64>().unwrap(),
            cumulative_share,
            "{days_active}"
        );
        assert_eq!(row[4], band, "{days_active}");
        at_least -= actors[days_active];
    }
}

#[test]
fn usage_frequency_as_of_scans_only_the_look_back_partitions() {
    let lake = sample_lake();
    let lake = lake.to_str().unwrap();
    let call = "usage_frequency('events', as_of => DATE '2024-06-30')";
    let explain = run_ok(&[
        "--lake",
        lake,
        "--max-rows",
        "0",
        "-c",
        &format!("EXPLAIN VERBOSE SELECT * FROM {call}"),
    ]);
    // The verbose plan lists every file the scan opens.
    let plan = csv_rows(&explain)
        .into_iter()
        .find(|row| row[0] == "physical_plan")
        .expect("a physical plan")[1]
        .clone();
    let scanned: BTreeSet<NaiveDate> = plan
        .split("date=")
        .skip(1)
        .map(|rest| NaiveDate::parse_from_str(&rest[..10], "%Y-%m-%d").unwrap())
        .collect();
    // The 90 UTC days ending on 2024-06-30: from 2024-04-02.
    let first = NaiveDate::from_ymd_opt(2024, 4, 2).unwrap();
    let expected: BTreeSet<NaiveDate> = first.iter_days().take(90).collect();
    assert_eq!(scanned, expected);

    // Reading only the look-back changes nothing: the same rows as a query of the events up to
    // that day, where the default as_of is that day.
    let sql = |call: &str| format!("SELECT * FROM {call} ORDER BY days_active");
    let given = run_ok(&["--lake", lake, "-c", &sql(call)]);
    let found = run_ok(&[
        "--lake",
        lake,
        "-c",
        &sql("usage_frequency('SELECT * FROM events WHERE date <= DATE ''2024-06-30''')"),
    ]);
    assert_eq!(given, found);
}

#[test]
fn lifecycle_matches_weekly_statuses_counted_from_the_rows() {
    let events = read_events(&sample_lake());
    let monday = |ts: DateTime<chrono::Utc>| {
        let day = ts.date_naive();
        day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
    };
    let mut user_weeks: BTreeMap<i64, BTreeSet<NaiveDate>> = BTreeMap::new();
    for event in &events {
        user_weeks
            .entry(event.user_id)
            .or_default()
            .insert(monday(event.ts));
    }
    let last_event = events.iter().map(|event| event.ts).max().unwrap();
    let all_weeks: BTreeSet<NaiveDate> = user_weeks.values().flatten().copied().collect();
    let (first, last) = (*all_weeks.first().unwrap(), *all_weeks.last().unwrap());

    let rows = run_query("lifecycle.sql");
    assert_eq!(rows[0], vec!["week", "status", "users", "period_complete"]);
    let mut expected = Vec::new();
    let mut week = first;
    while week <= last {
        let previous = week - Duration::days(7);
        // new, returning, resurrecting, dormant
        let mut counts = [0i64; 4];
        for weeks in user_weeks.values() {
            let (now, before) = (weeks.contains(&week), weeks.contains(&previous));
            match (now, before) {
                (true, _) if weeks.first() == Some(&week) => counts[0] += 1,
                (true, true) => counts[1] += 1,
                (true, false) => counts[2] += 1,
                (false, true) => counts[3] -= 1,
                (false, false) => {}
            }
        }
        let end = (week + Duration::days(7))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let complete = end <= last_event;
        for (status, count) in ["new", "returning", "resurrecting", "dormant"]
            .into_iter()
            .zip(counts)
        {
            expected.push(vec![
                week.to_string(),
                status.to_string(),
                count.to_string(),
                complete.to_string(),
            ]);
        }
        week += Duration::days(7);
    }
    assert!(
        expected
            .iter()
            .any(|row| row[1] == "resurrecting" && row[2] != "0"),
        "the sample lake has resurrected users"
    );
    assert_eq!(rows[1..].to_vec(), expected);
}

#[test]
fn cohort_retention_matches_signup_cohorts_counted_from_the_rows() {
    let events = read_events(&sample_lake());
    let monday = |ts: DateTime<chrono::Utc>| {
        let day = ts.date_naive();
        day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
    };
    let mut user_weeks: BTreeMap<i64, BTreeSet<NaiveDate>> = BTreeMap::new();
    let mut first_signup: BTreeMap<i64, NaiveDate> = BTreeMap::new();
    for event in &events {
        let week = monday(event.ts);
        user_weeks.entry(event.user_id).or_default().insert(week);
        if event.event == "signup" {
            let first = first_signup.entry(event.user_id).or_insert(week);
            *first = (*first).min(week);
        }
    }
    let mut cohorts: BTreeMap<NaiveDate, Vec<i64>> = BTreeMap::new();
    for (user, week) in &first_signup {
        cohorts.entry(*week).or_default().push(*user);
    }
    let last_event = events.iter().map(|event| event.ts).max().unwrap();
    let last_week = monday(last_event);

    let mut expected = Vec::new();
    for (cohort, users) in &cohorts {
        let size = users.len();
        // Period numbers 0 to 11, up to the last week with data.
        for number in 0..12 {
            let week = *cohort + Duration::days(7 * number);
            if week > last_week {
                break;
            }
            let retained = if number == 0 {
                size
            } else {
                users
                    .iter()
                    .filter(|user| user_weeks[user].contains(&week))
                    .count()
            };
            let end = (week + Duration::days(7))
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc();
            expected.push((
                cohort.to_string(),
                size,
                number,
                retained,
                retained as f64 / size as f64,
                end <= last_event,
            ));
        }
    }
    assert!(
        expected.iter().any(|row| row.2 == 11) && expected.iter().any(|row| !row.5),
        "the sample lake has full rows and incomplete weeks"
    );

    let rows = run_query("cohort_retention.sql");
    assert_eq!(
        rows[0],
        vec![
            "cohort",
            "cohort_size",
            "period_number",
            "retained",
            "retention_rate",
            "period_complete"
        ]
    );
    assert_eq!(rows.len() - 1, expected.len());
    for (row, (cohort, size, number, retained, rate, complete)) in rows[1..].iter().zip(&expected) {
        let at = format!("{cohort} + {number}");
        assert_eq!(
            row[..4],
            [
                cohort.clone(),
                size.to_string(),
                number.to_string(),
                retained.to_string()
            ],
            "{at}"
        );
        assert_eq!(row[4].parse::<f64>().unwrap(), *rate, "{at}");
        assert_eq!(row[5], complete.to_string(), "{at}");
    }
}

/// The record batches of a single-file table of the lake (`subscriptions.parquet`).
fn read_table(lake: &Path, table: &str) -> Vec<RecordBatch> {
    let file = std::fs::File::open(lake.join(format!("{table}.parquet"))).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The money column `name` of `batch` in cents: the lake keeps money as DECIMAL(12, 2).
fn cents_column(batch: &RecordBatch, name: &str) -> Vec<i128> {
    let column = batch.column(batch.schema().index_of(name).unwrap());
    assert_eq!(column.data_type(), &DataType::Decimal128(12, 2), "{name}");
    let column = column.as_primitive::<Decimal128Type>();
    (0..column.len()).map(|i| column.value(i)).collect()
}

/// One row of `subscriptions`, as the files hold it, MRR in cents.
struct Subscription {
    account_id: i64,
    month: NaiveDate,
    mrr: i128,
    plan: String,
}

fn read_subscriptions(lake: &Path) -> Vec<Subscription> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let mut rows = Vec::new();
    for batch in read_table(lake, "subscriptions") {
        let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let account_id = column("account_id");
        let account_id = account_id.as_primitive::<Int64Type>();
        let month = column("month");
        let month = month.as_primitive::<Date32Type>();
        let plan = column("plan");
        let plan = plan.as_string::<i32>();
        let mrr = cents_column(&batch, "mrr");
        for (i, mrr) in mrr.into_iter().enumerate() {
            rows.push(Subscription {
                account_id: account_id.value(i),
                month: epoch + Duration::days(i64::from(month.value(i))),
                mrr,
                plan: plan.value(i).to_string(),
            });
        }
    }
    assert!(rows.len() > 1_000, "the sample lake holds subscriptions");
    rows
}

/// One row of `invoices`, as the files hold it, the amount in cents.
struct Invoice {
    account_id: i64,
    paid_at: DateTime<chrono::Utc>,
    amount: i128,
    billing_interval: String,
}

fn read_invoices(lake: &Path) -> Vec<Invoice> {
    let mut rows = Vec::new();
    for batch in read_table(lake, "invoices") {
        let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let account_id = column("account_id");
        let account_id = account_id.as_primitive::<Int64Type>();
        let paid_at = column("paid_at");
        let paid_at = paid_at.as_primitive::<TimestampMicrosecondType>();
        let interval = column("billing_interval");
        let interval = interval.as_string::<i32>();
        let amount = cents_column(&batch, "amount");
        for (i, amount) in amount.into_iter().enumerate() {
            rows.push(Invoice {
                account_id: account_id.value(i),
                paid_at: DateTime::from_timestamp_micros(paid_at.value(i)).unwrap(),
                amount,
                billing_interval: interval.value(i).to_string(),
            });
        }
    }
    assert!(rows.len() > 1_000, "the sample lake holds invoices");
    rows
}

fn next_month(month: NaiveDate) -> NaiveDate {
    month.checked_add_months(Months::new(1)).unwrap()
}

/// Every account's MRR in every month it paid: the sum of its rows of that month, in cents.
type MonthlyMrr = BTreeMap<NaiveDate, BTreeMap<i64, i128>>;

fn monthly_mrr<'a>(rows: impl IntoIterator<Item = &'a Subscription>) -> MonthlyMrr {
    let mut mrr = MonthlyMrr::new();
    for row in rows {
        *mrr.entry(row.month)
            .or_default()
            .entry(row.account_id)
            .or_default() += row.mrr;
    }
    mrr
}

/// One month of the MRR bridge, money in cents, as the metric contract defines it.
#[derive(Debug, Default, Clone, Copy)]
struct Movements {
    starting: i128,
    new: i128,
    expansion: i128,
    reactivation: i128,
    contraction: i128,
    churned: i128,
    ending: i128,
    customers_start: i64,
    new_customers: i64,
    reactivated_customers: i64,
    churned_customers: i64,
    customers_end: i64,
}

/// `numerator / denominator` as the contract's ratios: NULL when the denominator is 0.
fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator != 0.0).then(|| numerator / denominator)
}

impl Movements {
    fn money(&self) -> [i128; 7] {
        [
            self.starting,
            self.new,
            self.expansion,
            self.reactivation,
            self.contraction,
            self.churned,
            self.ending,
        ]
    }

    fn customers(&self) -> [i64; 5] {
        [
            self.customers_start,
            self.new_customers,
            self.reactivated_customers,
            self.churned_customers,
            self.customers_end,
        ]
    }

    fn losses(&self) -> f64 {
        (self.contraction + self.churned) as f64
    }

    fn logo_churn_rate(&self) -> Option<f64> {
        ratio(self.churned_customers as f64, self.customers_start as f64)
    }

    fn gross_revenue_churn_rate(&self) -> Option<f64> {
        ratio(-self.losses(), self.starting as f64)
    }

    fn net_revenue_churn_rate(&self) -> Option<f64> {
        let gains = (self.expansion + self.reactivation) as f64;
        ratio(-(self.losses() + gains), self.starting as f64)
    }

    fn grr(&self) -> Option<f64> {
        ratio(self.starting as f64 + self.losses(), self.starting as f64)
    }

    fn nrr(&self) -> Option<f64> {
        let kept = (self.starting + self.expansion) as f64 + self.losses();
        ratio(kept, self.starting as f64)
    }

    fn quick_ratio(&self) -> Option<f64> {
        ratio((self.new + self.expansion) as f64, -self.losses())
    }

    /// Ending MRR per paying account, in currency units.
    fn arpa(&self) -> Option<f64> {
        ratio(self.ending as f64 / 100.0, self.customers_end as f64)
    }
}

/// One reported month: its movements, and whether the month had ended at the last snapshot.
struct Month {
    month: NaiveDate,
    movements: Movements,
    complete: bool,
}

/// ChartMogul's MRR movements of every month from the first to the last of `mrr`: from an
/// account's MRR `p` in the month before to `m` in this one, new (`p = 0`, never paid before),
/// reactivation (`p = 0`, paid in an earlier month), expansion (`m > p > 0`), contraction
/// (`0 < m < p`) or churn (`p > 0 = m`). The first month has no month before it: all new.
fn movements(mrr: &MonthlyMrr) -> Vec<Month> {
    let (first, last) = (
        *mrr.keys().next().unwrap(),
        *mrr.keys().next_back().unwrap(),
    );
    let no_mrr = BTreeMap::new();
    let mut paid_before: BTreeSet<i64> = BTreeSet::new();
    let mut previous: &BTreeMap<i64, i128> = &no_mrr;
    let mut months = Vec::new();
    let mut month = first;
    while month <= last {
        let current = mrr.get(&month).unwrap_or(&no_mrr);
        let accounts: BTreeSet<i64> = previous.keys().chain(current.keys()).copied().collect();
        let mut moves = Movements::default();
        for account in accounts {
            let p = previous.get(&account).copied().unwrap_or(0);
            let m = current.get(&account).copied().unwrap_or(0);
            assert!(p >= 0 && m >= 0, "account {account} in {month}");
            moves.starting += p;
            moves.ending += m;
            moves.customers_start += i64::from(p > 0);
            moves.customers_end += i64::from(m > 0);
            if p == 0 && m > 0 {
                if paid_before.contains(&account) {
                    moves.reactivation += m;
                    moves.reactivated_customers += 1;
                } else {
                    moves.new += m;
                    moves.new_customers += 1;
                }
            } else if p > 0 && m == 0 {
                moves.churned -= p;
                moves.churned_customers += 1;
            } else if m > p && p > 0 {
                moves.expansion += m - p;
            } else if m < p && m > 0 {
                moves.contraction += m - p;
            }
            if m > 0 {
                paid_before.insert(account);
            }
        }
        months.push(Month {
            month,
            movements: moves,
            complete: next_month(month) <= last,
        });
        previous = current;
        month = next_month(month);
    }
    months
}

/// The rows of `subscriptions` of each plan, as `segment => 'plan'` splits them.
fn plans(rows: &[Subscription]) -> BTreeMap<&str, Vec<&Subscription>> {
    let mut plans: BTreeMap<&str, Vec<&Subscription>> = BTreeMap::new();
    for row in rows {
        plans.entry(row.plan.as_str()).or_default().push(row);
    }
    plans
}

/// A decimal printed by the binary as an integer count of `10^-scale` units; more decimals than
/// `scale` fail the test rather than being dropped.
fn decimal_units(text: &str, scale: usize) -> i128 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(digits) => (-1, digits),
        None => (1, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    assert!(
        fraction.len() <= scale && !whole.is_empty(),
        "{text:?} is not a decimal with at most {scale} decimals"
    );
    let units = whole.parse::<i128>().unwrap() * 10i128.pow(scale as u32)
        + format!("{fraction:0<scale$}").parse::<i128>().unwrap();
    sign * units
}

/// A DOUBLE printed by the binary (empty for NULL) is `expected`, to a relative 1e-12.
fn assert_double(actual: &str, expected: Option<f64>, what: &str) {
    match expected {
        None => assert_eq!(actual, "", "{what}: NULL expected"),
        Some(expected) => {
            let value: f64 = actual
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {actual:?} is not a number"));
            assert!(
                (value - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                "{what}: {value} instead of {expected}"
            );
        }
    }
}

#[test]
fn revenue_churn_matches_mrr_movements_computed_from_the_subscription_rows() {
    let subscriptions = read_subscriptions(&sample_lake());
    let mrr = monthly_mrr(&subscriptions);
    let expected = movements(&mrr);
    let account_months: usize = mrr.values().map(BTreeMap::len).sum();
    assert!(
        account_months < subscriptions.len(),
        "some accounts have two rows in a month, which add up"
    );
    for (name, total) in [
        (
            "expansion",
            expected.iter().map(|m| m.movements.expansion).sum::<i128>(),
        ),
        (
            "reactivation",
            expected.iter().map(|m| m.movements.reactivation).sum(),
        ),
        (
            "contraction",
            expected.iter().map(|m| m.movements.contraction).sum(),
        ),
        ("churn", expected.iter().map(|m| m.movements.churned).sum()),
    ] {
        assert_ne!(total, 0, "the sample lake has {name}");
    }

    let rows = run_query("revenue_churn.sql");
    assert_eq!(
        rows[0],
        vec![
            "month",
            "starting_mrr",
            "new_mrr",
            "expansion_mrr",
            "reactivation_mrr",
            "contraction_mrr",
            "churned_mrr",
            "ending_mrr",
            "net_new_mrr",
            "customers_start",
            "new_customers",
            "reactivated_customers",
            "churned_customers",
            "customers_end",
            "logo_churn_rate",
            "gross_revenue_churn_rate",
            "net_revenue_churn_rate",
            "quick_ratio",
            "period_complete"
        ]
    );
    assert_eq!(rows.len() - 1, expected.len(), "one row per month");
    let mut previous_ending = 0;
    for (row, month) in rows[1..].iter().zip(&expected) {
        let at = month.month.to_string();
        let moves = &month.movements;
        assert_eq!(row[0], at);
        let money: Vec<i128> = row[1..9].iter().map(|v| decimal_units(v, 2)).collect();
        assert_eq!(money[..7], moves.money(), "{at}: MRR movements");
        assert_eq!(money[7], moves.ending - moves.starting, "{at}: net new MRR");
        let customers: Vec<i64> = row[9..14].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(customers, moves.customers(), "{at}: customers");
        for (value, expected, name) in [
            (&row[14], moves.logo_churn_rate(), "logo_churn_rate"),
            (&row[15], moves.gross_revenue_churn_rate(), "gross"),
            (&row[16], moves.net_revenue_churn_rate(), "net"),
            (&row[17], moves.quick_ratio(), "quick_ratio"),
        ] {
            assert_double(value, expected, &format!("{at}: {name}"));
        }
        assert_eq!(row[18], month.complete.to_string(), "{at}: period_complete");

        // The roll-forward: a month starts where the one before ended, and its movements lead
        // exactly from its starting to its ending MRR; customers likewise.
        assert_eq!(
            money[0], previous_ending,
            "{at}: starting = previous ending"
        );
        assert_eq!(
            money[6],
            money[..6].iter().sum::<i128>(),
            "{at}: roll-forward"
        );
        assert_eq!(
            customers[4],
            customers[0] + customers[1] + customers[2] - customers[3],
            "{at}: customers roll forward"
        );
        previous_ending = money[6];
    }
    assert!(!expected.last().unwrap().complete && expected[0].complete);
}

#[test]
fn nrr_by_plan_matches_retention_computed_per_plan_from_the_subscription_rows() {
    let subscriptions = read_subscriptions(&sample_lake());
    let mut expected = Vec::new();
    for (plan, rows) in plans(&subscriptions) {
        for month in movements(&monthly_mrr(rows)) {
            expected.push((plan, month));
        }
    }
    assert!(
        expected
            .iter()
            .any(|(_, m)| m.movements.nrr().is_some_and(|nrr| nrr > 1.0))
            && expected
                .iter()
                .any(|(_, m)| m.movements.grr().is_some_and(|grr| grr < 1.0)),
        "the sample lake has plans growing and losing MRR"
    );

    let rows = run_query("nrr_by_plan.sql");
    assert_eq!(
        rows[0],
        vec![
            "plan",
            "month",
            "starting_mrr",
            "expansion_mrr",
            "contraction_mrr",
            "churned_mrr",
            "nrr",
            "grr",
            "period_complete"
        ]
    );
    assert_eq!(rows.len() - 1, expected.len(), "one row per plan and month");
    for (row, (plan, month)) in rows[1..].iter().zip(&expected) {
        let at = format!("{plan} {}", month.month);
        let moves = &month.movements;
        assert_eq!(row[..2], [plan.to_string(), month.month.to_string()]);
        let money: Vec<i128> = row[2..6].iter().map(|v| decimal_units(v, 2)).collect();
        assert_eq!(
            money,
            [
                moves.starting,
                moves.expansion,
                moves.contraction,
                moves.churned
            ],
            "{at}: MRR movements"
        );
        assert_double(&row[6], moves.nrr(), &format!("{at}: nrr"));
        assert_double(&row[7], moves.grr(), &format!("{at}: grr"));
        assert_eq!(row[8], month.complete.to_string(), "{at}: period_complete");
    }
}

#[test]
fn ltv_is_last_complete_months_arpa_over_six_months_mean_logo_churn_per_plan() {
    let subscriptions = read_subscriptions(&sample_lake());
    let mut expected = Vec::new();
    for (plan, rows) in plans(&subscriptions) {
        let complete: Vec<Month> = movements(&monthly_mrr(rows))
            .into_iter()
            .filter(|month| month.complete)
            .collect();
        let last = complete.last().unwrap();
        let rates: Vec<f64> = complete[complete.len().saturating_sub(6)..]
            .iter()
            .filter_map(|month| month.movements.logo_churn_rate())
            .collect();
        let mean = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
        let arpa = last.movements.arpa();
        let lifetime = mean.filter(|&mean| mean != 0.0).map(|mean| 1.0 / mean);
        let ltv = arpa
            .zip(mean)
            .filter(|&(_, mean)| mean > 0.0)
            .map(|(arpa, mean)| arpa / mean);
        expected.push((
            plan,
            last.month,
            last.movements.customers_end,
            arpa,
            mean,
            lifetime,
            ltv,
        ));
    }
    assert!(
        expected.iter().any(|row| row.6.is_some()),
        "the sample lake has plans with churn"
    );

    let rows = run_query("ltv.sql");
    assert_eq!(
        rows[0],
        vec![
            "plan",
            "month",
            "customers",
            "arpa",
            "mean_logo_churn_rate",
            "expected_lifetime_months",
            "ltv"
        ]
    );
    assert_eq!(rows.len() - 1, expected.len(), "one row per plan");
    for (row, (plan, month, customers, arpa, mean, lifetime, ltv)) in
        rows[1..].iter().zip(&expected)
    {
        assert_eq!(
            row[..3],
            [plan.to_string(), month.to_string(), customers.to_string()]
        );
        assert_double(&row[3], *arpa, &format!("{plan}: arpa"));
        assert_double(&row[4], *mean, &format!("{plan}: mean logo churn"));
        assert_double(&row[5], *lifetime, &format!("{plan}: lifetime"));
        assert_double(&row[6], *ltv, &format!("{plan}: ltv"));
    }
}

/// `subscriptions` summed per (month, account): MRR in cents, and the plan.
fn subscriptions_per_account_and_month(
    rows: &[Subscription],
) -> BTreeMap<(NaiveDate, i64), (i128, String)> {
    let mut sums: BTreeMap<(NaiveDate, i64), (i128, String)> = BTreeMap::new();
    for row in rows {
        let sum = sums
            .entry((row.month, row.account_id))
            .or_insert((0, row.plan.clone()));
        assert_eq!(sum.1, row.plan, "one plan per account and month");
        sum.0 += row.mrr;
    }
    sums
}

#[test]
fn invoices_to_mrr_gives_back_subscriptions_for_every_month_of_the_range() {
    let lake = sample_lake();
    let subscriptions = subscriptions_per_account_and_month(&read_subscriptions(&lake));
    let first = subscriptions.keys().next().unwrap().0;
    let last = subscriptions.keys().next_back().unwrap().0;

    // What the lake promises (data/README.md), checked in plain Rust: each invoice spread over
    // its interval (in twelfths of a cent, so that a year's amount / 12 stays exact) gives back
    // subscriptions in every month from the first to the last with an invoice.
    let invoices = read_invoices(&lake);
    let mut spread: BTreeMap<(NaiveDate, i64), i128> = BTreeMap::new();
    let mut yearly = 0;
    let last_invoice_month = invoices
        .iter()
        .map(|invoice| invoice.paid_at.date_naive().with_day(1).unwrap())
        .max()
        .unwrap();
    for invoice in &invoices {
        let month = invoice.paid_at.date_naive().with_day(1).unwrap();
        let (months, per_month) = match invoice.billing_interval.as_str() {
            "month" => (1, invoice.amount * 12),
            "year" => (12, invoice.amount),
            other => panic!("unexpected billing interval {other}"),
        };
        yearly += usize::from(months == 12);
        for k in 0..months {
            let month = month.checked_add_months(Months::new(k)).unwrap();
            if month <= last_invoice_month {
                *spread.entry((month, invoice.account_id)).or_default() += per_month;
            }
        }
    }
    assert!(yearly > 10, "the sample lake has yearly invoices");
    let twelfths: BTreeMap<(NaiveDate, i64), i128> = subscriptions
        .iter()
        .map(|(key, (cents, _))| (*key, cents * 12))
        .collect();
    assert_eq!(
        spread, twelfths,
        "the lake's invoices give back subscriptions"
    );

    let rows = run_query("invoices_to_mrr.sql");
    assert_eq!(rows[0], vec!["account_id", "month", "mrr", "plan"]);
    let mut snapshots: BTreeMap<(NaiveDate, i64), (i128, String)> = BTreeMap::new();
    let mut keys = Vec::new();
    for row in &rows[1..] {
        let key = (
            row[1].parse::<NaiveDate>().unwrap(),
            row[0].parse().unwrap(),
        );
        // to_mrr keeps the DECIMAL, at a scale of 6: exact money, not a DOUBLE.
        assert_eq!(row[2].split_once('.').unwrap().1.len(), 6, "{row:?}");
        let mrr = decimal_units(&row[2], 6);
        assert!(
            snapshots.insert(key, (mrr, row[3].clone())).is_none(),
            "{row:?} twice"
        );
        keys.push(key);
    }
    assert!(keys.is_sorted(), "ordered by month, then account");

    let expected: BTreeMap<(NaiveDate, i64), (i128, String)> = subscriptions
        .into_iter()
        .map(|(key, (cents, plan))| (key, (cents * 10_000, plan)))
        .collect();
    for (key, value) in &expected {
        assert_eq!(
            snapshots.get(key),
            Some(value),
            "account {} in {}",
            key.1,
            key.0
        );
    }
    assert_eq!(snapshots, expected, "no snapshot that subscriptions lack");
    let months: BTreeSet<NaiveDate> = snapshots.keys().map(|key| key.0).collect();
    let calendar: BTreeSet<NaiveDate> = std::iter::successors(Some(first), |&m| {
        Some(next_month(m)).filter(|&next| next <= last)
    })
    .collect();
    assert_eq!(months, calendar, "every month of the range");
}

/// The columns of `revenue_churn` that hold money, DECIMAL of the input's scale.
const MONEY: [&str; 7] = [
    "starting_mrr",
    "new_mrr",
    "expansion_mrr",
    "reactivation_mrr",
    "contraction_mrr",
    "churned_mrr",
    "ending_mrr",
];

/// The DOUBLE columns of `revenue_churn`.
const DOUBLES: [&str; 8] = [
    "logo_churn_rate",
    "gross_revenue_churn_rate",
    "net_revenue_churn_rate",
    "grr",
    "nrr",
    "quick_ratio",
    "arpa",
    "ltv",
];

/// Two `revenue_churn` results hold the same numbers: money equal as decimals whatever their
/// scale, DOUBLEs to a relative 1e-12, everything else as printed.
fn assert_same_report(actual: &[Vec<String>], expected: &[Vec<String>], what: &str) {
    let header = &expected[0];
    assert_eq!(actual[0], *header, "{what}: columns");
    assert_eq!(actual.len(), expected.len(), "{what}: rows");
    for (found, wanted) in actual[1..].iter().zip(&expected[1..]) {
        let at = format!("{what}, row {}", wanted[..2].join(" "));
        for ((column, found), wanted) in header.iter().zip(found).zip(wanted) {
            let at = format!("{at}: {column}");
            if MONEY.contains(&column.as_str()) {
                assert_eq!(decimal_units(found, 6), decimal_units(wanted, 6), "{at}");
            } else if DOUBLES.contains(&column.as_str()) {
                let wanted = (!wanted.is_empty()).then(|| wanted.parse().unwrap());
                assert_double(found, wanted, &at);
            } else {
                assert_eq!(found, wanted, "{at}");
            }
        }
    }
}

#[test]
fn revenue_churn_over_invoices_to_mrr_equals_revenue_churn_over_subscriptions() {
    let lake = sample_lake();
    let lake = lake.to_str().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("queries")
        .join("invoices_to_mrr.sql");
    let query = std::fs::read_to_string(file).unwrap();
    let query = query.trim_end().trim_end_matches(';');
    // As the file's header says: the query as a view, or as a string, comments and all, with its
    // quotes doubled.
    let create_view = format!("CREATE VIEW monthly_mrr AS {query}");
    let as_string = query.replace('\'', "''");
    for options in ["", ", segment => 'plan'"] {
        let report = |table: &str| {
            let select = format!("SELECT * FROM revenue_churn({table}{options})");
            csv_rows(&run_ok(&[
                "--lake",
                lake,
                "-c",
                &create_view,
                "-c",
                &select,
            ]))
        };
        let expected = report("'subscriptions'");
        assert!(expected.len() > 12, "{options}: a report");
        assert_same_report(
            &report("'monthly_mrr'"),
            &expected,
            &format!("view{options}"),
        );
        assert_same_report(
            &report(&format!("'{as_string}'")),
            &expected,
            &format!("query string{options}"),
        );
    }
}

// Feature adoption, the adoption funnel, churn risk and time to adopt: each query file checked
// against the metric contract (/work/shared/spec/metrics.md) applied in plain Rust to the rows.

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// The `features` table: each feature's release time, in microseconds.
fn read_launches(lake: &Path) -> BTreeMap<String, i64> {
    let mut launches = BTreeMap::new();
    for batch in read_table(lake, "features") {
        let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let feature = column("feature");
        let feature = feature.as_string::<i32>();
        let released = column("released_at");
        let released = released.as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            launches.insert(feature.value(i).to_string(), released.value(i));
        }
    }
    assert_eq!(launches.len(), 8, "the sample lake has eight features");
    launches
}

/// One row of `accounts`: plan, segment and customer-success manager.
struct Account {
    plan: String,
    segment: String,
    csm: Option<String>,
}

fn read_accounts(lake: &Path) -> BTreeMap<i64, Account> {
    let mut accounts = BTreeMap::new();
    for batch in read_table(lake, "accounts") {
        let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let account_id = column("account_id");
        let account_id = account_id.as_primitive::<Int64Type>();
        let plan = column("plan");
        let plan = plan.as_string::<i32>();
        let segment = column("segment");
        let segment = segment.as_string::<i32>();
        let csm = column("csm");
        let csm = csm.as_string::<i32>();
        for i in 0..batch.num_rows() {
            accounts.insert(
                account_id.value(i),
                Account {
                    plan: plan.value(i).to_string(),
                    segment: segment.value(i).to_string(),
                    csm: csm.is_valid(i).then(|| csm.value(i).to_string()),
                },
            );
        }
    }
    assert!(accounts.len() > 100, "the sample lake holds accounts");
    accounts
}

/// The `p` quantile of `values` as `percentile_cont` defines it: the value at rank p·(n − 1) of
/// the sorted values, interpolated linearly between its neighbours. Returned with how far
/// DataFusion may be from it: it rounds the interpolation weight down to a millionth.
fn percentile_cont(values: &[f64], p: f64) -> Option<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = p * (n - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let gap = sorted[high] - sorted[low];
    let value = sorted[low] + (rank - low as f64) * gap;
    Some((value, gap * 1e-6 + value.abs() * 1e-12))
}

/// `actual`, a printed DOUBLE, is `expected` within its tolerance; empty (NULL) for `None`.
fn assert_near(actual: &str, expected: Option<(f64, f64)>, what: &str) {
    match expected {
        None => assert_eq!(actual, "", "{what}: NULL expected"),
        Some((expected, tolerance)) => {
            let value: f64 = actual
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {actual:?} is not a number"));
            assert!(
                (value - expected).abs() <= tolerance.max(1e-12),
                "{what}: {value} instead of {expected}"
            );
        }
    }
}

/// One feature's adoption, as the contract of `feature_adoption` defines it.
struct Adoption {
    launched: i64,
    eligible: usize,
    adopters: usize,
    days_to_adopt: Vec<f64>,
}

impl Adoption {
    fn rate(&self) -> Option<f64> {
        ratio(self.adopters as f64, self.eligible as f64)
    }

    fn median(&self) -> Option<(f64, f64)> {
        percentile_cont(&self.days_to_adopt, 0.5)
    }

    fn p90(&self) -> Option<(f64, f64)> {
        percentile_cont(&self.days_to_adopt, 0.9)
    }
}

/// Adoption of every feature over `events` (the whole range, min_uses 1), where only
/// `feature_use` events use a feature: the features of `launches` and the features used; a
/// launch is the release time, moved earlier to the first use by anyone if that came before;
/// eligible are the users with an event at or after the launch, adopters the eligible users
/// with a use, and a user's days to adopt run from the later of its first event and the launch
/// to its first use.
fn adoption<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    launches: &BTreeMap<String, i64>,
) -> BTreeMap<String, Adoption> {
    let mut first_seen: BTreeMap<i64, i64> = BTreeMap::new();
    let mut last_seen: BTreeMap<i64, i64> = BTreeMap::new();
    let mut first_use: BTreeMap<&str, BTreeMap<i64, i64>> = BTreeMap::new();
    for event in events {
        let time = event.ts.timestamp_micros();
        let first = first_seen.entry(event.user_id).or_insert(time);
        *first = (*first).min(time);
        let last = last_seen.entry(event.user_id).or_insert(time);
        *last = (*last).max(time);
        if event.event == "feature_use" {
            let feature = event
                .feature
                .as_deref()
                .expect("feature_use names its feature");
            let first = first_use
                .entry(feature)
                .or_default()
                .entry(event.user_id)
                .or_insert(time);
            *first = (*first).min(time);
        }
    }
    let features: BTreeSet<&str> = launches
        .keys()
        .map(String::as_str)
        .chain(first_use.keys().copied())
        .collect();
    let no_uses = BTreeMap::new();
    features
        .into_iter()
        .map(|feature| {
            let uses = first_use.get(feature).unwrap_or(&no_uses);
            let launched = launches
                .get(feature)
                .copied()
                .into_iter()
                .chain(uses.values().copied())
                .min()
                .unwrap();
            let eligible = |user: &i64| last_seen[user] >= launched;
            let days_to_adopt: Vec<f64> = uses
                .iter()
                .filter(|(user, _)| eligible(user))
                .map(|(user, first)| {
                    (first - first_seen[user].max(launched)) as f64 / MICROS_PER_DAY
                })
                .collect();
            let adoption = Adoption {
                launched,
                eligible: last_seen.keys().filter(|user| eligible(user)).count(),
                adopters: days_to_adopt.len(),
                days_to_adopt,
            };
            (feature.to_string(), adoption)
        })
        .collect()
}

/// The printed TIMESTAMP `text` is the instant `micros`.
fn assert_instant(text: &str, micros: i64, what: &str) {
    let instant = DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|_| panic!("{what}: {text:?} is not a timestamp"));
    assert_eq!(instant.timestamp_micros(), micros, "{what}");
}

#[test]
fn feature_adoption_counts_only_feature_use_among_users_around_after_each_launch() {
    let lake = sample_lake();
    let events = read_events(&lake);
    let launches = read_launches(&lake);
    let expected = adoption(&events, &launches);
    let mut expected: Vec<(&String, &Adoption)> = expected.iter().collect();
    expected.sort_by_key(|(feature, adoption)| (adoption.launched, *feature));
    // The three launches of the year leave out the users gone before them, and the announcement
    // views of a launch (which name its feature) are far more than its users.
    let ai_assistant = expected
        .iter()
        .find(|(f, _)| *f == "ai_assistant")
        .unwrap()
        .1;
    let users: BTreeSet<i64> = events.iter().map(|event| event.user_id).collect();
    assert!(ai_assistant.eligible < users.len());
    let announced: BTreeSet<i64> = events
        .iter()
        .filter(|e| {
            e.event == "feature_announcement_view" && e.feature.as_deref() == Some("ai_assistant")
        })
        .map(|e| e.user_id)
        .collect();
    assert!(
        announced.len() > 10 * ai_assistant.adopters,
        "{}",
        announced.len()
    );

    let rows = run_query("feature_adoption.sql");
    assert_eq!(
        rows[0],
        vec![
            "feature",
            "launched",
            "eligible",
            "adopters",
            "adoption_rate",
            "median_days_to_adopt",
            "p90_days_to_adopt"
        ]
    );
    assert_eq!(rows.len() - 1, expected.len(), "one row per feature");
    for (row, (feature, adoption)) in rows[1..].iter().zip(&expected) {
        assert_eq!(&row[0], *feature, "ordered by launch");
        assert_instant(&row[1], adoption.launched, &format!("{feature}: launched"));
        assert_eq!(
            row[2..4],
            [adoption.eligible.to_string(), adoption.adopters.to_string()],
            "{feature}: eligible, adopters"
        );
        assert_double(&row[4], adoption.rate(), &format!("{feature}: rate"));
        assert_near(&row[5], adoption.median(), &format!("{feature}: median"));
        assert_near(&row[6], adoption.p90(), &format!("{feature}: p90"));
    }
}

#[test]
fn time_to_adopt_gives_median_and_p90_days_per_feature_and_plan() {
    let lake = sample_lake();
    let events = read_events(&lake);
    let launches = read_launches(&lake);
    let mut plans: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in &events {
        plans.entry(&event.plan).or_default().push(event);
    }
    assert_eq!(plans.len(), 4, "four plans");
    // Each plan as its own table; rows by feature, then plan.
    let mut expected: BTreeMap<(String, &str), Adoption> = BTreeMap::new();
    for (plan, rows) in &plans {
        for (feature, adoption) in adoption(rows.iter().copied(), &launches) {
            expected.insert((feature, plan), adoption);
        }
    }

    let rows = run_query("time_to_adopt.sql");
    assert_eq!(
        rows[0],
        vec![
            "feature",
            "plan",
            "adopters",
            "median_days_to_adopt",
            "p90_days_to_adopt"
        ]
    );
    assert_eq!(
        rows.len() - 1,
        expected.len(),
        "one row per feature and plan"
    );
    for (row, ((feature, plan), adoption)) in rows[1..].iter().zip(&expected) {
        let at = format!("{feature} on {plan}");
        assert_eq!(
            row[..3],
            [
                feature.clone(),
                plan.to_string(),
                adoption.adopters.to_string()
            ],
            "{at}"
        );
        assert_near(&row[3], adoption.median(), &format!("{at}: median"));
        assert_near(&row[4], adoption.p90(), &format!("{at}: p90"));
    }
}

/// The five adoption stages, in funnel order.
const STAGES: [&str; 5] = [
    "feature_announcement_view",
    "feature_page_view",
    "pricing_view",
    "trial_start",
    "purchase",
];

/// One user's events of the stages: (time in microseconds, step index from 0).
type StageEvents = Vec<(i64, usize)>;

/// The step times of ClickHouse's windowFunnel over one user's `(time, step index)` events: read
/// in time order, ties in step order; a step-1 event starts a chain, a step-k event extends the
/// chain that step k − 1 holds if it lies within `window` of that chain's step-1 time
/// (inclusive). The result is the first chain to reach the highest level; its length is the level.
fn window_funnel_chain(mut events: StageEvents, steps: usize, window: i64) -> Vec<i64> {
    events.sort();
    let mut chains: Vec<Option<Vec<i64>>> = vec![None; steps];
    let mut best: Vec<i64> = Vec::new();
    for (time, step) in events {
        let chain = if step == 0 {
            Some(vec![time])
        } else {
            chains[step - 1]
                .as_ref()
                .filter(|before| time <= before[0] + window)
                .map(|before| {
                    let mut chain = before.clone();
                    chain.push(time);
                    chain
                })
        };
        if let Some(chain) = chain {
            if chain.len() > best.len() {
                best = chain.clone();
            }
            chains[step] = Some(chain);
        }
        if best.len() == steps {
            break;
        }
    }
    best
}

#[test]
fn adoption_funnel_follows_each_launch_through_its_five_stages_within_90_days() {
    let events = read_events(&sample_lake());
    let window = 90 * 86_400 * 1_000_000;
    // Per feature (the segment) and user, the events of the stages.
    let mut journeys: BTreeMap<&str, BTreeMap<i64, StageEvents>> = BTreeMap::new();
    for event in &events {
        if let Some(step) = STAGES.iter().position(|stage| *stage == event.event) {
            let feature = event.feature.as_deref().expect("a stage names its feature");
            journeys
                .entry(feature)
                .or_default()
                .entry(event.user_id)
                .or_default()
                .push((event.ts.timestamp_micros(), step));
        }
    }
    assert_eq!(
        journeys.keys().copied().collect::<Vec<_>>(),
        ["ai_assistant", "anomaly_detection", "workflows"],
        "the stages of the three launches"
    );

    let rows = run_query("adoption_funnel.sql");
    assert_eq!(
        rows[0],
        vec![
            "feature",
            "step",
            "step_name",
            "users",
            "conversion_from_first",
            "conversion_from_previous",
            "median_days_from_previous"
        ]
    );
    assert_eq!(
        rows.len() - 1,
        5 * journeys.len(),
        "five stages per feature"
    );
    let mut rows = rows[1..].iter();
    let mut cut_by_window = 0;
    for (feature, users) in &journeys {
        let chains: Vec<Vec<i64>> = users
            .values()
            .map(|events| window_funnel_chain(events.clone(), STAGES.len(), window))
            .collect();
        let purchases = users
            .values()
            .filter(|events| events.iter().any(|&(_, step)| step == 4))
            .count();
        let reached = |step: usize| chains.iter().filter(|chain| chain.len() >= step).count();
        cut_by_window += purchases - reached(5);
        for (index, stage) in STAGES.iter().enumerate() {
            let step = index + 1;
            let row = rows.next().unwrap();
            let at = format!("{feature}, step {step}");
            assert_eq!(
                row[..4],
                [
                    feature.to_string(),
                    step.to_string(),
                    stage.to_string(),
                    reached(step).to_string()
                ],
                "{at}"
            );
            assert_double(
                &row[4],
                ratio(reached(step) as f64, reached(1) as f64),
                &format!("{at}: from first"),
            );
            let from_previous = if step == 1 {
                Some(1.0)
            } else {
                ratio(reached(step) as f64, reached(step - 1) as f64)
            };
            assert_double(&row[5], from_previous, &format!("{at}: from previous"));
            let median = if step == 1 {
                None
            } else {
                let days: Vec<f64> = chains
                    .iter()
                    .filter(|chain| chain.len() >= step)
                    .map(|chain| (chain[index] - chain[index - 1]) as f64 / 1e6 / 86_400.0)
                    .collect();
                percentile_cont(&days, 0.5).map(|(days, tolerance)| (days, tolerance + 1e-9))
            };
            assert_near(&row[6], median, &format!("{at}: median days"));
        }
    }
    assert!(
        cut_by_window > 0,
        "the 90 days leave some late purchases out"
    );
}

/// One listed account of `churn_risk`, as the contract defines it.
struct Risk {
    account_id: i64,
    last_seen: i64,
    days_inactive: i64,
    events: [u64; 2],
    active_days: [usize; 2],
    usage_change: Option<f64>,
    features_dropped: Vec<String>,
    reasons: Vec<&'static str>,
}

#[test]
fn churn_risk_lists_paying_accounts_drifting_away_most_severe_first() {
    let lake = sample_lake();
    let events = read_events(&lake);
    let accounts = read_accounts(&lake);
    // The file's as_of is the last day with data; windows of 28 UTC days ending on it, and the
    // 28 before.
    let as_of = events.iter().map(|e| e.ts).max().unwrap().date_naive();
    assert_eq!(as_of, NaiveDate::from_ymd_opt(2024, 12, 30).unwrap());
    let current_from = as_of - Duration::days(27);
    let previous_from = as_of - Duration::days(55);

    #[derive(Default)]
    struct Windows {
        last_seen: i64,
        events: [u64; 2],
        days: [BTreeSet<NaiveDate>; 2],
        features: [BTreeSet<String>; 2],
    }
    let mut per_account: BTreeMap<i64, Windows> = BTreeMap::new();
    for event in &events {
        let day = event.ts.date_naive();
        if event.plan == "free" || day < previous_from || day > as_of {
            continue;
        }
        let window = usize::from(day >= current_from);
        let account = per_account.entry(event.account_id).or_default();
        account.last_seen = account.last_seen.max(event.ts.timestamp_micros());
        account.events[window] += 1;
        account.days[window].insert(day);
        if event.event == "feature_use" {
            account.features[window].insert(event.feature.clone().unwrap());
        }
    }
    let mut expected: Vec<Risk> = per_account
        .into_iter()
        .filter_map(|(account_id, windows)| {
            let last_day = DateTime::from_timestamp_micros(windows.last_seen)
                .unwrap()
                .date_naive();
            let days_inactive = (as_of - last_day).num_days();
            let [previous, current] = windows.events;
            let usage_change = (previous > 0).then(|| current as f64 / previous as f64 - 1.0);
            let features_dropped: Vec<String> = windows.features[0]
                .difference(&windows.features[1])
                .cloned()
                .collect();
            let mut reasons = Vec::new();
            if days_inactive >= 14 {
                reasons.push("inactive");
            }
            if usage_change.is_some_and(|change| change < -0.5) {
                reasons.push("usage_drop");
            }
            if !features_dropped.is_empty() {
                reasons.push("feature_dropped");
            }
            (!reasons.is_empty()).then(|| Risk {
                account_id,
                last_seen: windows.last_seen,
                days_inactive,
                events: [current, previous],
                active_days: [windows.days[1].len(), windows.days[0].len()],
                usage_change,
                features_dropped,
                reasons,
            })
        })
        .collect();
    // The most severe first: longest inactive, then largest drop (no previous usage last), then
    // account.
    expected.sort_by(|a, b| {
        b.days_inactive
            .cmp(&a.days_inactive)
            .then_with(|| match (a.usage_change, b.usage_change) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                (a, b) => a.is_none().cmp(&b.is_none()),
            })
            .then(a.account_id.cmp(&b.account_id))
    });
    for reason in ["inactive", "usage_drop", "feature_dropped"] {
        assert!(
            expected.iter().any(|risk| risk.reasons == [reason]),
            "the sample lake lists accounts for {reason} alone"
        );
    }

    let rows = run_query("churn_risk.sql");
    assert_eq!(
        rows[0],
        vec![
            "account_id",
            "plan",
            "segment",
            "csm",
            "reasons",
            "days_inactive",
            "last_seen",
            "events_current",
            "events_previous",
            "usage_change",
            "active_days_current",
            "active_days_previous",
            "features_dropped"
        ]
    );
    assert_eq!(rows.len() - 1, expected.len(), "one row per listed account");
    let list = |items: &[&str]| format!("[{}]", items.join(", "));
    for (row, risk) in rows[1..].iter().zip(&expected) {
        let at = format!("account {}", risk.account_id);
        let account = &accounts[&risk.account_id];
        assert_ne!(account.plan, "free", "{at}");
        let dropped: Vec<&str> = risk.features_dropped.iter().map(String::as_str).collect();
        assert_eq!(
            row[..6],
            [
                risk.account_id.to_string(),
                account.plan.clone(),
                account.segment.clone(),
                account.csm.clone().unwrap_or_default(),
                list(&risk.reasons),
                risk.days_inactive.to_string(),
            ],
            "{at}"
        );
        assert_instant(&row[6], risk.last_seen, &format!("{at}: last_seen"));
        assert_eq!(
            row[7..9],
            [risk.events[0].to_string(), risk.events[1].to_string()],
            "{at}: events"
        );
        assert_double(&row[9], risk.usage_change, &format!("{at}: usage_change"));
        assert_eq!(
            row[10..],
            [
                risk.active_days[0].to_string(),
                risk.active_days[1].to_string(),
                list(&dropped)
            ],
            "{at}: active days, features dropped"
        );
    }
}

#[test]
fn two_hundred_fifty_adopters_of_a_thousand_users_read_as_a_quarter() {
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::parquet::arrow::ArrowWriter;
    use std::sync::Arc;

    fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    let micros = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_micros()
    };
    let times = |values: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    };

    // 1,000 users log in from 2024-03-01, a minute apart, after the launch of 'copilot'; users
    // 1 to 250 use it two days after their login, users 251 to 500 only see its announcement.
    let lake = crate::support::scratch_dir("quarter-adoption-lake");
    let login = micros("2024-03-01T00:00:00Z");
    let minute = 60_000_000;
    let day = 86_400_000_000;
    let (mut users, mut ts, mut event, mut feature) = (vec![], vec![], vec![], vec![]);
    for user in 1..=1000_i64 {
        let signed_in = login + user * minute;
        users.push(user);
        ts.push(signed_in);
        event.push("login");
        feature.push(None);
        if user <= 500 {
            users.push(user);
            ts.push(signed_in + 2 * day);
            event.push(if user <= 250 {
                "feature_use"
            } else {
                "feature_announcement_view"
            });
            feature.push(Some("copilot"));
        }
    }
    write(
        &lake.join("events.parquet"),
        vec![
            ("user_id", Arc::new(Int64Array::from(users)) as ArrayRef),
            ("ts", times(ts)),
            ("event", Arc::new(StringArray::from(event))),
            ("feature", Arc::new(StringArray::from(feature))),
        ],
    );
    write(
        &lake.join("features.parquet"),
        vec![
            (
                "feature",
                Arc::new(StringArray::from(vec!["copilot"])) as ArrayRef,
            ),
            ("released_at", times(vec![micros("2024-02-01T00:00:00Z")])),
        ],
    );

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/feature_adoption.sql");
    let lake = lake.to_str().unwrap();
    let rows = csv_rows(&run_ok(&["--lake", lake, "-f", file.to_str().unwrap()]));
    assert_eq!(
        rows[1..],
        [vec![
            "copilot".to_string(),
            "2024-02-01T00:00:00Z".to_string(),
            "1000".to_string(),
            "250".to_string(),
            "0.25".to_string(),
            "2.0".to_string(),
            "2.0".to_string(),
        ]]
    );
    // The aggregate says the same of the same rows.
    let rows = csv_rows(&run_ok(&[
        "--lake",
        lake,
        "-c",
        "SELECT adoption_rate(user_id, event = 'feature_use') AS rate FROM events",
    ]));
    assert_eq!(rows, [vec!["rate"], vec!["0.25"]]);
}

/// One NPS or CES answer of `surveys`.
struct SurveyAnswer {
    account_id: i64,
    kind: String,
    score: i64,
}

fn read_surveys(lake: &Path) -> Vec<SurveyAnswer> {
    let mut rows = Vec::new();
    for batch in read_table(lake, "surveys") {
        let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let (account_id, kind, score) = (column("account_id"), column("kind"), column("score"));
        let account_id = account_id.as_primitive::<Int64Type>();
        let kind = kind.as_string::<i32>();
        let score = score.as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            rows.push(SurveyAnswer {
                account_id: account_id.value(i),
                kind: kind.value(i).to_string(),
                score: score.value(i),
            });
        }
    }
    assert!(rows.len() > 1_000, "the sample lake holds survey answers");
    rows
}

/// The NPS of `scores` by its definition: % of 9-10 minus % of 0-6.
fn net_promoter_score(scores: &[i64]) -> f64 {
    let promoters = scores.iter().filter(|&&score| score >= 9).count() as f64;
    let detractors = scores.iter().filter(|&&score| score <= 6).count() as f64;
    100.0 * (promoters - detractors) / scores.len() as f64
}

#[test]
fn nps_by_plan_matches_the_answers_of_each_plan() {
    let lake = sample_lake();
    let mut plans: BTreeMap<i64, String> = BTreeMap::new();
    for batch in read_table(&lake, "accounts") {
        let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let (ids, plan) = (column("account_id"), column("plan"));
        let (ids, plan) = (ids.as_primitive::<Int64Type>(), plan.as_string::<i32>());
        for i in 0..batch.num_rows() {
            plans.insert(ids.value(i), plan.value(i).to_string());
        }
    }
    // (NPS answers, CES answers) per plan.
    let mut expected: BTreeMap<String, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
    for answer in read_surveys(&lake) {
        let entry = expected
            .entry(plans[&answer.account_id].clone())
            .or_default();
        match answer.kind.as_str() {
            "nps" => entry.0.push(answer.score),
            "ces" => entry.1.push(answer.score),
            other => panic!("unknown survey kind {other}"),
        }
    }
    let rows = run_query("nps_by_plan.sql");
    assert_eq!(
        rows[0],
        ["plan", "nps_answers", "nps", "ces_answers", "ces"]
    );
    assert_eq!(rows.len() - 1, expected.len(), "one row per plan");
    assert_eq!(expected.len(), 4, "four plans");
    for (row, (plan, (nps, ces))) in rows[1..].iter().zip(&expected) {
        assert_eq!(&row[0], plan, "ordered by plan");
        assert_eq!(row[1], nps.len().to_string(), "{plan}: NPS answers");
        assert_double(
            &row[2],
            Some(net_promoter_score(nps)),
            &format!("{plan}: nps"),
        );
        assert_eq!(row[3], ces.len().to_string(), "{plan}: CES answers");
        let mean = ces.iter().sum::<i64>() as f64 / ces.len() as f64;
        assert_double(&row[4], Some(mean), &format!("{plan}: ces"));
    }
}

#[test]
fn nps_vs_retention_splits_the_paying_accounts_answers_by_churn() {
    let lake = sample_lake();
    let subscriptions = read_subscriptions(&lake);
    let last_month = subscriptions.iter().map(|row| row.month).max().unwrap();
    let mut last_paid: BTreeMap<i64, NaiveDate> = BTreeMap::new();
    for row in &subscriptions {
        let month = last_paid.entry(row.account_id).or_insert(row.month);
        *month = (*month).max(row.month);
    }
    // Accounts and NPS answers per status.
    let mut expected: BTreeMap<&str, (BTreeSet<i64>, Vec<i64>)> = BTreeMap::new();
    for answer in read_surveys(&lake) {
        let Some(&paid) = last_paid.get(&answer.account_id) else {
            continue;
        };
        if answer.kind != "nps" {
            continue;
        }
        let status = if paid == last_month {
            "stayed"
        } else {
            "churned"
        };
        let entry = expected.entry(status).or_default();
        entry.0.insert(answer.account_id);
        entry.1.push(answer.score);
    }
    let rows = run_query("nps_vs_retention.sql");
    assert_eq!(rows[0], ["status", "accounts", "answers", "nps"]);
    assert_eq!(rows.len() - 1, 2, "churned and stayed");
    for (row, (status, (accounts, scores))) in rows[1..].iter().zip(&expected) {
        assert_eq!(&row[0], status);
        assert_eq!(row[1], accounts.len().to_string(), "{status}: accounts");
        assert_eq!(row[2], scores.len().to_string(), "{status}: answers");
        assert_double(
            &row[3],
            Some(net_promoter_score(scores)),
            &format!("{status}: nps"),
        );
    }
    // The sample's churned accounts answered lower, as their usage faded.
    let nps = |status| net_promoter_score(&expected[status].1);
    assert!(
        nps("churned") < nps("stayed") - 20.0,
        "{} {}",
        nps("churned"),
        nps("stayed")
    );
}

#[test]
fn referrals_match_the_invite_events_and_the_invited_users_activity_per_month_and_plan() {
    let lake = sample_lake();
    // Counted in plain SQL from the events: the invite events (their user is the inviter, their
    // plan the account's), matched to the invitations only to learn whom each invited, and an
    // invitation converted when the invited user has an event 7 × 24 hours after its signup.
    let counts = csv_rows(&run_ok(&[
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "WITH invites AS ( \
             SELECT user_id AS inviter, ts AS invited_at, plan FROM events WHERE event = 'invite'), \
         signups AS (SELECT user_id, ts AS signed_up FROM events WHERE event = 'signup'), \
         active AS ( \
             SELECT DISTINCT e.user_id FROM events AS e JOIN signups AS s USING (user_id) \
             WHERE e.ts >= s.signed_up + INTERVAL '168 hours'), \
         converted AS ( \
             SELECT i.inviter, i.invited_at FROM invitations AS i \
             JOIN active AS a ON a.user_id = i.invited) \
         SELECT CAST(date_trunc('month', v.invited_at) AS DATE) AS month, v.plan, \
             count(*) AS invitations, count(DISTINCT v.inviter) AS inviters, \
             count(c.inviter) AS converted \
         FROM invites AS v \
         LEFT JOIN converted AS c ON c.inviter = v.inviter AND c.invited_at = v.invited_at \
         GROUP BY 1, 2 ORDER BY 1, 2",
    ]));
    assert_eq!(
        counts[0],
        ["month", "plan", "invitations", "inviters", "converted"]
    );
    let rows = run_query("referrals.sql");
    assert_eq!(
        rows[0],
        [
            "month",
            "plan",
            "invitations",
            "inviters",
            "invitations_per_inviter",
            "conversion_rate",
            "k_factor"
        ]
    );
    assert_eq!(rows.len(), counts.len(), "one row per month and plan");
    assert!(rows.len() > 40, "twelve months of four plans, nearly");
    let (mut invitations, mut converted) = (0, 0);
    for (row, expected) in rows[1..].iter().zip(&counts[1..]) {
        let what = format!("{} {}", expected[0], expected[1]);
        assert_eq!(row[..4], expected[..4], "{what}");
        let count = |column: usize| expected[column].parse::<u32>().unwrap();
        let (sent, inviters, activated) = (count(2), count(3), count(4));
        invitations += sent;
        converted += activated;
        assert_double(
            &row[4],
            Some(f64::from(sent) / f64::from(inviters)),
            &format!("{what}: invitations per inviter"),
        );
        assert_double(
            &row[5],
            Some(f64::from(activated) / f64::from(sent)),
            &format!("{what}: conversion rate"),
        );
        // K: invitations per inviter × converted share, i.e. converted invitations per inviter.
        assert_double(
            &row[6],
            Some(f64::from(activated) / f64::from(inviters)),
            &format!("{what}: k_factor"),
        );
    }
    // The sample's invited teammates: many, and some but not all of them stay.
    assert!(invitations > 1_000, "{invitations} invitations");
    assert!(
        converted > invitations / 5 && converted < invitations * 4 / 5,
        "{converted} of {invitations} converted"
    );
}

#[test]
fn next_after_pricing_matches_the_event_after_each_users_first_pricing_view_by_lead() {
    // The same question in plain SQL: each user's events numbered in (ts, event) order, the next
    // one by LEAD, read at the first pricing_view.
    let lake = sample_lake();
    let plain = "WITH ordered AS (
            SELECT user_id, event,
                   LEAD(event) OVER (PARTITION BY user_id ORDER BY ts, event) AS next_event,
                   ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts, event) AS n
            FROM events),
        first_view AS (
            SELECT user_id, MIN(n) AS n FROM ordered WHERE event = 'pricing_view' GROUP BY user_id)
        SELECT COALESCE(o.next_event, '(nothing)') AS next_event, COUNT(*) AS users
        FROM first_view f JOIN ordered o ON o.user_id = f.user_id AND o.n = f.n
        GROUP BY 1 ORDER BY users DESC, next_event";
    let expected = csv_rows(&run_ok(&["--lake", lake.to_str().unwrap(), "-c", plain]));
    let rows = run_query("next_after_pricing.sql");
    assert_eq!(rows[0], vec!["next_event", "users", "share_pct"]);
    let actual: Vec<Vec<String>> = rows[1..].iter().map(|row| row[..2].to_vec()).collect();
    assert_eq!(actual, expected[1..].to_vec());
    // The question has answers: hundreds of users viewed pricing, and most did something next.
    let users: Vec<i64> = actual.iter().map(|row| row[1].parse().unwrap()).collect();
    let total: i64 = users.iter().sum();
    assert!(total > 100, "{total} users viewed pricing");
    let shares: f64 = rows[1..]
        .iter()
        .map(|row| row[2].parse::<f64>().unwrap())
        .sum();
    assert!((shares - 100.0).abs() < 0.5, "shares add up to {shares}");
    let share = |count: i64| (1000.0 * count as f64 / total as f64).round() / 10.0;
    for row in &rows[1..] {
        let count: i64 = row[1].parse().unwrap();
        assert_eq!(row[2].parse::<f64>().unwrap(), share(count), "{row:?}");
    }
}

/// The sessions of one actor's event times in microseconds (sorted here): runs with no pause
/// longer than `gap`, as (first, last, events).
fn sessions_of_times(mut times: Vec<i64>, gap: i64) -> Vec<(i64, i64, u64)> {
    times.sort_unstable();
    let mut sessions: Vec<(i64, i64, u64)> = Vec::new();
    for time in times {
        match sessions.last_mut() {
            Some(last) if time - last.1 <= gap => {
                last.1 = time;
                last.2 += 1;
            }
            _ => sessions.push((time, time, 1)),
        }
    }
    sessions
}

/// The `fraction` quantile of `values` interpolated between the two nearest ranks, as the
/// `sessions` documentation defines it (DataFusion's `percentile_cont`): the weight of the upper
/// rank is truncated to a millionth.
fn interpolated_quantile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = fraction * (values.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let weight = ((rank - low as f64) * 1e6).trunc() / 1e6;
    values[low] + (values[high] - values[low]) * weight
}

/// Per key, the sessions starting in it: (actor, minutes, events).
type SessionsByKey<K> = BTreeMap<K, Vec<(i64, f64, u64)>>;

/// Checks one report row's counts and quantiles against the sessions of its key.
fn assert_session_stats(row: &[String], sessions: &[(i64, f64, u64)], what: &str) {
    let actors = sessions.iter().map(|s| s.0).collect::<BTreeSet<_>>().len();
    let mut minutes: Vec<f64> = sessions.iter().map(|s| s.1).collect();
    let events: u64 = sessions.iter().map(|s| s.2).sum();
    assert_eq!(row[0], sessions.len().to_string(), "{what}: sessions");
    assert_eq!(row[1], actors.to_string(), "{what}: actors");
    assert_double(
        &row[2],
        Some(interpolated_quantile(&mut minutes, 0.5)),
        &format!("{what}: median"),
    );
    assert_double(
        &row[3],
        Some(interpolated_quantile(&mut minutes, 0.9)),
        &format!("{what}: p90"),
    );
    assert_double(
        &row[4],
        Some(events as f64 / sessions.len() as f64),
        &format!("{what}: events per session"),
    );
}

const THIRTY_MINUTES_MICROS: i64 = 30 * 60 * 1_000_000;

#[test]
fn sessions_per_day_matches_sessions_cut_from_the_rows() {
    let mut user_times: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut last_event = i64::MIN;
    for event in read_events(&sample_lake()) {
        let micros = event.ts.timestamp_micros();
        last_event = last_event.max(micros);
        user_times.entry(event.user_id).or_default().push(micros);
    }
    let mut days: SessionsByKey<NaiveDate> = BTreeMap::new();
    for (user, times) in user_times {
        for (first, last, events) in sessions_of_times(times, THIRTY_MINUTES_MICROS) {
            let day = DateTime::from_timestamp_micros(first).unwrap().date_naive();
            let minutes = (last - first) as f64 / 60_000_000.0;
            days.entry(day).or_default().push((user, minutes, events));
        }
    }
    let last_day = DateTime::from_timestamp_micros(last_event)
        .unwrap()
        .date_naive();
    assert!(days.values().flatten().any(|s| s.1 > 0.0 && s.2 > 1));

    let rows = run_query("sessions_per_day.sql");
    assert_eq!(
        rows[0],
        vec![
            "day",
            "sessions",
            "users",
            "sessions_per_user",
            "median_session_minutes",
            "p90_session_minutes",
            "events_per_session",
            "period_complete"
        ]
    );
    assert_eq!(rows.len() - 1, days.len());
    for (row, (day, sessions)) in rows[1..].iter().zip(&days) {
        assert_eq!(row[0], day.to_string());
        let stats = [&row[1], &row[2], &row[4], &row[5], &row[6]].map(String::clone);
        assert_session_stats(&stats, sessions, &day.to_string());
        let users = stats[1].parse::<f64>().unwrap();
        assert_double(
            &row[3],
            Some(sessions.len() as f64 / users),
            &format!("{day}: sessions per user"),
        );
        assert_eq!(row[7], (*day < last_day).to_string(), "{day}: complete");
    }
}

#[test]
fn session_length_by_plan_matches_sessions_cut_from_each_plans_rows() {
    let mut plan_user_times: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for event in read_events(&sample_lake()) {
        plan_user_times
            .entry((event.plan.clone(), event.user_id))
            .or_default()
            .push(event.ts.timestamp_micros());
    }
    let mut months: SessionsByKey<(String, NaiveDate)> = BTreeMap::new();
    for ((plan, user), times) in plan_user_times {
        for (first, last, events) in sessions_of_times(times, THIRTY_MINUTES_MICROS) {
            let day = DateTime::from_timestamp_micros(first).unwrap().date_naive();
            let month = day.with_day(1).unwrap();
            let minutes = (last - first) as f64 / 60_000_000.0;
            months
                .entry((plan.clone(), month))
                .or_default()
                .push((user, minutes, events));
        }
    }
    assert!(
        months
            .keys()
            .map(|(plan, _)| plan)
            .collect::<BTreeSet<_>>()
            .len()
            > 1
    );

    let rows = run_query("session_length_by_plan.sql");
    assert_eq!(
        rows[0],
        vec![
            "plan",
            "month",
            "sessions",
            "users",
            "median_session_minutes",
            "p90_session_minutes",
            "events_per_session"
        ]
    );
    assert_eq!(rows.len() - 1, months.len());
    for (row, ((plan, month), sessions)) in rows[1..].iter().zip(&months) {
        assert_eq!([&row[0], &row[1]], [plan, &month.to_string()]);
        assert_session_stats(&row[2..], sessions, &format!("{plan} {month}"));
    }
}
