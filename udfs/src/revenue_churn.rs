//! `revenue_churn(table, account, ts, mrr, period, since, until, segment,
//! reactivation_in_quick_ratio, tz)`: ChartMogul's MRR movements of every calendar period, with
//! logo and revenue churn, GRR, NRR, quick ratio, ARPA and LTV.
//!
//! The input is MRR snapshots: an account's MRR in a period is the sum of its rows at the last
//! snapshot time of that period present in the input (of its segment). The call plans into
//! DataFusion operators and two aggregates, so it runs in parallel and unchanged on a cluster:
//!
//! 1. the distinct snapshot times, and per period the last of them (a small table: one row per
//!    period), joined back to the rows, so that only the rows at each period's last snapshot
//!    remain, without computing a period for every row;
//! 2. `GROUP BY [segment,] account` with [`mrr_history`](crate::mrr_history): the account's MRR in
//!    each period it paid, by period number;
//! 3. [`revenue_movements`](crate::revenue_movements) folding the histories into per-period
//!    movements and customer counts, unnested into rows;
//! 4. the rates by plain expressions, and LTV by a window over the previous periods' logo churn.
//!
//! The whole history before `since` is read: movements need the previous period's MRR, new and
//! reactivation need to know whether an account ever paid, and LTV averages earlier periods.
//! Data after the last reported period is not read.

use std::sync::OnceLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, NullEquality, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, ExprFunctionExt, JoinType, LogicalPlan,
    LogicalPlanBuilder, ScalarUDF, WindowFrame, WindowFrameBound, WindowFrameUnits, cast, col, lit,
    when,
};

use crate::lifecycle_counts::next_period_start;
use crate::mrr_history::{MrrHistory, history_type};
use crate::period_start::PeriodStart;
use crate::revenue_movement_sets::RevenueMovementSets;
use crate::revenue_movements::{CUSTOMER_COLUMNS, MONEY_COLUMNS, RevenueMovements};
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order, ratio,
};
use crate::time_arguments::{ActorInput, PeriodRange, date_literal};

const NAME: &str = "revenue_churn";

/// The periods before each one whose mean logo churn rate LTV divides by.
const LTV_PERIODS: u64 = 6;

/// The `revenue_churn` table function.
#[derive(Debug)]
pub(crate) struct RevenueChurn;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "ChartMogul's MRR movements of every calendar period, from MRR snapshots: an \
             account's MRR in a period is the sum of its rows at the last snapshot time of that \
             period present in the input (several subscriptions add up; 0 without a row there; a \
             sum below zero is an error naming the account and time). From the previous period's \
             MRR p to this one's m, an account is new (p = 0, never paid before), reactivated (p \
             = 0, paid before), expands or contracts by m - p, or churns (-p, m = 0). The first \
             period of the data has no previous one: every paying account is new there. ending = \
             starting + new + reactivation + expansion + contraction + churned, exactly: money \
             keeps its type (DECIMAL stays DECIMAL(38, s), integers BIGINT, floats DOUBLE). \
             Rates are DOUBLE, NULL when their denominator is 0: logo_churn_rate = \
             churned_customers / customers_start; gross_revenue_churn_rate = -(contraction + \
             churned) / starting; net_revenue_churn_rate = -(contraction + churned + expansion + \
             reactivation) / starting (negative is net expansion); grr = (starting + \
             contraction + churned) / starting; nrr = (starting + expansion + contraction + \
             churned) / starting; quick_ratio = (new + expansion [+ reactivation]) / \
             -(contraction + churned); arpa = ending / customers_end; ltv = arpa / the mean \
             logo_churn_rate of the up to 6 periods before this one (NULL when there are none or \
             the mean is 0). period_complete is false for a period that had not ended at the \
             last snapshot (or at until). Columns: [segment,] period DATE, starting_mrr, \
             new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr, churned_mrr, ending_mrr, \
             customers_start, new_customers, reactivated_customers, churned_customers, \
             customers_end BIGINT, logo_churn_rate, gross_revenue_churn_rate, \
             net_revenue_churn_rate, grr, nrr, quick_ratio, arpa, ltv DOUBLE, period_complete \
             BOOLEAN; every period from the first to the last of the data (or of the range), \
             ordered by segment and period. Reads the whole history before since.",
            "revenue_churn(table [, account [, ts [, mrr [, period [, since [, until [, segment \
             [, reactivation_in_quick_ratio [, tz]]]]]]]]])",
        )
        .with_argument(
            "table",
            "The MRR snapshots: a table or view name ('subscriptions'), or a query ('SELECT * \
             FROM subscriptions WHERE plan <> ''free''').",
        )
        .with_argument(
            "account",
            "The column that identifies an account. Default: 'account_id'.",
        )
        .with_argument(
            "ts",
            "The snapshot time column, DATE or TIMESTAMP (a DATE is the local midnight that \
             starts it). Default: 'month'.",
        )
        .with_argument(
            "mrr",
            "The recurring revenue column: DECIMAL, integer or floating point. Default: 'mrr'.",
        )
        .with_argument(
            "period",
            "'day', 'week', 'month', 'quarter' or 'year'. A quarter over monthly snapshots takes \
             each quarter's last snapshot, never a sum of three. Default: 'month'.",
        )
        .with_argument(
            "since",
            "Report the periods whose first instant is at or after it (a DATE: its local \
             midnight; a TIMESTAMP; or a 'YYYY-MM-DD' string). The history before it still \
             counts. Default: the first period with data.",
        )
        .with_argument(
            "until",
            "Report the periods whose first instant is before it (same types as since). A \
             period that had not ended at until is not complete. Default: up to the last period \
             with data.",
        )
        .with_argument(
            "segment",
            "A column (such as plan) to compute the function for each of its values separately, \
             as if each were its own table: an account that moves from one value to another \
             churns from the first and is new (or reactivated) in the second. It becomes the \
             first column. Default: none.",
        )
        .with_argument(
            "reactivation_in_quick_ratio",
            "true to count reactivation MRR with new and expansion in quick_ratio. Default: \
             false.",
        )
        .with_argument(
            "tz",
            "The IANA time zone of the periods. Default: the session setting usagelake.tz, else \
             UTC.",
        )
        .with_sql_example(
            "SELECT period, starting_mrr, new_mrr, churned_mrr, ending_mrr, nrr, grr \
             FROM revenue_churn('subscriptions');\n\
             SELECT * FROM revenue_churn('subscriptions', period => 'quarter', segment => 'plan', \
             since => DATE '2024-01-01');",
        )
        .build()
    })
}

