//! `to_mrr(amount, billing_interval)`: a subscription's price as monthly recurring revenue.
//!
//! MRR adds up plans billed every month, quarter or year, so each price is first brought to a
//! month: a year's price over 12, a quarter's over 3, a week's times 52/12 and a day's times 365/12
//! (a year's 52 weeks or 365 days spread over its 12 months, as the metric contract says). Money
//! must not pick up float noise on the way, so a DECIMAL amount is computed exactly in integers
//! and stays a DECIMAL, with a scale of at least 6 (a millionth of a currency unit) rounded half to
//! even, the rounding that does not drift when many results are summed.
//!
//! Integers cannot keep their type: a plan of 1,000 a year is 83.333333 a month. They come back as
//! DECIMAL(38, 6), as if they were DECIMAL(p, 0), rather than as DOUBLE, so that integer cents or
//! whole-currency prices stay exact money and sum without float error. Float amounts were never
//! exact and come back as DOUBLE.
//!
//! Interval names are the units of Stripe's `recurring.interval` (`'day'`, `'week'`, `'month'`,
//! `'year'`) and `'quarter'`, and the adjectives that billing exports use for the same
//! (`'daily'`, `'weekly'`, `'monthly'`, `'quarterly'`, `'yearly'`, `'annual'`, `'annually'`), in
//! any case. Anything else is an error that names the value, rather than a NULL that would quietly
//! drop a plan from a revenue total: at planning when the interval is a literal, when the query
//! runs when it is a column.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, new_null_array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    ArrowNativeType, ArrowNativeTypeOp, DECIMAL128_MAX_PRECISION, DECIMAL256_MAX_PRECISION,
    DataType, Decimal128Type, Decimal256Type, DecimalType, Field, FieldRef,
};
use datafusion::common::types::logical_string;
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl,
    Signature, TypeSignature, TypeSignatureClass, Volatility,
};
use datafusion_macros::user_doc;

use crate::number_arguments::{batch_rows, check_number_argument, float_column};
use crate::period::arguments::try_map_valid;

const NAME: &str = "to_mrr";

/// The smallest scale of a DECIMAL result: a millionth of a currency unit.
const MIN_SCALE: i8 = 6;

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Monthly recurring revenue of a price billed every billing_interval: a year's \
amount / 12, a quarter's / 3, a month's as is, a week's * 52 / 12, a day's * 365 / 12. A \
DECIMAL(p, s) amount gives DECIMAL(38, max(s, 6)) (DECIMAL(76, max(s, 6)) for a 256-bit one), \
computed exactly and rounded half to even; an integer amount gives DECIMAL(38, 6), since a \
monthly share of an integer price need not be whole; a float amount gives DOUBLE. An unknown \
interval is an error naming it; NULL in any argument gives NULL.",
    syntax_example = "to_mrr(amount, billing_interval)",
    sql_example = r#"```sql
> SELECT to_mrr(1200, 'year') AS annual_plan,
         to_mrr(CAST(1000.00 AS DECIMAL(10, 2)), 'yearly') AS rounded,
         to_mrr(30.0, 'week') AS weekly_plan;
