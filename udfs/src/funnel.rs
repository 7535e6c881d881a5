//! `funnel(table, steps, actor, ts, within, mode, step_column, since, until, segment, tz)`: how
//! many actors reached each step of a funnel, the conversion between steps, and the time it took.
//!
//! The funnel report every product tool draws (Amplitude, Mixpanel, PostHog), over
//! [`window_funnel_events`](crate::window_funnel_events), ClickHouse's `windowFunnel` with the
//! chain's step times: an actor reaches step k when its level is at least k, and the time from
//! step k - 1 to step k is read from the chain that reached its highest level first.
//!
//! The call plans into DataFusion's operators and that aggregate, so it parallelises here and runs
//! unchanged on a cluster: `GROUP BY [segment,] actor` with `window_funnel_events` over the events
//! of the steps only, then one row per (actor, step reached) with the seconds from the previous
//! step, counted and their median taken per step (`percentile_cont`), zero-filled over every step,
//! and the conversions by window functions. Step 1 must lie in the range; later steps may follow
//! up to `until + within`, so those events are read too, and nothing else after.

use std::sync::OnceLock;

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::{
    Column, DFSchema, NullEquality, ScalarValue, plan_datafusion_err, plan_err,
};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::functions_aggregate::min_max::max_udaf;
use datafusion::functions_aggregate::percentile_cont::percentile_cont;
use datafusion::functions_nested::expr_fn::{array_element, cardinality};
use datafusion::functions_window::expr_fn::lag;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, ExprFunctionExt, JoinType, LogicalPlan,
    LogicalPlanBuilder, ScalarUDF, cast, col, lit, when,
};
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use crate::actor_id_funnel::ActorIdFunnel;
use crate::actor_id_sessions::IDS_PER_BLOCK;
use crate::step_number::StepNumber;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order, ratio,
};
use crate::time_arguments::{ActorInput, micros_of, time_bound};
use crate::window_funnel_events::WindowFunnelEvents;

const NAME: &str = "funnel";

/// The block of ids of an integer actor (see actor_id_funnel.rs).
const ACTOR_BLOCK: &str = "__funnel_actor_block";

/// The number of the step each row is, 0 for none.
const STEP_NUMBER: &str = "__funnel_step_number";

/// The `funnel` table function.
#[derive(Debug)]
pub(crate) struct Funnel;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "A conversion funnel over ClickHouse's windowFunnel: an actor reaches step k when \
             its events hold steps 1 to k in order, each within `within` of its step 1 \
             (inclusive), step 1 in the range [since, until) and the later steps up to until + \
             within. actors at step k counts the actors whose level is at least k; \
             conversion_from_first = actors / actors at step 1, conversion_from_previous = \
             actors / actors at step k - 1 (1.0 for step 1; NULL where the denominator is 0); \
             median_seconds_from_previous is the median time from step k - 1 to step k (exact, \
             interpolated), from the chain that first reached each actor's highest level. \
             Columns: [segment,] step INT (from 1), step_name VARCHAR, actors BIGINT, \
             conversion_from_first DOUBLE, conversion_from_previous DOUBLE, \
             median_seconds_from_previous DOUBLE (NULL for step 1); one row per step, ordered \
             by segment and step.",
            "funnel(table, steps [, actor [, ts [, within [, mode [, step_column [, since [, \
             until [, segment [, tz]]]]]]]]])",
        )
        .with_argument(
            "table",
            "The events: a table or view name ('events'), or a query ('SELECT * FROM events \
             WHERE plan = ''pro''').",
        )
        .with_argument(
            "steps",
            "Required: the values of step_column that make the steps, in order, as an array \
             (['signup', 'login', 'export']); 1 to 32 of them.",
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
            "within",
            "How long after step 1 the last step may come, inclusive: an INTERVAL (or a string \
             such as '1 hour'). Default: '7 days'.",
        )
        .with_argument(
            "mode",
            "window_funnel's modes, comma-separated: 'strict_deduplication', 'strict_order', \
             'strict_increase', 'strict_once'. Default: none.",
        )
        .with_argument(
            "step_column",
            "The column whose values name the steps. Default: 'event'.",
        )
        .with_argument(
            "since",
            "Step 1 at or after this instant (a DATE: its local midnight; a TIMESTAMP; or a \
             'YYYY-MM-DD' string). Default: the first event.",
        )
        .with_argument(
            "until",
            "Step 1 before this instant (same types as since); later steps may follow up to \
             until + within. Default: after the last event.",
        )
        .with_argument(
            "segment",
            "A column to compute the function for each of its values separately; it becomes the \
             first column. Default: none.",
        )
        .with_argument(
            "tz",
            "The IANA time zone of DATE arguments and columns. Default: the session setting \
             usagelake.tz, else UTC.",
        )
        .with_sql_example(
            "SELECT step, step_name, actors, conversion_from_first \
             FROM funnel('events', ['feature_page_view', 'pricing_view', 'trial_start', \
             'purchase'], within => INTERVAL '14 days');\n\
             SELECT * FROM funnel('events', ['signup', 'invite'], within => '1 day', \
             segment => 'plan', mode => 'strict_order');",
        )
        .build()
    })
}

