//! The command line: options, subcommands and exit codes.
//!
//! `usagelake` with no SQL opens the REPL; `-c`, `-f` or SQL piped on stdin run and exit. Every
//! failure prints one line, `Error: ...`, that says what is wrong and how to fix it, and exits 1
//! (2 for options the parser rejects), so scripts can rely on the code.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::generate::{self, GenOptions};
use crate::lake::{self, TableSource};
use crate::object_stores::{Location, ObjectStoreError, StoreOptions};
use crate::output::{Format, OutputOptions};
use crate::runner::Runner;
use crate::session::{self, SessionOptions};

/// Rows the table format shows unless told otherwise.
const DEFAULT_TABLE_ROWS: usize = 40;

/// SQL over Parquet usage logs, with product and revenue metric functions.
#[derive(Debug, Parser)]
#[command(name = "usagelake", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    query: QueryArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a synthetic usage lake: events, accounts, subscriptions, invoices and features.
    Gen(GenArgs),
    /// Run a batch job: the SQL of JOB.sql with its variables, its last query's result published
    /// to --output all at once (exit codes: 0 done, 1 query or data error, 2 usage error, 3 storage
    /// error after retries)
    Run(crate::job::JobArgs),
}

/// Where the tables come from: the options of every command that reads a lake.
#[derive(Debug, Args)]
pub(crate) struct LakeArgs {
    /// Lake: a folder or an object-store prefix (s3://, gs://, az://, abfss://); each sub-folder of
    /// Parquet files and each .parquet file is a table [default: the sample lake of the
    /// repository, data/sample]
    #[arg(long, value_name = "DIR|URL", env = "USAGELAKE_LAKE")]
    lake: Option<String>,
    /// Add or replace one table: a folder, a .parquet file or a URL (repeatable)
    #[arg(long = "table", value_name = "NAME=PATH")]
    tables: Vec<String>,
    /// Object-store setting for every bucket, such as aws_endpoint=http://127.0.0.1:9000 or
    /// max_retries=2 (repeatable; see the README's object storage section)
    #[arg(long = "store-option", value_name = "KEY=VALUE")]
    store_options: Vec<String>,
}

impl LakeArgs {
    /// The `--store-option` settings.
    pub(crate) fn store_options(&self) -> Result<StoreOptions, ObjectStoreError> {
        StoreOptions::from_arguments(&self.store_options)
    }

