//! `mrr_history(period, mrr, ts, account, period_name)`: one account's MRR in each period, the
//! first step of `revenue_churn`.
//!
//! `revenue_churn` plans `GROUP BY [segment,] account` over the input rows at each period's last
//! snapshot time. This aggregate sums an account's rows of one period (several subscription lines
//! at one snapshot) into its MRR in that period and returns them sorted, by period number
//! ([`Period::number`]: the next period is the next number, so the fold after it compares
//! neighbours by subtraction, never by calendar arithmetic). Periods whose sum is zero are left
//! out: a zero row is the same as no row. A sum below zero is an error that names the account and
//! the snapshot time; to name them without keeping every account's key, the rows below zero are
//! remembered as they come (they are rare), and only they.
//!
//! Like `active_days`, the entries of all groups live in one flat vector, not in a million small
//! ones; rows of the same group and period that arrive together (a snapshot's lines) are summed
//! in place. Money is summed exactly: `revenue_churn` casts its input to DECIMAL(38, s), kept in
//! `i128`, or to DOUBLE; a sum that overflows DECIMAL(38, s) is an error, never a wrapped value.

use std::fmt::Debug;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, BooleanArray, Int32Array,
    ListArray, PrimitiveArray, StringArray, StructArray,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, FieldRef, Fields, Float64Type, Int32Type,
};
use datafusion::common::{ScalarValue, exec_datafusion_err, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{first_string, list_of, state_field};
use crate::lifecycle_counts::parse_period;
use crate::period::Period;

const NAME: &str = "mrr_history";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The first step of `revenue_churn`: an account's MRR in each period, as a list \
        of (period_number, mrr) sorted by period, the sum of the account's rows of that period \
        (rows of one period must all be at its last snapshot time: `revenue_churn` plans that), \
        without the periods whose sum is zero. Periods are numbered so that the next period is \
        the next number: days since 1970-01-01, weeks as the first day's number divided by 7, \
        months as year × 12 + month − 1, quarters as months divided by 3, years as the year. A \
        sum below zero is an error naming the account and the time. Rows with a NULL period or \
        mrr are skipped.",
    syntax_example = "mrr_history(period, mrr, ts, account, period_name)",
    sql_example = r#"```sql
> SELECT account_id, mrr_history(month, CAST(mrr AS DECIMAL(38, 2)), month, account_id, 'month')
  FROM subscriptions GROUP BY account_id;
```"#,
    argument(
        name = "period",
        description = "DATE: the first day of the row's period."
    ),
    argument(
        name = "mrr",
        description = "DECIMAL(38, s) or DOUBLE: the row's recurring revenue."
    ),
    argument(
        name = "ts",
        description = "The row's snapshot time, of any type: named in the error for a sum below \
            zero."
    ),
    argument(
        name = "account",
        description = "The row's account, of any type: named in the error for a sum below zero."
    ),
    argument(
        name = "period_name",
        description = "A constant string: 'day', 'week', 'month', 'quarter' or 'year'."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MrrHistory {
    signature: Signature,
}

impl MrrHistory {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(5, Volatility::Immutable),
        }
    }
}

/// The money types the revenue folds sum exactly: what `revenue_churn` casts MRR to.
pub(crate) fn check_money_type(function: &str, data_type: &DataType) -> Result<()> {
    match data_type {
        DataType::Decimal128(38, _) | DataType::Float64 => Ok(()),
        other => plan_err!("{function}: mrr must be DECIMAL(38, s) or DOUBLE, not {other}"),
    }
}

/// The fields of one history entry.
fn entry_fields(money_type: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("period_number", DataType::Int32, false),
        Field::new("mrr", money_type.clone(), false),
    ])
}

/// What `mrr_history` returns for MRR of `money_type`.
pub(crate) fn history_type(money_type: &DataType) -> DataType {
    list_of(DataType::Struct(entry_fields(money_type)))
}

/// The fields of one remembered row below zero.
fn negative_fields() -> Fields {
    Fields::from(vec![
        Field::new("period_number", DataType::Int32, false),
        Field::new("account", DataType::Utf8, false),
        Field::new("time", DataType::Utf8, false),
    ])
}

impl AggregateUDFImpl for MrrHistory {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types[0] != DataType::Date32 {
            return plan_err!("{NAME}: period must be a DATE, not {}", arg_types[0]);
        }
        check_money_type(NAME, &arg_types[1])?;
        Ok(history_type(&arg_types[1]))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let money_type = args.expr_fields[1].data_type().clone();
        match money_type {
            DataType::Decimal128(..) => Ok(Box::new(SingleGroup(
                MrrHistoryGroups::<Decimal128Type>::single(money_type),
            ))),
            DataType::Float64 => Ok(Box::new(SingleGroup(
                MrrHistoryGroups::<Float64Type>::single(money_type),
            ))),
            other => plan_err!("{NAME}: mrr must be DECIMAL(38, s) or DOUBLE, not {other}"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let money_type = args.input_fields[1].data_type();
        Ok(vec![
            state_field(&args, "entries", history_type(money_type)),
            state_field(
                &args,
                "negatives",
                list_of(DataType::Struct(negative_fields())),
            ),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let money_type = args.expr_fields[1].data_type().clone();
        match money_type {
            DataType::Decimal128(..) => Ok(Box::new(MrrHistoryGroups::<Decimal128Type>::new(
                money_type,
            ))),
            DataType::Float64 => Ok(Box::new(MrrHistoryGroups::<Float64Type>::new(money_type))),
            other => plan_err!("{NAME}: mrr must be DECIMAL(38, s) or DOUBLE, not {other}"),
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// A row below zero, remembered to name its account and time if its period's sum stays below.
#[derive(Debug, Clone)]
struct Negative {
    group: u32,
    number: i32,
    account: String,
    time: String,
}

/// No entry yet for a group.
const NO_ENTRY: usize = usize::MAX;

/// The entries of every group, flat: (group, period number, sum) in three columns.
#[derive(Debug)]
struct MrrHistoryGroups<T: ArrowPrimitiveType + Debug> {
    money_type: DataType,
    period: Option<Period>,
    /// The last date converted to a period number, and its number: rows come in time order, so
    /// one remembered conversion serves almost all of them.
    last_conversion: Option<(i32, i32)>,
    groups: Vec<u32>,
    numbers: Vec<i32>,
    sums: Vec<T::Native>,
    /// Each group's latest entry, to which a row of the same period adds.
    last_entry: Vec<usize>,
    negatives: Vec<Negative>,
}

impl<T: ArrowPrimitiveType + Debug> MrrHistoryGroups<T> {
    fn new(money_type: DataType) -> Self {
        Self {
            money_type,
            period: None,
            last_conversion: None,
            groups: Vec::new(),
            numbers: Vec::new(),
            sums: Vec::new(),
            last_entry: Vec::new(),
            negatives: Vec::new(),
        }
    }

    /// For the aggregate without GROUP BY: one group, there from the start, so that no rows
    /// give an empty history.
    fn single(money_type: DataType) -> Self {
        let mut groups = Self::new(money_type);
        groups.grow(1);
        groups
    }

    fn grow(&mut self, total_num_groups: usize) {
        self.last_entry.resize(total_num_groups, NO_ENTRY);
    }

    fn read_period(&mut self, names: &ArrayRef) -> Result<Period> {
        if let Some(text) = first_string(names)? {
            let period = parse_period(&text)?;
            if period == Period::Hour {
                return exec_err!("{NAME}: period_name must be a day or longer, not 'hour'");
            }
            self.period = Some(period);
        }
        self.period
            .ok_or_else(|| exec_datafusion_err!("{NAME}: period_name must not be NULL"))
    }

    /// The number of the period starting on `date`.
    fn number(&mut self, period: Period, date: i32) -> Result<i32> {
        match self.last_conversion {
            Some((last, number)) if last == date => Ok(number),
            _ => {
                let number = i32::try_from(period.number(i64::from(date))).map_err(|_| {
                    exec_datafusion_err!("{NAME}: the period of day {date} is out of range")
                })?;
                self.last_conversion = Some((date, number));
                Ok(number)
            }
        }
    }

    fn add(&mut self, group: usize, number: i32, amount: T::Native) -> Result<()> {
        let last = self.last_entry[group];
        if last != NO_ENTRY && self.numbers[last] == number {
            self.sums[last] = add_money(self.sums[last], amount, &self.money_type)?;
        } else {
            self.last_entry[group] = self.groups.len();
            self.groups.push(group as u32);
            self.numbers.push(number);
            self.sums.push(amount);
        }
        Ok(())
    }

    /// Takes the entries of the groups `emit_to` names; the groups after them are numbered from
    /// 0 again.
    fn take(&mut self, emit_to: EmitTo) -> (usize, Vec<u32>, Vec<i32>, Vec<T::Native>) {
        let count = match emit_to {
            EmitTo::All => self.last_entry.len(),
            EmitTo::First(n) => n,
        };
        if count == self.last_entry.len() {
            self.last_entry.clear();
            return (
                count,
                std::mem::take(&mut self.groups),
                std::mem::take(&mut self.numbers),
                std::mem::take(&mut self.sums),
            );
        }
        let boundary = count as u32;
        let (mut taken, mut kept) = ((vec![], vec![], vec![]), (vec![], vec![], vec![]));
        for ((group, number), sum) in self.groups.drain(..).zip(&self.numbers).zip(&self.sums) {
            let side = if group < boundary {
                &mut taken
            } else {
                &mut kept
            };
            side.0.push(if group < boundary {
                group
            } else {
                group - boundary
            });
            side.1.push(*number);
            side.2.push(*sum);
        }
        (self.groups, self.numbers, self.sums) = kept;
        self.last_entry.drain(..count);
        self.last_entry.fill(NO_ENTRY);
        for (index, group) in self.groups.iter().enumerate() {
            self.last_entry[*group as usize] = index;
        }
        (count, taken.0, taken.1, taken.2)
    }

    /// Takes the remembered rows below zero of the first `count` groups, renumbering the rest.
    fn take_negatives(&mut self, count: usize) -> Vec<Negative> {
        let boundary = count as u32;
        let (taken, mut kept): (Vec<Negative>, Vec<Negative>) = std::mem::take(&mut self.negatives)
            .into_iter()
            .partition(|negative| negative.group < boundary);
        kept.iter_mut()
            .for_each(|negative| negative.group -= boundary);
        self.negatives = kept;
        taken
    }

    /// The emitted groups' histories: sorted by period, one entry per period. For the final
    /// value (`evaluate`), zero sums are left out and a sum below zero is an error; a state keeps
    /// both, since other partial states may still add to them.
    fn emit(&mut self, emit_to: EmitTo, evaluate: bool) -> Result<(ArrayRef, Vec<Negative>)> {
        let (count, groups, numbers, sums) = self.take(emit_to);
        let negatives = self.take_negatives(count);
        // A counting sort by group gives each group its slice of entries.
        let mut offsets = vec![0usize; count + 1];
        for &group in &groups {
            offsets[group as usize + 1] += 1;
        }
        for index in 1..offsets.len() {
            offsets[index] += offsets[index - 1];
        }
        let mut by_group = vec![(0i32, T::Native::ZERO); groups.len()];
        let mut next = offsets.clone();
        for ((group, number), sum) in groups.into_iter().zip(numbers).zip(sums) {
            by_group[next[group as usize]] = (number, sum);
            next[group as usize] += 1;
        }
        let mut lengths = Vec::with_capacity(count);
        let mut out_numbers = Vec::with_capacity(by_group.len());
        let mut out_sums = Vec::with_capacity(by_group.len());
        for (group, range) in offsets.windows(2).enumerate() {
            let entries = &mut by_group[range[0]..range[1]];
            entries.sort_unstable_by_key(|(number, _)| *number);
            let before = out_numbers.len();
            let mut index = 0;
            while index < entries.len() {
                let (number, mut sum) = entries[index];
                index += 1;
                while index < entries.len() && entries[index].0 == number {
                    sum = add_money(sum, entries[index].1, &self.money_type)?;
                    index += 1;
                }
                if evaluate {
                    if sum < T::Native::ZERO {
                        return Err(self.below_zero(&negatives, group as u32, number, sum));
                    }
                    if sum.is_zero() {
                        continue;
                    }
                }
                out_numbers.push(number);
                out_sums.push(sum);
            }
            lengths.push(out_numbers.len() - before);
        }
        let entries = StructArray::try_new(
            entry_fields(&self.money_type),
            vec![
                Arc::new(Int32Array::from(out_numbers)),
                money_array::<T>(out_sums, &self.money_type),
            ],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(entries.data_type().clone(), true)),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(entries),
            None,
        )?;
        Ok((Arc::new(list), negatives))
    }

    fn below_zero(
        &self,
        negatives: &[Negative],
        group: u32,
        number: i32,
        sum: T::Native,
    ) -> datafusion::error::DataFusionError {
        let (account, time) = negatives
            .iter()
            .find(|negative| negative.group == group && negative.number == number)
            .map(|negative| (negative.account.as_str(), negative.time.as_str()))
            .unwrap_or(("?", "?"));
        below_zero::<T>(account, sum, &self.money_type, time)
    }

    /// Remembers the negative rows of a batch of input rows.
    fn remember_negative(
        &mut self,
        group: u32,
        number: i32,
        values: &[ArrayRef],
        row: usize,
    ) -> Result<()> {
        self.negatives.push(Negative {
            group,
            number,
            account: ScalarValue::try_from_array(&values[3], row)?.to_string(),
            time: ScalarValue::try_from_array(&values[2], row)?.to_string(),
        });
        Ok(())
    }
}

/// The error for an account whose rows at one snapshot sum to `sum`, below zero.
pub(crate) fn below_zero<T: ArrowPrimitiveType>(
    account: &str,
    sum: T::Native,
    money_type: &DataType,
    time: &str,
) -> datafusion::error::DataFusionError {
    let amount = ScalarValue::new_primitive::<T>(Some(sum), money_type)
        .map(|value| value.to_string())
        .unwrap_or_else(|_| format!("{sum:?}"));
    exec_datafusion_err!(
        "account {account} has MRR {amount} at {time}, below zero: the rows of one account at \
         one snapshot are summed (several subscriptions), and the sum must be 0 or more"
    )
}

/// `left + right`, or an error naming the type when the sum overflows it.
pub(crate) fn add_money<N: ArrowNativeTypeOp>(
    left: N,
    right: N,
    money_type: &DataType,
) -> Result<N> {
    left.add_checked(right)
        .map_err(|_| exec_datafusion_err!("{NAME}: a sum of MRR overflows {money_type}"))
}

/// Money values as an array of the money type.
pub(crate) fn money_array<T: ArrowPrimitiveType>(
    values: Vec<T::Native>,
    money_type: &DataType,
) -> ArrayRef {
    Arc::new(
        PrimitiveArray::<T>::new(ScalarBuffer::from(values), None)
            .with_data_type(money_type.clone()),
    )
}

/// The rows to read: period and MRR not NULL, passing the filter.
fn selected_rows<'a, T: ArrowPrimitiveType>(
    values: &'a [ArrayRef],
    opt_filter: Option<&'a BooleanArray>,
) -> impl Iterator<Item = (usize, i32, T::Native)> + 'a {
    let periods = values[0].as_primitive::<Date32Type>();
    let amounts = values[1].as_primitive::<T>();
    (0..periods.len()).filter_map(move |row| {
        let selected = periods.is_valid(row)
            && amounts.is_valid(row)
            && opt_filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row));
        selected.then(|| (row, periods.value(row), amounts.value(row)))
    })
}

/// Remembered rows below zero, one list per group.
fn negatives_array(count: usize, negatives: Vec<Negative>) -> Result<ArrayRef> {
    let mut by_group: Vec<Vec<Negative>> = vec![Vec::new(); count];
    for negative in negatives {
        by_group[negative.group as usize].push(negative);
    }
    let lengths: Vec<usize> = by_group.iter().map(Vec::len).collect();
    let all: Vec<Negative> = by_group.into_iter().flatten().collect();
    let entries = StructArray::try_new(
        negative_fields(),
        vec![
            Arc::new(Int32Array::from_iter_values(all.iter().map(|n| n.number))),
            Arc::new(StringArray::from_iter_values(
                all.iter().map(|n| &n.account),
            )),
            Arc::new(StringArray::from_iter_values(all.iter().map(|n| &n.time))),
        ],
        None,
    )?;
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new_list_field(entries.data_type().clone(), true)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(entries),
        None,
    )?))
}

impl<T: ArrowPrimitiveType + Debug> GroupsAccumulator for MrrHistoryGroups<T> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        if group_indices.is_empty() {
            return Ok(());
        }
        let period = self.read_period(&values[4])?;
        for (row, date, amount) in selected_rows::<T>(values, opt_filter) {
            let group = group_indices[row];
            let number = self.number(period, date)?;
            if amount < T::Native::ZERO {
                self.remember_negative(group as u32, number, values, row)?;
            }
            self.add(group, number, amount)?;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to, true)?.0)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let count = match emit_to {
            EmitTo::All => self.last_entry.len(),
            EmitTo::First(n) => n,
        };
        let (entries, negatives) = self.emit(emit_to, false)?;
        Ok(vec![entries, negatives_array(count, negatives)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let lists = values[0].as_list::<i32>();
        let entries = lists.values().as_struct();
        let numbers = entries.column(0).as_primitive::<Int32Type>();
        let sums = entries.column(1).as_primitive::<T>();
        for (row, window) in lists.offsets().windows(2).enumerate() {
            if lists.is_null(row) {
                continue;
            }
            for index in window[0] as usize..window[1] as usize {
                self.add(group_indices[row], numbers.value(index), sums.value(index))?;
            }
        }
        let lists = values[1].as_list::<i32>();
        let negatives = lists.values().as_struct();
        let numbers = negatives.column(0).as_primitive::<Int32Type>();
        let accounts = negatives.column(1).as_string::<i32>();
        let times = negatives.column(2).as_string::<i32>();
        for (row, window) in lists.offsets().windows(2).enumerate() {
            for index in window[0] as usize..window[1] as usize {
                self.negatives.push(Negative {
                    group: group_indices[row] as u32,
                    number: numbers.value(index),
                    account: accounts.value(index).to_string(),
                    time: times.value(index).to_string(),
                });
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a group of its own.
        let mut single = Self::new(self.money_type.clone());
        let rows = values[0].len();
        single.grow(rows);
        if rows == 0 {
            return single.state(EmitTo::All);
        }
        let period = single.read_period(&values[4])?;
        for (row, date, amount) in selected_rows::<T>(values, opt_filter) {
            let number = single.number(period, date)?;
            if amount < T::Native::ZERO {
                single.remember_negative(row as u32, number, values, row)?;
            }
            single.add(row, number, amount)?;
        }
        single.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<u32>()
            + self.numbers.capacity() * size_of::<i32>()
            + self.sums.capacity() * size_of::<T::Native>()
            + self.last_entry.capacity() * size_of::<usize>()
            + self.negatives.capacity() * size_of::<Negative>()
    }
}

/// The aggregate without GROUP BY: one group.
#[derive(Debug)]
struct SingleGroup<T: ArrowPrimitiveType + Debug>(MrrHistoryGroups<T>);

impl<T: ArrowPrimitiveType + Debug> Accumulator for SingleGroup<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; values[0].len()];
        self.0.update_batch(values, &groups, None, 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; states[0].len()];
        self.0.merge_batch(states, &groups, 1)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.grow(1);
        self.0
            .state(EmitTo::All)?
            .iter()
            .map(|array| ScalarValue::try_from_array(array, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.grow(1);
        ScalarValue::try_from_array(&self.0.evaluate(EmitTo::All)?, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.0.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Decimal128Array, Int64Array};

    fn money_type() -> DataType {
        DataType::Decimal128(38, 2)
    }

    /// The input columns of rows (period day, cents, account).
    fn batch(rows: &[(i32, Option<i128>, i64)]) -> Vec<ArrayRef> {
        vec![
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(
                Decimal128Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                    .with_data_type(money_type()),
            ),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from(vec!["month"; rows.len()])),
        ]
    }

    fn histories(array: &ArrayRef) -> Vec<Vec<(i32, i128)>> {
        array
            .as_list::<i32>()
            .iter()
            .map(|list| {
                let list = list.expect("a list per group");
                let entries = list.as_struct();
                let numbers = entries.column(0).as_primitive::<Int32Type>();
                let sums = entries.column(1).as_primitive::<Decimal128Type>();
                (0..entries.len())
                    .map(|i| (numbers.value(i), sums.value(i)))
                    .collect()
            })
            .collect()
    }

    // 2024-01-01, 2024-02-01, 2024-03-01: months 24_288 to 24_290.
    const JAN: i32 = 19_723;
    const FEB: i32 = 19_754;
    const MAR: i32 = 19_783;

    #[test]
    fn rows_of_a_period_are_summed_and_zero_periods_left_out() {
        let mut groups = MrrHistoryGroups::<Decimal128Type>::new(money_type());
        let rows = [
            (MAR, Some(500), 1),
            (JAN, Some(1_000), 1),
            (JAN, Some(250), 1),
            (FEB, Some(0), 1),
            (FEB, None, 2),
            (FEB, Some(700), 2),
        ];
        groups
            .update_batch(&batch(&rows), &[0, 0, 0, 0, 1, 1], None, 2)
            .unwrap();
        assert_eq!(
            histories(&groups.evaluate(EmitTo::All).unwrap()),
            vec![vec![(24_288, 1_250), (24_290, 500)], vec![(24_289, 700)]]
        );
    }

    #[test]
    fn a_sum_below_zero_names_the_account_and_time() {
        let mut groups = MrrHistoryGroups::<Decimal128Type>::new(money_type());
        let rows = [(JAN, Some(1_000), 42), (JAN, Some(-1_500), 42)];
        groups
            .update_batch(&batch(&rows), &[0, 0], None, 1)
            .unwrap();
        let error = groups.evaluate(EmitTo::All).unwrap_err().to_string();
        assert!(
            error.contains("account 42 has MRR -5.00 at 2024-01-01, below zero"),
            "{error}"
        );
    }

    #[test]
    fn a_negative_line_outweighed_by_the_others_in_another_state_is_fine() {
        let mut merged = MrrHistoryGroups::<Decimal128Type>::new(money_type());
        for rows in [[(JAN, Some(-300), 7)], [(JAN, Some(800), 7)]] {
            let mut partial = MrrHistoryGroups::<Decimal128Type>::new(money_type());
            partial.update_batch(&batch(&rows), &[0], None, 1).unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged.merge_batch(&state, &[0], 1).unwrap();
        }
        assert_eq!(
            histories(&merged.evaluate(EmitTo::All).unwrap()),
            vec![vec![(24_288, 500)]]
        );
    }

    #[test]
    fn converted_rows_merge_to_the_single_pass_result() {
        let rows = [
            (FEB, Some(100), 1),
            (JAN, Some(200), 2),
            (FEB, Some(-50), 1),
        ];
        let groups_of_rows = [0, 1, 0];
        let mut single = MrrHistoryGroups::<Decimal128Type>::new(money_type());
        single
            .update_batch(&batch(&rows), &groups_of_rows, None, 2)
            .unwrap();
        let mut merged = MrrHistoryGroups::<Decimal128Type>::new(money_type());
        let state = merged.convert_to_state(&batch(&rows), None).unwrap();
        merged.merge_batch(&state, &groups_of_rows, 2).unwrap();
        assert_eq!(
            histories(&merged.evaluate(EmitTo::All).unwrap()),
            histories(&single.evaluate(EmitTo::All).unwrap())
        );
    }

    #[test]
    fn emitting_the_first_groups_keeps_the_others_renumbered() {
        let mut groups = MrrHistoryGroups::<Decimal128Type>::new(money_type());
        let rows = [(JAN, Some(1), 1), (JAN, Some(2), 2), (JAN, Some(-3), 3)];
        groups
            .update_batch(&batch(&rows), &[0, 1, 2], None, 3)
            .unwrap();
        assert_eq!(
            histories(&groups.evaluate(EmitTo::First(2)).unwrap()),
            vec![vec![(24_288, 1)], vec![(24_288, 2)]]
        );
        groups
            .update_batch(&batch(&[(JAN, Some(5), 3)]), &[0], None, 1)
            .unwrap();
        assert_eq!(
            histories(&groups.evaluate(EmitTo::All).unwrap()),
            vec![vec![(24_288, 2)]]
        );
    }

    #[test]
    fn the_single_group_accumulator_gives_an_empty_history_without_rows() {
        let mut accumulator = SingleGroup(MrrHistoryGroups::<Decimal128Type>::single(money_type()));
        let ScalarValue::List(list) = accumulator.evaluate().unwrap() else {
            panic!("a list");
        };
        let list: ArrayRef = list;
        assert_eq!(histories(&list), vec![vec![]]);
    }
}
