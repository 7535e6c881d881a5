//! `cohort_retention(table, actor, ts, period, periods, since, until, mode, cumulative,
//! start_filter, return_filter, bucketing, segment, tz, week_start)`: the retention triangle of
//! calendar-period cohorts, counted in calendar periods or in rolling windows from each actor's
//! start.
//!
//! The call plans into DataFusion operators and two aggregates, so it runs in parallel here and
//! unchanged on a cluster: `GROUP BY [segment,] actor` collecting each actor's distinct periods
//! with a start event and with a return event (as `period_start` DATEs; a filter that is not true
//! leaves a NULL, which `active_days` skips), then [`cohort_counts`](crate::cohort_counts) folding
//! them into the counters of each (cohort, period number). The fold's list is unnested into rows.
//! When the actor is an integer, one aggregate over the events does both steps without the
//! GROUP BY: [`cohort_sets`](crate::cohort_sets) keeps each period's starting and returning actors
//! as bitsets.
//!
//! With `mode => 'first_time'` the whole input is read, whatever the range: an actor's first start
//! event may lie long before `since`. With `'recurring'` nothing before the first reported cohort
//! can count, so the range's start reaches the scan. The end of the range never does:
//! `period_complete` and the triangle's cut compare with the input's last event.
//!
//! Rolling windows depend on the instant of each actor's start, which a set of periods cannot
//! carry: that plan finds the anchors first and joins them with the return events (see
//! [`plan_rolling`]), then folds with [`rolling_cohort_counts`](crate::rolling_cohort_counts).

use std::sync::OnceLock;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, DFSchema, JoinType, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_aggregate::expr_fn::{array_agg, max, min};
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder,
    ScalarUDF, cast, col, lit, when,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::active_days::active_days;
