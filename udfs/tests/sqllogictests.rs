//! The crate's SQL-level tests: runs every `tests/slt/*.slt` file, in the sqllogictest format that
//! DataFusion's own tests use, against a fresh session that has `information_schema`,
//! [`usagelake_udfs::register_all`] and [`usagelake_udfs::physical_optimizer_rules`], as the
//! engine's sessions do.
//!
//! The functions are tested through SQL because that is how they are used: planning-time checks,
//! literal handling, session settings (`SET usagelake.tz`) and `SHOW FUNCTIONS` only show there.
//! A small adapter here rather than `datafusion-sqllogictest`, which would bring DataFusion's whole
//! test stack into the build; values are written as that runner writes them (NULL as `NULL`, an
//! empty string as `(empty)`, the rest through Arrow's display), so files read the same.
//!
//! Arguments that do not start with `-` keep only the files whose name contains one of them, as a
//! test name filter does. The last line is `N passed, N failed` counting files; any failure exits
//! non-zero after printing the file, the record and the difference.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use sqllogictest::{AsyncDB, ColumnType, DBOutput, Runner, strict_column_validator};

/// The column type letters of DataFusion's `.slt` files, checked against each query's header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Boolean,
    DateTime,
    Integer,
    Float,
    Text,
    Timestamp,
    Other,
}

impl ColumnType for Column {
    fn from_char(letter: char) -> Option<Self> {
        Some(match letter {
            'B' => Column::Boolean,
            'D' => Column::DateTime,
            'I' => Column::Integer,
            'R' => Column::Float,
            'T' => Column::Text,
            'P' => Column::Timestamp,
            '?' => Column::Other,
            _ => return None,
        })
    }

    fn to_char(&self) -> char {
        match self {
            Column::Boolean => 'B',
            Column::DateTime => 'D',
            Column::Integer => 'I',
            Column::Float => 'R',
            Column::Text => 'T',
            Column::Timestamp => 'P',
            Column::Other => '?',
        }
    }
}

impl Column {
    fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Boolean => Column::Boolean,
            DataType::Date32 | DataType::Date64 | DataType::Time32(_) | DataType::Time64(_) => {
                Column::DateTime
            }
            DataType::Timestamp(_, _) => Column::Timestamp,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Column::Text,
            DataType::Dictionary(_, values) => Column::of(values),
            data_type if data_type.is_integer() => Column::Integer,
            data_type if data_type.is_floating() || data_type.is_decimal() => Column::Float,
            _ => Column::Other,
        }
    }
}

/// One file's session.
struct Session {
    ctx: SessionContext,
}

impl Session {
    fn new() -> Result<Self> {
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_information_schema(true))
            .with_default_features()
            .with_physical_optimizer_rules(usagelake_udfs::physical_optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        usagelake_udfs::register_all(&ctx)?;
        Ok(Session { ctx })
    }
}

#[async_trait]
impl AsyncDB for Session {
    type Error = DataFusionError;
    type ColumnType = Column;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Column>> {
        let frame = self.ctx.sql(sql).await?;
        let schema = frame.schema().as_arrow().clone();
        let batches = frame.collect().await?;
        // Statements (SET, CREATE ...) have no columns.
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|field| Column::of(field.data_type()))
            .collect();
        let mut rows = Vec::new();
        for batch in &batches {
            append_rows(batch, &mut rows)?;
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "usagelake"
    }
}

/// Appends `batch`'s rows as the strings the `.slt` files hold.
fn append_rows(batch: &RecordBatch, rows: &mut Vec<Vec<String>>) -> Result<()> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        rows.push(
            formatters
                .iter()
                .map(|formatter| match formatter.value(row).to_string() {
                    // An empty cell would vanish between the file's columns.
                    text if text.is_empty() => "(empty)".to_string(),
                    text => text,
                })
                .collect(),
        );
    }
    Ok(())
}

/// The `.slt` files to run, sorted, keeping those whose name contains one of `filters` (all when
/// there are none).
fn test_files(directory: &Path, filters: &[String]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let wanted = filters.is_empty() || filters.iter().any(|filter| name.contains(filter));
        if path.extension().is_some_and(|extension| extension == "slt") && wanted {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[tokio::main]
async fn main() -> ExitCode {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    // cargo passes its own flags (`--nocapture`, ...) too: only the rest are name filters.
    let filters = std::env::args()
        .skip(1)
        .filter(|argument| !argument.starts_with('-'))
        .collect::<Vec<_>>();
    let files = match test_files(&directory, &filters) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("cannot list {}: {error}", directory.display());
            return ExitCode::FAILURE;
        }
    };
    if files.is_empty() && filters.is_empty() {
        eprintln!("no .slt files in {}", directory.display());
        return ExitCode::FAILURE;
    }
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let mut runner = Runner::new(|| async { Session::new() });
        runner.with_column_validator(strict_column_validator);
        match runner.run_file_async(file).await {
            Ok(()) => {
                println!("ok: {}", file.display());
                passed += 1;
            }
            Err(error) => {
                println!("FAILED: {}\n{}", file.display(), error.display(false));
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
