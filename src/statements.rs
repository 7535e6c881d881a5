//! Splitting SQL text into statements.
//!
//! A `;` ends a statement only outside string literals, quoted identifiers and comments, so the text
//! is read with the SQL tokenizer rather than searched for semicolons. The REPL uses
//! [`ends_statement`] to decide whether Enter runs the buffer or continues it on a new line; files,
//! `-c` and standard input use [`split`].

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{
    Location, Token, TokenWithSpan, Tokenizer, TokenizerError,
};

/// Errors splitting SQL text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    #[error(
        "{what} starting at line {line}, column {column} is never closed: close it, or remove the stray quote"
    )]
    Unterminated {
        what: &'static str,
        line: u64,
        column: u64,
    },
    #[error("could not read the SQL: {0}")]
    Tokenizer(String),
}

fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, TokenizerError> {
    Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location()
}

/// What an unterminated-input tokenizer error left open, or `None` for other errors.
fn unterminated(error: &TokenizerError) -> Option<&'static str> {
    let message = error.message.as_str();
    if message.contains("comment") {
        Some("a comment")
    } else if message.starts_with("Unterminated") {
        Some("a string")
    } else if message.contains("close delimiter") {
        Some("a quoted name")
    } else {
        None
    }
}

fn is_blank(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_) | Token::EOF)
}

/// Splits `sql` into its statements, without their `;`, skipping empty and comment-only ones.
pub fn split(sql: &str) -> Result<Vec<String>, StatementError> {
    let tokens = tokenize(sql).map_err(|e| match unterminated(&e) {
        Some(what) => StatementError::Unterminated {
            what,
            line: e.location.line,
            column: e.location.column,
        },
        None => StatementError::Tokenizer(e.to_string()),
    })?;
    let offsets = LineOffsets::new(sql);
    let mut statements = Vec::new();
    let mut start: Option<Location> = None;
    let mut push = |from: Location, to: usize| {
        let text = sql[offsets.byte(from)..to].trim();
        statements.push(text.to_string());
    };
    for token in &tokens {
        match &token.token {
            Token::SemiColon => {
                if let Some(from) = start.take() {
                    push(from, offsets.byte(token.span.start));
                }
            }
            t if is_blank(t) => {}
            _ => {
                start.get_or_insert(token.span.start);
            }
        }
    }
    if let Some(from) = start {
        push(from, sql.len());
    }
    Ok(statements)
}

/// True when `buffer` ends with a `;` that ends a statement (not one inside a string or comment),
/// so that the REPL should run it; false while a string or comment is still open.
pub fn ends_statement(buffer: &str) -> bool {
    match tokenize(buffer) {
        Ok(tokens) => tokens
            .iter()
            .rev()
            .find(|t| !is_blank(&t.token))
            .is_some_and(|t| t.token == Token::SemiColon),
        // Unclosed quotes or comments: more lines are coming.
        Err(e) if unterminated(&e).is_some() => false,
        // Anything else cannot be fixed by more input; run it and let the parser report it.
        Err(_) => buffer.trim_end().ends_with(';'),
    }
}

/// Maps the tokenizer's (line, column) locations, which count characters, to byte offsets.
struct LineOffsets<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, line_starts }
    }

    fn byte(&self, location: Location) -> usize {
        let line_start = self.line_starts[(location.line.max(1) - 1) as usize];
        let chars_in = location.column.max(1) as usize - 1;
        self.text[line_start..]
            .char_indices()
            .nth(chars_in)
            .map_or(self.text.len(), |(i, _)| line_start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_inside_strings_and_comments_do_not_split() {
        let sql = "SELECT 'a;b' AS x; -- c;d\nSELECT /* e;f */ 2;";
        assert_eq!(
            split(sql).unwrap(),
            vec!["SELECT 'a;b' AS x", "SELECT /* e;f */ 2"]
        );
    }

    #[test]
    fn last_statement_needs_no_semicolon() {
        assert_eq!(
            split("SELECT 1;\n SELECT 2 \n").unwrap(),
            vec!["SELECT 1", "SELECT 2"]
        );
    }

    #[test]
    fn empty_and_comment_only_statements_are_skipped() {
        assert_eq!(
            split(";; -- nothing\n ; SELECT 1;").unwrap(),
            vec!["SELECT 1"]
        );
    }

    #[test]
    fn multibyte_text_splits_on_character_boundaries() {
        assert_eq!(
            split("SELECT 'İstanbul'; SELECT 'ü';").unwrap(),
            vec!["SELECT 'İstanbul'", "SELECT 'ü'"]
        );
    }

    #[test]
    fn unterminated_string_is_an_error_with_its_position() {
        let error = split("SELECT 1;\nSELECT 'abc").unwrap_err();
        assert!(
            matches!(
                error,
                StatementError::Unterminated {
                    what: "a string",
                    line: 2,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn repl_buffer_ends_only_at_a_real_semicolon() {
        assert!(ends_statement("SELECT 1;"));
        assert!(ends_statement("SELECT 1; -- done\n"));
        assert!(!ends_statement("SELECT 1"));
        assert!(!ends_statement("SELECT 'a;"));
        assert!(!ends_statement("SELECT 1 /* ; "));
        assert!(!ends_statement("SELECT 1; SELECT 2"));
    }
}
