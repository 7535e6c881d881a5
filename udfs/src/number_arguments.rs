//! The numeric arguments of the revenue scalars (`churn_rate`, `ltv`, `to_mrr`, `retention_rate`,
//! `compounded_revenue`) and of the survey aggregates (`nps`, `ces`): each accepts any integer,
//! float or DECIMAL, lists a few example signatures in `SHOW FUNCTIONS`, and names a
//! wrong argument, its expression and its type at planning, where DataFusion would only say that
//! no signature matched.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, Signature, TypeSignature, Volatility,
};

/// The signature of a function of numbers with as many arguments as one of `arities`.
///
/// The variants with a type are the calls that information_schema (and so `SHOW FUNCTIONS`)
/// lists: one per arity and example type (DataFusion's examples of a numeric type), each
/// argument of that type. Any other call, mixed types included, reaches `return_field_from_args`
/// unchanged through the last variant, so that its error names the argument, the expression and
/// its type, where DataFusion's would only say that no signature matched.
pub(crate) fn number_signature(arities: &[usize]) -> Signature {
    let examples = vec![
        DataType::Int64,
        DataType::Float64,
        DataType::Decimal128(38, 10),
    ];
    let mut variants = arities
        .iter()
        .map(|&arity| TypeSignature::Uniform(arity, examples.clone()))
        .collect::<Vec<_>>();
    variants.push(TypeSignature::UserDefined);
    Signature::one_of(variants, Volatility::Immutable)
}

/// Whether the revenue scalars read `data_type` as a number: any integer, float or DECIMAL, an
/// untyped NULL, or a dictionary of those.
pub(crate) fn is_number_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, values) => is_number_type(values),
        DataType::Null => true,
        data_type => data_type.is_numeric(),
    }
}

/// Checks at planning that a numeric argument is an integer, a float or a DECIMAL, and otherwise
/// names the argument, the expression and its type.
pub(crate) fn check_number_argument(function: &str, argument: &str, field: &Field) -> Result<()> {
    if is_number_type(field.data_type()) {
        Ok(())
    } else {
        plan_err!(
            "{function}: argument {argument}: must be a number (an integer, a float or a \
             DECIMAL), but `{}` has type {}",
            field.name(),
            field.data_type()
        )
    }
}

/// The DOUBLE result field of `function` called with `fields`, checked at planning: it takes the
/// numbers `arguments`, of which the first `required` must be given; `syntax` is its call as the
/// documentation writes it, for the error that a wrong count of arguments gives.
pub(crate) fn double_of_numbers(
    function: &str,
    syntax: &str,
    arguments: &[&str],
    required: usize,
    fields: &[FieldRef],
) -> Result<FieldRef> {
    if !(required..=arguments.len()).contains(&fields.len()) {
        let count = if required == arguments.len() {
            required.to_string()
        } else {
            format!("{required} to {}", arguments.len())
        };
        return plan_err!(
            "{function} takes {count} arguments, {syntax}, but was given {}",
            fields.len()
        );
    }
    for (field, argument) in fields.iter().zip(arguments) {
        check_number_argument(function, argument, field)?;
    }
    Ok(Arc::new(Field::new(function, DataType::Float64, true)))
}

/// A scalar of three numbers: `value` of each row's arguments as DOUBLEs, NULL where any of them
/// is NULL, as a scalar when every argument is one.
pub(crate) fn double_of_three(
    args: &ScalarFunctionArgs,
    value: impl Fn(f64, f64, f64) -> Result<Option<f64>>,
) -> Result<ColumnarValue> {
    let rows = batch_rows(&args.args, args.number_rows);
    let columns = args
        .args
        .iter()
        .map(|argument| float_column(argument, rows))
        .collect::<Result<Vec<_>>>()?;
    let values = (0..rows)
        .map(|row| {
            if columns.iter().any(|column| column.is_null(row)) {
                return Ok(None);
            }
            value(
                columns[0].value(row),
                columns[1].value(row),
                columns[2].value(row),
            )
        })
        .collect::<Result<Float64Array>>()?;
    float_result(&args.args, values)
}

