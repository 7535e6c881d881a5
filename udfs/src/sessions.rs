//! `sessions(table, actor, ts, gap, period, since, until, per_session, segment, tz, week_start)`:
//! how often, how long and how deep actors use the product, per calendar period, or one row per
//! session.
//!
//! The call plans into DataFusion operators and one aggregate of ours, so it runs in parallel here
//! and unchanged on a cluster: the input filtered to the range (from `gap` before it, to know
//! whether an event at `since` continues a session), `GROUP BY [segment,] actor` cutting each
//! actor's events into sessions with [`actor_sessions`](crate::actor_sessions), whose partial
//! states merge, and the list of sessions unnested into rows. Per period, DataFusion's own
//! aggregates then count them: `count`, `count(DISTINCT actor)`, `median` and `percentile_cont`
//! (exact, interpolating between the two nearest lengths; DataFusion 55 truncates the weight of
//! the upper one to a millionth, so DuckDB's `quantile_cont` can differ in the seventh digit), so
//! that a plain SQL formulation with `LAG` reproduces every number.
//!
//! A session belongs to the period in which it starts, and its length is that of all its events: one
//! that starts before `until` may go on after it. So only the lower end of the range reaches the
//! scan as a filter; the sessions that start after the reported periods (per session: at or after
//! `until`) are dropped once cut, and serve only to tell whether the last period is complete.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::{Column, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::{get_field, least};
use datafusion::functions_aggregate::count::count_distinct;
use datafusion::functions_aggregate::expr_fn::{avg, count, max, median};
use datafusion::functions_aggregate::min_max::max_udaf;
use datafusion::functions_aggregate::percentile_cont::percentile_cont;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, ExprFunctionExt, LogicalPlan,
    LogicalPlanBuilder, ScalarUDF, cast, col, lit,
};

use crate::actor_id_sessions::{ActorIdSessions, IDS_PER_BLOCK};
use crate::actor_sessions::ActorSessions;
use crate::lifecycle_counts::next_period_start;
use crate::period::arguments::Stage;
use crate::period::{Calendar, Period, TimeValue};
use crate::period_start::PeriodStart;
use crate::sessionize::gap_nanos;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order, ratio,
};
use crate::time_arguments::{ActorInput, PeriodRange, TimeBound, time_bound};

const NAME: &str = "sessions";

const DEFAULT_GAP: &str = "30 minutes";

const MICROS_PER_MINUTE: f64 = 60_000_000.0;

/// Names of intermediate columns, unlikely to clash with an input column.
const MINUTES: &str = "__sessions_minutes";
const MICROS: &str = "__sessions_micros";
const ACTOR_BLOCK: &str = "__sessions_actor_block";
const EVENTS: &str = "__sessions_events";
const ENDED: &str = "__sessions_ended";
const LAST_ENDED: &str = "__sessions_last_ended";
const LAST_EVENT: &str = "__sessions_last_event";

/// The `sessions` table function.
#[derive(Debug)]
pub(crate) struct Sessions;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "Sessions per calendar period: an actor's session is a run of its events with no \
             pause longer than `gap` (a pause exactly equal to gap continues it, as in \
             sessionize), its length the time from its first to its last event, and it belongs \
             to the period in which it starts. Columns: [segment,] period (DATE, or TIMESTAMP \
             WITH TIME ZONE for hours), sessions BIGINT, actors BIGINT (distinct actors with a \
             session starting in the period), sessions_per_actor DOUBLE, median_session_minutes \
             DOUBLE, p90_session_minutes DOUBLE (exact, from all the lengths, as DataFusion's median \
             and percentile_cont compute them: interpolated between the two nearest ranks, the \
             p90's weight truncated to a millionth; a one-event session lasts 0 minutes), \
             events_per_session DOUBLE, period_complete BOOLEAN (false for a period that had not \
             ended at the input's last event, or at until). Ordered by segment and period; periods \
             without sessions have no row. With per_session => true, one row per session \
             instead: [segment,] the actor column (under its own name), session BIGINT (from 1 per actor, counting the reported \
             sessions), started and ended TIMESTAMP (of the first and last event; a DATE counts \
             as its local midnight), events BIGINT, ordered by segment, actor and session. \
             Events from gap before since are read, so that a session started before since and \
             going on after it is not reported as new; sessions that started before since (per \
             period: before the first reported period) are not reported. A session that starts \
             before until and goes on after it counts whole: events after until are read too.",
            "sessions(table [, actor [, ts [, gap [, period [, since [, until [, per_session \
             [, segment [, tz [, week_start]]]]]]]]]])",
        )
        .with_argument(
            "table",
            "The input: a table or view name ('events'), or a query ('SELECT * FROM events WHERE \
             plan = ''pro''').",
        )
        .with_argument("actor", "The column that identifies an actor. Default: 'user_id'.")
        .with_argument(
            "ts",
            "The event time column, TIMESTAMP (any unit) or DATE. Default: 'ts'.",
        )
        .with_argument(
            "gap",
            "The longest pause within a session: a positive INTERVAL of days, hours, minutes or \
             seconds (a day is 24 hours), or a string such as '45 minutes'. Default: \
             '30 minutes'.",
        )
        .with_argument(
            "period",
            "The calendar period of the report: 'hour', 'day', 'week', 'month', 'quarter' or \
             'year', in tz. Default: 'day'.",
        )
        .with_argument(
            "since",
            "The start of the report (a DATE, its local midnight, or a TIMESTAMP): periods \
             starting at or after it are reported; per session, sessions starting at or after \
             it. Default: the first event.",
        )
        .with_argument(
            "until",
            "The end of the report, exclusive (a DATE or a TIMESTAMP). Default: after the last \
             event.",
        )
        .with_argument(
            "per_session",
            "true for one row per session instead of one per period. Default: false.",
        )
        .with_argument(
            "segment",
            "A column to compute the function for each of its values separately, as if each were \
             its own table; it becomes the first column. Default: none.",
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
            "SELECT period, sessions, median_session_minutes FROM sessions('events', \
             since => DATE '2024-03-01', until => DATE '2024-04-01');\n\
             SELECT * FROM sessions('events', gap => INTERVAL '1 hour', period => 'week', \
             segment => 'plan');\n\
             SELECT user_id, started, events FROM sessions('SELECT * FROM events WHERE \
             user_id = 7', per_session => true);",
        )
        .build()
    })
}

