//! `churn_rate(start_count, end_count)`: the share of a starting base that was lost.
//!
//! Churn is the metric every subscription business reports, and the one most often computed by
//! hand with a subtle mistake: `1 - end / start` rounds differently from `(start - end) / start`
//! (1,000 customers with 900 left gives 0.09999999999999998 the first way), and a period that
//! starts with no customers divides by zero, which SQL engines answer with an error, NaN or
//! infinity depending on the types. This function always computes `(start - end) / start` in
//! DOUBLE and answers NULL where the base is 0, as the metric conventions want of every ratio.
//!
//! `end_count` counts what is left of the *starting* base (customers, or their revenue) at the end
//! of the period, without anything new: a negative result is growth, as revenue churn is when the
//! customers who stayed expand by more than the others took away.

use std::sync::Arc;

use datafusion::arrow::array::Float64Array;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, internal_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};
use datafusion_macros::user_doc;

use crate::number_arguments::{
    batch_rows, check_number_argument, float_column, float_result, number_signature,
};

const NAME: &str = "churn_rate";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Churn rate of a period as a DOUBLE fraction: (start_count - end_count) / \
start_count, where end_count counts what remains of the starting base (customers, or their \
revenue) at the end of the period, new business excluded. 1,000 customers of whom 900 remain \
give 0.1. A negative rate is growth (net negative revenue churn: the customers who stayed \
expanded by more than the others took away). A start_count of 0 gives NULL, never NaN or \
infinity; NULL in any argument gives NULL.",
    syntax_example = "churn_rate(start_count, end_count)",
    sql_example = r#"```sql
> SELECT churn_rate(1000, 900) AS logo_churn,
         churn_rate(275000, 305000) AS revenue_churn,
         churn_rate(0, 0) AS empty;
