//! [`WindowFunnelByIdBlocks`]: plans `window_funnel` under `GROUP BY` an integer actor as
//! `actor_id_window_funnel` under `GROUP BY actor / 16384`, then one row per actor again.
//!
//! The query every funnel analysis starts from, `SELECT user_id, window_funnel(...) FROM events
//! GROUP BY user_id`, spent most of its time in DataFusion's hash table of actors, built twice
//! (partial and final aggregate) to gather a couple of events per actor. Integer actors need no
//! hash table: see actor_id_window_funnel.rs. The rewrite keeps the aggregate's schema, names and
//! qualifiers, so the plan above it does not change, and it only fires where the two plans give
//! the same rows: one plain integer column as the only key (not UINT64, whose ids do not all fit
//! a BIGINT), and only `window_funnel` aggregates, over a TIMESTAMP, with no DISTINCT, FILTER or
//! ORDER BY. Any other query keeps its plan.
//!
//! Steps written as `event = 'signup'`, all on one column of strings, are numbered once per row
//! on the way ([`numbered_steps`]), as the `funnel` table function does: each condition compared
//! every row's string again (29 ms of the benchmark query's CPU for five steps).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, Result, UnnestOptions};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::expr::{AggregateFunction, BinaryExpr};
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator,
    ScalarUDF, cast, col, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::actor_id_sessions::IDS_PER_BLOCK;
use crate::actor_id_window_funnel::ActorIdWindowFunnel;
use crate::step_number::StepNumber;
use crate::window_funnel::WindowFunnel;

/// The block of ids of the actor, the key of the rewritten aggregate.
const BLOCK: &str = "__usagelake_actor_block";

/// The list of (actor, level) of a block for each call, then one such struct per row.
const LEVELS: &str = "__usagelake_levels";

/// The optimizer rule; see the module doc.
#[derive(Debug, Default)]
pub(crate) struct WindowFunnelByIdBlocks;