/// The step values given for `steps`: an array of constants.
fn steps(
    arguments: &BoundArguments,
    context: &mut dyn RelationPlannerContext,
) -> Result<Vec<Expr>> {
    let bad = |what: &dyn std::fmt::Display| {
        plan_datafusion_err!(
            "{NAME}: argument steps must be an array of step values, such as ['signup', \
             'login', 'export'], not {what}"
        )
    };
    let Some(value) = arguments.get("steps") else {
        return plan_err!(
            "{NAME}: argument steps is required: the values of step_column that make the \
             steps, such as steps => ['signup', 'login', 'export']"
        );
    };
    let SqlExpr::Array(array) = value else {
        return Err(bad(value));
    };
    let mut steps = Vec::with_capacity(array.elem.len());
    for element in &array.elem {
        let expr = context.sql_to_expr(element.clone(), &DFSchema::empty())?;
        match &expr {
            Expr::Literal(value, _) if !value.is_null() => steps.push(expr),
            _ => return Err(bad(element)),
        }
    }
    if steps.is_empty() || steps.len() > 32 {
        return plan_err!(
            "{NAME}: argument steps must hold 1 to 32 steps, not {}",
            steps.len()
        );
    }
    Ok(steps)
}

/// The `within` argument as an INTERVAL constant, 7 days when not given.
fn within(
    arguments: &BoundArguments,
    context: &mut dyn RelationPlannerContext,
) -> Result<ScalarValue> {
    let interval = DataType::Interval(IntervalUnit::MonthDayNano);
    let value = match arguments.constant("within", context)? {
        None => ScalarValue::Utf8(Some("7 days".to_string())),
        Some(value) if value.is_null() => ScalarValue::Utf8(Some("7 days".to_string())),
        Some(value) => value,
    };
    value.cast_to(&interval).map_err(|_| {
        plan_datafusion_err!(
            "{NAME}: argument within must be an INTERVAL such as INTERVAL '1 hour' or '7 \
             days', not {value}"
        )
    })
}

impl MetricTableFunction for Funnel {
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
        let steps = steps(arguments, context)?;
        let input = ActorInput::read(NAME, arguments, context)?;
        let step_column = arguments.column("step_column", "event", &input.plan, context)?;
        let within = within(arguments, context)?;
        let modes: Vec<String> = match arguments.string("mode", context)? {
            None => vec![],
            Some(text) => text
                .split(',')
                .map(|mode| mode.trim().to_ascii_lowercase())
                .filter(|mode| !mode.is_empty())
                .collect(),
        };
        let strict_order = modes.iter().any(|mode| mode == "strict_order");
        let since = time_bound(NAME, arguments, "since", &input.calendar, context)?;
        let until = time_bound(NAME, arguments, "until", &input.calendar, context)?;
        if let (Some(since), Some(until)) = (&since, &until)
            && since.micros >= until.micros
        {
            return plan_err!(
                "{NAME}: arguments since and until: since must be before until, but the range \
                 [{}, {}) is empty",
                since.text,
                until.text
            );
        }

