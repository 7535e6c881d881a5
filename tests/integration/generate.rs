//! `usagelake gen`: runs the real binary into temporary directories and reads the Parquet back,
//! pinning the layout, the determinism and the data shapes the metric functions rely on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Datelike, NaiveDate, Weekday};
use datafusion::arrow::array::{
    Array, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tempfile::TempDir;

use crate::support::{csv_rows, run_ok, usagelake};

const DAY_US: i64 = 86_400_000_000;
const ADOPTION_STAGES: [&str; 5] = [
    "feature_announcement_view",
    "feature_page_view",
    "pricing_view",
    "trial_start",
    "purchase",
];

/// Runs `command`, a `usagelake gen`, and asserts it succeeded.
fn assert_generated(command: &mut Command) {
    let output = command.output().expect("run usagelake gen");
    assert!(
        output.status.success(),
        "usagelake gen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `usagelake gen` into `out` (start 2024-01-01) and asserts it succeeded.
fn generate_into(out: &Path, users: u32, days: u32, seed: u64) {
    assert_generated(
        usagelake()
            .args(["gen", "--out"])
            .arg(out)
            .args([
                "--users",
                &users.to_string(),
                "--days",
                &days.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .args(["--start", "2024-01-01"]),
    );
}

fn generate(users: u32, days: u32, seed: u64) -> TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    generate_into(dir.path(), users, days, seed);
    dir
}

fn read_batches(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
        .map(|batch| batch.expect("record batch"))
        .collect()
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} has an unexpected type"))
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    column::<StringArray>(batch, name)
        .iter()
        .map(|value| value.map(str::to_string))
        .collect()
}

fn timestamps(batch: &RecordBatch, name: &str) -> Vec<i64> {
    column::<TimestampMicrosecondArray>(batch, name)
        .values()
        .to_vec()
}

fn int64s(batch: &RecordBatch, name: &str) -> Vec<i64> {
    column::<Int64Array>(batch, name).values().to_vec()
}

fn cents(batch: &RecordBatch, name: &str) -> Vec<i128> {
    column::<Decimal128Array>(batch, name).values().to_vec()
}

#[derive(Debug, Clone)]
struct Event {
    ts: i64,
    user_id: i64,
    account_id: i64,
    event: String,
    feature: Option<String>,
}

/// The `date=` partition folders of the events table, in date order.
fn partitions(lake: &Path) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = fs::read_dir(lake.join("events"))
        .expect("events folder")
        .map(|entry| entry.expect("folder entry").path())
        .collect();
    folders.sort();
    folders
}

fn partition_date(folder: &Path) -> NaiveDate {
    let name = folder
        .file_name()
        .and_then(|name| name.to_str())
        .expect("folder name");
    let date = name
        .strip_prefix("date=")
        .unwrap_or_else(|| panic!("{name} is not a date= partition"));
    NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("partition date")
}

fn events_of(path: &Path) -> Vec<Event> {
    let mut events = Vec::new();
    for batch in read_batches(path) {
        let (ts, users, accounts) = (
            timestamps(&batch, "ts"),
            int64s(&batch, "user_id"),
            int64s(&batch, "account_id"),
        );
        let (names, features) = (strings(&batch, "event"), strings(&batch, "feature"));
        for row in 0..batch.num_rows() {
            events.push(Event {
                ts: ts[row],
                user_id: users[row],
                account_id: accounts[row],
                event: names[row].clone().expect("event is never null"),
                feature: features[row].clone(),
            });
        }
    }
    events
}

/// All events, partition by partition, each in file order.
fn all_events(lake: &Path) -> Vec<Event> {
    partitions(lake)
        .iter()
        .flat_map(|folder| events_of(&folder.join("part-00000.parquet")))
        .collect()
}

fn features(lake: &Path) -> HashMap<String, i64> {
    let mut released = HashMap::new();
    for batch in read_batches(&lake.join("features.parquet")) {
        for (name, at) in strings(&batch, "feature")
            .into_iter()
            .zip(timestamps(&batch, "released_at"))
        {
            released.insert(name.expect("feature name"), at);
        }
    }
    released
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in fs::read_dir(&folder).expect("read folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .expect("inside the lake")
                    .to_path_buf();
                files.insert(relative, fs::read(&path).expect("read file"));
            }
        }
    }
    files
}