/// The type MRR is summed in, and the type the money columns are reported in, for an MRR column
/// of `data_type`.
fn money_types(data_type: &DataType, column: &Column) -> Result<(DataType, DataType)> {
    match data_type {
        DataType::Decimal32(_, scale)
        | DataType::Decimal64(_, scale)
        | DataType::Decimal128(_, scale)
        | DataType::Decimal256(_, scale) => Ok((
            DataType::Decimal128(38, *scale),
            DataType::Decimal128(38, *scale),
        )),
        integer if integer.is_integer() => Ok((DataType::Decimal128(38, 0), DataType::Int64)),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            Ok((DataType::Float64, DataType::Float64))
        }
        other => plan_err!(
            "{NAME}: argument mrr: column '{}' is {other}, not a number; MRR must be DECIMAL, an \
             integer or a floating point number (cast it, or name another column with mrr => \
             'column')",
            column.name
        ),
    }
}

impl MetricTableFunction for RevenueChurn {
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
            ActorInput::read_columns(NAME, arguments, ("account", "account_id"), "month", context)?;
        let mrr = arguments.column("mrr", "mrr", &input.plan, context)?;
        let (sum_type, money_type) = {
            let (_, field) = input.plan.schema().qualified_field_from_column(&mrr)?;
            money_types(field.data_type(), &mrr)?
        };
        let period_name = arguments
            .string("period", context)?
            .unwrap_or_else(|| "month".to_string());
        let period = input.report_period(NAME, Some(period_name), false)?;
        let PeriodRange {
            first_period,
            end_key,
            complete_key,
            ..
        } = PeriodRange::read(NAME, arguments, period, &input.calendar, context)?;
        let reactivation_in_quick_ratio =
            arguments.boolean("reactivation_in_quick_ratio", false, context)?;

        let time = Expr::Column(input.ts.clone());
        let account = Expr::Column(input.actor.clone());
        let counted = account
            .clone()
            .is_not_null()
            .and(time.clone().is_not_null())
            .and(Expr::Column(mrr.clone()).is_not_null());
        // With `until`, rows are read up to the end of the last reported period, the one holding
        // the day before `end_key`; the rows after it only tell whether the input went on.
        let after_reported = match end_key {
            Some(end) => {
                let last = input.calendar.first_day(period, end - 1) as i32;
                Some(input.day_start_literal(next_period_start(period, last)?.into()))
            }
            None => None,
        };
        let rows = LogicalPlanBuilder::from(input.plan.clone()).filter(match &after_reported {
            Some(bound) => counted.clone().and(time.clone().lt(bound.clone())),
            None => counted.clone(),
        })?;

