//! `usage_frequency_sets(actor, day, as_of, window_days, lookback_days)`: `usage_frequency` in one
//! aggregate over the events, for integer actors.
//!
//! As `active_user_sets` does for `active_users`: instead of `GROUP BY actor` and the
//! `usage_frequency_counts` fold, the actors of each day go into [`ActorSets`]. Once `as_of` is
//! known (given, or the last day with data), one pass over the days of the look-back counts each
//! actor's active days in the window, and the histogram is `usage_frequency_counts`'s.

use std::mem::size_of_val;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int32Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::actor_sets::ActorSets;
use crate::fold::{Expected, check_arguments, date_at, int32_at, list_of, set_bound, state_field};
use crate::period::arguments::Stage;
use crate::usage_frequency_counts::{
    Settings, check_days, histogram, integer_argument, row_fields,
};

const NAME: &str = "usage_frequency_sets";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "`usage_frequency` in one aggregate over events whose actor is an integer: the \
        histogram of the actors seen in the `lookback_days` days ending on `as_of` (default: the \
        last active day) by their active days in the `window_days` days ending on `as_of`, with \
        shares and bands, as one list. `usage_frequency` plans it for you.",
    syntax_example = "usage_frequency_sets(actor, day, as_of, window_days, lookback_days)",
    sql_example = r#"```sql
> SELECT unnest(usage_frequency_sets(user_id, CAST(ts AS DATE), NULL, 28, 90)) FROM events;
```"#,
    argument(name = "actor", description = "An integer: the actor of the event."),
    argument(name = "day", description = "DATE: the local day of the event."),
    argument(
        name = "as_of",
        description = "A constant DATE: the last day of the window, or NULL for the last active \
            day."
    ),
    argument(
        name = "window_days",
        description = "A constant integer from 7 to lookback_days."
    ),
    argument(
        name = "lookback_days",
        description = "A constant integer from window_days to 3660."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct UsageFrequencySets {
    signature: Signature,
}

impl UsageFrequencySets {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(5, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for UsageFrequencySets {
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
            ("as_of", Date),
            ("window_days", Integer),
            ("lookback_days", Integer),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(row_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(UsageFrequencySetsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields: Vec<FieldRef> = ActorSets::state_types()
            .into_iter()
            .map(|(name, data_type)| state_field(&args, name, data_type))
            .collect();
        fields.extend(
            ["as_of", "window_days", "lookback_days"]
                .map(|name| state_field(&args, name, DataType::Int32)),
        );
        Ok(fields)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug, Default)]
struct UsageFrequencySetsAccumulator {
    days: ActorSets,
    /// Unknown until a row (or a state with rows) arrives: an empty partition knows no arguments.
    settings: Option<Settings>,
}

impl UsageFrequencySetsAccumulator {
    fn set_settings(&mut self, settings: Settings) -> Result<()> {
        set_bound(
            NAME,
            &mut self.settings,
            Some(settings),
            "as_of, window_days and lookback_days",
        )
    }
}

impl Accumulator for UsageFrequencySetsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values[0].is_empty() {
            return Ok(());
        }
        // The arguments are constants: one row of each batch says what they are.
        let window_days = integer_argument(&values[3].slice(0, 1), "window_days")?.value(0);
        let lookback_days = integer_argument(&values[4].slice(0, 1), "lookback_days")?.value(0);
        check_days(Stage::Execution, NAME, window_days, lookback_days)?;
        // check_days bounds both to 3660, so they fit.
        self.set_settings(Settings {
            as_of: date_at(&values[2], 0),
            window_days: window_days as i32,
            lookback_days: lookback_days as i32,
        })?;
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
        state.extend([
            ScalarValue::Int32(self.settings.and_then(|s| s.as_of)),
            ScalarValue::Int32(self.settings.map(|s| s.window_days)),
            ScalarValue::Int32(self.settings.map(|s| s.lookback_days)),
        ]);
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            if let (Some(window_days), Some(lookback_days)) =
                (int32_at(&states[5], row), int32_at(&states[6], row))
            {
                self.set_settings(Settings {
                    as_of: int32_at(&states[4], row),
                    window_days,
                    lookback_days,
                })?;
            }
            self.days.merge(&states[..4], row)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        const UNSEEN: i32 = -1;
        let Some(settings) = self.settings else {
            return histogram(&[], 0);
        };
        self.days.compact();
        let Some(as_of) = settings
            .as_of
            .or_else(|| self.days.periods().last().map(|(day, _)| day))
        else {
            return histogram(&[], 0);
        };
        let window_start = as_of - settings.window_days + 1;
        let lookback_start = as_of - settings.lookback_days + 1;
        let mut active_days = self.days.actor_map(UNSEEN);
        for (day, actors) in self.days.periods() {
            if !(lookback_start..=as_of).contains(&day) {
                continue;
            }
            let in_window = i32::from(day >= window_start);
            actors.for_each(|actor| {
                let days = active_days.entry(actor);
                *days = (*days).max(0) + in_window;
            });
        }
        // Actors with exactly k days, then with at least k.
        let mut at_least = vec![0; settings.window_days as usize + 1];
        for days in active_days.values() {
            at_least[days as usize] += 1;
        }
        for k in (0..at_least.len() - 1).rev() {
            at_least[k] += at_least[k + 1];
        }
        histogram(&at_least, settings.window_days)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.days.size()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Int64Array};
    use datafusion::logical_expr::Accumulator;

    use super::*;
    use crate::usage_frequency_counts::UsageFrequencyAccumulator;

    #[test]
    fn gives_the_report_of_the_per_actor_fold() {
        // (actor, day): repeated days, an actor only in the look-back, one only before it.
        let events = [
            (1, 100),
            (1, 100),
            (1, 95),
            (2, 60),
            (3, 10),
            (1, 80),
            (4, 99),
            (4, 73),
            (2, 74),
        ];
        for as_of in [None, Some(99)] {
            let rows = events.len();
            let mut sets = UsageFrequencySetsAccumulator::default();
            sets.update_batch(&[
                Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.0))),
                Arc::new(Date32Array::from_iter_values(events.iter().map(|e| e.1))),
                Arc::new(Date32Array::from(vec![as_of; rows])),
                Arc::new(Int64Array::from(vec![28; rows])),
                Arc::new(Int64Array::from(vec![30; rows])),
            ])
            .unwrap();
            let settings = Settings {
                as_of,
                window_days: 28,
                lookback_days: 30,
            };
            let mut by_actor = UsageFrequencyAccumulator::default();
            for actor in 1..=4 {
                let mut days: Vec<i32> = events
                    .iter()
                    .filter(|e| e.0 == actor)
                    .map(|e| e.1)
                    .collect();
                by_actor.add_actor(settings, &mut days);
            }
            by_actor.set_settings(settings).unwrap();
            assert_eq!(
                sets.evaluate().unwrap(),
                by_actor.evaluate().unwrap(),
                "as_of {as_of:?}"
            );
        }
    }
}
