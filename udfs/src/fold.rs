//! What the fold aggregates of the table functions share (`active_user_counts`, `lifecycle_counts`,
//! `usage_frequency_counts`): each takes one row per actor, keeps a mergeable state, and returns
//! its whole report as one list of structs that the table function unnests into rows.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, FieldRef, Int32Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::StateFieldsArgs;
use datafusion::logical_expr::utils::format_state_name;

/// A list of nullable `data_type` items.
pub(crate) fn list_of(data_type: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(data_type, true)))
}

/// A nullable state field of the aggregate named in `args`.
pub(crate) fn state_field(args: &StateFieldsArgs, name: &str, data_type: DataType) -> FieldRef {
    Arc::new(Field::new(
        format_state_name(args.name, name),
        data_type,
        true,
    ))
}

/// The report rows as the aggregate's value: one list holding them all.
pub(crate) fn report(rows: StructArray) -> Result<ScalarValue> {
    Ok(single_list(Arc::new(rows)))
}

/// `values` as one list value: a state field of the set folds.
pub(crate) fn single_list(values: ArrayRef) -> ScalarValue {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    let offsets = OffsetBuffer::from_lengths([values.len()]);
    ScalarValue::List(Arc::new(ListArray::new(field, offsets, values, None)))
}

/// The DATE at `row`, or `None` for NULL (and for a NULL-typed constant argument).
pub(crate) fn date_at(array: &ArrayRef, row: usize) -> Option<i32> {
    match array.data_type() {
        DataType::Date32 => {
            let dates = array.as_primitive::<Date32Type>();
            dates.is_valid(row).then(|| dates.value(row))
        }
        _ => None,
    }
}

/// The INT32 at `row` of a state column, or `None` for NULL.
pub(crate) fn int32_at(array: &ArrayRef, row: usize) -> Option<i32> {
    let values = array.as_primitive::<Int32Type>();
    values.is_valid(row).then(|| values.value(row))
}

/// Records a bound that every row of a group must give alike (a constant argument of the call).
pub(crate) fn set_bound<T: PartialEq + Copy>(
    function: &str,
    bound: &mut Option<T>,
    value: Option<T>,
    name: &str,
) -> Result<()> {
    match (*bound, value) {
        (Some(old), Some(new)) if old != new => {
            exec_err!("{function}: {name} must be the same for every row of a group")
        }
        (None, Some(new)) => {
            *bound = Some(new);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The range `seen` grown to hold `low..=high`.
pub(crate) fn widen(seen: Option<(i32, i32)>, low: i32, high: i32) -> Option<(i32, i32)> {
    Some(match seen {
        Some((l, h)) => (l.min(low), h.max(high)),
        None => (low, high),
    })
}

/// What a fold's argument must be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expected {
    /// A DATE, or a NULL constant.
    Date,
    /// A BIGINT, or a NULL constant.
    BigInt,
    /// Any integer type.
    Integer,
    /// A string of any of Arrow's kinds.
    String,
    Boolean,
    /// A list of DATEs.
    DateList,
    /// A list of BIGINTs.
    BigIntList,
}

fn is_list_of(data_type: &DataType, item: &DataType) -> bool {
    matches!(data_type, DataType::List(field) if field.data_type() == item)
}

/// Checks each argument against what `expected` says of it, in positional order, naming the first
/// that does not fit.
pub(crate) fn check_arguments(
    function: &str,
    arg_types: &[DataType],
    expected: &[(&str, Expected)],
) -> Result<()> {
    for ((name, expected), data_type) in expected.iter().zip(arg_types) {
        let (fits, what) = match expected {
            Expected::Date => (
                matches!(data_type, DataType::Date32 | DataType::Null),
                "a DATE",
            ),
            Expected::BigInt => (
                matches!(data_type, DataType::Int64 | DataType::Null),
                "a BIGINT",
            ),
            Expected::Integer => (data_type.is_integer(), "an integer"),
            Expected::String => (
                matches!(
                    data_type,
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                ),
                "a string",
            ),
            Expected::Boolean => (data_type == &DataType::Boolean, "a BOOLEAN"),
            Expected::DateList => (is_list_of(data_type, &DataType::Date32), "a LIST<DATE>"),
            Expected::BigIntList => (is_list_of(data_type, &DataType::Int64), "a LIST<BIGINT>"),
        };
        if !fits {
            return plan_err!("{function}: {name} must be {what}, not {data_type}");
        }
    }
    Ok(())
}

/// The string at row 0 of a constant argument, if any: the set folds read their constants from
/// one row of each batch.
pub(crate) fn first_string(array: &ArrayRef) -> Result<Option<String>> {
    let strings = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
    let strings = strings.as_string::<i32>();
    Ok((!strings.is_empty() && strings.is_valid(0)).then(|| strings.value(0).to_string()))
}
