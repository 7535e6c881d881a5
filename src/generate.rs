//! `usagelake gen`: writes a synthetic but realistic sample lake of product-usage data.
//!
//! The lake holds the tables the metric functions are built for: `events` (hive-partitioned by
//! UTC day), `accounts`, `subscriptions`, `invoices`, `features`, `surveys` and `invitations`,
//! plus the `usagelake.toml` that tells the engine how `events` is partitioned. The data has the
//! shapes those functions measure (growth, retention, weekly seasonality, feature launches and
//! adoption funnels, revenue movements, usage that fades before churn, referrals), so that they
//! can be tested and demonstrated on it.
//!
//! Output is byte-identical for the same options: every table draws from its own seeded stream
//! (or, as `invitations`, draws nothing and is derived from the generated events) and every
//! entity from its own generator, whatever the parallel schedule.

mod accounts;
mod billing;
mod calendar;
mod events;
mod features;
mod invitations;
mod parquet_file;
mod random;
mod surveys;
mod vocabulary;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::arrow::error::ArrowError;
use datafusion::parquet::errors::ParquetError;

use calendar::Calendar;

/// At most a century of days: keeps every date and per-user event count in range.
const MAX_DAYS: u32 = 36_600;

/// The engine configuration written next to the tables.
const LAKE_CONFIG: &str = r#"# Written by `usagelake gen`: the sample lake's tables and what the engine should know about them.
[tables.events]
location = "events"
time_column = "ts"
# The hive partition column `date` is the UTC date of `ts`: time ranges on ts prune partitions.
date_partition = "date"
"#;
const LAKE_CONFIG_FILE: &str = "usagelake.toml";
const EVENTS_DIR: &str = "events";
const SINGLE_FILE_TABLES: [&str; 6] = [
    "accounts",
    "subscriptions",
    "invoices",
    "features",
    "surveys",
    "invitations",
];

/// What to generate, and where.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// The lake directory; created if missing. Only the generator's own tables are replaced.
    pub out: PathBuf,
    pub users: u64,
    pub days: u32,
    pub seed: u64,
    /// First day of the range (UTC).
    pub start: chrono::NaiveDate,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct GenSummary {
    pub tables: Vec<TableSummary>,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub name: String,
    pub rows: u64,
    pub files: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{option} is {value} but must be {requirement}; pass a value in that range")]
    InvalidOption {
        option: &'static str,
        value: String,
        requirement: String,
    },
    #[error(
        "--start {start} with --days {days} runs past the last supported date; pick an earlier start or fewer days"
    )]
    RangeTooLate { start: chrono::NaiveDate, days: u32 },
    #[error("output path {} is a file, not a directory; pass --out a directory (it is created if missing)", path.display())]
    OutputIsFile { path: PathBuf },
    #[error("cannot {action} {}: {source}; check that the path is writable and the disk has room", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write Parquet file {}: {source}; check that the path is writable and the disk has room", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("cannot assemble the rows for {}: {source}; this is a generator bug, please report it", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> GenerateError {
    let path = path.to_path_buf();
    move |source| GenerateError::Io {
        action,
        path,
        source,
    }
}

/// Generates the sample lake described by `options` into `options.out`.
pub fn generate(options: &GenOptions) -> Result<GenSummary, GenerateError> {
    let started = Instant::now();
    let users = u32::try_from(options.users)
        .ok()
        .filter(|&users| users > 0)
        .ok_or_else(|| GenerateError::InvalidOption {
            option: "--users",
            value: options.users.to_string(),
            requirement: format!("between 1 and {}", u32::MAX),
        })?;
    if options.days == 0 || options.days > MAX_DAYS {
        return Err(GenerateError::InvalidOption {
            option: "--days",
            value: options.days.to_string(),
            requirement: format!("between 1 and {MAX_DAYS}"),
        });
    }
    let calendar =
        Calendar::new(options.start, options.days).ok_or(GenerateError::RangeTooLate {
            start: options.start,
            days: options.days,
        })?;

    let out = &options.out;
    prepare_output(out)?;

    // Account facts and feature launches come first: the events follow them.
    let releases = features::feature_releases(&calendar, options.seed);
    let facts = accounts::draw_accounts(&calendar, users, options.seed);
    let events = events::write_events(
        &out.join(EVENTS_DIR),
        &calendar,
        &facts,
        &releases,
        options.seed,
    )?;
    let table_path = |name: &str| out.join(format!("{name}.parquet"));
    let account_rows = accounts::write_accounts(&table_path("accounts"), &facts)?;
    let subscription_rows =
        billing::write_subscriptions(&table_path("subscriptions"), &calendar, &facts)?;
    let invoice_rows =
        billing::write_invoices(&table_path("invoices"), &calendar, &facts, options.seed)?;
    let feature_rows = features::write_features(&table_path("features"), &releases)?;
    let survey_rows =
        surveys::write_surveys(&table_path("surveys"), &calendar, &facts, options.seed)?;
    let invitation_rows =
        invitations::write_invitations(&table_path("invitations"), &events, &facts)?;

    let config_path = out.join(LAKE_CONFIG_FILE);
    fs::write(&config_path, LAKE_CONFIG).map_err(io_error("write", &config_path))?;

    let table = |name: &str, rows: u64, files: usize| TableSummary {
        name: name.to_string(),
        rows,
        files,
    };
    Ok(GenSummary {
        tables: vec![
            table(EVENTS_DIR, events.rows, events.files),
            table("accounts", account_rows, 1),
            table("subscriptions", subscription_rows, 1),
            table("invoices", invoice_rows, 1),
            table("features", feature_rows, 1),
            table("surveys", survey_rows, 1),
            table("invitations", invitation_rows, 1),
        ],
        elapsed: started.elapsed(),
    })
}

/// Creates the lake directory if needed and removes the previous run's tables (and only those),
/// so that no partition of an older, longer range survives next to the new one.
fn prepare_output(out: &Path) -> Result<(), GenerateError> {
    if out.exists() && !out.is_dir() {
        return Err(GenerateError::OutputIsFile {
            path: out.to_path_buf(),
        });
    }
    fs::create_dir_all(out).map_err(io_error("create directory", out))?;
    let events = out.join(EVENTS_DIR);
    match fs::symlink_metadata(&events) {
        Ok(metadata) if metadata.is_dir() => {
            fs::remove_dir_all(&events).map_err(io_error("remove", &events))?
        }
        Ok(_) => fs::remove_file(&events).map_err(io_error("remove", &events))?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error("inspect", &events)(error)),
    }
    for table in SINGLE_FILE_TABLES {
        let path = out.join(format!("{table}.parquet"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("remove", &path)(error)),
        }
    }
    fs::create_dir_all(&events).map_err(io_error("create directory", &events))
}
