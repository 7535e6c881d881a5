//! Printing query results: a box table for people, CSV/TSV/JSON/NDJSON for programs, and
//! Markdown for pasting into documents.
//!
//! Results arrive as a stream of record batches, so [`ResultWriter`] takes them one at a time:
//! the machine formats write each batch as it comes and never hold the whole result, which keeps
//! `usagelake -c '...' --format csv > big.csv` flat in memory. The box table must know every
//! column's width before its first line, so it buffers the rows it shows, and no more: with
//! `max_rows` it keeps counting the rest for the footer without keeping them.
//!
//! Every Arrow type has to print in every format, because a query can produce any of them
//! (`array_agg` gives lists, `named_struct` structs, `make_map` maps, `arrow_cast` anything).
//! Text formats go through Arrow's `ArrayFormatter`, which formats every type, nested ones
//! included (Arrow's own CSV writer refuses nested types). JSON goes through Arrow's JSON writer,
//! which keeps numbers as numbers and lists and structs as JSON arrays and objects; the few
//! shapes it refuses are patched in by [`JsonGaps`].

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::Arc;

use clap::ValueEnum;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, FieldRef, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{
    ArrayWriter, LineDelimitedWriter, NullableEncoder, make_encoder,
};
use datafusion::arrow::json::{Encoder, EncoderFactory, EncoderOptions, WriterBuilder};
use datafusion::arrow::util::display::{ArrayFormatter, DurationFormat, FormatOptions};

/// How a result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Box table with column types, for reading at a terminal.
    Table,
    /// Comma-separated values with a header line (RFC 4180).
    Csv,
    /// Tab-separated values with a header line.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// GitHub-flavoured Markdown table.
    #[value(alias = "md")]
    Markdown,
}

impl Format {
    /// The canonical name, the one clap shows and accepts; `FromStr` and `Display` use it too so
    /// the CLI flag, the REPL command and messages always agree.
    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Markdown => "markdown",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Reuse clap's matching so that aliases ("md") are declared once, on the enum.
        <Format as ValueEnum>::from_str(s.trim(), true).map_err(|_| {
            let names: Vec<&str> = Format::value_variants().iter().map(|f| f.name()).collect();
            format!(
                "unknown format '{s}'; expected one of: {} (or md)",
                names.join(", ")
            )
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the caller chose for printing one result.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    pub format: Format,
    /// Rows printed at most; `None` prints every row.
    pub max_rows: Option<usize>,
    /// One record per block, `name | value` lines (psql's `\x`); only the table format has it.
    pub expanded: bool,
}

/// Why a result could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Writing failed, e.g. a closed pipe (`usagelake ... | head`): callers look at the kind.
    #[error("cannot write the result: {0}")]
    Io(#[from] io::Error),
    /// A value could not be encoded.
    #[error("cannot format the result: {0}")]
    Arrow(ArrowError),
}

impl From<ArrowError> for OutputError {
    /// The JSON writer reports write failures as Arrow errors; they become `Io` again so that a
    /// broken pipe looks the same in every format.
    fn from(error: ArrowError) -> Self {
        match error {
            ArrowError::IoError(_, error) => Self::Io(error),
            other => Self::Arrow(other),
        }
    }
}

impl From<csv::Error> for OutputError {
    fn from(error: csv::Error) -> Self {
        match error.into_kind() {
            csv::ErrorKind::Io(error) => Self::Io(error),
            // Only reading or ragged records fail otherwise, and every record here has one
            // field per column; keep whatever it says rather than lose it.
            other => Self::Io(io::Error::other(format!("CSV writer: {other:?}"))),
        }
    }
}

/// How many rows the query produced and how many of them were printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultSummary {
    pub total_rows: usize,
    pub shown_rows: usize,
}

/// Streams one query result to a writer, batch by batch.
pub struct ResultWriter<'a> {
    schema: SchemaRef,
    format: Format,
    max_rows: Option<usize>,
    total_rows: usize,
    shown_rows: usize,
    /// Headers are written on the first batch or at `finish`, not in `new`, which cannot fail.
    started: bool,
    sink: Sink<'a>,
}