use crate::cohort_counts::{CohortCounts, MAX_PERIODS, Mode};
use crate::cohort_sets::CohortSets;
use crate::period::Period;
use crate::period_start::PeriodStart;
use crate::rolling_cohort_counts::RollingCohortCounts;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order,
};
use crate::time_arguments::{ActorInput, PeriodRange, TimeBound, date_literal};

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
             segment, with a segment), or at until. Columns: [segment,] cohort DATE (TIMESTAMP WITH TIME ZONE for hours), cohort_size \
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
            "'hour', 'day', 'week', 'month', 'quarter' or 'year' (an hour's cohort is the \
             TIMESTAMP WITH TIME ZONE it starts). Default: 'week'.",
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
            "'calendar': period numbers are calendar periods in tz. 'rolling' (Amplitude's and \
             Mixpanel's \"day N\"): period number k is the window [anchor + k * L, anchor + (k + \
             1) * L) from the actor's start event (its first, or its first in the cohort for \
             'recurring'), L being 24 hours, 7 days or 30 days for period 'day', 'week' or \
             'month', whatever the zone's clock changes; cohorts stay calendar periods. A rolling \
             cell is reported once the cohort's earliest window had started by the last event \
             (and before until), and complete once every actor's window had ended by then. \
             Default: 'calendar'.",
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
        let period = input.report_period(NAME, arguments.string("period", context)?, true)?;
        let periods = parse_periods(arguments.constant("periods", context)?)?;
        let mode = match arguments.string("mode", context)? {
            None => Mode::FirstTime,
            Some(text) => Mode::parse(&text).ok_or_else(|| {
                plan_datafusion_err!(
                    "{NAME}: argument mode: '{text}' is not valid: use 'first_time' or 'recurring'"
                )
            })?,
        };
        let cumulative = arguments.boolean("cumulative", false, context)?;
        let rolling = match arguments.string("bucketing", context)? {
            None => false,
            Some(text) if text.eq_ignore_ascii_case("calendar") => false,
            Some(text) if text.eq_ignore_ascii_case("rolling") => true,
            Some(text) => {
                return plan_err!(
                    "{NAME}: argument bucketing: '{text}' is not valid: use 'calendar' or 'rolling'"
                );
            }
        };
        let schema = input.plan.schema().as_ref().clone();
        let start_filter = filter_argument(arguments, "start_filter", &schema, context)?;
        let return_filter = filter_argument(arguments, "return_filter", &schema, context)?;

        let calendar = &input.calendar;
        let PeriodRange {
            until,
            first_period,
            end_key,
            complete_key,
        } = PeriodRange::read(NAME, arguments, period, calendar, context)?;

        if rolling {
            let window = rolling_window(period, &input.ts_type)?;
            let cells = Cells {
                periods,
                mode,
                cumulative,
                first_period,
                until,
            };
            return plan_rolling(input, period, window, cells, start_filter, return_filter);
        }
        let time = Expr::Column(input.ts.clone());
        let mut filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        // Hours reach the fold as numbers; their first one filters no scan (the fold drops the
        // earlier cohorts all the same).
        if let (Mode::Recurring, Some(first), false) = (mode, first_period, period == Period::Hour)
        {
            filter = filter.and(
                time.clone()
                    .gt_eq(input.day_start_literal(i64::from(first))),
            );
        }
        let (day, active_period) = input.day_and_period(period);
        let settings = [
            lit(period.name()),
            lit(i64::from(periods)),
            lit(match mode {
                Mode::FirstTime => "first_time",
                Mode::Recurring => "recurring",
            }),
            lit(cumulative),
            date_literal(first_period.map(i64::from)),
            date_literal(end_key),
            date_literal(complete_key),
        ];
        let segments = &input.segments;
        let integer_actors = input.actor_type()?.is_integer();
        let events = LogicalPlanBuilder::from(input.plan.clone()).filter(filter)?;
        let period_if = |predicate: &Option<Expr>| -> Result<Expr> {
            match predicate {
                Some(predicate) => when(predicate.clone(), active_period.clone()).end(),
                None => Ok(active_period.clone()),
            }
        };
        // Without filters the start and return periods are the same: collect them once.
        let same_periods = start_filter.is_none() && return_filter.is_none();
        if integer_actors {
            let mut arguments = vec![
                Expr::Column(input.actor.clone()),
                active_period.clone(),
                period_if(&start_filter)?,
                match same_periods {
                    true => lit(ScalarValue::Null),
                    false => period_if(&return_filter)?,
                },
                day,
            ];
            arguments.extend(settings);
            let sets = AggregateUDF::from(CohortSets::new()).call(arguments);
            return report_rows(events, &input, period, sets);
        }
        let mut per_actor_values = vec![
            active_days(period_if(&start_filter)?).alias("starts"),
            max(active_period.clone()).alias("last_period"),
            max(day).alias("last_day"),
        ];
        let returns = if same_periods {
            col("starts")
        } else {
            per_actor_values.push(active_days(period_if(&return_filter)?).alias("returns"));
            col("returns")
        };
        let actor_groups: Vec<Expr> = segments
            .iter()
            .cloned()
            .chain([input.actor.clone()])
            .map(Expr::Column)
            .collect();
        let mut arguments = vec![col("starts"), returns, col("last_period"), col("last_day")];
        arguments.extend(settings);
        let counts = AggregateUDF::from(CohortCounts::new()).call(arguments);
        let per_actor = events.aggregate(actor_groups, per_actor_values)?;
        report_rows(per_actor, &input, period, counts)
    }
}

/// The report: `fold` over the per-actor rows of each segment, unnested into the documented
/// columns and order.
fn report_rows(
    per_actor: LogicalPlanBuilder,
    input: &ActorInput,
    period: Period,
    fold: Expr,
) -> Result<LogicalPlan> {
    let segments = &input.segments;
    let field = |name: &str| get_field(col(FOLDED), name);
    let mut output = folded_segments(segments);
    output.push(input.period_column(period, field("cohort"), "cohort"));
    let columns = [
        "cohort_size",
        "period_number",
        "retained",
        "retention_rate",
        "period_complete",
    ];
    output.extend(columns.into_iter().map(|name| field(name).alias(name)));
    let mut order = folded_segments(segments);
    order.extend([col("cohort"), col("period_number")]);
    let folded = fold_segments(per_actor, segments, fold)?.project(output)?;
    in_order(folded, order)?.build()
}

