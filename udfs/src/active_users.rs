//! `active_users(table, actor, ts, since, until, segment, tz)`: DAU, WAU, MAU and stickiness per
//! day.
//!
//! The call plans into DataFusion operators and two aggregates, so it runs in parallel here and
//! unchanged on a cluster: the input filtered to the range (plus the 29 days before it that the
//! monthly window reads), `GROUP BY actor` collecting each actor's distinct active local days, and
//! [`active_user_counts`](crate::active_user_counts) folding those sets into the per-day counts in
//! time linear in the (actor, day) pairs. The fold's list of days is unnested into rows.

use std::sync::OnceLock;

use chrono::NaiveDate;
use chrono_tz::Tz;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_aggregate::expr_fn::array_agg;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, ExprFunctionExt, LogicalPlan,
    LogicalPlanBuilder, ScalarUDF, col, lit,
};

use crate::active_user_counts::ActiveUserCounts;
use crate::options::{UsagelakeOptions, WeekStart};
use crate::period::arguments::{Stage, check_time_argument, parse_zone};
use crate::period::{Calendar, TimeValue};
use crate::period_start::PeriodStart;
use crate::table_function::{BoundArguments, MetricTableFunction};

const NAME: &str = "active_users";

/// Days before a reported day that its monthly window reads.
const MONTH_LOOKBACK_DAYS: i64 = 29;

/// The `active_users` table function.
#[derive(Debug)]
pub(crate) struct ActiveUsers;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "Daily, weekly and monthly active actors and stickiness, one row per day: `dau` counts \
             the actors active that day, `wau` those active in the 7 days ending that day, `mau` in \
             the 30 days ending that day (reading up to 29 days before `since`; where the data \
             starts later, the days that exist), `dau_mau` and `dau_wau` the ratios (NULL when \
             the denominator is 0). Days are local calendar days in `tz`. Every day of the range \
             is reported, days without activity included. Columns: [segment,] day DATE, dau, wau, \
             mau BIGINT, dau_mau, dau_wau DOUBLE. Days come in order within a segment; add ORDER \
             BY to order the segments. Exact counts, in time linear in the distinct (actor, day) \
             pairs.",
            "active_users(table [, actor [, ts [, since [, until [, segment [, tz]]]]]])",
        )
        .with_argument(
            "table",
            "The input: a table or view name ('events'), or a query ('SELECT * FROM events WHERE \
             plan = ''pro''').",
        )
        .with_argument("actor", "The column that identifies an actor. Default: 'user_id'.")
        .with_argument("ts", "The event time column, TIMESTAMP or DATE. Default: 'ts'.")
        .with_argument(
            "since",
            "The first day reported (a DATE, or a TIMESTAMP: the first local midnight at or after \
             it). Default: the first day with data.",
        )
        .with_argument(
            "until",
            "The end of the report, exclusive (a DATE or TIMESTAMP). Default: the day after the \
             last day with data.",
        )
        .with_argument(
            "segment",
            "A column to compute the function for each of its values separately, as if each were \
             its own table; it becomes the first column. Default: none.",
        )
        .with_argument(
            "tz",
            "The IANA time zone of the days. Default: the session setting usagelake.tz, else UTC.",
        )
        .with_sql_example(
            "SELECT day, dau, wau, mau, dau_mau FROM active_users('events', since => \
             DATE '2024-03-01', until => DATE '2024-04-01');\n\
             SELECT * FROM active_users('events', segment => 'plan', tz => 'Europe/Istanbul');",
        )
        .build()
    })
}

impl MetricTableFunction for ActiveUsers {
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
        let input = arguments.input("table", context)?;
        let actor = arguments.column("actor", "user_id", &input, context)?;
        let ts = arguments.column("ts", "ts", &input, context)?;
        let segment = match arguments.get("segment") {
            Some(_) => Some(arguments.column("segment", "", &input, context)?),
            None => None,
        };
        let ts_type = {
            let (_, field) = input.schema().qualified_field_from_column(&ts)?;
            check_time_argument(NAME, "ts", field)?;
            field.data_type().clone()
        };
        let tz = match arguments.string("tz", context)? {
            Some(name) => parse_zone(Stage::Planning, NAME, &name)?,
            None => context
                .context_provider()
                .options()
                .extensions
                .get::<UsagelakeOptions>()
                .map_or(Tz::UTC, |options| options.tz),
        };
        let calendar = Calendar::new(tz, WeekStart::Monday);
        let first_day = report_day(arguments, "since", &calendar, context)?;
        let end_day = report_day(arguments, "until", &calendar, context)?;
        if let (Some(first), Some(end)) = (first_day, end_day)
            && first >= end
        {
            return plan_err!("{NAME}: since must be before until, but the range has no day");
        }