        // Each period's last snapshot time, per segment: from the distinct times, so that the
        // period is computed once per time, not once per row.
        let segments = &input.segments;
        let hidden = |index: usize| format!("__usagelake_segment_{index}");
        let (period_column, last_time, snapshot_day) = (
            "__usagelake_period",
            "__usagelake_last_time",
            "__usagelake_snapshot_day",
        );
        let segment_keys: Vec<Expr> = segments.iter().cloned().map(Expr::Column).collect();
        let (_, period_of) = input.day_and_period(period);
        let mut last_columns: Vec<Expr> = segments
            .iter()
            .enumerate()
            .map(|(index, segment)| Expr::Column(segment.clone()).alias(hidden(index)))
            .collect();
        last_columns.extend([
            col(period_column),
            col(last_time),
            ScalarUDF::from(PeriodStart::new())
                .call(vec![col(last_time), lit("day"), lit(input.tz.name())])
                .alias(snapshot_day),
        ]);
        let last_snapshots = rows
            .clone()
            .aggregate(
                segment_keys.iter().cloned().chain([time.clone()]),
                Vec::<Expr>::new(),
            )?
            .aggregate(
                segment_keys
                    .iter()
                    .cloned()
                    .chain([period_of.alias(period_column)]),
                vec![max(time.clone()).alias(last_time)],
            )?
            .project(last_columns)?
            .build()?;
        let mut left_keys = input.segments.clone();
        left_keys.push(input.ts.clone());
        let mut right_keys: Vec<Column> = (0..segments.len())
            .map(|index| Column::from_name(hidden(index)))
            .collect();
        right_keys.push(Column::from_name(last_time));
        let at_last_snapshots = rows.join_detailed(
            last_snapshots,
            JoinType::Inner,
            (left_keys, right_keys),
            None,
            NullEquality::NullEqualsNull,
        )?;

        // With `until`, when the segment's data goes on after the reported periods: its first
        // snapshot after them, as the last period and day of a row without an account, so that
        // the report runs to the last reported period (periods without rows churn) and those
        // that ended by that snapshot are complete.
        let later = match after_reported {
            Some(bound) => {
                let first_later = "__usagelake_first_later";
                let period_start = ScalarUDF::from(PeriodStart::new());
                let later_day =
                    period_start.call(vec![col(first_later), lit("day"), lit(input.tz.name())]);
                let later_period = period_start.call(vec![
                    later_day.clone(),
                    lit(period.name()),
                    lit(input.tz.name()),
                    lit(input.week_start.to_string()),
                ]);
                let firsts = LogicalPlanBuilder::from(input.plan.clone())
                    .filter(counted.and(time.clone().gt_eq(bound)))?
                    .aggregate(
                        segment_keys.clone(),
                        vec![min(time.clone()).alias(first_later)],
                    )?;
                Some((firsts, later_period, later_day))
            }
            None => None,
        };
        // By their unqualified names: a union (with `until`) drops the input's qualifier.
        let unqualified: Vec<Column> = segments
            .iter()
            .map(|segment| Column::from_name(&segment.name))
            .collect();
        let null_of = |data_type: &DataType| ScalarValue::try_from(data_type).map(lit);
        let money = cast(Expr::Column(mrr), sum_type.clone());
        let complete_until = date_literal(complete_key);
        let folded = if input.actor_type()?.is_integer() {
            let (money_column, time_column, account_column) =
                ("__usagelake_mrr", "__usagelake_time", "__usagelake_account");
            let mut columns = segment_keys.clone();
            columns.extend([
                col(period_column),
                money.alias(money_column),
                time.clone().alias(time_column),
                account.clone().alias(account_column),
                col(snapshot_day),
            ]);
            let mut payments = at_last_snapshots.project(columns)?;
            if let Some((firsts, later_period, later_day)) = later {
                let (_, time_field) = input.plan.schema().qualified_field_from_column(&input.ts)?;
                let time_type = time_field.data_type().clone();
                let mut columns = segment_keys.clone();
                columns.extend([
                    later_period.alias(period_column),
                    null_of(&sum_type)?.alias(money_column),
                    null_of(&time_type)?.alias(time_column),
                    null_of(&input.actor_type()?)?.alias(account_column),
                    later_day.alias(snapshot_day),
                ]);
                payments = payments.union(firsts.project(columns)?.build()?)?;
            }
            let sets = AggregateUDF::from(RevenueMovementSets::new()).call(vec![
                col(period_column),
                col(money_column),
                col(time_column),
                col(account_column),
                col(snapshot_day),
                lit(period.name()),
                complete_until,
            ]);
            fold_segments(payments, &unqualified, sets)?
        } else {
            let history = AggregateUDF::from(MrrHistory::new()).call(vec![
                col(period_column),
                money,
                time.clone(),
                account.clone(),
                lit(period.name()),
            ]);
            let mut per_account = at_last_snapshots.aggregate(
                segment_keys.iter().cloned().chain([account]),
                vec![
                    history.alias("history"),
                    min(col(period_column)).alias("first_period"),
                    max(col(period_column)).alias("last_period"),
                    max(col(snapshot_day)).alias("last_day"),
                ],
            )?;
            if let Some((firsts, later_period, later_day)) = later {
                let mut columns = segment_keys.clone();
                columns.extend([
                    null_of(&input.actor_type()?)?.alias("account"),
                    null_of(&history_type(&sum_type))?.alias("history"),
                    date_literal(None).alias("first_period"),
                    later_period.alias("last_period"),
                    later_day.alias("last_day"),
                ]);
                per_account = per_account.union(firsts.project(columns)?.build()?)?;
            }
            let movements = AggregateUDF::from(RevenueMovements::new()).call(vec![
                col("history"),
                col("first_period"),
                col("last_period"),
                col("last_day"),
                lit(period.name()),
                complete_until,
            ]);
            fold_segments(per_account, &unqualified, movements)?
        };

