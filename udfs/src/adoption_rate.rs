//! `adoption_rate(actor, adopted)`: the share of a group's distinct actors that adopted.
//!
//! The one-line answer to "what share of our customers use X": distinct actors with `adopted`
//! true on any of their rows, over distinct actors in the group (250 of 1,000 → 0.25). By hand
//! it takes `count(DISTINCT CASE WHEN ... THEN actor END) / count(DISTINCT actor)`, where the
//! CASE is easy to get wrong (an actor with an adopting and a non-adopting row counts once, as
//! an adopter). A group without actors gives NULL, never NaN.
//!
//! The state is each actor seen, with whether it adopted, so partial states of many cores merge
//! by OR.

use std::collections::HashMap;
use std::mem::size_of_val;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{list_of, state_field};

const NAME: &str = "adoption_rate";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The share of the group's distinct actors that adopted: distinct actors with \
        `adopted` true on any row, divided by the distinct actors of the group, as a DOUBLE \
        from 0 to 1. NULL actors are ignored; a NULL `adopted` counts as false; a group without \
        actors gives NULL.",
    syntax_example = "adoption_rate(actor, adopted)",
    sql_example = r#"```sql
> SELECT plan, adoption_rate(user_id, event = 'feature_use' AND feature = 'workflows') AS rate
  FROM events WHERE ts >= TIMESTAMP '2024-07-01 00:00:00' GROUP BY plan ORDER BY plan;
```"#,
    argument(name = "actor", description = "The actor of the row, of any type."),
    argument(
        name = "adopted",
        description = "BOOLEAN: whether this row shows the actor adopted."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct AdoptionRate {
    signature: Signature,
}

impl AdoptionRate {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// Refuses an argument that is not BOOLEAN (NULL, an untyped NULL literal, is taken), naming it
/// with an `example` of what to pass; the share aggregates (`adoption_rate`, `k_factor`) count
/// the rows where it is true.
pub(crate) fn check_boolean_argument(
    function: &str,
    argument: &str,
    example: &str,
    data_type: &DataType,
) -> Result<()> {
    if matches!(data_type, DataType::Boolean | DataType::Null) {
        return Ok(());
    }
    plan_err!(
        "{function}: argument {argument} must be a BOOLEAN (such as {example}), not {data_type}"
    )
}

impl AggregateUDFImpl for AdoptionRate {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_boolean_argument(NAME, "adopted", "feature = 'workflows'", &arg_types[1])?;
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(AdoptionAccumulator {
            actor_type: args.expr_fields[0].data_type().clone(),
            actors: HashMap::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(
                &args,
                "actors",
                list_of(args.input_fields[0].data_type().clone()),
            ),
            state_field(&args, "adopted", list_of(DataType::Boolean)),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug)]
struct AdoptionAccumulator {
    actor_type: DataType,
    /// Every actor seen, and whether it adopted.
    actors: HashMap<ScalarValue, bool>,
}

impl AdoptionAccumulator {
    fn add(&mut self, actors: &ArrayRef, adopted: &ArrayRef) -> Result<()> {
        let adopted = (adopted.data_type() == &DataType::Boolean).then(|| adopted.as_boolean());
        for row in 0..actors.len() {
            if actors.is_null(row) {
                continue;
            }
            let yes = adopted.is_some_and(|adopted| adopted.is_valid(row) && adopted.value(row));
            let actor = ScalarValue::try_from_array(actors, row)?;
            *self.actors.entry(actor).or_insert(false) |= yes;
        }
        Ok(())
    }
}

impl Accumulator for AdoptionAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (actors, adopted) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..actors.len() {
            if actors.is_valid(row) && adopted.is_valid(row) {
                self.add(&actors.value(row), &adopted.value(row))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let actors: Vec<ScalarValue> = self.actors.keys().cloned().collect();
        let adopted: Vec<bool> = self.actors.values().copied().collect();
        let list = |values: ArrayRef| {
            ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(values.data_type().clone(), true)),
                OffsetBuffer::from_lengths([values.len()]),
                values,
                None,
            )))
        };
        let actors = if actors.is_empty() {
            datafusion::arrow::array::new_empty_array(&self.actor_type)
        } else {
            ScalarValue::iter_to_array(actors)?
        };
        Ok(vec![
            list(actors),
            list(Arc::new(BooleanArray::from(adopted))),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let total = self.actors.len();
        let adopted = self.actors.values().filter(|yes| **yes).count();
        Ok(ScalarValue::Float64(
            (total > 0).then(|| adopted as f64 / total as f64),
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.actors.capacity() * (size_of_val(&ScalarValue::Null) + size_of_val(&true))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_merge::merge_state;
    use datafusion::arrow::array::Int64Array;

    use super::*;

    fn accumulator() -> AdoptionAccumulator {
        AdoptionAccumulator {
            actor_type: DataType::Int64,
            actors: HashMap::new(),
        }
    }

    fn batch(rows: &[(Option<i64>, Option<bool>)]) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
        ]
    }

    #[test]
    fn an_actor_counts_once_and_as_an_adopter_if_any_row_adopted() {
        let mut rate = accumulator();
        rate.update_batch(&batch(&[
            (Some(1), Some(false)),
            (Some(1), Some(true)),
            (Some(2), None),
            (Some(3), Some(false)),
            (None, Some(true)),
            (Some(4), Some(true)),
        ]))
        .unwrap();
        assert_eq!(rate.evaluate().unwrap(), ScalarValue::Float64(Some(0.5)));
    }

    #[test]
    fn states_merge_by_or() {
        let mut merged = accumulator();
        for rows in [[(Some(7), Some(false))], [(Some(7), Some(true))]] {
            let mut partial = accumulator();
            partial.update_batch(&batch(&rows)).unwrap();
            merge_state(&mut partial, &mut merged);
        }
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::Float64(Some(1.0)));
    }

    #[test]
    fn a_group_without_actors_is_null() {
        let mut rate = accumulator();
        assert_eq!(rate.evaluate().unwrap(), ScalarValue::Float64(None));
        let state = rate.state().unwrap();
        assert_eq!(state.len(), 2);
    }
}
