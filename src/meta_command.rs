//! The REPL's backslash commands: parsing them, and the catalog queries and help texts behind them.
//!
//! Catalog commands (`\d`, `\df`) are plain SQL over `information_schema`, so they print in the
//! current output format and go to `\o` like any result.

use std::path::PathBuf;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{DocSection, Documentation};
use datafusion::prelude::SessionContext;

use crate::output::Format;

/// Errors in a backslash command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaCommandError {
    #[error("unknown command \\{0}: \\? lists the commands")]
    Unknown(String),
    #[error("\\{command} needs {what}: {usage}")]
    MissingArgument {
        command: &'static str,
        what: &'static str,
        usage: &'static str,
    },
    #[error("\\{command}: '{value}' is not valid: {expected}")]
    BadArgument {
        command: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// One backslash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    /// `\d`: the tables.
    ListTables,
    /// `\d NAME`: the columns of a table.
    DescribeTable(String),
    /// `\df [PATTERN]`: functions with their descriptions.
    ListFunctions(Option<String>),
    /// `\h NAME`: a function's documentation.
    FunctionHelp(String),
    /// `\timing [on|off]`.
    Timing(Option<bool>),
    /// `\x [on|off]`: expanded rows.
    Expanded(Option<bool>),
    /// `\o [FILE]`: results to a file, or back to the screen.
    Output(Option<PathBuf>),
    /// `\i FILE`: run the statements of a file.
    Include(PathBuf),
    /// `\pset format NAME`.
    SetFormat(Format),
    /// `\pset maxrows N` (0: all rows).
    SetMaxRows(Option<usize>),
    /// `\?`: the commands.
    Commands,
    /// `\q`.
    Quit,
}

/// What `\?` prints.
pub const COMMANDS_HELP: &str = "\
  \\d                 list tables
  \\d TABLE           describe a table's columns
  \\df [PATTERN]      list functions (PATTERN: part of a name, or a glob such as cohort*)
  \\h FUNCTION        show a function's documentation
  \\timing [on|off]   show how long each statement ran
  \\x [on|off]        expanded rows: one column per line
  \\o [FILE]          send results to FILE; \\o alone sends them to the screen again
  \\i FILE            run the statements in FILE
  \\pset format NAME  table, csv, tsv, json, ndjson or markdown
  \\pset maxrows N    show at most N rows of a result (0: all)
  \\?                 this list
  \\q                 quit (Ctrl-D too)
Statements end with ';' and may span lines. Ctrl-C cancels a running query or clears the input.";

impl MetaCommand {
    /// Parses a line that starts with `\`.
    pub fn parse(line: &str) -> Result<Self, MetaCommandError> {
        let line = line.trim().trim_end_matches(';').trim();
        let body = line.strip_prefix('\\').unwrap_or(line);
        let (name, rest) = body
            .split_once(char::is_whitespace)
            .map_or((body, ""), |(n, r)| (n, r.trim()));
        let argument = (!rest.is_empty()).then(|| rest.to_string());
        Ok(match name {
            "d" => argument.map_or(Self::ListTables, Self::DescribeTable),
            "df" => Self::ListFunctions(argument),
            "h" => Self::FunctionHelp(argument.ok_or(MetaCommandError::MissingArgument {
                command: "h",
                what: "a function name",
                usage: "\\h cohort_retention",
            })?),
            "timing" => Self::Timing(parse_switch("timing", argument)?),
            "x" => Self::Expanded(parse_switch("x", argument)?),
            "o" => Self::Output(argument.map(PathBuf::from)),
            "i" => Self::Include(PathBuf::from(argument.ok_or(
                MetaCommandError::MissingArgument {
                    command: "i",
                    what: "a file",
                    usage: "\\i queries/events_per_day.sql",
                },
            )?)),
            "pset" => parse_pset(rest)?,
            "?" => Self::Commands,
            "q" | "quit" => Self::Quit,
            other => return Err(MetaCommandError::Unknown(other.to_string())),
        })
    }
}

fn parse_switch(
    command: &'static str,
    argument: Option<String>,
) -> Result<Option<bool>, MetaCommandError> {
    match argument.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(_) => Err(MetaCommandError::BadArgument {
            command,
            value: argument.unwrap_or_default(),
            expected: "use on or off, or nothing to toggle",
        }),
    }
}

