//! `lifecycle(table, actor, ts, period, since, until, segment, tz, week_start)`: PostHog's
//! lifecycle, the new, returning, resurrecting and dormant actors of each calendar period.
//!
//! The call plans into DataFusion operators and two aggregates, so it runs in parallel here and
//! unchanged on a cluster: `GROUP BY [segment,] actor` collecting each actor's distinct active
//! periods (as `period_start` DATEs) and the local date of its last event, then
//! [`lifecycle_counts`](crate::lifecycle_counts) folding those sets into per-period status counts
//! in time linear in the (actor, period) pairs. The fold's list is unnested into rows.
//!
//! When the actor is an integer, one aggregate over the events does both steps without the
//! GROUP BY: [`lifecycle_sets`](crate::lifecycle_sets) keeps each period's actors as a bitset.
//!
//! The whole input is read, whatever the range: an actor's first-seen period may lie long before
//! `since`, and `period_complete` compares with the input's last event, which may lie after
//! `until`.

use std::sync::OnceLock;

use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, LogicalPlan, LogicalPlanBuilder, col, lit, when,
};

use crate::active_days::active_days;
use crate::lifecycle_counts::{LifecycleCounts, STATUSES};
use crate::lifecycle_sets::LifecycleSets;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order,
};
use crate::time_arguments::{ActorInput, PeriodRange, date_literal};

const NAME: &str = "lifecycle";

/// The `lifecycle` table function.
#[derive(Debug)]
pub(crate) struct Lifecycle;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "PostHog's lifecycle: for every calendar period, the actors that are new (this is \
             their first active period, over all of the input's history, not only the range), \
             returning (active in this and the previous period), resurrecting (active now, not in \
             the previous period, but earlier) and dormant (active in the previous period, not in \
             this one; a negative count, as PostHog charts it). Four rows per period, zero-filled, \
             in that order of status. Periods are local calendar periods in `tz`; 'hour' is not \
             supported. period_complete is false for a period that had not ended at the last \
             event of the input (of the segment, with a segment), or at `until`. Columns: \
             [segment,] period DATE (the period's first day; for 'hour', the TIMESTAMP WITH TIME \
             ZONE it starts, as an hour can repeat when clocks fall back), status VARCHAR, \
             actors BIGINT, \
             period_complete BOOLEAN, ordered by segment, period and status. Reads the whole \
             input, in time linear in the distinct (actor, period) pairs.",
            "lifecycle(table [, actor [, ts [, period [, since [, until [, segment [, tz [, \
             week_start]]]]]]]])",
        )
        .with_argument(
            "table",
            "The input: a table or view name ('events'), or a query ('SELECT * FROM events WHERE \
             plan = ''pro'''). Its whole history counts towards first seen.",
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
            "'hour', 'day', 'week', 'month', 'quarter' or 'year'. Default: 'week'.",
        )
        .with_argument(
            "since",
            "Report the periods whose first instant is at or after it (a DATE: its local \
             midnight; a TIMESTAMP; or a 'YYYY-MM-DD' string). Default: the first period with \
             data.",
        )
        .with_argument(
            "until",
            "Report the periods whose first instant is before it (same types as since). A \
             period that had not ended at until is not complete. Default: up to the last period \
             with data.",
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
            "SELECT period, status, actors FROM lifecycle('events', period => 'month', \
             since => DATE '2024-01-01');\n\
             SELECT * FROM lifecycle('events', segment => 'plan', tz => 'Europe/Istanbul', \
             week_start => 'sunday');",
        )
        .build()
    })
}

impl MetricTableFunction for Lifecycle {
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
        let calendar = &input.calendar;
        let PeriodRange {
            first_period,
            end_key,
            complete_key,
            ..
        } = PeriodRange::read(NAME, arguments, period, calendar, context)?;

        let time = Expr::Column(input.ts.clone());
        let filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        let (day, active_period) = input.day_and_period(period);
        let segments = &input.segments;
        let actor_groups: Vec<Expr> = segments
            .iter()
            .cloned()
            .chain([input.actor.clone()])
            .map(Expr::Column)
            .collect();
        let counts = AggregateUDF::from(LifecycleCounts::new()).call(vec![
            col("periods"),
            col("last_day"),
            lit(period.name()),
            date_literal(first_period.map(i64::from)),
            date_literal(end_key),
            date_literal(complete_key),
        ]);

        let mut output = folded_segments(segments);
        let field = |name: &str| get_field(col(FOLDED), name);
        output.push(input.period_column(period, field("period"), "period"));
        output.extend(
            ["status", "actors", "period_complete"]
                .into_iter()
                .map(|name| field(name).alias(name)),
        );
        // Statuses sort in their documented order (new, returning, resurrecting, dormant), not
        // alphabetically.
        let status = || col("status");
        let status_rank = STATUSES
            .iter()
            .enumerate()
            .skip(1)
            .fold(
                when(status().eq(lit(STATUSES[0])), lit(0_i64)),
                |mut case, (rank, name)| case.when(status().eq(lit(*name)), lit(rank as i64)),
            )
            .end()?;
        let mut order = folded_segments(segments);
        order.extend([col("period"), status_rank]);
        let integer_actors = input.actor_type()?.is_integer();
        let events = LogicalPlanBuilder::from(input.plan).filter(filter)?;
        let folded = if integer_actors {
            let sets = AggregateUDF::from(LifecycleSets::new()).call(vec![
                Expr::Column(input.actor.clone()),
                active_period,
                day,
                lit(period.name()),
                date_literal(first_period.map(i64::from)),
                date_literal(end_key),
                date_literal(complete_key),
            ]);
            fold_segments(events, segments, sets)?
        } else {
            let per_actor = events.aggregate(
                actor_groups,
                vec![
                    active_days(active_period).alias("periods"),
                    max(day).alias("last_day"),
                ],
            )?;
            fold_segments(per_actor, segments, counts)?
        }
        .project(output)?;
        in_order(folded, order)?.build()
    }
}
