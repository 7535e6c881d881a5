//! `churn_risk(table, account, ts, as_of, window_days, drop_threshold, inactive_days, feature,
//! segment, tz)`: the accounts to call this week, with the reasons.
//!
//! Customer-success teams watch for accounts drifting away before they cancel: an account that
//! went quiet, one whose usage fell by more than a threshold from one window to the next, one
//! that stopped using a feature it used before. This compares two windows of `window_days` local
//! days, the current one ending on `as_of` and the one before it, per account, and lists only the
//! accounts with a reason, the most severe first (longest inactive, then the largest drop).
//!
//! The call plans into DataFusion's own operators (one GROUP BY account with filtered aggregates,
//! array functions for the features), so it parallelises here and runs unchanged on a cluster.
//! With `as_of` given, only the two windows are read (the range reaches the scan); without it,
//! `as_of` is the last day with data, found by an aggregate over the whole input first.

use std::sync::OnceLock;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, NullEquality, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{array_agg, count, max, sum};
use datafusion::functions_nested::expr_fn::{
    array_concat, array_except, array_sort, cardinality, make_array,
};
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    DocSection, Documentation, Expr, ExprFunctionExt, JoinType, LogicalPlan, LogicalPlanBuilder,
    ScalarUDF, SortExpr, cast, col, lit, when,
};

use crate::period_start::PeriodStart;
use crate::table_function::{BoundArguments, MetricTableFunction, in_order_by};
use crate::time_arguments::{ActorInput, time_bound};

const NAME: &str = "churn_risk";

const DEFAULT_WINDOW_DAYS: i64 = 28;
const DEFAULT_DROP_THRESHOLD: f64 = 0.5;
const DEFAULT_INACTIVE_DAYS: i64 = 14;

/// The reasons an account is listed, in the order they are given.
const REASONS: [&str; 3] = ["inactive", "usage_drop", "feature_dropped"];

/// The `churn_risk` table function.
#[derive(Debug)]
pub(crate) struct ChurnRisk;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "The alert list of accounts drifting away. The current window is the window_days \
             local days ending on as_of (inclusive), the previous one the window_days days \
             before it; accounts with an event in either are compared, events after as_of are \
             not read. Reasons, in this order: 'inactive' (no event in the last inactive_days \
             days: days_inactive >= inactive_days), 'usage_drop' (usage_change below \
             -drop_threshold), 'feature_dropped' (a feature used in the previous window and not \
             in the current one). Only accounts with a reason are listed, the most severe \
             first: by days_inactive descending, then usage_change ascending (NULL last), then \
             account. Columns: [segment,] account, last_seen TIMESTAMP (the last event up to \
             as_of), days_inactive INT (as_of minus the local date of last_seen), events_current \
             BIGINT, events_previous BIGINT, usage_change DOUBLE (events_current / \
             events_previous - 1: -1 when usage stopped, NULL without previous events), \
             active_days_current INT, active_days_previous INT, features_dropped LIST<VARCHAR> \
             (sorted), reasons LIST<VARCHAR>.",
            "churn_risk(table [, account [, ts [, as_of [, window_days [, drop_threshold [, \
             inactive_days [, feature [, segment [, tz]]]]]]]]])",
        )
        .with_argument(
            "table",
            "The events: a table or view name ('events'), or a query ('SELECT * FROM events \
             WHERE plan <> ''free''').",
        )
        .with_argument(
            "account",
            "The column that identifies an account. Default: 'account_id'.",
        )
        .with_argument(
            "ts",
            "The event time column, TIMESTAMP or DATE. Default: 'ts'.",
        )
        .with_argument(
            "as_of",
            "The last day of the current window, inclusive (a DATE; a TIMESTAMP means its local \
             date; or a 'YYYY-MM-DD' string). Default: the last day with data.",
        )
        .with_argument(
            "window_days",
            "The length of each window in days, 1 to 366. Default: 28.",
        )
        .with_argument(
            "drop_threshold",
            "The fall in events from the previous window to the current one, as a fraction, \
             beyond which usage dropped: 0.5 lists an account whose events fell by more than \
             half. Default: 0.5.",
        )
        .with_argument(
            "inactive_days",
            "Days without an event, up to as_of, that make an account inactive, 1 or more. \
             Default: 14.",
        )
        .with_argument(
            "feature",
            "The column naming the feature an event uses (NULL for none). Default: 'feature'.",
        )
        .with_argument(
            "segment",
            "A column to compute the function for each of its values separately; it becomes the \
             first column. Default: none.",
        )
        .with_argument(
            "tz",
            "The IANA time zone of the local days. Default: the session setting usagelake.tz, \
             else UTC.",
        )
        .with_sql_example(
            "SELECT account_id, days_inactive, usage_change, features_dropped, reasons \
             FROM churn_risk('events', as_of => DATE '2024-12-31');\n\
             SELECT * FROM churn_risk('events', window_days => 14, drop_threshold => 0.3, \
             segment => 'plan');",
        )
        .build()
    })
}