/// The `gap` argument in microseconds (rounded down: times compare in whole microseconds).
fn read_gap(arguments: &BoundArguments, context: &mut dyn RelationPlannerContext) -> Result<i64> {
    let interval = DataType::Interval(IntervalUnit::MonthDayNano);
    let value = match arguments.constant("gap", context)? {
        None => ScalarValue::from(DEFAULT_GAP).cast_to(&interval)?,
        Some(value) => match value.try_as_str() {
            Some(Some(text)) => match ScalarValue::from(text).cast_to(&interval) {
                Ok(interval) => interval,
                Err(_) => {
                    return plan_err!(
                        "{NAME}: argument gap: '{text}' is not an interval; write a length such \
                         as '30 minutes' or INTERVAL '1 hour'"
                    );
                }
            },
            _ => value,
        },
    };
    let nanos = gap_nanos(Stage::Planning, NAME, &value)?;
    Ok(i64::try_from(nanos / 1_000).unwrap_or(i64::MAX))
}

/// The first instant, in microseconds, of the period whose key is `key` ([`PeriodRange`]'s: a
/// day, or an hour's number).
fn period_key_start(calendar: &Calendar, period: Period, key: i64) -> Option<i64> {
    let seconds = match period {
        // The start of the hour that holds the last second of UTC hour `key`.
        Period::Hour => calendar.hour_start(TimeValue::instant(key * 3600 + 3599)?),
        _ => calendar.day_start(key),
    };
    Some(seconds * 1_000_000)
}

impl MetricTableFunction for Sessions {
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
        let gap = read_gap(arguments, context)?;
        let per_session = arguments.boolean("per_session", false, context)?;
        let period_text = arguments.string("period", context)?;
        let period = input.report_period(
            NAME,
            Some(period_text.unwrap_or_else(|| "day".into())),
            true,
        )?;
        let calendar = &input.calendar;
        let range = PeriodRange::read(NAME, arguments, period, calendar, context)?;
        let out_of_range = || {
            plan_datafusion_err!("{NAME}: since or until lies outside the supported range of years")
        };
        // The instants the reported sessions start from, and start before.
        let (start, end) = if per_session {
            let since = time_bound(NAME, arguments, "since", calendar, context)?;
            (
                since.map(|since| since.micros),
                range.until.as_ref().map(|until| until.micros),
            )
        } else {
            let start = match range.first_period {
                Some(key) => Some(
                    period_key_start(calendar, period, i64::from(key)).ok_or_else(out_of_range)?,
                ),
                None => None,
            };
            let end = match range.end_key {
                Some(key) if period == Period::Hour => {
                    Some(period_key_start(calendar, period, key).ok_or_else(out_of_range)?)
                }
                Some(day) => {
                    let first = calendar.first_day(period, day) as i32;
                    let next = if i64::from(first) < day {
                        next_period_start(period, first)?
                    } else {
                        first
                    };
                    Some(calendar.day_start(i64::from(next)) * 1_000_000)
                }
                None => None,
            };
            (start, end)
        };

