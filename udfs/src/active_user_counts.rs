//! `active_user_counts(days, first_day, end_day)`: the fold step of `active_users`.
//!
//! Its input is one row per actor holding the actor's distinct active days (local DATEs). For each
//! day `d` of the report it counts the actors active on `d` (DAU), on `[d-6, d]` (WAU) and on
//! `[d-29, d]` (MAU). An actor's days are visited in order and turned into the union of the windows
//! they open (`[a, a+6]` and `[a, a+29]` for each active day `a`), and each interval adds one to a
//! difference array at its start and removes one after its end. The work is therefore linear in
//! the actor's active days, never in days × window, and an actor active on two days of one week
//! is still counted once in that week.
//!
//! The state (the difference arrays from a base day, the days seen and the report bounds) merges by
//! adding the arrays, so partial folds from any partition or executor combine in any order.

use std::mem::size_of_val;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, StructArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, Fields, Int32Type, Int64Type,
};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{
    Expected, check_arguments, date_at, list_of, report, set_bound, state_field, widen,
};

const NAME: &str = "active_user_counts";

/// Days in the weekly and monthly windows, the day itself included.
const WEEK_DAYS: i32 = 7;
const MONTH_DAYS: i32 = 30;

/// The counters kept per day: DAU, WAU, MAU.
const COUNTERS: usize = 3;
const WINDOWS: [i32; COUNTERS] = [1, WEEK_DAYS, MONTH_DAYS];

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The fold step of `active_users`: given one row per actor with the list of the \
        actor's distinct active days, returns one list with, for every day of the report, the \
        number of actors active that day (dau), in the 7 days ending that day (wau) and in the 30 \
        days ending that day (mau), with dau/mau and dau/wau (NULL where the denominator is 0). \
        The report runs from `first_day` (default: the first active day) to the day before \
        `end_day` (default: the last active day). Days before `first_day` still count towards \
        the windows of the days that follow. `active_users` plans it for you.",
    syntax_example = "active_user_counts(days, first_day, end_day)",
    sql_example = r#"```sql
> SELECT unnest(active_user_counts(days, NULL, NULL)) FROM (
    SELECT user_id, array_agg(DISTINCT CAST(ts AS DATE)) AS days FROM events GROUP BY user_id);
