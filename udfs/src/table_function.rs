//! Table functions of the metric library: named arguments, documentation, and planning.
//!
//! DataFusion 55 plans `FROM f(...)` through `TableFunctionImpl::call`, which sees positional,
//! already-planned expressions only: `cohort_retention('events', period => 'month')` fails to plan,
//! and under `LATERAL` the names are silently dropped. Our table functions are therefore planned by
//! a [`RelationPlanner`] registered in the session: it sees the SQL arguments with their names,
//! binds them to the parameters the function documents, and asks the function for a logical plan
//! of DataFusion operators. Such plans need no custom codec to run on a distributed engine, and
//! every front end that plans SQL through the session (REPL, Flight SQL, batch jobs, tests) gets
//! named arguments the same way.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{Column, DFSchema, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn::min;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{
    Documentation, Expr, LogicalPlan, LogicalPlanBuilder, SortExpr, cast, col, lit, when,
};
use datafusion::sql::planner::SqlToRel;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, Query,
    Statement, TableFactor, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::input_provider::InputProvider;

/// A table function of ours: documented, and planned from bound arguments.
pub(crate) trait MetricTableFunction: Debug + Send + Sync {
    /// The SQL name.
    fn name(&self) -> &'static str;

    /// Its documentation; the `arguments` are its parameters, in positional order.
    fn documentation(&self) -> &Documentation;

    /// The logical plan of a call.
    fn plan(
        &self,
        arguments: &BoundArguments,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<LogicalPlan>;
}

/// The parameter names of a documented function, in positional order.
fn parameter_names(documentation: &Documentation) -> Vec<&str> {
    documentation
        .arguments
        .iter()
        .flatten()
        .map(|(name, _)| name.as_str())
        .collect()
}

/// A call's SQL arguments, each bound to the parameter it fills.
#[derive(Debug)]
pub(crate) struct BoundArguments {
    function: &'static str,
    /// Every parameter with the expression given for it, if any.
    values: Vec<(String, Option<SqlExpr>)>,
    /// The session's catalogs, where input tables are found.
    catalogs: Arc<dyn CatalogProviderList>,
}

impl BoundArguments {
    /// Binds positional arguments in order, then named ones (`name => value`) by name.
    pub(crate) fn bind(
        function: &'static str,
        documentation: &Documentation,
        arguments: Vec<FunctionArg>,
        catalogs: Arc<dyn CatalogProviderList>,
    ) -> Result<Self> {
        let names = parameter_names(documentation);
        let mut values: Vec<(String, Option<SqlExpr>)> =
            names.iter().map(|n| (n.to_string(), None)).collect();
        let mut seen_named = false;
        for (position, argument) in arguments.into_iter().enumerate() {
            let (name, value) = match argument {
                FunctionArg::Unnamed(value) => (None, value),
                FunctionArg::Named { name, arg, .. } => (Some(name.value), arg),
                FunctionArg::ExprNamed { name, arg, .. } => match name {
                    SqlExpr::Identifier(ident) => (Some(ident.value), arg),
                    other => {
                        return plan_err!(
                            "{function}: '{other}' is not an argument name; write name => value"
                        );
                    }
                },
            };
            let FunctionArgExpr::Expr(value) = value else {
                return plan_err!(
                    "{function}: argument {} must be a value, not *",
                    position + 1
                );
            };
            let slot = match name {
                None if seen_named => {
                    return plan_err!(
                        "{function}: positional argument {} follows a named one; put positional \
                         arguments first",
                        position + 1
                    );
                }
                None => values.get_mut(position).ok_or_else(|| {
                    plan_datafusion_err!(
                        "{function} takes at most {} arguments ({}), got more",
                        names.len(),
                        names.join(", ")
                    )
                })?,
                Some(name) => {
                    seen_named = true;
                    let wanted = name.to_ascii_lowercase();
                    values
                        .iter_mut()
                        .find(|(parameter, _)| *parameter == wanted)
                        .ok_or_else(|| {
                            plan_datafusion_err!(
                                "{function} has no argument named '{name}': its arguments are {}",
                                names.join(", ")
                            )
                        })?
                }
            };
            if slot.1.is_some() {
                return plan_err!("{function}: argument '{}' is given twice", slot.0);
            }
            slot.1 = Some(value);
        }
        Ok(Self {
            function,
            values,
            catalogs,
        })
    }

