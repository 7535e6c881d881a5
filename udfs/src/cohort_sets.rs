//! `cohort_sets(actor, period_start, start_period, return_period, day, period, periods, mode,
//! cumulative, first_period, end_day, complete_until)`: `cohort_retention` in calendar periods in
//! one aggregate over the events, for integer actors.
//!
//! As `active_user_sets` does for `active_users`: instead of `GROUP BY actor` and the
//! `cohort_counts` fold, the actors with a start event and those with a return event go into one
//! [`ActorSets`] each, by period. Visiting the start periods in order finds each actor's cohorts
//! (its first start period, or all of them); an actor is retained in period number k when it is in
//! the return set k periods later, or, cumulatively, when its last return period before `end_day`
//! is k or more periods later. The counters and the report are `cohort_counts`'s.

use std::mem::size_of_val;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast, max};
use datafusion::arrow::datatypes::{DataType, Date32Type, FieldRef, Int32Type, Int64Type};
use datafusion::common::{ScalarValue, exec_datafusion_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::actor_sets::{ActorSet, ActorSets};
use crate::cohort_counts::{
    CohortAccumulator, Mode, check_periods, count_actor, later, parse_period, periods_between,
    row_fields,
};
use crate::fold::{
    Expected, check_arguments, date_at, first_string, int32_at, list_of, set_bound, state_field,
};
use crate::lifecycle_counts::next_period_start;

const NAME: &str = "cohort_sets";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "`cohort_retention` in calendar periods, in one aggregate over events whose \
        actor is an integer: for every cohort and period number from 0 to `periods - 1`, the \
        cohort's size, the actors retained, the retention rate and whether the period had ended \
        by the last event (and by `complete_until`), as one list, with the cells of \
        `cohort_counts`. `cohort_retention` plans it for you.",
    syntax_example = "cohort_sets(actor, period_start, start_period, return_period, day, period, \
        periods, mode, cumulative, first_period, end_day, complete_until)",
    sql_example = r#"```sql
> SELECT unnest(cohort_sets(user_id, period_start(ts, 'week'), period_start(ts, 'week'), NULL,
    period_start(ts, 'day'), 'week', 8, 'first_time', false, NULL, NULL, NULL)) FROM events;
```"#,
    argument(name = "actor", description = "An integer: the actor of the event."),
    argument(
        name = "period_start",
        description = "DATE: the first day of the event's period."
    ),
    argument(
        name = "start_period",
        description = "DATE: the first day of the event's period when it is a start event, else \
            NULL."
    ),
    argument(
        name = "return_period",
        description = "DATE: the first day of the event's period when it is a return event, else \
            NULL; or the constant NULL when every start event is a return event and back."
    ),
    argument(name = "day", description = "DATE: the local day of the event."),
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
        description = "A constant DATE: the first day of the first cohort to report, or NULL."
    ),
    argument(
        name = "end_day",
        description = "A constant DATE: cohorts and cells starting on or after this day are not \
            reported, and returns in them do not count; or NULL."
    ),
    argument(
        name = "complete_until",
        description = "A constant DATE: a period ending after this local date is incomplete, \
            whatever the last event; or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CohortSets {
    signature: Signature,
}

impl CohortSets {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(12, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for CohortSets {
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
            ("start_period", Date),
            ("return_period", Date),
            ("day", Date),
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
        Ok(Box::new(CohortSetsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields = Vec::new();
        for sets in ["starts", "returns"] {
            fields.extend(
                ActorSets::state_types()
                    .into_iter()
                    .map(|(name, data_type)| {
                        state_field(&args, &format!("{sets}_{name}"), data_type)
                    }),
            );
        }
        fields.push(state_field(&args, "returns_are_starts", DataType::Boolean));
        fields.extend(INT32_STATE.map(|name| state_field(&args, name, DataType::Int32)));
        fields.extend(["period", "mode"].map(|name| state_field(&args, name, DataType::Utf8)));
        fields.push(state_field(&args, "cumulative", DataType::Boolean));
        Ok(fields)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The INT32 state fields after the sets, in order.
const INT32_STATE: [&str; 6] = [
    "periods",
    "last_period",
    "last_day",
    "first_period",
    "end_day",
    "complete_until",
];

#[derive(Debug, Default)]
struct CohortSetsAccumulator {
    starts: ActorSets,
    returns: ActorSets,
    /// Whether every start event is a return event and back: then `returns` stays empty.
    returns_are_starts: Option<bool>,
    /// The settings and bounds of the report; its counters stay empty until `evaluate`.
    report: CohortAccumulator,
}

impl CohortSetsAccumulator {
    fn set_settings(
        &mut self,
        period: Option<String>,
        mode: Option<String>,
        cumulative: Option<bool>,
        periods: Option<i32>,
    ) -> Result<()> {
        let report = &mut self.report;
        if let Some(period) = period {
            set_bound(
                NAME,
                &mut report.period,
                Some(parse_period(&period)?),
                "period",
            )?;
        }
        if let Some(text) = mode {
            let mode = Mode::parse(&text).ok_or_else(|| {
                exec_datafusion_err!(
                    "{NAME}: mode '{text}' is not valid: use 'first_time' or 'recurring'"
                )
            })?;
            set_bound(NAME, &mut report.mode, Some(mode), "mode")?;
        }
        set_bound(NAME, &mut report.cumulative, cumulative, "cumulative")?;
        set_bound(NAME, &mut report.periods, periods, "periods")
    }

    fn set_bounds(&mut self, bounds: [Option<i32>; 3]) -> Result<()> {
        let report = &mut self.report;
        let [first_period, end_day, complete_until] = bounds;
        set_bound(NAME, &mut report.first_period, first_period, "first_period")?;
        set_bound(NAME, &mut report.end_day, end_day, "end_day")?;
        set_bound(
            NAME,
            &mut report.complete_until,
            complete_until,
            "complete_until",
        )
    }

    fn see_last(&mut self, last_period: Option<i32>, last_day: Option<i32>) {
        self.report.last_period = later(self.report.last_period, last_period);
        self.report.last_day = later(self.report.last_day, last_day);
    }
}

fn setting<T>(value: Option<T>, name: &str) -> Result<T> {
    value.ok_or_else(|| exec_datafusion_err!("{NAME}: {name} must not be NULL"))
}

impl Accumulator for CohortSetsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values[0].is_empty() {
            return Ok(());
        }
        // The settings and bounds are constants: one row of each batch says what they are.
        let periods = cast(&values[6], &DataType::Int64)?;
        let periods = periods.as_primitive::<Int64Type>();
        let periods = match periods.is_valid(0) {
            true => Some(check_periods(periods.value(0))?),
            false => None,
        };
        let cumulative = values[8].as_boolean();
        self.set_settings(
            first_string(&values[5])?,
            first_string(&values[7])?,
            cumulative.is_valid(0).then(|| cumulative.value(0)),
            periods,
        )?;
        self.set_bounds([9, 10, 11].map(|index| date_at(&values[index], 0)))?;
        let returns_are_starts = values[3].data_type() == &DataType::Null;
        set_bound(
            NAME,
            &mut self.returns_are_starts,
            Some(returns_are_starts),
            "return_period",
        )?;
        self.see_last(
            max(values[1].as_primitive::<Date32Type>()),
            max(values[4].as_primitive::<Date32Type>()),
        );
        let actors = cast(&values[0], &DataType::Int64)?;
        let actors = actors.as_primitive::<Int64Type>();
        let starts = cast(&values[2], &DataType::Int32)?;
        self.starts
            .add_batch(actors, starts.as_primitive::<Int32Type>());
        if !returns_are_starts {
            let returns = cast(&values[3], &DataType::Int32)?;
            self.returns
                .add_batch(actors, returns.as_primitive::<Int32Type>());
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let report = &self.report;
        let mut state = Vec::from(self.starts.state());
        state.extend(self.returns.state());
        state.push(ScalarValue::Boolean(self.returns_are_starts));
        state.extend(
            [
                report.periods,
                report.last_period,
                report.last_day,
                report.first_period,
                report.end_day,
                report.complete_until,
            ]
            .map(ScalarValue::Int32),
        );
        state.push(ScalarValue::Utf8(
            report.period.map(|period| period.name().to_string()),
        ));
        state.push(ScalarValue::Utf8(report.mode.map(|mode| {
            match mode {
                Mode::FirstTime => "first_time",
                Mode::Recurring => "recurring",
            }
            .to_string()
        })));
        state.push(ScalarValue::Boolean(report.cumulative));
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let returns_are_starts = states[8].as_boolean();
        let periods = states[15].as_string::<i32>();
        let modes = states[16].as_string::<i32>();
        let cumulative = states[17].as_boolean();
        for row in 0..states[0].len() {
            let string = |array: &datafusion::arrow::array::StringArray| {
                array.is_valid(row).then(|| array.value(row).to_string())
            };
            self.set_settings(
                string(periods),
                string(modes),
                cumulative.is_valid(row).then(|| cumulative.value(row)),
                int32_at(&states[9], row),
            )?;
            self.set_bounds([12, 13, 14].map(|index| int32_at(&states[index], row)))?;
            self.see_last(int32_at(&states[10], row), int32_at(&states[11], row));
            if returns_are_starts.is_valid(row) {
                set_bound(
                    NAME,
                    &mut self.returns_are_starts,
                    Some(returns_are_starts.value(row)),
                    "return_period",
                )?;
            }
            self.starts.merge(&states[..4], row)?;
            self.returns.merge(&states[4..8], row)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        const NEVER: i32 = i32::MIN;
        let mut report = std::mem::take(&mut self.report);
        let Some(period) = report.period else {
            // No events: the settings were never given.
            return report.evaluate();
        };
        let periods = setting(report.periods, "periods")?;
        let mode = setting(report.mode, "mode")?;
        let cumulative = setting(report.cumulative, "cumulative")?;
        let (first_period, end_day) = (report.first_period, report.end_day);
        self.starts.compact();
        self.returns.compact();
        let returns = match self.returns_are_starts {
            Some(true) => &self.starts,
            _ => &self.returns,
        };
        let counted = |key: i32| end_day.is_none_or(|end| key < end);

        // Cumulatively, only each actor's last return period counts.
        let mut last_returns = returns.actor_map(NEVER);
        if cumulative {
            for (key, set) in returns.periods().take_while(|(key, _)| counted(*key)) {
                for actor in set.actors() {
                    *last_returns.entry(actor) = key;
                }
            }
        }
        let mut seen = self.starts.actor_map(false);
        let mut numbers = Vec::new();
        for (cohort, set) in self.starts.periods() {
            let reported = first_period.is_none_or(|first| cohort >= first) && counted(cohort);
            // The return sets of period numbers 1 to periods - 1, as far as they count.
            let mut later_sets: Vec<Option<ActorSet<'_>>> = Vec::new();
            if reported && !cumulative {
                let mut key = cohort;
                for _ in 1..periods {
                    key = next_period_start(period, key)?;
                    later_sets.push(if counted(key) { returns.set(key) } else { None });
                }
            }
            // The cohort's counters, added to the report once its actors are all counted.
            let mut row = vec![0; periods as usize];
            for actor in set.actors() {
                if mode == Mode::FirstTime {
                    let seen = seen.entry(actor);
                    if *seen {
                        continue;
                    }
                    *seen = true;
                }
                if !reported {
                    continue;
                }
                numbers.clear();
                if cumulative {
                    let last = last_returns.get(actor);
                    if last != NEVER && last > cohort {
                        numbers.push(periods_between(period, cohort, last)?);
                    }
                } else {
                    numbers.extend(later_sets.iter().enumerate().filter_map(|(index, set)| {
                        set.is_some_and(|set| set.contains(actor))
                            .then_some(index as i64 + 1)
                    }));
                }
                count_actor(&mut row, &numbers, cumulative);
            }
            if row[0] > 0 {
                report.add_counts(cohort, &row)?;
            }
        }
        report.evaluate()
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.starts.size() + self.returns.size()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Date32Array, Int64Array, StringArray};

    use super::*;
    use crate::period::Period;

    /// An event: actor, week number, whether a start, whether a return.
    type Event = (i64, i32, bool, bool);

    /// The report of both folds over the same events.
    fn both_reports(mode: Mode, cumulative: bool, events: &[Event]) {
        let week = |n: i32| 19_723 + 7 * n;
        let mode_name = match mode {
            Mode::FirstTime => "first_time",
            Mode::Recurring => "recurring",
        };
        let mut sets = CohortSetsAccumulator::default();
        for batch in events.chunks(4) {
            let rows = batch.len();
            let dates = |pick: &dyn Fn(&Event) -> Option<i32>| -> ArrayRef {
                Arc::new(Date32Array::from(
                    batch.iter().map(pick).collect::<Vec<_>>(),
                ))
            };
            sets.update_batch(&[
                Arc::new(Int64Array::from_iter_values(batch.iter().map(|e| e.0))),
                dates(&|e| Some(week(e.1))),
                dates(&|e| e.2.then(|| week(e.1))),
                dates(&|e| e.3.then(|| week(e.1))),
                dates(&|e| Some(week(e.1) + 2)),
                Arc::new(StringArray::from(vec!["week"; rows])),
                Arc::new(Int64Array::from(vec![4; rows])),
                Arc::new(StringArray::from(vec![mode_name; rows])),
                Arc::new(BooleanArray::from(vec![cumulative; rows])),
                Arc::new(Date32Array::from(vec![None; rows])),
                Arc::new(Date32Array::from(vec![Some(week(6)); rows])),
                Arc::new(Date32Array::from(vec![None; rows])),
            ])
            .unwrap();
        }
        let mut by_actor = CohortAccumulator {
            period: Some(Period::Week),
            periods: Some(4),
            mode: Some(mode),
            cumulative: Some(cumulative),
            last_period: events.iter().map(|e| week(e.1)).max(),
            last_day: events.iter().map(|e| week(e.1) + 2).max(),
            end_day: Some(week(6)),
            ..Default::default()
        };
        for actor in 1..=4 {
            let weeks = |pick: fn(&Event) -> bool| -> Vec<i32> {
                let mut weeks: Vec<i32> = events
                    .iter()
                    .filter(|e| e.0 == actor && pick(e))
                    .map(|e| week(e.1))
                    .collect();
                weeks.sort_unstable();
                weeks.dedup();
                weeks
            };
            by_actor
                .add_actor(&weeks(|e| e.2), &weeks(|e| e.3))
                .unwrap();
        }
        assert_eq!(
            sets.evaluate().unwrap(),
            by_actor.evaluate().unwrap(),
            "{mode_name}, cumulative {cumulative}"
        );
    }

    #[test]
    fn gives_the_report_of_the_per_actor_fold() {
        // Starts and returns apart, out of order, with a return before the first start, one past
        // the last period number and one at end_day (week 6).
        let events = [
            (1, 0, true, false),
            (1, 1, false, true),
            (2, 2, true, true),
            (1, 3, true, true),
            (3, 1, false, true),
            (3, 2, true, false),
            (3, 5, false, true),
            (2, 4, false, true),
            (4, 0, true, true),
            (4, 6, false, true),
            (4, 5, true, false),
            (2, 2, false, true),
        ];
        for mode in [Mode::FirstTime, Mode::Recurring] {
            for cumulative in [false, true] {
                both_reports(mode, cumulative, &events);
            }
        }
    }
}
