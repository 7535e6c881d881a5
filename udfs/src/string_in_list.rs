//! [`StringInListAsStepNumber`]: a filter `value IN ('a', 'b', ...)` on strings read as views,
//! the lake's strings, run as `step_number(value, 'a', 'b', ...) > 0` (`NOT IN`: `= 0`).
//!
//! Nearly every funnel and adoption query starts by keeping the rows of a few events, and
//! DataFusion's IN list hashes every string of the scan to do it: over the benchmark lake's 30M
//! rows the filter took 0.40 s of CPU, against 0.29 s for `step_number`, which settles most rows
//! by one comparison of their 16-byte view (see step_number.rs). Both give the same answer for
//! every row (NULL for a NULL value), as long as the list holds no NULL, which changes IN's
//! answer for the rows that match nothing; so lists with a NULL keep their plan, as do lists of
//! more than [`MOST_LISTED`] constants, where `step_number`, comparing constants of one length
//! one by one, would lose to the hash. (DataFusion writes lists of up to 3 as `=` joined by OR,
//! which stay so.)
//!
//! It is a physical rule, run after every other, that rewrites only the filter operator: the
//! scan below keeps the IN it was given, with which it prunes files and row groups by their
//! statistics. (Rewritten in the logical plan, the filter pushed down to the scan was
//! `step_number`'s, and the scan pruned nothing.)

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{Operator, ScalarUDF};
use datafusion::physical_expr::expressions::{BinaryExpr, InListExpr, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

use crate::step_number::StepNumber;

/// The longest list rewritten.
const MOST_LISTED: usize = 8;

/// The physical optimizer rule; see the module doc.
#[derive(Debug, Default)]
pub(crate) struct StringInListAsStepNumber;

impl PhysicalOptimizerRule for StringInListAsStepNumber {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let schema = filter.input().schema();
            let predicate = Arc::clone(filter.predicate())
                .transform_up(|expr| as_step_number(expr, &schema, config))?;
            if !predicate.transformed {
                return Ok(Transformed::no(node));
            }
            let filter = FilterExecBuilder::from(filter)
                .with_predicate(predicate.data)
                .build()?;
            Ok(Transformed::yes(Arc::new(filter) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "usagelake_string_in_list_as_step_number"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `expr` as a test of `step_number`, when it is an IN list the module doc's rewrite applies to.
fn as_step_number(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
    config: &ConfigOptions,
) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    let Some(in_list) = expr.downcast_ref::<InListExpr>() else {
        return Ok(Transformed::no(expr));
    };
    let list = in_list.list();
    let constant_strings = list.iter().all(|item| {
        item.downcast_ref::<Literal>()
            .is_some_and(|constant| constant.value().try_as_str().flatten().is_some())
    });
    if list.is_empty()
        || list.len() > MOST_LISTED
        || !constant_strings
        || in_list.expr().data_type(schema)? != DataType::Utf8View
    {
        return Ok(Transformed::no(expr));
    }
    let arguments = std::iter::once(Arc::clone(in_list.expr()))
        .chain(list.iter().cloned())
        .collect();
    let number = ScalarFunctionExpr::try_new(
        Arc::new(ScalarUDF::from(StepNumber::new())),
        arguments,
        schema,
        Arc::new(config.clone()),
    )?;
    let operator = match in_list.negated() {
        false => Operator::Gt,
        true => Operator::Eq,
    };
    let zero = Arc::new(Literal::new(ScalarValue::Int32(Some(0))));
    Ok(Transformed::yes(Arc::new(BinaryExpr::new(
        Arc::new(number),
        operator,
        zero,
    ))))
}

#[cfg(test)]
mod tests {
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    /// The physical plan of `sql` over an empty table `e`, with this crate's rules.
    async fn physical_plan_of(sql: &str) -> String {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rules(crate::physical_optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        crate::register_all(&ctx).unwrap();
        ctx.sql("CREATE TABLE e (user_id BIGINT, event VARCHAR)")
            .await
            .unwrap();
        let plan = ctx.sql(sql).await.unwrap();
        let plan = plan.create_physical_plan().await.unwrap();
        displayable(plan.as_ref()).indent(true).to_string()
    }

    #[tokio::test]
    async fn a_filter_by_a_list_of_strings_numbers_the_steps() {
        // Lists of up to 3 DataFusion writes as `=` joined by OR, which this leaves alone.
        let sql = "SELECT user_id FROM e WHERE event IN ('view', 'cart', 'buy', 'pay')";
        let plan = physical_plan_of(sql).await;
        assert!(
            plan.contains("FilterExec: step_number(event@1, view, cart, buy, pay) > 0"),
            "{plan}"
        );
        let sql = "SELECT user_id FROM e WHERE event NOT IN ('view', 'cart', 'buy', 'pay')";
        let plan = physical_plan_of(sql).await;
        assert!(
            plan.contains("FilterExec: step_number(event@1, view, cart, buy, pay) = 0"),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn lists_with_a_null_long_lists_and_other_types_keep_the_in_list() {
        for sql in [
            "SELECT user_id FROM e WHERE event NOT IN ('view', 'cart', 'buy', NULL)",
            "SELECT user_id FROM e WHERE event IN ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i')",
            "SELECT user_id FROM e WHERE user_id IN (1, 2, 3, 4)",
            "SELECT user_id FROM e WHERE event IN ('view', 'cart', 'buy', lower(event))",
        ] {
            let plan = physical_plan_of(sql).await;
            assert!(!plan.contains("step_number"), "{sql}\n{plan}");
        }
    }
}
