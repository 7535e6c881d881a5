//! `usage_frequency_counts(days, as_of, window_days, lookback_days)`: the fold step of
//! `usage_frequency`.
//!
//! Its input is one row per actor holding the actor's distinct active days (local DATEs). It
//! returns the histogram of actors by the number of days they were active in the `window_days`
//! days ending on `as_of`, over the actors seen in the `lookback_days` days ending on `as_of`.
//!
//! When `as_of` is NULL it is the last active day of the group, known only once every actor has
//! been folded, so the state cannot simply count days in a window. It keeps, instead, for every
//! rank `k`, how many actors have their `k`-th most recent active day on each day. An actor has at
//! least `k` active days in the window ending on `as_of` exactly when its `k`-th most recent day is
//! in that window, and it was seen in the look-back when its most recent day is in the look-back;
//! so the whole histogram follows from these counts at the end, whatever `as_of` turns out to be.
//! Since `as_of` is at or after the actor's last day, only its days within `window_days` of its
//! last day can ever count: at most `window_days` entries per actor, and the work is linear in
//! the (actor, day) pairs (plus sorting each actor's days).
//!
//! The state (those counts, and the arguments) merges by adding counts, so partial folds from any
//! partition or executor combine in any order.

use std::collections::HashMap;
use std::mem::size_of_val;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, StringArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, Fields, Int32Type, Int64Type,
};
use datafusion::common::{DataFusionError, ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{Expected, check_arguments, list_of, report, state_field};

use crate::period::arguments::Stage;

const NAME: &str = "usage_frequency_counts";

/// The shortest window: below a week the bands (daily, weekly, monthly) stop meaning anything.
pub(crate) const MIN_WINDOW_DAYS: i64 = 7;

/// The longest look-back, ten years: far beyond any product question, and it keeps a mistyped
/// number from planning a scan of all history per actor.
pub(crate) const MAX_LOOKBACK_DAYS: i64 = 3660;

/// Checks `7 <= window_days <= lookback_days <= 3660`; the error names the argument and the rule.
pub(crate) fn check_days(
    stage: Stage,
    function: &str,
    window_days: i64,
    lookback_days: i64,
) -> Result<()> {
    let problem = if window_days < MIN_WINDOW_DAYS {
        format!("window_days must be at least {MIN_WINDOW_DAYS}, but it is {window_days}")
    } else if window_days > lookback_days {
        format!(
            "window_days must not exceed lookback_days, but window_days is {window_days} and \
             lookback_days is {lookback_days}"
        )
    } else if lookback_days > MAX_LOOKBACK_DAYS {
        format!(
            "lookback_days must be at most {MAX_LOOKBACK_DAYS} (ten years), but it is \
             {lookback_days}"
        )
    } else {
        return Ok(());
    };
    let message = format!("{function}: {problem}");
    Err(match stage {
        Stage::Planning => DataFusionError::Plan(message),
        Stage::Execution => DataFusionError::Execution(message),
    })
}

/// The band of an actor active on `days` of a `window_days`-day window: the thresholds of a
/// 28-day window (20 days daily, 4 weekly), scaled to the window and rounded up.
fn band(days: i64, window_days: i64) -> &'static str {
    let threshold = |days_of_28: i64| (days_of_28 * window_days + 27) / 28;
    if days >= threshold(20) {
        "daily"
    } else if days >= threshold(4) {
        "weekly"
    } else if days >= 1 {
        "monthly"
    } else {
        "forgettable"
    }
}

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The fold step of `usage_frequency`: given one row per actor with the list of \
        the actor's distinct active days, returns one list with a row for every number of active \
        days from 0 to `window_days`: days_active, actors (those seen in the `lookback_days` days \
        ending on `as_of` that were active on exactly that many of the `window_days` days ending \
        on `as_of`), share (of the actors seen in the look-back), cumulative_share (share with at \
        least that many days) and band ('daily', 'weekly', 'monthly' or 'forgettable'). `as_of` \
        NULL means the group's last active day; days after `as_of` are ignored. The list is \
        empty when no actor was seen in the look-back. `usage_frequency` plans it for you.",
    syntax_example = "usage_frequency_counts(days, as_of, window_days, lookback_days)",
    sql_example = r#"```sql
> SELECT unnest(usage_frequency_counts(days, NULL, 28, 90)) FROM (
    SELECT user_id, array_agg(DISTINCT CAST(ts AS DATE)) AS days FROM events GROUP BY user_id);
