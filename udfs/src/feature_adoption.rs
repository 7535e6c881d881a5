//! `feature_adoption(table, actor, ts, feature, since, until, min_uses, eligible, launches,
//! segment, tz)`: for each feature, who could have adopted it, who did, and how long they took.
//!
//! The questions behind a launch review: what share of the actors who were around after the
//! launch used the feature (250 adopters of 1,000 eligible customers is 25%), and how many days
//! an adopter took from the later of its first-seen time and the launch to its first use (median
//! and 90th percentile, exact).
//!
//! The call plans into DataFusion's own operators (aggregates, joins and `percentile_cont`), so
//! it parallelises here and runs unchanged on a cluster:
//!
//! - per actor: its first event (over all history: first seen) and its last event in the range;
//! - per (actor, feature): its first use (over all history) and its uses in the range;
//! - per feature: the launch, the first use by anyone, moved earlier by a `launches` table's
//!   `released_at` (a use before the given launch moves the launch to that use);
//! - eligible: actors whose last event in the range is at or after the launch (or the actors of
//!   an `eligible` table); adopters: eligible actors with at least `min_uses` uses in the range.
//!
//! History before `since` is read (first seen, first use, launch); nothing at or after `until` is.
//!
//! With integer actors the same facts come from one aggregate over the rows instead,
//! [`feature_adoption_sets`](crate::feature_adoption_sets): the GROUP BYs and joins above took 22
//! times the scan over 30M events, most of it in their hash tables. The launches and the eligible
//! actors join the events as rows of their own (UNION ALL), so that plan parallelises too
//! (partial states merged) and reads the same columns.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, NullEquality, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::{coalesce, get_field, greatest, least};
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::functions_aggregate::percentile_cont::percentile_cont;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, cast,
    col, lit, when,
};

use crate::feature_adoption_sets::FeatureAdoptionSets;
use crate::table_function::{
    BoundArguments, FOLDED, MetricTableFunction, fold_segments, folded_segments, in_order, ratio,
};
use crate::time_arguments::{ActorInput, micros_of, time_bound};

const NAME: &str = "feature_adoption";

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// The `feature_adoption` table function.
#[derive(Debug)]
pub(crate) struct FeatureAdoption;

fn documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake table functions",
                description: None,
            },
            "Adoption of each feature: the features used in the range and those of `launches` \
             (0 adopters if unused); a feature's launch is the `released_at` of `launches`, \
             moved earlier to its first use by anyone if that came before, else its first use. \
             eligible: distinct actors with an event in the range at or after the launch (or the \
             actors of the `eligible` table); adopters: eligible actors with at least min_uses \
             uses of the feature in the range; adoption_rate = adopters / eligible (NULL when \
             none are eligible). Days to adopt: an adopter's first use of the feature minus the \
             later of its first-seen time (over all history) and the launch; its median and 90th \
             percentile are exact, interpolated between neighbours (percentile_cont). Columns: \
             [segment,] feature VARCHAR, launched TIMESTAMP (UTC), eligible BIGINT, adopters \
             BIGINT, adoption_rate DOUBLE, median_days_to_adopt DOUBLE, p90_days_to_adopt \
             DOUBLE, ordered by segment and feature. Reads the history before since; nothing \
             from until on.",
            "feature_adoption(table [, actor [, ts [, feature [, since [, until [, min_uses [, \
             eligible [, launches [, segment [, tz]]]]]]]]]])",
        )
        .with_argument(
            "table",
            "The events: a table or view name ('events'), or a query ('SELECT * FROM events \
             WHERE plan = ''pro''').",
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
            "feature",
            "The column naming the feature an event uses; NULL for events that use none. To \
             count only some events as uses (event = 'feature_use', say), pass the input as a \
             query that sets the feature of the others to NULL: every event still counts \
             towards eligibility and first seen. Default: 'feature'.",
        )
        .with_argument(
            "since",
            "Count uses and eligibility from this instant (a DATE: its local midnight; a \
             TIMESTAMP; or a 'YYYY-MM-DD' string). Default: the first event.",
        )
        .with_argument(
            "until",
            "Count uses and eligibility before this instant (same types as since). Default: \
             after the last event.",
        )
        .with_argument(
            "min_uses",
            "Uses in the range that make an eligible actor an adopter, 1 or more. Default: 1.",
        )
        .with_argument(
            "eligible",
            "A table (or query) whose actors, in a column named as the actor column (and with \
             the segment column when a segment is given), are the eligible ones. Default: the \
             actors with an event in the range at or after the launch.",
        )
        .with_argument(
            "launches",
            "A table (or query) with columns feature and released_at (TIMESTAMP or DATE), such \
             as the sample lake's features. Default: none; a feature launches at its first use.",
        )
        .with_argument(
            "segment",
            "A column to compute the function for each of its values separately, as if each were \
             its own table; it becomes the first column. Default: none.",
        )
        .with_argument(
            "tz",
            "The IANA time zone of DATE arguments and columns. Default: the session setting \
             usagelake.tz, else UTC.",
        )
        .with_sql_example(
            "SELECT feature, eligible, adopters, adoption_rate, median_days_to_adopt \
             FROM feature_adoption('events', launches => 'features');\n\
             SELECT * FROM feature_adoption('events', since => DATE '2024-07-01', \
             min_uses => 3, segment => 'plan');",
        )
        .build()
    })
}

