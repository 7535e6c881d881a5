//! `retention(c1, ..., cN)`: ClickHouse's `retention` aggregate.
//!
//! For each group it answers "did the actor do the first thing, and did it also do each of the
//! others": `r[1] = any(c1)` and `r[k] = any(c1) AND any(ck)` for `k >= 2`, as a `LIST<UINT8>` of
//! 1s and 0s. Summing `r[k]` over actors gives the retained counts of a cohort.
//!
//! The state of a group is one `u32` bitmask (bit `k - 1` set once a row had `ck` true), the same
//! state ClickHouse keeps and serializes. Masks merge with a bitwise OR, so partial states from any
//! number of partitions or executors combine in any order, and the GROUP BY path keeps a flat
//! `Vec<u32>` instead of one boxed accumulator per actor.

use std::mem::size_of_val;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, UInt8Array, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt32Type};
use datafusion::common::{ScalarValue, internal_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, TypeSignature, Volatility,
};
use datafusion_macros::user_doc;

/// ClickHouse's limit, and the width of the state's bitmask.
const MAX_CONDITIONS: usize = 32;

#[user_doc(
    doc_section(label = "General Functions"),
    description = "Retention of a cohort, as ClickHouse's `retention`: returns a list of N 1s and \
        0s where element 1 is 1 if any row of the group had `c1` true, and element k (k >= 2) is \
        1 if any row had `c1` true and any row (the same or another) had `ck` true. Row order does \
        not matter. A NULL condition counts as false for that condition alone (ClickHouse skips a \
        row in which any condition is NULL); a group without rows, such as the whole of an empty \
        input without GROUP BY, gives N zeros, as in ClickHouse. The list's items are never NULL, \
        but their field is declared nullable, as in DataFusion's own list functions, so that the \
        result compares with and unions with list literals without casts. Takes 1 to 32 BOOLEAN \
        conditions (ClickHouse requires 2 or more).",
    syntax_example = "retention(c1[, c2, ..., c32])",
    sql_example = r#"```sql
> SELECT uid,
         retention(date = '2020-01-01', date = '2020-01-02', date = '2020-01-03') AS r
  FROM retention_test GROUP BY uid ORDER BY uid;
+-----+-----------+
| uid | r         |
+-----+-----------+
| 0   | [1, 1, 1] |
| 5   | [0, 0, 0] |
+-----+-----------+
> SELECT sum(r[1]) AS r1, sum(r[2]) AS r2, sum(r[3]) AS r3
  FROM (SELECT uid, retention(date = '2020-01-01', date = '2020-01-02', date = '2020-01-03') AS r
        FROM retention_test GROUP BY uid);
