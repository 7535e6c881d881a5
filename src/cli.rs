//! The command line: options, subcommands and exit codes.
//!
//! `usagelake` with no SQL opens the REPL; `-c`, `-f` or SQL piped on stdin run and exit. Every
//! failure prints one line, `Error: ...`, that says what is wrong and how to fix it, and exits 1
//! (2 for options the parser rejects), so scripts can rely on the code.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use datafusion::prelude::SessionContext;

use crate::flight_auth::Users;
use crate::flight_service::ServiceOptions;
use crate::generate::{self, GenOptions};
use crate::lake::{self, TableSource};
use crate::lake_config::LakeConfig;
use crate::object_stores::{Location, ObjectStoreError, StoreOptions};
use crate::output::{Format, OutputOptions};
use crate::runner::Runner;
use crate::serve::{ServeOptions, TlsFiles};
use crate::session::{self, SessionOptions};
use crate::sql_policy::SqlPolicy;

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
    /// Serve the lake and its functions over Arrow Flight SQL (BI tools, notebooks, ADBC, JDBC).
    Serve(Box<ServeArgs>),
    /// Print a users-file line, NAME:HASH, for a password read from standard input.
    HashPassword(HashPasswordArgs),
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
    /// Where the lake is: `--lake`, the sample lake, or the working directory for a lake of
    /// `--table` arguments alone.
    pub(crate) fn location(&self) -> Result<Location, ObjectStoreError> {
        match &self.lake {
            Some(lake) => Location::parse(lake),
            None if !self.tables.is_empty() => Ok(Location::Local(PathBuf::from("."))),
            None => Ok(Location::Local(sample_lake())),
        }
    }

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

/// The lake and the session every subcommand that queries it opens.
#[derive(Debug, Args)]
struct SessionArgs {
    #[command(flatten)]
    lake: LakeArgs,
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
struct QueryArgs {
    #[command(flatten)]
    session: SessionArgs,
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
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// Address to listen on; port 0 picks a free port (the address is printed on stderr)
    /// [default: 127.0.0.1:50051]
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key, clients connect with grpc+tls
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Users file: one NAME:HASH line per user, HASH from `usagelake hash-password`
    #[arg(long, value_name = "FILE", conflicts_with = "user")]
    users: Option<PathBuf>,
    /// The one user allowed in (with --password)
    #[arg(long, value_name = "NAME", requires = "password")]
    user: Option<String>,
    /// The password of --user
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "USAGELAKE_PASSWORD",
        hide_env_values = true,
        requires = "user"
    )]
    password: Option<String>,
    /// Allow DDL, DML, COPY and SET (inside the lake); read-only otherwise
    #[arg(long)]
    allow_writes: bool,
    /// Queries running at once [default: one per core]
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
    /// Queries waiting for a slot before more are refused with RESOURCE_EXHAUSTED [default: 8 per slot]
    #[arg(long, value_name = "N")]
    max_queued: Option<usize>,
    /// The longest a query may run, from planning to its last row, such as 60s or 5m [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = crate::serve::parse_duration)]
    query_timeout: Option<Duration>,
    /// How long a login lasts before the client must log in again [default: 12h]
    #[arg(long, value_name = "DURATION", value_parser = crate::serve::parse_duration)]
    token_lifetime: Option<Duration>,
    /// How long running results may go on after SIGTERM before they are cancelled [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = crate::serve::parse_duration)]
    shutdown_grace: Option<Duration>,
}