        let time = Expr::Column(input.ts.clone());
        let mut filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        let bound = |micros: i64| {
            TimeBound::at(calendar, micros, micros.to_string()).ok_or_else(out_of_range)
        };
        if let Some(start) = start {
            filter = filter.and(input.at_or_after(&bound(start.saturating_sub(gap))?));
        }
        let segments = &input.segments;
        // Per session, the sessions before `start` are dropped when cut, so that the numbers count
        // the reported ones; per period they stay until the last event is known (one of them may
        // hold it).
        let dropped_before = lit(ScalarValue::Int64(if per_session { start } else { None }));
        let events = LogicalPlanBuilder::from(input.plan.clone()).filter(filter)?;
        let field = |name: &str| get_field(col(FOLDED), name);
        let actor_type = input.actor_type()?;
        let sessions = if actor_type.is_integer() {
            // Blocks of ids instead of actors: see actor_id_sessions.rs.
            let actor = Expr::Column(input.actor.clone());
            let mut columns: Vec<Expr> = segments.iter().cloned().map(Expr::Column).collect();
            columns.extend([
                actor.clone(),
                input.micros().alias(MICROS),
                (cast(actor, DataType::Int64) / lit(IDS_PER_BLOCK)).alias(ACTOR_BLOCK),
            ]);
            let mut keys = segments.clone();
            keys.push(Column::from_name(ACTOR_BLOCK));
            let cut = AggregateUDF::from(ActorIdSessions::new()).call(vec![
                Expr::Column(input.actor.clone()),
                col(MICROS),
                lit(gap),
                dropped_before,
            ]);
            let cut = fold_segments(events.project(columns)?, &keys, cut)?;
            let mut columns = folded_segments(segments);
            columns.extend([
                cast(field("actor"), actor_type).alias(&input.actor.name),
                col(FOLDED),
            ]);
            cut.project(columns)?
        } else {
            let mut keys = segments.clone();
            keys.push(input.actor.clone());
            let cut = AggregateUDF::from(ActorSessions::new()).call(vec![
                input.micros(),
                lit(gap),
                dropped_before,
            ]);
            fold_segments(events, &keys, cut)?
        };

        let zone = match &input.ts_type {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let timestamp = |micros: Expr| {
            cast(
                micros,
                DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
            )
        };
        let actor = Expr::Column(Column::from_name(&input.actor.name));
        let mut segment_columns = folded_segments(segments);

        if per_session {
            let sessions = match end {
                Some(end) => sessions.filter(field("started").lt(lit(end)))?,
                None => sessions,
            };
            let mut output = segment_columns.clone();
            output.extend([
                actor.clone(),
                field("session").alias("session"),
                timestamp(field("started")).alias("started"),
                timestamp(field("ended")).alias("ended"),
                field("events").alias("events"),
            ]);
            let mut order = segment_columns;
            order.extend([actor, col("session")]);
            return in_order(sessions.project(output)?, order)?.build();
        }

        let period_start = ScalarUDF::from(PeriodStart::new());
        let period_of = |micros: Expr| {
            period_start.call(vec![
                cast(
                    micros,
                    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
                ),
                lit(period.name()),
                lit(input.tz.name()),
                lit(input.week_start.to_string()),
            ])
        };
        let mut rows = segment_columns.clone();
        rows.extend([
            actor.clone(),
            period_of(field("started")).alias("period"),
            (cast(field("ended") - field("started"), DataType::Float64) / lit(MICROS_PER_MINUTE))
                .alias(MINUTES),
            cast(field("events"), DataType::Float64).alias(EVENTS),
            field("ended").alias(ENDED),
        ]);
        let mut groups = segment_columns.clone();
        groups.push(col("period"));
        let minutes = || col(MINUTES);
        let per_period = sessions.project(rows)?.aggregate(
            groups,
            vec![
                count(lit(1)).alias("sessions"),
                count_distinct(actor).alias("actors"),
                median(minutes()).alias("median_session_minutes"),
                percentile_cont(minutes().sort(true, false), lit(0.9)).alias("p90_session_minutes"),
                avg(col(EVENTS)).alias("events_per_session"),
                max(col(ENDED)).alias(LAST_ENDED),
            ],
        )?;
        // The last event read, of the segment: a period is complete once it lies before it.
        let last_event = Expr::from(WindowFunction::new(max_udaf(), vec![col(LAST_ENDED)]))
            .partition_by(segment_columns.clone())
            .build()?
            .alias(LAST_EVENT);
        let complete_at = match &range.until {
            Some(until) => least(vec![col(LAST_EVENT), lit(until.micros)]),
            None => col(LAST_EVENT),
        };
        let mut output = segment_columns.clone();
        output.extend([
            col("period"),
            col("sessions"),
            col("actors"),
            ratio(col("sessions"), col("actors"))?.alias("sessions_per_actor"),
            col("median_session_minutes"),
            col("p90_session_minutes"),
            col("events_per_session"),
            col("period")
                .lt(period_of(complete_at))
                .alias("period_complete"),
        ]);
        segment_columns.push(col("period"));
        let with_last = per_period.window(vec![last_event])?;
        // The periods before the first reported and from the end on were read only for the last
        // event and to cut the sessions going on at `start`.
        let mut reported = with_last;
        if let Some(start) = start {
            reported = reported.filter(col("period").gt_eq(period_of(lit(start))))?;
        }
        if let Some(end) = end {
            reported = reported.filter(col("period").lt(period_of(lit(end))))?;
        }
        let report = reported.project(output)?;
        in_order(report, segment_columns)?.build()
    }
}