/// The per-format state of a [`ResultWriter`].
enum Sink<'a> {
    Delimited(csv::Writer<&'a mut dyn Write>),
    Json(ArrayWriter<&'a mut dyn Write>),
    Ndjson(LineDelimitedWriter<&'a mut dyn Write>),
    Markdown(&'a mut dyn Write),
    /// The shown rows, already formatted: the table needs all of them for its column widths.
    Table {
        out: &'a mut dyn Write,
        rows: Vec<Vec<String>>,
        expanded: bool,
    },
}

impl fmt::Debug for ResultWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultWriter")
            .field("format", &self.format)
            .field("max_rows", &self.max_rows)
            .field("total_rows", &self.total_rows)
            .field("shown_rows", &self.shown_rows)
            .finish_non_exhaustive()
    }
}

/// Printed for a NULL cell in the formats people read, and for NULLs nested in lists, structs
/// and maps in every text format (an empty string there would be ambiguous: `[1, , 3]`).
const NULL_TEXT: &str = "NULL";

impl<'a> ResultWriter<'a> {
    pub fn new(out: &'a mut dyn Write, schema: SchemaRef, options: &OutputOptions) -> Self {
        let json = || {
            // Explicit nulls: every object has every column, as a program reading it expects.
            WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_encoder_factory(Arc::new(JsonGaps))
        };
        let sink = match options.format {
            Format::Table => Sink::Table {
                out,
                rows: Vec::new(),
                expanded: options.expanded,
            },
            Format::Csv => Sink::Delimited(csv::Writer::from_writer(out)),
            Format::Tsv => {
                Sink::Delimited(csv::WriterBuilder::new().delimiter(b'\t').from_writer(out))
            }
            Format::Json => Sink::Json(json().build(out)),
            Format::Ndjson => Sink::Ndjson(json().build(out)),
            Format::Markdown => Sink::Markdown(out),
        };
        Self {
            schema,
            format: options.format,
            max_rows: options.max_rows,
            total_rows: 0,
            shown_rows: 0,
            started: false,
            sink,
        }
    }

    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), OutputError> {
        self.start()?;
        let rows = batch.num_rows();
        self.total_rows += rows;
        let room = self
            .max_rows
            .map_or(rows, |max| max.saturating_sub(self.shown_rows));
        let take = rows.min(room);
        if take == 0 {
            return Ok(());
        }
        self.shown_rows += take;
        let batch = batch.slice(0, take);
        match &mut self.sink {
            Sink::Delimited(writer) => {
                let options = FormatOptions::new().with_null(NULL_TEXT);
                for_each_row(&batch, &options, |cells| {
                    writer.write_record(cells.iter().map(|cell| cell.unwrap_or("")))?;
                    Ok(())
                })?;
                // Also flushes `out`: each batch is handed on at once, so a slow query's rows
                // show up as they come even through a buffered writer.
                writer.flush()?;
            }
            Sink::Json(writer) => {
                writer.write(&batch)?;
                writer.get_mut().flush()?;
            }
            Sink::Ndjson(writer) => {
                writer.write(&batch)?;
                writer.get_mut().flush()?;
            }
            Sink::Markdown(out) => {
                let mut text = String::new();
                for_each_row(&batch, &human_format_options(), |cells| {
                    text.push('|');
                    for cell in cells {
                        text.push(' ');
                        text.push_str(&markdown_escape(cell.unwrap_or(NULL_TEXT)));
                        text.push_str(" |");
                    }
                    text.push('\n');
                    Ok(())
                })?;
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Sink::Table { rows, .. } => {
                for_each_row(&batch, &human_format_options(), |cells| {
                    rows.push(
                        cells
                            .iter()
                            .map(|cell| cell.unwrap_or(NULL_TEXT).to_owned())
                            .collect(),
                    );
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<ResultSummary, OutputError> {
        self.start()?;
        let summary = ResultSummary {
            total_rows: self.total_rows,
            shown_rows: self.shown_rows,
        };
        let out = match self.sink {
            Sink::Delimited(writer) => writer.into_inner().map_err(|error| error.into_error())?,
            Sink::Json(mut writer) => {
                writer.finish()?;
                let out = writer.into_inner();
                // The array is one line; end it so a shell prompt does not follow on the same line.
                out.write_all(b"\n")?;
                out
            }
            Sink::Ndjson(mut writer) => {
                writer.finish()?;
                writer.into_inner()
            }
            Sink::Markdown(out) => {
                if summary.shown_rows < summary.total_rows {
                    // The blank line ends the table: a plain line right after it would be
                    // read as one more row.
                    writeln!(out, "\n_{}_", footer(summary))?;
                }
                out
            }
            Sink::Table {
                out,
                rows,
                expanded,
            } => {
                if expanded {
                    write_expanded(out, &self.schema, &rows)?;
                } else if !self.schema.fields().is_empty() {
                    writeln!(out, "{}", render_table(&self.schema, rows))?;
                }
                writeln!(out, "{}", footer(summary))?;
                out
            }
        };
        out.flush()?;
        Ok(summary)
    }

    /// Writes the header line of the formats that have one, once.
    fn start(&mut self) -> Result<(), OutputError> {
        if std::mem::replace(&mut self.started, true) {
            return Ok(());
        }
        let fields = self.schema.fields();
        // A statement without columns (DDL) has no header; an empty record would print `""`.
        if fields.is_empty() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Delimited(writer) => {
                writer.write_record(fields.iter().map(|field| field.name()))?;
            }
            Sink::Markdown(out) => {
                let mut text = String::from("|");
                for field in fields {
                    text.push_str(&format!(" {} |", markdown_escape(field.name())));
                }
                text.push_str("\n|");
                for field in fields {
                    let rule = if is_numeric(field.data_type()) {
                        "---:"
                    } else {
                        "---"
                    };
                    text.push_str(rule);
                    text.push('|');
                }
                text.push('\n');
                out.write_all(text.as_bytes())?;
            }
            Sink::Json(_) | Sink::Ndjson(_) | Sink::Table { .. } => {}
        }
        Ok(())
    }
}

/// Formatting for the formats people read: durations as `1 days 2 hours` rather than ISO 8601's
/// `P1DT7200S`, which the machine formats keep because programs parse it.
fn human_format_options() -> FormatOptions<'static> {
    FormatOptions::new()
        .with_null(NULL_TEXT)
        .with_duration_format(DurationFormat::Pretty)
}

/// Calls `row_fn` with each row's cells as text, `None` for a NULL cell.
///
/// NULLs are found through the logical null mask, so that a dictionary pointing at a NULL value,
/// a run-end encoded NULL and the `Null` type all count as NULL, not as their formatted text.
fn for_each_row(
    batch: &RecordBatch,
    options: &FormatOptions<'_>,
    mut row_fn: impl FnMut(&[Option<&str>]) -> Result<(), OutputError>,
) -> Result<(), OutputError> {
    let columns = batch.columns();
    let formatters = columns
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), options))
        .collect::<Result<Vec<_>, _>>()?;
    let nulls: Vec<_> = columns
        .iter()
        .map(|column| column.logical_nulls())
        .collect();
    let mut texts = vec![String::new(); columns.len()];
    for row in 0..batch.num_rows() {
        for ((text, formatter), nulls) in texts.iter_mut().zip(&formatters).zip(&nulls) {
            text.clear();
            if nulls.as_ref().is_none_or(|nulls| nulls.is_valid(row)) {
                formatter.value(row).write(text)?;
            }
        }
        let cells: Vec<Option<&str>> = texts
            .iter()
            .zip(&nulls)
            .map(|(text, nulls)| match nulls {
                Some(nulls) if nulls.is_null(row) => None,
                _ => Some(text.as_str()),
            })
            .collect();
        row_fn(&cells)?;
    }
    Ok(())
}

fn render_table(schema: &SchemaRef, rows: Vec<Vec<String>>) -> Table {
    let fields = schema.fields();
    let mut table = Table::new();
    // No terminal lookups: the same result prints the same way in a pipe, a test and a terminal.
    table.load_preset(UTF8_FULL_CONDENSED).force_no_tty();
    table.set_header(fields.iter().map(|field| {
        Cell::new(format!(
            "{}\n{}",
            field.name(),
            type_name(field.data_type())
        ))
        .set_alignment(CellAlignment::Center)
    }));
    table.add_rows(rows);
    for (column, field) in table.column_iter_mut().zip(fields.iter()) {
        if is_numeric(field.data_type()) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// psql's expanded layout: a `-[ RECORD n ]` rule over `name | value` lines, the rule as wide as
/// the widest line so that the records line up.
fn write_expanded(
    out: &mut dyn Write,
    schema: &SchemaRef,
    rows: &[Vec<String>],
) -> Result<(), OutputError> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let name_width = names.iter().map(|name| text_width(name)).max().unwrap_or(0);
    let value_width = rows
        .iter()
        .flatten()
        .flat_map(|value| value.split('\n'))
        .map(text_width)
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (number, row) in rows.iter().enumerate() {
        let title = format!("-[ RECORD {} ]", number + 1);
        let rule_width = (name_width + 3 + value_width).max(text_width(&title));
        text.push_str(&format!("{title:-<rule_width$}\n"));
        for (name, value) in names.iter().zip(row) {
            // A multi-line value continues under its first line, the name column left blank.
            let mut lines = value.split('\n');
            let first = lines.next().unwrap_or_default();
            text.push_str(&format!("{} | {first}\n", pad(name, name_width)));
            for line in lines {
                text.push_str(&format!("{} | {line}\n", " ".repeat(name_width)));
            }
        }
    }
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Width in characters: close enough to terminal columns for names and values, and free of a
/// Unicode width table.
fn text_width(text: &str) -> usize {
    text.chars().count()
}

fn pad(text: &str, width: usize) -> String {
    format!(
        "{text}{}",
        " ".repeat(width.saturating_sub(text_width(text)))
    )
}

/// `3 rows`, `1 row`, or `1,000 rows (40 shown)` when `max_rows` cut the result.
fn footer(summary: ResultSummary) -> String {
    let noun = if summary.total_rows == 1 {
        "row"
    } else {
        "rows"
    };
    let total = thousands(summary.total_rows);
    if summary.shown_rows < summary.total_rows {
        format!("{total} {noun} ({} shown)", thousands(summary.shown_rows))
    } else {
        format!("{total} {noun}")
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A Markdown cell is one line and `|` ends it.
fn markdown_escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
}

/// Numbers are right-aligned, so that their digits line up.
fn is_numeric(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, values) => is_numeric(values),
        DataType::RunEndEncoded(_, values) => is_numeric(values.data_type()),
        other => other.is_numeric(),
    }
}

/// The short type name under a table column's name: SQL-ish where SQL has a name (`varchar`,
/// `decimal(12,2)`, `date`), Arrow's where the width matters (`int32`, `float64`), and encodings
/// (dictionary, run-end) left out because they do not change the values.
fn type_name(data_type: &DataType) -> String {
    let unit = |unit: &TimeUnit| match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    match data_type {
        DataType::Null => "null".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::FixedSizeBinary(size) => format!("binary({size})"),
        DataType::Decimal32(precision, scale)
        | DataType::Decimal64(precision, scale)
        | DataType::Decimal128(precision, scale)
        | DataType::Decimal256(precision, scale) => format!("decimal({precision},{scale})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(u) | DataType::Time64(u) => format!("time[{}]", unit(u)),
        DataType::Timestamp(u, None) => format!("timestamp[{}]", unit(u)),
        DataType::Timestamp(u, Some(zone)) => format!("timestamp[{}, {zone}]", unit(u)),
        DataType::Duration(u) => format!("duration[{}]", unit(u)),
        DataType::Interval(_) => "interval".into(),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item) => format!("list<{}>", type_name(item.data_type())),
        DataType::FixedSizeList(item, size) => {
            format!("list<{}>[{size}]", type_name(item.data_type()))
        }
        DataType::Struct(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|field| format!("{}: {}", field.name(), type_name(field.data_type())))
                .collect();
            format!("struct<{}>", fields.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(key_value) if key_value.len() == 2 => format!(
                "map<{}, {}>",
                type_name(key_value[0].data_type()),
                type_name(key_value[1].data_type())
            ),
            _ => "map".into(),
        },
        DataType::Union(fields, _) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(_, field)| type_name(field.data_type()))
                .collect();
            format!("union<{}>", fields.join(", "))
        }
        DataType::Dictionary(_, values) => type_name(values),
        DataType::RunEndEncoded(_, values) => type_name(values.data_type()),
    }
}