#[derive(Debug, Args)]
struct HashPasswordArgs {
    /// The user's name, the first field of the line
    #[arg(long, value_name = "NAME")]
    user: String,
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
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    #[error(transparent)]
    Auth(#[from] crate::flight_auth::AuthError),
    #[error(transparent)]
    LakeConfig(#[from] crate::lake_config::LakeConfigError),
    #[error("usagelake.toml [server] {key}: {problem}")]
    ServerConfig { key: &'static str, problem: String },
    #[error(
        "no password on standard input: pipe it in, as `echo -n secret | usagelake hash-password --user ann`"
    )]
    NoPassword,
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
    match run(cli) {
        Ok(code) => code,
        Err(CliError::Run(e)) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        // A job reports its own failures, with the exit codes schedulers go by.
        Some(Command::Run(job)) => return Ok(crate::job::main(job)),
        Some(Command::Gen(args)) => run_gen(args),
        Some(Command::HashPassword(args)) => run_hash_password(args),
        Some(Command::Serve(args)) => runtime(&args.session)?.block_on(run_serve(*args)),
        None => runtime(&cli.query.session)?.block_on(run_queries(cli.query)),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn runtime(session: &SessionArgs) -> Result<tokio::runtime::Runtime, CliError> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = session.threads.filter(|&n| n > 0) {
        runtime.worker_threads(threads);
    }
    runtime.build().map_err(CliError::Runtime)
}

/// The sample lake of the repository, used when no lake is given.
fn sample_lake() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("sample")
}

/// A session with the lake's tables registered, and the lake's folder; `classic_strings` for
/// a server (see [`SessionOptions::classic_strings`]).
async fn open_session(
    args: &SessionArgs,
    classic_strings: bool,
) -> Result<(SessionContext, Location), CliError> {
    let memory_limit = args
        .memory_limit
        .as_deref()
        .map(session::parse_byte_size)
        .transpose()?;
    let ctx = session::create_context(&SessionOptions {
        memory_limit,
        threads: args.threads,
        tz: args.tz.clone(),
        classic_strings,
        store_options: args.lake.store_options()?,
    })?;
    args.lake.register(&ctx).await?;
    Ok((ctx, args.lake.location()?))
}

/// A `usagelake serve` duration: the command line's, else `usagelake.toml`'s, else `default`.
fn serve_duration(
    given: Option<Duration>,
    key: &'static str,
    configured: Option<&str>,
    default: Duration,
) -> Result<Duration, CliError> {
    match (given, configured) {
        (Some(duration), _) => Ok(duration),
        (None, Some(text)) => crate::serve::parse_duration(text)
            .map_err(|problem| CliError::ServerConfig { key, problem }),
        (None, None) => Ok(default),
    }
}

async fn run_serve(mut args: ServeArgs) -> Result<(), CliError> {
    // The command line wins over the lake's [server] section, which wins over the defaults.
    // A lake in an object store is served by the command line alone.
    let folder = match args.session.lake.location()? {
        Location::Local(folder) => folder,
        Location::Remote(_) => PathBuf::new(),
    };
    let file = match folder.as_os_str().is_empty() {
        true => Default::default(),
        false => LakeConfig::load(&folder)?
            .map(|config| config.server)
            .unwrap_or_default(),
    };
    let in_lake = |path: PathBuf| folder.join(path);
    if args.session.memory_limit.is_none() {
        args.session.memory_limit = file.memory_limit.clone();
    }
    let (ctx, lake) = open_session(&args.session, true).await?;
    let users_file = args
        .users
        .clone()
        .or_else(|| file.users.clone().map(in_lake));
    let users = match (&users_file, &args.user, &args.password) {
        (_, Some(user), Some(password)) => Some(Users::single(user, password)?),
        (Some(path), _, _) => Some(Users::load(path)?),
        _ => None,
    };
    let slots = args
        .max_concurrent
        .or(file.max_concurrent)
        .or(args.session.threads)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    let tls_cert = args
        .tls_cert
        .clone()
        .or_else(|| file.tls_cert.clone().map(in_lake));
    let tls_key = args
        .tls_key
        .clone()
        .or_else(|| file.tls_key.clone().map(in_lake));
    let options = ServeOptions {
        addr: args
            .addr
            .or(file.addr)
            .unwrap_or_else(|| "127.0.0.1:50051".parse().expect("a socket address")),
        tls: tls_cert
            .zip(tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        shutdown_grace: serve_duration(
            args.shutdown_grace,
            "shutdown_grace",
            file.shutdown_grace.as_deref(),
            Duration::from_secs(30),
        )?,
        service: ServiceOptions {
            policy: SqlPolicy::new(args.allow_writes || file.allow_writes == Some(true), &lake),
            users,
            token_lifetime: serve_duration(
                args.token_lifetime,
                "token_lifetime",
                file.token_lifetime.as_deref(),
                Duration::from_secs(12 * 3600),
            )?,
            max_concurrent: slots,
            max_queued: args.max_queued.or(file.max_queued).unwrap_or(8 * slots),
            query_timeout: Some(serve_duration(
                args.query_timeout,
                "query_timeout",
                file.query_timeout.as_deref(),
                Duration::from_secs(60),
            )?),
        },
    };
    Ok(crate::serve::serve(ctx, options).await?)
}

fn run_hash_password(args: HashPasswordArgs) -> Result<(), CliError> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(CliError::ReadStdin)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(CliError::NoPassword);
    }
    println!(
        "{}:{}",
        args.user,
        crate::flight_auth::hash_password(password)?
    );
    Ok(())
}

async fn run_queries(args: QueryArgs) -> Result<(), CliError> {
    let (ctx, _) = open_session(&args.session, false).await?;

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
