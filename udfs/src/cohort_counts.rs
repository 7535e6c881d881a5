//! `cohort_counts(starts, returns, last_period, last_day, period, periods, mode, cumulative,
//! first_period, end_day, complete_until)`: the fold step of `cohort_retention`.
//!
//! Its input is one row per actor holding the start DATEs of the calendar periods with a start
//! event and of those with a return event, over all of its history, and the start of its last
//! active period and local date of its last event. Each actor adds one to the size of its cohorts
//! (its first start period, or every start period) and one to each retained cell it returned in,
//! so the work is linear in the actor's periods (times `periods` at most, for a cumulative count).
//!
//! The state is a dense row of `periods` counters per cohort (size first, then retained actors of
//! periods 1 to `periods - 1`), with the report bounds; it merges by adding the rows, so partial
//! folds from any partition or executor combine in any order.

use std::collections::BTreeMap;
use std::mem::size_of_val;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array,
    StructArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, Fields, Int32Type, Int64Type,
};
use datafusion::common::{ScalarValue, exec_datafusion_err, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{
    Expected, check_arguments, date_at, int32_at, list_of, report, set_bound, state_field,
};
use crate::lifecycle_counts::next_period_start;
use crate::period::Period;

const NAME: &str = "cohort_counts";

/// The most periods a retention row can have.
pub(crate) const MAX_PERIODS: i64 = 1000;

/// How an actor's start periods make cohorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The actor's first start period is its only cohort.
    FirstTime,
    /// Every start period is a cohort of its own.
    Recurring,
}

impl Mode {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "first_time" => Some(Self::FirstTime),
            "recurring" => Some(Self::Recurring),
            _ => None,
        }
    }
}

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The fold step of `cohort_retention`: given one row per actor with the start \
        DATEs of its periods with a start event and of its periods with a return event (all of \
        its history), the start of its last active period and the local date of its last event, \
        returns one list with, for every cohort (a period with actors starting in it) and every \
        period number from 0 to `periods - 1`, the cohort's size, the actors retained (a return \
        event in period cohort + k; with `cumulative`, in that period or a later one before \
        `end_day`), the retention rate and whether the period had ended by the last event (and \
        by `complete_until`). Cells starting on or after `end_day` or after the last active \
        period are not reported. `cohort_retention` plans it for you.",
    syntax_example = "cohort_counts(starts, returns, last_period, last_day, period, periods, mode, \
        cumulative, first_period, end_day, complete_until)",
    sql_example = r#"```sql
> SELECT unnest(cohort_counts(periods, periods, last_period, last_day, 'week', 8, 'first_time',
    false, NULL, NULL, NULL)) FROM (
    SELECT user_id, active_days(period_start(ts, 'week')) AS periods,
           max(period_start(ts, 'week')) AS last_period, max(CAST(ts AS DATE)) AS last_day
    FROM events GROUP BY user_id);
