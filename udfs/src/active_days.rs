//! `active_days(day)`: the distinct days of a group, sorted, as a `LIST<DATE>`.
//!
//! The first step of the actor-over-time table functions (`active_users`, `lifecycle`,
//! `usage_frequency`) is `GROUP BY actor` collecting each actor's active days (or period starts).
//! DataFusion's `array_agg(DISTINCT ...)` keeps a set of `ScalarValue`s per group, which over a
//! million actors cost ten times DuckDB's whole query (29 s of 31 s for 30M events, measured with
//! `bench/run active_users`). This keeps a plain `Vec<i32>` per group, drops repeats of the last
//! day as rows arrive (events come in time order), and sorts and dedups once, at the end.

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Date32Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator,
    Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{list_of, state_field};

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The distinct days of a group, sorted, as a list: the first step of the \
        actor-over-time table functions (`GROUP BY actor` collecting each actor's active days). \
        NULL days are skipped; a group without days gives an empty list. Equal to \
        `array_agg(DISTINCT day ORDER BY day)` without NULLs, and many times faster over many \
        groups.",
    syntax_example = "active_days(day)",
    sql_example = r#"```sql
> SELECT user_id, active_days(CAST(ts AS DATE)) AS days FROM events GROUP BY user_id;
```"#,
    argument(name = "day", description = "DATE: a day the group was active.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActiveDays {
    signature: Signature,
}

impl ActiveDays {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Date32], Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for ActiveDays {
    fn name(&self) -> &str {
        "active_days"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of(DataType::Date32))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ActiveDaysAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![state_field(&args, "days", list_of(DataType::Date32))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ActiveDaysGroups::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// A call of `active_days`, for the table functions' plans.
pub(crate) fn active_days(day: Expr) -> Expr {
    AggregateUDF::from(ActiveDays::new()).call(vec![day])
}

/// Adds `day` to `days` unless it repeats the last one.
fn push_day(days: &mut Vec<i32>, day: i32) {
    if days.last() != Some(&day) {
        days.push(day);
    }
}

fn sorted_distinct(days: &mut Vec<i32>) {
    days.sort_unstable();
    days.dedup();
}

/// One list per group, each sorted and without repeats.
fn lists_array(groups: Vec<Vec<i32>>) -> ListArray {
    let lengths: Vec<usize> = groups.iter().map(Vec::len).collect();
    let days = Date32Array::from(groups.into_iter().flatten().collect::<Vec<_>>());
    ListArray::new(
        Arc::new(Field::new_list_field(DataType::Date32, true)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(days),
        None,
    )
}

/// The rows of `values` to read: not NULL, and passing the filter.
fn selected_days<'a>(
    values: &'a ArrayRef,
    opt_filter: Option<&'a BooleanArray>,
) -> impl Iterator<Item = (usize, i32)> + 'a {
    let days = values.as_primitive::<Date32Type>();
    (0..days.len()).filter_map(move |row| {
        let selected = days.is_valid(row)
            && opt_filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row));
        selected.then(|| (row, days.value(row)))
    })
}

/// Calls `add(row, day)` for every day of the list at each row of `lists`.
fn for_each_listed_day(lists: &ArrayRef, mut add: impl FnMut(usize, i32)) {
    let lists = lists.as_list::<i32>();
    let days = lists.values().as_primitive::<Date32Type>();
    for (row, window) in lists.offsets().windows(2).enumerate() {
        if lists.is_null(row) {
            continue;
        }
        for index in window[0] as usize..window[1] as usize {
            if days.is_valid(index) {
                add(row, days.value(index));
            }
        }
    }
}

#[derive(Debug, Default)]
struct ActiveDaysAccumulator {
    days: Vec<i32>,
}

impl Accumulator for ActiveDaysAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (_, day) in selected_days(&values[0], None) {
            push_day(&mut self.days, day);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_listed_day(&states[0], |_, day| push_day(&mut self.days, day));
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        sorted_distinct(&mut self.days);
        Ok(ScalarValue::List(Arc::new(lists_array(vec![
            self.days.clone(),
        ]))))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.days.capacity() * size_of::<i32>()
    }
}

/// The days of every group as one flat list of (group, day) pairs: a push is a write to one
/// vector, not to one of a million small ones, and the pairs are sorted into lists only at the end.
#[derive(Debug, Default)]
struct ActiveDaysGroups {
    pairs: Vec<(u32, i32)>,
    /// The last day added to each group: events arrive in time order, so an actor's later events
    /// of the same day are dropped here, before they take any room.
    last_day: Vec<i32>,
}

impl ActiveDaysGroups {
    fn grow(&mut self, total_num_groups: usize) {
        self.last_day.resize(total_num_groups, i32::MIN);
    }

    fn add(&mut self, group: usize, day: i32) {
        if self.last_day[group] != day {
            self.last_day[group] = day;
            self.pairs.push((group as u32, day));
        }
    }

    /// The lists of the groups `emit_to` takes, sorted and without repeats; the groups after them
    /// are numbered from 0 again.
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let groups = match emit_to {
            EmitTo::All => self.last_day.len(),
            EmitTo::First(n) => n,
        };
        let mut emitted: Vec<(u32, i32)> = Vec::new();
        if groups == self.last_day.len() {
            emitted = std::mem::take(&mut self.pairs);
            self.last_day.clear();
        } else {
            let boundary = groups as u32;
            self.pairs.retain(|&(group, day)| {
                if group < boundary {
                    emitted.push((group, day));
                    false
                } else {
                    true
                }
            });
            self.pairs
                .iter_mut()
                .for_each(|(group, _)| *group -= boundary);
            self.last_day.drain(..groups);
        }
        // A counting sort by group gives each group its slice; each slice is then small.
        let mut offsets = vec![0usize; groups + 1];
        for &(group, _) in &emitted {
            offsets[group as usize + 1] += 1;
        }
        for index in 1..offsets.len() {
            offsets[index] += offsets[index - 1];
        }
        let mut days = vec![0i32; emitted.len()];
        let mut next = offsets.clone();
        for (group, day) in emitted {
            days[next[group as usize]] = day;
            next[group as usize] += 1;
        }
        let lists: Vec<Vec<i32>> = offsets
            .windows(2)
            .map(|range| {
                let mut group_days = days[range[0]..range[1]].to_vec();
                sorted_distinct(&mut group_days);
                group_days
            })
            .collect();
        Arc::new(lists_array(lists))
    }
}

impl GroupsAccumulator for ActiveDaysGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        for (row, day) in selected_days(&values[0], opt_filter) {
            self.add(group_indices[row], day);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        for_each_listed_day(&values[0], |row, day| self.add(group_indices[row], day));
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a group of its own: a list of its one day, or an empty list.
        let mut groups = vec![Vec::new(); values[0].len()];
        for (row, day) in selected_days(&values[0], opt_filter) {
            groups[row].push(day);
        }
        Ok(vec![Arc::new(lists_array(groups))])
    }

    fn size(&self) -> usize {
        self.pairs.capacity() * size_of::<(u32, i32)>()
            + self.last_day.capacity() * size_of::<i32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(days: &[Option<i32>]) -> ArrayRef {
        Arc::new(Date32Array::from(days.to_vec()))
    }

    fn list_values(array: &ArrayRef) -> Vec<Vec<i32>> {
        array
            .as_list::<i32>()
            .iter()
            .map(|list| {
                list.expect("a list per group")
                    .as_primitive::<Date32Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn groups_get_their_distinct_days_sorted_without_nulls() {
        let mut groups = ActiveDaysGroups::default();
        groups
            .update_batch(
                &[dates(&[Some(5), Some(3), None, Some(5), Some(1), Some(3)])],
                &[0, 0, 0, 1, 1, 0],
                None,
                3,
            )
            .unwrap();
        let result = groups.evaluate(EmitTo::All).unwrap();
        assert_eq!(list_values(&result), vec![vec![3, 5], vec![1, 5], vec![]]);
    }

    #[test]
    fn partial_states_merge_to_the_single_pass_result() {
        let batch = dates(&[Some(9), Some(2), Some(9), Some(4)]);
        let mut single = ActiveDaysGroups::default();
        single
            .update_batch(std::slice::from_ref(&batch), &[0, 0, 1, 0], None, 2)
            .unwrap();

        let mut merged = ActiveDaysGroups::default();
        for (rows, groups) in [(0..2, [0, 0]), (2..4, [1, 0])] {
            let mut partial = ActiveDaysGroups::default();
            let slice = batch.slice(rows.start, rows.len());
            partial.update_batch(&[slice], &groups, None, 2).unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged.merge_batch(&state, &[0, 1], 2).unwrap();
        }
        assert_eq!(
            list_values(&merged.evaluate(EmitTo::All).unwrap()),
            list_values(&single.evaluate(EmitTo::All).unwrap())
        );
    }

    #[test]
    fn emitting_the_first_groups_keeps_the_others_renumbered() {
        let mut groups = ActiveDaysGroups::default();
        groups
            .update_batch(&[dates(&[Some(1), Some(2), Some(3)])], &[0, 1, 2], None, 3)
            .unwrap();
        assert_eq!(
            list_values(&groups.evaluate(EmitTo::First(2)).unwrap()),
            vec![vec![1], vec![2]]
        );
        groups
            .update_batch(&[dates(&[Some(4)])], &[0], None, 1)
            .unwrap();
        assert_eq!(
            list_values(&groups.evaluate(EmitTo::All).unwrap()),
            vec![vec![3, 4]]
        );
    }

    #[test]
    fn converted_rows_are_one_day_lists_and_filtered_rows_are_empty() {
        let groups = ActiveDaysGroups::default();
        let filter = BooleanArray::from(vec![true, false, true]);
        let state = groups
            .convert_to_state(&[dates(&[Some(7), Some(8), None])], Some(&filter))
            .unwrap();
        assert_eq!(list_values(&state[0]), vec![vec![7], vec![], vec![]]);
    }

    #[test]
    fn the_single_group_accumulator_agrees() {
        let mut accumulator = ActiveDaysAccumulator::default();
        accumulator
            .update_batch(&[dates(&[Some(3), Some(1), Some(3), None])])
            .unwrap();
        let ScalarValue::List(list) = accumulator.evaluate().unwrap() else {
            panic!("a list");
        };
        let list: ArrayRef = list;
        assert_eq!(list_values(&list), vec![vec![1, 3]]);
    }
}