        let time = Expr::Column(input.ts.clone());
        let step = Expr::Column(step_column);
        let mut filter = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(time.clone().is_not_null());
        if let Some(since) = &since {
            filter = filter.and(input.at_or_after(since));
        }
        let mut first_step = col(STEP_NUMBER).eq(lit(1_i32));
        if let Some(until) = &until {
            // Step 1 before until; the others up to until + within (folded to a constant, so
            // that it reaches the scan).
            first_step = first_step.and(input.before(until));
            let Expr::BinaryExpr(before) = input.before(until) else {
                unreachable!("before is a comparison");
            };
            filter = filter.and(time.clone().lt(*before.right + lit(within.clone())));
        }
        // Each row's step, numbered once (see step_number.rs).
        let mut columns: Vec<Expr> = input
            .plan
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        columns.push(
            ScalarUDF::from(StepNumber::new())
                .call(std::iter::once(step).chain(steps.iter().cloned()).collect())
                .alias(STEP_NUMBER),
        );
        let mut events = LogicalPlanBuilder::from(input.plan.clone())
            .filter(filter)?
            .project(columns)?;
        // Only the steps' events matter, but in strict_order mode any other event between two
        // steps breaks the chain, so every event is read then.
        if !strict_order {
            events = events.filter(col(STEP_NUMBER).gt(lit(0_i32)))?;
        }
        let mut call = vec![lit(within.clone()), time.clone(), first_step];
        // step_number gives a value the number of its first step: a value that several steps
        // share (['view', 'view', 'cart']) meets each of them.
        call.extend(steps[1..].iter().map(|value| {
            let first = steps
                .iter()
                .position(|step| step == value)
                .unwrap_or_default();
            col(STEP_NUMBER).eq(lit(first as i32 + 1))
        }));
        call.extend(modes.into_iter().map(lit));
        let segment_name = |index: usize| format!("__usagelake_segment_{index}");
        let segments = input.segments.len();
        let segment_columns = || (0..segments).map(|index| col(segment_name(index)));
        let named_segments = || {
            input
                .segments
                .iter()
                .enumerate()
                .map(|(index, segment)| Expr::Column(segment.clone()).alias(segment_name(index)))
                .collect::<Vec<_>>()
        };
        let counted = if input.actor_type()?.is_integer()
            && matches!(input.ts_type, DataType::Timestamp(..))
        {
            // Blocks of ids instead of actors: see actor_id_funnel.rs.
            let actor = Expr::Column(input.actor.clone());
            let mut read: Vec<Expr> = input.segments.iter().cloned().map(Expr::Column).collect();
            read.extend([
                actor.clone(),
                time.clone(),
                col(STEP_NUMBER),
                (cast(actor.clone(), DataType::Int64) / lit(IDS_PER_BLOCK)).alias(ACTOR_BLOCK),
            ]);
            let mut keys = input.segments.clone();
            keys.push(Column::from_name(ACTOR_BLOCK));
            let report = AggregateUDF::from(ActorIdFunnel::new())
                .call(std::iter::once(actor).chain(call).collect());
            let field = |name: &str| get_field(col(FOLDED), name);
            let mut elements: Vec<Expr> = folded_segments(&input.segments)
                .into_iter()
                .enumerate()
                .map(|(index, segment)| segment.alias(segment_name(index)))
                .collect();
            elements.extend([
                field("step").alias("__step"),
                field("actors").alias("__reached"),
                field("seconds").alias("__seconds"),
            ]);
            let is_step = |index: usize| col("__step").eq(lit(index as i32 + 1));
            let name = |index: usize| cast(steps[index].clone(), DataType::Utf8);
            let mut step_name = when(is_step(0), name(0));
            for index in 1..steps.len() {
                step_name = step_name.when(is_step(index), name(index));
            }
            let mut counted: Vec<Expr> = segment_columns().collect();
            counted.extend([
                col("__step"),
                step_name.end()?.alias("__step_name"),
                col("__actors"),
                col("__median"),
            ]);
            fold_segments(events.project(read)?, &keys, report)?
                .project(elements)?
                .aggregate(
                    segment_columns().chain([col("__step")]),
                    vec![
                        sum(col("__reached")).alias("__actors"),
                        percentile_cont(col("__seconds").sort(true, false), lit(0.5))
                            .alias("__median"),
                    ],
                )?
                .project(counted)?
        } else {
            let chain = AggregateUDF::from(WindowFunnelEvents::new()).call(call);
            let mut group: Vec<Expr> = named_segments();
            group.push(Expr::Column(input.actor.clone()));
            let chains = events
                .clone()
                .aggregate(group, vec![chain.alias("__chain")])?
                .filter(cardinality(col("__chain")).gt(lit(0_u64)))?;

            // One row per step, as (number, name).
            let step_rows: Vec<Vec<Expr>> = steps
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    vec![lit(index as i32 + 1), cast(value.clone(), DataType::Utf8)]
                })
                .collect();
            let step_table = || -> Result<LogicalPlan> {
                LogicalPlanBuilder::values(step_rows.clone())?
                    .project(vec![
                        col("column1").alias("__step"),
                        col("column2").alias("__step_name"),
                    ])?
                    .build()
            };
            // The chain's times as microseconds; DATEs come back as TIMESTAMPs without a zone.
            let element_type = match &input.ts_type {
                DataType::Timestamp(unit, zone) => DataType::Timestamp(*unit, zone.clone()),
                _ => DataType::Timestamp(TimeUnit::Microsecond, None),
            };
            let step_time = |index: Expr| {
                micros_of(
                    array_element(col("__chain"), index),
                    &element_type,
                    &input.tz,
                )
            };
            let seconds = when(
                col("__step").gt(lit(1_i32)),
                cast(
                    step_time(cast(col("__step"), DataType::Int64))
                        - step_time(cast(col("__step"), DataType::Int64) - lit(1_i64)),
                    DataType::Float64,
                ) / lit(1_000_000.0),
            )
            .end()?;
            let reached = chains
                .cross_join(step_table()?)?
                .filter(cardinality(col("__chain")).gt_eq(cast(col("__step"), DataType::UInt64)))?
                .project(segment_columns().chain([col("__step"), seconds.alias("__seconds")]))?
                .aggregate(
                    segment_columns().chain([col("__step")]),
                    vec![
                        count(lit(1)).alias("__actors"),
                        percentile_cont(col("__seconds").sort(true, false), lit(0.5))
                            .alias("__median"),
                    ],
                )?;

            // Every step of every segment with events (none for empty input).
            let grid = if segments == 0 {
                events
                    .aggregate(Vec::<Expr>::new(), vec![count(lit(1)).alias("__events")])?
                    .filter(col("__events").gt(lit(0_i64)))?
                    .cross_join(step_table()?)?
            } else {
                events
                    .project(named_segments())?
                    .distinct()?
                    .cross_join(step_table()?)?
            };
            let keys = |qualifier: &str| -> Vec<Column> {
                (0..segments)
                    .map(segment_name)
                    .chain(["__step".to_string()])
                    .map(|name| Column::new(Some(qualifier), name))
                    .collect()
            };
            let joined = grid.alias("g")?.join_detailed(
                reached.alias("r")?.build()?,
                JoinType::Left,
                (keys("g"), keys("r")),
                None,
                NullEquality::NullEqualsNull,
            )?;
            let mut columns: Vec<Expr> = keys("g").into_iter().map(Expr::Column).collect();
            columns.extend([
                col("g.__step_name"),
                coalesce(vec![col("r.__actors"), lit(0_i64)]).alias("__actors"),
                col("r.__median").alias("__median"),
            ]);
            joined.project(columns)?
        };

        let partition: Vec<Expr> = segment_columns().collect();
        let order = vec![col("__step").sort(true, true)];
        let first = Expr::from(WindowFunction::new(
            max_udaf(),
            vec![when(col("__step").eq(lit(1_i32)), col("__actors")).end()?],
        ))
        .partition_by(partition.clone())
        .build()?
        .alias("__first");
        let previous = lag(col("__actors"), Some(1), None)
            .partition_by(partition)
            .order_by(order)
            .build()?
            .alias("__previous");
        let mut output: Vec<Expr> = input
            .segments
            .iter()
            .enumerate()
            .map(|(index, segment)| col(segment_name(index)).alias(&segment.name))
            .collect();
        output.extend([
            col("__step").alias("step"),
            col("__step_name").alias("step_name"),
            col("__actors").alias("actors"),
            ratio(col("__actors"), col("__first"))?.alias("conversion_from_first"),
            when(col("__step").eq(lit(1_i32)), lit(1.0))
                .otherwise(ratio(col("__actors"), col("__previous"))?)?
                .alias("conversion_from_previous"),
            col("__median").alias("median_seconds_from_previous"),
        ]);
        let mut order: Vec<Expr> = input
            .segments
            .iter()
            .map(|segment| col(&segment.name))
            .collect();
        order.push(col("step"));
        // One window node per sort: DataFusion's physical planner takes one sort per node.
        let report = counted
            .window(vec![first])?
            .window(vec![previous])?
            .project(output)?;
        in_order(report, order)?.build()
    }
}
