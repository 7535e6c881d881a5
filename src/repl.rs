//! The interactive shell: a line editor with history and completion, statements that span lines
//! until `;`, backslash commands, and Ctrl-C that cancels the running query but keeps the session.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Config, Context, Editor, Helper};

use crate::meta_command::{self, COMMANDS_HELP, MetaCommand, MetaCommandError};
use crate::runner::{RunError, Runner};
use crate::statements;

const PROMPT: &str = "usagelake> ";

/// Errors that end the REPL (errors in statements and commands do not: they are printed).
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    #[error("could not start the line editor: {0}")]
    Editor(#[from] ReadlineError),
}

/// Errors of one input, printed before the next prompt.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error(transparent)]
    Command(#[from] MetaCommandError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("no function named '{0}': \\df lists the functions")]
    UnknownFunction(String),
    #[error("no table named '{0}': \\d lists the tables")]
    UnknownTable(String),
    #[error("could not open '{path}': {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where results go: the screen, or the file of `\o FILE`.
enum Destination {
    Screen(std::io::Stdout),
    File(BufWriter<File>),
}

impl Destination {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Screen(stdout) => stdout,
            Self::File(file) => file,
        }
    }
}

/// The history file: `$XDG_STATE_HOME/usagelake/history`, else `~/.local/state/usagelake/history`.
pub fn history_path() -> Option<PathBuf> {
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/state")))?;
    Some(state_home.join("usagelake").join("history"))
}