+----+----+----+
| r1 | r2 | r3 |
+----+----+----+
| 5  | 5  | 5  |
+----+----+----+
```"#,
    argument(
        name = "c1",
        description = "BOOLEAN condition that puts the group in the cohort, such as \
            `date = '2020-01-01'`."
    ),
    argument(
        name = "c2, ..., c32",
        description = "BOOLEAN conditions whose element is 1 only for groups in the cohort."
    )
)]
/// The `retention` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Retention {
    signature: Signature,
}

impl Retention {
    pub(crate) fn new() -> Self {
        Self {
            // `Variadic(Boolean)` is what `SHOW FUNCTIONS` and information_schema list. On its own
            // it would also reject a wrong argument with DataFusion's generic coercion error, which
            // does not say which argument is wrong; `UserDefined` lets every argument through
            // `coerce_types`, and `Nullary` a call without arguments, so that `return_type` checks
            // them all and names what is wrong.
            signature: Signature::one_of(
                vec![
                    TypeSignature::Variadic(vec![DataType::Boolean]),
                    TypeSignature::UserDefined,
                    TypeSignature::Nullary,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for Retention {
    fn name(&self) -> &str {
        "retention"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        // A NULL literal becomes BOOLEAN (a condition that is never true); any other type is kept
        // as it is, so that `return_type` sees it and names it.
        Ok(arg_types
            .iter()
            .map(|t| match t {
                DataType::Null => DataType::Boolean,
                _ => t.clone(),
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.is_empty() || arg_types.len() > MAX_CONDITIONS {
            return plan_err!(
                "retention takes 1 to {MAX_CONDITIONS} BOOLEAN conditions, got {} arguments",
                arg_types.len()
            );
        }
        if let Some((position, data_type)) = arg_types
            .iter()
            .enumerate()
            .find(|(_, t)| **t != DataType::Boolean)
        {
            return plan_err!(
                "retention: argument {} is {data_type}, expected a BOOLEAN condition such as \
                 `event = 'signup'`",
                position + 1
            );
        }
        Ok(DataType::List(list_item_field()))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RetentionAccumulator::new(args.exprs.len())))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // Never NULL: a group that saw no true condition has the mask 0.
        Ok(vec![
            Field::new(
                format_state_name(args.name, "mask"),
                DataType::UInt32,
                false,
            )
            .into(),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RetentionGroupsAccumulator::new(args.exprs.len())))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

fn list_item_field() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::UInt8, true))
}

/// The rows of a batch in which `condition` is true (not NULL, not false) and that `filter`, if
/// any, keeps.
fn true_rows(condition: &ArrayRef, filter: Option<&BooleanArray>) -> Result<BooleanBuffer> {
    let Some(condition) = condition.as_boolean_opt() else {
        return internal_err!(
            "retention: a condition reached execution as {}, not BOOLEAN",
            condition.data_type()
        );
    };
    let rows = valid_true(condition);
    Ok(match filter {
        Some(filter) => &rows & &valid_true(filter),
        None => rows,
    })
}

fn valid_true(array: &BooleanArray) -> BooleanBuffer {
    match array.nulls() {
        Some(nulls) => array.values() & nulls.inner(),
        None => array.values().clone(),
    }
}

/// One list of `conditions` elements per mask: the result of a group whose state is that mask.
fn retention_lists(masks: &[u32], conditions: usize) -> ListArray {
    let values: UInt8Array = masks
        .iter()
        .flat_map(|&mask| {
            // Without c1 the group is not in the cohort: every element is 0.
            let cohort_mask = if mask & 1 == 1 { mask } else { 0 };
            (0..conditions).map(move |k| ((cohort_mask >> k) & 1) as u8)
        })
        .collect();
    ListArray::new(
        list_item_field(),
        OffsetBuffer::from_lengths(std::iter::repeat_n(conditions, masks.len())),
        Arc::new(values),
        None,
    )
}

/// `retention` over a single group (no GROUP BY).
#[derive(Debug)]
struct RetentionAccumulator {
    mask: u32,
    conditions: usize,
}

impl RetentionAccumulator {
    fn new(conditions: usize) -> Self {
        Self {
            mask: 0,
            conditions,
        }
    }
}

impl Accumulator for RetentionAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (k, condition) in values.iter().enumerate() {
            if true_rows(condition, None)?.count_set_bits() > 0 {
                self.mask |= 1 << k;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::List(Arc::new(retention_lists(
            &[self.mask],
            self.conditions,
        ))))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::UInt32(Some(self.mask))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let masks = states[0].as_primitive::<UInt32Type>();
        self.mask = masks
            .iter()
            .flatten()
            .fold(self.mask, |acc, mask| acc | mask);
        Ok(())
    }
}

/// `retention` for every group of a GROUP BY: one mask per group index.
#[derive(Debug)]
struct RetentionGroupsAccumulator {
    masks: Vec<u32>,
    conditions: usize,
}

impl RetentionGroupsAccumulator {
    fn new(conditions: usize) -> Self {
        Self {
            masks: Vec::new(),
            conditions,
        }
    }
}

impl GroupsAccumulator for RetentionGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.masks.resize(total_num_groups, 0);
        for (k, condition) in values.iter().enumerate() {
            for row in true_rows(condition, opt_filter)?.set_indices() {
                self.masks[group_indices[row]] |= 1 << k;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let masks = emit_to.take_needed(&mut self.masks);
        Ok(Arc::new(retention_lists(&masks, self.conditions)))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let masks = emit_to.take_needed(&mut self.masks);
        Ok(vec![Arc::new(UInt32Array::from(masks))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.masks.resize(total_num_groups, 0);
        let masks = values[0].as_primitive::<UInt32Type>();
        for (&group, mask) in group_indices.iter().zip(masks.iter()) {
            if let Some(mask) = mask {
                self.masks[group] |= mask;
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a group of its own: its mask has the bits of its true conditions.
        let mut masks = vec![0u32; values.first().map_or(0, |v| v.len())];
        for (k, condition) in values.iter().enumerate() {
            for row in true_rows(condition, opt_filter)?.set_indices() {
                masks[row] |= 1 << k;
            }
        }
        Ok(vec![Arc::new(UInt32Array::from(masks))])
    }

    fn size(&self) -> usize {
        self.masks.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    fn conditions(columns: &[&[Option<bool>]]) -> Vec<ArrayRef> {
        columns
            .iter()
            .map(|rows| Arc::new(BooleanArray::from(rows.to_vec())) as ArrayRef)
            .collect()
    }

    fn lists(array: &ArrayRef) -> Vec<Vec<u8>> {
        array
            .as_list::<i32>()
            .iter()
            .map(|list| {
                let list = list.expect("retention never returns a NULL list");
                list.as_primitive::<datafusion::arrow::datatypes::UInt8Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    fn evaluate(accumulator: &mut RetentionAccumulator) -> Vec<u8> {
        let ScalarValue::List(list) = accumulator.evaluate().unwrap() else {
            panic!("retention evaluates to a list");
        };
        let list: ArrayRef = list;
        lists(&list).remove(0)
    }

    fn single_pass(batches: &[Vec<ArrayRef>], conditions: usize) -> Vec<u8> {
        let mut accumulator = RetentionAccumulator::new(conditions);
        for batch in batches {
            accumulator.update_batch(batch).unwrap();
        }
        evaluate(&mut accumulator)
    }

    #[test]
    fn return_type_is_a_list_of_uint8() {
        let udf = Retention::new();
        assert_eq!(
            udf.return_type(&vec![DataType::Boolean; 3]).unwrap(),
            DataType::List(Arc::new(Field::new_list_field(DataType::UInt8, true)))
        );
        assert!(udf.return_type(&vec![DataType::Boolean; 32]).is_ok());
    }

    #[test]
    fn return_type_rejects_zero_and_thirty_three_conditions() {
        let udf = Retention::new();
        let zero = udf.return_type(&[]).unwrap_err().to_string();
        assert!(
            zero.contains("retention takes 1 to 32 BOOLEAN conditions, got 0 arguments"),
            "{zero}"
        );
        let many = udf
            .return_type(&vec![DataType::Boolean; 33])
            .unwrap_err()
            .to_string();
        assert!(
            many.contains("retention takes 1 to 32 BOOLEAN conditions, got 33 arguments"),
            "{many}"
        );
    }

    #[test]
    fn return_type_names_the_position_and_type_of_a_non_boolean_argument() {
        let error = Retention::new()
            .return_type(&[DataType::Boolean, DataType::Int64, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("Error during planning"), "{error}");
        assert!(
            error.contains("argument 2 is Int64, expected a BOOLEAN condition"),
            "{error}"
        );
    }

    #[test]
    fn coerce_types_makes_null_boolean_and_keeps_other_types_for_the_error() {
        let coerced = Retention::new()
            .coerce_types(&[DataType::Null, DataType::Boolean, DataType::Int32])
            .unwrap();
        assert_eq!(
            coerced,
            [DataType::Boolean, DataType::Boolean, DataType::Int32]
        );
    }

    #[test]
    fn information_schema_lists_the_boolean_signature() {
        assert_eq!(
            Retention::new()
                .signature()
                .type_signature
                .get_example_types(),
            [vec![DataType::Boolean]]
        );
    }

    #[test]
    fn documentation_has_description_syntax_arguments_and_example() {
        let udf = Retention::new();
        let doc = udf.documentation().unwrap();
        assert_eq!(doc.syntax_example, "retention(c1[, c2, ..., c32])");
        assert!(doc.description.contains("NULL condition counts as false"));
        assert_eq!(doc.arguments.as_ref().unwrap().len(), 2);
        assert!(
            doc.sql_example
                .as_ref()
                .unwrap()
                .contains("| 5  | 5  | 5  |")
        );
    }

    #[test]
    fn first_condition_alone_sets_the_first_element() {
        let batch = conditions(&[&[Some(true), Some(false)], &[Some(false), Some(false)]]);
        assert_eq!(single_pass(&[batch], 2), [1, 0]);
    }

    #[test]
    fn later_condition_without_the_first_gives_zero() {
        let batch = conditions(&[&[Some(false)], &[Some(true)], &[Some(true)]]);
        assert_eq!(single_pass(&[batch], 3), [0, 0, 0]);
    }

    #[test]
    fn conditions_may_hold_on_different_rows_in_any_order() {
        // c3 on the first row, c1 on the last: order-free, unlike a funnel.
        let batch = conditions(&[
            &[Some(false), Some(false), Some(true)],
            &[Some(false), Some(false), Some(false)],
            &[Some(true), Some(false), Some(false)],
        ]);
        assert_eq!(single_pass(&[batch], 3), [1, 0, 1]);
    }

    #[test]
    fn null_conditions_count_as_false_for_that_condition_only() {
        // Row 1: c1 true, c2 NULL. Row 2: c1 NULL, c2 false, c3 true.
        let batch = conditions(&[
            &[Some(true), None],
            &[None, Some(false)],
            &[Some(false), Some(true)],
        ]);
        assert_eq!(single_pass(&[batch], 3), [1, 0, 1]);
    }

    #[test]
    fn empty_group_gives_zeros() {
        assert_eq!(single_pass(&[], 4), [0, 0, 0, 0]);
        let empty = conditions(&[&[], &[]]);
        assert_eq!(single_pass(&[empty], 2), [0, 0]);
    }

    #[test]
    fn thirty_two_conditions_use_every_bit_of_the_mask() {
        let mut columns: Vec<&[Option<bool>]> = vec![&[Some(true)]; 32];
        columns[30] = &[Some(false)];
        let result = single_pass(&[conditions(&columns)], 32);
        let mut expected = [1u8; 32];
        expected[30] = 0;
        assert_eq!(result, expected);
    }

    #[test]
    fn accumulator_merge_of_partial_states_equals_a_single_pass() {
        // c2 and c3 are seen only in partitions without c1, whose own results are all zeros: the
        // merge must combine what was seen, not the partial results.
        let first = conditions(&[
            &[Some(false), None],
            &[Some(true), Some(false)],
            &[None, None],
        ]);
        let second = conditions(&[&[Some(true)], &[Some(false)], &[Some(false)]]);
        let third = conditions(&[&[Some(false)], &[Some(false)], &[Some(true)]]);

        let mut merged = RetentionAccumulator::new(3);
        for batch in [&first, &second, &third] {
            let mut partial = RetentionAccumulator::new(3);
            partial.update_batch(batch).unwrap();
            merge_state(&mut partial, &mut merged);
        }

        assert_eq!(evaluate(&mut merged), [1, 1, 1]);
        assert_eq!(single_pass(&[first, second, third], 3), [1, 1, 1]);
    }

    /// Rows of three groups, with conditions (c1, c2, c3):
    /// group 0: c2 then c1 → [1, 1, 0]; group 1: c2 and c3 only → [0, 0, 0];
    /// group 2: c1, c3 (c2 NULL) → [1, 0, 1].
    fn three_groups() -> (Vec<ArrayRef>, Vec<usize>) {
        let values = conditions(&[
            &[
                Some(false),
                Some(false),
                Some(true),
                Some(true),
                Some(false),
                Some(false),
            ],
            &[
                Some(true),
                Some(true),
                None,
                Some(false),
                Some(false),
                Some(true),
            ],
            &[
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                Some(true),
                Some(true),
            ],
        ]);
        (values, vec![0, 1, 2, 0, 2, 1])
    }

    #[test]
    fn groups_accumulator_computes_each_group_on_its_own() {
        let (values, groups) = three_groups();
        let mut accumulator = RetentionGroupsAccumulator::new(3);
        accumulator.update_batch(&values, &groups, None, 4).unwrap();
        // Group 3 has no rows in this batch.
        assert_eq!(
            lists(&accumulator.evaluate(EmitTo::All).unwrap()),
            [vec![1, 1, 0], vec![0, 0, 0], vec![1, 0, 1], vec![0, 0, 0]]
        );
    }

    #[test]
    fn groups_merge_of_partial_states_equals_a_single_pass() {
        let (values, groups) = three_groups();
        let mut single = RetentionGroupsAccumulator::new(3);
        single.update_batch(&values, &groups, None, 3).unwrap();

        // Two partitions see alternate rows, each with its own group numbering (reversed in the
        // second), as after a repartition.
        let rows = |parity: usize| -> Vec<usize> { (0..6).filter(|r| r % 2 == parity).collect() };
        let mut merged = RetentionGroupsAccumulator::new(3);
        for (parity, renumber) in [(0, [0usize, 1, 2]), (1, [2, 1, 0])] {
            let take = rows(parity);
            let indices = UInt32Array::from(take.iter().map(|&r| r as u32).collect::<Vec<_>>());
            let part: Vec<ArrayRef> = values
                .iter()
                .map(|v| datafusion::arrow::compute::take(v, &indices, None).unwrap())
                .collect();
            let part_groups: Vec<usize> = take.iter().map(|&r| renumber[groups[r]]).collect();
            let mut partial = RetentionGroupsAccumulator::new(3);
            partial.update_batch(&part, &part_groups, None, 3).unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            // Partial group i is original group renumber[i]: both numberings are their own inverse.
            merged.merge_batch(&state, &renumber, 3).unwrap();
        }

        assert_eq!(
            lists(&merged.evaluate(EmitTo::All).unwrap()),
            lists(&single.evaluate(EmitTo::All).unwrap())
        );
    }

    #[test]
    fn convert_to_state_then_merge_equals_update() {
        let (values, groups) = three_groups();
        let filter = BooleanArray::from(vec![
            Some(true),
            Some(true),
            Some(true),
            None,
            Some(true),
            Some(true),
        ]);
        let mut updated = RetentionGroupsAccumulator::new(3);
        updated
            .update_batch(&values, &groups, Some(&filter), 3)
            .unwrap();

        let mut merged = RetentionGroupsAccumulator::new(3);
        let state = merged.convert_to_state(&values, Some(&filter)).unwrap();
        merged.merge_batch(&state, &groups, 3).unwrap();

        // The filter drops group 0's c1 row: its cohort is empty.
        let expected = [vec![0, 0, 0], vec![0, 0, 0], vec![1, 0, 1]];
        assert_eq!(lists(&updated.evaluate(EmitTo::All).unwrap()), expected);
        assert_eq!(lists(&merged.evaluate(EmitTo::All).unwrap()), expected);
    }

    #[test]
    fn filter_false_and_null_rows_are_skipped() {
        let values = conditions(&[
            &[Some(true), Some(true), Some(true)],
            &[Some(true), Some(true), Some(false)],
        ]);
        let filter = BooleanArray::from(vec![Some(false), None, Some(true)]);
        let mut accumulator = RetentionGroupsAccumulator::new(2);
        accumulator
            .update_batch(&values, &[0, 0, 0], Some(&filter), 1)
            .unwrap();
        assert_eq!(
            lists(&accumulator.evaluate(EmitTo::All).unwrap()),
            [vec![1, 0]]
        );
    }

    #[test]
    fn emit_first_keeps_and_renumbers_the_remaining_groups() {
        let (values, groups) = three_groups();
        let mut accumulator = RetentionGroupsAccumulator::new(3);
        accumulator.update_batch(&values, &groups, None, 3).unwrap();

        let state = accumulator.state(EmitTo::First(1)).unwrap();
        assert_eq!(state[0].as_primitive::<UInt32Type>().values(), &[0b011]);
        // Former group 1 is now group 0: its c1 arrives late.
        let late_c1 = conditions(&[&[Some(true)], &[Some(false)], &[Some(false)]]);
        accumulator.update_batch(&late_c1, &[0], None, 2).unwrap();
        assert_eq!(
            lists(&accumulator.evaluate(EmitTo::All).unwrap()),
            [vec![1, 1, 1], vec![1, 0, 1]]
        );
    }
}
