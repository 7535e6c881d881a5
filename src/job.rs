//! `usagelake run JOB.sql`: scheduled batch jobs that publish their whole result or nothing.
//!
//! A job file holds SQL statements; `${name}` in it is replaced by the `--var name=value` given,
//! always as a quoted string literal (`'value'`, quotes doubled), so a value can never become SQL
//! of its own. The statements run in order and the last one's result is the output.
//!
//! Publishing: the run's files go under `OUTPUT/runs/RUN_ID/`, then the `_SUCCESS` manifest (see
//! [`crate::manifest`]) is put last, in one request, naming them. Readers go by the manifest, so a
//! run that fails or is killed before that point changes nothing they see; once a new manifest is
//! in place the files of runs that started before it are removed.
//!
//! Exit codes: 0 done, 1 query or data error, 2 usage error, 3 storage error after retries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::error::DataFusionError;
use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use url::Url;

use crate::cli::LakeArgs;
use crate::lake::LakeError;
use crate::manifest::{
    MANIFEST_FILE, Manifest, ManifestColumn, ManifestError, ManifestFile, RUNS_PREFIX,
};
use crate::object_stores::{
    Location, ObjectStoreError, as_folder, storage_hint, storage_message, store_error_message,
};
use crate::runner::one_line;
use crate::session::{self, SessionError, SessionOptions};
use crate::statements::{self, StatementError};

/// The options of `usagelake run`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job: SQL statements, the last of them the query whose result is published
    #[arg(value_name = "JOB.sql")]
    job: PathBuf,
    /// A value for ${NAME} in the job, put in as a quoted SQL string literal (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Where to publish: a folder or an object-store prefix such as s3://bucket/kpis/
    /// (required unless --dry-run)
    #[arg(long, value_name = "DIR|URL")]
    output: Option<String>,
    /// Format of the published files
    #[arg(long, value_enum, default_value_t = JobFormat::Parquet)]
    format: JobFormat,
    /// Write the files in hive folders COL=value/ of this result column (repeatable)
    #[arg(long = "partition-by", value_name = "COL")]
    partition_by: Vec<String>,
    /// Check the job, its variables and its plan, print the SQL it would run, and write nothing
    #[arg(long)]
    dry_run: bool,
    /// Logs on standard error: lines for a terminal, or JSON lines for a scheduler
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Default time zone of the metric functions, such as Europe/Istanbul
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    #[command(flatten)]
    lake: LakeArgs,
}

/// Formats a job publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum JobFormat {
    Parquet,
    Csv,
    Json,
}