```"#,
    argument(name = "days", description = "LIST<DATE>: one actor's active days."),
    argument(
        name = "first_day",
        description = "DATE: the first day to report, or NULL."
    ),
    argument(
        name = "end_day",
        description = "DATE: the day after the last day to report, or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActiveUserCounts {
    signature: Signature,
}

impl ActiveUserCounts {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

/// The fields of one reported day.
pub(crate) fn day_fields() -> Fields {
    Fields::from(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("dau", DataType::Int64, false),
        Field::new("wau", DataType::Int64, false),
        Field::new("mau", DataType::Int64, false),
        Field::new("dau_mau", DataType::Float64, true),
        Field::new("dau_wau", DataType::Float64, true),
    ])
}

impl AggregateUDFImpl for ActiveUserCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [("days", DateList), ("first_day", Date), ("end_day", Date)];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(day_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ActiveUserCountsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, data_type| state_field(&args, name, data_type);
        Ok(vec![
            field("base", DataType::Int32),
            field("dau_diff", list_of(DataType::Int64)),
            field("wau_diff", list_of(DataType::Int64)),
            field("mau_diff", list_of(DataType::Int64)),
            field("first_seen", DataType::Int32),
            field("last_seen", DataType::Int32),
            field("first_day", DataType::Int32),
            field("end_day", DataType::Int32),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Difference arrays of the three counters over days `base..base + len`, and what was seen.
#[derive(Debug, Default)]
pub(crate) struct ActiveUserCountsAccumulator {
    base: i32,
    diffs: [Vec<i64>; COUNTERS],
    /// First and last active day seen.
    seen: Option<(i32, i32)>,
    first_day: Option<i32>,
    end_day: Option<i32>,
}

impl ActiveUserCountsAccumulator {
    /// Makes the arrays cover days `low..=high`.
    fn cover(&mut self, low: i32, high: i32) {
        let len = self.diffs[0].len() as i32;
        if len == 0 {
            self.base = low;
            for diff in &mut self.diffs {
                diff.resize((high - low + 1) as usize, 0);
            }
            return;
        }
        if low < self.base {
            // Grow by at least the current length so that data arriving backwards in time still
            // costs amortised constant time per day.
            let grow = (self.base - low).max(len);
            for diff in &mut self.diffs {
                diff.splice(0..0, std::iter::repeat_n(0, grow as usize));
            }
            self.base -= grow;
        }
        let end = self.base + self.diffs[0].len() as i32;
        if high >= end {
            let grow = (high - end + 1).max(self.diffs[0].len() as i32);
            for diff in &mut self.diffs {
                diff.resize(diff.len() + grow as usize, 0);
            }
        }
    }

    /// Counters for a report from `first_day` to the day before `end_day` (by default, the
    /// active days seen).
    pub(crate) fn new(first_day: Option<i32>, end_day: Option<i32>) -> Self {
        Self {
            first_day,
            end_day,
            ..Default::default()
        }
    }

    /// Makes ready for [`add_active_day`](Self::add_active_day) with days from `first` to `last`.
    pub(crate) fn expect_days(&mut self, first: i32, last: i32) {
        self.seen = widen(self.seen, first, last);
        self.cover(first, last + MONTH_DAYS);
    }

    /// Adds an actor's active `day`, given its previous active day: the windows it opens, less
    /// what the previous day's windows already cover. Days of one actor must come in order, within
    /// the range given to [`expect_days`](Self::expect_days).
    pub(crate) fn add_active_day(&mut self, day: i32, previous: Option<i32>) {
        self.add_active_actors(day, 1);
        self.add_window_starts(day, previous);
    }

    /// The part of [`add_active_day`](Self::add_active_day) that is the same for all `actors`
    /// active on `day`, whatever their previous days: a window opened on `day` always ends
    /// `window` days later (the previous day's windows end sooner), and a daily window always
    /// starts on the day. A caller that knows how many actors a day has adds them at once here,
    /// and each actor's own part with [`add_window_starts`](Self::add_window_starts).
    pub(crate) fn add_active_actors(&mut self, day: i32, actors: i64) {
        let at = |day: i32| (day - self.base) as usize;
        self.diffs[0][at(day)] += actors;
        for (counter, window) in WINDOWS.iter().enumerate() {
            self.diffs[counter][at(day + window)] -= actors;
        }
    }

    /// Starts the weekly and monthly windows of an actor active on `day`: on the day, or where
    /// the window of its `previous` day ends if that is later.
    pub(crate) fn add_window_starts(&mut self, day: i32, previous: Option<i32>) {
        debug_assert!(previous.is_none_or(|previous| previous < day));
        for (counter, window) in WINDOWS.iter().enumerate().skip(1) {
            let start = previous.map_or(day, |previous| day.max(previous + window));
            self.diffs[counter][(start - self.base) as usize] += 1;
        }
    }

    /// Adds one actor's active days (any order, duplicates allowed).
    pub(crate) fn add_actor(&mut self, days: &mut Vec<i32>) {
        if days.is_empty() {
            return;
        }
        days.sort_unstable();
        days.dedup();
        self.expect_days(days[0], days[days.len() - 1]);
        let mut previous = None;
        for &day in days.iter() {
            self.add_active_day(day, previous);
            previous = Some(day);
        }
    }

    /// The report's days, `first..end`.
    fn report_days(&self) -> Option<(i32, i32)> {
        let (first_seen, last_seen) = self.seen?;
        let first = self.first_day.unwrap_or(first_seen);
        let end = self.end_day.unwrap_or(last_seen + 1);
        (first < end).then_some((first, end))
    }

    /// The value of counter `counter` on each day of `first..end`.
    fn counts(&self, counter: usize, first: i32, end: i32) -> Vec<i64> {
        // Days outside the arrays (before the data, or long after it) have no active actors.
        let mut counts = vec![0; (end - first).max(0) as usize];
        let mut running = 0;
        for (index, change) in self.diffs[counter].iter().enumerate() {
            let day = self.base + index as i32;
            if day >= end {
                break;
            }
            running += change;
            if day >= first {
                counts[(day - first) as usize] = running;
            }
        }
        counts
    }
}

fn ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator != 0).then(|| numerator as f64 / denominator as f64)
}

impl Accumulator for ActiveUserCountsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let lists = values[0].as_list::<i32>();
        let mut days = Vec::new();
        for row in 0..lists.len() {
            set_bound(
                NAME,
                &mut self.first_day,
                date_at(&values[1], row),
                "first_day",
            )?;
            set_bound(NAME, &mut self.end_day, date_at(&values[2], row), "end_day")?;
            if lists.is_null(row) {
                continue;
            }
            let actor_days = lists.value(row);
            let actor_days = actor_days.as_primitive::<Date32Type>();
            days.clear();
            days.extend(actor_days.iter().flatten());
            self.add_actor(&mut days);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |values: &[i64]| {
            ScalarValue::List(ScalarValue::new_list_nullable(
                &values
                    .iter()
                    .map(|v| ScalarValue::Int64(Some(*v)))
                    .collect::<Vec<_>>(),
                &DataType::Int64,
            ))
        };
        Ok(vec![
            ScalarValue::Int32(Some(self.base)),
            list(&self.diffs[0]),
            list(&self.diffs[1]),
            list(&self.diffs[2]),
            ScalarValue::Int32(self.seen.map(|(low, _)| low)),
            ScalarValue::Int32(self.seen.map(|(_, high)| high)),
            ScalarValue::Int32(self.first_day),
            ScalarValue::Int32(self.end_day),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let int32 = |i: usize| states[i].as_primitive::<Int32Type>();
        let (bases, first_seen, last_seen) = (int32(0), int32(4), int32(5));
        let (first_days, end_days) = (int32(6), int32(7));
        for row in 0..bases.len() {
            set_bound(
                NAME,
                &mut self.first_day,
                first_days.is_valid(row).then(|| first_days.value(row)),
                "first_day",
            )?;
            set_bound(
                NAME,
                &mut self.end_day,
                end_days.is_valid(row).then(|| end_days.value(row)),
                "end_day",
            )?;
            if first_seen.is_null(row) {
                continue;
            }
            let (low, high) = (first_seen.value(row), last_seen.value(row));
            self.seen = widen(self.seen, low, high);
            let base = bases.value(row);
            let other: Vec<ArrayRef> = (1..=COUNTERS)
                .map(|i| states[i].as_list::<i32>().value(row))
                .collect();
            let len = other[0].len() as i32;
            if len == 0 {
                continue;
            }
            self.cover(base, base + len - 1);
            for (counter, diff) in other.iter().enumerate() {
                let diff = diff.as_primitive::<Int64Type>();
                let offset = (base - self.base) as usize;
                for (index, change) in diff.values().iter().enumerate() {
                    self.diffs[counter][offset + index] += change;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (first, end) = self.report_days().unwrap_or((0, 0));
        let dau = self.counts(0, first, end);
        let wau = self.counts(1, first, end);
        let mau = self.counts(2, first, end);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from_iter_values(first..end)),
            Arc::new(Int64Array::from(dau.clone())),
            Arc::new(Int64Array::from(wau.clone())),
            Arc::new(Int64Array::from(mau.clone())),
            Arc::new(Float64Array::from_iter(
                dau.iter().zip(&mau).map(|(d, m)| ratio(*d, *m)),
            )),
            Arc::new(Float64Array::from_iter(
                dau.iter().zip(&wau).map(|(d, w)| ratio(*d, *w)),
            )),
        ];
        let days = StructArray::try_new(day_fields(), columns, None)?;
        report(days)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.diffs.iter().map(|d| d.capacity() * 8).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    /// DAU, WAU and MAU of days `first..end` after adding the given actors.
    fn fold(actors: &[&[i32]], first: i32, end: i32) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let mut accumulator = ActiveUserCountsAccumulator::default();
        for days in actors {
            accumulator.add_actor(&mut days.to_vec());
        }
        (
            accumulator.counts(0, first, end),
            accumulator.counts(1, first, end),
            accumulator.counts(2, first, end),
        )
    }

    #[test]
    fn one_actor_counts_once_per_window_however_often_active() {
        // Active on days 10, 11 and 13: one weekly actor from day 10 to day 19 (13 + 6).
        let (dau, wau, _) = fold(&[&[13, 10, 11, 11]], 9, 21);
        assert_eq!(dau, vec![0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(wau, vec![0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    }

    #[test]
    fn a_report_starting_before_the_data_is_zero_there() {
        let (dau, wau, _) = fold(&[&[10]], 8, 12);
        assert_eq!(dau, vec![0, 0, 1, 0]);
        assert_eq!(wau, vec![0, 0, 1, 1]);
    }

    #[test]
    fn monthly_window_lasts_thirty_days_from_the_last_activity() {
        let (_, _, mau) = fold(&[&[0]], 0, 31);
        assert_eq!(mau[29], 1);
        assert_eq!(mau[30], 0);
    }

    #[test]
    fn two_actors_add_up_and_gaps_split_windows() {
        // Actor A: days 0 and 20 (two weekly windows); actor B: day 3.
        let (dau, wau, mau) = fold(&[&[0, 20], &[3]], 0, 27);
        assert_eq!(dau[0], 1);
        assert_eq!(dau[3], 1);
        assert_eq!(wau[3], 2); // A (0..=6) and B (3..=9)
        assert_eq!(wau[7], 1); // B only
        assert_eq!(wau[10], 0);
        assert_eq!(wau[20], 1);
        assert_eq!(mau[20], 2); // A, and B (3..=32)
        assert_eq!(mau[26], 2);
    }

    #[test]
    fn partial_states_merge_to_the_single_pass_result() {
        let actors: [&[i32]; 4] = [&[5, 40], &[1], &[100, 101], &[39]];
        let mut single = ActiveUserCountsAccumulator::default();
        for days in actors {
            single.add_actor(&mut days.to_vec());
        }
        let mut merged = ActiveUserCountsAccumulator::default();
        for part in [&actors[..2], &actors[2..]] {
            let mut partial = ActiveUserCountsAccumulator::default();
            for days in part {
                partial.add_actor(&mut days.to_vec());
            }
            merge_state(&mut partial, &mut merged);
        }
        assert_eq!(merged.evaluate().unwrap(), single.evaluate().unwrap());
    }

    #[test]
    fn ratios_are_null_when_nobody_is_active() {
        assert_eq!(ratio(3, 0), None);
        assert_eq!(ratio(1, 4), Some(0.25));
    }
}
