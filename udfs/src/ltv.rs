//! `ltv(arpa, churn_rate [, gross_margin])`: customer lifetime value from revenue and churn.
//!
//! The textbook estimate: with a constant churn rate `c` per period a customer stays `1 / c`
//! periods on average (the mean of a geometric distribution), so it brings `arpa / c` of revenue,
//! or `arpa * gross_margin / c` of gross profit. `revenue_churn` computes the same figure from the
//! mean logo churn of recent months; this scalar lets an analyst compute it from any ARPA and
//! churn they have, with the same rule for what has no answer: a churn rate of 0 (or below, which
//! is growth) would promise an infinite lifetime, so it gives NULL rather than infinity.

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

const NAME: &str = "ltv";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Customer lifetime value as a DOUBLE: arpa * gross_margin / churn_rate, the \
revenue (or, with a gross margin, the gross profit) of an average customer over its expected \
lifetime of 1 / churn_rate periods. ARPA 100 a month with 5% monthly churn gives 2,000. NULL when \
churn_rate is 0 or below (no churn, or growth, promises no finite lifetime) or NaN, and when any \
argument is NULL. DECIMAL arguments are read as DOUBLE.",
    syntax_example = "ltv(arpa, churn_rate[, gross_margin])",
    sql_example = r#"```sql
> SELECT ltv(100, 0.05) AS revenue_ltv,
         ltv(100, 0.05, 0.8) AS gross_profit_ltv,
         ltv(100, 0) AS no_churn;
