//! `step_number(value, step_1, ..., step_n)`: which of a funnel's steps a value names, as its
//! number from 1, or 0.
//!
//! The `funnel` table function keeps only the rows of its steps and then tests each row against
//! each step again for `window_funnel`'s conditions. As `event IN (...)` and `event = '...'`,
//! DataFusion hashes every string of the scan and compares the kept ones once per step: together
//! 20% of the funnel benchmark's time, more than the aggregate. One pass that numbers the step
//! does both: the filter keeps the rows whose number is above 0, and the conditions compare
//! integers. Over `Utf8View`, the type the lake's strings are read as, a value is compared by its
//! 16-byte view first: its length and first bytes (all of them, up to 12) settle almost every
//! row without reaching the string's bytes.

use std::sync::Arc;

use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Scalar, StringViewArray, new_null_array,
};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion_macros::user_doc;

const NAME: &str = "step_number";

/// A view's bytes that hold its string inline: at most 12.
const MOST_INLINE_BYTES: u32 = 12;

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The number from 1 of the first of the constants step_1, ..., step_n that \
value equals, or 0 when it equals none; NULL when value is NULL. The step of a funnel that an \
event is: step_number(event, 'signup', 'login', 'export') is 2 for 'login'. The constants are \
cast to value's type.",
    syntax_example = "step_number(value, step_1[, ..., step_n])",
    sql_example = r#"```sql
> SELECT step_number('login', 'signup', 'login', 'export') AS login,
         step_number('home', 'signup', 'login') AS home;
