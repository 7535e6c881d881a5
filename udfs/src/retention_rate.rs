//! `retention_rate(start_count, end_count, new_count)`: the classic customer retention rate.
//!
//! Customer-success teams report `(end - new) / start`: of the customers at the start of a period,
//! the share still there at its end, counted from the two headcounts and the new customers won in
//! between (1,000 at the start, 950 at the end of which 100 are new → 0.85). It is the complement
//! of `churn_rate` when the end count is split into kept and new, and the function exists for the
//! same reasons: written by hand the division is done in integers or by zero (NaN, infinity or an
//! error, depending on the types). Here it is always DOUBLE, and NULL where the start is 0.

use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};
use datafusion_macros::user_doc;

use crate::number_arguments::{double_of_three, number_signature, three_number_methods};

const NAME: &str = "retention_rate";
const ARGUMENTS: [&str; 3] = ["start_count", "end_count", "new_count"];

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Customer retention rate of a period as a DOUBLE fraction: (end_count - \
new_count) / start_count, the share of the customers at the start who are still there at the end, \
where end_count counts every customer at the end and new_count those of them won during the \
period. 1,000 customers at the start and 950 at the end, of which 100 new, give 0.85. A \
start_count of 0 gives NULL, never NaN or infinity; NULL in any argument gives NULL.",
    syntax_example = "retention_rate(start_count, end_count, new_count)",
    sql_example = r#"```sql
> SELECT retention_rate(1000, 950, 100) AS retained,
         retention_rate(0, 10, 10) AS empty_start;
+----------+-------------+
| retained | empty_start |
+----------+-------------+
| 0.85     | NULL        |
+----------+-------------+
```"#,
    argument(
        name = "start_count",
        description = "Customers at the start of the period. Any integer, float or DECIMAL."
    ),
    argument(
        name = "end_count",
        description = "Customers at the end of the period, new ones included. Any integer, \
float or DECIMAL."
    ),
    argument(
        name = "new_count",
        description = "Customers won during the period (and so counted in end_count). Any \
integer, float or DECIMAL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct RetentionRate {
    signature: Signature,
}

impl RetentionRate {
    pub(crate) fn new() -> Self {
        Self {
            signature: number_signature(&[3]),
        }
    }
}

impl ScalarUDFImpl for RetentionRate {
    three_number_methods!(
        NAME,
        "retention_rate(start_count, end_count, new_count)",
        ARGUMENTS
    );

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // `!= 0.0` is also false for -0.0.
        double_of_three(&args, |start, end, new| {
            Ok((start != 0.0).then(|| (end - new) / start))
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Decimal128Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::common::ScalarValue;

    use super::*;
    use crate::number_arguments::calls::{call, field, floats, plan};

    fn column(values: Vec<Option<i64>>) -> ColumnarValue {
        ColumnarValue::Array(Arc::new(Int64Array::from(values)))
    }

    #[test]
    fn a_thousand_at_the_start_950_at_the_end_of_which_100_new_is_85_percent() {
        // (950 - 100) / 1,000 = 0.85.
        let result = floats(
            &RetentionRate::new(),
            vec![
                column(vec![Some(1_000)]),
                column(vec![Some(950)]),
                column(vec![Some(100)]),
            ],
        );
        assert_eq!(result, vec![Some(0.85)]);
    }

    #[test]
    fn zero_start_and_nulls_give_null() {
        // 0 at the start: NULL; a NULL anywhere: NULL; 10 kept of 40: 0.25.
        let result = floats(
            &RetentionRate::new(),
            vec![
                column(vec![Some(0), None, Some(40), Some(40)]),
                column(vec![Some(5), Some(5), None, Some(15)]),
                column(vec![Some(5), Some(0), Some(0), Some(5)]),
            ],
        );
        assert_eq!(result, vec![None, None, None, Some(0.25)]);
    }

    #[test]
    fn decimals_and_scalars_give_a_double_scalar() {
        let decimal = |cents| ColumnarValue::Scalar(ScalarValue::Decimal128(Some(cents), 10, 2));
        let result = call(
            &RetentionRate::new(),
            vec![decimal(20_000), decimal(19_000), decimal(3_000)],
        )
        .unwrap();
        // (190 - 30) / 200 = 0.8.
        assert!(matches!(
            result,
            ColumnarValue::Scalar(ScalarValue::Float64(Some(rate))) if rate == 0.8
        ));
        let decimals = Decimal128Array::from(vec![10_000])
            .with_precision_and_scale(10, 2)
            .unwrap();
        let result = floats(
            &RetentionRate::new(),
            vec![
                ColumnarValue::Array(Arc::new(decimals)),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(100))),
                ColumnarValue::Scalar(ScalarValue::Float64(Some(50.0))),
            ],
        );
        assert_eq!(result, vec![Some(0.5)]);
    }

    #[test]
    fn planning_names_a_wrong_argument_and_a_wrong_count() {
        let fields = [
            field(DataType::Int64),
            field(DataType::Int64),
            Arc::new(Field::new("plan", DataType::Utf8, true)),
        ];
        let error = plan(&RetentionRate::new(), &fields)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("retention_rate: argument new_count: must be a number"),
            "{error}"
        );
        let error = plan(&RetentionRate::new(), &fields[..2])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("retention_rate takes 3 arguments"),
            "{error}"
        );
    }
}