/// The methods of `ScalarUDFImpl` that the scalars of three numbers share, for a struct with a
/// `signature` field from [`number_signature`]: every argument reaches `return_field_from_args`
/// unchanged, which checks them with [`double_of_numbers`] (`$arguments` named, `$syntax` the call
/// as documented) and answers DOUBLE.
macro_rules! three_number_methods {
    ($name:expr, $syntax:expr, $arguments:expr) => {
        fn name(&self) -> &str {
            $name
        }

        fn signature(&self) -> &datafusion::logical_expr::Signature {
            &self.signature
        }

        fn coerce_types(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::common::Result<Vec<datafusion::arrow::datatypes::DataType>> {
            Ok(arg_types.to_vec())
        }

        fn return_type(
            &self,
            _arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::common::Result<datafusion::arrow::datatypes::DataType> {
            datafusion::common::internal_err!(
                "{}: return_field_from_args should be called instead",
                $name
            )
        }

        fn return_field_from_args(
            &self,
            args: datafusion::logical_expr::ReturnFieldArgs,
        ) -> datafusion::common::Result<datafusion::arrow::datatypes::FieldRef> {
            $crate::number_arguments::double_of_numbers(
                $name,
                $syntax,
                &$arguments,
                $arguments.len(),
                args.arg_fields,
            )
        }
    };
}

pub(crate) use three_number_methods;

/// The number of rows to compute: 1 when every argument is a scalar (the result is then a
/// scalar too), else the batch's.
pub(crate) fn batch_rows(args: &[ColumnarValue], number_rows: usize) -> usize {
    if args
        .iter()
        .all(|argument| matches!(argument, ColumnarValue::Scalar(_)))
    {
        1
    } else {
        number_rows
    }
}

/// A numeric argument, checked by [`check_number_argument`], as `rows` DOUBLE values.
pub(crate) fn float_column(value: &ColumnarValue, rows: usize) -> Result<Float64Array> {
    let array = value.to_array(rows)?;
    Ok(cast(&array, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

/// `values` as the result of a call with `args`: a scalar when every argument is one.
pub(crate) fn float_result(args: &[ColumnarValue], values: Float64Array) -> Result<ColumnarValue> {
    if args
        .iter()
        .all(|argument| matches!(argument, ColumnarValue::Scalar(_)))
    {
        Ok(ColumnarValue::Scalar(ScalarValue::Float64(
            values.is_valid(0).then(|| values.value(0)),
        )))
    } else {
        Ok(ColumnarValue::Array(Arc::new(values)))
    }
}

/// Calls of a scalar of ours as DataFusion makes them, for unit tests.
#[cfg(test)]
pub(crate) mod calls {
    use datafusion::arrow::datatypes::FieldRef;
    use datafusion::common::config::ConfigOptions;
    use datafusion::logical_expr::{ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl};

    use super::*;

    /// A nullable argument field of `data_type`.
    pub(crate) fn field(data_type: DataType) -> FieldRef {
        Arc::new(Field::new("arg", data_type, true))
    }

    /// The return field `function` plans for arguments of `fields`, none of them a literal.
    pub(crate) fn plan(function: &dyn ScalarUDFImpl, fields: &[FieldRef]) -> Result<FieldRef> {
        function.return_field_from_args(ReturnFieldArgs {
            arg_fields: fields,
            scalar_arguments: &vec![None; fields.len()],
        })
    }

    /// Calls `function` on `args`, as many rows as the longest array among them (1 when all are
    /// scalars), with the return field it plans.
    pub(crate) fn call(
        function: &dyn ScalarUDFImpl,
        args: Vec<ColumnarValue>,
    ) -> Result<ColumnarValue> {
        let rows = args
            .iter()
            .find_map(|argument| match argument {
                ColumnarValue::Array(array) => Some(array.len()),
                ColumnarValue::Scalar(_) => None,
            })
            .unwrap_or(1);
        let arg_fields: Vec<FieldRef> = args
            .iter()
            .map(|argument| field(argument.data_type()))
            .collect();
        let return_field = plan(function, &arg_fields)?;
        function.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    /// The DOUBLE values `function` returns for array arguments `args`.
    pub(crate) fn floats(
        function: &dyn ScalarUDFImpl,
        args: Vec<ColumnarValue>,
    ) -> Vec<Option<f64>> {
        let ColumnarValue::Array(array) = call(function, args).unwrap() else {
            panic!("expected an array")
        };
        array.as_primitive::<Float64Type>().iter().collect()
    }
}