+------------+----------------------+-------+
| logo_churn | revenue_churn        | empty |
+------------+----------------------+-------+
| 0.1        | -0.10909090909090909 | NULL  |
+------------+----------------------+-------+
```"#,
    argument(
        name = "start_count",
        description = "The base at the start of the period: a number of customers, or an amount \
of revenue. Any integer, float or DECIMAL (read as a DOUBLE)."
    ),
    argument(
        name = "end_count",
        description = "What remains of that same base at the end of the period, of the same \
kinds as start_count (it may be of another numeric type)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ChurnRate {
    signature: Signature,
}

impl ChurnRate {
    pub(crate) fn new() -> Self {
        Self {
            signature: number_signature(&[2]),
        }
    }
}

impl ScalarUDFImpl for ChurnRate {
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

    /// Always DOUBLE; implemented here rather than in `return_type` to check the argument types
    /// while planning.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields = args.arg_fields;
        if fields.len() != 2 {
            return plan_err!(
                "{NAME} takes 2 arguments, {NAME}(start_count, end_count), but was given {}",
                fields.len()
            );
        }
        check_number_argument(NAME, "start_count", &fields[0])?;
        check_number_argument(NAME, "end_count", &fields[1])?;
        Ok(Arc::new(Field::new(NAME, DataType::Float64, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = batch_rows(&args.args, args.number_rows);
        let starts = float_column(&args.args[0], rows)?;
        let ends = float_column(&args.args[1], rows)?;
        let rates: Float64Array = starts
            .iter()
            .zip(ends.iter())
            .map(|(start, end)| match (start, end) {
                // `!= 0.0` is also false for -0.0.
                (Some(start), Some(end)) if start != 0.0 => Some((start - end) / start),
                _ => None,
            })
            .collect();
        float_result(&args.args, rates)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number_arguments::calls::{call, field, floats, plan};
    use datafusion::arrow::array::{Decimal128Array, Int32Array, Int64Array};
    use datafusion::common::ScalarValue;

    fn invoke(args: Vec<ColumnarValue>) -> ColumnarValue {
        call(&ChurnRate::new(), args).unwrap()
    }

    fn rates(args: Vec<ColumnarValue>) -> Vec<Option<f64>> {
        floats(&ChurnRate::new(), args)
    }

    fn plan_error(fields: &[FieldRef]) -> String {
        plan(&ChurnRate::new(), fields).unwrap_err().to_string()
    }

    #[test]
    fn nine_hundred_left_of_a_thousand_is_a_tenth_exactly() {
        let starts = Int64Array::from(vec![1_000]);
        let ends = Int64Array::from(vec![900]);
        let result = rates(vec![
            ColumnarValue::Array(Arc::new(starts)),
            ColumnarValue::Array(Arc::new(ends)),
        ]);
        // The same f64 as the literal 0.1, which `1 - 900 / 1000` would miss.
        assert_eq!(result, vec![Some(0.1)]);
    }

    #[test]
    fn revenue_that_grew_is_negative_churn() {
        // 275,000 to 305,000: -30,000 / 275,000 = -0.10909...
        let starts = Decimal128Array::from(vec![27_500_000])
            .with_precision_and_scale(12, 2)
            .unwrap();
        let ends = Decimal128Array::from(vec![30_500_000])
            .with_precision_and_scale(12, 2)
            .unwrap();
        let result = rates(vec![
            ColumnarValue::Array(Arc::new(starts)),
            ColumnarValue::Array(Arc::new(ends)),
        ]);
        assert_eq!(result, vec![Some(-30_000.0 / 275_000.0)]);
    }

    #[test]
    fn zero_start_gives_null_not_nan_or_infinity() {
        let starts = Int32Array::from(vec![0, 0, 10]);
        let ends = Int32Array::from(vec![0, 5, 5]);
        let result = rates(vec![
            ColumnarValue::Array(Arc::new(starts)),
            ColumnarValue::Array(Arc::new(ends)),
        ]);
        assert_eq!(result, vec![None, None, Some(0.5)]);
    }

    #[test]
    fn negative_zero_start_gives_null() {
        let result = invoke(vec![
            ColumnarValue::Scalar(ScalarValue::Float64(Some(-0.0))),
            ColumnarValue::Scalar(ScalarValue::Float64(Some(1.0))),
        ]);
        assert!(matches!(
            result,
            ColumnarValue::Scalar(ScalarValue::Float64(None))
        ));
    }

    #[test]
    fn null_in_either_argument_gives_null() {
        let starts = Int64Array::from(vec![None, Some(10), Some(10)]);
        let ends = ColumnarValue::Array(Arc::new(Int64Array::from(vec![Some(1), None, Some(1)])));
        let result = rates(vec![ColumnarValue::Array(Arc::new(starts)), ends]);
        assert_eq!(result, vec![None, None, Some(0.9)]);
    }

    #[test]
    fn scalars_in_give_a_scalar_out() {
        let result = invoke(vec![
            ColumnarValue::Scalar(ScalarValue::Int64(Some(4))),
            ColumnarValue::Scalar(ScalarValue::Float32(Some(3.0))),
        ]);
        let ColumnarValue::Scalar(ScalarValue::Float64(Some(rate))) = result else {
            panic!("expected a DOUBLE scalar, got {result:?}")
        };
        assert_eq!(rate, 0.25);
    }

    #[test]
    fn planning_rejects_text_naming_argument_and_type() {
        let fields = [
            field(DataType::Int64),
            Arc::new(Field::new("plan", DataType::Utf8, true)),
        ];
        let error = plan_error(&fields);
        assert!(
            error.contains(
                "churn_rate: argument end_count: must be a number (an integer, a float or a \
                 DECIMAL), but `plan` has type Utf8"
            ),
            "{error}"
        );
    }

    #[test]
    fn planning_rejects_a_third_argument() {
        let fields = [
            field(DataType::Int64),
            field(DataType::Int64),
            field(DataType::Int64),
        ];
        let error = plan_error(&fields);
        assert!(error.contains("churn_rate takes 2 arguments"), "{error}");
    }

    #[test]
    fn return_type_is_double_for_every_numeric_type() {
        for data_type in [
            DataType::Int8,
            DataType::UInt64,
            DataType::Float16,
            DataType::Decimal32(9, 2),
            DataType::Decimal256(76, 10),
            DataType::Null,
        ] {
            let fields = [field(data_type.clone()), field(data_type.clone())];
            let returned = plan(&ChurnRate::new(), &fields).unwrap();
            assert_eq!(returned.data_type(), &DataType::Float64, "{data_type}");
        }
    }

    #[test]
    fn documentation_lists_every_argument() {
        let function = ChurnRate::new();
        let documentation = function.documentation().unwrap();
        let names = documentation
            .arguments
            .as_ref()
            .unwrap()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>();
        assert_eq!(names, ["start_count", "end_count"]);
    }
}