```"#,
    argument(
        name = "starts",
        description = "LIST<DATE>: the first days of the periods with a start event."
    ),
    argument(
        name = "returns",
        description = "LIST<DATE>: the first days of the periods with a return event."
    ),
    argument(
        name = "last_period",
        description = "DATE: the first day of the actor's last active period."
    ),
    argument(
        name = "last_day",
        description = "DATE: the local date of the actor's last event."
    ),
    argument(
        name = "period",
        description = "A constant string: 'day', 'week', 'month', 'quarter' or 'year'."
    ),
    argument(
        name = "periods",
        description = "A constant integer from 1 to 1000: period numbers 0 to periods - 1."
    ),
    argument(
        name = "mode",
        description = "'first_time' (an actor's cohort is its first start period) or \
            'recurring' (every start period is a cohort)."
    ),
    argument(
        name = "cumulative",
        description = "BOOLEAN: count an actor in every period up to its last return."
    ),
    argument(
        name = "first_period",
        description = "DATE: the first day of the first cohort to report, or NULL."
    ),
    argument(
        name = "end_day",
        description = "DATE: cohorts and cells starting on or after this day are not reported, \
            and returns in them do not count; or NULL."
    ),
    argument(
        name = "complete_until",
        description = "DATE: a period ending after this local date is incomplete, whatever the \
            last event; or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CohortCounts {
    signature: Signature,
}

impl CohortCounts {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(11, Volatility::Immutable),
        }
    }
}

/// The fields of one reported (cohort, period number).
pub(crate) fn row_fields() -> Fields {
    Fields::from(vec![
        Field::new("cohort", DataType::Date32, false),
        Field::new("cohort_size", DataType::Int64, false),
        Field::new("period_number", DataType::Int32, false),
        Field::new("retained", DataType::Int64, false),
        Field::new("retention_rate", DataType::Float64, false),
        Field::new("period_complete", DataType::Boolean, false),
    ])
}

impl AggregateUDFImpl for CohortCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [
            ("starts", DateList),
            ("returns", DateList),
            ("last_period", Date),
            ("last_day", Date),
            ("period", String),
            ("periods", Integer),
            ("mode", String),
            ("cumulative", Boolean),
            ("first_period", Date),
            ("end_day", Date),
            ("complete_until", Date),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(row_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CohortAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, data_type| state_field(&args, name, data_type);
        Ok(vec![
            field("period", DataType::Utf8),
            field("periods", DataType::Int32),
            field("cohorts", list_of(DataType::Int32)),
            field("counts", list_of(DataType::Int64)),
            field("last_period", DataType::Int32),
            field("last_day", DataType::Int32),
            field("end_day", DataType::Int32),
            field("complete_until", DataType::Int32),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Counter rows by cohort, and the report bounds.
#[derive(Debug, Default)]
pub(crate) struct CohortAccumulator {
    pub(crate) period: Option<Period>,
    /// How many counters each cohort has: period numbers 0 to `periods - 1`.
    pub(crate) periods: Option<i32>,
    pub(crate) mode: Option<Mode>,
    pub(crate) cumulative: Option<bool>,
    /// Each cohort's size, then its retained actors in period numbers 1 to `periods - 1`.
    pub(crate) counts: BTreeMap<i32, Vec<i64>>,
    /// The latest active period start seen.
    pub(crate) last_period: Option<i32>,
    /// The latest local date of an event.
    pub(crate) last_day: Option<i32>,
    pub(crate) first_period: Option<i32>,
    pub(crate) end_day: Option<i32>,
    pub(crate) complete_until: Option<i32>,
}

pub(crate) fn later(old: Option<i32>, new: Option<i32>) -> Option<i32> {
    match (old, new) {
        (Some(old), Some(new)) => Some(old.max(new)),
        (old, new) => old.or(new),
    }
}

pub(crate) fn parse_period(text: &str) -> Result<Period> {
    text.parse()
        .map_err(|error| exec_datafusion_err!("{NAME}: argument period: {error}"))
}

pub(crate) fn check_periods(periods: i64) -> Result<i32> {
    if (1..=MAX_PERIODS).contains(&periods) {
        Ok(periods as i32)
    } else {
        exec_err!("{NAME}: periods must be from 1 to {MAX_PERIODS}, not {periods}")
    }
}

fn date(days: i32) -> Result<NaiveDate> {
    chrono::DateTime::UNIX_EPOCH
        .date_naive()
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .ok_or_else(|| exec_datafusion_err!("{NAME}: day {days} is out of range"))
}

/// Whole periods from the period starting on `from` to the one starting on `to`: both are first
/// days of a `period`, so weeks are 7 days and months, quarters and years whole calendar months.
pub(crate) fn periods_between(period: Period, from: i32, to: i32) -> Result<i64> {
    let months = |per: i64| -> Result<i64> {
        let (from, to) = (date(from)?, date(to)?);
        let month = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
        Ok((month(to) - month(from)).div_euclid(per))
    };
    match period {
        // Hours by number: see `HourKeys`.
        Period::Hour | Period::Day => Ok(i64::from(to - from)),
        Period::Week => Ok(i64::from(to - from).div_euclid(7)),
        Period::Month => months(1),
        Period::Quarter => months(3),
        Period::Year => months(12),
    }
}

/// Adds one actor to its cohort's counters `row`: one to the size, and one to each period number
/// it returned in; `numbers` are its return period numbers after the cohort's, ascending. With
/// `cumulative`, it counts in every period number up to its last return (the last cell, for a
/// return past it).
pub(crate) fn count_actor(row: &mut [i64], numbers: &[i64], cumulative: bool) {
    row[0] += 1;
    let last_cell = row.len() - 1;
    if cumulative {
        if let Some(&last) = numbers.last() {
            let through = usize::try_from(last).map_or(0, |last| last.min(last_cell));
            for cell in &mut row[1..=through] {
                *cell += 1;
            }
        }
    } else {
        for &number in numbers {
            match usize::try_from(number) {
                Ok(cell) if (1..=last_cell).contains(&cell) => row[cell] += 1,
                _ => {}
            }
        }
    }
}

/// The cells of a report: cohort, size, period number, retained, complete.
#[cfg(test)]
pub(crate) fn cells(report: ScalarValue) -> Vec<(i32, i64, i32, i64, bool)> {
    let ScalarValue::List(list) = report else {
        panic!("a list");
    };
    let rows = list.value(0);
    let rows = rows.as_struct();
    (0..rows.len())
        .map(|row| {
            (
                rows.column(0).as_primitive::<Date32Type>().value(row),
                rows.column(1).as_primitive::<Int64Type>().value(row),
                rows.column(2).as_primitive::<Int32Type>().value(row),
                rows.column(3).as_primitive::<Int64Type>().value(row),
                rows.column(5).as_boolean().value(row),
            )
        })
        .collect()
}

/// The report rows of a retention triangle, built cell by cell.
#[derive(Default)]
pub(crate) struct CohortRows {
    cohorts: Vec<i32>,
    sizes: Vec<i64>,
    numbers: Vec<i32>,
    retained: Vec<i64>,
    complete: Vec<bool>,
}

impl CohortRows {
    /// Adds cell `number` of `cohort`, whose counters are `row`.
    pub(crate) fn push(&mut self, cohort: i32, row: &[i64], number: usize, complete: bool) {
        self.cohorts.push(cohort);
        self.sizes.push(row[0]);
        self.numbers.push(number as i32);
        self.retained.push(row[number]);
        self.complete.push(complete);
    }

    /// The rows as the fold's value.
    pub(crate) fn finish(self) -> Result<ScalarValue> {
        let rates: Float64Array = self
            .retained
            .iter()
            .zip(&self.sizes)
            .map(|(&retained, &size)| Some(retained as f64 / size as f64))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(self.cohorts)),
            Arc::new(Int64Array::from(self.sizes)),
            Arc::new(Int32Array::from(self.numbers)),
            Arc::new(Int64Array::from(self.retained)),
            Arc::new(rates),
            Arc::new(BooleanArray::from(self.complete)),
        ];
        report(StructArray::try_new(row_fields(), columns, None)?)
    }
}

impl CohortAccumulator {
    fn period(&self) -> Result<Period> {
        self.period
            .ok_or_else(|| exec_datafusion_err!("{NAME}: period must not be NULL"))
    }

    fn periods(&self) -> Result<i32> {
        self.periods
            .ok_or_else(|| exec_datafusion_err!("{NAME}: periods must not be NULL"))
    }

    /// Adds one actor's start and return periods (each sorted, without repeats).
    pub(crate) fn add_actor(&mut self, starts: &[i32], returns: &[i32]) -> Result<()> {
        let period = self.period()?;
        let periods = self.periods()?;
        let mode = self
            .mode
            .ok_or_else(|| exec_datafusion_err!("{NAME}: mode must not be NULL"))?;
        let cumulative = self.cumulative.unwrap_or(false);
        let cohorts = match mode {
            Mode::FirstTime => &starts[..starts.len().min(1)],
            Mode::Recurring => starts,
        };
        // Returns in periods that are not reported do not count, not even towards a cumulative
        // count of an earlier period.
        let returns = match self.end_day {
            Some(end) => &returns[..returns.partition_point(|&r| r < end)],
            None => returns,
        };
        for &cohort in cohorts {
            if self.first_period.is_some_and(|first| cohort < first)
                || self.end_day.is_some_and(|end| cohort >= end)
            {
                continue;
            }
            let mut later_returns = &returns[returns.partition_point(|&r| r <= cohort)..];
            if cumulative {
                // Only the last return counts.
                later_returns = &later_returns[later_returns.len().saturating_sub(1)..];
            }
            let mut numbers = Vec::with_capacity(later_returns.len());
            for &back in later_returns {
                let number = periods_between(period, cohort, back)?;
                if !cumulative && number >= i64::from(periods) {
                    break;
                }
                numbers.push(number);
            }
            self.add_to_cohort(cohort, &numbers)?;
        }
        Ok(())
    }

    /// Adds the counters `row` (size, then retained actors by period number) to `cohort`'s.
    pub(crate) fn add_counts(&mut self, cohort: i32, row: &[i64]) -> Result<()> {
        let periods = self.periods()?;
        let counts = self
            .counts
            .entry(cohort)
            .or_insert_with(|| vec![0; periods as usize]);
        for (into, count) in counts.iter_mut().zip(row) {
            *into += count;
        }
        Ok(())
    }

    /// Adds one actor to `cohort`, with the numbers of the later periods it returned in,
    /// ascending (with `cumulative`, the last one is enough).
    pub(crate) fn add_to_cohort(&mut self, cohort: i32, numbers: &[i64]) -> Result<()> {
        let periods = self.periods()?;
        let row = self
            .counts
            .entry(cohort)
            .or_insert_with(|| vec![0; periods as usize]);
        count_actor(row, numbers, self.cumulative.unwrap_or(false));
        Ok(())
    }

    fn set_periods(&mut self, periods: i32) -> Result<()> {
        set_bound(NAME, &mut self.periods, Some(periods), "periods")
    }
}

impl Accumulator for CohortAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let starts = values[0].as_list::<i32>();
        let returns = values[1].as_list::<i32>();
        let period_names = datafusion::arrow::compute::cast(&values[4], &DataType::Utf8)?;
        let period_names = period_names.as_string::<i32>();
        let periods = datafusion::arrow::compute::cast(&values[5], &DataType::Int64)?;
        let periods = periods.as_primitive::<Int64Type>();
        let modes = datafusion::arrow::compute::cast(&values[6], &DataType::Utf8)?;
        let modes = modes.as_string::<i32>();
        let cumulative = values[7].as_boolean();
        let dates = |list: &datafusion::arrow::array::ListArray, row: usize| -> Vec<i32> {
            if list.is_null(row) {
                return Vec::new();
            }
            let mut days: Vec<i32> = list
                .value(row)
                .as_primitive::<Date32Type>()
                .iter()
                .flatten()
                .collect();
            days.sort_unstable();
            days.dedup();
            days
        };
        for row in 0..starts.len() {
            if period_names.is_valid(row) {
                let period = parse_period(period_names.value(row))?;
                set_bound(NAME, &mut self.period, Some(period), "period")?;
            }
            if periods.is_valid(row) {
                self.set_periods(check_periods(periods.value(row))?)?;
            }
            if modes.is_valid(row) {
                let text = modes.value(row);
                let mode = Mode::parse(text).ok_or_else(|| {
                    exec_datafusion_err!(
                        "{NAME}: mode '{text}' is not valid: use 'first_time' or 'recurring'"
                    )
                })?;
                set_bound(NAME, &mut self.mode, Some(mode), "mode")?;
            }
            if cumulative.is_valid(row) {
                set_bound(
                    NAME,
                    &mut self.cumulative,
                    Some(cumulative.value(row)),
                    "cumulative",
                )?;
            }
            let bounds = [
                (&mut self.first_period, 8, "first_period"),
                (&mut self.end_day, 9, "end_day"),
                (&mut self.complete_until, 10, "complete_until"),
            ];
            for (bound, index, name) in bounds {
                set_bound(NAME, bound, date_at(&values[index], row), name)?;
            }
            self.last_period = later(self.last_period, date_at(&values[2], row));
            self.last_day = later(self.last_day, date_at(&values[3], row));
            self.add_actor(&dates(starts, row), &dates(returns, row))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let cohorts: Vec<ScalarValue> = self
            .counts
            .keys()
            .map(|cohort| ScalarValue::Int32(Some(*cohort)))
            .collect();
        let counts: Vec<ScalarValue> = self
            .counts
            .values()
            .flatten()
            .map(|count| ScalarValue::Int64(Some(*count)))
            .collect();
        Ok(vec![
            ScalarValue::Utf8(self.period.map(|period| period.name().to_string())),
            ScalarValue::Int32(self.periods),
            ScalarValue::List(ScalarValue::new_list_nullable(&cohorts, &DataType::Int32)),
            ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::Int64)),
            ScalarValue::Int32(self.last_period),
            ScalarValue::Int32(self.last_day),
            ScalarValue::Int32(self.end_day),
            ScalarValue::Int32(self.complete_until),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let period_names = states[0].as_string::<i32>();
        for row in 0..period_names.len() {
            if period_names.is_valid(row) {
                let period = parse_period(period_names.value(row))?;
                set_bound(NAME, &mut self.period, Some(period), "period")?;
            }
            if let Some(periods) = int32_at(&states[1], row) {
                self.set_periods(periods)?;
            }
            set_bound(
                NAME,
                &mut self.end_day,
                int32_at(&states[6], row),
                "end_day",
            )?;
            set_bound(
                NAME,
                &mut self.complete_until,
                int32_at(&states[7], row),
                "complete_until",
            )?;
            self.last_period = later(self.last_period, int32_at(&states[4], row));
            self.last_day = later(self.last_day, int32_at(&states[5], row));
            if states[2].is_null(row) || states[2].as_list::<i32>().value(row).is_empty() {
                continue;
            }
            let width = self.periods()? as usize;
            let cohorts = states[2].as_list::<i32>().value(row);
            let counts = states[3].as_list::<i32>().value(row);
            let counts = counts.as_primitive::<Int64Type>().values();
            for (index, cohort) in cohorts
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .enumerate()
            {
                self.add_counts(*cohort, &counts[index * width..(index + 1) * width])?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // A period is complete when it had ended by the last event and by `complete_until`: it
        // has ended at an instant whose local date is on or after the next period's start.
        let complete_by = match (self.last_day, self.complete_until) {
            (Some(last), Some(until)) => Some(last.min(until)),
            (last, until) => last.or(until),
        };
        let mut rows = CohortRows::default();
        for (&cohort, row) in &self.counts {
            let mut start = cohort;
            for number in 0..row.len() {
                // The triangle: cells after the data or at or after until are not reported.
                if self.last_period.is_some_and(|last| start > last)
                    || self.end_day.is_some_and(|end| start >= end)
                {
                    break;
                }
                let end = next_period_start(self.period()?, start)?;
                rows.push(
                    cohort,
                    row,
                    number,
                    complete_by.is_some_and(|day| end <= day),
                );
                start = end;
            }
        }
        rows.finish()
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self
                .counts
                .values()
                .map(|row| size_of::<(i32, Vec<i64>)>() + row.capacity() * size_of::<i64>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    // Days since 1970-01-01.
    const MON_2024_01_01: i32 = 19_723;
    const JAN_31_2024: i32 = 19_753;
    const MAR_01_2024: i32 = 19_783;
    const JAN_01_2025: i32 = 20_089;

    /// Week `n` after the week of 2024-01-01.
    fn week(n: i32) -> i32 {
        MON_2024_01_01 + 7 * n
    }

    fn weekly(mode: Mode, cumulative: bool, periods: i32) -> CohortAccumulator {
        CohortAccumulator {
            period: Some(Period::Week),
            periods: Some(periods),
            mode: Some(mode),
            cumulative: Some(cumulative),
            ..Default::default()
        }
    }

    #[test]
    fn periods_between_counts_calendar_periods() {
        assert_eq!(periods_between(Period::Week, week(1), week(4)).unwrap(), 3);
        assert_eq!(
            periods_between(Period::Month, MON_2024_01_01, MAR_01_2024).unwrap(),
            2
        );
        assert_eq!(
            periods_between(Period::Quarter, MON_2024_01_01, JAN_01_2025).unwrap(),
            4
        );
        assert_eq!(
            periods_between(Period::Day, JAN_31_2024, MAR_01_2024).unwrap(),
            30
        );
    }

    #[test]
    fn first_time_makes_one_cohort_and_recurring_one_per_start_period() {
        let mut first_time = weekly(Mode::FirstTime, false, 4);
        first_time
            .add_actor(&[week(0), week(2)], &[week(1), week(3)])
            .unwrap();
        assert_eq!(first_time.counts[&week(0)], vec![1, 1, 0, 1]);
        assert_eq!(first_time.counts.len(), 1);

        let mut recurring = weekly(Mode::Recurring, false, 4);
        recurring
            .add_actor(&[week(0), week(2)], &[week(1), week(3)])
            .unwrap();
        assert_eq!(recurring.counts[&week(0)], vec![1, 1, 0, 1]);
        assert_eq!(recurring.counts[&week(2)], vec![1, 1, 0, 0]);
    }

    #[test]
    fn cumulative_counts_every_period_up_to_the_last_return_before_end_day() {
        let mut accumulator = weekly(Mode::FirstTime, true, 4);
        accumulator.add_actor(&[week(0)], &[week(2)]).unwrap();
        assert_eq!(accumulator.counts[&week(0)], vec![1, 1, 1, 0]);
        // A return past the last period number still counts for all of them.
        accumulator.add_actor(&[week(0)], &[week(9)]).unwrap();
        assert_eq!(accumulator.counts[&week(0)], vec![2, 2, 2, 1]);
        // A return at or after end_day does not count.
        accumulator.end_day = Some(week(3));
        accumulator
            .add_actor(&[week(0)], &[week(1), week(3)])
            .unwrap();
        assert_eq!(accumulator.counts[&week(0)], vec![3, 3, 2, 1]);
    }

    #[test]
    fn a_first_start_before_first_period_is_not_a_cohort() {
        let mut accumulator = weekly(Mode::FirstTime, false, 2);
        accumulator.first_period = Some(week(1));
        accumulator
            .add_actor(&[week(0), week(1)], &[week(1)])
            .unwrap();
        assert!(accumulator.counts.is_empty());
    }

    fn evaluated(accumulator: &mut CohortAccumulator) -> Vec<(i32, i64, i32, i64, bool)> {
        cells(accumulator.evaluate().unwrap())
    }

    #[test]
    fn the_triangle_stops_at_the_last_period_and_completeness_at_the_last_day() {
        let mut accumulator = weekly(Mode::FirstTime, false, 3);
        accumulator.add_actor(&[week(0)], &[week(1)]).unwrap();
        accumulator.add_actor(&[week(1)], &[]).unwrap();
        accumulator.last_period = Some(week(1));
        // The last event on the Tuesday of week 1: week 0 had ended, week 1 had not.
        accumulator.last_day = Some(week(1) + 1);
        assert_eq!(
            evaluated(&mut accumulator),
            vec![
                (week(0), 1, 0, 1, true),
                (week(0), 1, 1, 1, false),
                (week(1), 1, 0, 1, false),
            ]
        );
    }

    #[test]
    fn partial_states_merge_to_the_single_pass_result() {
        let actors: [(&[i32], &[i32]); 5] = [
            (&[week(0)], &[week(1), week(2)]),
            (&[week(0), week(3)], &[week(4)]),
            (&[week(1)], &[week(3)]),
            (&[week(2)], &[]),
            (&[week(0)], &[week(2)]),
        ];
        let bounded = || {
            let mut accumulator = weekly(Mode::Recurring, false, 4);
            accumulator.last_period = Some(week(4));
            accumulator.last_day = Some(week(4) + 3);
            accumulator.end_day = Some(week(5));
            accumulator
        };
        let mut single = bounded();
        for (starts, returns) in actors {
            single.add_actor(starts, returns).unwrap();
        }
        // The final step sees only states, never the constant arguments.
        let mut merged = CohortAccumulator::default();
        for part in [&actors[..2], &actors[2..4], &actors[4..]] {
            let mut partial = bounded();
            for (starts, returns) in part {
                partial.add_actor(starts, returns).unwrap();
            }
            merge_state(&mut partial, &mut merged);
        }
        assert_eq!(merged.evaluate().unwrap(), single.evaluate().unwrap());
        // Week 0: actors 1, 2 and 5; actor 1 back in weeks 1 and 2, actor 5 in week 2; actor 2
        // back in week 4, past period number 3.
        assert_eq!(merged.counts[&week(0)], vec![3, 1, 2, 0]);
        assert_eq!(merged.counts[&week(3)], vec![1, 1, 0, 0]);
    }
}