impl OptimizerRule for WindowFunnelByIdBlocks {
    fn name(&self) -> &str {
        "usagelake_window_funnel_by_id_blocks"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match by_id_blocks(aggregate)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The arguments of the aggregate's one `window_funnel` call, if it is one the rewrite keeps the
/// meaning of.
fn window_funnel_arguments(expr: &Expr) -> Option<&[Expr]> {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return None;
    };
    let plain = !params.distinct
        && params.filter.is_none()
        && params.order_by.is_empty()
        && params.null_treatment.is_none();
    (plain && func.inner().is::<WindowFunnel>()).then_some(params.args.as_slice())
}

/// The plan of blocks for `aggregate`, or None when it is not one the rule rewrites.
fn by_id_blocks(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    let [Expr::Column(actor)] = aggregate.group_expr.as_slice() else {
        return Ok(None);
    };
    let Some(calls) = aggregate
        .aggr_expr
        .iter()
        .map(window_funnel_arguments)
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let input_schema = aggregate.input.schema();
    let actor_type = input_schema
        .qualified_field_from_column(actor)?
        .1
        .data_type();
    if calls.is_empty() || !actor_type.is_integer() || *actor_type == DataType::UInt64 {
        return Ok(None);
    }
    for arguments in &calls {
        let Some(ts) = arguments.get(1) else {
            return Ok(None);
        };
        if !matches!(ts.get_type(input_schema.as_ref())?, DataType::Timestamp(..)) {
            return Ok(None);
        }
    }
    let mut numbers = Vec::new();
    let calls: Vec<Vec<Expr>> = calls
        .iter()
        .enumerate()
        .map(|(index, arguments)| numbered_steps(index, arguments, input_schema, &mut numbers))
        .collect::<Result<_>>()?;
    let input = match numbers.is_empty() {
        true => Arc::clone(&aggregate.input),
        false => {
            let columns = input_schema.columns().into_iter().map(Expr::Column);
            let numbered = LogicalPlanBuilder::from(Arc::clone(&aggregate.input))
                .project(columns.chain(numbers))?
                .build()?;
            Arc::new(numbered)
        }
    };
    let actor_expr = Expr::Column(actor.clone());
    let block = (cast(actor_expr.clone(), DataType::Int64) / lit(IDS_PER_BLOCK)).alias(BLOCK);
    let levels = |index: usize| format!("{LEVELS}_{index}");
    let aggregates = calls.iter().enumerate().map(|(index, arguments)| {
        let arguments = std::iter::once(actor_expr.clone()).chain(arguments.iter().cloned());
        AggregateUDF::from(ActorIdWindowFunnel::new())
            .call(arguments.collect())
            .alias(levels(index))
    });
    // Every call gets every row, so their lists hold the same actors in the same order, and
    // unnesting them together lines up each actor's levels.
    let lists: Vec<Column> = (0..calls.len())
        .map(|index| Column::from_name(levels(index)))
        .collect();
    // The aggregate's own output columns, names and qualifiers, for the plan above it.
    let output = |index: usize| {
        let (qualifier, field) = aggregate.schema.qualified_field(index);
        (qualifier.cloned(), field.name().clone())
    };
    let (actor_qualifier, actor_name) = output(0);
    let mut columns = vec![
        cast(get_field(col(levels(0)), "actor"), actor_type.clone())
            .alias_qualified(actor_qualifier, actor_name),
    ];
    columns.extend((0..calls.len()).map(|index| {
        let (qualifier, name) = output(index + 1);
        get_field(col(levels(index)), "level").alias_qualified(qualifier, name)
    }));
    let plan = LogicalPlanBuilder::from(input)
        .aggregate([block], aggregates)?
        .project(lists.iter().cloned().map(Expr::Column))?
        .unnest_columns_with_options(lists, UnnestOptions::default())?
        .project(columns)?
        .build()?;
    Ok(Some(plan))
}

/// The arguments of call `index` with its conditions numbered once: when every condition reads
/// `column = 'constant'` on one column of string views (the usual funnel of event names), the
/// call's steps become `__usagelake_step_{index} = k`, that column being `step_number(column,
/// constants...)`, pushed to `numbers` for the projection below the aggregate. One pass numbers
/// each row where each condition compared every string again. Other calls keep their arguments.
fn numbered_steps(
    index: usize,
    arguments: &[Expr],
    schema: &DFSchema,
    numbers: &mut Vec<Expr>,
) -> Result<Vec<Expr>> {
    // window, ts, the conditions, then the modes: constants.
    let conditions = arguments
        .get(2..)
        .unwrap_or_default()
        .iter()
        .take_while(|argument| !matches!(argument, Expr::Literal(..)))
        .collect::<Vec<_>>();
    let mut column = None;
    let mut constants = Vec::with_capacity(conditions.len());
    for condition in &conditions {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = condition
        else {
            return Ok(arguments.to_vec());
        };
        let ((Expr::Column(read), Expr::Literal(constant, _))
        | (Expr::Literal(constant, _), Expr::Column(read))) = (left.as_ref(), right.as_ref())
        else {
            return Ok(arguments.to_vec());
        };
        if constant.try_as_str().flatten().is_none() || column.is_some_and(|known| known != read) {
            return Ok(arguments.to_vec());
        }
        column = Some(read);
        constants.push(constant.clone());
    }
    let Some(column) = column else {
        return Ok(arguments.to_vec());
    };
    if schema.qualified_field_from_column(column)?.1.data_type() != &DataType::Utf8View {
        return Ok(arguments.to_vec());
    }
    let name = format!("__usagelake_step_{index}");
    let step_arguments = std::iter::once(Expr::Column(column.clone()))
        .chain(constants.iter().cloned().map(lit))
        .collect();
    numbers.push(
        ScalarUDF::from(StepNumber::new())
            .call(step_arguments)
            .alias(&name),
    );
    // A constant that several steps share is numbered by its first step, and meets each of them.
    let steps = constants.iter().map(|constant| {
        let first = constants
            .iter()
            .position(|known| known == constant)
            .unwrap_or_default();
        col(&name).eq(lit(first as i32 + 1))
    });
    let mut numbered = arguments[..2].to_vec();
    numbered.extend(steps);
    numbered.extend_from_slice(&arguments[2 + conditions.len()..]);
    Ok(numbered)
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    /// The optimized plan of `sql` over an empty table `e`.
    async fn plan_of(sql: &str) -> String {
        let ctx = SessionContext::new();
        crate::register_all(&ctx).unwrap();
        ctx.sql(
            "CREATE TABLE e (user_id BIGINT, small_id SMALLINT, unsigned_id BIGINT UNSIGNED, \
             ts TIMESTAMP, day DATE, event VARCHAR)",
        )
        .await
        .unwrap();
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        plan.display_indent().to_string()
    }

    #[tokio::test]
    async fn window_funnel_by_an_integer_actor_is_planned_by_blocks_of_ids() {
        for sql in [
            "SELECT user_id, window_funnel(INTERVAL '1 hour', ts, event = 'a') FROM e GROUP BY user_id",
            "SELECT small_id, window_funnel(INTERVAL '1 hour', ts, event = 'a'), \
             window_funnel(INTERVAL '2 hours', ts, event = 'a', 'strict_order') FROM e GROUP BY 1",
        ] {
            let plan = plan_of(sql).await;
            assert!(plan.contains("actor_id_window_funnel"), "{sql}\n{plan}");
            assert!(!plan.contains("aggr=[[window_funnel"), "{sql}\n{plan}");
        }
    }

    #[tokio::test]
    async fn other_keys_and_other_aggregates_keep_the_hash_aggregate() {
        for sql in [
            // A key that is not an integer, or whose ids do not all fit a BIGINT.
            "SELECT event, window_funnel(INTERVAL '1 hour', ts, event = 'a') FROM e GROUP BY event",
            "SELECT unsigned_id, window_funnel(INTERVAL '1 hour', ts, event = 'a') FROM e GROUP BY 1",
            // Two keys, an expression as key, no key.
            "SELECT user_id, day, window_funnel(INTERVAL '1 hour', ts, event = 'a') FROM e GROUP BY 1, 2",
            "SELECT user_id + 1, window_funnel(INTERVAL '1 hour', ts, event = 'a') FROM e GROUP BY 1",
            "SELECT window_funnel(INTERVAL '1 hour', ts, event = 'a') FROM e",
            // Another aggregate beside it, a FILTER, DATE times.
            "SELECT user_id, window_funnel(INTERVAL '1 hour', ts, event = 'a'), count(*) FROM e GROUP BY 1",
            "SELECT user_id, window_funnel(INTERVAL '1 hour', ts, event = 'a') FILTER (WHERE day > DATE '2024-01-01') \
             FROM e GROUP BY 1",
            "SELECT user_id, window_funnel(INTERVAL '1 day', day, event = 'a') FROM e GROUP BY 1",
        ] {
            let plan = plan_of(sql).await;
            assert!(!plan.contains("actor_id_window_funnel"), "{sql}\n{plan}");
        }
    }

    #[tokio::test]
    async fn steps_that_compare_one_column_with_constants_are_numbered_once() {
        let sql = "SELECT user_id, window_funnel(INTERVAL '1 hour', ts, event = 'a', 'b' = event, \
                   event = 'c', 'strict_order') FROM e GROUP BY 1";
        let plan = plan_of(sql).await;
        assert!(
            plan.contains(
                "step_number(e.event, Utf8View(\"a\"), Utf8View(\"b\"), Utf8View(\"c\"))"
            ),
            "{plan}"
        );
        assert!(plan.contains("__usagelake_step_0 = Int32(2)"), "{plan}");
        // Another column, another operator: the conditions stay.
        for sql in [
            "SELECT user_id, window_funnel(INTERVAL '1 hour', ts, event = 'a', CAST(day AS VARCHAR) = 'b') \
             FROM e GROUP BY 1",
            "SELECT user_id, window_funnel(INTERVAL '1 hour', ts, event = 'a', event > 'b') FROM e GROUP BY 1",
        ] {
            let plan = plan_of(sql).await;
            assert!(plan.contains("actor_id_window_funnel"), "{sql}\n{plan}");
            assert!(!plan.contains("step_number"), "{sql}\n{plan}");
        }
    }
}