impl JobFormat {
    fn name(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Errors of a job, each with its exit code (see [`JobError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("could not read the job '{path}': {source}")]
    ReadJob {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--var '{0}' is not NAME=VALUE: write it as --var run_date=2024-01-31")]
    BadVar(String),
    #[error("--var {0} is given twice: give each variable once")]
    DuplicateVar(String),
    #[error("--var {given} is not used by the job: its variables are {used}")]
    UnknownVar { given: String, used: String },
    #[error(
        "the job uses ${{{name}}} (line {line}) but no --var {name}=VALUE is given: add it to the command"
    )]
    MissingVar { name: String, line: usize },
    #[error(
        "${{{name}}} at line {line} is inside a quoted string: write it without quotes, it becomes a quoted literal itself"
    )]
    VarInString { name: String, line: usize },
    #[error(
        "'${{{text}' at line {line} is not a variable: write ${{name}} with letters, digits and _"
    )]
    BadVarSyntax { text: String, line: usize },
    #[error(
        "the job has no statements: its last statement must be the query whose result is published"
    )]
    NoStatements,
    #[error("the job's last statement returns no rows to publish: end the job with a SELECT")]
    NotAQuery,
    #[error(
        "--output is missing: say where to publish, such as --output s3://bucket/kpis/ (or use --dry-run)"
    )]
    NoOutput,
    #[error("--partition-by {column} is not a column of the result: its columns are {columns}")]
    PartitionColumn { column: String, columns: String },
    #[error(
        "output '{output}' holds the output of job '{other}': give this job an --output of its own"
    )]
    ForeignOutput { output: String, other: String },
    #[error(
        "output '{output}' already holds data that no job published ('{example}'): give the job an empty --output, or remove that data"
    )]
    OutputNotEmpty { output: String, example: String },
    #[error(transparent)]
    Location(#[from] ObjectStoreError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{}", one_line(.0))]
    Query(DataFusionError),
    #[error("{what} '{location}': {message}: {hint}")]
    Storage {
        what: &'static str,
        location: String,
        message: String,
        /// What to check: the bucket, the endpoint or the credentials, by the store's answer.
        hint: String,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl JobError {
    /// 1 for query and data errors, 2 for usage errors, 3 for storage errors.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Query(_) | Self::Statement(_) | Self::Runtime(_) => 1,
            Self::Lake(LakeError::Storage { .. }) => 3,
            Self::Lake(_) => 1,
            Self::Storage { .. } => 3,
            Self::Manifest(ManifestError::Invalid { .. }) => 2,
            Self::Manifest(_) => 3,
            _ => 2,
        }
    }

    /// A DataFusion error: a storage error when an object store's request failed at its root.
    fn from_datafusion(what: &'static str, location: &str, error: DataFusionError) -> Self {
        if is_storage_error(&error) {
            Self::storage(what, location, storage_message(&error))
        } else {
            Self::Query(error)
        }
    }

    /// A failed request to the store of `location`, with the hint its answer calls for.
    fn storage(what: &'static str, location: &str, message: String) -> Self {
        let hint = match Location::parse(location) {
            Ok(Location::Remote(url)) => storage_hint(&url, &message),
            _ => "check the store and its settings, then re-run".to_string(),
        };
        Self::Storage {
            what,
            location: location.to_string(),
            message,
            hint,
        }
    }

    /// A manifest error of the output at `output`: a failed read or write is a storage error
    /// naming the manifest's URL.
    fn from_manifest(output: &Url, error: ManifestError) -> Self {
        match error {
            ManifestError::Read { source, .. } | ManifestError::Write { source, .. } => {
                let location = format!("{}{MANIFEST_FILE}", as_folder(output));
                Self::storage("manifest", &location, store_error_message(&source))
            }
            invalid => Self::Manifest(invalid),
        }
    }
}

/// True when a request to an object store is among the causes of `error`.
fn is_storage_error(error: &DataFusionError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        // Writers hand a store's errors on as std::io::Error, whose source() skips the error
        // it wraps; an I/O error of a local output is a storage error too.
        if current
            .downcast_ref::<datafusion::object_store::Error>()
            .is_some()
            || current.downcast_ref::<std::io::Error>().is_some()
            || matches!(
                current.downcast_ref::<DataFusionError>(),
                Some(DataFusionError::ObjectStore(_))
            )
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Runs the job of `args` and returns its exit code; what happened is logged on standard error.
pub fn main(args: JobArgs) -> ExitCode {
    let log = JobLog {
        format: args.log_format,
        job: job_name(&args),
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(JobError::Runtime)
        .and_then(|runtime| runtime.block_on(run(&args, &log)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = error.exit_code();
            log.failed(&error, code);
            ExitCode::from(code)
        }
    }
}

fn job_name(args: &JobArgs) -> String {
    args.job
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".to_string())
}

async fn run(args: &JobArgs, log: &JobLog) -> Result<(), JobError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let text = std::fs::read_to_string(&args.job).map_err(|source| JobError::ReadJob {
        path: args.job.clone(),
        source,
    })?;
    let variables = parse_vars(&args.vars)?;
    let sql = substitute(&text, &variables)?;
    let mut statements = statements::split(&sql)?;
    let last = statements.pop().ok_or(JobError::NoStatements)?;
    let output = match (&args.output, args.dry_run) {
        (Some(output), _) => Some(output_url(output)?),
        (None, true) => None,
        (None, false) => return Err(JobError::NoOutput),
    };

    let ctx = session::create_context(&SessionOptions {
        tz: args.tz.clone(),
        store_options: args.lake.store_options()?,
        ..Default::default()
    })?;
    args.lake.register(&ctx).await?;
    for statement in &statements {
        run_statement(&ctx, statement).await?;
    }
    let frame = ctx.sql(&last).await.map_err(JobError::Query)?;
    check_result(&frame, &args.partition_by)?;

    let Some(output) = output else {
        frame
            .create_physical_plan()
            .await
            .map_err(JobError::Query)?;
        println!("{}", sql.trim_end());
        log.info(
            "dry_run",
            format!(
                "checked {} statement(s); nothing written",
                statements.len() + 1
            ),
            serde_json::json!({ "statements": statements.len() + 1, "variables": variables }),
        );
        return Ok(());
    };

    let store = ctx
        .runtime_env()
        .object_store_registry
        .get_store(&output)
        .map_err(|e| JobError::from_datafusion("output", output.as_str(), e))?;
    let prefix = object_path(&output)?;
    check_output(store.as_ref(), &prefix, &output, &log.job).await?;

    let run_id = format!(
        "{}-{:08x}",
        started_at.format("%Y%m%dT%H%M%S%.3fZ"),
        rand::random::<u32>()
    );
    let run_url = output
        .join(&format!("{RUNS_PREFIX}/{run_id}/"))
        .map_err(|e| ObjectStoreError::BadUrl {
            location: output.to_string(),
            problem: e.to_string(),
        })?;
    log.info(
        "started",
        format!("writing {} to {run_url}", args.format.name()),
        serde_json::json!({ "run_id": run_id, "output": output.as_str(), "variables": variables }),
    );
    let schema = frame.schema().as_arrow().clone();
    let rows = write(frame, run_url.as_str(), args).await?;
    let run_prefix = object_path(&run_url)?;
    let files = list_files(store.as_ref(), &run_prefix, &prefix, output.as_str()).await?;
    let bytes = files.iter().map(|f| f.bytes).sum();

    let manifest = Manifest {
        job: log.job.clone(),
        variables,
        run_id: run_id.clone(),
        format: args.format.name().to_string(),
        partition_by: args.partition_by.clone(),
        rows,
        bytes,
        schema: schema
            .fields()
            .iter()
            .map(|f| ManifestColumn {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect(),
        files,
        started: started_at.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
    };
    manifest
        .write(store.as_ref(), &prefix)
        .await
        .map_err(|e| JobError::from_manifest(&output, e))?;
    let removed = remove_older_runs(store.as_ref(), &prefix, &run_id).await;
    if let Ok(folder) = output.to_file_path() {
        remove_empty_run_folders(&folder, &run_id);
    }
    let removed = match removed {
        Ok(n) => n,
        Err(e) => {
            log.warn(
                "cleanup_failed",
                format!(
                    "published, but could not remove older runs' files: {}",
                    one_line(&e.into())
                ),
            );
            0
        }
    };
    log.info(
        "published",
        format!(
            "published {rows} rows ({bytes} bytes, {} file(s)) to {output} in {:.2}s; removed {removed} file(s) of older runs",
            manifest.files.len(),
            started.elapsed().as_secs_f64()
        ),
        serde_json::json!({
            "run_id": run_id,
            "output": output.as_str(),
            "rows": rows,
            "bytes": bytes,
            "files": manifest.files.len(),
            "duration_ms": started.elapsed().as_millis() as u64,
            "removed_files": removed,
        }),
    );
    Ok(())
}

/// Runs a statement before the last (`CREATE VIEW`, `SET`, ...) to the end, discarding rows.
async fn run_statement(ctx: &SessionContext, sql: &str) -> Result<(), JobError> {
    let frame = ctx.sql(sql).await.map_err(JobError::Query)?;
    frame
        .collect()
        .await
        .map(|_| ())
        .map_err(|e| JobError::from_datafusion("statement", sql, e))
}

fn check_result(frame: &DataFrame, partition_by: &[String]) -> Result<(), JobError> {
    let schema = frame.schema();
    if schema.fields().is_empty() {
        return Err(JobError::NotAQuery);
    }
    for column in partition_by {
        if schema.field_with_unqualified_name(column).is_err() {
            return Err(JobError::PartitionColumn {
                column: column.clone(),
                columns: schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}

/// The output as a folder URL: a local folder becomes a `file://` URL, so that one code path
/// writes both.
fn output_url(output: &str) -> Result<Url, JobError> {
    let bad = |problem: &str| ObjectStoreError::BadUrl {
        location: output.to_string(),
        problem: problem.to_string(),
    };
    match Location::parse(output)? {
        Location::Remote(url) => Ok(as_folder(&url)),
        Location::Local(path) => {
            let absolute = std::path::absolute(&path).map_err(|e| bad(&e.to_string()))?;
            Url::from_directory_path(&absolute).map_err(|()| bad("not an absolute path").into())
        }
    }
}

fn object_path(url: &Url) -> Result<ObjectPath, JobError> {
    ObjectPath::from_url_path(url.path()).map_err(|e| {
        ObjectStoreError::BadUrl {
            location: url.to_string(),
            problem: e.to_string(),
        }
        .into()
    })
}

/// Refuses an output that holds another job's output, or data no job published; runs' files
/// that no manifest names (left by failed runs) are not data and do not count.
async fn check_output(
    store: &dyn ObjectStore,
    prefix: &ObjectPath,
    output: &Url,
    job: &str,
) -> Result<(), JobError> {
    let published = Manifest::read(store, prefix)
        .await
        .map_err(|e| JobError::from_manifest(output, e))?;
    if let Some(manifest) = published {
        if manifest.job != job {
            return Err(JobError::ForeignOutput {
                output: output.to_string(),
                other: manifest.job,
            });
        }
        return Ok(());
    }
    let runs = prefix.clone().join(RUNS_PREFIX);
    let mut listing = store.list(Some(prefix));
    loop {
        match listing.try_next().await {
            Ok(Some(meta)) if meta.location.prefix_matches(&runs) => continue,
            Ok(Some(meta)) => {
                return Err(JobError::OutputNotEmpty {
                    output: output.to_string(),
                    example: meta.location.to_string(),
                });
            }
            Ok(None) | Err(datafusion::object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => {
                return Err(JobError::from_datafusion(
                    "output",
                    output.as_str(),
                    e.into(),
                ));
            }
        }
    }
}

/// Writes the result under `run_url` and returns its row count.
async fn write(frame: DataFrame, run_url: &str, args: &JobArgs) -> Result<u64, JobError> {
    let options = DataFrameWriteOptions::new().with_partition_by(args.partition_by.clone());
    let written = match args.format {
        JobFormat::Parquet => frame.write_parquet(run_url, options, None).await,
        JobFormat::Csv => frame.write_csv(run_url, options, None).await,
        JobFormat::Json => frame.write_json(run_url, options, None).await,
    }
    .map_err(|e| JobError::from_datafusion("output", run_url, e))?;
    let mut rows = 0;
    for batch in &written {
        if let Some(counts) = batch
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        {
            rows += counts.iter().flatten().sum::<u64>();
        }
    }
    Ok(rows)
}

/// The files under `run_prefix`, with paths relative to the output prefix, sorted.
async fn list_files(
    store: &dyn ObjectStore,
    run_prefix: &ObjectPath,
    output_prefix: &ObjectPath,
    output: &str,
) -> Result<Vec<ManifestFile>, JobError> {
    let mut files: Vec<ManifestFile> = store
        .list(Some(run_prefix))
        .map_ok(|meta| ManifestFile {
            path: meta
                .location
                .prefix_match(output_prefix)
                .map(|parts| {
                    parts
                        .map(|p| p.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .unwrap_or_else(|| meta.location.to_string()),
            bytes: meta.size,
        })
        .try_collect()
        .await
        .map_err(|e| JobError::from_datafusion("output", output, e.into()))?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Removes the files of the runs that started before the published one (`run_id`), and returns
/// how many. Run ids begin with their start time, so they sort in time; a run that started later
/// may still be writing, and its files are left for it to publish (or for a later cleanup).
async fn remove_older_runs(
    store: &dyn ObjectStore,
    prefix: &ObjectPath,
    run_id: &str,
) -> Result<usize, datafusion::object_store::Error> {
    let runs = prefix.clone().join(RUNS_PREFIX);
    let older: Vec<ObjectPath> = store
        .list(Some(&runs))
        .try_filter_map(|meta| {
            let run = meta
                .location
                .prefix_match(&runs)
                .and_then(|mut parts| parts.next())
                .map(|part| part.as_ref().to_string());
            let is_older = run.is_some_and(|run| run.as_str() < run_id);
            futures::future::ready(Ok(is_older.then_some(meta.location)))
        })
        .try_collect()
        .await?;
    let count = older.len();
    let locations = futures::stream::iter(older.into_iter().map(Ok)).boxed();
    store
        .delete_stream(locations)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(count)
}

/// Removes the folders that older runs' files left on a local disk (object stores have no
/// folders to remove). Best effort: a folder that is not empty, or gone, is left alone.
fn remove_empty_run_folders(output: &std::path::Path, run_id: &str) {
    let Ok(entries) = std::fs::read_dir(output.join(RUNS_PREFIX)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().as_ref() < run_id {
            remove_empty_folders(&entry.path());
        }
    }
}

fn remove_empty_folders(folder: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                remove_empty_folders(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(folder);
}

/// Parses `--var NAME=VALUE` arguments.
fn parse_vars(arguments: &[String]) -> Result<BTreeMap<String, String>, JobError> {
    let mut variables = BTreeMap::new();
    for argument in arguments {
        let Some((name, value)) = argument.split_once('=') else {
            return Err(JobError::BadVar(argument.clone()));
        };
        let name = name.trim();
        if !is_variable_name(name) {
            return Err(JobError::BadVar(argument.clone()));
        }
        if variables
            .insert(name.to_string(), value.to_string())
            .is_some()
        {
            return Err(JobError::DuplicateVar(name.to_string()));
        }
    }
    Ok(variables)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `sql` with each `${name}` outside strings and comments replaced by the quoted literal of its
/// value. Every variable given must be used, and every one used must be given.
fn substitute(sql: &str, variables: &BTreeMap<String, String>) -> Result<String, JobError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        String,
        QuotedName,
        LineComment,
        BlockComment,
    }
    let mut out = String::with_capacity(sql.len());
    let mut used = BTreeSet::new();
    // The first variable used but not given; a misspelt --var is reported before it, since its
    // message names the variables the job uses.
    let mut missing = None;
    let mut state = State::Code;
    let mut line = 1;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let next = rest[c.len_utf8()..].chars().next();
        if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}');
            let name = end.map(|end| &after[..end]);
            match (state, name) {
                (State::Code, Some(name)) if is_variable_name(name) => {
                    match variables.get(name) {
                        Some(value) => {
                            out.push('\'');
                            out.push_str(&value.replace('\'', "''"));
                            out.push('\'');
                        }
                        None => {
                            missing.get_or_insert((name.to_string(), line));
                        }
                    }
                    used.insert(name.to_string());
                    rest = &after[name.len() + 1..];
                    continue;
                }
                (State::Code, _) => {
                    return Err(JobError::BadVarSyntax {
                        text: after.chars().take_while(|c| !c.is_whitespace()).collect(),
                        line,
                    });
                }
                (State::String, Some(name)) if is_variable_name(name) => {
                    return Err(JobError::VarInString {
                        name: name.to_string(),
                        line,
                    });
                }
                _ => {}
            }
        }
        state = match (state, c, next) {
            (State::Code, '\'', _) => State::String,
            (State::Code, '"', _) => State::QuotedName,
            (State::Code, '-', Some('-')) => State::LineComment,
            (State::Code, '/', Some('*')) => State::BlockComment,
            (State::String, '\'', _) => State::Code,
            (State::QuotedName, '"', _) => State::Code,
            (State::LineComment, '\n', _) => State::Code,
            (State::BlockComment, '*', Some('/')) => {
                out.push_str("*/");
                rest = &rest[2..];
                state = State::Code;
                continue;
            }
            (state, _, _) => state,
        };
        if c == '\n' {
            line += 1;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if let Some(unused) = variables.keys().find(|name| !used.contains(*name)) {
        return Err(JobError::UnknownVar {
            given: unused.clone(),
            used: if used.is_empty() {
                "none".to_string()
            } else {
                used.iter()
                    .map(|n| format!("${{{n}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    if let Some((name, line)) = missing {
        return Err(JobError::MissingVar { name, line });
    }
    Ok(out)
}

/// The job's log on standard error, as text lines or JSON lines.
struct JobLog {
    format: LogFormat,
    job: String,
}

impl JobLog {
    fn info(&self, event: &str, text: String, fields: serde_json::Value) {
        self.write("info", event, &text, fields);
    }

    fn warn(&self, event: &str, text: String) {
        self.write("warn", event, &text, serde_json::json!({}));
    }

    fn failed(&self, error: &JobError, exit_code: u8) {
        match self.format {
            // The CLI's one-line error, so a terminal user sees the same as for a query.
            LogFormat::Text => eprintln!("Error: {error}"),
            LogFormat::Json => self.write(
                "error",
                "failed",
                &error.to_string(),
                serde_json::json!({ "exit_code": exit_code }),
            ),
        }
    }

    fn write(&self, level: &str, event: &str, text: &str, fields: serde_json::Value) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match self.format {
            LogFormat::Text => eprintln!("{time} {level} {}: {text}", self.job),
            LogFormat::Json => {
                let mut line = serde_json::json!({
                    "time": time,
                    "level": level,
                    "job": self.job,
                    "event": event,
                    "message": text,
                });
                if let (Some(line), serde_json::Value::Object(fields)) =
                    (line.as_object_mut(), fields)
                {
                    line.extend(fields);
                }
                eprintln!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_become_quoted_literals() {
        let sql = substitute(
            "SELECT * FROM t WHERE d = DATE ${day} AND n = ${name}",
            &vars(&[
                ("day", "2024-01-31"),
                ("name", "O'Brien'; DROP TABLE t; --"),
            ]),
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE d = DATE '2024-01-31' AND n = 'O''Brien''; DROP TABLE t; --'"
        );
    }

    #[test]
    fn comments_are_left_alone_and_strings_refuse_variables() {
        let sql = substitute(
            "-- ${day} is the run date\nSELECT ${day} /* ${x} */",
            &vars(&[("day", "d")]),
        )
        .unwrap();
        assert_eq!(sql, "-- ${day} is the run date\nSELECT 'd' /* ${x} */");
        let error = substitute("SELECT\n'${day}'", &vars(&[("day", "d")])).unwrap_err();
        assert!(
            matches!(error, JobError::VarInString { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn missing_and_unknown_variables_are_usage_errors() {
        let missing = substitute("SELECT ${day}", &vars(&[])).unwrap_err();
        assert!(missing.to_string().contains("--var day="), "{missing}");
        assert_eq!(missing.exit_code(), 2);
        let unknown =
            substitute("SELECT ${day}", &vars(&[("day", "d"), ("dya", "d")])).unwrap_err();
        assert!(
            unknown.to_string().contains("--var dya is not used"),
            "{unknown}"
        );
        assert!(unknown.to_string().contains("${day}"), "{unknown}");
        assert_eq!(unknown.exit_code(), 2);
        assert!(matches!(
            parse_vars(&["1x=2".into()]),
            Err(JobError::BadVar(_))
        ));
        assert!(matches!(
            parse_vars(&["a=1".into(), "a=2".into()]),
            Err(JobError::DuplicateVar(_))
        ));
    }
}