/// Runs the REPL until `\q` or Ctrl-D.
pub async fn run(runner: &mut Runner) -> Result<(), ReplError> {
    let config = Config::builder().auto_add_history(false).build();
    let mut editor: Editor<ReplHelper, FileHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(ReplHelper::new(runner).await));
    let history = history_path();
    if let Some(path) = &history {
        if let Some(parent) = path.parent() {
            // No history is better than no REPL: a read-only home still gets a working shell.
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = editor.load_history(path);
    }
    println!(
        "usagelake {}: \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    let mut destination = Destination::Screen(std::io::stdout());
    loop {
        let line = tokio::task::block_in_place(|| editor.readline(PROMPT));
        let input = match line {
            Ok(input) => input,
            // Ctrl-C at the prompt clears the input, as in psql.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let input = input.trim();
        if input.is_empty() {
            continue;
        }
        if matches!(input, "quit" | "exit") {
            break;
        }
        let _ = editor.add_history_entry(input);
        if let Some(path) = &history {
            let _ = editor.append_history(path);
        }
        let outcome = if input.starts_with('\\') {
            match MetaCommand::parse(input) {
                Ok(MetaCommand::Quit) => break,
                Ok(command) => run_command(runner, command, &mut destination).await,
                Err(e) => Err(e.into()),
            }
        } else {
            run_cancellable(runner, input, destination.writer()).await
        };
        if let Err(e) = outcome {
            eprintln!("Error: {e}");
        }
        if let Some(helper) = editor.helper_mut() {
            helper.refresh(runner).await;
        }
    }
    Ok(())
}

/// Runs SQL until it ends or Ctrl-C arrives; on Ctrl-C the query is dropped, which cancels its
/// tasks, and the session carries on.
async fn run_cancellable(
    runner: &Runner,
    sql: &str,
    out: &mut dyn Write,
) -> Result<(), InputError> {
    tokio::select! {
        result = runner.run_script(sql, out) => result.map_err(InputError::from),
        _ = tokio::signal::ctrl_c() => {
            let _ = out.flush();
            eprintln!("Query cancelled.");
            Ok(())
        }
    }
}

async fn run_command(
    runner: &mut Runner,
    command: MetaCommand,
    destination: &mut Destination,
) -> Result<(), InputError> {
    match command {
        MetaCommand::ListTables => {
            run_cancellable(
                runner,
                &meta_command::list_tables_sql(),
                destination.writer(),
            )
            .await?;
        }
        MetaCommand::DescribeTable(name) => {
            if runner.ctx.table_exist(name.as_str()).ok() != Some(true) {
                return Err(InputError::UnknownTable(name));
            }
            let sql = meta_command::describe_table_sql(&name);
            run_cancellable(runner, &sql, destination.writer()).await?;
        }
        MetaCommand::ListFunctions(pattern) => {
            let sql = meta_command::list_functions_sql(pattern.as_deref());
            run_cancellable(runner, &sql, destination.writer()).await?;
        }
        MetaCommand::FunctionHelp(name) => {
            let help = meta_command::function_help(&runner.ctx, &name)
                .await
                .ok_or(InputError::UnknownFunction(name))?;
            println!("{help}");
        }
        MetaCommand::Timing(switch) => {
            runner.timing = switch.unwrap_or(!runner.timing);
            println!("Timing is {}.", on_off(runner.timing));
        }
        MetaCommand::Expanded(switch) => {
            runner.output.expanded = switch.unwrap_or(!runner.output.expanded);
            println!("Expanded display is {}.", on_off(runner.output.expanded));
        }
        MetaCommand::Output(None) => {
            let _ = destination.writer().flush();
            *destination = Destination::Screen(std::io::stdout());
        }
        MetaCommand::Output(Some(path)) => {
            let file = File::create(&path).map_err(|source| InputError::File { path, source })?;
            *destination = Destination::File(BufWriter::new(file));
        }
        MetaCommand::Include(path) => {
            let sql = std::fs::read_to_string(&path)
                .map_err(|source| InputError::File { path, source })?;
            run_cancellable(runner, &sql, destination.writer()).await?;
        }
        MetaCommand::SetFormat(format) => {
            runner.output.format = format;
            println!("Output format is {format}.");
        }
        MetaCommand::SetMaxRows(max_rows) => {
            runner.output.max_rows = max_rows;
            match max_rows {
                Some(n) => println!("Showing at most {n} rows."),
                None => println!("Showing all rows."),
            }
        }
        MetaCommand::Commands => println!("{COMMANDS_HELP}"),
        MetaCommand::Quit => {}
    }
    Ok(())
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

/// Completion of table, column and function names, SQL keywords and backslash commands, and the
/// rule that Enter runs the input only once it holds a whole statement.
struct ReplHelper {
    words: Vec<String>,
}

const COMMAND_WORDS: &[&str] = &[
    "\\d", "\\df", "\\h", "\\timing", "\\x", "\\o", "\\i", "\\pset", "\\?", "\\q",
];

impl ReplHelper {
    async fn new(runner: &Runner) -> Self {
        let mut helper = Self { words: Vec::new() };
        helper.refresh(runner).await;
        helper
    }

    /// Re-reads the names a statement may have changed (a new view, a dropped table).
    async fn refresh(&mut self, runner: &Runner) {
        let state = runner.ctx.state();
        let mut words: Vec<String> = datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
            .iter()
            .map(|k| k.to_string())
            .collect();
        words.extend(state.scalar_functions().keys().cloned());
        words.extend(state.aggregate_functions().keys().cloned());
        words.extend(state.window_functions().keys().cloned());
        words.extend(state.table_functions().keys().cloned());
        words.extend(COMMAND_WORDS.iter().map(|w| w.to_string()));
        if let Ok(frame) = runner
            .ctx
            .sql("SELECT DISTINCT table_name FROM information_schema.columns UNION SELECT DISTINCT column_name FROM information_schema.columns")
            .await
            && let Ok(batches) = frame.collect().await
        {
            for batch in batches {
                if let Ok(names) = datafusion::arrow::compute::cast(
                    batch.column(0),
                    &datafusion::arrow::datatypes::DataType::Utf8,
                ) && let Some(names) = names.as_any().downcast_ref::<datafusion::arrow::array::StringArray>()
                {
                    words.extend(names.iter().flatten().map(str::to_string));
                }
            }
        }
        words.sort();
        words.dedup();
        self.words = words;
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\\' || c == '?'))
            .map_or(0, |i| i + 1);
        let prefix = &line[start..pos];
        if prefix.is_empty() {
            return Ok((start, Vec::new()));
        }
        let lower = prefix.to_ascii_lowercase();
        let upper_case = prefix.chars().all(|c| !c.is_lowercase());
        let candidates = self
            .words
            .iter()
            .filter(|w| w.to_ascii_lowercase().starts_with(&lower))
            .map(|w| {
                // Keywords follow the case the user types in.
                let replacement = if upper_case && w.chars().all(|c| !c.is_lowercase()) {
                    w.clone()
                } else if w.chars().all(|c| !c.is_lowercase()) {
                    w.to_ascii_lowercase()
                } else {
                    w.clone()
                };
                Pair {
                    display: w.clone(),
                    replacement,
                }
            })
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input().trim();
        let complete = input.is_empty()
            || input.starts_with('\\')
            || matches!(input, "quit" | "exit")
            || statements::ends_statement(input);
        Ok(if complete {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ReplHelper {}
