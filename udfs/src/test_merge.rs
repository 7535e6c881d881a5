//! The state round trip of the unit tests that merge partial aggregates: a partial's state goes
//! to the merging accumulator as the arrays DataFusion would pass between the two.

use datafusion::arrow::array::ArrayRef;
use datafusion::logical_expr::Accumulator;

/// Merges the state of `partial` into `merged`.
pub(crate) fn merge_state(partial: &mut dyn Accumulator, merged: &mut dyn Accumulator) {
    let state: Vec<ArrayRef> = partial
        .state()
        .unwrap()
        .iter()
        .map(|value| value.to_array().unwrap())
        .collect();
    merged.merge_batch(&state).unwrap();
}