+-------------+-----------+-------------+
| annual_plan | rounded   | weekly_plan |
+-------------+-----------+-------------+
| 100.000000  | 83.333333 | 130.0       |
+-------------+-----------+-------------+
```"#,
    argument(
        name = "amount",
        description = "The price of one billing interval: any integer, float or DECIMAL."
    ),
    argument(
        name = "billing_interval",
        description = "How often the amount is billed, a string in any case: 'day', 'week', \
'month', 'quarter' or 'year', or 'daily', 'weekly', 'monthly', 'quarterly', 'yearly', 'annual' or \
'annually'. It may be a column."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ToMrr {
    signature: Signature,
}

impl ToMrr {
    pub(crate) fn new() -> Self {
        let variants = vec![
            // The call that information_schema lists, once per example numeric type (an integer,
            // a float and a DECIMAL), which shows the three kinds of result.
            TypeSignature::Coercible(vec![
                Coercion::new_exact(TypeSignatureClass::Numeric),
                Coercion::new_exact(TypeSignatureClass::Native(logical_string())),
            ]),
            // Any other call reaches `return_field_from_args` unchanged through this one, so that
            // its error names the argument, the expression and its type, where DataFusion's would
            // only say that no signature matched.
            TypeSignature::UserDefined,
        ];
        Self {
            signature: Signature::one_of(variants, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToMrr {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        internal_err!("{NAME}: return_field_from_args should be called instead")
    }

    /// The type follows the amount's (see [`monthly_type`]); implemented here rather than in
    /// `return_type` to check the arguments, and a literal interval, while planning.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields = args.arg_fields;
        if fields.len() != 2 {
            return plan_err!(
                "{NAME} takes 2 arguments, {NAME}(amount, billing_interval), but was given {}",
                fields.len()
            );
        }
        check_number_argument(NAME, "amount", &fields[0])?;
        check_interval_type(&fields[1])?;
        if let Some(text) = args.scalar_arguments[1].and_then(|value| value.try_as_str().flatten())
        {
            BillingInterval::parse(text).map_err(DataFusionError::Plan)?;
        }
        let data_type = monthly_type(fields[0].data_type());
        Ok(Arc::new(Field::new(NAME, data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ScalarFunctionArgs {
            args,
            number_rows,
            return_field,
            ..
        } = args;
        let rows = batch_rows(&args, number_rows);
        let result_type = return_field.data_type();
        let monthly: ArrayRef = match Intervals::try_new(&args[1], rows)? {
            // A NULL interval for every row.
            None => new_null_array(result_type, rows),
            Some(intervals) => match *result_type {
                DataType::Float64 => {
                    let amounts = float_column(&args[0], rows)?;
                    Arc::new(monthly_floats(&amounts, &intervals))
                }
                DataType::Decimal128(precision, scale) => {
                    let amounts = args[0].to_array(rows)?;
                    let input_scale = amount_scale(amounts.data_type());
                    let amounts = cast(
                        &amounts,
                        &DataType::Decimal128(DECIMAL128_MAX_PRECISION, input_scale),
                    )?;
                    monthly_decimals::<Decimal128Type>(
                        &amounts,
                        input_scale,
                        precision,
                        scale,
                        &intervals,
                    )?
                }
                DataType::Decimal256(precision, scale) => {
                    let amounts = args[0].to_array(rows)?;
                    let input_scale = amount_scale(amounts.data_type());
                    let amounts = cast(
                        &amounts,
                        &DataType::Decimal256(DECIMAL256_MAX_PRECISION, input_scale),
                    )?;
                    monthly_decimals::<Decimal256Type>(
                        &amounts,
                        input_scale,
                        precision,
                        scale,
                        &intervals,
                    )?
                }
                ref other => return internal_err!("{NAME}: unexpected return type {other}"),
            },
        };
        let all_scalars = args
            .iter()
            .all(|argument| matches!(argument, ColumnarValue::Scalar(_)));
        Ok(if all_scalars {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&monthly, 0)?)
        } else {
            ColumnarValue::Array(monthly)
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The type of the monthly amount of an `amount` of this (numeric) type: DECIMAL stays DECIMAL
/// with a scale of at least [`MIN_SCALE`] and the widest precision of its width (32- to 128-bit
/// decimals become 128-bit), integers (and an untyped NULL) become DECIMAL(38, 6), floats DOUBLE.
fn monthly_type(amount: &DataType) -> DataType {
    match amount {
        DataType::Dictionary(_, values) => monthly_type(values),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
        DataType::Decimal256(_, scale) => {
            DataType::Decimal256(DECIMAL256_MAX_PRECISION, (*scale).max(MIN_SCALE))
        }
        data_type => DataType::Decimal128(
            DECIMAL128_MAX_PRECISION,
            amount_scale(data_type).max(MIN_SCALE),
        ),
    }
}

/// The scale of a DECIMAL amount; 0 for an integer (or NULL), read as a DECIMAL(p, 0).
fn amount_scale(amount: &DataType) -> i8 {
    match amount {
        DataType::Dictionary(_, values) => amount_scale(values),
        DataType::Decimal32(_, scale)
        | DataType::Decimal64(_, scale)
        | DataType::Decimal128(_, scale)
        | DataType::Decimal256(_, scale) => *scale,
        _ => 0,
    }
}

/// Checks at planning that the interval is a string (or an untyped NULL), and otherwise names
/// the expression and its type.
fn check_interval_type(field: &Field) -> Result<()> {
    let is_text = |data_type: &DataType| {
        matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        )
    };
    let text = match field.data_type() {
        DataType::Dictionary(_, values) => is_text(values),
        data_type => is_text(data_type),
    };
    if text {
        Ok(())
    } else {
        plan_err!(
            "{NAME}: argument billing_interval: must be a string such as 'month', but `{}` has \
             type {}",
            field.name(),
            field.data_type()
        )
    }
}

/// How often an amount is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BillingInterval {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl BillingInterval {
    /// Every accepted name, compared in any case.
    const NAMES: [(&'static str, BillingInterval); 12] = [
        ("day", BillingInterval::Day),
        ("daily", BillingInterval::Day),
        ("week", BillingInterval::Week),
        ("weekly", BillingInterval::Week),
        ("month", BillingInterval::Month),
        ("monthly", BillingInterval::Month),
        ("quarter", BillingInterval::Quarter),
        ("quarterly", BillingInterval::Quarter),
        ("year", BillingInterval::Year),
        ("yearly", BillingInterval::Year),
        ("annual", BillingInterval::Year),
        ("annually", BillingInterval::Year),
    ];

    /// The interval named `text`, or the message of the error that names it and lists the valid
    /// names.
    fn parse(text: &str) -> std::result::Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|&(_, interval)| interval)
            .ok_or_else(|| {
                format!(
                    "{NAME}: argument billing_interval: '{text}' is not a billing interval: use \
                     'day', 'week', 'month', 'quarter' or 'year' (or 'daily', 'weekly', \
                     'monthly', 'quarterly', 'yearly', 'annual' or 'annually')"
                )
            })
    }

    /// The interval's name, as in the documentation.
    fn name(self) -> &'static str {
        match self {
            BillingInterval::Day => "day",
            BillingInterval::Week => "week",
            BillingInterval::Month => "month",
            BillingInterval::Quarter => "quarter",
            BillingInterval::Year => "year",
        }
    }

    /// `(numerator, denominator)`: the monthly amount is `amount * numerator / denominator`.
    fn monthly_fraction(self) -> (usize, usize) {
        match self {
            BillingInterval::Day => (365, 12),
            BillingInterval::Week => (52, 12),
            BillingInterval::Month => (1, 1),
            BillingInterval::Quarter => (1, 3),
            BillingInterval::Year => (1, 12),
        }
    }
}

/// The billing intervals of a batch, read once.
#[derive(Debug)]
enum Intervals {
    Constant(BillingInterval),
    /// One per row; rows that `nulls` marks NULL hold a placeholder.
    Column {
        intervals: Vec<BillingInterval>,
        nulls: Option<NullBuffer>,
    },
}

impl Intervals {
    /// Reads the interval argument of a batch of `rows` rows: `None` when it is a NULL constant.
    /// A name that is not an interval is an error here, when the query runs, whether or not its
    /// row's amount is NULL.
    fn try_new(value: &ColumnarValue, rows: usize) -> Result<Option<Self>> {
        match value {
            ColumnarValue::Scalar(scalar) => match scalar.try_as_str().flatten() {
                Some(text) => Ok(Some(Intervals::Constant(
                    BillingInterval::parse(text).map_err(DataFusionError::Execution)?,
                ))),
                None => Ok(None),
            },
            ColumnarValue::Array(array) => {
                let texts = cast(array, &DataType::Utf8)?;
                let texts = texts.as_string::<i32>();
                let mut intervals = vec![BillingInterval::Month; rows];
                for (interval, text) in intervals.iter_mut().zip(texts.iter()) {
                    if let Some(text) = text {
                        *interval =
                            BillingInterval::parse(text).map_err(DataFusionError::Execution)?;
                    }
                }
                Ok(Some(Intervals::Column {
                    intervals,
                    nulls: texts.nulls().cloned(),
                }))
            }
        }
    }

    fn nulls(&self) -> Option<&NullBuffer> {
        match self {
            Intervals::Constant(_) => None,
            Intervals::Column { nulls, .. } => nulls.as_ref(),
        }
    }

    fn at(&self, row: usize) -> BillingInterval {
        match self {
            Intervals::Constant(interval) => *interval,
            Intervals::Column { intervals, .. } => intervals[row],
        }
    }
}

/// The monthly amounts of float `amounts`, as DOUBLE.
fn monthly_floats(amounts: &Float64Array, intervals: &Intervals) -> Float64Array {
    amounts
        .iter()
        .enumerate()
        .map(|(row, amount)| {
            let amount = amount?;
            if intervals.nulls().is_some_and(|nulls| nulls.is_null(row)) {
                return None;
            }
            let (numerator, denominator) = intervals.at(row).monthly_fraction();
            // Multiplying first rounds once where the product is exact: 30 a week is 130.
            Some(amount * numerator as f64 / denominator as f64)
        })
        .collect()
}

/// The monthly amounts of DECIMAL `amounts` (already of type `T`, with scale `input_scale`), as
/// DECIMAL(`precision`, `scale`), exactly, rounded half to even.
fn monthly_decimals<T: DecimalType>(
    amounts: &ArrayRef,
    input_scale: i8,
    precision: u8,
    scale: i8,
    intervals: &Intervals,
) -> Result<ArrayRef> {
    let amounts = amounts.as_primitive::<T>();
    let Ok(scale_up) = u32::try_from(i32::from(scale) - i32::from(input_scale)) else {
        return internal_err!("{NAME}: scale {scale} is below the amount's {input_scale}");
    };
    // None when the factor itself overflows: only a zero amount then fits the result.
    let scale_up = T::Native::usize_as(10).pow_checked(scale_up).ok();
    let nulls = NullBuffer::union(amounts.nulls(), intervals.nulls());
    let monthly = try_map_valid::<T>(amounts.len(), nulls, |row| {
        let amount = amounts.value(row);
        let interval = intervals.at(row);
        match monthly_unscaled(amount, scale_up, interval) {
            Some(monthly) if T::is_valid_decimal_precision(monthly, precision) => Ok(monthly),
            _ => exec_err!(
                "{NAME}: {} a {} is too large a monthly amount for DECIMAL({precision}, \
                 {scale})",
                T::format_decimal(amount, T::MAX_PRECISION, input_scale),
                interval.name()
            ),
        }
    })?;
    Ok(Arc::new(
        monthly.with_precision_and_scale(precision, scale)?,
    ))
}

/// `amount * scale_up * numerator / denominator` of `interval`'s monthly fraction, in unscaled
/// decimal integers, rounded half to even; `None` on overflow.
///
/// With `amount * scale_up = whole * denominator + part`, the result is `whole * numerator +
/// part * numerator / denominator`: no intermediate value is much larger than the result, and
/// `part * numerator` is below 12 * 365.
fn monthly_unscaled<N: ArrowNativeTypeOp>(
    amount: N,
    scale_up: Option<N>,
    interval: BillingInterval,
) -> Option<N> {
    if amount.is_zero() {
        return Some(N::ZERO);
    }
    let scaled = amount.mul_checked(scale_up?).ok()?;
    let (numerator, denominator) = interval.monthly_fraction();
    let (numerator, denominator) = (N::usize_as(numerator), N::usize_as(denominator));
    // Division and remainder truncate toward zero: `part` and so `spread` have the sign of
    // `scaled`, and `quotient` is the result truncated toward zero.
    let whole = scaled.div_wrapping(denominator);
    let spread = scaled.mod_wrapping(denominator).mul_wrapping(numerator);
    let quotient = whole
        .mul_checked(numerator)
        .ok()?
        .add_checked(spread.div_wrapping(denominator))
        .ok()?;
    let remainder = spread.mod_wrapping(denominator);
    // Compare the remainder with half the denominator, without halving.
    let twice = remainder.add_wrapping(remainder);
    let twice = if twice.is_lt(N::ZERO) {
        twice.neg_wrapping()
    } else {
        twice
    };
    let away_from_zero = match twice.compare(denominator) {
        Ordering::Greater => true,
        // A tie goes to the even neighbour.
        Ordering::Equal => !quotient.mod_wrapping(N::usize_as(2)).is_zero(),
        Ordering::Less => false,
    };
    if !away_from_zero {
        Some(quotient)
    } else if scaled.is_lt(N::ZERO) {
        quotient.sub_checked(N::ONE).ok()
    } else {
        quotient.add_checked(N::ONE).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number_arguments::calls::{call, field, plan};
    use datafusion::arrow::array::{
        Decimal128Array, Float32Array, Int32Array, Int64Array, StringArray,
    };
    use datafusion::arrow::datatypes::{Float64Type, i256};

    fn text(value: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_string())))
    }

    fn planned_type(amount: DataType) -> DataType {
        let fields = [field(amount), field(DataType::Utf8)];
        plan(&ToMrr::new(), &fields).unwrap().data_type().clone()
    }

    fn try_invoke(args: Vec<ColumnarValue>) -> Result<ColumnarValue> {
        call(&ToMrr::new(), args)
    }

    /// The result's values as decimal text.
    fn decimal_texts(args: Vec<ColumnarValue>) -> Vec<Option<String>> {
        let array = try_invoke(args).unwrap().to_array(1).unwrap();
        let DataType::Decimal128(precision, scale) = *array.data_type() else {
            panic!("expected a DECIMAL, got {}", array.data_type())
        };
        array
            .as_primitive::<Decimal128Type>()
            .iter()
            .map(|value| value.map(|value| Decimal128Type::format_decimal(value, precision, scale)))
            .collect()
    }

    fn decimals(values: Vec<Option<i128>>, precision: u8, scale: i8) -> ColumnarValue {
        let array = Decimal128Array::from(values)
            .with_precision_and_scale(precision, scale)
            .unwrap();
        ColumnarValue::Array(Arc::new(array))
    }

    #[test]
    fn a_1200_yearly_plan_is_100_a_month() {
        let amounts = ColumnarValue::Array(Arc::new(Int64Array::from(vec![1_200])));
        assert_eq!(
            decimal_texts(vec![amounts, text("year")]),
            vec![Some("100.000000".to_string())]
        );
        let amounts = ColumnarValue::Array(Arc::new(Float64Array::from(vec![1_200.0])));
        let result = try_invoke(vec![amounts, text("Yearly")]).unwrap();
        let result = result.to_array(1).unwrap();
        assert_eq!(result.as_primitive::<Float64Type>().value(0), 100.0);
    }

    #[test]
    fn every_interval_scales_a_decimal_price_exactly() {
        // DECIMAL(10, 2) 120.00 is 12000 at scale 2; results are at scale 6.
        let cases = [
            ("day", "3650.000000"),   // 120 * 365 / 12
            ("week", "520.000000"),   // 120 * 52 / 12
            ("month", "120.000000"),  // 120
            ("quarter", "40.000000"), // 120 / 3
            ("year", "10.000000"),    // 120 / 12
            ("DAILY", "3650.000000"),
            ("Weekly", "520.000000"),
            ("monthly", "120.000000"),
            ("quarterly", "40.000000"),
            ("annual", "10.000000"),
            ("annually", "10.000000"),
        ];
        for (interval, expected) in cases {
            let result = decimal_texts(vec![decimals(vec![Some(12_000)], 10, 2), text(interval)]);
            assert_eq!(result, vec![Some(expected.to_string())], "{interval}");
        }
    }

    #[test]
    fn integer_prices_that_do_not_divide_become_decimals_rounded_to_six_places() {
        // 1,000 / 12 = 83.3333333...; 10 * 52 / 12 = 43.3333333...; 1 * 365 / 12 = 30.4166666...
        let amounts = ColumnarValue::Array(Arc::new(Int32Array::from(vec![1_000, 10, 1])));
        let intervals =
            ColumnarValue::Array(Arc::new(StringArray::from(vec!["year", "week", "day"])));
        assert_eq!(
            decimal_texts(vec![amounts, intervals]),
            vec![
                Some("83.333333".to_string()),
                Some("43.333333".to_string()),
                Some("30.416667".to_string()),
            ]
        );
    }

    #[test]
    fn ties_at_the_seventh_digit_round_half_to_even() {
        // 0.000006 / 12 = 0.0000005 -> 0.000000 (even); 0.000018 / 12 = 0.0000015 -> 0.000002;
        // 0.000030 / 12 = 0.0000025 -> 0.000002; the negatives mirror them.
        let amounts = decimals(
            vec![Some(6), Some(18), Some(30), Some(-6), Some(-18), Some(-30)],
            10,
            6,
        );
        let expected = [
            "0.000000",
            "0.000002",
            "0.000002",
            "0.000000",
            "-0.000002",
            "-0.000002",
        ];
        assert_eq!(
            decimal_texts(vec![amounts, text("year")]),
            expected.map(|text| Some(text.to_string())).to_vec()
        );
    }

    #[test]
    fn rounding_just_off_a_tie_goes_to_the_nearer_value() {
        // 7 / 12 = 0.58..., 5 / 12 = 0.41... millionths.
        let amounts = decimals(vec![Some(7), Some(5), Some(-7)], 10, 6);
        assert_eq!(
            decimal_texts(vec![amounts, text("year")]),
            vec![
                Some("0.000001".to_string()),
                Some("0.000000".to_string()),
                Some("-0.000001".to_string()),
            ]
        );
    }

    #[test]
    fn a_scale_above_six_is_kept() {
        // DECIMAL(20, 8) 0.00000001 yearly is 0.000000000833..., to 8 places 0.00000000.
        assert_eq!(
            planned_type(DataType::Decimal128(20, 8)),
            DataType::Decimal128(38, 8)
        );
        let amounts = decimals(vec![Some(1), Some(1_200)], 20, 8);
        assert_eq!(
            decimal_texts(vec![amounts, text("year")]),
            vec![
                Some("0.00000000".to_string()),
                Some("0.00000100".to_string())
            ]
        );
    }

    #[test]
    fn no_intermediate_product_overflows_before_the_result_does() {
        // i128::MAX = 12 * 14178431955039102644307275309657008810 + 7: a year of it is that
        // quotient, rounded up (7/12 is over a half); a month is itself; a day overflows.
        assert_eq!(
            monthly_unscaled(i128::MAX, Some(1), BillingInterval::Year),
            Some(14_178_431_955_039_102_644_307_275_309_657_008_811)
        );
        assert_eq!(
            monthly_unscaled(i128::MAX, Some(1), BillingInterval::Month),
            Some(i128::MAX)
        );
        assert_eq!(
            monthly_unscaled(i128::MIN + 1, Some(1), BillingInterval::Quarter),
            Some(-56_713_727_820_156_410_577_229_101_238_628_035_242)
        );
        assert_eq!(
            monthly_unscaled(i128::MAX, Some(1), BillingInterval::Day),
            None
        );
        assert_eq!(
            monthly_unscaled(i128::MAX, Some(10), BillingInterval::Year),
            None
        );
        // A factor that overflows by itself still gives 0 for 0.
        assert_eq!(
            monthly_unscaled(0_i128, None, BillingInterval::Year),
            Some(0)
        );
    }

    #[test]
    fn a_result_too_wide_for_the_decimal_is_an_error() {
        // DECIMAL(38, 0) of 33 nines, at scale 6, needs 39 digits.
        let amounts = decimals(vec![Some(10_i128.pow(33) - 1)], 38, 0);
        let error = try_invoke(vec![amounts, text("month")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "to_mrr: 999999999999999999999999999999999 a month is too large a monthly \
                 amount for DECIMAL(38, 6)"
            ),
            "{error}"
        );
    }

    #[test]
    fn decimal256_amounts_stay_256_bit() {
        assert_eq!(
            planned_type(DataType::Decimal256(50, 2)),
            DataType::Decimal256(76, 6)
        );
        let amounts = datafusion::arrow::array::Decimal256Array::from(vec![i256::from_i128(1_800)])
            .with_precision_and_scale(50, 2)
            .unwrap();
        let result = try_invoke(vec![ColumnarValue::Array(Arc::new(amounts)), text("year")])
            .unwrap()
            .to_array(1)
            .unwrap();
        // 18.00 / 12 = 1.5.
        assert_eq!(
            result.as_primitive::<Decimal256Type>().value(0),
            i256::from_i128(1_500_000)
        );
    }

    #[test]
    fn return_type_follows_the_amount() {
        assert_eq!(planned_type(DataType::Int8), DataType::Decimal128(38, 6));
        assert_eq!(planned_type(DataType::UInt64), DataType::Decimal128(38, 6));
        assert_eq!(planned_type(DataType::Null), DataType::Decimal128(38, 6));
        assert_eq!(
            planned_type(DataType::Decimal32(9, 2)),
            DataType::Decimal128(38, 6)
        );
        assert_eq!(
            planned_type(DataType::Decimal128(12, 4)),
            DataType::Decimal128(38, 6)
        );
        assert_eq!(planned_type(DataType::Float32), DataType::Float64);
    }

    #[test]
    fn float_amounts_give_doubles() {
        let amounts = ColumnarValue::Array(Arc::new(Float32Array::from(vec![30.0, 36.0])));
        let intervals = ColumnarValue::Array(Arc::new(StringArray::from(vec!["week", "quarter"])));
        let result = try_invoke(vec![amounts, intervals])
            .unwrap()
            .to_array(1)
            .unwrap();
        let values = result.as_primitive::<Float64Type>().values().to_vec();
        assert_eq!(values, [130.0, 12.0]);
    }

    #[test]
    fn null_amount_or_interval_gives_null() {
        let amounts =
            ColumnarValue::Array(Arc::new(Int64Array::from(vec![None, Some(12), Some(12)])));
        let intervals = ColumnarValue::Array(Arc::new(StringArray::from(vec![
            Some("year"),
            None,
            Some("year"),
        ])));
        assert_eq!(
            decimal_texts(vec![amounts, intervals]),
            vec![None, None, Some("1.000000".to_string())]
        );
        let amounts = ColumnarValue::Array(Arc::new(Int64Array::from(vec![12])));
        let null_interval = ColumnarValue::Scalar(ScalarValue::Utf8(None));
        assert_eq!(decimal_texts(vec![amounts, null_interval]), vec![None]);
    }

    #[test]
    fn planning_rejects_an_unknown_literal_interval_listing_the_valid_ones() {
        let fields = [field(DataType::Int64), field(DataType::Utf8)];
        let interval = ScalarValue::Utf8(Some("fortnight".to_string()));
        let error = ToMrr::new()
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &[None, Some(&interval)],
            })
            .unwrap_err();
        assert!(matches!(error, DataFusionError::Plan(_)), "{error}");
        assert!(
            error.to_string().contains(
                "to_mrr: argument billing_interval: 'fortnight' is not a billing interval: use \
                 'day', 'week', 'month', 'quarter' or 'year' (or 'daily', 'weekly', 'monthly', \
                 'quarterly', 'yearly', 'annual' or 'annually')"
            ),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_interval_in_a_column_fails_when_the_query_runs() {
        let amounts = ColumnarValue::Array(Arc::new(Int64Array::from(vec![12, 12])));
        let intervals = ColumnarValue::Array(Arc::new(StringArray::from(vec!["year", "biweekly"])));
        let error = try_invoke(vec![amounts, intervals]).unwrap_err();
        assert!(matches!(error, DataFusionError::Execution(_)), "{error}");
        assert!(
            error.to_string().contains(
                "to_mrr: argument billing_interval: 'biweekly' is not a billing interval"
            ),
            "{error}"
        );
    }

    #[test]
    fn planning_rejects_a_text_amount_and_a_numeric_interval() {
        let plan = |fields: [FieldRef; 2]| plan(&ToMrr::new(), &fields).unwrap_err().to_string();
        let error = plan([
            Arc::new(Field::new("price", DataType::Utf8, true)),
            field(DataType::Utf8),
        ]);
        assert!(
            error.contains(
                "to_mrr: argument amount: must be a number (an integer, a float or a DECIMAL), \
                 but `price` has type Utf8"
            ),
            "{error}"
        );
        let error = plan([
            field(DataType::Int64),
            Arc::new(Field::new("months", DataType::Int32, true)),
        ]);
        assert!(
            error.contains(
                "to_mrr: argument billing_interval: must be a string such as 'month', but \
                 `months` has type Int32"
            ),
            "{error}"
        );
    }

    #[test]
    fn documentation_lists_every_argument() {
        let function = ToMrr::new();
        let documentation = function.documentation().unwrap();
        let names = documentation
            .arguments
            .as_ref()
            .unwrap()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>();
        assert_eq!(names, ["amount", "billing_interval"]);
    }
}
