//! `active_user_sets(actor, day, first_day, end_day)`: `active_users` in one aggregate over the
//! events, for integer actors.
//!
//! The general plan groups the events by actor first (`active_days`) and folds the groups with
//! `active_user_counts`; the hash table of that GROUP BY is most of its time. With integer actors
//! this aggregate keeps the actors of each day in [`ActorSets`] instead, and at the end visits the
//! days in order: each actor's active day, next to its previous one, adds the same windows to the
//! same counters as `active_user_counts` does, so both plans give the same report.

use std::mem::size_of_val;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int32Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::active_user_counts::{ActiveUserCountsAccumulator, day_fields};
use crate::actor_sets::ActorSets;
use crate::fold::{Expected, check_arguments, date_at, int32_at, list_of, set_bound, state_field};

const NAME: &str = "active_user_sets";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "`active_users` in one aggregate over events whose actor is an integer: for \
        every day of the report, the actors active that day (dau), in the 7 days ending that day \
        (wau) and in the 30 days ending that day (mau), with dau/mau and dau/wau (NULL where the \
        denominator is 0), as one list. The report runs from `first_day` (default: the first \
        active day) to the day before `end_day` (default: the last active day); days before \
        `first_day` count towards the windows of the days that follow. `active_users` plans it \
        for you.",
    syntax_example = "active_user_sets(actor, day, first_day, end_day)",
    sql_example = r#"```sql
> SELECT unnest(active_user_sets(user_id, CAST(ts AS DATE), NULL, NULL)) FROM events;
```"#,
    argument(name = "actor", description = "An integer: the actor of the event."),
    argument(name = "day", description = "DATE: the local day of the event."),
    argument(
        name = "first_day",
        description = "A constant DATE: the first day to report, or NULL."
    ),
    argument(
        name = "end_day",
        description = "A constant DATE: the day after the last day to report, or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActiveUserSets {
    signature: Signature,
}

impl ActiveUserSets {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for ActiveUserSets {
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
            ("day", Date),
            ("first_day", Date),
            ("end_day", Date),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(day_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ActiveUserSetsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields: Vec<FieldRef> = ActorSets::state_types()
            .into_iter()
            .map(|(name, data_type)| state_field(&args, name, data_type))
            .collect();
        fields.push(state_field(&args, "first_day", DataType::Int32));
        fields.push(state_field(&args, "end_day", DataType::Int32));
        Ok(fields)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug, Default)]
struct ActiveUserSetsAccumulator {
    days: ActorSets,
    first_day: Option<i32>,
    end_day: Option<i32>,
}

impl Accumulator for ActiveUserSetsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values[0].is_empty() {
            return Ok(());
        }
        // The bounds are constants: one row of each batch says what they are.
        set_bound(
            NAME,
            &mut self.first_day,
            date_at(&values[2], 0),
            "first_day",
        )?;
        set_bound(NAME, &mut self.end_day, date_at(&values[3], 0), "end_day")?;
        let actors = cast(&values[0], &DataType::Int64)?;
        let days = cast(&values[1], &DataType::Int32)?;
        self.days.add_batch(
            actors.as_primitive::<Int64Type>(),
            days.as_primitive::<Int32Type>(),
        );
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut state = Vec::from(self.days.state());
        state.push(ScalarValue::Int32(self.first_day));
        state.push(ScalarValue::Int32(self.end_day));
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            set_bound(
                NAME,
                &mut self.first_day,
                int32_at(&states[4], row),
                "first_day",
            )?;
            set_bound(
                NAME,
                &mut self.end_day,
                int32_at(&states[5], row),
                "end_day",
            )?;
            self.days.merge(&states[..4], row)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        const NEVER: i32 = i32::MIN;
        let mut counts = ActiveUserCountsAccumulator::new(self.first_day, self.end_day);
        let mut previous_days = self.days.actor_map(NEVER);
        self.days.compact();
        let mut days = self.days.periods().map(|(day, _)| day);
        if let Some(first) = days.next() {
            counts.expect_days(first, days.last().unwrap_or(first));
        }
        for (day, actors) in self.days.periods() {
            // What the day's actors share is added once, by their count; the inner loop only
            // starts each actor's windows.
            counts.add_active_actors(day, actors.len() as i64);
            actors.for_each(|actor| {
                let previous = previous_days.entry(actor);
                counts.add_window_starts(day, (*previous != NEVER).then_some(*previous));
                *previous = day;
            });
        }
        counts.evaluate()
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.days.size()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Int64Array};

    use super::*;

    /// The report of both folds over the same events, (actor, day) pairs.
    fn both_reports(events: &[(i64, i32)]) -> (ScalarValue, ScalarValue) {
        let actors: ArrayRef = Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.0)));
        let days: ArrayRef = Arc::new(Date32Array::from_iter_values(events.iter().map(|e| e.1)));
        let bound: ArrayRef = Arc::new(Date32Array::from(vec![None; events.len()]));
        let mut sets = ActiveUserSetsAccumulator::default();
        sets.update_batch(&[actors, days, Arc::clone(&bound), bound])
            .unwrap();
        let mut by_actor = ActiveUserCountsAccumulator::default();
        let mut actors: Vec<i64> = events.iter().map(|e| e.0).collect();
        actors.sort_unstable();
        actors.dedup();
        for actor in actors {
            let mut days: Vec<i32> = events
                .iter()
                .filter(|e| e.0 == actor)
                .map(|e| e.1)
                .collect();
            by_actor.add_actor(&mut days);
        }
        (sets.evaluate().unwrap(), by_actor.evaluate().unwrap())
    }

    #[test]
    fn gives_the_report_of_the_per_actor_fold() {
        // Out of order, repeated, gaps shorter and longer than a week and a month.
        let events = [
            (7, 100),
            (7, 101),
            (3, 100),
            (7, 101),
            (3, 140),
            (7, 109),
            (9, 130),
            (7, 135),
            (3, 104),
        ];
        let (sets, by_actor) = both_reports(&events);
        assert_eq!(sets, by_actor);
    }
}
