//! `ces(score [, scale_max])`: the Customer Effort Score, the mean of a group's effort answers.
//!
//! CES asks "how easy was it to ...", on a scale from 1 to 7 (the usual one, and the default) or
//! to 5 or 10. The score is the plain mean, which `avg` would give too; the function exists for
//! what `avg` does not do: an answer outside 1..scale_max is an error that names it, since it
//! means the column holds another scale (a 0–10 NPS answer, a 1–5 CSAT read as 1–7) and the mean
//! would be wrong. NULL answers are ignored; a group without answers gives NULL.
//!
//! The state is the total and the count of the answers, so it merges by adding (see
//! [`crate::score_sums`]).

use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDFImpl, Documentation, Signature};
use datafusion_macros::user_doc;

use crate::number_arguments::{double_of_numbers, number_signature};
use crate::score_sums::{Sums, sums_aggregate_methods};

const NAME: &str = "ces";
/// The usual CES scale, 1 ("very difficult") to 7 ("very easy").
const DEFAULT_SCALE_MAX: f64 = 7.0;

/// The total and the count of a group's answers.
static ANSWERS: Sums<2> = Sums {
    names: ["total", "answers"],
    add: add_answer,
    finish: mean_answer,
};

fn add_answer(columns: &[Float64Array], row: usize, sums: &mut [f64; 2]) -> Result<()> {
    let scores = &columns[0];
    if scores.is_null(row) {
        return Ok(());
    }
    let scale_max = match columns.get(1) {
        Some(scales) if scales.is_valid(row) => scales.value(row),
        _ => DEFAULT_SCALE_MAX,
    };
    if !(scale_max >= 2.0 && scale_max.fract() == 0.0) {
        return exec_err!(
            "{NAME}: argument scale_max must be a whole number of 2 or more, such as 7, not \
             {scale_max}"
        );
    }
    let score = scores.value(row);
    if !(1.0..=scale_max).contains(&score) {
        return exec_err!(
            "{NAME}: score {score} is outside the scale from 1 to {scale_max}; pass the \
             scale's top as the second argument, as in ces(score, 10)"
        );
    }
    sums[0] += score;
    sums[1] += 1.0;
    Ok(())
}

fn mean_answer(&[total, answers]: &[f64; 2]) -> Option<f64> {
    (answers > 0.0).then(|| total / answers)
}

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Customer Effort Score of the group's answers to \"how easy was it\", on a \
scale from 1 to scale_max (default 7): their mean, as a DOUBLE. NULL answers are ignored; a group \
without answers gives NULL. An answer outside 1..scale_max is an error that names it; so is a \
scale_max that is not a whole number of 2 or more. A NULL scale_max is the default.",
    syntax_example = "ces(score[, scale_max])",
    sql_example = r#"```sql
> SELECT ces(score), ces(score, 10) FROM (VALUES (7), (6), (4), (NULL)) AS answers(score);
+--------------------+------------------------------+
| ces(answers.score) | ces(answers.score,Int64(10)) |
+--------------------+------------------------------+
| 5.666666666666667  | 5.666666666666667            |
+--------------------+------------------------------+
```"#,
    argument(
        name = "score",
        description = "The answer, a number from 1 to scale_max, of any numeric type."
    ),
    argument(
        name = "scale_max",
        description = "The top of the scale, a whole number such as 5, 7 or 10, of any \
numeric type. Default: 7."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ces {
    signature: Signature,
}

impl Ces {
    pub(crate) fn new() -> Self {
        Self {
            signature: number_signature(&[1, 2]),
        }
    }
}

impl AggregateUDFImpl for Ces {
    fn name(&self) -> &str {
        NAME
    }

    /// Checks the arguments at planning, naming one that is not a number.
    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        let syntax = "ces(score [, scale_max])";
        double_of_numbers(NAME, syntax, &["score", "scale_max"], 1, arg_fields)
    }

    sums_aggregate_methods!(ANSWERS);

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::common::ScalarValue;

    use super::*;
    use datafusion::logical_expr::Accumulator;

    use crate::score_sums::SumsAccumulator;

    fn ces(columns: Vec<Vec<Option<i64>>>) -> Result<ScalarValue> {
        let mut ces = SumsAccumulator::new(&ANSWERS);
        let columns: Vec<ArrayRef> = columns
            .into_iter()
            .map(|values| Arc::new(Int64Array::from(values)) as ArrayRef)
            .collect();
        ces.update_batch(&columns)?;
        ces.evaluate()
    }

    #[test]
    fn the_mean_of_the_answers_on_one_to_seven() {
        // (7 + 6 + 4 + 1) / 4 = 4.5, the NULL ignored.
        let result = ces(vec![vec![Some(7), Some(6), None, Some(4), Some(1)]]).unwrap();
        assert_eq!(result, ScalarValue::Float64(Some(4.5)));
        assert_eq!(ces(vec![vec![None]]).unwrap(), ScalarValue::Float64(None));
    }

    #[test]
    fn a_wider_scale_takes_its_top_and_a_null_top_is_seven() {
        // 10 on 1..10 and 7 on the default: 8.5.
        let result = ces(vec![vec![Some(10), Some(7)], vec![Some(10), None]]).unwrap();
        assert_eq!(result, ScalarValue::Float64(Some(8.5)));
    }

    #[test]
    fn answers_off_the_scale_and_a_bad_scale_are_errors_naming_them() {
        let error = ces(vec![vec![Some(8)]]).unwrap_err().to_string();
        assert!(
            error.contains("ces: score 8 is outside the scale from 1 to 7"),
            "{error}"
        );
        let error = ces(vec![vec![Some(0)], vec![Some(5)]])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("score 0 is outside the scale from 1 to 5"),
            "{error}"
        );
        let error = ces(vec![vec![Some(1)], vec![Some(1)]])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ces: argument scale_max must be a whole number of 2 or more"),
            "{error}"
        );
    }
}