/// The name of segment column `index` inside the plan.
fn segment_name(index: usize) -> String {
    format!("__usagelake_segment_{index}")
}

/// The column `name` of `plan`, the relation given for argument `argument`; an error lists the
/// relation's columns when it has none of that name.
fn named_column(plan: &LogicalPlan, argument: &str, name: &str) -> Result<Column> {
    let schema = plan.schema();
    match schema.qualified_field_with_unqualified_name(name) {
        Ok((qualifier, field)) => Ok(Column::new(qualifier.cloned(), field.name())),
        Err(_) => plan_err!(
            "{NAME}: argument {argument}: the table has no column '{name}'; its columns are {}",
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The columns of relation `qualifier`: the segments, then `others`.
fn keys(qualifier: &str, segments: usize, others: &[&str]) -> Vec<Column> {
    (0..segments)
        .map(segment_name)
        .chain(others.iter().map(|name| name.to_string()))
        .map(|name| Column::new(Some(qualifier), name))
        .collect()
}

/// The `launches` table as one row per segment of `events` and feature: the segments, `__feature`
/// and its earliest `__released`, in microseconds.
fn launches_table(
    arguments: &BoundArguments,
    input: &ActorInput,
    events: &LogicalPlanBuilder,
    context: &mut dyn RelationPlannerContext,
) -> Result<LogicalPlanBuilder> {
    let launches = arguments.input("launches", context)?;
    let launch_feature = named_column(&launches, "launches", "feature")?;
    let released = named_column(&launches, "launches", "released_at")?;
    let released_type = launches
        .schema()
        .qualified_field_from_column(&released)?
        .1
        .data_type()
        .clone();
    if !matches!(released_type, DataType::Timestamp(..) | DataType::Date32) {
        return plan_err!(
            "{NAME}: argument launches: released_at must be a TIMESTAMP or a DATE, not \
             {released_type}"
        );
    }
    let launches = LogicalPlanBuilder::from(launches)
        .filter(Expr::Column(launch_feature.clone()).is_not_null())?
        .aggregate(
            vec![Expr::Column(launch_feature).alias("__feature")],
            vec![
                min(micros_of(Expr::Column(released), &released_type, &input.tz))
                    .alias("__released"),
            ],
        )?;
    let segments = input.segments.len();
    if segments == 0 {
        return Ok(launches);
    }
    events
        .clone()
        .aggregate(
            (0..segments).map(|index| col(segment_name(index))),
            Vec::<Expr>::new(),
        )?
        .cross_join(launches.build()?)
}

/// The actors of the `eligible` table, if given, without repeats: the segments (named by
/// [`segment_name`]) and `__actor`.
fn eligible_table(
    arguments: &BoundArguments,
    input: &ActorInput,
    context: &mut dyn RelationPlannerContext,
) -> Result<Option<LogicalPlanBuilder>> {
    if arguments.get("eligible").is_none() {
        return Ok(None);
    }
    let table = arguments.input("eligible", context)?;
    let mut columns = Vec::new();
    for (index, segment) in input.segments.iter().enumerate() {
        let column = named_column(&table, "eligible", &segment.name)?;
        columns.push(Expr::Column(column).alias(segment_name(index)));
    }
    let actor = named_column(&table, "eligible", &input.actor.name)?;
    columns.push(Expr::Column(actor.clone()).alias("__actor"));
    Ok(Some(
        LogicalPlanBuilder::from(table)
            .filter(Expr::Column(actor).is_not_null())?
            .project(columns)?
            .distinct()?,
    ))
}

/// Joins `left` (known as `left_name`) and `right` (known as `right_name`) on their segments and
/// `on` columns, with an extra `filter`.
fn join_on(
    left: LogicalPlanBuilder,
    right: LogicalPlanBuilder,
    (left_name, right_name): (&str, &str),
    join_type: JoinType,
    segments: usize,
    on: &[&str],
    filter: Option<Expr>,
) -> Result<LogicalPlanBuilder> {
    let left_keys = keys(left_name, segments, on);
    let right_keys = keys(right_name, segments, on);
    let right = right.alias(right_name)?.build()?;
    let left = left.alias(left_name)?;
    if left_keys.is_empty() {
        let joined = left.cross_join(right)?;
        return match filter {
            Some(filter) => joined.filter(filter),
            None => Ok(joined),
        };
    }
    left.join_detailed(
        right,
        join_type,
        (left_keys, right_keys),
        filter,
        NullEquality::NullEqualsNull,
    )
}

/// The plan for integer actors: the events, the launches (one row per segment and feature, with
/// no actor and no time) and the eligible actors (no time) as the rows of one
/// [`feature_adoption_sets`](crate::feature_adoption_sets) per segment.
fn folded_plan(
    arguments: &BoundArguments,
    input: &ActorInput,
    events: LogicalPlanBuilder,
    min_uses: i64,
    context: &mut dyn RelationPlannerContext,
) -> Result<LogicalPlan> {
    let segments = input.segments.len();
    let schema = Arc::clone(events.schema());
    let type_of = |name: &str| -> Result<DataType> {
        Ok(schema
            .field_with_unqualified_name(name)?
            .data_type()
            .clone())
    };
    let actor_type = type_of("__actor")?;
    let feature_type = type_of("__feature")?;
    let null_of =
        |data_type: &DataType| -> Result<Expr> { Ok(lit(ScalarValue::try_from(data_type)?)) };
    let no_time = lit(ScalarValue::Int64(None));
    // The segments under their own names, so that the fold's groups are named as the report's.
    let segment_columns = || -> Result<Vec<Expr>> {
        (0..segments)
            .map(|index| {
                Ok(
                    cast(col(segment_name(index)), type_of(&segment_name(index))?)
                        .alias(&input.segments[index].name),
                )
            })
            .collect()
    };
    let row = |actor: Expr, time: Expr, feature: Expr, in_range: Expr, released: Expr| {
        segment_columns().map(|mut columns| {
            columns.extend([
                actor.alias("__actor"),
                time.alias("__time"),
                feature.alias("__feature"),
                in_range.alias("__in_range"),
                released.alias("__released"),
            ]);
            columns
        })
    };
    let mut rows = events.clone().project(row(
        col("__actor"),
        col("__time"),
        col("__feature"),
        col("__in_range"),
        no_time.clone(),
    )?)?;
    if arguments.get("launches").is_some() {
        let per_segment = launches_table(arguments, input, &events, context)?;
        rows = rows.union(
            per_segment
                .project(row(
                    null_of(&actor_type)?,
                    no_time.clone(),
                    cast(col("__feature"), feature_type.clone()),
                    lit(false),
                    col("__released"),
                )?)?
                .build()?,
        )?;
    }
    let eligible = eligible_table(arguments, input, context)?;
    let eligible_listed = eligible.is_some();
    if let Some(eligible) = eligible {
        rows = rows.union(
            eligible
                .project(row(
                    cast(col("__actor"), actor_type.clone()),
                    no_time.clone(),
                    null_of(&feature_type)?,
                    lit(false),
                    no_time,
                )?)?
                .build()?,
        )?;
    }
    let sets = AggregateUDF::from(FeatureAdoptionSets::new()).call(vec![
        col("__actor"),
        col("__time"),
        col("__feature"),
        col("__in_range"),
        col("__released"),
        lit(min_uses),
        lit(eligible_listed),
    ]);
    let keys: Vec<Column> = input
        .segments
        .iter()
        .map(|segment| Column::from_name(&segment.name))
        .collect();
    let folded = fold_segments(rows, &keys, sets)?;
    let field = |name: &str| get_field(col(FOLDED), name);
    let mut output = folded_segments(&input.segments);
    output.extend([
        cast(field("feature"), feature_type).alias("feature"),
        cast(
            field("launch"),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
        .alias("launched"),
        field("eligible").alias("eligible"),
        field("adopters").alias("adopters"),
        ratio(field("adopters"), field("eligible"))?.alias("adoption_rate"),
        field("median_days").alias("median_days_to_adopt"),
        field("p90_days").alias("p90_days_to_adopt"),
    ]);
    let mut order = folded_segments(&input.segments);
    order.push(col("feature"));
    in_order(folded.project(output)?, order)?.build()
}

impl MetricTableFunction for FeatureAdoption {
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
        let feature = arguments.column("feature", "feature", &input.plan, context)?;
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
        let min_uses = arguments.whole_number("min_uses", 1, "uses", context)?;
        if min_uses < 1 {
            return plan_err!("{NAME}: argument 'min_uses' must be 1 or more, not {min_uses}");
        }
        let segments = input.segments.len();

        // The events, with plain names: segments, actor, time in microseconds, feature, and
        // whether the event is in the range.
        let mut counted = Expr::Column(input.actor.clone())
            .is_not_null()
            .and(Expr::Column(input.ts.clone()).is_not_null());
        if let Some(until) = &until {
            counted = counted.and(input.before(until));
        }
        let mut columns: Vec<Expr> = input
            .segments
            .iter()
            .enumerate()
            .map(|(index, segment)| Expr::Column(segment.clone()).alias(segment_name(index)))
            .collect();
        columns.extend([
            Expr::Column(input.actor.clone()).alias("__actor"),
            input.micros().alias("__time"),
            Expr::Column(feature.clone()).alias("__feature"),
            match &since {
                Some(since) => input.at_or_after(since),
                None => lit(true),
            }
            .alias("__in_range"),
        ]);
        let events = LogicalPlanBuilder::from(input.plan.clone())
            .filter(counted)?
            .project(columns)?;
        if input.actor_type()?.is_integer() {
            return folded_plan(arguments, &input, events, min_uses, context);
        }
        let segment_columns = || (0..segments).map(|index| col(segment_name(index)));
        let in_range = |value: Expr| when(col("__in_range"), value).end();

        let actors = events.clone().aggregate(
            segment_columns().chain([col("__actor")]),
            vec![
                min(col("__time")).alias("__first_seen"),
                max(in_range(col("__time"))?).alias("__last_in_range"),
            ],
        )?;
        let uses = events
            .clone()
            .filter(col("__feature").is_not_null())?
            .aggregate(
                segment_columns().chain([col("__feature"), col("__actor")]),
                vec![
                    min(col("__time")).alias("__first_use"),
                    sum(cast(col("__in_range"), DataType::Int64)).alias("__uses"),
                ],
            )?;
        let used = uses.clone().aggregate(
            segment_columns().chain([col("__feature")]),
            vec![
                min(col("__first_use")).alias("__first_use_any"),
                max(col("__uses")).alias("__max_uses"),
            ],
        )?;

        // Each reported feature with its launch.
        let features = match arguments.get("launches") {
            None => used.filter(col("__max_uses").gt(lit(0_i64)))?.project(
                segment_columns()
                    .chain([col("__feature"), col("__first_use_any").alias("__launch")]),
            )?,
            Some(_) => {
                let per_segment = launches_table(arguments, &input, &events, context)?;
                let joined = join_on(
                    used,
                    per_segment,
                    ("u", "l"),
                    JoinType::Full,
                    segments,
                    &["__feature"],
                    None,
                )?;
                let either = |name: &str| {
                    coalesce(vec![
                        Expr::Column(Column::new(Some("u"), name)),
                        Expr::Column(Column::new(Some("l"), name)),
                    ])
                    .alias(name)
                };
                let mut columns: Vec<Expr> = (0..segments)
                    .map(|index| either(&segment_name(index)))
                    .collect();
                columns.extend([
                    either("__feature"),
                    least(vec![col("u.__first_use_any"), col("l.__released")]).alias("__launch"),
                ]);
                joined
                    .filter(
                        coalesce(vec![col("u.__max_uses"), lit(0_i64)])
                            .gt(lit(0_i64))
                            .or(col("l.__feature").is_not_null()),
                    )?
                    .project(columns)?
            }
        };

        // The eligible actors, and the eligible count of each feature.
        let eligible_actors = eligible_table(arguments, &input, context)?;
        let eligible_counts = match &eligible_actors {
            None => join_on(
                features.clone(),
                actors.clone(),
                ("f", "a"),
                JoinType::Inner,
                segments,
                &[],
                Some(col("a.__last_in_range").gt_eq(col("f.__launch"))),
            )?,
            Some(eligible) => join_on(
                features.clone(),
                eligible.clone(),
                ("f", "a"),
                JoinType::Inner,
                segments,
                &[],
                None,
            )?,
        }
        .aggregate(
            keys("f", segments, &["__feature"])
                .into_iter()
                .map(Expr::Column),
            vec![count(lit(1)).alias("__eligible")],
        )?;

        // The adopters, and how long they took.
        let adopters = join_on(
            uses.filter(col("__uses").gt_eq(lit(min_uses)))?,
            actors,
            ("u", "a"),
            JoinType::Inner,
            segments,
            &["__actor"],
            None,
        )?;
        let adopters = join_on(
            adopters.project(
                keys("u", segments, &["__feature", "__actor", "__first_use"])
                    .into_iter()
                    .map(Expr::Column)
                    .chain([col("a.__first_seen")]),
            )?,
            features.clone(),
            ("u", "f"),
            JoinType::Inner,
            segments,
            &["__feature"],
            None,
        )?;
        let adopters = match eligible_actors {
            None => adopters,
            Some(eligible) => {
                let left_keys = keys("u", segments, &["__actor"]);
                let right_keys = keys("e", segments, &["__actor"]);
                adopters.join_detailed(
                    eligible.alias("e")?.build()?,
                    JoinType::LeftSemi,
                    (left_keys, right_keys),
                    None,
                    NullEquality::NullEqualsNull,
                )?
            }
        };
        let days = (cast(
            col("u.__first_use") - greatest(vec![col("u.__first_seen"), col("f.__launch")]),
            DataType::Float64,
        ) / lit(MICROS_PER_DAY))
        .alias("__days");
        let adoption = adopters
            .project(
                keys("u", segments, &["__feature"])
                    .into_iter()
                    .map(Expr::Column)
                    .chain([days]),
            )?
            .aggregate(
                keys("u", segments, &["__feature"])
                    .into_iter()
                    .map(Expr::Column),
                vec![
                    count(lit(1)).alias("__adopters"),
                    percentile_cont(col("__days").sort(true, false), lit(0.5))
                        .alias("__median_days"),
                    percentile_cont(col("__days").sort(true, false), lit(0.9)).alias("__p90_days"),
                ],
            )?;

        // One row per feature.
        let report = join_on(
            features,
            eligible_counts,
            ("f", "e"),
            JoinType::Left,
            segments,
            &["__feature"],
            None,
        )?
        .project(
            keys("f", segments, &["__feature", "__launch"])
                .into_iter()
                .map(Expr::Column)
                .chain([col("e.__eligible")]),
        )?;
        let report = join_on(
            report,
            adoption,
            ("r", "s"),
            JoinType::Left,
            segments,
            &["__feature"],
            None,
        )?;
        let eligible = coalesce(vec![col("r.__eligible"), lit(0_i64)]);
        let adopters = coalesce(vec![col("s.__adopters"), lit(0_i64)]);
        let mut output: Vec<Expr> = input
            .segments
            .iter()
            .enumerate()
            .map(|(index, segment)| col(format!("r.{}", segment_name(index))).alias(&segment.name))
            .collect();
        output.extend([
            col("r.__feature").alias("feature"),
            cast(
                col("r.__launch"),
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )
            .alias("launched"),
            eligible.clone().alias("eligible"),
            adopters.clone().alias("adopters"),
            ratio(adopters, eligible)?.alias("adoption_rate"),
            col("s.__median_days").alias("median_days_to_adopt"),
            col("s.__p90_days").alias("p90_days_to_adopt"),
        ]);
        let mut order: Vec<Expr> = input
            .segments
            .iter()
            .map(|segment| col(&segment.name))
            .collect();
        order.push(col("feature"));
        in_order(report.project(output)?, order)?.build()
    }
}