impl MetricTableFunction for ChurnRisk {
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
        let input =
            ActorInput::read_columns(NAME, arguments, ("account", "account_id"), "ts", context)?;
        let feature = arguments.column("feature", "feature", &input.plan, context)?;
        let window_days =
            arguments.whole_number("window_days", DEFAULT_WINDOW_DAYS, "days", context)?;
        if !(1..=366).contains(&window_days) {
            return plan_err!(
                "{NAME}: argument 'window_days' must be from 1 to 366 days, not {window_days}"
            );
        }
        let inactive_days =
            arguments.whole_number("inactive_days", DEFAULT_INACTIVE_DAYS, "days", context)?;
        if inactive_days < 1 {
            return plan_err!(
                "{NAME}: argument 'inactive_days' must be 1 or more, not {inactive_days}"
            );
        }
        let drop_threshold = arguments.number("drop_threshold", DEFAULT_DROP_THRESHOLD, context)?;
        if drop_threshold < 0.0 {
            return plan_err!(
                "{NAME}: argument 'drop_threshold' must be 0 or more (0.5 is a fall by half), \
                 not {drop_threshold}"
            );
        }
        let as_of = time_bound(NAME, arguments, "as_of", &input.calendar, context)?
            .map(|bound| bound.local_date);

        let time = Expr::Column(input.ts.clone());
        let mut filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        if let Some(as_of) = as_of {
            let first = input.day_start_literal(as_of - 2 * window_days + 1);
            let end = input.day_start_literal(as_of + 1);
            filter = filter.and(time.clone().gt_eq(first).and(time.clone().lt(end)));
        }
        let day = ScalarUDF::from(PeriodStart::new()).call(vec![
            time.clone(),
            lit("day"),
            lit(input.tz.name()),
        ]);
        let last_seen = match &input.ts_type {
            DataType::Timestamp(..) => time.clone(),
            _ => cast(
                time.clone(),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
        };
        let segment_name = |index: usize| format!("__usagelake_segment_{index}");
        let mut columns: Vec<Expr> = input
            .segments
            .iter()
            .enumerate()
            .map(|(index, segment)| Expr::Column(segment.clone()).alias(segment_name(index)))
            .collect();
        columns.extend([
            Expr::Column(input.actor.clone()).alias("__account"),
            last_seen.alias("__time"),
            cast(day, DataType::Int32).alias("__day"),
            cast(Expr::Column(feature), DataType::Utf8).alias("__feature"),
        ]);
        let events = LogicalPlanBuilder::from(input.plan.clone())
            .filter(filter)?
            .project(columns)?;
        // The last day of the current window, as a day number.
        let (events, as_of) = match as_of {
            Some(as_of) => (events, lit(as_of as i32)),
            // Each segment's own last day, as if it were its own table.
            None => {
                let segments = input.segments.len();
                let last = events
                    .clone()
                    .aggregate(
                        (0..segments).map(|index| col(segment_name(index))),
                        vec![max(col("__day")).alias("__as_of")],
                    )?
                    .project(
                        (0..segments)
                            .map(|index| col(segment_name(index)).alias(format!("__last_{index}")))
                            .chain([col("__as_of")]),
                    )?
                    .build()?;
                let joined = if segments == 0 {
                    events.cross_join(last)?
                } else {
                    events.join_detailed(
                        last,
                        JoinType::Inner,
                        (
                            (0..segments)
                                .map(|i| Column::from_name(segment_name(i)))
                                .collect::<Vec<_>>(),
                            (0..segments)
                                .map(|i| Column::from_name(format!("__last_{i}")))
                                .collect::<Vec<_>>(),
                        ),
                        None,
                        NullEquality::NullEqualsNull,
                    )?
                };
                (joined, col("__as_of"))
            }
        };
        let window = lit(window_days as i32);
        let current = col("__day").gt(as_of.clone() - window.clone());
        let previous = Expr::Not(Box::new(current.clone()));
        let in_windows = col("__day")
            .lt_eq(as_of.clone())
            .and(col("__day").gt(as_of.clone() - window.clone() - window));

        let segment_columns = || (0..input.segments.len()).map(|index| col(segment_name(index)));
        let events_in = |window: Expr| sum(cast(window, DataType::Int64));
        let days_in = |window: Expr| {
            count(col("__day"))
                .distinct()
                .filter(window)
                .build()
                .map(|days| cast(days, DataType::Int32))
        };
        let features_in = |window: Expr| {
            array_agg(col("__feature"))
                .distinct()
                .filter(window.and(col("__feature").is_not_null()))
                .build()
        };
        let per_account = events.filter(in_windows)?.aggregate(
            segment_columns().chain([col("__account")]),
            vec![
                max(col("__time")).alias("__last_seen"),
                max(col("__day")).alias("__last_day"),
                max(as_of).alias("__as_of_day"),
                events_in(current.clone()).alias("__events_current"),
                events_in(previous.clone()).alias("__events_previous"),
                days_in(current.clone())?.alias("__days_current"),
                days_in(previous.clone())?.alias("__days_previous"),
                features_in(current)?.alias("__features_current"),
                features_in(previous)?.alias("__features_previous"),
            ],
        )?;

        let no_features = || {
            lit(ScalarValue::List(ScalarValue::new_list_nullable(
                &[],
                &DataType::Utf8,
            )))
        };
        let days_inactive = (col("__as_of_day") - col("__last_day")).alias("days_inactive");
        let usage_change = when(
            col("__events_previous").eq(lit(0_i64)),
            lit(ScalarValue::Float64(None)),
        )
        .otherwise(
            cast(col("__events_current"), DataType::Float64)
                / cast(col("__events_previous"), DataType::Float64)
                - lit(1.0),
        )?
        .alias("usage_change");
        let features_dropped = array_sort(
            array_except(
                coalesce(vec![col("__features_previous"), no_features()]),
                coalesce(vec![col("__features_current"), no_features()]),
            ),
            lit("ASC"),
            lit("NULLS LAST"),
        )
        .alias("features_dropped");
        let mut columns: Vec<Expr> = input
            .segments
            .iter()
            .enumerate()
            .map(|(index, segment)| col(segment_name(index)).alias(&segment.name))
            .collect();
        columns.extend([
            col("__account").alias(&input.actor.name),
            col("__last_seen").alias("last_seen"),
            days_inactive,
            col("__events_current").alias("events_current"),
            col("__events_previous").alias("events_previous"),
            usage_change,
            col("__days_current").alias("active_days_current"),
            col("__days_previous").alias("active_days_previous"),
            features_dropped,
        ]);
        let reported = per_account.project(columns)?;
        let conditions = [
            col("days_inactive").gt_eq(lit(inactive_days as i32)),
            col("usage_change").lt(lit(-drop_threshold)),
            cardinality(col("features_dropped")).gt(lit(0_u64)),
        ];
        let reasons = array_concat(
            REASONS
                .iter()
                .zip(conditions.iter())
                .map(|(reason, condition)| {
                    when(condition.clone(), make_array(vec![lit(*reason)])).otherwise(no_features())
                })
                .collect::<Result<Vec<_>>>()?,
        )
        .alias("reasons");
        let any_reason = conditions
            .into_iter()
            .reduce(|any, condition| any.or(condition))
            .unwrap_or(lit(false));
        let mut output: Vec<Expr> = reported
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        output.push(reasons);
        let mut order: Vec<SortExpr> = input
            .segments
            .iter()
            .map(|segment| col(&segment.name).sort(true, true))
            .collect();
        order.extend([
            col("days_inactive").sort(false, false),
            col("usage_change").sort(true, false),
            col(&input.actor.name).sort(true, true),
        ]);
        let listed = reported.filter(any_reason)?.project(output)?;
        in_order_by(listed, order)?.build()
    }
}