/// Fills the gaps of Arrow's JSON writer, which otherwise encodes every type:
/// - a map whose keys are not strings (`make_map([1, 2], ...)`) is refused; it becomes an
///   object with the keys as text, as JSON object keys must be;
/// - a dictionary whose values hold a NULL would print that slot's bytes instead of `null`;
/// - a union is refused; it becomes its text.
#[derive(Debug)]
struct JsonGaps;

impl EncoderFactory for JsonGaps {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        // Dispatch on the array, not the field: for a dictionary's values and a map's entries
        // the writer passes the outer field along with the inner array.
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Map(_, _) => {
                let map = array.as_map();
                if matches!(
                    map.keys().data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Ok(None);
                }
                Box::new(TextKeyMapEncoder {
                    offsets: map.offsets().clone(),
                    keys: ArrayFormatter::try_new(map.keys().as_ref(), &FormatOptions::new())?,
                    values: make_encoder(field, map.values().as_ref(), options)?,
                })
            }
            DataType::Dictionary(_, _) => {
                let dictionary = array.as_any_dictionary();
                if dictionary.values().logical_null_count() == 0 {
                    return Ok(None);
                }
                Box::new(NullAwareDictionaryEncoder {
                    keys: dictionary.normalized_keys(),
                    values: make_encoder(field, dictionary.values().as_ref(), options)?,
                })
            }
            DataType::Union(_, _) => {
                let options = FormatOptions::new().with_null(NULL_TEXT);
                Box::new(TextEncoder(ArrayFormatter::try_new(array, &options)?))
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.logical_nulls())))
    }
}

