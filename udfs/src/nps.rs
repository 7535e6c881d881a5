//! `nps(score)`: the Net Promoter Score of a group's 0–10 survey answers.
//!
//! NPS is the share of promoters (answers 9 and 10) minus the share of detractors (0 to 6), in
//! percentage points, from −100 (all detractors) to 100 (all promoters); passives (7 and 8) count
//! in the total only. By hand it takes two CASE counts over a count, where a NULL answer is easy to
//! count in the total or a 6.5 easy to let through; here NULLs are ignored and an answer that is
//! not a whole number from 0 to 10 is an error that names it, since it means the column holds
//! another scale (a 1–5 CSAT, a percentage) and any figure would be wrong. A group without answers
//! gives NULL, never NaN.
//!
//! The state is the three counts, so it merges by adding (see [`crate::score_sums`]).

use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDFImpl, Documentation, Signature};
use datafusion_macros::user_doc;

use crate::number_arguments::{double_of_numbers, number_signature};
use crate::score_sums::{Sums, sums_aggregate_methods};

const NAME: &str = "nps";

/// Promoters, passives and detractors of a group.
static ANSWERS: Sums<3> = Sums {
    names: ["promoters", "passives", "detractors"],
    add: add_answer,
    finish: net_promoter_score,
};

fn add_answer(columns: &[Float64Array], row: usize, counts: &mut [f64; 3]) -> Result<()> {
    let scores = &columns[0];
    if scores.is_null(row) {
        return Ok(());
    }
    let score = scores.value(row);
    if !((0.0..=10.0).contains(&score) && score.fract() == 0.0) {
        return exec_err!(
            "{NAME}: score {score} is not a whole number from 0 to 10, the scale of a Net \
             Promoter Score answer"
        );
    }
    let category = if score >= 9.0 {
        0
    } else if score >= 7.0 {
        1
    } else {
        2
    };
    counts[category] += 1.0;
    Ok(())
}

fn net_promoter_score(&[promoters, passives, detractors]: &[f64; 3]) -> Option<f64> {
    let answers = promoters + passives + detractors;
    (answers > 0.0).then(|| 100.0 * (promoters - detractors) / answers)
}

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Net Promoter Score of the group's answers to \"how likely are you to recommend \
us, from 0 to 10\", as a DOUBLE from -100 to 100: the percentage of promoters (9 or 10) minus the \
percentage of detractors (0 to 6); passives (7 or 8) count in the total only. NULL answers are \
ignored; a group without answers gives NULL. An answer that is not a whole number from 0 to 10 is \
an error that names it.",
    syntax_example = "nps(score)",
    sql_example = r#"```sql
> SELECT nps(score) FROM (VALUES (10), (9), (9), (8), (7), (3), (NULL)) AS answers(score);
+-----------------------+
| nps(answers.score)    |
+-----------------------+
| 33.333333333333336    |
+-----------------------+
> SELECT plan, nps(score) AS nps FROM surveys JOIN accounts USING (account_id)
  WHERE kind = 'nps' GROUP BY plan ORDER BY plan;
```"#,
    argument(
        name = "score",
        description = "The answer, a whole number from 0 to 10, of any numeric type."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Nps {
    signature: Signature,
}

impl Nps {
    pub(crate) fn new() -> Self {
        Self {
            signature: number_signature(&[1]),
        }
    }
}

impl AggregateUDFImpl for Nps {
    fn name(&self) -> &str {
        NAME
    }

    /// Checks the argument at planning, naming it when it is not a number.
    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        double_of_numbers(NAME, "nps(score)", &["score"], 1, arg_fields)
    }

    sums_aggregate_methods!(ANSWERS);

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array};
    use datafusion::arrow::datatypes::Float64Type;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::EmitTo;

    use super::*;
    use datafusion::logical_expr::{Accumulator, GroupsAccumulator};

    use crate::score_sums::{SumsAccumulator, SumsGroups};
    use datafusion::arrow::datatypes::DataType;

    fn scores(values: &[Option<i64>]) -> Vec<ArrayRef> {
        vec![Arc::new(Int64Array::from(values.to_vec()))]
    }

    fn single(values: &[Option<i64>]) -> ScalarValue {
        let mut nps = SumsAccumulator::new(&ANSWERS);
        nps.update_batch(&scores(values)).unwrap();
        nps.evaluate().unwrap()
    }

    #[test]
    fn promoters_minus_detractors_in_points() {
        // 3 promoters, 2 passives, 1 detractor of 6 answers (the NULL ignored): 50 - 16.67.
        let result = single(&[Some(10), Some(9), Some(9), Some(8), Some(7), Some(3), None]);
        assert_eq!(result, ScalarValue::Float64(Some(100.0 * 2.0 / 6.0)));
        assert_eq!(
            single(&[Some(9), Some(10)]),
            ScalarValue::Float64(Some(100.0))
        );
        assert_eq!(
            single(&[Some(0), Some(6)]),
            ScalarValue::Float64(Some(-100.0))
        );
        assert_eq!(single(&[Some(7), Some(8)]), ScalarValue::Float64(Some(0.0)));
        assert_eq!(single(&[None]), ScalarValue::Float64(None));
    }

    #[test]
    fn an_answer_off_the_scale_is_an_error_naming_it() {
        for score in [11, -1] {
            let mut nps = SumsAccumulator::new(&ANSWERS);
            let error = nps.update_batch(&scores(&[Some(score)])).unwrap_err();
            assert!(
                error.to_string().contains(&format!(
                    "nps: score {score} is not a whole number from 0 to 10"
                )),
                "{error}"
            );
        }
        let mut nps = SumsAccumulator::new(&ANSWERS);
        let halves: ArrayRef = Arc::new(Float64Array::from(vec![6.5]));
        let error = nps.update_batch(&[halves]).unwrap_err().to_string();
        assert!(error.contains("score 6.5 is not a whole number"), "{error}");
    }

    #[test]
    fn groups_keep_their_own_counts_respect_the_filter_and_merge_by_adding() {
        let mut partial = SumsGroups::new(&ANSWERS);
        // Group 0: 10, 3 (the 9 filtered out); group 1: 8.
        let filter = BooleanArray::from(vec![true, false, true, true]);
        partial
            .update_batch(
                &scores(&[Some(10), Some(9), Some(3), Some(8)]),
                &[0, 0, 0, 1],
                Some(&filter),
                2,
            )
            .unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        // Merged twice into group 1 of another, which has a 9 of its own: 10, 3, 10, 3, 9.
        let mut merged = SumsGroups::new(&ANSWERS);
        merged
            .update_batch(&scores(&[Some(9)]), &[1], None, 2)
            .unwrap();
        merged.merge_batch(&state, &[1, 0], 2).unwrap();
        merged.merge_batch(&state, &[1, 1], 2).unwrap();
        let result = merged.evaluate(EmitTo::All).unwrap();
        let result = result.as_primitive::<Float64Type>();
        // Group 0: the 8 alone, 0. Group 1: its 9, the 10 and 3 twice and the 8: 3 promoters, a
        // passive and 2 detractors, (3 - 2) / 6 = 16.67 points.
        assert_eq!(result.value(0), 0.0);
        assert_eq!(result.value(1), 100.0 * 1.0 / 6.0);
    }

    #[test]
    fn planning_rejects_text_naming_it() {
        let field = Arc::new(datafusion::arrow::datatypes::Field::new(
            "comment",
            DataType::Utf8,
            true,
        ));
        let error = Nps::new().return_field(&[field]).unwrap_err().to_string();
        assert!(
            error.contains("nps: argument score: must be a number"),
            "{error}"
        );
    }
}