fn parse_pset(rest: &str) -> Result<MetaCommand, MetaCommandError> {
    const USAGE: &str = "\\pset format csv, or \\pset maxrows 100";
    let (option, value) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(o, v)| (o, v.trim()));
    let missing = |what| MetaCommandError::MissingArgument {
        command: "pset",
        what,
        usage: USAGE,
    };
    match option {
        "format" if !value.is_empty() => value
            .parse::<Format>()
            .map(MetaCommand::SetFormat)
            .map_err(|_| MetaCommandError::BadArgument {
                command: "pset",
                value: value.to_string(),
                expected: "the formats are table, csv, tsv, json, ndjson and markdown",
            }),
        "maxrows" if !value.is_empty() => match value.parse::<usize>() {
            Ok(0) => Ok(MetaCommand::SetMaxRows(None)),
            Ok(n) => Ok(MetaCommand::SetMaxRows(Some(n))),
            Err(_) => Err(MetaCommandError::BadArgument {
                command: "pset",
                value: value.to_string(),
                expected: "maxrows takes a whole number, 0 for all rows",
            }),
        },
        "format" => Err(missing("a format name")),
        "maxrows" => Err(missing("a number of rows")),
        _ => Err(missing("an option, format or maxrows")),
    }
}

/// A SQL string literal holding `text`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `\d`: every table and view outside information_schema.
pub fn list_tables_sql() -> String {
    "SELECT table_name AS name, table_type AS type FROM information_schema.tables \
     WHERE table_schema <> 'information_schema' ORDER BY table_name"
        .to_string()
}

/// `\d NAME`: the columns of one table.
pub fn describe_table_sql(table: &str) -> String {
    format!(
        "SELECT column_name AS column, data_type AS type, is_nullable AS nullable \
         FROM information_schema.columns WHERE table_name = {} ORDER BY ordinal_position",
        quote(table)
    )
}

/// Characters of a function's description that `\df` shows.
const SUMMARY_WIDTH: usize = 80;

/// `\df [PATTERN]`: functions whose name contains the pattern (or matches it as a glob): DataFusion's
/// and ours from `information_schema.routines`, and our table functions, which only
/// `usagelake_functions()` documents.
pub fn list_functions_sql(pattern: Option<&str>) -> String {
    let filter = match pattern {
        None => String::new(),
        Some(p) if p.contains(['*', '?']) => {
            format!(
                " WHERE name ILIKE {}",
                quote(&p.replace('*', "%").replace('?', "_"))
            )
        }
        Some(p) => format!(" WHERE name ILIKE {}", quote(&format!("%{p}%"))),
    };
    format!(
        // One line per function: the first sentence of its description, cut to fit a terminal;
        // `\\h NAME` shows the rest.
        "SELECT name, kind, CASE WHEN length(summary) > {SUMMARY_WIDTH} \
         THEN left(summary, {SUMMARY_WIDTH} - 3) || '...' ELSE summary END AS description FROM (\
         SELECT name, kind, split_part(description, '. ', 1) AS summary FROM (\
         SELECT routine_name AS name, lower(first_value(function_type)) AS kind, \
         first_value(description) AS description FROM information_schema.routines \
         GROUP BY routine_name \
         UNION ALL \
         SELECT name, kind, description FROM usagelake_functions() WHERE kind = 'table'\
         )){filter} ORDER BY name"
    )
}

/// `\h NAME`: the documentation of a function, as text: from the session's registries for scalar,
/// aggregate and window functions, and from `usagelake_functions()` for our table functions.
pub async fn function_help(ctx: &SessionContext, name: &str) -> Option<String> {
    let name = name.trim().to_ascii_lowercase();
    let state = ctx.state();
    let (kind, documentation) = if let Some(f) = state.scalar_functions().get(&name) {
        ("scalar function", f.documentation().cloned())
    } else if let Some(f) = state.aggregate_functions().get(&name) {
        ("aggregate function", f.documentation().cloned())
    } else if let Some(f) = state.window_functions().get(&name) {
        ("window function", f.documentation().cloned())
    } else if state.table_functions().contains_key(&name) {
        ("table function", None)
    } else {
        (
            "table function",
            table_function_documentation(ctx, &name).await?,
        )
    };
    let mut text = format!("{name} ({kind})\n");
    match documentation {
        Some(doc) => text.push_str(&render_documentation(&doc)),
        None => text.push_str("  No documentation.\n"),
    }
    Some(text)
}

