//! `lifecycle_counts(periods, last_day, period, first_period, end_day, complete_until)`: the fold
//! step of `lifecycle`.
//!
//! Its input is one row per actor holding the start DATEs of the calendar periods the actor was
//! active in, over all of its history, and the local date of its last event. Visiting an actor's
//! periods in order classifies each one (PostHog's lifecycle): the first is `new`; one right after
//! an active period is `returning`; one after a gap is `resurrecting`, and the period right after
//! the previous active one, where the gap starts, is `dormant`; so is the period after the last
//! active one. Each classification adds one to a counter keyed by the period's start date, so the
//! work is linear in the actor's active periods and the state holds only periods where something
//! happened; zero-filling the report's periods is left to `evaluate`.
//!
//! The state (the sparse counters, the periods and last day seen, and the report bounds) merges by
//! adding counters, so partial folds from any partition or executor combine in any order.

use std::collections::HashMap;
use std::mem::size_of_val;
use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Int64Array, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, Fields, Int32Type, Int64Type,
};
use datafusion::common::{ScalarValue, exec_datafusion_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{
    Expected, check_arguments, date_at, int32_at, list_of, report, set_bound, state_field, widen,
};

use crate::period::Period;

const NAME: &str = "lifecycle_counts";

/// The statuses, in the order they are reported.
pub(crate) const STATUSES: [&str; 4] = ["new", "returning", "resurrecting", "dormant"];
const NEW: usize = 0;
const RETURNING: usize = 1;
const RESURRECTING: usize = 2;
const DORMANT: usize = 3;

/// Days between 0001-01-01 (chrono's day 1 of the common era) and 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

/// The start date of the period after the one that starts on `start` (days since 1970-01-01);
/// for an hour, the number of the next hour ([`HourKeys`](crate::time_arguments::HourKeys)).
///
/// `start` must be the first day of a `period`: then the next one is a fixed number of days or
/// calendar months later, whatever the time zone or the first day of the week.
pub(crate) fn next_period_start(period: Period, start: i32) -> Result<i32> {
    let months = match period {
        Period::Hour | Period::Day => return Ok(start + 1),
        Period::Week => return Ok(start + 7),
        Period::Month => 1,
        Period::Quarter => 3,
        Period::Year => 12,
    };
    start
        .checked_add(UNIX_EPOCH_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .and_then(|date| date.checked_add_months(Months::new(months)))
        .map(|date| date.num_days_from_ce() - UNIX_EPOCH_FROM_CE)
        .ok_or_else(|| exec_datafusion_err!("{NAME}: the period after day {start} is out of range"))
}

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The fold step of `lifecycle`: given one row per actor with the start DATEs of \
        the periods the actor was active in (all of its history) and the local date of its last \
        event, returns one list with, for every period of the report and each status in the \
        order new, returning, resurrecting, dormant, the number of actors with that status (dormant \
        as a negative count) and whether the period had ended by the last event (and by \
        `complete_until`). An actor is new in its first active period, returning when also active \
        in the previous period, resurrecting when active after a gap, and dormant in the period \
        after an active one without activity. The report runs from `first_period` (default: the \
        first active period) up to the periods starting before `end_day` (default: the last \
        active period). `lifecycle` plans it for you.",
    syntax_example = "lifecycle_counts(periods, last_day, period, first_period, end_day, complete_until)",
    sql_example = r#"```sql
> SELECT unnest(lifecycle_counts(periods, last_day, 'week', NULL, NULL, NULL)) FROM (
    SELECT user_id, array_agg(DISTINCT period_start(ts, 'week')) AS periods,
           max(CAST(ts AS DATE)) AS last_day
    FROM events GROUP BY user_id);
```"#,
    argument(
        name = "periods",
        description = "LIST<DATE>: the first days of one actor's active periods."
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
        name = "first_period",
        description = "DATE: the first day of the first period to report, or NULL."
    ),
    argument(
        name = "end_day",
        description = "DATE: periods starting on or after this day are not reported; or NULL."
    ),
    argument(
        name = "complete_until",
        description = "DATE: a period ending after this local date is incomplete, whatever the \
            last event; or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LifecycleCounts {
    signature: Signature,
}

impl LifecycleCounts {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(6, Volatility::Immutable),
        }
    }
}

/// The fields of one reported (period, status).
pub(crate) fn row_fields() -> Fields {
    Fields::from(vec![
        Field::new("period", DataType::Date32, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("actors", DataType::Int64, false),
        Field::new("period_complete", DataType::Boolean, false),
    ])
}

impl AggregateUDFImpl for LifecycleCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [
            ("periods", DateList),
            ("last_day", Date),
            ("period", String),
            ("first_period", Date),
            ("end_day", Date),
            ("complete_until", Date),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(row_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(LifecycleAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, data_type| state_field(&args, name, data_type);
        Ok(vec![
            field("period", DataType::Utf8),
            field("starts", list_of(DataType::Int32)),
            field("new", list_of(DataType::Int64)),
            field("returning", list_of(DataType::Int64)),
            field("resurrecting", list_of(DataType::Int64)),
            field("dormant", list_of(DataType::Int64)),
            field("first_seen", DataType::Int32),
            field("last_seen", DataType::Int32),
            field("last_day", DataType::Int32),
            field("first_period", DataType::Int32),
            field("end_day", DataType::Int32),
            field("complete_until", DataType::Int32),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Counters by period start, and what was seen.
#[derive(Debug, Default)]
pub(crate) struct LifecycleAccumulator {
    period: Option<Period>,
    /// New, returning, resurrecting and dormant actors of each period where any is not zero.
    counts: HashMap<i32, [i64; 4]>,
    /// First and last active period seen.
    seen: Option<(i32, i32)>,
    /// The latest local date of an event.
    last_day: Option<i32>,
    first_period: Option<i32>,
    end_day: Option<i32>,
    complete_until: Option<i32>,
}

pub(crate) fn parse_period(text: &str) -> Result<Period> {
    text.parse()
        .map_err(|error| exec_datafusion_err!("{NAME}: argument period: {error}"))
}

impl LifecycleAccumulator {
    fn period(&self) -> Result<Period> {
        self.period
            .ok_or_else(|| exec_datafusion_err!("{NAME}: period must not be NULL"))
    }

    fn add(&mut self, start: i32, status: usize, count: i64) {
        self.counts.entry(start).or_default()[status] += count;
    }

    /// Counters for a report by `period` from `first_period` to before `end_day` (by default,
    /// the active periods seen), complete by `complete_until`, the last event on `last_day`.
    pub(crate) fn new(
        period: Period,
        last_day: Option<i32>,
        first_period: Option<i32>,
        end_day: Option<i32>,
        complete_until: Option<i32>,
    ) -> Self {
        Self {
            period: Some(period),
            last_day,
            first_period,
            end_day,
            complete_until,
            ..Default::default()
        }
    }

    /// Adds an actor's active period starting on `start`, given the start of its previous active
    /// period: new, returning, or resurrecting after a dormant period. Periods of one actor must
    /// come in order; [`add_last_period`](Self::add_last_period) ends them.
    pub(crate) fn add_active_period(&mut self, start: i32, previous: Option<i32>) -> Result<()> {
        self.seen = widen(self.seen, start, start);
        match previous {
            None => self.add(start, NEW, 1),
            Some(before) => {
                let after = next_period_start(self.period()?, before)?;
                if after == start {
                    self.add(start, RETURNING, 1);
                } else {
                    self.add(start, RESURRECTING, 1);
                    self.add(after, DORMANT, -1);
                }
            }
        }
        Ok(())
    }

    /// Ends an actor's active periods: it is dormant in the period after its last one.
    pub(crate) fn add_last_period(&mut self, last: i32) -> Result<()> {
        self.add(next_period_start(self.period()?, last)?, DORMANT, -1);
        Ok(())
    }

    /// Adds one actor's active periods (any order, duplicates allowed).
    pub(crate) fn add_actor(&mut self, starts: &mut Vec<i32>) -> Result<()> {
        starts.sort_unstable();
        starts.dedup();
        let mut previous: Option<i32> = None;
        for &start in starts.iter() {
            self.add_active_period(start, previous)?;
            previous = Some(start);
        }
        if let Some(last) = previous {
            self.add_last_period(last)?;
        }
        Ok(())
    }

    /// The report's periods: their start dates, in order.
    fn report_periods(&self) -> Result<Vec<i32>> {
        let Some((first_seen, last_seen)) = self.seen else {
            return Ok(Vec::new());
        };
        let period = self.period()?;
        let first = self.first_period.unwrap_or(first_seen);
        let end = match self.end_day {
            Some(end) => end,
            None => next_period_start(period, last_seen)?,
        };
        let mut periods = Vec::new();
        let mut start = first;
        while start < end {
            periods.push(start);
            start = next_period_start(period, start)?;
        }
        Ok(periods)
    }
}

impl Accumulator for LifecycleAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let lists = values[0].as_list::<i32>();
        let period_names = datafusion::arrow::compute::cast(&values[2], &DataType::Utf8)?;
        let period_names = period_names.as_string::<i32>();
        let mut starts = Vec::new();
        for row in 0..lists.len() {
            if period_names.is_valid(row) {
                let period = parse_period(period_names.value(row))?;
                set_bound(NAME, &mut self.period, Some(period), "period")?;
            }
            set_bound(
                NAME,
                &mut self.first_period,
                date_at(&values[3], row),
                "first_period",
            )?;
            set_bound(NAME, &mut self.end_day, date_at(&values[4], row), "end_day")?;
            set_bound(
                NAME,
                &mut self.complete_until,
                date_at(&values[5], row),
                "complete_until",
            )?;
            if let Some(day) = date_at(&values[1], row) {
                self.last_day = Some(self.last_day.map_or(day, |last| last.max(day)));
            }
            if lists.is_null(row) {
                continue;
            }
            let actor = lists.value(row);
            starts.clear();
            starts.extend(actor.as_primitive::<Date32Type>().iter().flatten());
            self.add_actor(&mut starts)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut starts: Vec<i32> = self.counts.keys().copied().collect();
        starts.sort_unstable();
        let int64_list = |status: usize| {
            let values: Vec<ScalarValue> = starts
                .iter()
                .map(|start| ScalarValue::Int64(Some(self.counts[start][status])))
                .collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int64))
        };
        let start_values: Vec<ScalarValue> = starts
            .iter()
            .map(|start| ScalarValue::Int32(Some(*start)))
            .collect();
        Ok(vec![
            ScalarValue::Utf8(self.period.map(|period| period.name().to_string())),
            ScalarValue::List(ScalarValue::new_list_nullable(
                &start_values,
                &DataType::Int32,
            )),
            int64_list(NEW),
            int64_list(RETURNING),
            int64_list(RESURRECTING),
            int64_list(DORMANT),
            ScalarValue::Int32(self.seen.map(|(low, _)| low)),
            ScalarValue::Int32(self.seen.map(|(_, high)| high)),
            ScalarValue::Int32(self.last_day),
            ScalarValue::Int32(self.first_period),
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
            set_bound(
                NAME,
                &mut self.first_period,
                int32_at(&states[9], row),
                "first_period",
            )?;
            set_bound(
                NAME,
                &mut self.end_day,
                int32_at(&states[10], row),
                "end_day",
            )?;
            set_bound(
                NAME,
                &mut self.complete_until,
                int32_at(&states[11], row),
                "complete_until",
            )?;
            if let Some(day) = int32_at(&states[8], row) {
                self.last_day = Some(self.last_day.map_or(day, |last| last.max(day)));
            }
            if let (Some(low), Some(high)) = (int32_at(&states[6], row), int32_at(&states[7], row))
            {
                self.seen = widen(self.seen, low, high);
            }
            if states[1].is_null(row) {
                continue;
            }
            let starts = states[1].as_list::<i32>().value(row);
            let starts = starts.as_primitive::<Int32Type>();
            let counts: Vec<ArrayRef> = (2..6)
                .map(|i| states[i].as_list::<i32>().value(row))
                .collect();
            for (index, start) in starts.values().iter().enumerate() {
                let entry = self.counts.entry(*start).or_default();
                for (status, column) in counts.iter().enumerate() {
                    entry[status] += column.as_primitive::<Int64Type>().value(index);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let periods = self.report_periods()?;
        // A period is complete when it had ended by the last event and by `complete_until`: it
        // ends where the next one starts, and it has ended at an instant whose local date is on
        // or after that start.
        let complete_by = match (self.last_day, self.complete_until) {
            (Some(last), Some(until)) => Some(last.min(until)),
            (last, until) => last.or(until),
        };
        let rows = periods.len() * STATUSES.len();
        let mut period_column = Vec::with_capacity(rows);
        let mut statuses = Vec::with_capacity(rows);
        let mut actors = Vec::with_capacity(rows);
        let mut complete = Vec::with_capacity(rows);
        for &start in &periods {
            let end = next_period_start(self.period()?, start)?;
            let counts = self.counts.get(&start).copied().unwrap_or_default();
            for (status, name) in STATUSES.iter().enumerate() {
                period_column.push(start);
                statuses.push(*name);
                actors.push(counts[status]);
                complete.push(complete_by.is_some_and(|day| end <= day));
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(period_column)),
            Arc::new(StringArray::from(statuses)),
            Arc::new(Int64Array::from(actors)),
            Arc::new(BooleanArray::from(complete)),
        ];
        let rows = StructArray::try_new(row_fields(), columns, None)?;
        report(rows)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.counts.capacity() * size_of::<(i32, [i64; 4])>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    // Days since 1970-01-01.
    const MON_2024_01_01: i32 = 19_723;
    const JAN_31_2024: i32 = 19_753;
    const FEB_01_2024: i32 = 19_754;
    const MAR_01_2024: i32 = 19_783; // 2024 is a leap year: February has 29 days
    const APR_01_2024: i32 = 19_814;
    const JAN_01_2025: i32 = 20_089;

    fn weekly() -> LifecycleAccumulator {
        LifecycleAccumulator {
            period: Some(Period::Week),
            ..Default::default()
        }
    }

    /// Week `n` after the week of 2024-01-01.
    fn week(n: i32) -> i32 {
        MON_2024_01_01 + 7 * n
    }

    fn counts(accumulator: &LifecycleAccumulator, start: i32) -> [i64; 4] {
        accumulator.counts.get(&start).copied().unwrap_or_default()
    }

    #[test]
    fn next_periods_are_calendar_periods() {
        assert_eq!(
            next_period_start(Period::Day, JAN_31_2024).unwrap(),
            FEB_01_2024
        );
        assert_eq!(next_period_start(Period::Week, week(0)).unwrap(), week(1));
        assert_eq!(
            next_period_start(Period::Month, FEB_01_2024).unwrap(),
            MAR_01_2024
        );
        assert_eq!(
            next_period_start(Period::Quarter, MON_2024_01_01).unwrap(),
            APR_01_2024
        );
        assert_eq!(
            next_period_start(Period::Year, MON_2024_01_01).unwrap(),
            JAN_01_2025
        );
        // Hours go by number.
        assert_eq!(next_period_start(Period::Hour, 480_000).unwrap(), 480_001);
    }

    #[test]
    fn an_actor_is_new_then_returning_then_dormant_then_resurrecting() {
        // Active in weeks 0, 1 and 4: new, returning, dormant in week 2, resurrecting in week 4,
        // dormant again in week 5.
        let mut accumulator = weekly();
        accumulator
            .add_actor(&mut vec![week(4), week(0), week(1), week(1)])
            .unwrap();
        assert_eq!(counts(&accumulator, week(0)), [1, 0, 0, 0]);
        assert_eq!(counts(&accumulator, week(1)), [0, 1, 0, 0]);
        assert_eq!(counts(&accumulator, week(2)), [0, 0, 0, -1]);
        assert_eq!(counts(&accumulator, week(3)), [0, 0, 0, 0]);
        assert_eq!(counts(&accumulator, week(4)), [0, 0, 1, 0]);
        assert_eq!(counts(&accumulator, week(5)), [0, 0, 0, -1]);
        assert_eq!(accumulator.seen, Some((week(0), week(4))));
    }

    #[test]
    fn the_default_report_runs_from_the_first_to_the_last_active_period() {
        let mut accumulator = weekly();
        accumulator.add_actor(&mut vec![week(2), week(0)]).unwrap();
        assert_eq!(
            accumulator.report_periods().unwrap(),
            vec![week(0), week(1), week(2)]
        );
    }

    #[test]
    fn bounds_report_periods_starting_before_the_end_day() {
        let mut accumulator = weekly();
        accumulator.first_period = Some(week(1));
        accumulator.end_day = Some(week(3) + 1);
        accumulator.add_actor(&mut vec![week(0)]).unwrap();
        assert_eq!(
            accumulator.report_periods().unwrap(),
            vec![week(1), week(2), week(3)]
        );
    }

    #[test]
    fn months_follow_each_other_whatever_their_length() {
        let mut accumulator = LifecycleAccumulator {
            period: Some(Period::Month),
            ..Default::default()
        };
        accumulator
            .add_actor(&mut vec![FEB_01_2024, MAR_01_2024])
            .unwrap();
        assert_eq!(counts(&accumulator, MAR_01_2024), [0, 1, 0, 0]);
        assert_eq!(counts(&accumulator, APR_01_2024), [0, 0, 0, -1]);
    }

    #[test]
    fn partial_states_merge_to_the_single_pass_result() {
        let actors: [&[i32]; 5] = [
            &[week(0), week(1)],
            &[week(3)],
            &[week(0), week(5), week(6)],
            &[week(2), week(4)],
            &[week(1)],
        ];
        let bounded = || {
            let mut accumulator = weekly();
            accumulator.last_day = Some(week(6) + 2);
            accumulator.end_day = Some(week(7));
            accumulator
        };
        let mut single = bounded();
        for days in actors {
            single.add_actor(&mut days.to_vec()).unwrap();
        }
        let mut merged = LifecycleAccumulator::default();
        for part in [&actors[..2], &actors[2..4], &actors[4..]] {
            let mut partial = bounded();
            for days in part {
                partial.add_actor(&mut days.to_vec()).unwrap();
            }
            merge_state(&mut partial, &mut merged);
        }
        assert_eq!(merged.evaluate().unwrap(), single.evaluate().unwrap());
        // Week 2: actor 4 new; actors 1 and 5 dormant after week 1. Week 3: actor 2 new, actor
        // 4 dormant.
        assert_eq!(counts(&merged, week(2)), [1, 0, 0, -2]);
        assert_eq!(counts(&merged, week(3)), [1, 0, 0, -1]);
    }

    #[test]
    fn a_period_is_complete_when_it_ended_by_the_last_event_and_by_complete_until() {
        let mut accumulator = weekly();
        accumulator.add_actor(&mut vec![week(0), week(1)]).unwrap();
        // The last event on the Monday of week 2: weeks 0 and 1 had ended.
        accumulator.last_day = Some(week(2));
        accumulator.end_day = Some(week(3));
        let complete = |accumulator: &mut LifecycleAccumulator| {
            let ScalarValue::List(list) = accumulator.evaluate().unwrap() else {
                panic!("a list");
            };
            let rows = list.value(0);
            let rows = rows.as_struct();
            let column = rows.column(3).as_boolean();
            // One value per period: each period's four rows agree.
            (0..column.len())
                .step_by(STATUSES.len())
                .map(|row| column.value(row))
                .collect::<Vec<_>>()
        };
        assert_eq!(complete(&mut accumulator), vec![true, true, false]);
        accumulator.complete_until = Some(week(1) + 3);
        assert_eq!(complete(&mut accumulator), vec![true, false, false]);
    }
}
