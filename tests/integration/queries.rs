//! Every file in `queries/` runs on the sample lake, and its numbers are checked against the
//! same question answered in plain Rust over the rows read straight from the Parquet files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, NaiveDate};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{csv_rows, run_ok, sample_lake};

/// One row of `events`, as the files hold it.
struct Event {
    ts: DateTime<chrono::Utc>,
    user_id: i64,
    event: String,
    feature: Option<String>,
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
            let event = column("event");
            let event = event.as_string::<i32>();
            let feature = column("feature");
            let feature = feature.as_string::<i32>();
            for i in 0..batch.num_rows() {
                events.push(Event {
                    ts: DateTime::from_timestamp_micros(ts.value(i)).unwrap(),
                    user_id: user_id.value(i),
                    event: event.value(i).to_string(),
                    feature: feature.is_valid(i).then(|| feature.value(i).to_string()),
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