    /// The SQL expression given for `parameter`, if any.
    pub(crate) fn get(&self, parameter: &str) -> Option<&SqlExpr> {
        self.values
            .iter()
            .find(|(name, _)| name == parameter)
            .and_then(|(_, value)| value.as_ref())
    }

    /// The constant value given for `parameter` (a literal, or a cast of one such as
    /// `DATE '2024-01-01'`); an error names the parameter when it is not constant.
    pub(crate) fn constant(
        &self,
        parameter: &str,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<Option<ScalarValue>> {
        let Some(value) = self.get(parameter) else {
            return Ok(None);
        };
        let expr = context.sql_to_expr(value.clone(), &DFSchema::empty())?;
        constant_value(&expr).map(Some).ok_or_else(|| {
            plan_datafusion_err!(
                "{}: argument '{parameter}' must be a constant, such as a string or a number, \
                 not {value}",
                self.function
            )
        })
    }

    /// The constant string given for `parameter`.
    pub(crate) fn string(
        &self,
        parameter: &str,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<Option<String>> {
        match self.constant(parameter, context)? {
            None | Some(ScalarValue::Null) => Ok(None),
            Some(value) => match value.try_as_str() {
                Some(Some(text)) => Ok(Some(text.to_string())),
                _ => plan_err!(
                    "{}: argument '{parameter}' must be a string, not {value}",
                    self.function
                ),
            },
        }
    }
}

impl BoundArguments {
    /// The constant boolean given for `parameter`, or `default` when not given or NULL.
    pub(crate) fn boolean(
        &self,
        parameter: &str,
        default: bool,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<bool> {
        match self.constant(parameter, context)? {
            None | Some(ScalarValue::Boolean(None) | ScalarValue::Null) => Ok(default),
            Some(ScalarValue::Boolean(Some(value))) => Ok(value),
            Some(other) => plan_err!(
                "{}: argument {parameter} must be true or false, not {other}",
                self.function
            ),
        }
    }

    /// The whole number given for `parameter` (a count of `unit`s, for errors), or `default`
    /// when not given or NULL.
    pub(crate) fn whole_number(
        &self,
        parameter: &str,
        default: i64,
        unit: &str,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<i64> {
        let value = match self.constant(parameter, context)? {
            None => return Ok(default),
            Some(value) if value.is_null() => return Ok(default),
            Some(value) => value,
        };
        match value.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(number))) if value.data_type().is_integer() => Ok(number),
            _ => plan_err!(
                "{}: argument '{parameter}' must be a whole number of {unit}, not {value}",
                self.function
            ),
        }
    }

    /// The number given for `parameter`, as a DOUBLE, or `default` when not given or NULL.
    pub(crate) fn number(
        &self,
        parameter: &str,
        default: f64,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<f64> {
        let value = match self.constant(parameter, context)? {
            None => return Ok(default),
            Some(value) if value.is_null() => return Ok(default),
            Some(value) => value,
        };
        match value.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(Some(number)))
                if value.data_type().is_numeric() && number.is_finite() =>
            {
                Ok(number)
            }
            _ => plan_err!(
                "{}: argument '{parameter}' must be a number, not {value}",
                self.function
            ),
        }
    }