/// The documentation of one of our table functions, read back from `usagelake_functions()`.
async fn table_function_documentation(
    ctx: &SessionContext,
    name: &str,
) -> Option<Option<Documentation>> {
    let sql = format!(
        "SELECT description, syntax, arguments, example FROM usagelake_functions() \
         WHERE kind = 'table' AND name = {}",
        quote(name)
    );
    let batches = ctx.sql(&sql).await.ok()?.collect().await.ok()?;
    let batch = batches.into_iter().find(|b| b.num_rows() > 0)?;
    let column = |i: usize| -> Option<String> {
        let text = datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8).ok()?;
        let text = text.as_string::<i32>();
        text.is_valid(0).then(|| text.value(0).to_string())
    };
    let mut builder = Documentation::builder(
        DocSection::default(),
        column(0).unwrap_or_default(),
        column(1).unwrap_or_default(),
    );
    for line in column(2).unwrap_or_default().lines() {
        let (argument, description) = line.split_once(": ").unwrap_or((line, ""));
        builder = builder.with_argument(argument, description);
    }
    if let Some(example) = column(3) {
        builder = builder.with_sql_example(example);
    }
    Some(Some(builder.build()))
}

fn render_documentation(doc: &Documentation) -> String {
    let mut text = format!(
        "\n{}\n\nSyntax:\n  {}\n",
        doc.description.trim(),
        doc.syntax_example
    );
    if let Some(arguments) = &doc.arguments {
        text.push_str("\nArguments:\n");
        for (name, description) in arguments {
            text.push_str(&format!("  {name}: {}\n", description.trim()));
        }
    }
    if let Some(example) = &doc.sql_example {
        text.push_str(&format!("\nExample:\n{}\n", example.trim()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_and_without_arguments() {
        assert_eq!(MetaCommand::parse("\\d"), Ok(MetaCommand::ListTables));
        assert_eq!(
            MetaCommand::parse("\\d events"),
            Ok(MetaCommand::DescribeTable("events".into()))
        );
        assert_eq!(
            MetaCommand::parse("\\df"),
            Ok(MetaCommand::ListFunctions(None))
        );
        assert_eq!(
            MetaCommand::parse("\\timing on"),
            Ok(MetaCommand::Timing(Some(true)))
        );
        assert_eq!(MetaCommand::parse("\\x"), Ok(MetaCommand::Expanded(None)));
        assert_eq!(MetaCommand::parse("\\o"), Ok(MetaCommand::Output(None)));
        assert_eq!(
            MetaCommand::parse("\\pset format csv"),
            Ok(MetaCommand::SetFormat(Format::Csv))
        );
        assert_eq!(
            MetaCommand::parse("\\pset maxrows 0"),
            Ok(MetaCommand::SetMaxRows(None))
        );
        assert_eq!(MetaCommand::parse("\\q"), Ok(MetaCommand::Quit));
    }

    #[test]
    fn unknown_command_points_to_the_list() {
        assert_eq!(
            MetaCommand::parse("\\zz").unwrap_err().to_string(),
            "unknown command \\zz: \\? lists the commands"
        );
    }

    #[test]
    fn bad_arguments_say_what_is_expected() {
        let error = MetaCommand::parse("\\pset format xml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'xml'") && error.contains("markdown"),
            "{error}"
        );
        let error = MetaCommand::parse("\\h").unwrap_err().to_string();
        assert!(error.contains("a function name"), "{error}");
    }

    #[test]
    fn function_pattern_is_a_substring_or_a_glob() {
        assert!(list_functions_sql(Some("date")).contains("name ILIKE '%date%'"));
        assert!(list_functions_sql(Some("date_*")).contains("name ILIKE 'date_%'"));
        assert!(describe_table_sql("o'brien").contains("'o''brien'"));
    }
}
