//! `revenue_movements(history, first_period, last_period, last_day, period, complete_until)`: the
//! fold step of `revenue_churn`, ChartMogul's MRR movements of every period.
//!
//! It takes one row per account, the account's [`mrr_history`](crate::mrr_history) (its MRR in
//! each period it paid, by period number), and adds the account's movements to per-period totals:
//! for each period from the previous period's MRR `p` to this one's `m`, new (`p = 0`, never paid
//! before), reactivation (`p = 0`, paid before), expansion or contraction (`m − p`, both paying),
//! and churn (`−p`, in the period after the last one paid). The totals are a dense vector by
//! period number: an account costs a few additions per period it paid, with no calendar
//! arithmetic, and states merge by adding. Money is added exactly (DECIMAL(38, s) as `i128`, or
//! DOUBLE), so `ending = starting + new + reactivation + expansion + contraction + churn` holds
//! exactly in every period.

use std::fmt::Debug;
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, BooleanArray, Date32Array,
    Int32Array, Int64Array, StructArray,
};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Fields, Float64Type, Int32Type, Int64Type,
};
use datafusion::common::{ScalarValue, exec_datafusion_err, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{Expected, check_arguments, date_at, list_of, report, set_bound, state_field};
use crate::lifecycle_counts::{next_period_start, parse_period};
use crate::mrr_history::{check_money_type, money_array};
use crate::period::Period;

const NAME: &str = "revenue_movements";

/// The money columns of a period's report, in order.
pub(crate) const MONEY_COLUMNS: [&str; 7] = [
    "starting_mrr",
    "new_mrr",
    "expansion_mrr",
    "reactivation_mrr",
    "contraction_mrr",
    "churned_mrr",
    "ending_mrr",
];
const STARTING: usize = 0;
const NEW: usize = 1;
const EXPANSION: usize = 2;
const REACTIVATION: usize = 3;
const CONTRACTION: usize = 4;
const CHURNED: usize = 5;
const ENDING: usize = 6;

/// The customer counts of a period's report, in order.
pub(crate) const CUSTOMER_COLUMNS: [&str; 5] = [
    "customers_start",
    "new_customers",
    "reactivated_customers",
    "churned_customers",
    "customers_end",
];
const CUSTOMERS_START: usize = 0;
const NEW_CUSTOMERS: usize = 1;
const REACTIVATED_CUSTOMERS: usize = 2;
const CHURNED_CUSTOMERS: usize = 3;
const CUSTOMERS_END: usize = 4;

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The fold step of `revenue_churn`: given one row per account with its MRR \
        history (`mrr_history`), returns one list with, for every period from `first_period` to \
        `last_period`, the MRR movements (ChartMogul's: starting, new, expansion, reactivation, \
        contraction, churned, ending; contraction and churn negative) and customer counts \
        (at the start, new, reactivated, churned, at the end), and whether the period had ended \
        by `last_day` and by `complete_until`. The first period has no previous one: every \
        paying account is new there. `revenue_churn` plans it for you.",
    syntax_example = "revenue_movements(history, first_period, last_period, last_day, period, complete_until)",
    sql_example = r#"```sql
> SELECT unnest(revenue_movements(history, first_period, last_period, last_day, 'month', NULL))
  FROM (SELECT account_id,
          mrr_history(month, CAST(mrr AS DECIMAL(38, 2)), month, account_id, 'month') AS history,
          min(month) AS first_period, max(month) AS last_period, max(month) AS last_day
        FROM subscriptions GROUP BY account_id);
```"#,
    argument(
        name = "history",
        description = "LIST<STRUCT<period_number INT, mrr>>: one account's MRR by period, as \
            `mrr_history` returns it."
    ),
    argument(
        name = "first_period",
        description = "DATE: the first day of the account's first period in the data."
    ),
    argument(
        name = "last_period",
        description = "DATE: the first day of the account's last period in the data."
    ),
    argument(
        name = "last_day",
        description = "DATE: the local date of the account's last snapshot."
    ),
    argument(
        name = "period",
        description = "A constant string: 'day', 'week', 'month', 'quarter' or 'year'."
    ),
    argument(
        name = "complete_until",
        description = "DATE: a period ending after this local date is incomplete, whatever the \
            last snapshot; or NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct RevenueMovements {
    signature: Signature,
}

impl RevenueMovements {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(6, Volatility::Immutable),
        }
    }
}

/// The money type of a history list.
fn history_money_type(history: &DataType) -> Result<DataType> {
    if let DataType::List(item) = history
        && let DataType::Struct(fields) = item.data_type()
        && fields.len() == 2
        && fields[0].data_type() == &DataType::Int32
    {
        let money_type = fields[1].data_type().clone();
        check_money_type(NAME, &money_type)?;
        return Ok(money_type);
    }
    plan_err!("{NAME}: history must be a list as mrr_history returns it, not {history}")
}

/// The fields of a period's totals: its number, money and counts.
fn totals_fields(money_type: &DataType) -> Vec<Field> {
    let mut fields = vec![Field::new("period_number", DataType::Int32, false)];
    fields.extend(
        MONEY_COLUMNS
            .iter()
            .map(|name| Field::new(*name, money_type.clone(), false)),
    );
    fields.extend(
        CUSTOMER_COLUMNS
            .iter()
            .map(|name| Field::new(*name, DataType::Int64, false)),
    );
    fields
}

/// The fields of one reported period.
pub(crate) fn row_fields(money_type: &DataType) -> Fields {
    let mut fields = totals_fields(money_type);
    fields[0] = Field::new("period", DataType::Date32, false);
    fields.push(Field::new("period_complete", DataType::Boolean, false));
    Fields::from(fields)
}

/// The state of a [`MovementsAccumulator`]: the bounds, then the totals by period number.
pub(crate) fn movements_state_fields(
    args: &StateFieldsArgs,
    money_type: &DataType,
) -> Vec<FieldRef> {
    let field = |name: &str, data_type| state_field(args, name, data_type);
    vec![
        field("period", DataType::Utf8),
        field("first_period", DataType::Date32),
        field("last_period", DataType::Date32),
        field("last_day", DataType::Date32),
        field("complete_until", DataType::Date32),
        field(
            "totals",
            list_of(DataType::Struct(Fields::from(totals_fields(money_type)))),
        ),
    ]
}

impl AggregateUDFImpl for RevenueMovements {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let money_type = history_money_type(&arg_types[0])?;
        let expected = [
            ("first_period", Date),
            ("last_period", Date),
            ("last_day", Date),
            ("period", String),
            ("complete_until", Date),
        ];
        check_arguments(NAME, &arg_types[1..], &expected)?;
        Ok(list_of(DataType::Struct(row_fields(&money_type))))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let money_type = history_money_type(args.expr_fields[0].data_type())?;
        match money_type {
            DataType::Decimal128(..) => Ok(Box::new(MovementsAccumulator::<Decimal128Type>::new(
                money_type,
            ))),
            _ => Ok(Box::new(MovementsAccumulator::<Float64Type>::new(
                money_type,
            ))),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let money_type = history_money_type(args.input_fields[0].data_type())?;
        Ok(movements_state_fields(&args, &money_type))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// One period's movements and counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals<N> {
    money: [N; 7],
    customers: [i64; 5],
}

/// `left + right`, or an error when the sum overflows the money type.
fn add<N: ArrowNativeTypeOp>(left: &mut N, right: N) -> Result<()> {
    *left = left
        .add_checked(right)
        .map_err(|_| exec_datafusion_err!("{NAME}: a total of MRR overflows its type"))?;
    Ok(())
}

/// `left − right`, or an error when it overflows.
fn difference<N: ArrowNativeTypeOp>(left: N, right: N) -> Result<N> {
    left.sub_checked(right)
        .map_err(|_| exec_datafusion_err!("{NAME}: a difference of MRR overflows its type"))
}

/// The bookings of one account in one period, from its MRR in the previous period to this one's.
/// An account that pays in the period is booked by one of `continuing` or `arrival`, then by
/// `ending`; one that stopped paying by `churn`.
impl<N: ArrowNativeTypeOp> Totals<N> {
    /// Paid `paid` in the previous period and `mrr` in this one: expansion or contraction.
    pub(crate) fn continuing(&mut self, paid: N, mrr: N) -> Result<()> {
        add(&mut self.money[STARTING], paid)?;
        self.customers[CUSTOMERS_START] += 1;
        if mrr > paid {
            add(&mut self.money[EXPANSION], difference(mrr, paid)?)?;
        } else if mrr < paid {
            add(&mut self.money[CONTRACTION], difference(mrr, paid)?)?;
        }
        Ok(())
    }

    /// Paid nothing in the previous period and `mrr` in this one: new, or a reactivation when it
    /// `paid_before`.
    pub(crate) fn arrival(&mut self, mrr: N, paid_before: bool) -> Result<()> {
        if paid_before {
            add(&mut self.money[REACTIVATION], mrr)?;
            self.customers[REACTIVATED_CUSTOMERS] += 1;
        } else {
            add(&mut self.money[NEW], mrr)?;
            self.customers[NEW_CUSTOMERS] += 1;
        }
        Ok(())
    }

    /// Pays `mrr` at the end of this period.
    pub(crate) fn ending(&mut self, mrr: N) -> Result<()> {
        add(&mut self.money[ENDING], mrr)?;
        self.customers[CUSTOMERS_END] += 1;
        Ok(())
    }

    /// Paid `paid` in the previous period and nothing in this one.
    pub(crate) fn churn(&mut self, paid: N) -> Result<()> {
        add(&mut self.money[STARTING], paid)?;
        add(&mut self.money[CHURNED], N::ZERO.sub_wrapping(paid))?;
        self.customers[CUSTOMERS_START] += 1;
        self.customers[CHURNED_CUSTOMERS] += 1;
        Ok(())
    }
}

/// The totals of every period and the bounds of the report; `revenue_movement_sets` books into
/// it too.
#[derive(Debug)]
pub(crate) struct MovementsAccumulator<T: ArrowPrimitiveType + Debug> {
    money_type: DataType,
    period: Option<Period>,
    /// Totals of the periods from number `base` on.
    base: i32,
    totals: Vec<Totals<T::Native>>,
    first_period: Option<i32>,
    last_period: Option<i32>,
    last_day: Option<i32>,
    complete_until: Option<i32>,
}

impl<T: ArrowPrimitiveType + Debug> MovementsAccumulator<T> {
    pub(crate) fn new(money_type: DataType) -> Self {
        Self {
            money_type,
            period: None,
            base: 0,
            totals: Vec::new(),
            first_period: None,
            last_period: None,
            last_day: None,
            complete_until: None,
        }
    }

    pub(crate) fn period(&self) -> Result<Period> {
        self.period
            .ok_or_else(|| exec_datafusion_err!("{NAME}: period must not be NULL"))
    }

    /// The totals of period `number`, made room for.
    pub(crate) fn at(&mut self, number: i32) -> &mut Totals<T::Native> {
        if self.totals.is_empty() {
            self.base = number;
        }
        if number < self.base {
            let missing = (self.base - number) as usize;
            self.totals
                .splice(0..0, std::iter::repeat_n(Totals::default(), missing));
            self.base = number;
        }
        let index = (number - self.base) as usize;
        if index >= self.totals.len() {
            self.totals.resize(index + 1, Totals::default());
        }
        &mut self.totals[index]
    }

    /// Adds one account's movements; `history` is its MRR by period number, ascending, each
    /// above zero.
    pub(crate) fn add_account(
        &mut self,
        history: impl Iterator<Item = (i32, T::Native)>,
    ) -> Result<()> {
        let mut previous: Option<(i32, T::Native)> = None;
        for (number, mrr) in history {
            if mrr <= T::Native::ZERO {
                return exec_err!(
                    "{NAME}: a history must hold MRR above zero only, as mrr_history gives it"
                );
            }
            match previous {
                Some((last, paid)) if last + 1 == number => {
                    self.at(number).continuing(paid, mrr)?;
                }
                Some((last, paid)) => {
                    self.at(last + 1).churn(paid)?;
                    self.at(number).arrival(mrr, true)?;
                }
                None => self.at(number).arrival(mrr, false)?,
            }
            self.at(number).ending(mrr)?;
            previous = Some((number, mrr));
        }
        if let Some((last, paid)) = previous {
            self.at(last + 1).churn(paid)?;
        }
        Ok(())
    }

    /// Records the bounds of one row of input or state.
    pub(crate) fn add_bounds(
        &mut self,
        period: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
        last_day: Option<i32>,
        complete_until: Option<i32>,
    ) -> Result<()> {
        if let Some(text) = period {
            set_bound(NAME, &mut self.period, Some(parse_period(&text)?), "period")?;
        }
        set_bound(
            NAME,
            &mut self.complete_until,
            complete_until,
            "complete_until",
        )?;
        let earliest = |old: Option<i32>, new: Option<i32>| match (old, new) {
            (Some(old), Some(new)) => Some(old.min(new)),
            (old, new) => old.or(new),
        };
        let latest = |old: Option<i32>, new: Option<i32>| match (old, new) {
            (Some(old), Some(new)) => Some(old.max(new)),
            (old, new) => old.or(new),
        };
        self.first_period = earliest(self.first_period, first);
        self.last_period = latest(self.last_period, last);
        self.last_day = latest(self.last_day, last_day);
        Ok(())
    }

    /// Totals by period number as columns: the number, then the money, then the counts.
    fn totals_columns(&self, numbers: Vec<i32>, totals: &[Totals<T::Native>]) -> Vec<ArrayRef> {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(numbers))];
        for index in 0..MONEY_COLUMNS.len() {
            let values = totals.iter().map(|t| t.money[index]).collect();
            columns.push(money_array::<T>(values, &self.money_type));
        }
        for index in 0..CUSTOMER_COLUMNS.len() {
            columns.push(Arc::new(Int64Array::from_iter_values(
                totals.iter().map(|t| t.customers[index]),
            )));
        }
        columns
    }
}

/// The string at `row` of a string column, if not NULL.
fn string_at(array: &ArrayRef, row: usize) -> Result<Option<String>> {
    let strings = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
    let strings = strings.as_string::<i32>();
    Ok(strings
        .is_valid(row)
        .then(|| strings.value(row).to_string()))
}

impl<T: ArrowPrimitiveType + Debug> Accumulator for MovementsAccumulator<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let lists = values[0].as_list::<i32>();
        let entries = lists.values().as_struct();
        let numbers = entries.column(0).as_primitive::<Int32Type>();
        let sums = entries.column(1).as_primitive::<T>();
        for row in 0..lists.len() {
            self.add_bounds(
                string_at(&values[4], row)?,
                date_at(&values[1], row),
                date_at(&values[2], row),
                date_at(&values[3], row),
                date_at(&values[5], row),
            )?;
            if lists.is_null(row) {
                continue;
            }
            let (start, end) = (
                lists.offsets()[row] as usize,
                lists.offsets()[row + 1] as usize,
            );
            self.add_account((start..end).map(|i| (numbers.value(i), sums.value(i))))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let numbers = (0..self.totals.len() as i32)
            .map(|index| self.base + index)
            .collect();
        let columns = self.totals_columns(numbers, &self.totals);
        let fields = Fields::from(totals_fields(&self.money_type));
        let totals = StructArray::try_new(fields, columns, None)?;
        Ok(vec![
            ScalarValue::Utf8(self.period.map(|period| period.name().to_string())),
            ScalarValue::Date32(self.first_period),
            ScalarValue::Date32(self.last_period),
            ScalarValue::Date32(self.last_day),
            ScalarValue::Date32(self.complete_until),
            report(totals)?,
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[5].as_list::<i32>();
        for row in 0..lists.len() {
            self.add_bounds(
                string_at(&states[0], row)?,
                date_at(&states[1], row),
                date_at(&states[2], row),
                date_at(&states[3], row),
                date_at(&states[4], row),
            )?;
            if lists.is_null(row) {
                continue;
            }
            let totals = lists.value(row);
            let totals = totals.as_struct();
            let numbers = totals.column(0).as_primitive::<Int32Type>();
            for (index, number) in numbers.values().iter().enumerate() {
                for money in 0..MONEY_COLUMNS.len() {
                    let value = totals.column(1 + money).as_primitive::<T>().value(index);
                    add(&mut self.at(*number).money[money], value)?;
                }
                for count in 0..CUSTOMER_COLUMNS.len() {
                    let column = totals.column(1 + MONEY_COLUMNS.len() + count);
                    self.at(*number).customers[count] +=
                        column.as_primitive::<Int64Type>().value(index);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut days = Vec::new();
        let mut totals = Vec::new();
        let mut complete = Vec::new();
        if let (Some(first), Some(last)) = (self.first_period, self.last_period) {
            let period = self.period()?;
            let number = |day: i32| period.number(i64::from(day)) as i32;
            // A period is complete when it had ended by the last snapshot and by
            // `complete_until`: it ends where the next one starts.
            let complete_by = match (self.last_day, self.complete_until) {
                (Some(last), Some(until)) => Some(last.min(until)),
                (last, until) => last.or(until),
            };
            for number in number(first)..=number(last) {
                let day = period.first_day_of(i64::from(number), i64::from(first)) as i32;
                let end = next_period_start(period, day)?;
                days.push(day);
                complete.push(complete_by.is_some_and(|by| end <= by));
                let index = number - self.base;
                totals.push(
                    usize::try_from(index)
                        .ok()
                        .and_then(|index| self.totals.get(index))
                        .copied()
                        .unwrap_or_default(),
                );
            }
        }
        let mut columns = self.totals_columns(vec![0; days.len()], &totals);
        columns[0] = Arc::new(Date32Array::from(days));
        columns.push(Arc::new(BooleanArray::from(complete)));
        let rows = StructArray::try_new(row_fields(&self.money_type), columns, None)?;
        report(rows)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.totals.capacity() * size_of::<Totals<T::Native>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    /// The report of one accumulator as (period day, money, counts) rows.
    type Row = (i32, [i128; 7], [i64; 5]);

    fn decimal_type() -> DataType {
        DataType::Decimal128(38, 2)
    }

    fn rows(accumulator: &mut MovementsAccumulator<Decimal128Type>) -> Vec<Row> {
        let ScalarValue::List(list) = accumulator.evaluate().unwrap() else {
            panic!("a list");
        };
        let rows = list.value(0);
        let rows = rows.as_struct();
        (0..rows.len())
            .map(|row| {
                let money = std::array::from_fn(|index| {
                    rows.column(1 + index)
                        .as_primitive::<Decimal128Type>()
                        .value(row)
                });
                let counts = std::array::from_fn(|index| {
                    rows.column(8 + index)
                        .as_primitive::<Int64Type>()
                        .value(row)
                });
                let day = rows
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                    .value(row);
                (day, money, counts)
            })
            .collect()
    }

    /// Months numbered from January 2024 (month number 24_288, day 19_723).
    fn month(index: i32) -> i32 {
        24_288 + index
    }

    fn accumulator(last_month: i32) -> MovementsAccumulator<Decimal128Type> {
        let mut accumulator = MovementsAccumulator::new(decimal_type());
        let first_day = 19_723;
        let last_day = Period::Month.first_day_of(i64::from(month(last_month)), 0) as i32;
        accumulator
            .add_bounds(
                Some("month".into()),
                Some(first_day),
                Some(last_day),
                Some(last_day),
                None,
            )
            .unwrap();
        accumulator
    }

    #[test]
    fn every_movement_is_booked_in_its_period_and_the_roll_forward_holds() {
        let mut accumulator = accumulator(4);
        // New 100 in Jan, expands to 150 in Feb, contracts to 120 in Mar, churns in Apr.
        let a = [(month(0), 10_000), (month(1), 15_000), (month(2), 12_000)];
        // New in Feb, gone in Mar, back (reactivation) in May.
        let b = [(month(1), 5_000), (month(4), 7_000)];
        accumulator.add_account(a.into_iter()).unwrap();
        accumulator.add_account(b.into_iter()).unwrap();
        let report = rows(&mut accumulator);
        let money: Vec<[i128; 7]> = report.iter().map(|row| row.1).collect();
        assert_eq!(
            money,
            vec![
                [0, 10_000, 0, 0, 0, 0, 10_000],
                [10_000, 5_000, 5_000, 0, 0, 0, 20_000],
                [20_000, 0, 0, 0, -3_000, -5_000, 12_000],
                [12_000, 0, 0, 0, 0, -12_000, 0],
                [0, 0, 0, 7_000, 0, 0, 7_000],
            ]
        );
        let counts: Vec<[i64; 5]> = report.iter().map(|row| row.2).collect();
        assert_eq!(
            counts,
            vec![
                [0, 1, 0, 0, 1],
                [1, 1, 0, 0, 2],
                [2, 0, 0, 1, 1],
                [1, 0, 0, 1, 0],
                [0, 0, 1, 0, 1],
            ]
        );
        for [
            starting,
            new,
            expansion,
            reactivation,
            contraction,
            churned,
            ending,
        ] in money
        {
            assert_eq!(
                starting + new + expansion + reactivation + contraction + churned,
                ending
            );
        }
        assert_eq!(report[0].0, 19_723, "2024-01-01");
    }

    #[test]
    fn churn_after_the_last_period_is_not_reported() {
        let mut accumulator = accumulator(1);
        accumulator
            .add_account([(month(0), 100), (month(1), 100)].into_iter())
            .unwrap();
        assert_eq!(rows(&mut accumulator).len(), 2);
    }

    #[test]
    fn states_merge_to_the_single_pass_totals() {
        let histories = [
            vec![(month(0), 100), (month(2), 300)],
            vec![(month(1), 50)],
            vec![(month(0), 70), (month(1), 80), (month(2), 60)],
        ];
        let mut single = accumulator(3);
        for history in &histories {
            single.add_account(history.iter().copied()).unwrap();
        }
        let mut merged = accumulator(0);
        for history in &histories {
            let mut partial = accumulator(3);
            partial.add_account(history.iter().copied()).unwrap();
            merge_state(&mut partial, &mut merged);
        }
        assert_eq!(rows(&mut merged), rows(&mut single));
    }

    #[test]
    fn no_accounts_give_an_empty_report() {
        let mut accumulator = MovementsAccumulator::<Decimal128Type>::new(decimal_type());
        assert!(rows(&mut accumulator).is_empty());
    }
}