    /// Finds the lake's tables, applies `--table`, and registers them all in `ctx`.
    pub(crate) async fn register(
        &self,
        ctx: &datafusion::prelude::SessionContext,
    ) -> Result<(), lake::LakeError> {
        let overrides = self
            .tables
            .iter()
            .map(|t| TableSource::from_argument(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tables = match &self.lake {
            Some(lake) => lake::discover_location(ctx, &Location::parse(lake)?).await?,
            // A lake of --table arguments alone needs no sample lake.
            None if !overrides.is_empty() => Vec::new(),
            None => lake::discover(&sample_lake())?,
        };
        lake::apply_overrides(&mut tables, overrides);
        lake::register_tables(ctx, &tables).await
    }
}

#[derive(Debug, Args)]
struct QueryArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Run SQL and exit (repeatable; runs before -f files)
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,
    /// Run the SQL in FILE and exit (repeatable)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Result format [default: table on a terminal, csv otherwise]
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Show at most N rows of each result; 0 shows all [default: 40 in the table format, all otherwise]
    #[arg(long, value_name = "N")]
    max_rows: Option<usize>,
    /// Memory queries may use before spilling to disk, such as 4g or 512m [default: no limit]
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Threads that execute queries [default: one per core]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Default time zone of the metric functions (session setting usagelake.tz), such as Europe/Istanbul
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
}

#[derive(Debug, Args)]
struct GenArgs {
    /// Folder to write the lake into (created if missing; the generated tables are replaced)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of users
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Number of days of events
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Random seed: the same seed writes the same bytes
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First day of the data (UTC)
    #[arg(long, value_name = "DATE", default_value = "2024-01-01")]
    start: chrono::NaiveDate,
}

/// Errors that end the program.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Session(#[from] session::SessionError),
    #[error(transparent)]
    Lake(#[from] lake::LakeError),
    #[error(transparent)]
    Store(#[from] ObjectStoreError),
    #[error(transparent)]
    Run(#[from] crate::runner::RunError),
    #[error(transparent)]
    Repl(#[from] crate::repl::ReplError),
    #[error(transparent)]
    Generate(#[from] generate::GenerateError),
    #[error("could not read '{path}': {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not read SQL from standard input: {0}")]
    ReadStdin(std::io::Error),
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the program and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's first line says what is wrong; the usage block after it is noise in a log.
            let rendered = e.to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            eprintln!("Error: {first} (usagelake --help lists the options)");
            return ExitCode::from(2);
        }
    };
    let cli = match cli {
        Cli {
            command: Some(Command::Run(job)),
            ..
        } => return crate::job::main(job),
        cli => cli,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Run(e)) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    if let Some(Command::Gen(args)) = cli.command {
        return run_gen(args);
    }
    let args = cli.query;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads.filter(|&n| n > 0) {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.build().map_err(CliError::Runtime)?;
    runtime.block_on(run_queries(args))
}

/// The sample lake of the repository, used when no lake is given.
fn sample_lake() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("sample")
}

async fn run_queries(args: QueryArgs) -> Result<(), CliError> {
    let memory_limit = args
        .memory_limit
        .as_deref()
        .map(session::parse_byte_size)
        .transpose()?;
    let ctx = session::create_context(&SessionOptions {
        memory_limit,
        threads: args.threads,
        tz: args.tz.clone(),
        store_options: args.lake.store_options()?,
    })?;
    args.lake.register(&ctx).await?;

    let interactive =
        args.commands.is_empty() && args.files.is_empty() && std::io::stdin().is_terminal();
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let format = args.format.unwrap_or(if stdout_is_terminal || interactive {
        Format::Table
    } else {
        Format::Csv
    });
    let max_rows = match args.max_rows {
        Some(0) => None,
        Some(n) => Some(n),
        None if format == Format::Table => Some(DEFAULT_TABLE_ROWS),
        None => None,
    };
    let mut runner = Runner {
        ctx,
        output: OutputOptions {
            format,
            max_rows,
            expanded: false,
        },
        timing: false,
        spinner: true,
    };

    if interactive {
        return Ok(crate::repl::run(&mut runner).await?);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.commands.is_empty() && args.files.is_empty() {
        let mut sql = String::new();
        std::io::stdin()
            .read_to_string(&mut sql)
            .map_err(CliError::ReadStdin)?;
        runner.run_script(&sql, &mut out).await?;
    }
    for sql in &args.commands {
        runner.run_script(sql, &mut out).await?;
    }
    for path in &args.files {
        let sql = std::fs::read_to_string(path).map_err(|source| CliError::ReadFile {
            path: path.clone(),
            source,
        })?;
        runner.run_script(&sql, &mut out).await?;
    }
    out.flush().map_err(crate::runner::RunError::from)?;
    Ok(())
}

fn run_gen(args: GenArgs) -> Result<(), CliError> {
    let summary = generate::generate(&GenOptions {
        out: args.out.clone(),
        users: args.users,
        days: args.days,
        seed: args.seed,
        start: args.start,
    })?;
    let seconds = summary.elapsed.as_secs_f64();
    for table in &summary.tables {
        eprintln!(
            "{:<14} {:>12} rows in {} file(s)",
            table.name, table.rows, table.files
        );
    }
    let events = summary
        .tables
        .iter()
        .find(|t| t.name == "events")
        .map_or(0, |t| t.rows);
    eprintln!(
        "wrote {} in {seconds:.2}s ({:.0} events/s)",
        args.out.display(),
        events as f64 / seconds.max(1e-9)
    );
    Ok(())
}
