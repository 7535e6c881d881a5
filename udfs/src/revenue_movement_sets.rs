//! `revenue_movement_sets(period, mrr, ts, account, day, period_name, complete_until)`: the MRR
//! movements of every period straight from the snapshot rows, for integer accounts.
//!
//! `revenue_churn` over accounts of any type plans `GROUP BY account` with
//! [`mrr_history`](crate::mrr_history), then folds the histories with
//! [`revenue_movements`](crate::revenue_movements). Snapshots come sorted by time, so that
//! `GROUP BY` finds each account once per batch: its hash table of a million accounts took four
//! fifths of the query. With integer accounts this one aggregate replaces both steps, as the
//! bitset folds of the usage functions replace theirs: it keeps each period's paying accounts as
//! one list of (account, MRR) in account order (snapshot files are written in that order, so the
//! list is usually built sorted and only checked; otherwise it is sorted once), and the fold walks
//! the lists of neighbouring periods side by side. An account in both is continuing, one only in
//! the earlier churns, one only in the later is new, or reactivated when it churned before: the
//! accounts that ever churned are the only ones remembered across periods. States merge by
//! appending lists; the bookings are [`Totals`]' own, so the answers equal the other plan's.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt::Debug;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, Int32Array, Int64Array,
    StringArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, FieldRef, Fields, Float64Type, Int32Type,
    Int64Type,
};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{Expected, check_arguments, date_at, first_string, list_of, report, state_field};
use crate::mrr_history::{add_money, below_zero, check_money_type, money_array};
use crate::revenue_movements::{MovementsAccumulator, Totals, movements_state_fields, row_fields};

const NAME: &str = "revenue_movement_sets";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The integer-account plan of `revenue_churn`, one aggregate in place of \
        `mrr_history` per account and `revenue_movements`: given the snapshot rows at each \
        period's last snapshot time, returns what `revenue_movements` returns (every period's \
        MRR movements and customer counts, and whether it is complete). Rows of one account and \
        period are summed; a zero sum is no payment and a sum below zero is an error naming the \
        account and time. A row with a NULL account only extends the report: its period to the \
        last period, its day to the last snapshot day. Rows with a NULL period or mrr are \
        skipped. `revenue_churn` plans it for you.",
    syntax_example = "revenue_movement_sets(period, mrr, ts, account, day, period_name, complete_until)",
    sql_example = r#"```sql
> SELECT unnest(revenue_movement_sets(month, CAST(mrr AS DECIMAL(38, 2)), month, account_id,
    month, 'month', NULL)) FROM subscriptions;
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
    argument(name = "account", description = "The row's account, an integer."),
    argument(
        name = "day",
        description = "DATE: the local date of the row's snapshot."
    ),
    argument(
        name = "period_name",
        description = "A constant string: 'day', 'week', 'month', 'quarter' or 'year'."
    ),
    argument(
        name = "complete_until",
        description = "DATE: a period ending after this local date is incomplete, whatever the \
            last snapshot; or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct RevenueMovementSets {
    signature: Signature,
}

impl RevenueMovementSets {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(7, Volatility::Immutable),
        }
    }
}

/// The fields of one paying account of a period, in a state.
fn payment_fields(money_type: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("period_number", DataType::Int32, false),
        Field::new("account", DataType::Int64, false),
        Field::new("mrr", money_type.clone(), false),
    ])
}

/// The fields of one remembered row below zero, in a state.
fn negative_fields() -> Fields {
    Fields::from(vec![
        Field::new("period_number", DataType::Int32, false),
        Field::new("account", DataType::Int64, false),
        Field::new("time", DataType::Utf8, false),
    ])
}

