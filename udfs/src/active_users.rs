//! `active_users(table, actor, ts, since, until, segment, tz)`: DAU, WAU, MAU and stickiness per
//! day.
//!
//! The call plans into DataFusion operators and two aggregates, so it runs in parallel here and
//! unchanged on a cluster: the input filtered to the range (plus the 29 days before it that the
//! monthly window reads), `GROUP BY actor` collecting each actor's distinct active local days, and
//! [`active_user_counts`](crate::active_user_counts) folding those sets into the per-day counts in
//! time linear in the (actor, day) pairs. The fold's list of days is unnested into rows.
//!
//! When the actor is an integer, one aggregate over the events does both steps without the
//! GROUP BY: [`active_user_sets`](crate::active_user_sets) keeps each day's actors as a bitset.

use std::sync::OnceLock;

use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, col,
    lit,
};

use crate::active_days::active_days;
use crate::active_user_counts::ActiveUserCounts;
use crate::active_user_sets::ActiveUserSets;
use crate::period_start::PeriodStart;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order,
};
use crate::time_arguments::{ActorInput, date_literal, time_bound};

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
             is reported, days without activity included; an input (or a segment) without events \
             from 29 days before since to until has no rows, as an empty table has none. Columns: \
             [segment,] day DATE, dau, wau, mau BIGINT, dau_mau, dau_wau DOUBLE. Ordered by \
             segment and day. Exact counts, in time linear in the distinct (actor, day) pairs.",
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
        let input = ActorInput::read(NAME, arguments, context)?;
        let bound = |parameter, context: &mut dyn RelationPlannerContext| {
            time_bound(NAME, arguments, parameter, &input.calendar, context)
                .map(|bound| bound.map(|bound| bound.first_day))
        };
        let first_day = bound("since", context)?;
        let end_day = bound("until", context)?;
        if let (Some(first), Some(end)) = (first_day, end_day)
            && first >= end
        {
            return plan_err!("{NAME}: since must be before until, but the range has no day");
        }

        let time = Expr::Column(input.ts.clone());
        let mut filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        if let Some(first) = first_day {
            let bound = input.day_start_literal(first - MONTH_LOOKBACK_DAYS);
            filter = filter.and(time.clone().gt_eq(bound));
        }
        if let Some(end) = end_day {
            filter = filter.and(time.clone().lt(input.day_start_literal(end)));
        }
        let day =
            ScalarUDF::from(PeriodStart::new()).call(vec![time, lit("day"), lit(input.tz.name())]);
        let segments = &input.segments;
        let actor_groups: Vec<Expr> = segments
            .iter()
            .cloned()
            .chain([input.actor.clone()])
            .map(Expr::Column)
            .collect();
        let counts = AggregateUDF::from(ActiveUserCounts::new()).call(vec![
            col("days"),
            date_literal(first_day),
            date_literal(end_day),
        ]);

        let mut output = folded_segments(segments);
        output.extend(
            ["day", "dau", "wau", "mau", "dau_mau", "dau_wau"]
                .into_iter()
                .map(|field| get_field(col(FOLDED), field).alias(field)),
        );
        let mut order = folded_segments(segments);
        order.push(col("day"));
        let integer_actors = input.actor_type()?.is_integer();
        let events = LogicalPlanBuilder::from(input.plan).filter(filter)?;
        let folded = if integer_actors {
            let sets = AggregateUDF::from(ActiveUserSets::new()).call(vec![
                Expr::Column(input.actor.clone()),
                day,
                date_literal(first_day),
                date_literal(end_day),
            ]);
            fold_segments(events, segments, sets)?
        } else {
            let per_actor = events.aggregate(actor_groups, vec![active_days(day).alias("days")])?;
            fold_segments(per_actor, segments, counts)?
        }
        .project(output)?;
        in_order(folded, order)?.build()
    }
}