        // The report's columns, rates included, before the range and LTV.
        let field = |name: &str| get_field(col(FOLDED), name);
        let money = |name: &str| field(name);
        let (starting, new, expansion, reactivation, contraction, churned, ending) = (
            money("starting_mrr"),
            money("new_mrr"),
            money("expansion_mrr"),
            money("reactivation_mrr"),
            money("contraction_mrr"),
            money("churned_mrr"),
            money("ending_mrr"),
        );
        let losses = contraction.clone() + churned.clone();
        let mut gains = new + expansion.clone();
        if reactivation_in_quick_ratio {
            gains = gains + reactivation.clone();
        }
        let mut columns = folded_segments(segments);
        columns.push(field("period").alias("period"));
        columns.extend(
            MONEY_COLUMNS
                .iter()
                .map(|name| cast(field(name), money_type.clone()).alias(*name)),
        );
        columns.extend(CUSTOMER_COLUMNS.iter().map(|name| field(name).alias(*name)));
        columns.extend([
            ratio(field("churned_customers"), field("customers_start"))?.alias("logo_churn_rate"),
            ratio(-losses.clone(), starting.clone())?.alias("gross_revenue_churn_rate"),
            ratio(
                -(losses.clone() + expansion.clone() + reactivation),
                starting.clone(),
            )?
            .alias("net_revenue_churn_rate"),
            ratio(starting.clone() + losses.clone(), starting.clone())?.alias("grr"),
            ratio(starting.clone() + expansion + losses.clone(), starting)?.alias("nrr"),
            ratio(gains, -losses)?.alias("quick_ratio"),
            ratio(ending, field("customers_end"))?.alias("arpa"),
            field("period_complete").alias("period_complete"),
        ]);
        let report = folded.project(columns)?;

        let mean_churn = "__usagelake_mean_logo_churn";
        let window = Expr::from(WindowFunction::new(
            avg_udaf(),
            vec![col("logo_churn_rate")],
        ))
        .partition_by(folded_segments(segments))
        .order_by(vec![col("period").sort(true, true)])
        .window_frame(WindowFrame::new_bounds(
            WindowFrameUnits::Rows,
            WindowFrameBound::Preceding(ScalarValue::UInt64(Some(LTV_PERIODS))),
            WindowFrameBound::Preceding(ScalarValue::UInt64(Some(1))),
        ))
        .build()?
        .alias(mean_churn);
        let mut in_range = lit(true);
        if let Some(first) = first_period {
            in_range = in_range.and(col("period").gt_eq(date_literal(Some(first.into()))));
        }
        if let Some(end) = end_key {
            in_range = in_range.and(col("period").lt(date_literal(Some(end))));
        }
        let mut output = folded_segments(segments);
        output.push(col("period"));
        output.extend(MONEY_COLUMNS.iter().map(|name| col(*name)));
        output.extend(CUSTOMER_COLUMNS.iter().map(|name| col(*name)));
        output.extend(
            [
                "logo_churn_rate",
                "gross_revenue_churn_rate",
                "net_revenue_churn_rate",
                "grr",
                "nrr",
                "quick_ratio",
                "arpa",
            ]
            .map(col),
        );
        output.push(
            when(
                col(mean_churn).is_null().or(col(mean_churn).eq(lit(0.0))),
                lit(ScalarValue::Float64(None)),
            )
            .otherwise(col("arpa") / col(mean_churn))?
            .alias("ltv"),
        );
        output.push(col("period_complete"));
        let mut order = folded_segments(segments);
        order.push(col("period"));
        let reported = report
            .window(vec![window])?
            .filter(in_range)?
            .project(output)?;
        in_order(reported, order)?.build()
    }
}