    /// Plans the input relation given for `parameter`: a table or view name (quoted or bare), or a
    /// query in a string starting with SELECT or WITH. A table function cannot see the CTEs of the
    /// statement around it, so a query string is the way to pass a filtered input.
    pub(crate) fn input(
        &self,
        parameter: &str,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<LogicalPlan> {
        let not_a_relation = |other: &dyn std::fmt::Display| {
            plan_datafusion_err!(
                "{}: argument '{parameter}' must name a table or hold a query, not {other}",
                self.function
            )
        };
        let query = match self.get(parameter) {
            None => {
                return plan_err!(
                    "{}: argument '{parameter}' is required: a table name such as 'events', or a \
                     query such as 'SELECT * FROM events WHERE plan = ''pro'''",
                    self.function
                );
            }
            Some(SqlExpr::Identifier(ident)) => {
                self.parse_query(parameter, &format!("SELECT * FROM {ident}"))?
            }
            Some(SqlExpr::CompoundIdentifier(idents)) => {
                let name = ObjectName::from(idents.clone());
                self.parse_query(parameter, &format!("SELECT * FROM {name}"))?
            }
            Some(SqlExpr::Value(value)) => match &value.value {
                Value::SingleQuotedString(text) => {
                    if starts_a_query(text) {
                        self.parse_query(parameter, text)?
                    } else {
                        self.parse_query(parameter, &format!("SELECT * FROM {text}"))?
                    }
                }
                other => return Err(not_a_relation(other)),
            },
            Some(other) => return Err(not_a_relation(other)),
        };
        let provider = InputProvider {
            session: context.context_provider(),
            catalogs: &self.catalogs,
        };
        SqlToRel::new(&provider).sql_statement_to_plan(Statement::Query(query))
    }

    /// Parses one whole query: text after it (but a final `;`) is an error, never ignored.
    fn parse_query(&self, parameter: &str, sql: &str) -> Result<Box<Query>> {
        let not_a_query = |detail: &dyn std::fmt::Display| {
            plan_datafusion_err!(
                "{}: argument '{parameter}' is neither a table name nor a query \
                 (SELECT ... or WITH ...): {detail}",
                self.function
            )
        };
        let mut parser = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .map_err(|e| not_a_query(&e))?;
        let query = parser.parse_query().map_err(|e| not_a_query(&e))?;
        while parser.consume_token(&Token::SemiColon) {}
        let rest = parser.peek_token();
        if rest.token != Token::EOF {
            return Err(not_a_query(&format!(
                "unexpected {} after the query, at {}",
                rest.token, rest.span.start
            )));
        }
        Ok(query)
    }

    /// The input column given for `parameter` (a string or a bare name), or `default`; an error
    /// lists the input's columns when there is no such column.
    pub(crate) fn column(
        &self,
        parameter: &str,
        default: &str,
        input: &LogicalPlan,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<Column> {
        let name = match self.get(parameter) {
            Some(SqlExpr::Identifier(ident)) => context.normalize_ident(ident.clone()),
            Some(_) => self
                .string(parameter, context)?
                .unwrap_or_else(|| default.to_string()),
            None => default.to_string(),
        };
        let schema = input.schema();
        match schema.qualified_field_with_unqualified_name(&name) {
            Ok((qualifier, field)) => Ok(Column::new(qualifier.cloned(), field.name())),
            Err(_) => plan_err!(
                "{}: argument '{parameter}': the input has no column '{name}'; its columns are {}",
                self.function,
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Whether `text` starts with SELECT or WITH, after any whitespace and comments: a query rather
/// than a table name.
fn starts_a_query(text: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return false;
    };
    tokens
        .iter()
        .find(|token| !matches!(token, Token::Whitespace(_)))
        .is_some_and(|token| {
            matches!(token, Token::Word(word) if matches!(word.keyword, Keyword::SELECT | Keyword::WITH))
        })
}

/// The value of a literal, or of a cast of a literal.
fn constant_value(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Cast(cast) => constant_value(&cast.expr)?
            .cast_to(cast.field.data_type())
            .ok(),
        Expr::TryCast(cast) => constant_value(&cast.expr)?
            .cast_to(cast.field.data_type())
            .ok(),
        Expr::Negative(inner) => constant_value(inner)?.arithmetic_negate().ok(),
        _ => None,
    }
}

/// The column that holds one folded item after [`fold_segments`].
pub(crate) const FOLDED: &str = "folded";

/// Folds each segment's rows with `fold`, an aggregate call returning a list, and unnests the list
/// into rows of [`FOLDED`], with the segment columns (unqualified, under their own names) beside it.
///
/// The segment values come from `min(segment)` rather than from the GROUP BY key: DataFusion 55's
/// Unnest keeps the functional dependencies of its input, so a group key would still pass for
/// unique after unnesting, and the optimizer would then drop every ORDER BY key that follows it
/// (`ORDER BY plan, day` would sort by plan alone).
pub(crate) fn fold_segments(
    builder: LogicalPlanBuilder,
    segments: &[Column],
    fold: Expr,
) -> Result<LogicalPlanBuilder> {
    let hidden = |index: usize| format!("__usagelake_segment_{index}");
    let keys: Vec<Expr> = segments.iter().cloned().map(Expr::Column).collect();
    let mut aggregates = vec![fold.alias(FOLDED)];
    aggregates.extend(
        segments
            .iter()
            .enumerate()
            .map(|(index, segment)| min(Expr::Column(segment.clone())).alias(hidden(index))),
    );
    let mut columns: Vec<Expr> = segments
        .iter()
        .enumerate()
        .map(|(index, segment)| col(hidden(index)).alias(&segment.name))
        .collect();
    columns.push(col(FOLDED));
    builder
        .aggregate(keys, aggregates)?
        .project(columns)?
        .unnest_column(FOLDED)
}

/// The segment columns as they come out of [`fold_segments`].
pub(crate) fn folded_segments(segments: &[Column]) -> Vec<Expr> {
    segments
        .iter()
        .map(|segment| Expr::Column(Column::from_name(&segment.name)))
        .collect()
}

/// `numerator / denominator` as DOUBLE, NULL when the denominator is 0: the metric conventions'
/// ratio, never NaN or infinity.
pub(crate) fn ratio(numerator: Expr, denominator: Expr) -> Result<Expr> {
    let double = |expr: Expr| cast(expr, DataType::Float64);
    when(
        denominator.clone().eq(lit(0)),
        lit(ScalarValue::Float64(None)),
    )
    .otherwise(double(numerator) / double(denominator))
}

/// Sorts the rows of a table function's plan by `keys`.
pub(crate) fn in_order(builder: LogicalPlanBuilder, keys: Vec<Expr>) -> Result<LogicalPlanBuilder> {
    in_order_by(
        builder,
        keys.into_iter().map(|key| key.sort(true, true)).collect(),
    )
}

/// Sorts the rows of a table function's plan by `sorts`.
pub(crate) fn in_order_by(
    builder: LogicalPlanBuilder,
    sorts: Vec<SortExpr>,
) -> Result<LogicalPlanBuilder> {
    builder
        .sort(sorts)?
        // DataFusion's SQL planner drops a Sort from a planned relation unless a Limit is above it
        // (`enable_subquery_sort_elimination`). An unbounded Limit keeps the documented order; the
        // optimizer removes the Limit itself.
        .limit(0, None)
}

/// Plans calls of our table functions; every other relation goes on to DataFusion's planner.
#[derive(Debug)]
pub(crate) struct MetricTablePlanner {
    functions: Vec<Arc<dyn MetricTableFunction>>,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl MetricTablePlanner {
    pub(crate) fn new(
        functions: Vec<Arc<dyn MetricTableFunction>>,
        catalogs: Arc<dyn CatalogProviderList>,
    ) -> Self {
        Self {
            functions,
            catalogs,
        }
    }

    fn find(&self, name: &ObjectName) -> Option<&Arc<dyn MetricTableFunction>> {
        let [ObjectNamePart::Identifier(Ident { value, .. })] = name.0.as_slice() else {
            return None;
        };
        self.functions
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(value))
    }
}

impl RelationPlanner for MetricTablePlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let Some(function) = self.find(name) else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let arguments = BoundArguments::bind(
            function.name(),
            function.documentation(),
            args.args.clone(),
            Arc::clone(&self.catalogs),
        )?;
        let mut plan = function.plan(&arguments, context)?;
        if alias.is_none() {
            // Qualified by the function's name, as a table's columns are by the table's: so that
            // `churn_risk(...) JOIN accounts USING (account_id)` is not ambiguous, and
            // `churn_risk.account_id` names the column.
            plan = LogicalPlanBuilder::from(plan)
                .alias(function.name())?
                .build()?;
        }
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::DocSection;

    fn documentation() -> Documentation {
        Documentation::builder(DocSection::default(), "test", "f(table, period, periods)")
            .with_argument("table", "input")
            .with_argument("period", "period")
            .with_argument("periods", "how many")
            .build()
    }

    fn arguments(sql: &str) -> Vec<FunctionArg> {
        let statement = Parser::new(&GenericDialect {})
            .try_with_sql(&format!("SELECT * FROM f({sql})"))
            .unwrap()
            .parse_query()
            .unwrap();
        let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = *statement.body else {
            panic!("a select");
        };
        let TableFactor::Table { args, .. } = select.from[0].relation.clone() else {
            panic!("a table factor");
        };
        args.unwrap().args
    }

    fn bind(sql: &str) -> Result<BoundArguments> {
        let catalogs = Arc::new(datafusion::catalog::MemoryCatalogProviderList::new());
        BoundArguments::bind("f", &documentation(), arguments(sql), catalogs)
    }

    #[test]
    fn named_arguments_bind_by_name_in_any_order() {
        let bound = bind("'events', periods => 8, PERIOD => 'month'").unwrap();
        assert_eq!(bound.get("table").unwrap().to_string(), "'events'");
        assert_eq!(bound.get("period").unwrap().to_string(), "'month'");
        assert_eq!(bound.get("periods").unwrap().to_string(), "8");
    }

    #[test]
    fn a_name_is_never_taken_as_a_position() {
        let bound = bind("'events', periods => 8").unwrap();
        assert!(bound.get("period").is_none());
    }

    #[test]
    fn an_unknown_name_lists_the_valid_ones() {
        let error = bind("'events', perid => 'week'").unwrap_err().to_string();
        assert!(
            error.contains(
                "f has no argument named 'perid': its arguments are table, period, periods"
            ),
            "{error}"
        );
    }

    #[test]
    fn an_argument_given_twice_is_an_error() {
        let error = bind("'events', 'week', period => 'month'")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("argument 'period' is given twice"),
            "{error}"
        );
    }

    #[test]
    fn positional_after_named_is_an_error() {
        let error = bind("'events', period => 'week', 8")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("positional argument 3 follows a named one"),
            "{error}"
        );
    }

    #[test]
    fn too_many_positional_arguments_are_an_error() {
        let error = bind("'events', 'week', 8, 9").unwrap_err().to_string();
        assert!(error.contains("f takes at most 3 arguments"), "{error}");
    }

    #[test]
    fn a_query_may_start_with_comments() {
        assert!(starts_a_query("-- the pro plan\nSELECT * FROM events"));
        assert!(starts_a_query(
            "/* c */ with x AS (SELECT 1) SELECT * FROM x"
        ));
        assert!(!starts_a_query("events"));
        assert!(!starts_a_query("selected_events"));
    }

    #[test]
    fn text_after_a_query_is_an_error_not_ignored() {
        let bound = bind("'events'").unwrap();
        for sql in [
            "SELECT * FROM events LIMIT 5) whatever",
            "SELECT * FROM events; SELECT 1",
        ] {
            let error = bound.parse_query("table", sql).unwrap_err().to_string();
            assert!(error.contains("after the query"), "{sql}: {error}");
        }
        assert!(bound.parse_query("table", "SELECT * FROM events;").is_ok());
    }

    #[test]
    fn constants_fold_literal_casts_and_negation() {
        assert_eq!(
            constant_value(&Expr::Negative(Box::new(Expr::Literal(
                ScalarValue::Int64(Some(3)),
                None
            )))),
            Some(ScalarValue::Int64(Some(-3)))
        );
    }
}