struct TextKeyMapEncoder<'a> {
    offsets: OffsetBuffer<i32>,
    keys: ArrayFormatter<'a>,
    values: NullableEncoder<'a>,
}

impl Encoder for TextKeyMapEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let start = self.offsets[idx] as usize;
        let end = self.offsets[idx + 1] as usize;
        out.push(b'{');
        for entry in start..end {
            if entry > start {
                out.push(b',');
            }
            push_json_string(&self.keys.value(entry).to_string(), out);
            out.push(b':');
            if self.values.is_null(entry) {
                out.extend_from_slice(b"null");
            } else {
                self.values.encode(entry, out);
            }
        }
        out.push(b'}');
    }
}

struct NullAwareDictionaryEncoder<'a> {
    keys: Vec<usize>,
    values: NullableEncoder<'a>,
}

impl Encoder for NullAwareDictionaryEncoder<'_> {
    /// Only called for rows whose logical value is not NULL, so the value slot is valid.
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        self.values.encode(self.keys[idx], out);
    }
}

struct TextEncoder<'a>(ArrayFormatter<'a>);

impl Encoder for TextEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        push_json_string(&self.0.value(idx).to_string(), out);
    }
}

fn push_json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, ListBuilder,
        StringArray, StringBuilder, StructArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::buffer::NullBuffer;
    use datafusion::arrow::datatypes::{Field, Fields, Schema};

    fn options(format: Format) -> OutputOptions {
        OutputOptions {
            format,
            max_rows: None,
            expanded: false,
        }
    }

    /// Prints `batches` as one result and returns the text and the summary.
    fn render(
        options: &OutputOptions,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> (String, ResultSummary) {
        let mut out = Vec::new();
        let mut writer = ResultWriter::new(&mut out, schema, options);
        for batch in batches {
            writer.write_batch(batch).unwrap();
        }
        let summary = writer.finish().unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    fn print(options: &OutputOptions, batch: &RecordBatch) -> String {
        render(options, batch.schema(), std::slice::from_ref(batch)).0
    }

    /// Three rows covering the common column kinds, with NULLs at the top level and nested.
    fn mixed_batch() -> RecordBatch {
        let mut tags = ListBuilder::new(StringBuilder::new());
        tags.values().append_value("a");
        tags.values().append_value("b");
        tags.append(true);
        tags.append(false);
        tags.values().append_value("x");
        tags.values().append_null();
        tags.append(true);
        let info_fields = Fields::from(vec![
            Field::new("k", DataType::Int32, true),
            Field::new("v", DataType::Utf8, true),
        ]);
        let info = StructArray::try_new(
            info_fields,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(2), None])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("p"), None, Some("r")])),
            ],
            Some(NullBuffer::from(vec![true, true, false])),
        )
        .unwrap();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(vec![1, 22, -333]))),
            ("score", Arc::new(Float64Array::from(vec![1.5, -0.25, 3.0]))),
            (
                "price",
                Arc::new(
                    Decimal128Array::from(vec![123456, -5, 100_000_000_000])
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("alpha"), None, Some("héllo")])),
            ),
            (
                "day",
                Arc::new(Date32Array::from(vec![Some(19723), Some(19724), None])),
            ),
            (
                "at",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1_704_067_200_000_000),
                        None,
                        Some(1_704_153_601_500_000),
                    ])
                    .with_timezone("UTC"),
                ),
            ),
            ("tags", Arc::new(tags.finish())),
            ("info", Arc::new(info)),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    /// Two rows of every other type a query can produce; the second row is mostly NULL.
    fn exotic_batch() -> RecordBatch {
        use datafusion::arrow::array::{
            BinaryArray, BinaryViewArray, BooleanArray, Decimal256Array, DictionaryArray,
            DurationMillisecondArray, FixedSizeBinaryArray, FixedSizeListArray, Int32Builder,
            IntervalDayTimeArray, IntervalMonthDayNanoArray, IntervalYearMonthArray,
            LargeBinaryArray, LargeListArray, LargeStringArray, MapBuilder, NullArray, RunArray,
            StringViewArray, Time64MicrosecondArray, TimestampMillisecondArray, UnionArray,
        };
        use datafusion::arrow::datatypes::{
            Int32Type, IntervalDayTime, IntervalMonthDayNano, UnionFields, i256,
        };
        let dictionary: DictionaryArray<Int32Type> = DictionaryArray::new(
            Int32Array::from(vec![Some(0), Some(1)]),
            Arc::new(StringArray::from(vec![Some("red"), None])),
        );
        let mut text_map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        text_map.keys().append_value("x");
        text_map.values().append_value(1);
        text_map.keys().append_value("y");
        text_map.values().append_null();
        text_map.append(true).unwrap();
        text_map.append(false).unwrap();
        let mut int_map = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        int_map.keys().append_value(7);
        int_map.values().append_value("seven \"7\"");
        int_map.append(true).unwrap();
        int_map.append(false).unwrap();
        let union = UnionArray::try_new(
            UnionFields::try_new(
                vec![0, 1],
                vec![
                    Field::new("i", DataType::Int32, true),
                    Field::new("s", DataType::Utf8, true),
                ],
            )
            .unwrap(),
            vec![0, 1].into(),
            None,
            vec![
                Arc::new(Int32Array::from(vec![Some(5), None])) as ArrayRef,
                Arc::new(StringArray::from(vec![None, Some("u")])),
            ],
        )
        .unwrap();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("flag", Arc::new(BooleanArray::from(vec![Some(true), None]))),
            ("nothing", Arc::new(NullArray::new(2))),
            (
                "big",
                Arc::new(LargeStringArray::from(vec![Some("large"), None])),
            ),
            (
                "view",
                Arc::new(StringViewArray::from(vec![
                    Some("a view string longer than twelve"),
                    None,
                ])),
            ),
            (
                "bytes",
                Arc::new(BinaryArray::from(vec![Some(b"\x01\xff".as_slice()), None])),
            ),
            (
                "large_bytes",
                Arc::new(LargeBinaryArray::from(vec![Some(b"ab".as_slice()), None])),
            ),
            (
                "fixed_bytes",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        vec![Some(b"xyz".as_slice()), None].into_iter(),
                        3,
                    )
                    .unwrap(),
                ),
            ),
            (
                "bytes_view",
                Arc::new(BinaryViewArray::from(vec![Some(b"hi".as_slice()), None])),
            ),
            (
                "wide",
                Arc::new(
                    Decimal256Array::from(vec![Some(i256::from_i128(-12345)), None])
                        .with_precision_and_scale(40, 3)
                        .unwrap(),
                ),
            ),
            (
                "local",
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_704_067_200_123),
                    None,
                ])),
            ),
            (
                "zoned",
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_704_067_200_123), None])
                        .with_timezone("Europe/Paris"),
                ),
            ),
            (
                "clock",
                Arc::new(Time64MicrosecondArray::from(vec![
                    Some(3_723_000_001),
                    None,
                ])),
            ),
            (
                "ym",
                Arc::new(IntervalYearMonthArray::from(vec![Some(14), None])),
            ),
            (
                "dt",
                Arc::new(IntervalDayTimeArray::from(vec![
                    Some(IntervalDayTime::new(3, 4_000)),
                    None,
                ])),
            ),
            (
                "mdn",
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    Some(IntervalMonthDayNano::new(1, 2, 3_000_000_000)),
                    None,
                ])),
            ),
            (
                "took",
                Arc::new(DurationMillisecondArray::from(vec![Some(93_784_005), None])),
            ),
            (
                "large_list",
                Arc::new(LargeListArray::from_iter_primitive::<Int32Type, _, _>(
                    vec![Some(vec![Some(1), None]), None],
                )),
            ),
            (
                "fixed_list",
                Arc::new(FixedSizeListArray::from_iter_primitive::<Int32Type, _, _>(
                    vec![Some(vec![Some(1), Some(2)]), None],
                    2,
                )),
            ),
            ("text_map", Arc::new(text_map.finish())),
            ("int_map", Arc::new(int_map.finish())),
            ("dict", Arc::new(dictionary)),
            (
                "runs",
                Arc::new(
                    RunArray::<Int32Type>::try_new(
                        &Int32Array::from(vec![1, 2]),
                        &StringArray::from(vec![Some("run"), None]),
                    )
                    .unwrap(),
                ),
            ),
            ("either", Arc::new(union)),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    /// Joins expected output lines, each ending in a newline as printed.
    fn lines(lines: &[&str]) -> String {
        lines.iter().map(|line| format!("{line}\n")).collect()
    }

    #[test]
    fn format_names_parse_case_insensitively_with_md_alias() {
        for format in Format::value_variants() {
            assert_eq!(format.to_string().parse::<Format>(), Ok(*format));
        }
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!(" NDJSON ".parse::<Format>(), Ok(Format::Ndjson));
        assert_eq!(
            "xml".parse::<Format>(),
            Err("unknown format 'xml'; expected one of: table, csv, tsv, json, ndjson, markdown (or md)".to_owned())
        );
    }

    #[test]
    fn table_has_typed_header_right_aligned_numbers_null_and_row_count() {
        assert_eq!(
            print(&options(Format::Table), &mixed_batch()),
            lines(&[
                "┌───────┬─────────┬───────────────┬─────────┬────────────┬──────────────────────────┬───────────────┬──────────────────────────────┐",
                "│   id  ┆  score  ┆     price     ┆   name  ┆     day    ┆            at            ┆      tags     ┆             info             │",
                "│ int64 ┆ float64 ┆ decimal(12,2) ┆ varchar ┆    date    ┆    timestamp[us, UTC]    ┆ list<varchar> ┆ struct<k: int32, v: varchar> │",
                "╞═══════╪═════════╪═══════════════╪═════════╪════════════╪══════════════════════════╪═══════════════╪══════════════════════════════╡",
                "│     1 ┆     1.5 ┆       1234.56 ┆ alpha   ┆ 2024-01-01 ┆ 2024-01-01T00:00:00Z     ┆ [a, b]        ┆ {k: 1, v: p}                 │",
                "│    22 ┆   -0.25 ┆         -0.05 ┆ NULL    ┆ 2024-01-02 ┆ NULL                     ┆ NULL          ┆ {k: 2, v: NULL}              │",
                "│  -333 ┆     3.0 ┆ 1000000000.00 ┆ héllo   ┆ NULL       ┆ 2024-01-02T00:00:01.500Z ┆ [x, NULL]     ┆ NULL                         │",
                "└───────┴─────────┴───────────────┴─────────┴────────────┴──────────────────────────┴───────────────┴──────────────────────────────┘",
                "3 rows",
            ])
        );
    }

    #[test]
    fn csv_has_header_line_and_empty_fields_for_null() {
        assert_eq!(
            print(&options(Format::Csv), &mixed_batch()),
            lines(&[
                "id,score,price,name,day,at,tags,info",
                r#"1,1.5,1234.56,alpha,2024-01-01,2024-01-01T00:00:00Z,"[a, b]","{k: 1, v: p}""#,
                r#"22,-0.25,-0.05,,2024-01-02,,,"{k: 2, v: NULL}""#,
                r#"-333,3.0,1000000000.00,héllo,,2024-01-02T00:00:01.500Z,"[x, NULL]","#,
            ])
        );
    }

    #[test]
    fn tsv_separates_fields_with_tabs() {
        assert_eq!(
            print(&options(Format::Tsv), &mixed_batch()),
            lines(&[
                "id\tscore\tprice\tname\tday\tat\ttags\tinfo",
                "1\t1.5\t1234.56\talpha\t2024-01-01\t2024-01-01T00:00:00Z\t[a, b]\t{k: 1, v: p}",
                "22\t-0.25\t-0.05\t\t2024-01-02\t\t\t{k: 2, v: NULL}",
                "-333\t3.0\t1000000000.00\théllo\t\t2024-01-02T00:00:01.500Z\t[x, NULL]\t",
            ])
        );
    }

    #[test]
    fn json_is_one_array_of_objects_with_numbers_nesting_and_explicit_nulls() {
        assert_eq!(
            print(&options(Format::Json), &mixed_batch()),
            [
                r#"[{"id":1,"score":1.5,"price":1234.56,"name":"alpha","day":"2024-01-01","at":"2024-01-01T00:00:00Z","tags":["a","b"],"info":{"k":1,"v":"p"}},"#,
                r#"{"id":22,"score":-0.25,"price":-0.05,"name":null,"day":"2024-01-02","at":null,"tags":null,"info":{"k":2,"v":null}},"#,
                r#"{"id":-333,"score":3.0,"price":1000000000.00,"name":"héllo","day":null,"at":"2024-01-02T00:00:01.500Z","tags":["x",null],"info":null}]"#,
                "\n",
            ]
            .concat()
        );
    }

    #[test]
    fn ndjson_is_one_object_per_line() {
        assert_eq!(
            print(&options(Format::Ndjson), &mixed_batch()),
            lines(&[
                r#"{"id":1,"score":1.5,"price":1234.56,"name":"alpha","day":"2024-01-01","at":"2024-01-01T00:00:00Z","tags":["a","b"],"info":{"k":1,"v":"p"}}"#,
                r#"{"id":22,"score":-0.25,"price":-0.05,"name":null,"day":"2024-01-02","at":null,"tags":null,"info":{"k":2,"v":null}}"#,
                r#"{"id":-333,"score":3.0,"price":1000000000.00,"name":"héllo","day":null,"at":"2024-01-02T00:00:01.500Z","tags":["x",null],"info":null}"#,
            ])
        );
    }

    #[test]
    fn markdown_right_aligns_numbers_and_has_no_footer_when_complete() {
        assert_eq!(
            print(&options(Format::Markdown), &mixed_batch()),
            lines(&[
                "| id | score | price | name | day | at | tags | info |",
                "|---:|---:|---:|---|---|---|---|---|",
                "| 1 | 1.5 | 1234.56 | alpha | 2024-01-01 | 2024-01-01T00:00:00Z | [a, b] | {k: 1, v: p} |",
                "| 22 | -0.25 | -0.05 | NULL | 2024-01-02 | NULL | NULL | {k: 2, v: NULL} |",
                "| -333 | 3.0 | 1000000000.00 | héllo | NULL | 2024-01-02T00:00:01.500Z | [x, NULL] | NULL |",
            ])
        );
    }

    fn text_batch(values: &[Option<&str>]) -> RecordBatch {
        let ids: Vec<i32> = (1..=values.len() as i32).collect();
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int32Array::from(ids)) as ArrayRef),
            ("note", Arc::new(StringArray::from(values.to_vec()))),
        ])
        .unwrap()
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let batch = text_batch(&[
            Some("a,b"),
            Some(r#"say "hi""#),
            Some("two\nlines"),
            Some(""),
        ]);
        assert_eq!(
            print(&options(Format::Csv), &batch),
            "id,note\n1,\"a,b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,\n"
        );
    }

    #[test]
    fn markdown_escapes_pipes_and_newlines_and_notes_truncation() {
        let batch = text_batch(&[Some("a|b"), Some("two\nlines\r\nthree"), None]);
        let options = OutputOptions {
            max_rows: Some(2),
            ..options(Format::Markdown)
        };
        assert_eq!(
            print(&options, &batch),
            lines(&[
                "| id | note |",
                "|---:|---|",
                r"| 1 | a\|b |",
                "| 2 | two<br>lines<br>three |",
                "",
                "_3 rows (2 shown)_",
            ])
        );
    }

    #[test]
    fn expanded_table_prints_one_record_per_block() {
        let batch = text_batch(&[Some("short"), Some("first line\nsecond"), None]);
        let options = OutputOptions {
            expanded: true,
            ..options(Format::Table)
        };
        assert_eq!(
            print(&options, &batch),
            lines(&[
                "-[ RECORD 1 ]----",
                "id   | 1",
                "note | short",
                "-[ RECORD 2 ]----",
                "id   | 2",
                "note | first line",
                "     | second",
                "-[ RECORD 3 ]----",
                "id   | 3",
                "note | NULL",
                "3 rows",
            ])
        );
    }

    #[test]
    fn empty_result_prints_header_and_zero_rows_or_empty_json_array() {
        let empty = mixed_batch().slice(0, 0);
        assert_eq!(print(&options(Format::Json), &empty), "[]\n");
        assert_eq!(print(&options(Format::Ndjson), &empty), "");
        assert_eq!(
            print(&options(Format::Csv), &empty),
            "id,score,price,name,day,at,tags,info\n"
        );
        assert_eq!(
            print(&options(Format::Markdown), &empty),
            lines(&[
                "| id | score | price | name | day | at | tags | info |",
                "|---:|---:|---:|---|---|---|---|---|",
            ])
        );
        assert_eq!(
            print(&options(Format::Table), &text_batch(&[])),
            lines(&[
                "┌───────┬─────────┐",
                "│   id  ┆   note  │",
                "│ int32 ┆ varchar │",
                "╞═══════╪═════════╡",
                "└───────┴─────────┘",
                "0 rows",
            ])
        );
        // No batch at all, as when a query's stream ends at once: same output.
        let (json, summary) = render(&options(Format::Json), empty.schema(), &[]);
        assert_eq!((json.as_str(), summary.total_rows), ("[]\n", 0));
    }

    #[test]
    fn result_without_columns_prints_only_the_footer() {
        let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
        assert_eq!(print(&options(Format::Table), &empty), "0 rows\n");
        assert_eq!(print(&options(Format::Csv), &empty), "");
        assert_eq!(print(&options(Format::Markdown), &empty), "");
    }

    #[test]
    fn truncated_table_footer_counts_every_row_with_thousands_separators() {
        let values: Vec<Option<&str>> = vec![Some("v"); 1000];
        let batch = text_batch(&values);
        let batches: Vec<RecordBatch> = (0..1000)
            .step_by(300)
            .map(|start| batch.slice(start, 300.min(1000 - start)))
            .collect();
        let options = OutputOptions {
            max_rows: Some(2),
            ..options(Format::Table)
        };
        let (text, summary) = render(&options, batch.schema(), &batches);
        assert_eq!(
            text,
            lines(&[
                "┌───────┬─────────┐",
                "│   id  ┆   note  │",
                "│ int32 ┆ varchar │",
                "╞═══════╪═════════╡",
                "│     1 ┆ v       │",
                "│     2 ┆ v       │",
                "└───────┴─────────┘",
                "1,000 rows (2 shown)",
            ])
        );
        assert_eq!(
            summary,
            ResultSummary {
                total_rows: 1000,
                shown_rows: 2
            }
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(
            footer(ResultSummary {
                total_rows: 1,
                shown_rows: 1
            }),
            "1 row"
        );
    }

    #[test]
    fn max_rows_cuts_machine_formats_without_a_footer_in_the_data() {
        let batch = text_batch(&[Some("a"), Some("b"), Some("c")]);
        let cut = |format| {
            let options = OutputOptions {
                max_rows: Some(1),
                ..options(format)
            };
            render(&options, batch.schema(), std::slice::from_ref(&batch))
        };
        let summary = ResultSummary {
            total_rows: 3,
            shown_rows: 1,
        };
        assert_eq!(cut(Format::Csv), ("id,note\n1,a\n".to_owned(), summary));
        assert_eq!(cut(Format::Tsv), ("id\tnote\n1\ta\n".to_owned(), summary));
        assert_eq!(
            cut(Format::Json),
            ("[{\"id\":1,\"note\":\"a\"}]\n".to_owned(), summary)
        );
        assert_eq!(
            cut(Format::Ndjson),
            ("{\"id\":1,\"note\":\"a\"}\n".to_owned(), summary)
        );
    }

    #[test]
    fn streaming_in_batches_prints_the_same_as_one_batch() {
        let whole = mixed_batch();
        let pieces = [whole.slice(0, 1), whole.slice(1, 0), whole.slice(1, 2)];
        for format in Format::value_variants() {
            for (expanded, max_rows) in [(false, None), (true, None), (false, Some(2))] {
                let options = OutputOptions {
                    format: *format,
                    max_rows,
                    expanded,
                };
                assert_eq!(
                    render(&options, whole.schema(), &pieces),
                    render(&options, whole.schema(), std::slice::from_ref(&whole)),
                    "{options:?}"
                );
            }
        }
    }

    /// A writer the test can read while a `ResultWriter` still holds it.
    #[derive(Clone, Default)]
    struct SharedBuffer(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for SharedBuffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn machine_formats_write_each_batch_before_the_result_ends() {
        let batch = text_batch(&[Some("a")]);
        for (format, first_batch) in [
            (Format::Csv, "id,note\n1,a\n"),
            (Format::Tsv, "id\tnote\n1\ta\n"),
            (Format::Json, "[{\"id\":1,\"note\":\"a\"}"),
            (Format::Ndjson, "{\"id\":1,\"note\":\"a\"}\n"),
            (Format::Markdown, "| id | note |\n|---:|---|\n| 1 | a |\n"),
        ] {
            let buffer = SharedBuffer::default();
            let mut out = buffer.clone();
            let mut writer = ResultWriter::new(&mut out, batch.schema(), &options(format));
            writer.write_batch(&batch).unwrap();
            assert_eq!(
                String::from_utf8(buffer.0.borrow().clone()).unwrap(),
                first_batch
            );
            writer.finish().unwrap();
        }
    }

    #[test]
    fn column_types_have_short_readable_names() {
        let names: Vec<String> = exotic_batch()
            .schema()
            .fields()
            .iter()
            .map(|field| type_name(field.data_type()))
            .collect();
        assert_eq!(
            names,
            [
                "boolean",
                "null",
                "varchar",
                "varchar",
                "binary",
                "binary",
                "binary(3)",
                "binary",
                "decimal(40,3)",
                "timestamp[ms]",
                "timestamp[ms, Europe/Paris]",
                "time[us]",
                "interval",
                "interval",
                "interval",
                "duration[ms]",
                "list<int32>",
                "list<int32>[2]",
                "map<varchar, int32>",
                "map<int32, varchar>",
                "varchar",
                "varchar",
                "union<int32, varchar>",
            ]
        );
    }

    #[test]
    fn every_type_prints_in_every_format() {
        let batch = exotic_batch();
        assert_eq!(
            print(&options(Format::Csv), &batch),
            lines(&[
                "flag,nothing,big,view,bytes,large_bytes,fixed_bytes,bytes_view,wide,local,zoned,clock,ym,dt,mdn,took,large_list,fixed_list,text_map,int_map,dict,runs,either",
                r#"true,,large,a view string longer than twelve,01ff,6162,78797a,6869,-12.345,2024-01-01T00:00:00.123,2024-01-01T01:00:00.123+01:00,01:02:03.000001,1 years 2 mons,3 days 4.000 secs,1 mons 2 days 3.000000000 secs,PT93784.005S,"[1, NULL]","[1, 2]","{x: 1, y: NULL}","{7: seven ""7""}",red,run,{i=5}"#,
                ",,,,,,,,,,,,,,,,,,,,,,{s=u}",
            ])
        );
        // JSON keeps lists, maps and decimals as JSON values, turns a map's integer keys into
        // object keys, and writes the dictionary's NULL value and the NULL run as null.
        assert_eq!(
            print(&options(Format::Ndjson), &batch),
            lines(&[
                r#"{"flag":true,"nothing":null,"big":"large","view":"a view string longer than twelve","bytes":"01ff","large_bytes":"6162","fixed_bytes":"78797a","bytes_view":"6869","wide":-12.345,"local":"2024-01-01T00:00:00.123","zoned":"2024-01-01T01:00:00.123+01:00","clock":"01:02:03.000001","ym":"1 years 2 mons","dt":"3 days 4.000 secs","mdn":"1 mons 2 days 3.000000000 secs","took":"PT93784.005S","large_list":[1,null],"fixed_list":[1,2],"text_map":{"x":1,"y":null},"int_map":{"7":"seven \"7\""},"dict":"red","runs":"run","either":"{i=5}"}"#,
                r#"{"flag":null,"nothing":null,"big":null,"view":null,"bytes":null,"large_bytes":null,"fixed_bytes":null,"bytes_view":null,"wide":null,"local":null,"zoned":null,"clock":null,"ym":null,"dt":null,"mdn":null,"took":null,"large_list":null,"fixed_list":null,"text_map":null,"int_map":null,"dict":null,"runs":null,"either":"{s=u}"}"#,
            ])
        );
        assert_eq!(
            print(&options(Format::Markdown), &batch).lines().nth(2),
            Some(
                r#"| true | NULL | large | a view string longer than twelve | 01ff | 6162 | 78797a | 6869 | -12.345 | 2024-01-01T00:00:00.123 | 2024-01-01T01:00:00.123+01:00 | 01:02:03.000001 | 1 years 2 mons | 3 days 4.000 secs | 1 mons 2 days 3.000000000 secs | 1 days 2 hours 3 mins 4.005 secs | [1, NULL] | [1, 2] | {x: 1, y: NULL} | {7: seven "7"} | red | run | {i=5} |"#
            )
        );
        let expanded = OutputOptions {
            expanded: true,
            ..options(Format::Table)
        };
        assert_eq!(
            print(&expanded, &batch.slice(0, 1)),
            lines(&[
                "-[ RECORD 1 ]---------------------------------",
                "flag        | true",
                "nothing     | NULL",
                "big         | large",
                "view        | a view string longer than twelve",
                "bytes       | 01ff",
                "large_bytes | 6162",
                "fixed_bytes | 78797a",
                "bytes_view  | 6869",
                "wide        | -12.345",
                "local       | 2024-01-01T00:00:00.123",
                "zoned       | 2024-01-01T01:00:00.123+01:00",
                "clock       | 01:02:03.000001",
                "ym          | 1 years 2 mons",
                "dt          | 3 days 4.000 secs",
                "mdn         | 1 mons 2 days 3.000000000 secs",
                "took        | 1 days 2 hours 3 mins 4.005 secs",
                "large_list  | [1, NULL]",
                "fixed_list  | [1, 2]",
                "text_map    | {x: 1, y: NULL}",
                "int_map     | {7: seven \"7\"}",
                "dict        | red",
                "runs        | run",
                "either      | {i=5}",
                "1 row",
            ])
        );
        let table = print(&options(Format::Table), &batch);
        assert!(
            table.contains("│ NULL    ┆ NULL    ┆ NULL    ┆ NULL                             ┆"),
            "{table}"
        );
        assert!(table.ends_with("┘\n2 rows\n"), "{table}");
    }
}
