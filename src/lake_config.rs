//! `usagelake.toml`: what a lake says about its own tables.
//!
//! Folder names are enough to find tables, but not to know that a hive partition column is the UTC
//! date of a table's time column (which lets a time range prune partitions), or where a table lives
//! when it is not a folder of the lake. The file is optional; unknown keys are errors, so a typo
//! never silently changes what a query reads. A `[server]` section holds what `usagelake serve`
//! would otherwise take from its command line, so that a lake served the same way every time says
//! so once; the command line still wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The name of the configuration file at the root of a lake.
pub const LAKE_CONFIG_FILE: &str = "usagelake.toml";

/// Errors reading `usagelake.toml`.
#[derive(Debug, thiserror::Error)]
pub enum LakeConfigError {
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}: table '{table}' sets date_partition but no time_column: add time_column = \"ts\" (the column whose UTC date the partition holds)"
    )]
    DatePartitionWithoutTime { path: PathBuf, table: String },
    #[error("{path}: table '{table}' {problem}")]
    Table {
        path: PathBuf,
        table: String,
        problem: &'static str,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Tables by name.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// How `usagelake serve` serves this lake.
    #[serde(default)]
    pub server: ServerConfig,
}

/// The `[server]` section: each key is the `usagelake serve` option of the same name. Paths are
/// relative to the lake. It holds no password: users and their hashes live in the users file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: Option<std::net::SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub users: Option<PathBuf>,
    pub allow_writes: Option<bool>,
    pub max_concurrent: Option<usize>,
    pub max_queued: Option<usize>,
    pub query_timeout: Option<String>,
    pub token_lifetime: Option<String>,
    pub shutdown_grace: Option<String>,
    pub memory_limit: Option<String>,
}

