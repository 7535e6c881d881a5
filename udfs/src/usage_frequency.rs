//! `usage_frequency(table, actor, ts, as_of, window_days, lookback_days, segment, tz)`: how many
//! actors used the product on how many of the last `window_days` days, with the usage band of each
//! count (daily, weekly, monthly, forgettable).
//!
//! It answers "how often do our users come back", which an average of DAU hides: a histogram of
//! active days per actor over the actors seen in a longer look-back, so that those who stopped
//! (seen in the look-back, not in the window) show as a count of their own at 0 days.
//!
//! The call plans into DataFusion operators and two aggregates, so it runs in parallel here and
//! unchanged on a cluster: `GROUP BY [segment,] actor` collecting each actor's distinct active
//! local days, and [`usage_frequency_counts`](crate::usage_frequency_counts) folding those sets
//! into the histogram in time linear in the (actor, day) pairs; its list of rows is unnested.
//! When the actor is an integer, one aggregate over the events does both steps without the
//! GROUP BY: [`usage_frequency_sets`](crate::usage_frequency_sets) keeps each day's actors as a
//! bitset.
//!
//! With `as_of` given, only the look-back's days are read: the filter on the time column reaches
//! the scan (and prunes the sample lake's date partitions). Without it, `as_of` is the last day
//! with data, which the fold finds at its end, so the whole input is read: giving `as_of` makes
//! the query cheaper on a long history, with the same result.

use std::sync::OnceLock;

use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, col,
    lit,
};

use crate::active_days::active_days;
use crate::period::arguments::Stage;
use crate::period_start::PeriodStart;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order,
};
use crate::time_arguments::{ActorInput, time_bound};
use crate::usage_frequency_counts::{UsageFrequencyCounts, check_days};
use crate::usage_frequency_sets::UsageFrequencySets;

const NAME: &str = "usage_frequency";

const DEFAULT_WINDOW_DAYS: i64 = 28;
const DEFAULT_LOOKBACK_DAYS: i64 = 90;

/// Columns of the output after the segment, as the fold names them.
const COLUMNS: [&str; 5] = ["days_active", "actors", "share", "cumulative_share", "band"];

/// The name of the intermediate column, unlikely to clash with an input column.
const DAYS: &str = "__usage_frequency_days";

/// The `usage_frequency` table function.
#[derive(Debug)]
pub(crate) struct UsageFrequency;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "How often actors use the product: one row for every number of active days from 0 to \
             `window_days`, counting the actors seen in the `lookback_days` days ending on \
             `as_of` by their distinct active days in the `window_days` days ending on `as_of` \
             (both inclusive, local days in `tz`). `share` is the share of the actors seen in the \
             look-back, `cumulative_share` the share with at least that many days, and `band` is \
             'daily' from ceil(20·w/28) days, 'weekly' from ceil(4·w/28), 'monthly' from 1 and \
             'forgettable' at 0 (seen in the look-back, not in the window), w = window_days. \
             Columns: [segment,] days_active INT, actors BIGINT, share, cumulative_share DOUBLE, \
             band VARCHAR, ordered by segment and days_active. Only the look-back is read when \
             `as_of` is given; without it the last day with data (of each segment) is found by \
             reading all the input. No actor in the look-back gives no rows.",
            "usage_frequency(table [, actor [, ts [, as_of [, window_days [, lookback_days \
             [, segment [, tz]]]]]]])",
        )
        .with_argument(
            "table",
            "The input: a table or view name ('events'), or a query ('SELECT * FROM events WHERE \
             plan = ''pro''').",
        )
        .with_argument(
            "actor",
            "The column that identifies an actor. Default: 'user_id'.",
        )
        .with_argument(
            "ts",
            "The event time column, TIMESTAMP or DATE. Default: 'ts'.",
        )
        .with_argument(
            "as_of",
            "The last day of the window and of the look-back, included: a DATE, a TIMESTAMP (its \
             local date) or a 'YYYY-MM-DD' string. Events after it are ignored. Default: the last \
             day with data (per segment); giving it lets the scan skip all but the look-back.",
        )
        .with_argument(
            "window_days",
            "The days whose activity is counted, from 7 to lookback_days. Default: 28.",
        )
        .with_argument(
            "lookback_days",
            "The days in which an actor must have been seen to be counted, at most 3660. \
             Default: 90.",
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
            "SELECT days_active, actors, cumulative_share, band FROM usage_frequency('events', \
             as_of => DATE '2024-12-31');\n\
             SELECT band, sum(actors) FROM usage_frequency('events', window_days => 7, \
             lookback_days => 28) GROUP BY band;",
        )
        .build()
    })
}

impl MetricTableFunction for UsageFrequency {
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
        let window_days =
            arguments.whole_number("window_days", DEFAULT_WINDOW_DAYS, "days", context)?;
        let lookback_days =
            arguments.whole_number("lookback_days", DEFAULT_LOOKBACK_DAYS, "days", context)?;
        check_days(Stage::Planning, NAME, window_days, lookback_days)?;
        // A TIMESTAMP means its local date; a DATE or a string, that date.
        let as_of = time_bound(NAME, arguments, "as_of", &input.calendar, context)?
            .map(|bound| bound.local_date);

        let time = Expr::Column(input.ts.clone());
        let mut filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        if let Some(as_of) = as_of {
            // The look-back's local days, as instants of the time column, so the scan can use them.
            let first = input.day_start_literal(as_of - lookback_days + 1);
            let end = input.day_start_literal(as_of + 1);
            filter = filter.and(time.clone().gt_eq(first).and(time.clone().lt(end)));
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
        let as_of_literal = lit(ScalarValue::Date32(as_of.map(|day| day as i32)));
        let histogram = AggregateUDF::from(UsageFrequencyCounts::new()).call(vec![
            col(DAYS),
            as_of_literal.clone(),
            lit(window_days),
            lit(lookback_days),
        ]);
        let mut output = folded_segments(segments);
        output.extend(
            COLUMNS
                .into_iter()
                .map(|field| get_field(col(FOLDED), field).alias(field)),
        );
        let mut order = folded_segments(segments);
        order.push(col("days_active"));
        let integer_actors = input.actor_type()?.is_integer();
        let events = LogicalPlanBuilder::from(input.plan).filter(filter)?;
        let folded = if integer_actors {
            let sets = AggregateUDF::from(UsageFrequencySets::new()).call(vec![
                Expr::Column(input.actor.clone()),
                day,
                as_of_literal,
                lit(window_days),
                lit(lookback_days),
            ]);
            fold_segments(events, segments, sets)?
        } else {
            let per_actor = events.aggregate(actor_groups, vec![active_days(day).alias(DAYS)])?;
            fold_segments(per_actor, segments, histogram)?
        }
        .project(output)?;
        in_order(folded, order)?.build()
    }
}