+-------------+------------------+----------+
| revenue_ltv | gross_profit_ltv | no_churn |
+-------------+------------------+----------+
| 2000.0      | 1600.0           | NULL     |
+-------------+------------------+----------+
```"#,
    argument(
        name = "arpa",
        description = "Average revenue per account in one period (a month, for monthly churn). \
Any integer, float or DECIMAL."
    ),
    argument(
        name = "churn_rate",
        description = "The churn rate per period of the same length, as a fraction (0.05 for \
5%), for example from churn_rate(). Any integer, float or DECIMAL."
    ),
    argument(
        name = "gross_margin",
        description = "The share of revenue kept as gross profit, as a fraction (0.8 for 80%). \
Any integer, float or DECIMAL. Default: 1.0, so that the result is revenue."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ltv {
    signature: Signature,
}

impl Ltv {
    pub(crate) fn new() -> Self {
        Self {
            signature: number_signature(&[2, 3]),
        }
    }
}

impl ScalarUDFImpl for Ltv {
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
        if !(2..=3).contains(&fields.len()) {
            return plan_err!(
                "{NAME} takes 2 or 3 arguments, {NAME}(arpa, churn_rate [, gross_margin]), but \
                 was given {}",
                fields.len()
            );
        }
        for (field, argument) in fields.iter().zip(["arpa", "churn_rate", "gross_margin"]) {
            check_number_argument(NAME, argument, field)?;
        }
        Ok(Arc::new(Field::new(NAME, DataType::Float64, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = batch_rows(&args.args, args.number_rows);
        let arpas = float_column(&args.args[0], rows)?;
        let churn_rates = float_column(&args.args[1], rows)?;
        let margins = match args.args.get(2) {
            Some(margins) => float_column(margins, rows)?,
            None => Float64Array::from_value(1.0, rows),
        };
        let values: Float64Array = arpas
            .iter()
            .zip(churn_rates.iter())
            .zip(margins.iter())
            .map(
                |((arpa, churn_rate), margin)| match (arpa, churn_rate, margin) {
                    // `> 0.0` is false for NaN too.
                    (Some(arpa), Some(churn_rate), Some(margin)) if churn_rate > 0.0 => {
                        Some(arpa * margin / churn_rate)
                    }
                    _ => None,
                },
            )
            .collect();
        float_result(&args.args, values)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number_arguments::calls::{call, field, floats, plan};
    use datafusion::arrow::array::{Array, Decimal128Array, Int64Array};
    use datafusion::common::ScalarValue;

    fn invoke(args: Vec<ColumnarValue>) -> ColumnarValue {
        call(&Ltv::new(), args).unwrap()
    }

    fn values(args: Vec<ColumnarValue>) -> Vec<Option<f64>> {
        floats(&Ltv::new(), args)
    }

    fn double(value: f64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Float64(Some(value)))
    }

    fn scalar_value(args: Vec<ColumnarValue>) -> Option<f64> {
        match invoke(args) {
            ColumnarValue::Scalar(ScalarValue::Float64(value)) => value,
            other => panic!("expected a DOUBLE scalar, got {other:?}"),
        }
    }

    #[test]
    fn arpa_100_with_5_percent_monthly_churn_is_worth_2000() {
        assert_eq!(
            scalar_value(vec![double(100.0), double(0.05)]),
            Some(2_000.0)
        );
    }

    #[test]
    fn gross_margin_scales_the_value() {
        // 100 * 0.8 / 0.05 = 1,600.
        let result = scalar_value(vec![double(100.0), double(0.05), double(0.8)]);
        assert_eq!(result, Some(1_600.0));
    }

    #[test]
    fn decimal_arpa_and_integer_churn_are_read_as_doubles() {
        // DECIMAL(10, 2) 150.00 with a churn rate of 1 (everyone leaves after a period).
        let arpas = Decimal128Array::from(vec![15_000])
            .with_precision_and_scale(10, 2)
            .unwrap();
        let churn_rates = Int64Array::from(vec![1]);
        let result = values(vec![
            ColumnarValue::Array(Arc::new(arpas)),
            ColumnarValue::Array(Arc::new(churn_rates)),
        ]);
        assert_eq!(result, vec![Some(150.0)]);
    }

    #[test]
    fn churn_of_zero_or_below_or_nan_gives_null() {
        let arpas = Float64Array::from(vec![100.0; 4]);
        let churn_rates = Float64Array::from(vec![0.0, -0.02, f64::NAN, 0.5]);
        let result = values(vec![
            ColumnarValue::Array(Arc::new(arpas)),
            ColumnarValue::Array(Arc::new(churn_rates)),
        ]);
        assert_eq!(result, vec![None, None, None, Some(200.0)]);
    }

    #[test]
    fn null_in_any_argument_gives_null() {
        let arpas = Float64Array::from(vec![None, Some(100.0), Some(100.0), Some(100.0)]);
        let churn_rates = Float64Array::from(vec![Some(0.1), None, Some(0.1), Some(0.1)]);
        let margins = Float64Array::from(vec![Some(0.5), Some(0.5), None, Some(0.5)]);
        let result = values(vec![
            ColumnarValue::Array(Arc::new(arpas)),
            ColumnarValue::Array(Arc::new(churn_rates)),
            ColumnarValue::Array(Arc::new(margins)),
        ]);
        assert_eq!(result, vec![None, None, None, Some(500.0)]);
        assert!(
            invoke(vec![
                double(100.0),
                double(0.1),
                ColumnarValue::Scalar(ScalarValue::Null),
            ])
            .to_array(1)
            .unwrap()
            .is_null(0)
        );
    }

    #[test]
    fn planning_rejects_a_boolean_margin_naming_argument_and_type() {
        let fields = [
            field(DataType::Float64),
            field(DataType::Float64),
            Arc::new(Field::new("is_paid", DataType::Boolean, true)),
        ];
        let error = plan(&Ltv::new(), &fields).unwrap_err().to_string();
        assert!(
            error.contains(
                "ltv: argument gross_margin: must be a number (an integer, a float or a \
                 DECIMAL), but `is_paid` has type Boolean"
            ),
            "{error}"
        );
    }

    #[test]
    fn planning_rejects_a_single_argument() {
        let fields = [field(DataType::Float64)];
        let error = plan(&Ltv::new(), &fields).unwrap_err().to_string();
        assert!(error.contains("ltv takes 2 or 3 arguments"), "{error}");
    }

    #[test]
    fn documentation_lists_every_argument() {
        let function = Ltv::new();
        let documentation = function.documentation().unwrap();
        let names = documentation
            .arguments
            .as_ref()
            .unwrap()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>();
        assert_eq!(names, ["arpa", "churn_rate", "gross_margin"]);
    }
}