/// One `[tables.NAME]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// A folder or `.parquet` file, relative to the lake, absolute, or a URL such as
    /// `s3://bucket/events/` or `https://host/events.parquet`.
    pub location: Option<String>,
    /// The table's files one by one, in place of `location`: plain HTTP cannot list a folder, so
    /// an `https://` table of several files names them. They form one table, so they share one
    /// store (scheme and host).
    pub files: Option<Vec<String>>,
    /// The location holds job outputs (prefixes with a `_SUCCESS` manifest, such as one
    /// `--output` per run date): the table is the union of the files their manifests name;
    /// prefixes without a manifest yet (a run in flight) are left out.
    #[serde(default)]
    pub job_outputs: bool,
    /// The table's event-time column.
    pub time_column: Option<String>,
    /// A hive partition column (DATE) holding the UTC date of `time_column`.
    pub date_partition: Option<String>,
    /// Object-store options of the table's bucket, such as `aws_region` or `aws_endpoint`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What a table reads, from its `location`, `files` and `job_outputs` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableData<'a> {
    /// A folder or file (or a job's output, read by its manifest).
    Location(&'a str),
    /// Files named one by one.
    Files(&'a [String]),
    /// A folder of job outputs.
    JobOutputs(&'a str),
}

impl TableConfig {
    /// What the table reads, or what is wrong with its keys (said with what to write instead).
    pub fn data(&self) -> Result<TableData<'_>, &'static str> {
        match (&self.location, &self.files) {
            (Some(location), None) if self.job_outputs => Ok(TableData::JobOutputs(location)),
            (Some(location), None) => Ok(TableData::Location(location)),
            (None, Some(_)) if self.job_outputs => Err(
                "sets job_outputs with files: job_outputs reads the outputs under a location, such as location = \"s3://bucket/reports/daily_kpis/\"",
            ),
            (None, Some(files)) if files.is_empty() => Err(
                "has an empty list of files: name them, such as files = [\"https://host/a.parquet\"]",
            ),
            (None, Some(files)) => Ok(TableData::Files(files)),
            (None, None) => Err(
                "has no location: give it location = \"FOLDER, FILE OR URL\", or files = [\"URL\", ...] for files that cannot be listed (https://)",
            ),
            (Some(_), Some(_)) => Err("has both location and files: give it one of them"),
        }
    }
}

impl LakeConfig {
    /// Reads `usagelake.toml` from `lake`, or returns `None` when the lake has none.
    pub fn load(lake: &Path) -> Result<Option<Self>, LakeConfigError> {
        let path = lake.join(LAKE_CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LakeConfigError::Read { path, source }),
        };
        Self::parse(&path, &text).map(Some)
    }

    /// Parses the text of a configuration file; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, LakeConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |span| span.start);
            let before = &text[..offset.min(text.len())];
            LakeConfigError::Parse {
                path: path.to_path_buf(),
                line: before.matches('\n').count() + 1,
                column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                message: e.message().trim().to_string(),
            }
        })?;
        for (name, table) in &config.tables {
            if let Err(problem) = table.data() {
                return Err(LakeConfigError::Table {
                    path: path.to_path_buf(),
                    table: name.clone(),
                    problem,
                });
            }
            if table.date_partition.is_some() && table.time_column.is_none() {
                return Err(LakeConfigError::DatePartitionWithoutTime {
                    path: path.to_path_buf(),
                    table: name.clone(),
                });
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables_with_time_partitions() {
        let config = LakeConfig::parse(
            Path::new("usagelake.toml"),
            "[tables.events]\nlocation = \"events\"\ntime_column = \"ts\"\ndate_partition = \"date\"\n",
        )
        .unwrap();
        let events = &config.tables["events"];
        assert_eq!(events.location.as_deref(), Some("events"));
        assert_eq!(events.time_column.as_deref(), Some("ts"));
        assert_eq!(events.date_partition.as_deref(), Some("date"));
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let error = LakeConfig::parse(
            Path::new("lake/usagelake.toml"),
            "[tables.events]\nlocation = \"events\"\ntime_colum = \"ts\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("lake/usagelake.toml:3:"), "{error}");
        assert!(error.contains("time_colum"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn server_section_takes_the_serve_options() {
        let config = LakeConfig::parse(
            Path::new("usagelake.toml"),
            "[server]\naddr = \"0.0.0.0:50051\"\nusers = \"users\"\nquery_timeout = \"5m\"\nmax_concurrent = 4\n",
        )
        .unwrap();
        assert_eq!(config.server.addr, Some("0.0.0.0:50051".parse().unwrap()));
        assert_eq!(config.server.users, Some(PathBuf::from("users")));
        assert_eq!(config.server.query_timeout.as_deref(), Some("5m"));
        assert_eq!(config.server.max_concurrent, Some(4));
        let error = LakeConfig::parse(Path::new("usagelake.toml"), "[server]\npassword = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("password"), "{error}");
    }

    #[test]
    fn date_partition_needs_a_time_column() {
        let error = LakeConfig::parse(
            Path::new("usagelake.toml"),
            "[tables.events]\nlocation = \"events\"\ndate_partition = \"date\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("add time_column"), "{error}");
    }

    #[test]
    fn a_table_is_a_location_or_a_list_of_files() {
        let config = LakeConfig::parse(
            Path::new("usagelake.toml"),
            "[tables.accounts]\nfiles = [\"https://host/a.parquet\", \"https://host/b.parquet\"]\n\
             [tables.kpis]\nlocation = \"s3://bucket/kpis/\"\njob_outputs = true\n",
        )
        .unwrap();
        let files = [
            "https://host/a.parquet".to_string(),
            "https://host/b.parquet".to_string(),
        ];
        assert_eq!(
            config.tables["accounts"].data(),
            Ok(TableData::Files(&files))
        );
        assert_eq!(
            config.tables["kpis"].data(),
            Ok(TableData::JobOutputs("s3://bucket/kpis/"))
        );
        for (body, expected) in [
            ("time_column = \"ts\"\n", "table 't' has no location"),
            (
                "location = \"t\"\nfiles = [\"https://h/a.parquet\"]\n",
                "table 't' has both location and files",
            ),
            ("files = []\n", "table 't' has an empty list of files"),
            (
                "files = [\"https://h/a.parquet\"]\njob_outputs = true\n",
                "table 't' sets job_outputs with files",
            ),
        ] {
            let error =
                LakeConfig::parse(Path::new("usagelake.toml"), &format!("[tables.t]\n{body}"))
                    .unwrap_err()
                    .to_string();
            assert!(
                error.starts_with(&format!("usagelake.toml: {expected}")),
                "{error}"
            );
        }
    }
}