impl AggregateUDFImpl for RevenueMovementSets {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        check_arguments(NAME, &arg_types[..1], &[("period", Date)])?;
        check_money_type(NAME, &arg_types[1])?;
        let expected = [
            ("account", Integer),
            ("day", Date),
            ("period_name", String),
            ("complete_until", Date),
        ];
        check_arguments(NAME, &arg_types[3..], &expected)?;
        Ok(list_of(DataType::Struct(row_fields(&arg_types[1]))))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let money_type = args.expr_fields[1].data_type().clone();
        match money_type {
            DataType::Decimal128(..) => Ok(Box::new(
                MovementSetsAccumulator::<Decimal128Type>::new(money_type),
            )),
            DataType::Float64 => Ok(Box::new(MovementSetsAccumulator::<Float64Type>::new(
                money_type,
            ))),
            other => plan_err!("{NAME}: mrr must be DECIMAL(38, s) or DOUBLE, not {other}"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let money_type = args.input_fields[1].data_type().clone();
        let mut fields = movements_state_fields(&args, &money_type);
        fields.extend([
            state_field(
                &args,
                "payments",
                list_of(DataType::Struct(payment_fields(&money_type))),
            ),
            state_field(
                &args,
                "negatives",
                list_of(DataType::Struct(negative_fields())),
            ),
        ]);
        Ok(fields)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The accounts that pay in one period, with their MRR.
#[derive(Debug, Default)]
struct Payments<N> {
    accounts: Vec<i64>,
    mrr: Vec<N>,
    /// Whether `accounts` is ascending, without repeats.
    sorted: bool,
}

impl<N: ArrowNativeTypeOp> Payments<N> {
    fn new() -> Self {
        Self {
            accounts: Vec::new(),
            mrr: Vec::new(),
            sorted: true,
        }
    }

    /// Adds one row; a row of the account added last (a snapshot's other subscription lines) is
    /// summed into it.
    fn add(&mut self, account: i64, mrr: N, money_type: &DataType) -> Result<()> {
        match self.accounts.last() {
            Some(&last) if last == account => {
                let sum = self.mrr.last_mut().expect("one sum per account");
                *sum = add_money(*sum, mrr, money_type)?;
                return Ok(());
            }
            Some(&last) if last > account => self.sorted = false,
            _ => {}
        }
        self.accounts.push(account);
        self.mrr.push(mrr);
        Ok(())
    }

    /// Sorts by account and sums each account's rows, unless already so; then drops the zero
    /// sums. Returns an account whose sum is below zero, if any.
    fn settle(&mut self, money_type: &DataType) -> Result<Option<(i64, N)>> {
        if !self.sorted {
            let mut rows: Vec<(i64, N)> = self.accounts.drain(..).zip(self.mrr.drain(..)).collect();
            rows.sort_unstable_by_key(|(account, _)| *account);
            for (account, mrr) in rows {
                self.add(account, mrr, money_type)?;
            }
            self.sorted = true;
        }
        if let Some(index) = self.mrr.iter().position(|mrr| *mrr < N::ZERO) {
            return Ok(Some((self.accounts[index], self.mrr[index])));
        }
        if self.mrr.iter().any(|mrr| mrr.is_zero()) {
            let mut kept = 0;
            for index in 0..self.mrr.len() {
                if !self.mrr[index].is_zero() {
                    self.accounts[kept] = self.accounts[index];
                    self.mrr[kept] = self.mrr[index];
                    kept += 1;
                }
            }
            self.accounts.truncate(kept);
            self.mrr.truncate(kept);
        }
        Ok(None)
    }
}

/// Books the accounts of `current` against those of the period before it, `previous`; both are
/// settled. `churned` holds every account that has churned so far, and gains those that churn
/// now.
fn book_period<N: ArrowNativeTypeOp>(
    totals: &mut Totals<N>,
    previous: &Payments<N>,
    current: &Payments<N>,
    churned: &mut HashSet<i64>,
) -> Result<()> {
    let (mut before, mut now) = (0, 0);
    loop {
        let order = match (previous.accounts.get(before), current.accounts.get(now)) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(earlier), Some(later)) => earlier.cmp(later),
        };
        match order {
            Ordering::Equal => {
                totals.continuing(previous.mrr[before], current.mrr[now])?;
                totals.ending(current.mrr[now])?;
                before += 1;
                now += 1;
            }
            Ordering::Less => {
                totals.churn(previous.mrr[before])?;
                churned.insert(previous.accounts[before]);
                before += 1;
            }
            Ordering::Greater => {
                let paid_before = churned.contains(&current.accounts[now]);
                totals.arrival(current.mrr[now], paid_before)?;
                totals.ending(current.mrr[now])?;
                now += 1;
            }
        }
    }
}

/// A row below zero, remembered to name its time if its period's sum stays below.
#[derive(Debug)]
struct Negative {
    number: i32,
    account: i64,
    time: String,
}

#[derive(Debug)]
struct MovementSetsAccumulator<T: ArrowPrimitiveType + Debug> {
    money_type: DataType,
    /// The report's bounds, and at `evaluate` its totals.
    movements: MovementsAccumulator<T>,
    /// Payments of the periods from number `base` on.
    base: i32,
    payments: Vec<Payments<T::Native>>,
    negatives: Vec<Negative>,
}

impl<T: ArrowPrimitiveType + Debug> MovementSetsAccumulator<T> {
    fn new(money_type: DataType) -> Self {
        Self {
            movements: MovementsAccumulator::new(money_type.clone()),
            money_type,
            base: 0,
            payments: Vec::new(),
            negatives: Vec::new(),
        }
    }

