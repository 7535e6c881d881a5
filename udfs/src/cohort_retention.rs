//! `cohort_retention(table, actor, ts, period, periods, since, until, mode, cumulative,
//! start_filter, return_filter, bucketing, segment, tz, week_start)`: the retention triangle of
//! calendar-period cohorts.
//!
//! The call plans into DataFusion operators and two aggregates, so it runs in parallel here and
//! unchanged on a cluster: `GROUP BY [segment,] actor` collecting each actor's distinct periods
//! with a start event and with a return event (as `period_start` DATEs; a filter that is not true
//! leaves a NULL, which `active_days` skips), then [`cohort_counts`](crate::cohort_counts) folding
//! them into the counters of each (cohort, period number). The fold's list is unnested into rows.
//!
//! With `mode => 'first_time'` the whole input is read, whatever the range: an actor's first start
//! event may lie long before `since`. With `'recurring'` nothing before the first reported cohort
//! can count, so the range's start reaches the scan. The end of the range never does:
//! `period_complete` and the triangle's cut compare with the input's last event.

use std::sync::OnceLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder,
    ScalarUDF, col, lit, when,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::active_days::active_days;
use crate::cohort_counts::{CohortCounts, MAX_PERIODS, Mode};
use crate::period_start::PeriodStart;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order,
};
use crate::time_arguments::{ActorInput, PeriodRange, report_period};

const NAME: &str = "cohort_retention";

/// The `cohort_retention` table function.
#[derive(Debug)]
pub(crate) struct CohortRetention;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "Cohort retention: actors grouped by the calendar period of their start event (the \
             cohort), and for each period number k from 0 to periods - 1 how many of them had a \
             return event in period cohort + k. retained is cohort_size for k = 0; retention_rate \
             is retained / cohort_size. With mode 'first_time' an actor's cohort is the period of \
             its first start event over all of the input's history (an actor first seen before \
             since is in no reported cohort); with 'recurring' every period with a start event is \
             a cohort of its own. With cumulative, an actor counts for every k up to its last \
             return period before until (returns past the last period number count too). Only \
             cohorts with actors are reported, and only cells whose period starts before until \
             and not after the last period with data: the retention triangle. period_complete is \
             false for a cell whose period had not ended at the last event of the input (of the \
             segment, with a segment), or at until. Columns: [segment,] cohort DATE, cohort_size \
             BIGINT, period_number INT, retained BIGINT, retention_rate DOUBLE, period_complete \
             BOOLEAN, ordered by segment, cohort and period_number.",
            "cohort_retention(table [, actor [, ts [, period [, periods [, since [, until [, mode \
             [, cumulative [, start_filter [, return_filter [, bucketing [, segment [, tz [, \
             week_start]]]]]]]]]]]]]])",
        )
        .with_argument(
            "table",
            "The input: a table or view name ('events'), or a query ('SELECT * FROM events WHERE \
             plan = ''pro'''). Its whole history counts towards first start events.",
        )
        .with_argument(
            "actor",
            "The column that identifies an actor. Default: 'user_id'.",
        )
        .with_argument(
            "ts",
            "The event time column, TIMESTAMP or DATE (a DATE is the local midnight that starts \
             it). Default: 'ts'.",
        )
        .with_argument(
            "period",
            "'day', 'week', 'month', 'quarter' or 'year'. Default: 'week'.",
        )
        .with_argument(
            "periods",
            "How many period numbers, from 0 to periods - 1; 1 to 1000. Default: 12.",
        )
        .with_argument(
            "since",
            "Report the cohorts whose period's first instant is at or after it (a DATE: its \
             local midnight; a TIMESTAMP; or a 'YYYY-MM-DD' string). Default: all.",
        )
        .with_argument(
            "until",
            "Report the cohorts and cells whose period's first instant is before it (same types \
             as since); returns in later periods do not count. Default: up to the last period \
             with data.",
        )
        .with_argument(
            "mode",
            "'first_time' (an actor's cohort is the period of its first start event ever) or \
             'recurring' (every period with a start event is a cohort). Default: 'first_time'.",
        )
        .with_argument(
            "cumulative",
            "true: an actor counts in every period number up to its last return (\"on or \
             after\" retention). Default: false.",
        )
        .with_argument(
            "start_filter",
            "A SQL predicate over the input's columns choosing the start events, such as \
             'event = ''signup'''. Default: every event.",
        )
        .with_argument(
            "return_filter",
            "A SQL predicate over the input's columns choosing the return events. Default: \
             every event.",
        )
        .with_argument(
            "bucketing",
            "'calendar': periods are calendar periods in tz. ('rolling', windows from each \
             actor's first start, is not supported yet.) Default: 'calendar'.",
        )
        .with_argument(
            "segment",
            "A column to compute the function for each of its values separately, as if each were \
             its own table (an actor's history in each counts separately); it becomes the first \
             column. Default: none.",
        )
        .with_argument(
            "tz",
            "The IANA time zone of the periods. Default: the session setting usagelake.tz, else \
             UTC.",
        )
        .with_argument(
            "week_start",
            "First day of a week: 'monday' or 'sunday'. Default: the session setting \
             usagelake.week_start, else 'monday'.",
        )
        .with_sql_example(
            "SELECT cohort, period_number, retention_rate FROM cohort_retention('events', \
             start_filter => 'event = ''signup''', periods => 8);\n\
             SELECT * FROM cohort_retention('events', period => 'month', mode => 'recurring', \
             cumulative => true, segment => 'plan');",
        )
        .build()
    })
}