```"#,
    argument(name = "days", description = "LIST<DATE>: one actor's active days."),
    argument(
        name = "as_of",
        description = "DATE: the last day of the window and the look-back, or NULL for the last \
            active day."
    ),
    argument(
        name = "window_days",
        description = "Integer: the days of the window, from 7 to lookback_days."
    ),
    argument(
        name = "lookback_days",
        description = "Integer: the days in which an actor must have been seen, at most 3660."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct UsageFrequencyCounts {
    signature: Signature,
}

impl UsageFrequencyCounts {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

/// The fields of one row of the histogram.
pub(crate) fn row_fields() -> Fields {
    Fields::from(vec![
        Field::new("days_active", DataType::Int32, false),
        Field::new("actors", DataType::Int64, false),
        Field::new("share", DataType::Float64, false),
        Field::new("cumulative_share", DataType::Float64, false),
        Field::new("band", DataType::Utf8, false),
    ])
}

impl AggregateUDFImpl for UsageFrequencyCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [
            ("days", DateList),
            ("as_of", Date),
            ("window_days", Integer),
            ("lookback_days", Integer),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(row_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(UsageFrequencyAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, data_type| state_field(&args, name, data_type);
        Ok(vec![
            field("as_of", DataType::Int32),
            field("window_days", DataType::Int32),
            field("lookback_days", DataType::Int32),
            field("ranks", list_of(DataType::Int32)),
            field("days", list_of(DataType::Int32)),
            field("actors", list_of(DataType::Int64)),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The arguments of a fold, the same for every row of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The last day of the window, or `None` for the last active day.
    pub(crate) as_of: Option<i32>,
    pub(crate) window_days: i32,
    pub(crate) lookback_days: i32,
}

/// Actors by (rank, day): how many actors have their rank-th most recent active day on day.
#[derive(Debug, Default)]
pub(crate) struct UsageFrequencyAccumulator {
    /// Unknown until a row (or a state with rows) arrives: an empty partition knows no arguments.
    settings: Option<Settings>,
    ranked: HashMap<(i32, i32), i64>,
}

impl UsageFrequencyAccumulator {
    pub(crate) fn set_settings(&mut self, settings: Settings) -> Result<()> {
        match self.settings {
            Some(old) if old != settings => {
                exec_err!(
                    "{NAME}: as_of, window_days and lookback_days must be the same for every row of a group"
                )
            }
            _ => {
                self.settings = Some(settings);
                Ok(())
            }
        }
    }

    /// Adds one actor's active days (any order, duplicates allowed).
    pub(crate) fn add_actor(&mut self, settings: Settings, days: &mut Vec<i32>) {
        if let Some(as_of) = settings.as_of {
            // Only the look-back counts: days after as_of, and the actor's older history, never do.
            days.retain(|day| (as_of - settings.lookback_days + 1..=as_of).contains(day));
        }
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        let Some(&last) = days.first() else {
            return;
        };
        // as_of is at or after `last`, so a day before `last - window_days + 1` is never in the
        // window.
        let oldest = last - settings.window_days + 1;
        for (rank, &day) in (1..).zip(days.iter().take_while(|&&day| day >= oldest)) {
            *self.ranked.entry((rank, day)).or_default() += 1;
        }
    }

    /// Actors with at least k active days in the window, for k from 0 (seen in the look-back) to
    /// window_days.
    fn at_least(&self, settings: Settings) -> Vec<i64> {
        let as_of = settings.as_of.or_else(|| {
            self.ranked
                .keys()
                .filter(|(rank, _)| *rank == 1)
                .map(|(_, day)| *day)
                .max()
        });
        let window = settings.window_days as usize;
        let mut at_least = vec![0; window + 1];
        let Some(as_of) = as_of else {
            return at_least;
        };
        let window_start = as_of - settings.window_days + 1;
        let lookback_start = as_of - settings.lookback_days + 1;
        for (&(rank, day), &actors) in &self.ranked {
            if rank == 1 && day >= lookback_start {
                at_least[0] += actors;
            }
            if day >= window_start {
                at_least[rank as usize] += actors;
            }
        }
        at_least
    }
}

/// The report, from the number of actors with at least k active days in the window for k from 0
/// (seen in the look-back) to `window_days`.
pub(crate) fn histogram(at_least: &[i64], window_days: i32) -> Result<ScalarValue> {
    let total = at_least.first().copied().unwrap_or(0);
    // No actor in the look-back is an empty result, as an empty table is: so the shares below
    // never divide by 0.
    let rows = if total == 0 { 0 } else { at_least.len() };
    let share = |actors: i64| actors as f64 / total as f64;
    let exactly = |k: usize| at_least[k] - at_least.get(k + 1).copied().unwrap_or(0);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(0..rows as i32)),
        Arc::new(Int64Array::from_iter_values((0..rows).map(exactly))),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|k| share(exactly(k))),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|k| share(at_least[k])),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|k| band(k as i64, i64::from(window_days))),
        )),
    ];
    report(StructArray::try_new(row_fields(), columns, None)?)
}

/// An integer argument's column as BIGINT, whatever its integer type.
pub(crate) fn integer_argument(array: &ArrayRef, name: &str) -> Result<Int64Array> {
    let array = cast(array, &DataType::Int64)?;
    let array = array.as_primitive::<Int64Type>().clone();
    if array.null_count() > 0 {
        return exec_err!("{NAME}: {name} must not be NULL");
    }
    Ok(array)
}

impl Accumulator for UsageFrequencyAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let lists = values[0].as_list::<i32>();
        let window_days = integer_argument(&values[2], "window_days")?;
        let lookback_days = integer_argument(&values[3], "lookback_days")?;
        let mut days = Vec::new();
        for row in 0..lists.len() {
            let (window, lookback) = (window_days.value(row), lookback_days.value(row));
            check_days(Stage::Execution, NAME, window, lookback)?;
            let as_of = match values[1].data_type() {
                DataType::Date32 => {
                    let dates = values[1].as_primitive::<Date32Type>();
                    dates.is_valid(row).then(|| dates.value(row))
                }
                _ => None,
            };
            // check_days bounds both to 3660, so they fit.
            let settings = Settings {
                as_of,
                window_days: window as i32,
                lookback_days: lookback as i32,
            };
            self.set_settings(settings)?;
            if lists.is_null(row) {
                continue;
            }
            let actor_days = lists.value(row);
            days.clear();
            days.extend(actor_days.as_primitive::<Date32Type>().iter().flatten());
            self.add_actor(settings, &mut days);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |values: Vec<ScalarValue>, data_type: &DataType| {
            ScalarValue::List(ScalarValue::new_list_nullable(&values, data_type))
        };
        let (mut ranks, mut days, mut actors) = (Vec::new(), Vec::new(), Vec::new());
        for (&(rank, day), &count) in &self.ranked {
            ranks.push(ScalarValue::Int32(Some(rank)));
            days.push(ScalarValue::Int32(Some(day)));
            actors.push(ScalarValue::Int64(Some(count)));
        }
        Ok(vec![
            ScalarValue::Int32(self.settings.and_then(|s| s.as_of)),
            ScalarValue::Int32(self.settings.map(|s| s.window_days)),
            ScalarValue::Int32(self.settings.map(|s| s.lookback_days)),
            list(ranks, &DataType::Int32),
            list(days, &DataType::Int32),
            list(actors, &DataType::Int64),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let int32 = |i: usize| states[i].as_primitive::<Int32Type>();
        let (as_of, window_days, lookback_days) = (int32(0), int32(1), int32(2));
        for row in 0..window_days.len() {
            if window_days.is_null(row) {
                // A partial fold that saw no row.
                continue;
            }
            self.set_settings(Settings {
                as_of: as_of.is_valid(row).then(|| as_of.value(row)),
                window_days: window_days.value(row),
                lookback_days: lookback_days.value(row),
            })?;
            let list = |i: usize| states[i].as_list::<i32>().value(row);
            let (ranks, days, actors) = (list(3), list(4), list(5));
            let ranks = ranks.as_primitive::<Int32Type>().values();
            let days = days.as_primitive::<Int32Type>().values();
            let actors = actors.as_primitive::<Int64Type>().values();
            for ((&rank, &day), &count) in ranks.iter().zip(days.iter()).zip(actors.iter()) {
                *self.ranked.entry((rank, day)).or_default() += count;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.settings {
            Some(settings) => histogram(&self.at_least(settings), settings.window_days),
            None => histogram(&[], 0),
        }
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.ranked.capacity() * (size_of_val(&((0i32, 0i32), 0i64)) + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    fn settings(as_of: Option<i32>, window_days: i32, lookback_days: i32) -> Settings {
        Settings {
            as_of,
            window_days,
            lookback_days,
        }
    }

    fn fold(settings: Settings, actors: &[&[i32]]) -> UsageFrequencyAccumulator {
        let mut accumulator = UsageFrequencyAccumulator {
            settings: Some(settings),
            ..Default::default()
        };
        for days in actors {
            accumulator.add_actor(settings, &mut days.to_vec());
        }
        accumulator
    }

    fn at_least(settings: Settings, actors: &[&[i32]]) -> Vec<i64> {
        fold(settings, actors).at_least(settings)
    }

    #[test]
    fn bands_start_at_20_and_4_days_of_28_scaled_up_to_the_window() {
        assert_eq!(band(20, 28), "daily");
        assert_eq!(band(19, 28), "weekly");
        assert_eq!(band(4, 28), "weekly");
        assert_eq!(band(3, 28), "monthly");
        assert_eq!(band(1, 28), "monthly");
        assert_eq!(band(0, 28), "forgettable");
        // 7 days: daily from ceil(140 / 28) = 5, weekly from ceil(28 / 28) = 1.
        assert_eq!(band(5, 7), "daily");
        assert_eq!(band(4, 7), "weekly");
        assert_eq!(band(1, 7), "weekly");
        // 30 days: daily from ceil(600 / 28) = 22, weekly from ceil(120 / 28) = 5.
        assert_eq!(band(22, 30), "daily");
        assert_eq!(band(21, 30), "weekly");
        assert_eq!(band(5, 30), "weekly");
        assert_eq!(band(4, 30), "monthly");
    }

    #[test]
    fn an_actor_counts_its_distinct_days_in_the_window_ending_on_as_of() {
        // Window 7 days ending on day 100: days 94..=100. Days 93 and 101 fall outside.
        let counts = at_least(settings(Some(100), 7, 30), &[&[93, 94, 94, 100, 101, 97]]);
        assert_eq!(counts, vec![1, 1, 1, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn an_actor_seen_only_in_the_look_back_has_zero_days() {
        // Day 80 is in the 30-day look-back ending on 100 (71..=100), not in the 7-day window;
        // day 70 is in neither.
        let counts = at_least(settings(Some(100), 7, 30), &[&[80], &[70]]);
        assert_eq!(counts, vec![1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn without_as_of_the_window_ends_on_the_last_active_day() {
        // Last day 50 (actor B): window 44..=50, look-back 21..=50.
        let counts = at_least(settings(None, 7, 30), &[&[10, 30, 44, 45], &[50], &[20]]);
        assert_eq!(counts, vec![2, 2, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn only_days_within_a_window_of_the_actors_last_day_are_kept() {
        let accumulator = fold(settings(None, 7, 90), &[&[1, 2, 3, 50, 55, 56]]);
        let mut kept: Vec<_> = accumulator.ranked.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![(1, 56), (2, 55), (3, 50)]);
    }

    #[test]
    fn partial_states_merge_to_the_single_pass_result() {
        let actors: [&[i32]; 5] = [&[5, 40], &[1], &[38, 39, 40], &[39], &[2, 3]];
        for settings in [settings(None, 7, 30), settings(Some(39), 7, 30)] {
            let mut single = fold(settings, &actors);
            let mut merged = UsageFrequencyAccumulator::default();
            // An empty partial fold (no rows, no settings) merges as nothing.
            for part in [&actors[..2], &[], &actors[2..]] {
                let mut partial = if part.is_empty() {
                    UsageFrequencyAccumulator::default()
                } else {
                    fold(settings, part)
                };
                merge_state(&mut partial, &mut merged);
            }
            assert_eq!(merged.evaluate().unwrap(), single.evaluate().unwrap());
        }
    }

    #[test]
    fn shares_divide_by_the_actors_seen_in_the_look_back() {
        // Window 94..=100, look-back 71..=100: actors with 2, 1 and 0 days in the window.
        let mut accumulator = fold(settings(Some(100), 7, 30), &[&[99, 100], &[95], &[75]]);
        let ScalarValue::List(list) = accumulator.evaluate().unwrap() else {
            panic!("a list");
        };
        let rows = list.value(0);
        let rows = rows.as_struct();
        let float = |name: &str| -> Vec<f64> {
            rows.column_by_name(name)
                .unwrap()
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .values()
                .to_vec()
        };
        let third = 1.0 / 3.0;
        assert_eq!(
            float("share"),
            vec![third, third, third, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            float("cumulative_share"),
            vec![1.0, 2.0 / 3.0, third, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn no_actor_in_the_look_back_gives_no_rows() {
        let mut empty = UsageFrequencyAccumulator::default();
        let ScalarValue::List(list) = empty.evaluate().unwrap() else {
            panic!("a list");
        };
        assert_eq!(list.value(0).len(), 0);
    }

    #[test]
    fn window_and_look_back_lengths_are_checked() {
        let error = |w, l| {
            check_days(Stage::Planning, "f", w, l)
                .unwrap_err()
                .to_string()
        };
        assert!(check_days(Stage::Planning, "f", 7, 7).is_ok());
        assert!(error(6, 90).contains("f: window_days must be at least 7, but it is 6"));
        assert!(error(30, 20).contains("window_days must not exceed lookback_days"));
        assert!(error(28, 3661).contains("lookback_days must be at most 3660"));
    }
}