    /// The index of period `number` in `payments`, made room for.
    fn index_of(&mut self, number: i32) -> usize {
        if self.payments.is_empty() {
            self.base = number;
        }
        if number < self.base {
            let missing = (self.base - number) as usize;
            self.payments
                .splice(0..0, std::iter::repeat_with(Payments::new).take(missing));
            self.base = number;
        }
        let index = (number - self.base) as usize;
        if index >= self.payments.len() {
            self.payments.resize_with(index + 1, Payments::new);
        }
        index
    }

    fn add(&mut self, number: i32, account: i64, mrr: T::Native) -> Result<()> {
        let index = self.index_of(number);
        self.payments[index].add(account, mrr, &self.money_type)
    }
}

impl<T: ArrowPrimitiveType + Debug> Accumulator for MovementSetsAccumulator<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.movements.add_bounds(
            first_string(&values[5])?,
            None,
            None,
            None,
            date_at(&values[6], 0),
        )?;
        let periods = values[0].as_primitive::<Date32Type>();
        let amounts = values[1].as_primitive::<T>();
        let accounts = cast(&values[3], &DataType::Int64)?;
        let accounts = accounts.as_primitive::<Int64Type>();
        let days = values[4].as_primitive::<Date32Type>();
        let (mut first, mut last, mut last_day) = (None::<i32>, None::<i32>, None::<i32>);
        // Consecutive rows share their period: its number is computed once per run of them.
        let mut numbered: Option<(i32, i32)> = None;
        for row in 0..periods.len() {
            if periods.is_null(row) {
                continue;
            }
            let period = periods.value(row);
            last = last.max(Some(period));
            if days.is_valid(row) {
                last_day = last_day.max(Some(days.value(row)));
            }
            if accounts.is_null(row) || amounts.is_null(row) {
                continue;
            }
            first = Some(first.map_or(period, |first| first.min(period)));
            let number = match numbered {
                Some((day, number)) if day == period => number,
                _ => {
                    let number = self.movements.period()?.number(i64::from(period)) as i32;
                    numbered = Some((period, number));
                    number
                }
            };
            let (account, mrr) = (accounts.value(row), amounts.value(row));
            if mrr < T::Native::ZERO {
                self.negatives.push(Negative {
                    number,
                    account,
                    time: ScalarValue::try_from_array(&values[2], row)?.to_string(),
                });
            }
            self.add(number, account, mrr)?;
        }
        self.movements.add_bounds(None, first, last, last_day, None)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut state = self.movements.state()?;
        let mut numbers = Vec::new();
        let (mut accounts, mut sums) = (Vec::new(), Vec::new());
        for (index, payments) in self.payments.iter_mut().enumerate() {
            let number = self.base + index as i32;
            numbers.extend(std::iter::repeat_n(number, payments.accounts.len()));
            accounts.append(&mut payments.accounts);
            sums.append(&mut payments.mrr);
        }
        let payments = StructArray::try_new(
            payment_fields(&self.money_type),
            vec![
                Arc::new(Int32Array::from(numbers)),
                Arc::new(Int64Array::from(accounts)),
                money_array::<T>(sums, &self.money_type),
            ],
            None,
        )?;
        let negatives = std::mem::take(&mut self.negatives);
        let negatives = StructArray::try_new(
            negative_fields(),
            vec![
                Arc::new(Int32Array::from_iter_values(
                    negatives.iter().map(|negative| negative.number),
                )),
                Arc::new(Int64Array::from_iter_values(
                    negatives.iter().map(|negative| negative.account),
                )),
                Arc::new(StringArray::from_iter_values(
                    negatives.iter().map(|negative| negative.time.as_str()),
                )),
            ],
            None,
        )?;
        self.payments.clear();
        state.extend([report(payments)?, report(negatives)?]);
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let bounds = states.len() - 2;
        self.movements.merge_batch(&states[..bounds])?;
        let (payments, negatives) = (
            states[bounds].as_list::<i32>(),
            states[bounds + 1].as_list::<i32>(),
        );
        for row in 0..payments.len() {
            let rows = payments.value(row);
            let rows = rows.as_struct();
            let numbers = rows.column(0).as_primitive::<Int32Type>();
            let accounts = rows.column(1).as_primitive::<Int64Type>();
            let sums = rows.column(2).as_primitive::<T>();
            for index in 0..rows.len() {
                self.add(
                    numbers.value(index),
                    accounts.value(index),
                    sums.value(index),
                )?;
            }
            let rows = negatives.value(row);
            let rows = rows.as_struct();
            let numbers = rows.column(0).as_primitive::<Int32Type>();
            let accounts = rows.column(1).as_primitive::<Int64Type>();
            let times = rows.column(2).as_string::<i32>();
            for index in 0..rows.len() {
                self.negatives.push(Negative {
                    number: numbers.value(index),
                    account: accounts.value(index),
                    time: times.value(index).to_string(),
                });
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        for (index, payments) in self.payments.iter_mut().enumerate() {
            if let Some((account, sum)) = payments.settle(&self.money_type)? {
                let number = self.base + index as i32;
                let time = self
                    .negatives
                    .iter()
                    .find(|negative| negative.number == number && negative.account == account)
                    .map_or("?", |negative| negative.time.as_str());
                return Err(below_zero::<T>(
                    &account.to_string(),
                    sum,
                    &self.money_type,
                    time,
                ));
            }
        }
        let mut churned = HashSet::new();
        let none = Payments::new();
        // The period after the last one with payments books the last churns.
        for index in 0..=self.payments.len() {
            let previous = index
                .checked_sub(1)
                .map_or(&none, |index| &self.payments[index]);
            let current = self.payments.get(index).unwrap_or(&none);
            let totals = self.movements.at(self.base + index as i32);
            book_period(totals, previous, current, &mut churned)?;
        }
        self.payments.clear();
        self.movements.evaluate()
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.movements.size()
            + self
                .payments
                .iter()
                .map(|payments| {
                    size_of::<Payments<T::Native>>()
                        + payments.accounts.capacity() * size_of::<i64>()
                        + payments.mrr.capacity() * size_of::<T::Native>()
                })
                .sum::<usize>()
            + self.negatives.capacity() * size_of::<Negative>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{Date32Array, Decimal128Array};

    use super::*;
    use crate::period::Period;

    fn money_type() -> DataType {
        DataType::Decimal128(38, 2)
    }

    /// The first day of the month `index` months after January 2024.
    fn month_day(index: i32) -> i32 {
        Period::Month.first_day_of(i64::from(24_288 + index), 0) as i32
    }

    /// The input columns of rows (month index, account, mrr in cents).
    fn batch(rows: &[(i32, i64, i128)]) -> Vec<ArrayRef> {
        let days = Date32Array::from_iter_values(rows.iter().map(|row| month_day(row.0)));
        let days: ArrayRef = Arc::new(days);
        vec![
            days.clone(),
            Arc::new(
                Decimal128Array::from_iter_values(rows.iter().map(|row| row.2))
                    .with_data_type(money_type()),
            ),
            days.clone(),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|row| row.1))),
            days,
            Arc::new(StringArray::from(vec!["month"; rows.len()])),
            Arc::new(Date32Array::from(vec![None; rows.len()])),
        ]
    }

    fn state_arrays(accumulator: &mut MovementSetsAccumulator<Decimal128Type>) -> Vec<ArrayRef> {
        accumulator
            .state()
            .unwrap()
            .into_iter()
            .map(|value| value.to_array().unwrap())
            .collect()
    }

    /// Rows of 40 accounts over 12 months, drawn by a fixed linear congruential generator: gaps
    /// of one or more months, changes of MRR, a few zero rows and some accounts' months split
    /// over two rows, all in a shuffled order.
    fn random_rows() -> Vec<(i32, i64, i128)> {
        let mut state: u64 = 7;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let mut rows = Vec::new();
        for account in 1..=40 {
            for month in 0..12 {
                match next(10) {
                    0..=2 => {}
                    3 => rows.push((month, account, 0)),
                    4 => {
                        rows.push((month, account, 1_000 + next(5_000) as i128));
                        rows.push((month, account, 250));
                    }
                    _ => rows.push((month, account, 1_000 + next(5_000) as i128)),
                }
            }
        }
        for index in (1..rows.len()).rev() {
            rows.swap(index, next(index as u64 + 1) as usize);
        }
        rows
    }

    #[test]
    fn merged_states_equal_the_per_account_fold() {
        let rows = random_rows();
        let mut merged = MovementSetsAccumulator::<Decimal128Type>::new(money_type());
        for chunk in rows.chunks(rows.len() / 3 + 1) {
            let mut partial = MovementSetsAccumulator::<Decimal128Type>::new(money_type());
            partial.update_batch(&batch(chunk)).unwrap();
            merged.merge_batch(&state_arrays(&mut partial)).unwrap();
        }

        // The second implementation: each account's history summed by hand, zero months left
        // out, folded by revenue_movements' per-account fold.
        let mut histories: BTreeMap<i64, BTreeMap<i32, i128>> = BTreeMap::new();
        for &(month, account, mrr) in &rows {
            *histories
                .entry(account)
                .or_default()
                .entry(24_288 + month)
                .or_default() += mrr;
        }
        let mut expected = MovementsAccumulator::<Decimal128Type>::new(money_type());
        let first = rows.iter().map(|row| row.0).min().unwrap();
        let last = rows.iter().map(|row| row.0).max().unwrap();
        expected
            .add_bounds(
                Some("month".into()),
                Some(month_day(first)),
                Some(month_day(last)),
                Some(month_day(last)),
                None,
            )
            .unwrap();
        for history in histories.values() {
            expected
                .add_account(
                    history
                        .iter()
                        .filter(|(_, mrr)| **mrr != 0)
                        .map(|(n, m)| (*n, *m)),
                )
                .unwrap();
        }
        let expected = expected.evaluate().unwrap();
        assert_eq!(merged.evaluate().unwrap(), expected);
        let ScalarValue::List(report) = expected else {
            panic!("a list");
        };
        assert_eq!(report.value(0).len(), 12, "a row for every month");
    }

    #[test]
    fn a_sum_below_zero_names_the_account_and_time() {
        let mut accumulator = MovementSetsAccumulator::<Decimal128Type>::new(money_type());
        accumulator
            .update_batch(&batch(&[
                (0, 3, 500),
                (1, 9, 300),
                (1, 9, -450),
                (2, 9, 100),
            ]))
            .unwrap();
        let error = accumulator.evaluate().unwrap_err().to_string();
        assert!(
            error.contains("account 9 has MRR -1.50 at 2024-02-01, below zero"),
            "{error}"
        );
    }

    #[test]
    fn a_row_without_an_account_extends_the_report() {
        let mut accumulator = MovementSetsAccumulator::<Decimal128Type>::new(money_type());
        let mut columns = batch(&[(0, 1, 500), (3, 0, 0)]);
        columns[3] = Arc::new(Int64Array::from(vec![Some(1), None]));
        columns[1] =
            Arc::new(Decimal128Array::from(vec![Some(500), None]).with_data_type(money_type()));
        accumulator.update_batch(&columns).unwrap();
        let ScalarValue::List(report) = accumulator.evaluate().unwrap() else {
            panic!("a list");
        };
        let rows = report.value(0);
        let rows = rows.as_struct();
        // January new, February churned, then two months of nothing.
        let churned = rows.column_by_name("churned_mrr").unwrap();
        let churned = churned.as_primitive::<Decimal128Type>();
        assert_eq!(churned.values().to_vec(), vec![0, -500, 0, 0]);
    }
}