/// What a report's cells are: how many period numbers, how actors make cohorts, and the range.
struct Cells {
    periods: i32,
    mode: Mode,
    cumulative: bool,
    first_period: Option<i32>,
    until: Option<TimeBound>,
}

/// How many ticks of a time column (its raw value as a BIGINT) make a second; a DATE counts days.
fn ticks_per_second(ts_type: &DataType) -> Option<i64> {
    match ts_type {
        DataType::Timestamp(TimeUnit::Second, _) => Some(1),
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => Some(1_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some(1_000_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(1_000_000_000),
        _ => None,
    }
}

/// The length of a rolling window in ticks of the time column: 24 hours, 7 days or 30 days.
fn rolling_window(period: Period, ts_type: &DataType) -> Result<i64> {
    let days = match period {
        Period::Day => 1,
        Period::Week => 7,
        Period::Month => 30,
        other => {
            return plan_err!(
                "{NAME}: argument bucketing: 'rolling' windows last 24 hours, 7 days or 30 days: \
                 use period 'day', 'week' or 'month' with it, not '{}'",
                other.name()
            );
        }
    };
    Ok(match ticks_per_second(ts_type) {
        Some(ticks) => days * 86_400 * ticks,
        None => days,
    })
}

/// `bound` in ticks of the time column: the first tick at or after it (for a DATE column, the
/// first day that starts at or after it).
fn ticks_at(bound: &TimeBound, ts_type: &DataType) -> i64 {
    match (ts_type, ticks_per_second(ts_type)) {
        (DataType::Date64, _) => bound.first_day * 86_400_000,
        (_, Some(ticks)) if ticks >= 1_000_000 => bound.micros * (ticks / 1_000_000),
        (_, Some(ticks)) => {
            let per_tick = 1_000_000 / ticks;
            bound.micros.div_euclid(per_tick) + i64::from(bound.micros.rem_euclid(per_tick) > 0)
        }
        (_, None) => bound.first_day,
    }
}

/// Rolling retention: each actor's windows count from its anchor, its first start event (in each
/// cohort, for 'recurring'). One aggregate finds the anchors and each actor's last event; a join
/// with the return events numbers the windows they fall in; a second aggregate gathers them per
/// (actor, cohort) for [`RollingCohortCounts`].
///
/// The join pairs every return with each of its actor's cohorts: linear in the returns for
/// 'first_time', and in returns times cohorts per actor for 'recurring'.
fn plan_rolling(
    input: ActorInput,
    period: Period,
    window: i64,
    cells: Cells,
    start_filter: Option<Expr>,
    return_filter: Option<Expr>,
) -> Result<LogicalPlan> {
    let time = Expr::Column(input.ts.clone());
    let actor = Expr::Column(input.actor.clone());
    let raw = |value: Expr| cast(value, DataType::Int64);
    let known = actor.clone().is_not_null().and(time.clone().is_not_null());
    let period_start = |value: Expr| {
        ScalarUDF::from(PeriodStart::new()).call(vec![
            value,
            lit(period.name()),
            lit(input.tz.name()),
            lit(input.week_start.to_string()),
        ])
    };
    let segments = &input.segments;
    let segment_columns = || segments.iter().cloned().map(Expr::Column);

    let start_time = match &start_filter {
        Some(predicate) => when(predicate.clone(), time.clone()).end()?,
        None => time.clone(),
    };
    let mut groups: Vec<Expr> = segment_columns().chain([actor.clone()]).collect();
    let mut anchor_filter = known.clone();
    let cohort = match cells.mode {
        Mode::FirstTime => period_start(col("anchor_time")),
        Mode::Recurring => {
            groups.push(period_start(time.clone()).alias("cohort"));
            if let Some(first) = cells.first_period {
                anchor_filter = anchor_filter.and(
                    time.clone()
                        .gt_eq(input.day_start_literal(i64::from(first))),
                );
            }
            col("cohort")
        }
    };
    // A cohort outside the report still gives its actor's last event; NULL says so.
    let mut reported = Expr::Literal(ScalarValue::Boolean(Some(true)), None);
    if let Some(first) = cells.first_period {
        reported = reported.and(cohort.clone().gt_eq(date_literal(Some(i64::from(first)))));
    }
    if let Some(until) = &cells.until {
        reported = reported.and(cohort.clone().lt(date_literal(Some(until.first_day))));
    }
    let mut anchor_columns: Vec<Expr> = segment_columns().chain([actor.clone()]).collect();
    anchor_columns.extend([
        when(reported, cohort).end()?.alias("cohort"),
        raw(col("anchor_time")).alias("anchor"),
        col("last"),
    ]);
    let anchors = LogicalPlanBuilder::from(input.plan.clone())
        .filter(anchor_filter)?
        .aggregate(
            groups,
            [
                min(start_time).alias("anchor_time"),
                max(raw(time.clone())).alias("last"),
            ],
        )?
        .project(anchor_columns)?;

    let returning_segment = |index: usize| format!("__usagelake_returning_segment_{index}");
    let mut return_filter_expr = known;
    if let Some(predicate) = return_filter {
        return_filter_expr = return_filter_expr.and(predicate);
    }
    if let Some(until) = &cells.until {
        return_filter_expr = return_filter_expr.and(input.before(until));
    }
    let mut return_columns: Vec<Expr> = segment_columns()
        .enumerate()
        .map(|(index, segment)| segment.alias(returning_segment(index)))
        .collect();
    return_columns.extend([
        actor.clone().alias("__usagelake_returning_actor"),
        raw(time).alias("__usagelake_return"),
    ]);
    let returns = LogicalPlanBuilder::from(input.plan.clone())
        .filter(return_filter_expr)?
        .project(return_columns)?
        .build()?;

    let mut left_keys: Vec<Column> = segments.to_vec();
    left_keys.push(input.actor.clone());
    let mut right_keys: Vec<Column> = (0..segments.len())
        .map(|index| Column::from_name(returning_segment(index)))
        .collect();
    right_keys.push(Column::from_name("__usagelake_returning_actor"));
    let since_anchor = col("__usagelake_return") - col("anchor");
    let mut in_windows = since_anchor.clone().gt_eq(lit(0i64));
    if !cells.cumulative {
        in_windows = in_windows.and(
            since_anchor
                .clone()
                .lt(lit(window * i64::from(cells.periods))),
        );
    }
    let mut per_actor_groups: Vec<Expr> = segment_columns().chain([actor]).collect();
    per_actor_groups.extend([col("cohort"), col("anchor"), col("last")]);
    let per_actor = anchors
        .join(
            returns,
            JoinType::Left,
            (left_keys, right_keys),
            Some(in_windows),
        )?
        .aggregate(
            per_actor_groups,
            [array_agg(since_anchor / lit(window)).alias("numbers")],
        )?;
    let until = cells
        .until
        .as_ref()
        .map(|until| ticks_at(until, &input.ts_type));
    let counts = AggregateUDF::from(RollingCohortCounts::new()).call(vec![
        col("cohort"),
        col("anchor"),
        col("last"),
        col("numbers"),
        lit(window),
        lit(i64::from(cells.periods)),
        lit(cells.cumulative),
        lit(ScalarValue::Int64(until)),
    ]);
    report_rows(per_actor, &input, period, counts)
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