impl MetricTableFunction for CohortRetention {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        documentation()
    }

    fn plan(
        &self,
        arguments: &BoundArguments,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<LogicalPlan> {
        let input = ActorInput::read(NAME, arguments, context)?;
        let period = report_period(NAME, arguments.string("period", context)?)?;
        let periods = parse_periods(arguments.constant("periods", context)?)?;
        let mode = match arguments.string("mode", context)? {
            None => Mode::FirstTime,
            Some(text) => Mode::parse(&text).ok_or_else(|| {
                plan_datafusion_err!(
                    "{NAME}: argument mode: '{text}' is not valid: use 'first_time' or 'recurring'"
                )
            })?,
        };
        let cumulative = match arguments.constant("cumulative", context)? {
            None | Some(ScalarValue::Boolean(None) | ScalarValue::Null) => false,
            Some(ScalarValue::Boolean(Some(value))) => value,
            Some(other) => {
                return plan_err!("{NAME}: argument cumulative must be true or false, not {other}");
            }
        };
        match arguments.string("bucketing", context)? {
            None => {}
            Some(text) if text.eq_ignore_ascii_case("calendar") => {}
            Some(text) if text.eq_ignore_ascii_case("rolling") => {
                return plan_err!(
                    "{NAME}: argument bucketing: 'rolling' is not supported yet; use 'calendar'"
                );
            }
            Some(text) => {
                return plan_err!(
                    "{NAME}: argument bucketing: '{text}' is not valid: use 'calendar'"
                );
            }
        }
        let schema = input.plan.schema().as_ref().clone();
        let start_filter = filter_argument(arguments, "start_filter", &schema, context)?;
        let return_filter = filter_argument(arguments, "return_filter", &schema, context)?;

        let calendar = &input.calendar;
        let PeriodRange {
            until,
            first_period,
        } = PeriodRange::read(NAME, arguments, period, calendar, context)?;

        let time = Expr::Column(input.ts.clone());
        let mut filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        if let (Mode::Recurring, Some(first)) = (mode, first_period) {
            filter = filter.and(
                time.clone()
                    .gt_eq(input.day_start_literal(i64::from(first))),
            );
        }
        let period_start = ScalarUDF::from(PeriodStart::new());
        let day = period_start.call(vec![time.clone(), lit("day"), lit(input.tz.name())]);
        let active_period = period_start.call(vec![
            time,
            lit(period.name()),
            lit(input.tz.name()),
            lit(input.week_start.to_string()),
        ]);
        let periods_of = |predicate: &Option<Expr>| -> Result<Expr> {
            match predicate {
                Some(predicate) => Ok(active_days(
                    when(predicate.clone(), active_period.clone()).end()?,
                )),
                None => Ok(active_days(active_period.clone())),
            }
        };
        let mut per_actor_values = vec![
            periods_of(&start_filter)?.alias("starts"),
            max(active_period.clone()).alias("last_period"),
            max(day).alias("last_day"),
        ];
        // Without filters the start and return periods are the same list: collect it once.
        let returns = if start_filter.is_none() && return_filter.is_none() {
            col("starts")
        } else {
            per_actor_values.push(periods_of(&return_filter)?.alias("returns"));
            col("returns")
        };
        let segments = &input.segments;
        let actor_groups: Vec<Expr> = segments
            .iter()
            .cloned()
            .chain([input.actor.clone()])
            .map(Expr::Column)
            .collect();
        let date_literal = |day: Option<i64>| lit(ScalarValue::Date32(day.map(|d| d as i32)));
        let counts = AggregateUDF::from(CohortCounts::new()).call(vec![
            col("starts"),
            returns,
            col("last_period"),
            col("last_day"),
            lit(period.name()),
            lit(i64::from(periods)),
            lit(match mode {
                Mode::FirstTime => "first_time",
                Mode::Recurring => "recurring",
            }),
            lit(cumulative),
            date_literal(first_period.map(i64::from)),
            date_literal(until.as_ref().map(|until| until.first_day)),
            date_literal(until.as_ref().map(|until| until.local_date)),
        ]);

        let columns = [
            "cohort",
            "cohort_size",
            "period_number",
            "retained",
            "retention_rate",
            "period_complete",
        ];
        let mut output = folded_segments(segments);
        output.extend(
            columns
                .into_iter()
                .map(|name| get_field(col(FOLDED), name).alias(name)),
        );
        let mut order = folded_segments(segments);
        order.extend([col("cohort"), col("period_number")]);
        let per_actor = LogicalPlanBuilder::from(input.plan)
            .filter(filter)?
            .aggregate(actor_groups, per_actor_values)?;
        let folded = fold_segments(per_actor, segments, counts)?.project(output)?;
        in_order(folded, order)?.build()
    }
}

