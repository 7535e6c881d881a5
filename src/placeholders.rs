//! Placeholders of prepared statements: `?` numbered as `$1, $2, ...`, and parameter values bound
//! into the statement's syntax tree before it is planned.
//!
//! DataFusion names every `?` alike, so two of them in one statement cannot be told apart;
//! numbering them in the order they appear makes `?` and `$n` one case. Values are bound into the
//! syntax tree rather than into a logical plan because a table function reads its arguments when
//! it is planned (`active_users('events', since => ?)`): by the time there is a plan to bind into,
//! the function has already failed on a placeholder.

use std::ops::ControlFlow;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr as LogicalExpr;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{Expr, Value, visit_expressions_mut};
use datafusion::sql::unparser::Unparser;

/// Errors binding parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlaceholderError {
    #[error(
        "placeholder {placeholder} has no parameter: the statement has {expected} placeholder(s) and {given} parameter(s) were bound"
    )]
    Unbound {
        placeholder: String,
        expected: usize,
        given: usize,
    },
    #[error("placeholder '{0}' is not ? or $1, $2, ...: number placeholders from $1")]
    BadName(String),
    #[error("parameter ${position} ({value}) cannot be written as SQL: {reason}")]
    Unwritable {
        position: usize,
        value: String,
        reason: String,
    },
}

/// Visits every SQL expression of a statement, including those of an `EXPLAIN`ed one.
fn for_each_expression(statement: &mut Statement, visit: &mut dyn FnMut(&mut Expr)) {
    match statement {
        Statement::Statement(inner) => {
            let _ = visit_expressions_mut(inner.as_mut(), |expr| {
                visit(expr);
                ControlFlow::<()>::Continue(())
            });
        }
        Statement::Explain(explain) => for_each_expression(&mut explain.statement, visit),
        // CREATE EXTERNAL TABLE, COPY and RESET take no parameters.
        _ => {}
    }
}

/// Renames each `?` to `$n`, n counting from 1 in the order of the text, and returns how many
/// placeholders the statement has (the highest `$n` when they are numbered already).
pub fn number_placeholders(statement: &mut Statement) -> usize {
    let mut question_marks = 0;
    let mut highest = 0;
    for_each_expression(statement, &mut |expr| {
        if let Expr::Value(value) = expr
            && let Value::Placeholder(name) = &mut value.value
        {
            if name == "?" {
                question_marks += 1;
                *name = format!("${question_marks}");
            }
            if let Some(n) = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                highest = highest.max(n);
            }
        }
    });
    highest
}

/// Replaces every `$n` placeholder with the SQL literal of `parameters[n - 1]`.
pub fn bind_parameters(
    statement: &mut Statement,
    parameters: &[ScalarValue],
) -> Result<(), PlaceholderError> {
    let expected = number_placeholders(statement);
    let literals = parameters
        .iter()
        .enumerate()
        .map(|(index, value)| literal(index + 1, value))
        .collect::<Result<Vec<_>, _>>()?;
    let mut error = None;
    for_each_expression(statement, &mut |expr| {
        let Expr::Value(value) = expr else { return };
        let Value::Placeholder(name) = &value.value else {
            return;
        };
        let position = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
        match position
            .and_then(|n| n.checked_sub(1))
            .map(|i| literals.get(i))
        {
            Some(Some(literal)) => *expr = literal.clone(),
            Some(None) => {
                error.get_or_insert(PlaceholderError::Unbound {
                    placeholder: name.clone(),
                    expected,
                    given: parameters.len(),
                });
            }
            None => {
                error.get_or_insert(PlaceholderError::BadName(name.clone()));
            }
        }
    });
    error.map_or(Ok(()), Err)
}

/// The SQL literal of a parameter, typed as it was bound (`CAST('2024-03-01' AS DATE)`), so that
/// a DATE stays a DATE and a table function sees the type it checks for.
fn literal(position: usize, value: &ScalarValue) -> Result<Expr, PlaceholderError> {
    Unparser::default()
        .expr_to_sql(&LogicalExpr::Literal(value.clone(), None))
        .map_err(|e| PlaceholderError::Unwritable {
            position,
            value: value.to_string(),
            reason: e.strip_backtrace(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn parse(sql: &str) -> Statement {
        DFParser::parse_sql(sql).unwrap().pop_front().unwrap()
    }

    #[test]
    fn question_marks_are_numbered_in_the_order_they_appear() {
        let mut statement = parse("SELECT ? + 1 FROM t WHERE a = ? AND b IN (?, ?)");
        assert_eq!(number_placeholders(&mut statement), 4);
        assert_eq!(
            statement.to_string(),
            "SELECT $1 + 1 FROM t WHERE a = $2 AND b IN ($3, $4)"
        );
    }

    #[test]
    fn bound_values_become_typed_literals_even_in_table_function_arguments() {
        let mut statement =
            parse("SELECT * FROM active_users('events', since => ?) WHERE dau > ? AND plan = ?");
        bind_parameters(
            &mut statement,
            &[
                ScalarValue::Date32(Some(19_783)),
                ScalarValue::Int64(Some(5)),
                ScalarValue::Utf8(Some("it's pro".into())),
            ],
        )
        .unwrap();
        let sql = statement.to_string();
        assert!(sql.contains("since => CAST('2024-03-01' AS DATE)"), "{sql}");
        assert!(sql.contains("dau > 5"), "{sql}");
        assert!(sql.contains("plan = 'it''s pro'"), "{sql}");
    }

    #[test]
    fn dollar_placeholders_may_repeat_and_come_in_any_order() {
        let mut statement = parse("SELECT $2, $1, $2");
        bind_parameters(
            &mut statement,
            &[ScalarValue::Int64(Some(1)), ScalarValue::Int64(Some(2))],
        )
        .unwrap();
        assert_eq!(statement.to_string(), "SELECT 2, 1, 2");
    }

    #[test]
    fn a_placeholder_without_a_parameter_names_itself_and_the_counts() {
        let mut statement = parse("SELECT ?, ?");
        let error = bind_parameters(&mut statement, &[ScalarValue::Int64(Some(1))]).unwrap_err();
        assert_eq!(
            error,
            PlaceholderError::Unbound {
                placeholder: "$2".into(),
                expected: 2,
                given: 1
            }
        );
    }

    #[test]
    fn placeholders_inside_explain_are_bound_too() {
        let mut statement = parse("EXPLAIN SELECT ?");
        bind_parameters(&mut statement, &[ScalarValue::Boolean(Some(true))]).unwrap();
        assert_eq!(statement.to_string(), "EXPLAIN SELECT true");
    }
}
