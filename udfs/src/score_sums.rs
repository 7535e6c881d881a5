//! What the survey aggregates `nps` and `ces` share: a group's state is a few sums (answers per
//! category, or the total and the count of the answers), so partial states of any number of cores
//! or executors merge by adding them, and the GROUP BY path keeps one flat array per group rather
//! than a boxed accumulator each.

use std::mem::size_of_val;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::StateFieldsArgs;
use datafusion::logical_expr::{Accumulator, ColumnarValue, EmitTo, GroupsAccumulator};

use crate::fold::state_field;
use crate::number_arguments::float_column;

/// An aggregate whose state is `W` sums.
#[derive(Debug)]
pub(crate) struct Sums<const W: usize> {
    /// The names of the sums, for the state fields.
    pub(crate) names: [&'static str; W],
    /// Adds row `row` of the arguments (as DOUBLEs) to a group's sums, or says why it cannot.
    pub(crate) add: fn(&[Float64Array], usize, &mut [f64; W]) -> Result<()>,
    /// The result of a group from its sums.
    pub(crate) finish: fn(&[f64; W]) -> Option<f64>,
}

impl<const W: usize> Sums<W> {
    /// The state fields: one DOUBLE a sum, never NULL (a group without rows has zeros). Counts
    /// are exact as DOUBLEs up to 2^53.
    pub(crate) fn state_fields(&self, args: &StateFieldsArgs) -> Vec<FieldRef> {
        self.names
            .iter()
            .map(|name| state_field(args, name, DataType::Float64))
            .collect()
    }

    /// Adds the rows of `values` that `filter` keeps, each to the sums of its group.
    fn add_rows(
        &self,
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut sums_of: impl FnMut(usize) -> usize,
        sums: &mut [[f64; W]],
    ) -> Result<()> {
        let rows = values.first().map_or(0, |array| array.len());
        let columns = values
            .iter()
            .map(|array| float_column(&ColumnarValue::Array(Arc::clone(array)), rows))
            .collect::<Result<Vec<_>>>()?;
        for row in 0..rows {
            if filter.is_some_and(|filter| !(filter.is_valid(row) && filter.value(row))) {
                continue;
            }
            (self.add)(&columns, row, &mut sums[sums_of(row)])?;
        }
        Ok(())
    }
}

/// Adds the sums of state rows `states` to `sums`, each to that of its group.
fn merge_rows<const W: usize>(
    states: &[ArrayRef],
    mut sums_of: impl FnMut(usize) -> usize,
    sums: &mut [[f64; W]],
) {
    for (position, state) in states.iter().enumerate() {
        let state = state.as_primitive::<Float64Type>();
        for (row, value) in state.iter().enumerate() {
            sums[sums_of(row)][position] += value.unwrap_or(0.0);
        }
    }
}

/// The state of groups with `sums`: a DOUBLE column a sum.
fn state_columns<const W: usize>(sums: &[[f64; W]]) -> Vec<ArrayRef> {
    (0..W)
        .map(|position| {
            Arc::new(
                sums.iter()
                    .map(|sums| sums[position])
                    .collect::<Float64Array>(),
            ) as ArrayRef
        })
        .collect()
}

/// The aggregate over a single group (no GROUP BY, or a window).
#[derive(Debug)]
pub(crate) struct SumsAccumulator<const W: usize> {
    function: &'static Sums<W>,
    sums: [[f64; W]; 1],
}

impl<const W: usize> SumsAccumulator<W> {
    pub(crate) fn new(function: &'static Sums<W>) -> Self {
        Self {
            function,
            sums: [[0.0; W]],
        }
    }
}

impl<const W: usize> Accumulator for SumsAccumulator<W> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.function.add_rows(values, None, |_| 0, &mut self.sums)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        merge_rows(states, |_| 0, &mut self.sums);
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.sums[0]
            .map(|sum| ScalarValue::Float64(Some(sum)))
            .to_vec())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64((self.function.finish)(&self.sums[0])))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// The aggregate for every group of a GROUP BY: the sums of each group index.
#[derive(Debug)]
pub(crate) struct SumsGroups<const W: usize> {
    function: &'static Sums<W>,
    sums: Vec<[f64; W]>,
}

impl<const W: usize> SumsGroups<W> {
    pub(crate) fn new(function: &'static Sums<W>) -> Self {
        Self {
            function,
            sums: Vec::new(),
        }
    }
}

impl<const W: usize> GroupsAccumulator for SumsGroups<W> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, [0.0; W]);
        self.function
            .add_rows(values, opt_filter, |row| group_indices[row], &mut self.sums)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let results: Float64Array = sums.iter().map(self.function.finish).collect();
        Ok(Arc::new(results))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(state_columns(&emit_to.take_needed(&mut self.sums)))
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row a group of its own; a row the filter drops has zeros, as a group without rows.
        let mut sums = vec![[0.0; W]; values.first().map_or(0, |array| array.len())];
        self.function
            .add_rows(values, opt_filter, |row| row, &mut sums)?;
        Ok(state_columns(&sums))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, [0.0; W]);
        merge_rows(values, |row| group_indices[row], &mut self.sums);
        Ok(())
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<[f64; W]>()
    }
}

/// The methods of `AggregateUDFImpl` that `nps` and `ces` share, for a struct with a `signature`
/// field whose state is the [`Sums`] `$sums`: every argument reaches `return_field` unchanged
/// (which checks it and names what is wrong), and the accumulators keep the sums.
macro_rules! sums_aggregate_methods {
    ($sums:expr) => {
        fn signature(&self) -> &datafusion::logical_expr::Signature {
            &self.signature
        }

        fn coerce_types(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::error::Result<Vec<datafusion::arrow::datatypes::DataType>> {
            Ok(arg_types.to_vec())
        }

        fn return_type(
            &self,
            _arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::error::Result<datafusion::arrow::datatypes::DataType> {
            Ok(datafusion::arrow::datatypes::DataType::Float64)
        }

        fn accumulator(
            &self,
            _args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> datafusion::error::Result<Box<dyn datafusion::logical_expr::Accumulator>> {
            Ok(Box::new($crate::score_sums::SumsAccumulator::new(&$sums)))
        }

        fn state_fields(
            &self,
            args: datafusion::logical_expr::function::StateFieldsArgs,
        ) -> datafusion::error::Result<Vec<datafusion::arrow::datatypes::FieldRef>> {
            Ok($sums.state_fields(&args))
        }

        fn groups_accumulator_supported(
            &self,
            _args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> bool {
            true
        }

        fn create_groups_accumulator(
            &self,
            _args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> datafusion::error::Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
            Ok(Box::new($crate::score_sums::SumsGroups::new(&$sums)))
        }

        fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
            datafusion::logical_expr::utils::AggregateOrderSensitivity::Insensitive
        }

        fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
            datafusion::logical_expr::ReversedUDAF::Identical
        }
    };
}

pub(crate) use sums_aggregate_methods;