fn start_us() -> i64 {
    NaiveDate::from_ymd_opt(2024, 1, 1)
        .expect("date")
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_micros()
}

fn date_of(ts: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(ts)
        .expect("timestamp in range")
        .date_naive()
}

/// Months since year 0, so that month arithmetic is integer arithmetic.
fn month_number(date: NaiveDate) -> i32 {
    date.year() * 12 + date.month0() as i32
}

#[test]
fn same_seed_writes_byte_identical_files() {
    let first = generate(300, 60, 11);
    let second = generate(300, 60, 11);
    let (first_files, second_files) = (files_under(first.path()), files_under(second.path()));
    assert_eq!(
        first_files.keys().collect::<Vec<_>>(),
        second_files.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (path, bytes) in &first_files {
        assert!(
            bytes == &second_files[path],
            "{} differs between two runs with the same seed",
            path.display()
        );
    }
}

#[test]
fn different_seed_writes_different_events() {
    let first = generate(300, 60, 11);
    let second = generate(300, 60, 12);
    let key = |events: Vec<Event>| {
        events
            .into_iter()
            .map(|event| (event.ts, event.user_id, event.event))
            .collect::<Vec<_>>()
    };
    assert_ne!(
        key(all_events(first.path())),
        key(all_events(second.path()))
    );
}

#[test]
fn tables_have_the_documented_columns_and_types() {
    let lake = generate(300, 60, 11);
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let money = || DataType::Decimal128(12, 2);
    let expected: Vec<(PathBuf, Vec<(&str, DataType)>)> = vec![
        (
            partitions(lake.path())[0].join("part-00000.parquet"),
            vec![
                ("ts", utc()),
                ("user_id", DataType::Int64),
                ("account_id", DataType::Int64),
                ("event", DataType::Utf8),
                ("feature", DataType::Utf8),
                ("plan", DataType::Utf8),
                ("country", DataType::Utf8),
                ("device", DataType::Utf8),
            ],
        ),
        (
            lake.path().join("accounts.parquet"),
            vec![
                ("account_id", DataType::Int64),
                ("created_at", utc()),
                ("plan", DataType::Utf8),
                ("segment", DataType::Utf8),
                ("country", DataType::Utf8),
                ("csm", DataType::Utf8),
            ],
        ),
        (
            lake.path().join("subscriptions.parquet"),
            vec![
                ("account_id", DataType::Int64),
                ("month", DataType::Date32),
                ("mrr", money()),
                ("plan", DataType::Utf8),
            ],
        ),
        (
            lake.path().join("invoices.parquet"),
            vec![
                ("account_id", DataType::Int64),
                ("paid_at", utc()),
                ("amount", money()),
                ("billing_interval", DataType::Utf8),
            ],
        ),
        (
            lake.path().join("features.parquet"),
            vec![("feature", DataType::Utf8), ("released_at", utc())],
        ),
        (
            lake.path().join("surveys.parquet"),
            vec![
                ("account_id", DataType::Int64),
                ("user_id", DataType::Int64),
                ("answered_at", utc()),
                ("kind", DataType::Utf8),
                ("score", DataType::Int64),
            ],
        ),
        (
            lake.path().join("invitations.parquet"),
            vec![
                ("inviter", DataType::Int64),
                ("invited", DataType::Int64),
                ("invited_at", utc()),
                ("converted", DataType::Boolean),
            ],
        ),
    ];
    for (path, columns) in expected {
        let file = File::open(&path).expect("open table file");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet file");
        let actual: Vec<(String, DataType)> = builder
            .schema()
            .fields()
            .iter()
            .map(|field| (field.name().clone(), field.data_type().clone()))
            .collect();
        let expected: Vec<(String, DataType)> = columns
            .into_iter()
            .map(|(name, ty)| (name.to_string(), ty))
            .collect();
        assert_eq!(actual, expected, "schema of {}", path.display());
        let ts_field = builder.schema().field(0);
        if ts_field.name() == "ts" {
            assert!(!ts_field.is_nullable(), "events.ts is not null");
        }
    }
}

#[test]
fn every_user_starts_with_one_signup() {
    let lake = generate(300, 60, 11);
    let events = all_events(lake.path());
    let mut first_event: HashMap<i64, &Event> = HashMap::new();
    let mut signups: HashMap<i64, u32> = HashMap::new();
    // Partitions are in date order and files in time order, so the first row seen is the first.
    for event in &events {
        first_event.entry(event.user_id).or_insert(event);
        if event.event == "signup" {
            *signups.entry(event.user_id).or_default() += 1;
        }
    }
    assert_eq!(first_event.len(), 300, "every user has events");
    assert!(
        first_event.values().all(|event| event.event == "signup"),
        "every user's first event is signup"
    );
    assert_eq!(
        signups.len(),
        first_event.len(),
        "one signup per distinct user"
    );
    assert!(signups.values().all(|&count| count == 1));
}

#[test]
fn users_of_an_account_share_its_plan_and_country() {
    let lake = generate(300, 60, 11);
    let mut accounts: HashMap<i64, (String, String)> = HashMap::new();
    for batch in read_batches(&lake.path().join("accounts.parquet")) {
        let (ids, plans, countries) = (
            int64s(&batch, "account_id"),
            strings(&batch, "plan"),
            strings(&batch, "country"),
        );
        for row in 0..batch.num_rows() {
            accounts.insert(
                ids[row],
                (
                    plans[row].clone().expect("plan"),
                    countries[row].clone().expect("country"),
                ),
            );
        }
    }
    let mut users_per_account: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for folder in partitions(lake.path()) {
        for batch in read_batches(&folder.join("part-00000.parquet")) {
            let (users, ids) = (int64s(&batch, "user_id"), int64s(&batch, "account_id"));
            let (plans, countries) = (strings(&batch, "plan"), strings(&batch, "country"));
            for row in 0..batch.num_rows() {
                let (plan, country) = &accounts[&ids[row]];
                assert_eq!(plans[row].as_ref(), Some(plan));
                assert_eq!(countries[row].as_ref(), Some(country));
                users_per_account
                    .entry(ids[row])
                    .or_default()
                    .insert(users[row]);
            }
        }
    }
    let users: BTreeSet<i64> = users_per_account.values().flatten().copied().collect();
    assert_eq!(
        users.len(),
        users_per_account.values().map(BTreeSet::len).sum::<usize>(),
        "a user has one account"
    );
    assert!(
        users_per_account.values().any(|members| members.len() > 1),
        "accounts have teams"
    );
}

#[test]
fn each_day_with_events_is_one_sorted_partition_of_that_utc_day() {
    let lake = generate(300, 60, 11);
    let folders = partitions(lake.path());
    let mut dates = BTreeSet::new();
    for folder in &folders {
        let date = partition_date(folder);
        dates.insert(date);
        let files: Vec<_> = fs::read_dir(folder).expect("partition").collect();
        assert_eq!(files.len(), 1, "one file in {}", folder.display());
        let path = folder.join("part-00000.parquet");
        let events = events_of(&path);
        assert!(!events.is_empty(), "no empty partition files");
        assert!(
            events.iter().all(|event| date_of(event.ts) == date),
            "every ts of {} is on that day",
            folder.display()
        );
        assert!(
            events
                .windows(2)
                .all(|pair| (pair[0].ts, pair[0].user_id) <= (pair[1].ts, pair[1].user_id)),
            "{} is sorted by ts, user_id",
            path.display()
        );
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
            .expect("parquet");
        let sorting = builder
            .metadata()
            .row_group(0)
            .sorting_columns()
            .expect("sorting_columns recorded");
        assert_eq!(sorting[0].column_idx, 0, "sorted by ts first");
        assert!(!sorting[0].descending);
    }
    let days_with_events: BTreeSet<NaiveDate> = all_events(lake.path())
        .iter()
        .map(|event| date_of(event.ts))
        .collect();
    assert_eq!(dates, days_with_events);
    assert!(
        dates
            .iter()
            .all(|&date| date >= NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"))
    );
    assert!(
        dates.len() >= 55,
        "nearly every day of 60 has events: {}",
        dates.len()
    );
}

#[test]
fn features_are_used_only_from_their_release_and_some_launch_mid_range() {
    let lake = generate(600, 120, 11);
    let released = features(lake.path());
    assert_eq!(released.len(), 8);
    let launched: Vec<&String> = released
        .iter()
        .filter(|&(_, &at)| at > start_us())
        .map(|(name, _)| name)
        .collect();
    assert!(
        launched.len() >= 2,
        "features launched inside the range: {launched:?}"
    );
    let mut first_use: HashMap<String, i64> = HashMap::new();
    for event in all_events(lake.path()) {
        if event.event == "feature_use" {
            let feature = event.feature.expect("feature_use names its feature");
            let first = first_use.entry(feature).or_insert(event.ts);
            *first = (*first).min(event.ts);
        } else if !ADOPTION_STAGES.contains(&event.event.as_str()) {
            assert!(
                event.feature.is_none(),
                "{} carries no feature",
                event.event
            );
        }
    }
    for (feature, first) in &first_use {
        assert!(
            *first >= released[feature],
            "{feature} used before its release"
        );
    }
    assert!(
        launched
            .iter()
            .any(|&feature| first_use.contains_key(feature)),
        "a launched feature gets used"
    );
}

#[test]
fn adoption_stages_are_strict_subsets_reached_in_order() {
    let lake = generate(600, 120, 11);
    let released = features(lake.path());
    // feature -> stage -> user -> first time the user reached that stage
    let mut reached: HashMap<String, Vec<HashMap<i64, i64>>> = HashMap::new();
    for event in all_events(lake.path()) {
        if let Some(stage) = ADOPTION_STAGES.iter().position(|&name| name == event.event) {
            let feature = event.feature.expect("adoption events name their feature");
            assert!(
                event.ts >= released[&feature],
                "{feature}: {} before release",
                event.event
            );
            let stages = reached
                .entry(feature)
                .or_insert_with(|| vec![HashMap::new(); ADOPTION_STAGES.len()]);
            let first = stages[stage].entry(event.user_id).or_insert(event.ts);
            *first = (*first).min(event.ts);
        }
    }
    assert!(
        !reached.is_empty(),
        "launched features have adoption events"
    );
    let mut complete_funnels = 0;
    for (feature, stages) in &reached {
        for stage in 1..ADOPTION_STAGES.len() {
            let (earlier, later) = (&stages[stage - 1], &stages[stage]);
            for (user, at) in later {
                let before = earlier.get(user).unwrap_or_else(|| {
                    panic!(
                        "{feature}: user {user} reached {} without {}",
                        ADOPTION_STAGES[stage],
                        ADOPTION_STAGES[stage - 1]
                    )
                });
                assert!(
                    before < at,
                    "{feature}: user {user} reached the stages out of order"
                );
            }
            if !earlier.is_empty() {
                assert!(
                    later.len() < earlier.len(),
                    "{feature}: {} is a strict subset",
                    ADOPTION_STAGES[stage]
                );
            }
        }
        if stages.iter().all(|users| !users.is_empty()) {
            complete_funnels += 1;
        }
    }
    assert!(
        complete_funnels >= 1,
        "some feature has users at every stage: {reached:?}"
    );
}

#[test]
fn invoices_spread_over_their_interval_reproduce_subscriptions() {
    let lake = generate(2_000, 200, 5);
    let first_month = month_number(NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"));
    let last_month =
        month_number(NaiveDate::from_ymd_opt(2024, 1, 1).expect("date") + chrono::Days::new(199));

    let mut subscribed: BTreeMap<(i64, i32), i128> = BTreeMap::new();
    let mut rows_per_month: BTreeMap<(i64, i32), u32> = BTreeMap::new();
    for batch in read_batches(&lake.path().join("subscriptions.parquet")) {
        let (ids, mrr) = (int64s(&batch, "account_id"), cents(&batch, "mrr"));
        let months = column::<Date32Array>(&batch, "month");
        for row in 0..batch.num_rows() {
            let first_day = months.value_as_date(row).expect("month date");
            assert_eq!(first_day.day(), 1, "month is the first day of a month");
            let month = month_number(first_day);
            assert!(
                (first_month..=last_month).contains(&month),
                "subscription month {first_day} inside the range"
            );
            assert!(mrr[row] > 0);
            *subscribed.entry((ids[row], month)).or_default() += mrr[row];
            *rows_per_month.entry((ids[row], month)).or_default() += 1;
        }
    }

    let mut spread: BTreeMap<(i64, i32), i128> = BTreeMap::new();
    let mut intervals = BTreeSet::new();
    for batch in read_batches(&lake.path().join("invoices.parquet")) {
        let (ids, paid_at, amounts) = (
            int64s(&batch, "account_id"),
            timestamps(&batch, "paid_at"),
            cents(&batch, "amount"),
        );
        let interval = strings(&batch, "billing_interval");
        for row in 0..batch.num_rows() {
            let month = month_number(date_of(paid_at[row]));
            let interval = interval[row].clone().expect("billing_interval");
            let (months, per_month) = match interval.as_str() {
                "month" => (1, amounts[row]),
                "year" => {
                    assert_eq!(
                        amounts[row] % 12,
                        0,
                        "a yearly invoice is 12 monthly payments"
                    );
                    (12, amounts[row] / 12)
                }
                other => panic!("unknown billing_interval {other}"),
            };
            intervals.insert(interval);
            for covered in month..month + months {
                if covered <= last_month {
                    *spread.entry((ids[row], covered)).or_default() += per_month;
                }
            }
        }
    }
    assert_eq!(
        intervals,
        BTreeSet::from(["month".to_string(), "year".to_string()])
    );
    assert!(
        subscribed.len() > 100,
        "enough paying account-months to mean something"
    );
    assert_eq!(
        spread, subscribed,
        "spread invoices equal the subscriptions, account by account, month by month"
    );
    assert!(
        rows_per_month.values().any(|&rows| rows == 2),
        "some account carries an add-on line"
    );
}

#[test]
fn signups_grow_and_weekends_are_quieter() {
    let lake = generate(3_000, 364, 3);
    let events = all_events(lake.path());
    let half = start_us() + 182 * DAY_US;
    let late_signups = events
        .iter()
        .filter(|event| event.event == "signup" && event.ts >= half)
        .count();
    assert!(
        late_signups > 3_000 * 6 / 10,
        "more signups in the second half: {late_signups}"
    );
    let (mut weekday, mut weekend) = (0_u64, 0_u64);
    for event in &events {
        match date_of(event.ts).weekday() {
            Weekday::Sat | Weekday::Sun => weekend += 1,
            _ => weekday += 1,
        }
    }
    // Per day: 5 weekdays against 2 weekend days a week.
    let ratio = (weekend as f64 / 2.0) / (weekday as f64 / 5.0);
    assert!(
        ratio < 0.6,
        "a weekend day has well under the events of a weekday: {ratio:.2}"
    );
}

#[test]
fn usage_fades_in_the_weeks_before_an_account_churns() {
    let lake = generate(3_000, 364, 3);
    let mut months_paid: BTreeMap<i64, BTreeSet<i32>> = BTreeMap::new();
    for batch in read_batches(&lake.path().join("subscriptions.parquet")) {
        let ids = int64s(&batch, "account_id");
        let months = column::<Date32Array>(&batch, "month");
        for (row, &id) in ids.iter().enumerate() {
            let month = month_number(months.value_as_date(row).expect("month date"));
            months_paid.entry(id).or_default().insert(month);
        }
    }
    let last_month = month_number(NaiveDate::from_ymd_opt(2024, 12, 1).expect("date"));
    // The first month without a row, after a paid one, inside the range: when the account churned.
    let churn_start: HashMap<i64, i64> = months_paid
        .iter()
        .filter_map(|(&account, months)| {
            let churn = months
                .iter()
                .map(|month| month + 1)
                .find(|next| !months.contains(next) && *next <= last_month)?;
            let date =
                NaiveDate::from_ymd_opt(churn.div_euclid(12), churn.rem_euclid(12) as u32 + 1, 1)?;
            Some((
                account,
                date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros(),
            ))
        })
        .collect();
    assert!(
        churn_start.len() >= 5,
        "enough churned accounts: {}",
        churn_start.len()
    );
    let (mut two_months_before, mut last_four_weeks, mut after) = (0_u32, 0_u32, 0_u32);
    for event in all_events(lake.path()) {
        if let Some(&churn) = churn_start.get(&event.account_id) {
            let days = (event.ts - churn).div_euclid(DAY_US);
            match days {
                -84..=-57 => two_months_before += 1,
                -28..=-1 => last_four_weeks += 1,
                0..=27 => after += 1,
                _ => {}
            }
        }
    }
    assert!(
        f64::from(last_four_weeks) < 0.6 * f64::from(two_months_before),
        "usage drops before churn: {two_months_before} events 12-8 weeks before, {last_four_weeks} in the last 4"
    );
    assert!(after < last_four_weeks, "and nearly stops after: {after}");
}

#[test]
fn the_lake_config_describes_the_events_partitioning() {
    let lake = generate(50, 10, 1);
    let config = fs::read_to_string(lake.path().join("usagelake.toml")).expect("usagelake.toml");
    assert_eq!(
        config,
        "# Written by `usagelake gen`: the sample lake's tables and what the engine should know about them.\n\
         [tables.events]\n\
         location = \"events\"\n\
         time_column = \"ts\"\n\
         # The hive partition column `date` is the UTC date of `ts`: time ranges on ts prune partitions.\n\
         date_partition = \"date\"\n"
    );
}

#[test]
fn regenerating_replaces_the_old_tables_and_keeps_other_files() {
    let lake = tempfile::tempdir().expect("temporary directory");
    generate_into(lake.path(), 100, 40, 1);
    fs::write(lake.path().join("notes.txt"), "mine").expect("write a file of the user's");
    generate_into(lake.path(), 100, 20, 1);
    let last = partitions(lake.path())
        .last()
        .map(|folder| partition_date(folder))
        .expect("partitions");
    assert!(
        last < NaiveDate::from_ymd_opt(2024, 1, 21).expect("date"),
        "no partition of the older, longer run"
    );
    assert_eq!(
        fs::read_to_string(lake.path().join("notes.txt")).expect("notes survive"),
        "mine"
    );
}

#[test]
fn an_output_path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("lake");
    fs::write(&file, "not a directory").expect("write file");
    let output = usagelake()
        .args(["gen", "--out"])
        .arg(&file)
        .args(["--users", "10", "--days", "5"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is a file"),
        "explains the problem: {stderr}"
    );
    assert_eq!(
        fs::read_to_string(&file).expect("file untouched"),
        "not a directory"
    );
}

#[test]
fn survey_answers_are_on_their_scales_after_signup_and_promoters_use_the_product_more() {
    let lake = generate(1_500, 180, 5);
    let mut events_per_user: HashMap<i64, u64> = HashMap::new();
    let mut signups: HashMap<i64, (i64, i64)> = HashMap::new();
    for event in all_events(lake.path()) {
        *events_per_user.entry(event.user_id).or_default() += 1;
        if event.event == "signup" {
            signups.insert(event.user_id, (event.ts, event.account_id));
        }
    }
    // Events per NPS answerer, for promoters (9-10) and detractors (0-6).
    let (mut promoters, mut detractors) = (vec![], vec![]);
    let mut kinds = BTreeSet::new();
    let mut previous = i64::MIN;
    for batch in read_batches(&lake.path().join("surveys.parquet")) {
        let (accounts, users, answered) = (
            int64s(&batch, "account_id"),
            int64s(&batch, "user_id"),
            timestamps(&batch, "answered_at"),
        );
        let (kind, score) = (strings(&batch, "kind"), int64s(&batch, "score"));
        for row in 0..batch.num_rows() {
            let kind = kind[row].clone().expect("kind is never null");
            let (signup, account) = signups[&users[row]];
            assert_eq!(accounts[row], account, "the user's account");
            assert!(
                answered[row] >= signup + 14 * 86_400_000_000,
                "two weeks after signup"
            );
            assert!(answered[row] >= previous, "sorted by answered_at");
            previous = answered[row];
            let scale = if kind == "nps" { 0..=10 } else { 1..=7 };
            assert!(scale.contains(&score[row]), "{kind} {}", score[row]);
            let events = events_per_user[&users[row]] as f64;
            match (kind.as_str(), score[row]) {
                ("nps", 9..) => promoters.push(events),
                ("nps", ..=6) => detractors.push(events),
                _ => {}
            }
            kinds.insert(kind);
        }
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["ces".to_string(), "nps".to_string()])
    );
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    assert!(
        promoters.len() > 50 && detractors.len() > 50,
        "{} {}",
        promoters.len(),
        detractors.len()
    );
    assert!(
        mean(&promoters) > 1.5 * mean(&detractors),
        "promoters {} events, detractors {}",
        mean(&promoters),
        mean(&detractors)
    );
}

/// One row of `invitations`, as the file holds it.
struct Invitation {
    inviter: i64,
    invited: i64,
    invited_at: i64,
    converted: bool,
}

fn invitations(lake: &Path) -> Vec<Invitation> {
    let mut rows = vec![];
    for batch in read_batches(&lake.join("invitations.parquet")) {
        let (inviters, invited, invited_at) = (
            int64s(&batch, "inviter"),
            int64s(&batch, "invited"),
            timestamps(&batch, "invited_at"),
        );
        let converted = column::<BooleanArray>(&batch, "converted");
        assert_eq!(converted.null_count(), 0, "converted is never null");
        for row in 0..batch.num_rows() {
            rows.push(Invitation {
                inviter: inviters[row],
                invited: invited[row],
                invited_at: invited_at[row],
                converted: converted.value(row),
            });
        }
    }
    rows
}

#[test]
fn invitations_are_the_invite_events_each_followed_by_the_invited_users_signup() {
    let lake = generate(1_500, 180, 5);
    let events = all_events(lake.path());
    let mut invite_events: Vec<(i64, i64)> = events
        .iter()
        .filter(|event| event.event == "invite")
        .map(|event| (event.user_id, event.ts))
        .collect();
    let signups: HashMap<i64, (i64, i64)> = events
        .iter()
        .filter(|event| event.event == "signup")
        .map(|event| (event.user_id, (event.ts, event.account_id)))
        .collect();
    let mut last_event: HashMap<i64, i64> = HashMap::new();
    for event in &events {
        let last = last_event.entry(event.user_id).or_insert(event.ts);
        *last = (*last).max(event.ts);
    }
    let invitations = invitations(lake.path());
    assert!(
        invitations.len() > 500,
        "the teams send invitations: {}",
        invitations.len()
    );
    assert!(
        invitations
            .windows(2)
            .all(|pair| (pair[0].invited_at, pair[0].inviter)
                <= (pair[1].invited_at, pair[1].inviter)),
        "sorted by invited_at, then inviter"
    );
    let mut pairs: Vec<(i64, i64)> = invitations
        .iter()
        .map(|invitation| (invitation.inviter, invitation.invited_at))
        .collect();
    pairs.sort_unstable();
    invite_events.sort_unstable();
    assert_eq!(
        pairs, invite_events,
        "one invitation per invite event, at its ts"
    );
    let mut invited = BTreeSet::new();
    for invitation in &invitations {
        let (signed_up, account) = signups[&invitation.invited];
        let (inviter_signed_up, inviter_account) = signups[&invitation.inviter];
        assert!(
            invitation.invited_at <= signed_up,
            "{} signs up after the invitation",
            invitation.invited
        );
        assert!(
            inviter_signed_up < invitation.invited_at,
            "the inviter was there"
        );
        assert_eq!(account, inviter_account, "a teammate of the inviter");
        assert!(invited.insert(invitation.invited), "invited once");
        assert_eq!(
            invitation.converted,
            last_event[&invitation.invited] >= signed_up + 7 * DAY_US,
            "{} converted when active 7 days after signing up",
            invitation.invited
        );
    }
    // Every user but the accounts' owners (their first users) was invited.
    let owners: BTreeSet<i64> = signups.values().map(|&(_, account)| account).collect();
    assert_eq!(invited.len(), signups.len() - owners.len());
}

#[test]
fn an_invitation_converted_when_the_invited_user_is_active_seven_days_after_signing_up() {
    let lake = generate(1_500, 180, 5);
    let lake = lake.path().to_str().expect("utf-8 path");
    // The definition in plain SQL over the events, against the column; and how many of each.
    let sql = "WITH signups AS (SELECT user_id, ts AS signed_up FROM events WHERE event = 'signup'), \
        active AS (SELECT DISTINCT e.user_id FROM events AS e JOIN signups AS s USING (user_id) \
            WHERE e.ts >= s.signed_up + INTERVAL '168 hours') \
        SELECT count(*) FILTER (WHERE i.converted <> (a.user_id IS NOT NULL)) AS differences, \
            count(*) FILTER (WHERE i.converted) AS converted, count(*) AS invitations \
        FROM invitations AS i LEFT JOIN active AS a ON a.user_id = i.invited";
    let rows = csv_rows(&run_ok(&["--lake", lake, "--format", "csv", "-c", sql]));
    assert_eq!(rows[0], ["differences", "converted", "invitations"]);
    let count = |column: usize| rows[1][column].parse::<u64>().expect("a count");
    assert_eq!(count(0), 0, "converted follows its definition");
    let share = count(1) as f64 / count(2) as f64;
    assert!(
        (0.2..0.8).contains(&share),
        "some invited users stay and some leave: {share}"
    );
}

/// The `usagelake gen` arguments of the command that made the committed sample lake, as
/// `data/README.md` gives it.
fn sample_lake_command() -> Vec<String> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/README.md"))
        .expect("data/README.md");
    let line = readme
        .lines()
        .find(|line| line.starts_with("usagelake gen --out data/sample "))
        .expect("the sample's command in data/README.md");
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_documented_command_writes_the_committed_sample_lake_byte_for_byte() {
    let args = sample_lake_command();
    let dir = tempfile::tempdir().expect("temporary directory");
    let out_at = args.iter().position(|arg| arg == "--out").expect("--out") + 1;
    assert_generated(
        usagelake()
            .args(&args[..out_at])
            .arg(dir.path())
            .args(&args[out_at + 1..]),
    );
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join(&args[out_at]);
    let (written, committed) = (files_under(dir.path()), files_under(&sample));
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "the same files"
    );
    assert!(written.contains_key(Path::new("invitations.parquet")));
    for (path, bytes) in &written {
        assert!(
            bytes == &committed[path],
            "{} differs from the committed sample; regenerate it with data/README.md's command",
            path.display()
        );
    }
}