+-------+------+
| login | home |
+-------+------+
| 2     | 0    |
+-------+------+
```"#,
    argument(
        name = "value",
        description = "Any column or expression, such as event."
    ),
    argument(
        name = "step_1, ..., step_n",
        description = "Constants of value's type (or castable to it), not NULL."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct StepNumber {
    signature: Signature,
}

impl StepNumber {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The type the steps are compared in: a dictionary's values' type.
fn compared_type(value: &DataType) -> &DataType {
    match value {
        DataType::Dictionary(_, values) => values,
        other => other,
    }
}

impl ScalarUDFImpl for StepNumber {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let Some(value) = arg_types.first() else {
            return plan_err!("{NAME} takes a value and 1 or more steps, got no arguments");
        };
        let mut types = vec![value.clone()];
        types.extend(std::iter::repeat_n(
            compared_type(value).clone(),
            arg_types.len() - 1,
        ));
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    /// INT, for a value and at least one step.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if args.arg_fields.len() < 2 {
            return plan_err!(
                "{NAME} takes a value and 1 or more steps, {NAME}(value, step_1[, ..., \
                 step_n]), but was given {} argument(s)",
                args.arg_fields.len()
            );
        }
        Ok(Arc::new(Field::new(NAME, DataType::Int32, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut steps = Vec::with_capacity(args.args.len() - 1);
        for (position, step) in args.args.iter().enumerate().skip(1) {
            match step {
                ColumnarValue::Scalar(value) if !value.is_null() => steps.push(value.clone()),
                _ => {
                    return exec_err!(
                        "{NAME}: step_{position} must be a constant that is not NULL, such as \
                         'signup'"
                    );
                }
            }
        }
        match &args.args[0] {
            ColumnarValue::Array(values) => Ok(ColumnarValue::Array(numbers(values, &steps)?)),
            ColumnarValue::Scalar(value) => {
                let numbers = numbers(&value.to_array()?, &steps)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &numbers, 0,
                )?))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The step number of every value.
fn numbers(values: &ArrayRef, steps: &[ScalarValue]) -> Result<ArrayRef> {
    match values.data_type() {
        DataType::Dictionary(_, _) => {
            let dictionary = values.as_any_dictionary();
            let numbered = numbers(dictionary.values(), steps)?;
            Ok(take(&numbered, dictionary.keys(), None)?)
        }
        DataType::Utf8View => {
            let texts: Option<Vec<&str>> = steps
                .iter()
                .map(|step| step.try_as_str().flatten())
                .collect();
            match texts {
                Some(texts) => Ok(Arc::new(view_numbers(values.as_string_view(), &texts))),
                None => compared_numbers(values, steps),
            }
        }
        DataType::Null => Ok(new_null_array(&DataType::Int32, values.len())),
        _ => compared_numbers(values, steps),
    }
}

/// Numbers by Arrow's comparison kernels, for any type: each step marks the rows it equals that
/// no earlier step marked.
fn compared_numbers(values: &ArrayRef, steps: &[ScalarValue]) -> Result<ArrayRef> {
    let mut numbers = vec![0_i32; values.len()];
    for (index, step) in steps.iter().enumerate().rev() {
        let step = cast(&step.to_array()?, values.data_type())?;
        let equal: BooleanArray = eq(values, &Scalar::new(step))?;
        for row in equal.values().set_indices() {
            numbers[row] = index as i32 + 1;
        }
    }
    Ok(Arc::new(Int32Array::new(
        numbers.into(),
        values.logical_nulls(),
    )))
}

/// The longest string whose length `view_numbers` looks up in a table; longer steps are compared
/// one by one.
const LONGEST_LOOKED_UP: usize = 63;

/// In `view_numbers`' table of lengths: more than one step has this length.
const SEVERAL: u8 = u8::MAX;

/// Numbers over string views. A value's length (in its view) picks the one step it may be, and
/// one comparison of 16 bytes settles a string of at most 12 bytes (held whole in the view); a
/// longer one is compared by its length and first 4 bytes (the view's low 64 bits), and only then
/// by its bytes. The per-row work has no branch but on the string's kind (inline or not) and on a
/// long string's prefix matching a step's, which only a step's own rows do (or 64-byte strings and
/// lengths that several steps share, compared step by step). Filtering the benchmark lake's 30M
/// rows by it took 93 ms, against 167 ms with a branch on each step's length and 123 ms for `IN`.
fn view_numbers(values: &StringViewArray, steps: &[&str]) -> Int32Array {
    // The views of the steps after a sentinel at 0, which no view equals (no string is 4 GiB).
    let views: Vec<u128> = std::iter::once(u128::from(u32::MAX))
        .chain(steps.iter().map(|text| make_view(text.as_bytes(), 0, 0)))
        .collect();
    // The step (numbered from 1) that a length may be, 0 for none.
    let mut by_length = [0_u8; LONGEST_LOOKED_UP + 2];
    for (index, text) in steps.iter().enumerate() {
        let slot = &mut by_length[text.len().min(LONGEST_LOOKED_UP + 1)];
        *slot = if *slot == 0 && text.len() <= LONGEST_LOOKED_UP {
            index as u8 + 1
        } else {
            SEVERAL
        };
    }
    let equal = |row: usize, view: u128, number: usize| {
        if view as u32 <= MOST_INLINE_BYTES {
            views[number] == view
        } else {
            views[number] as u64 == view as u64
                // SAFETY: `row` is one of the array's rows (it comes from its views).
                && unsafe { values.value_unchecked(row) } == steps[number - 1]
        }
    };
    let numbers: Vec<i32> = values
        .views()
        .iter()
        .enumerate()
        .map(|(row, &view)| {
            let length = (view as u32 as usize).min(LONGEST_LOOKED_UP + 1);
            let candidate = by_length[length];
            if candidate == SEVERAL {
                (1..=steps.len())
                    .find(|&number| equal(row, view, number))
                    .unwrap_or(0) as i32
            } else {
                let number = usize::from(candidate);
                if equal(row, view, number) {
                    number as i32
                } else {
                    0
                }
            }
        })
        .collect();
    Int32Array::new(numbers.into(), values.nulls().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    use datafusion::arrow::array::{DictionaryArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Int8Type;

    fn texts(steps: &[&str]) -> Vec<ScalarValue> {
        steps
            .iter()
            .map(|step| ScalarValue::Utf8(Some(step.to_string())))
            .collect()
    }

    fn numbered(values: ArrayRef, steps: &[ScalarValue]) -> Vec<Option<i32>> {
        numbers(&values, steps)
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .iter()
            .collect()
    }

    const STEPS: [&str; 3] = ["view", "feature_announcement_view", "feature_page_view"];

    /// Short and long strings, a long one that shares a step's length and first 4 bytes, one
    /// that shares its length only, a prefix of a step, and NULL.
    fn rows() -> Vec<Option<&'static str>> {
        vec![
            Some("feature_page_view"),
            Some("view"),
            Some("feature_announcement_vie_"),
            Some("feature_announcement_view"),
            Some("xeature_page_view"),
            Some("vie"),
            None,
            Some(""),
            Some("feature_page_view"),
        ]
    }

    const EXPECTED: [Option<i32>; 9] = [
        Some(3),
        Some(1),
        Some(0),
        Some(2),
        Some(0),
        Some(0),
        None,
        Some(0),
        Some(3),
    ];

    #[test]
    fn views_are_numbered_by_the_step_they_equal() {
        let values: ArrayRef = Arc::new(StringViewArray::from(rows()));
        assert_eq!(numbered(values, &texts(&STEPS)), EXPECTED);
    }

    #[test]
    fn steps_of_one_length_and_very_long_ones_are_told_apart() {
        let long = "a step name longer than sixty-three bytes, which no table looks up";
        let other_long = "a step name longer than sixty-three bytes, which no table looks up!";
        let values: ArrayRef = Arc::new(StringViewArray::from(vec![
            "cart", "view", long, "buy", other_long, "carts",
        ]));
        let steps = texts(&["view", "cart", long, "cart"]);
        let expected = [2, 1, 3, 0, 0, 0].map(Some).to_vec();
        assert_eq!(numbered(values, &steps), expected);
    }

    #[test]
    fn classic_strings_and_dictionaries_give_the_same_numbers() {
        let classic: ArrayRef = Arc::new(StringArray::from(rows()));
        assert_eq!(numbered(classic, &texts(&STEPS)), EXPECTED);
        let dictionary: DictionaryArray<Int8Type> = rows().into_iter().collect();
        assert_eq!(numbered(Arc::new(dictionary), &texts(&STEPS)), EXPECTED);
    }

    #[test]
    fn the_first_of_equal_steps_wins_and_integers_compare_too() {
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), Some(3), None, Some(9)]));
        let steps = [3, 7, 3].map(|step| ScalarValue::Int64(Some(step)));
        assert_eq!(
            numbered(values, &steps),
            vec![Some(2), Some(1), None, Some(0)]
        );
    }
}