/// The `periods` argument: an integer from 1 to [`MAX_PERIODS`], 12 when not given.
fn parse_periods(value: Option<ScalarValue>) -> Result<i32> {
    let value = match value {
        None | Some(ScalarValue::Null) => return Ok(12),
        Some(value) => value,
    };
    let number = match value.data_type().is_integer() {
        true => value.cast_to(&DataType::Int64).ok(),
        false => None,
    };
    match number {
        Some(ScalarValue::Int64(Some(number))) if (1..=MAX_PERIODS).contains(&number) => {
            Ok(number as i32)
        }
        _ => plan_err!(
            "{NAME}: argument periods must be an integer from 1 to {MAX_PERIODS}, not {value}"
        ),
    }
}

/// A predicate given as SQL text for `parameter`, planned over the input's columns.
fn filter_argument(
    arguments: &BoundArguments,
    parameter: &str,
    schema: &DFSchema,
    context: &mut dyn RelationPlannerContext,
) -> Result<Option<Expr>> {
    let Some(text) = arguments.string(parameter, context)? else {
        return Ok(None);
    };
    let bad = |error: &dyn std::fmt::Display| {
        plan_datafusion_err!(
            "{NAME}: argument {parameter}: '{text}' is not a predicate over the input's columns: \
             {error}"
        )
    };
    let parsed = Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| bad(&e))?;
    let predicate = context.sql_to_expr(parsed, schema).map_err(|e| bad(&e))?;
    match predicate.get_type(schema).map_err(|e| bad(&e))? {
        DataType::Boolean | DataType::Null => Ok(Some(predicate)),
        other => Err(bad(&format!("it is {other}, not BOOLEAN"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_default_to_12_and_must_be_from_1_to_1000() {
        assert_eq!(parse_periods(None).unwrap(), 12);
        assert_eq!(
            parse_periods(Some(ScalarValue::Int64(Some(1000)))).unwrap(),
            1000
        );
        for bad in [
            ScalarValue::Int64(Some(0)),
            ScalarValue::Int64(Some(1001)),
            ScalarValue::Float64(Some(2.5)),
        ] {
            let error = parse_periods(Some(bad)).unwrap_err().to_string();
            assert!(
                error.contains("argument periods must be an integer from 1 to 1000"),
                "{error}"
            );
        }
    }
}
