//! `lifecycle_sets(actor, period_start, day, period, first_period, end_day, complete_until)`:
//! `lifecycle` in one aggregate over the events, for integer actors.
//!
//! As `active_user_sets` does for `active_users`: instead of `GROUP BY actor` and the
//! `lifecycle_counts` fold, the actors of each period go into [`ActorSets`], and visiting the
//! periods in order hands each actor's active periods, next to its previous one, to the same
//! counters that `lifecycle_counts` uses, so both plans give the same report.

use std::mem::size_of_val;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast, max};
use datafusion::arrow::datatypes::{DataType, Date32Type, FieldRef, Int32Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::actor_sets::ActorSets;
use crate::fold::{
    Expected, check_arguments, date_at, first_string, int32_at, list_of, set_bound, state_field,
};
use crate::lifecycle_counts::{LifecycleAccumulator, parse_period, row_fields};
use crate::period::Period;

const NAME: &str = "lifecycle_sets";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "`lifecycle` in one aggregate over events whose actor is an integer: for every \
        period of the report and each status in the order new, returning, resurrecting, dormant, \
        the number of actors (dormant counts are negative) and whether the period had ended by \
        the last event (and by `complete_until`), as one list. The report runs from \
        `first_period` (default: the first active period) to the last period before `end_day` \
        (default: the last active period). `lifecycle` plans it for you.",
    syntax_example = "lifecycle_sets(actor, period_start, day, period, first_period, end_day, \
        complete_until)",
    sql_example = r#"```sql
> SELECT unnest(lifecycle_sets(user_id, period_start(ts, 'week'), period_start(ts, 'day'),
    'week', NULL, NULL, NULL)) FROM events;
```"#,
    argument(name = "actor", description = "An integer: the actor of the event."),
    argument(
        name = "period_start",
        description = "DATE: the first day of the event's period."
    ),
    argument(name = "day", description = "DATE: the local day of the event."),
    argument(
        name = "period",
        description = "A constant string: 'day', 'week', 'month', 'quarter' or 'year'."
    ),
    argument(
        name = "first_period",
        description = "A constant DATE: the first day of the first period to report, or NULL."
    ),
    argument(
        name = "end_day",
        description = "A constant DATE: periods starting on or after it are not reported; or NULL."
    ),
    argument(
        name = "complete_until",
        description = "A constant DATE: a period ending after this local date is incomplete, \
            whatever the last event; or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LifecycleSets {
    signature: Signature,
}

impl LifecycleSets {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(7, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for LifecycleSets {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [
            ("actor", Integer),
            ("period_start", Date),
            ("day", Date),
            ("period", String),
            ("first_period", Date),
            ("end_day", Date),
            ("complete_until", Date),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(row_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(LifecycleSetsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields: Vec<FieldRef> = ActorSets::state_types()
            .into_iter()
            .map(|(name, data_type)| state_field(&args, name, data_type))
            .collect();
        fields.extend(
            ["last_day", "first_period", "end_day", "complete_until"]
                .map(|name| state_field(&args, name, DataType::Int32)),
        );
        fields.push(state_field(&args, "period", DataType::Utf8));
        Ok(fields)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug, Default)]
struct LifecycleSetsAccumulator {
    periods: ActorSets,
    period: Option<Period>,
    /// The latest local date of an event.
    last_day: Option<i32>,
    /// The report bounds: first_period, end_day, complete_until.
    bounds: [Option<i32>; 3],
}

const BOUND_NAMES: [&str; 3] = ["first_period", "end_day", "complete_until"];

impl LifecycleSetsAccumulator {
    fn see_last_day(&mut self, day: Option<i32>) {
        self.last_day = self.last_day.max(day);
    }

    fn set_period(&mut self, name: Option<&str>) -> Result<()> {
        match name {
            Some(name) => set_bound(NAME, &mut self.period, Some(parse_period(name)?), "period"),
            None => Ok(()),
        }
    }
}

impl Accumulator for LifecycleSetsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values[0].is_empty() {
            return Ok(());
        }
        // The period and the bounds are constants: one row of each batch says what they are.
        self.set_period(first_string(&values[3])?.as_deref())?;
        for (index, name) in BOUND_NAMES.iter().enumerate() {
            set_bound(
                NAME,
                &mut self.bounds[index],
                date_at(&values[4 + index], 0),
                name,
            )?;
        }
        self.see_last_day(max(values[2].as_primitive::<Date32Type>()));
        let actors = cast(&values[0], &DataType::Int64)?;
        let starts = cast(&values[1], &DataType::Int32)?;
        self.periods.add_batch(
            actors.as_primitive::<Int64Type>(),
            starts.as_primitive::<Int32Type>(),
        );
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut state = Vec::from(self.periods.state());
        state.push(ScalarValue::Int32(self.last_day));
        state.extend(self.bounds.map(ScalarValue::Int32));
        state.push(ScalarValue::Utf8(
            self.period.map(|period| period.name().to_string()),
        ));
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let periods = states[8].as_string::<i32>();
        for row in 0..states[0].len() {
            self.set_period(periods.is_valid(row).then(|| periods.value(row)))?;
            self.see_last_day(int32_at(&states[4], row));
            for (index, name) in BOUND_NAMES.iter().enumerate() {
                set_bound(
                    NAME,
                    &mut self.bounds[index],
                    int32_at(&states[5 + index], row),
                    name,
                )?;
            }
            self.periods.merge(&states[..4], row)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        const NEVER: i32 = i32::MIN;
        let Some(period) = self.period else {
            // No events: the period was never given.
            return LifecycleAccumulator::default().evaluate();
        };
        let [first_period, end_day, complete_until] = self.bounds;
        let mut counts =
            LifecycleAccumulator::new(period, self.last_day, first_period, end_day, complete_until);
        let mut previous_periods = self.periods.actor_map(NEVER);
        self.periods.compact();
        for (start, actors) in self.periods.periods() {
            let mut result = Ok(());
            actors.for_each(|actor| {
                let previous = previous_periods.entry(actor);
                if result.is_ok() {
                    result =
                        counts.add_active_period(start, (*previous != NEVER).then_some(*previous));
                }
                *previous = start;
            });
            result?;
        }
        for last in previous_periods.values() {
            counts.add_last_period(last)?;
        }
        counts.evaluate()
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.periods.size()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn gives_the_report_of_the_per_actor_fold() {
        // (actor, week start, day), weeks from Monday 2024-01-01 (day 19,723): out of order,
        // repeated, with gaps, across three batches.
        let week = |n: i32| 19_723 + 7 * n;
        let events = [
            (1, week(0), week(0) + 2),
            (2, week(1), week(1)),
            (1, week(1), week(1) + 3),
            (1, week(4), week(4) + 1),
            (3, week(2), week(2) + 6),
            (2, week(1), week(1) + 1),
            (2, week(3), week(3)),
            (1, week(0), week(0)),
        ];
        let mut sets = LifecycleSetsAccumulator::default();
        for batch in events.chunks(3) {
            let column = |pick: fn(&(i64, i32, i32)) -> i32| -> ArrayRef {
                Arc::new(Date32Array::from_iter_values(batch.iter().map(pick)))
            };
            let rows = batch.len();
            sets.update_batch(&[
                Arc::new(Int64Array::from_iter_values(batch.iter().map(|e| e.0))),
                column(|e| e.1),
                column(|e| e.2),
                Arc::new(StringArray::from(vec!["week"; rows])),
                Arc::new(Date32Array::from(vec![None; rows])),
                Arc::new(Date32Array::from(vec![None; rows])),
                Arc::new(Date32Array::from(vec![None; rows])),
            ])
            .unwrap();
        }
        let last_day = events.iter().map(|e| e.2).max();
        let mut by_actor = LifecycleAccumulator::new(Period::Week, last_day, None, None, None);
        for actor in 1..=3 {
            let mut starts: Vec<i32> = events
                .iter()
                .filter(|e| e.0 == actor)
                .map(|e| e.1)
                .collect();
            by_actor.add_actor(&mut starts).unwrap();
        }
        assert_eq!(sets.evaluate().unwrap(), by_actor.evaluate().unwrap());
    }
}