        let time = Expr::Column(ts);
        let mut filter = Expr::Column(actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        if let Some(first) = first_day {
            let bound = time_literal(&ts_type, &calendar, first - MONTH_LOOKBACK_DAYS);
            filter = filter.and(time.clone().gt_eq(bound));
        }
        if let Some(end) = end_day {
            filter = filter.and(time.clone().lt(time_literal(&ts_type, &calendar, end)));
        }
        let day = ScalarUDF::from(PeriodStart::new()).call(vec![time, lit("day"), lit(tz.name())]);
        let segment_columns: Vec<Expr> = segment.iter().cloned().map(Expr::Column).collect();
        let actor_groups: Vec<Expr> = segment_columns
            .iter()
            .cloned()
            .chain([Expr::Column(actor)])
            .collect();
        let date_literal = |day: Option<i64>| lit(ScalarValue::Date32(day.map(|d| d as i32)));
        let counts = AggregateUDF::from(ActiveUserCounts::new()).call(vec![
            col("days"),
            date_literal(first_day),
            date_literal(end_day),
        ]);

        let mut output = segment_columns.clone();
        output.extend(
            ["day", "dau", "wau", "mau", "dau_mau", "dau_wau"]
                .into_iter()
                .map(|field| get_field(col("counts"), field).alias(field)),
        );
        LogicalPlanBuilder::from(input)
            .filter(filter)?
            .aggregate(
                actor_groups,
                vec![array_agg(day).distinct().build()?.alias("days")],
            )?
            .aggregate(segment_columns, vec![counts.alias("counts")])?
            .unnest_column("counts")?
            .project(output)?
            // No sort: DataFusion drops an ORDER BY inside a FROM item, and the fold already emits
            // each segment's days in order.
            .build()
    }
}

/// The first local day at or after the instant or date given for `parameter` (`since` or `until`),
/// as days since 1970-01-01, or `None` when not given.
fn report_day(
    arguments: &BoundArguments,
    parameter: &str,
    calendar: &Calendar,
    context: &mut dyn RelationPlannerContext,
) -> Result<Option<i64>> {
    let bad = |value: &ScalarValue| {
        plan_err!(
            "{NAME}: argument '{parameter}' must be a DATE or a TIMESTAMP, such as \
             DATE '2024-03-01', not {value}"
        )
    };
    let Some(value) = arguments.constant(parameter, context)? else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    if let Some(Some(text)) = value.try_as_str()
        && let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
    {
        return Ok(Some(days_since_epoch(date)));
    }
    let micros = match &value {
        ScalarValue::Date32(Some(days)) => return Ok(Some(i64::from(*days))),
        ScalarValue::Date64(Some(millis)) => return Ok(Some(millis.div_euclid(86_400_000))),
        _ => match value.cast_to(&DataType::Timestamp(TimeUnit::Microsecond, None)) {
            Ok(ScalarValue::TimestampMicrosecond(Some(micros), _)) => micros,
            _ => return bad(&value),
        },
    };
    let Some(instant) = TimeValue::instant(micros.div_euclid(1_000_000)) else {
        return bad(&value);
    };
    let day = calendar.local_date(instant);
    // A day is reported when its first instant is in the range.
    Ok(Some(if calendar.day_start(day) * 1_000_000 < micros {
        day + 1
    } else {
        day
    }))
}

fn days_since_epoch(date: NaiveDate) -> i64 {
    (date - chrono::DateTime::UNIX_EPOCH.date_naive()).num_days()
}

/// A constant of the time column's type at the first instant of local day `day`.
fn time_literal(ts_type: &DataType, calendar: &Calendar, day: i64) -> Expr {
    match ts_type {
        DataType::Timestamp(_, tz) => lit(ScalarValue::TimestampMicrosecond(
            Some(calendar.day_start(day) * 1_000_000),
            tz.clone(),
        )),
        // A DATE column holds local dates already.
        _ => lit(ScalarValue::Date32(Some(day as i32))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_days_from_the_epoch() {
        let date = |text| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        assert_eq!(days_since_epoch(date("1970-01-01")), 0);
        assert_eq!(days_since_epoch(date("2024-03-10")), 19_792);
        assert_eq!(days_since_epoch(date("1969-12-31")), -1);
    }
}
