//! `rolling_cohort_counts(cohort, anchor, last, numbers, window, periods, cumulative, until)`: the
//! fold step of `cohort_retention(..., bucketing => 'rolling')`.
//!
//! Rolling retention (Amplitude's and Mixpanel's "day N") measures each actor from its own start
//! event: window k is `[anchor + k * window, anchor + (k + 1) * window)`. The plan joins each
//! actor's anchor (its first start event, or its first in each calendar cohort) with its return
//! events and hands over one row per (actor, cohort) with the window numbers it returned in; the
//! time values are raw ticks of the time column (seconds to nanoseconds, or days for a DATE).
//!
//! Which cells exist and which are complete depends on when each actor started, so the state keeps,
//! next to each cohort's counters, its earliest and latest anchor: a cell is reported once the
//! earliest actor's window had started by the last event (and before `until`), and it is complete
//! once the latest actor's window had ended by then. Counters add and anchors take the min and max,
//! so partial folds from any partition or executor merge in any order.

use std::collections::BTreeMap;
use std::mem::size_of_val;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int32Type, Int64Type};
use datafusion::common::{ScalarValue, exec_datafusion_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::cohort_counts::{CohortRows, check_periods, count_actor, row_fields};
use crate::fold::{Expected, check_arguments, date_at, int32_at, list_of, set_bound, state_field};

const NAME: &str = "rolling_cohort_counts";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The fold step of `cohort_retention` with `bucketing => 'rolling'`: given one \
        row per (actor, cohort) with the cohort's DATE (NULL for a row that only reports its last \
        event time), the actor's anchor (its start event) and last event time as raw ticks of the \
        time column, and the numbers k of the windows [anchor + k * window, anchor + (k + 1) * \
        window) it returned in, returns one list with, for every cohort and every window number \
        from 0 to `periods - 1`, the cohort's size, the actors retained (with `cumulative`, in \
        that window or a later one), the retention rate, and whether every actor's window had \
        ended by the last event (and by `until`). A cell is reported when the cohort's earliest \
        actor's window had started by the last event and before `until`. `cohort_retention` \
        plans it for you.",
    syntax_example = "rolling_cohort_counts(cohort, anchor, last, numbers, window, periods, \
        cumulative, until)",
    sql_example = r#"```sql
> SELECT unnest(rolling_cohort_counts(cohort, anchor, last, numbers, 86400, 8, false, NULL))
  FROM actor_windows;
```"#,
    argument(
        name = "cohort",
        description = "DATE: the first day of the actor's cohort, or NULL to count only `last`."
    ),
    argument(
        name = "anchor",
        description = "BIGINT: the time of the actor's start event, in ticks of the time column."
    ),
    argument(
        name = "last",
        description = "BIGINT: the time of the actor's last event, in the same ticks."
    ),
    argument(
        name = "numbers",
        description = "LIST<BIGINT>: the numbers of the windows with a return event; NULLs and 0 \
            are skipped."
    ),
    argument(
        name = "window",
        description = "A constant BIGINT: the window's length in ticks (86400 for a day of a \
            TIMESTAMP in seconds)."
    ),
    argument(
        name = "periods",
        description = "A constant integer from 1 to 1000: window numbers 0 to periods - 1."
    ),
    argument(
        name = "cumulative",
        description = "BOOLEAN: count an actor in every window up to its last return."
    ),
    argument(
        name = "until",
        description = "BIGINT: the end of the range in ticks, or NULL: cells starting at or after \
            it are not reported, and it bounds completeness."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct RollingCohortCounts {
    signature: Signature,
}

impl RollingCohortCounts {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(8, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for RollingCohortCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [
            ("cohort", Date),
            ("anchor", BigInt),
            ("last", BigInt),
            ("numbers", BigIntList),
            ("window", BigInt),
            ("periods", Integer),
            ("cumulative", Boolean),
            ("until", BigInt),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(row_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RollingAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, data_type| state_field(&args, name, data_type);
        Ok(vec![
            field("window", DataType::Int64),
            field("periods", DataType::Int32),
            field("cohorts", list_of(DataType::Int32)),
            field("counts", list_of(DataType::Int64)),
            field("first_anchors", list_of(DataType::Int64)),
            field("last_anchors", list_of(DataType::Int64)),
            field("last", DataType::Int64),
            field("until", DataType::Int64),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// One cohort's counters (size, then retained actors of windows 1 to `periods - 1`) and the
/// earliest and latest anchor of its actors.
#[derive(Debug, PartialEq)]
struct Cohort {
    counts: Vec<i64>,
    first_anchor: i64,
    last_anchor: i64,
}

impl Cohort {
    fn new(periods: i32, anchor: i64) -> Self {
        Self {
            counts: vec![0; periods as usize],
            first_anchor: anchor,
            last_anchor: anchor,
        }
    }

    fn widen(&mut self, first_anchor: i64, last_anchor: i64) {
        self.first_anchor = self.first_anchor.min(first_anchor);
        self.last_anchor = self.last_anchor.max(last_anchor);
    }
}

#[derive(Debug, Default)]
struct RollingAccumulator {
    window: Option<i64>,
    periods: Option<i32>,
    cumulative: Option<bool>,
    cohorts: BTreeMap<i32, Cohort>,
    /// The latest event time seen.
    last: Option<i64>,
    until: Option<i64>,
}

fn int64_at(array: &ArrayRef, row: usize) -> Option<i64> {
    match array.data_type() {
        DataType::Int64 => {
            let values = array.as_primitive::<Int64Type>();
            values.is_valid(row).then(|| values.value(row))
        }
        _ => None,
    }
}

impl RollingAccumulator {
    fn periods(&self) -> Result<i32> {
        self.periods
            .ok_or_else(|| exec_datafusion_err!("{NAME}: periods must not be NULL"))
    }

    fn see_last(&mut self, last: Option<i64>) {
        self.last = self.last.max(last);
    }

    /// Adds one actor of `cohort` anchored at `anchor` that returned in windows `numbers` (sorted,
    /// without repeats, from 1).
    fn add_actor(&mut self, cohort: i32, anchor: i64, numbers: &[i64]) -> Result<()> {
        let periods = self.periods()?;
        let cumulative = self.cumulative.unwrap_or(false);
        let entry = self
            .cohorts
            .entry(cohort)
            .or_insert_with(|| Cohort::new(periods, anchor));
        entry.widen(anchor, anchor);
        count_actor(&mut entry.counts, numbers, cumulative);
        Ok(())
    }
}

impl Accumulator for RollingAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let numbers = values[3].as_list::<i32>();
        let periods = datafusion::arrow::compute::cast(&values[5], &DataType::Int64)?;
        let periods = periods.as_primitive::<Int64Type>();
        let cumulative = values[6].as_boolean();
        for row in 0..values[0].len() {
            set_bound(NAME, &mut self.window, int64_at(&values[4], row), "window")?;
            if periods.is_valid(row) {
                let periods = check_periods(periods.value(row))?;
                set_bound(NAME, &mut self.periods, Some(periods), "periods")?;
            }
            if cumulative.is_valid(row) {
                let value = Some(cumulative.value(row));
                set_bound(NAME, &mut self.cumulative, value, "cumulative")?;
            }
            set_bound(NAME, &mut self.until, int64_at(&values[7], row), "until")?;
            self.see_last(int64_at(&values[2], row));
            let (Some(cohort), Some(anchor)) =
                (date_at(&values[0], row), int64_at(&values[1], row))
            else {
                continue;
            };
            let mut returned: Vec<i64> = if numbers.is_null(row) {
                Vec::new()
            } else {
                let list = numbers.value(row);
                list.as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .filter(|&number| number > 0)
                    .collect()
            };
            returned.sort_unstable();
            returned.dedup();
            self.add_actor(cohort, anchor, &returned)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |values: Vec<ScalarValue>, data_type: &DataType| {
            ScalarValue::List(ScalarValue::new_list_nullable(&values, data_type))
        };
        let int64s = |pick: fn(&Cohort) -> i64| -> Vec<ScalarValue> {
            self.cohorts
                .values()
                .map(|cohort| ScalarValue::Int64(Some(pick(cohort))))
                .collect()
        };
        let cohorts = self
            .cohorts
            .keys()
            .map(|cohort| ScalarValue::Int32(Some(*cohort)))
            .collect();
        let counts = self
            .cohorts
            .values()
            .flat_map(|cohort| &cohort.counts)
            .map(|count| ScalarValue::Int64(Some(*count)))
            .collect();
        Ok(vec![
            ScalarValue::Int64(self.window),
            ScalarValue::Int32(self.periods),
            list(cohorts, &DataType::Int32),
            list(counts, &DataType::Int64),
            list(int64s(|cohort| cohort.first_anchor), &DataType::Int64),
            list(int64s(|cohort| cohort.last_anchor), &DataType::Int64),
            ScalarValue::Int64(self.last),
            ScalarValue::Int64(self.until),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            set_bound(NAME, &mut self.window, int64_at(&states[0], row), "window")?;
            if let Some(periods) = int32_at(&states[1], row) {
                set_bound(NAME, &mut self.periods, Some(periods), "periods")?;
            }
            set_bound(NAME, &mut self.until, int64_at(&states[7], row), "until")?;
            self.see_last(int64_at(&states[6], row));
            if states[2].is_null(row) || states[2].as_list::<i32>().value(row).is_empty() {
                continue;
            }
            let width = self.periods()? as usize;
            let values = |index: usize| states[index].as_list::<i32>().value(row);
            let cohorts = values(2);
            let counts = values(3);
            let counts = counts.as_primitive::<Int64Type>().values();
            let first_anchors = values(4);
            let last_anchors = values(5);
            let anchors = first_anchors
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .zip(last_anchors.as_primitive::<Int64Type>().values().iter());
            for (index, (cohort, (&first, &last))) in cohorts
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .zip(anchors)
                .enumerate()
            {
                let merged = self
                    .cohorts
                    .entry(*cohort)
                    .or_insert_with(|| Cohort::new(width as i32, first));
                merged.widen(first, last);
                for (into, count) in merged
                    .counts
                    .iter_mut()
                    .zip(&counts[index * width..(index + 1) * width])
                {
                    *into += count;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut rows = CohortRows::default();
        let (Some(window), Some(last)) = (self.window, self.last) else {
            return rows.finish();
        };
        let complete_by = self.until.map_or(last, |until| until.min(last));
        let window_start = |anchor: i64, number: usize| {
            anchor.saturating_add(window.saturating_mul(number as i64))
        };
        for (&cohort, entry) in &self.cohorts {
            for number in 0..entry.counts.len() {
                // The triangle: a cell whose earliest window had not started by the last event,
                // or starts at or after until, is not reported.
                let start = window_start(entry.first_anchor, number);
                if start > last || self.until.is_some_and(|until| start >= until) {
                    break;
                }
                let end = window_start(entry.last_anchor, number + 1);
                rows.push(cohort, &entry.counts, number, end <= complete_by);
            }
        }
        rows.finish()
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self
                .cohorts
                .values()
                .map(|cohort| size_of_val(cohort) + cohort.counts.capacity() * size_of::<i64>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort_counts::cells;
    use crate::test_merge::merge_state;

    const DAY: i64 = 86_400;
    // 2024-01-01, as days since 1970-01-01 and as seconds.
    const JAN_01: i32 = 19_723;
    const JAN_01_SECONDS: i64 = JAN_01 as i64 * DAY;

    fn daily(periods: i32, cumulative: bool) -> RollingAccumulator {
        RollingAccumulator {
            window: Some(DAY),
            periods: Some(periods),
            cumulative: Some(cumulative),
            ..Default::default()
        }
    }

    fn evaluated(accumulator: &mut RollingAccumulator) -> Vec<(i32, i64, i32, i64, bool)> {
        cells(accumulator.evaluate().unwrap())
    }

    #[test]
    fn cells_start_at_the_earliest_anchor_and_complete_after_the_latest() {
        let mut accumulator = daily(4, false);
        // Two actors of the 2024-01-01 cohort, at 06:00 and 18:00; the first is back in windows
        // 1 and 2, the second in window 1.
        accumulator
            .add_actor(JAN_01, JAN_01_SECONDS + 6 * 3600, &[1, 2])
            .unwrap();
        accumulator
            .add_actor(JAN_01, JAN_01_SECONDS + 18 * 3600, &[1])
            .unwrap();
        // The last event on 2024-01-03 at 20:00: window 2 of the 06:00 actor had started, window 3
        // had not; window 1 of both had ended (the 18:00 actor's at 2024-01-03 18:00), window 2
        // of the 18:00 actor had not.
        accumulator.see_last(Some(JAN_01_SECONDS + 2 * DAY + 20 * 3600));
        assert_eq!(
            evaluated(&mut accumulator),
            vec![
                (JAN_01, 2, 0, 2, true),
                (JAN_01, 2, 1, 2, true),
                (JAN_01, 2, 2, 1, false),
            ]
        );
    }

    #[test]
    fn until_cuts_cells_and_bounds_completeness() {
        let mut accumulator = daily(4, true);
        accumulator.add_actor(JAN_01, JAN_01_SECONDS, &[5]).unwrap();
        accumulator.see_last(Some(JAN_01_SECONDS + 10 * DAY));
        accumulator.until = Some(JAN_01_SECONDS + 2 * DAY);
        // Cumulative: a return past the last window counts in every one.
        assert_eq!(
            evaluated(&mut accumulator),
            vec![(JAN_01, 1, 0, 1, true), (JAN_01, 1, 1, 1, true)]
        );
    }

    #[test]
    fn partial_states_merge_to_the_single_pass_result() {
        let actors: [(i32, i64, &[i64]); 4] = [
            (JAN_01, JAN_01_SECONDS + 100, &[1, 3]),
            (JAN_01, JAN_01_SECONDS + 50_000, &[2]),
            (JAN_01 + 1, JAN_01_SECONDS + DAY + 10, &[]),
            (JAN_01, JAN_01_SECONDS + 7, &[1]),
        ];
        let mut single = daily(4, false);
        single.see_last(Some(JAN_01_SECONDS + 9 * DAY));
        for (cohort, anchor, numbers) in actors {
            single.add_actor(cohort, anchor, numbers).unwrap();
        }
        // The final step sees only states, never the constant arguments.
        let mut merged = RollingAccumulator::default();
        for part in [&actors[..1], &actors[1..3], &actors[3..]] {
            let mut partial = daily(4, false);
            partial.see_last(Some(JAN_01_SECONDS + 9 * DAY));
            for (cohort, anchor, numbers) in part {
                partial.add_actor(*cohort, *anchor, numbers).unwrap();
            }
            merge_state(&mut partial, &mut merged);
        }
        assert_eq!(merged.cohorts, single.cohorts);
        assert_eq!(merged.evaluate().unwrap(), single.evaluate().unwrap());
        assert_eq!(merged.cohorts[&JAN_01].counts, vec![3, 2, 1, 1]);
        assert_eq!(merged.cohorts[&JAN_01].first_anchor, JAN_01_SECONDS + 7);
        assert_eq!(merged.cohorts[&JAN_01].last_anchor, JAN_01_SECONDS + 50_000);
    }
}
