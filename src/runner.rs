//! Running SQL text and printing its results: the part shared by the REPL, `-c`, `-f` and stdin.
//!
//! Results stream from DataFusion batch by batch into the output writer, so a CSV export of a
//! large result never sits whole in memory.

use std::io::Write;
use std::time::{Duration, Instant};

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::output::{Format, OutputError, OutputOptions, ResultSummary, ResultWriter};
use crate::spinner::Spinner;
use crate::statements::{self, StatementError};

/// Errors running SQL.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}", one_line(.0))]
    Query(#[from] DataFusionError),
    #[error("{message}: the tables are {tables} (\\d lists them)")]
    UnknownTable { message: String, tables: String },
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("could not write the output: {0}")]
    Io(#[from] std::io::Error),
}

impl RunError {
    /// True when the reader of the output went away (`usagelake -c ... | head`): not a failure of
    /// the query, so the program ends quietly.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            Self::Io(e) | Self::Output(OutputError::Io(e)) => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// A DataFusion error and its causes on one line, without a backtrace.
pub fn one_line(error: &DataFusionError) -> String {
    lines_joined(&error.strip_backtrace())
}

/// `text`'s non-empty lines, trimmed and joined by spaces: a multi-line message (such as a
/// store's XML error body) as one log line.
pub fn lines_joined(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A session and how its results are shown.
pub struct Runner {
    /// The session queries run in.
    pub ctx: SessionContext,
    /// Format, row limit and layout of results.
    pub output: OutputOptions,
    /// Print each statement's run time after its result.
    pub timing: bool,
    /// Show a spinner on stderr for long queries.
    pub spinner: bool,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("session", &self.ctx.session_id())
            .field("output", &self.output)
            .field("timing", &self.timing)
            .finish()
    }
}

impl Runner {
    /// Runs every statement of `sql` in order, stopping at the first error.
    pub async fn run_script(&self, sql: &str, out: &mut dyn Write) -> Result<(), RunError> {
        for statement in statements::split(sql)? {
            self.run_statement(&statement, out).await?;
        }
        Ok(())
    }

    /// Runs one statement and prints its result (nothing for statements without columns, such as
    /// `SET` or `CREATE VIEW`).
    pub async fn run_statement(&self, sql: &str, out: &mut dyn Write) -> Result<(), RunError> {
        let started = Instant::now();
        let mut spinner = Spinner::start(self.spinner);
        let plan = match self.ctx.state().create_logical_plan(sql).await {
            Ok(plan) => plan,
            Err(e) => return Err(self.explain_planning_error(e)),
        };
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let mut stream = frame.execute_stream().await?;
        let schema = stream.schema();
        let summary = if schema.fields().is_empty() {
            while let Some(batch) = stream.next().await {
                batch?;
            }
            None
        } else {
            let mut writer = ResultWriter::new(out, schema, &self.output);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                spinner.stop();
                writer.write_batch(&batch)?;
            }
            spinner.stop();
            Some(writer.finish()?)
        };
        spinner.stop();
        if let Some(summary) = summary {
            self.report_truncation(summary);
        }
        if self.timing {
            writeln!(out, "Time: {}", format_elapsed(started.elapsed()))?;
        }
        out.flush()?;
        Ok(())
    }

    /// Adds what the user needs to fix a planning error: the tables there are, for a misspelt one.
    fn explain_planning_error(&self, error: DataFusionError) -> RunError {
        let message = one_line(&error);
        if !(message.contains("table '") && message.contains("not found")) {
            return RunError::Query(error);
        }
        let mut tables: Vec<String> = self
            .ctx
            .catalog_names()
            .into_iter()
            .filter_map(|catalog| self.ctx.catalog(&catalog))
            .flat_map(|catalog| {
                catalog
                    .schema_names()
                    .into_iter()
                    .filter(|schema| schema != "information_schema")
                    .filter_map(|schema| catalog.schema(&schema))
                    .flat_map(|schema| schema.table_names())
                    .collect::<Vec<_>>()
            })
            .collect();
        tables.sort();
        let tables = if tables.is_empty() {
            "none: pass --lake or --table".to_string()
        } else {
            tables.join(", ")
        };
        RunError::UnknownTable { message, tables }
    }

    /// The table and markdown formats say in a footer how many rows were shown; the data formats
    /// cannot, so a cut result is reported on stderr.
    fn report_truncation(&self, summary: ResultSummary) {
        let has_footer = matches!(self.output.format, Format::Table | Format::Markdown);
        if !has_footer && summary.shown_rows < summary.total_rows {
            eprintln!(
                "note: {} rows, {} shown (--max-rows 0 shows all)",
                summary.total_rows, summary.shown_rows
            );
        }
    }
}

/// Elapsed time as seconds with millisecond precision, like `0.012s`.
fn format_elapsed(elapsed: Duration) -> String {
    format!("{:.3}s", elapsed.as_secs_f64())
}
