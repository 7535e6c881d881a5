//! `window_funnel(window, ts, c1, ..., cN [, mode, ...])`: ClickHouse's `windowFunnel` aggregate,
//! and the funnel engine that `window_funnel_events` shares.
//!
//! The level is computed as ClickHouse's `AggregateFunctionWindowFunnel` computes it: the group's
//! events, sorted by (time, step), are read once; step 1 starts a chain, and a step k event extends
//! the chain that the step before holds if it lies within `window` of that chain's step-1 time.
//! With `'strict_once'` every chain is followed on its own, so that one row never fills two steps
//! of a chain. The same run records the first chain that reaches each new level, which is what
//! `window_funnel_events` returns.
//!
//! The state of a group is its list of events: one `(time, steps)` pair per row that met a
//! condition (and, in `'strict_order'` mode, per row that met none), where `steps` has bit k - 1
//! set when the row met `ck`. ClickHouse keeps one `(time, step)` pair per true condition; a mask
//! per row holds the same events, takes less room when a row meets several conditions, and keeps
//! rows apart for `'strict_once'`. States merge by concatenation, so partial states from any
//! number of partitions combine in any order; events are sorted when the group is evaluated. The
//! GROUP BY path keeps one `Vec` of events per group rather than one boxed accumulator per actor.
//!
//! `window` and the modes must be constants: they are read from the call's literals when the
//! query is optimized (so that a column there is a planning error) and again when the
//! accumulators are made.

use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, PrimitiveArray, UInt8Array,
    UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, FieldRef, Int64Type, IntervalMonthDayNano,
    IntervalUnit, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt32Type,
};
use datafusion::common::{ScalarValue, internal_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator, Signature,
    TypeSignature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion_macros::user_doc;

use crate::period::arguments::check_time_argument;
use crate::period::fixed_offset;

/// ClickHouse's limit, and the width of an event's step mask.
const MAX_STEPS: usize = 32;

/// The modes, in the order error messages list them.
const MODES: [&str; 4] = [
    "strict_deduplication",
    "strict_order",
    "strict_increase",
    "strict_once",
];

/// What the `window` argument accepts, for error messages.
const WINDOW_ACCEPTS: &str =
    "a positive INTERVAL such as INTERVAL '1 hour', or a positive integer number of seconds";

const SECONDS_PER_DAY: i128 = 86_400;
const NANOS_PER_SECOND: i128 = 1_000_000_000;

#[user_doc(
    doc_section(label = "General Functions"),
    description = "Conversion funnel level, as ClickHouse's `windowFunnel`: the number of steps of \
        the longest chain c1 -> c2 -> ... -> ck in the group's rows whose every step comes at or \
        after the step before and at most `window` after the chain's step-1 time (inclusive: a \
        step exactly `window` later counts). 0 when no row met c1. Rows are read in time order, \
        rows at one time in step order; a row that meets several conditions is an event for \
        each, so one row can make several steps unless 'strict_once' is given. The algorithm is \
        ClickHouse's: a step k event extends the chain that step k - 1 holds (the one whose \
        step 1 is latest). `window` is a constant positive INTERVAL, added to the step-1 time as \
        `ts + window` adds it (months, and days in a zone, by the calendar), or an integer number \
        of seconds as in ClickHouse over a DateTime; a DATE time counts as its midnight and needs \
        an INTERVAL (ClickHouse counts an integer window over a Date in days). A NULL condition \
        is false; rows with a NULL time are ignored (ClickHouse skips a row in which any argument \
        is NULL). Modes, constant strings after the conditions (several allowed, as separate \
        arguments or comma-separated in one): 'strict_deduplication' stops at the repeat of a \
        step after step 1 that the funnel had reached (a repeated step 1 starts a new chain); \
        'strict_order' stops at a row that meets no condition, and at a step whose previous step \
        has not happened, once step 1 has; 'strict_increase' needs each step strictly later \
        than the step before; 'strict_once' uses a row at most once in a chain. Takes 1 to 32 \
        BOOLEAN conditions. See `window_funnel_events` for the times of the chain.",
    syntax_example = "window_funnel(window, ts, c1[, c2, ..., c32][, mode, ...])",
    sql_example = r#"```sql
> SELECT user_id,
         window_funnel(INTERVAL '1 hour', ts,
                       event = 'view', event = 'cart', event = 'checkout') AS level
  FROM events GROUP BY user_id ORDER BY user_id;
+---------+-------+
| user_id | level |
+---------+-------+
| 1       | 3     |
| 2       | 1     |
+---------+-------+
> SELECT level, count(*) AS users
  FROM (SELECT user_id,
               window_funnel(INTERVAL '1 hour', ts, event = 'view', event = 'cart',
                             event = 'checkout', 'strict_order') AS level
        FROM events GROUP BY user_id)
  GROUP BY level ORDER BY level;
```"#,
    argument(
        name = "window",
        description = "Constant positive INTERVAL (such as INTERVAL '1 hour') or integer number \
            of seconds: how long after step 1 the last step may come, inclusive."
    ),
    argument(
        name = "ts",
        description = "TIMESTAMP (any unit, with or without a zone) or DATE: the time of the row."
    ),
    argument(
        name = "c1, ..., c32",
        description = "BOOLEAN conditions for the steps of the funnel, in order, such as \
            `event = 'signup'`."
    ),
    argument(
        name = "mode",
        description = "Optional constant strings after the last condition: \
            'strict_deduplication', 'strict_order', 'strict_increase', 'strict_once'."
    )
)]
/// The `window_funnel` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct WindowFunnel {
    function: FunnelFunction,
}

impl WindowFunnel {
    pub(crate) fn new() -> Self {
        Self {
            function: FunnelFunction::new("window_funnel", FunnelOutput::Level),
        }
    }
}

impl Default for WindowFunnel {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for WindowFunnel {
    funnel_function_methods!();

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The methods of `AggregateUDFImpl` that `window_funnel` and `window_funnel_events` share, all
/// but `documentation`, for a struct whose `function` field is their [`FunnelFunction`].
macro_rules! funnel_function_methods {
    () => {
        fn name(&self) -> &str {
            self.function.name()
        }

        fn signature(&self) -> &datafusion::logical_expr::Signature {
            self.function.signature()
        }

        fn coerce_types(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::error::Result<Vec<datafusion::arrow::datatypes::DataType>> {
            Ok($crate::window_funnel::FunnelFunction::coerce_types(
                arg_types,
            ))
        }

        fn return_type(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::error::Result<datafusion::arrow::datatypes::DataType> {
            self.function.return_type(arg_types)
        }

        fn return_field(
            &self,
            arg_fields: &[datafusion::arrow::datatypes::FieldRef],
        ) -> datafusion::error::Result<datafusion::arrow::datatypes::FieldRef> {
            self.function.return_field(arg_fields)
        }

        fn accumulator(
            &self,
            args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> datafusion::error::Result<Box<dyn datafusion::logical_expr::Accumulator>> {
            self.function.accumulator(&args)
        }

        fn state_fields(
            &self,
            args: datafusion::logical_expr::function::StateFieldsArgs,
        ) -> datafusion::error::Result<Vec<datafusion::arrow::datatypes::FieldRef>> {
            Ok($crate::window_funnel::FunnelFunction::state_fields(&args))
        }

        fn groups_accumulator_supported(
            &self,
            _args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> bool {
            true
        }

        fn create_groups_accumulator(
            &self,
            args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> datafusion::error::Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
            self.function.groups_accumulator(&args)
        }

        fn simplify(
            &self,
        ) -> Option<datafusion::logical_expr::function::AggregateFunctionSimplification> {
            Some(self.function.check_constants_when_simplified())
        }

        fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
            datafusion::logical_expr::utils::AggregateOrderSensitivity::Insensitive
        }

        fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
            datafusion::logical_expr::ReversedUDAF::Identical
        }
    };
}

pub(crate) use funnel_function_methods;

/// What a funnel aggregate returns for a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FunnelOutput {
    /// The level reached, as a UINT8.
    Level,
    /// The step times of the chain that reached the highest level first, as a list.
    Chain,
}

/// All that `window_funnel` and `window_funnel_events` share as aggregate functions: everything
/// but their documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FunnelFunction {
    name: &'static str,
    output: FunnelOutput,
    signature: Signature,
}

impl FunnelFunction {
    pub(crate) fn new(name: &'static str, output: FunnelOutput) -> Self {
        Self {
            name,
            output,
            // Real calls (any time type, 1 to 32 conditions, modes) go through `coerce_types`,
            // which keeps their types, and a call without arguments through `Nullary`, so that
            // `return_field` checks them all and names what is wrong. The exact signature is
            // what `SHOW FUNCTIONS` and information_schema list; it comes after `UserDefined`
            // so that coercion never picks it (and casts a time to nanoseconds).
            signature: Signature::one_of(
                vec![
                    TypeSignature::UserDefined,
                    TypeSignature::Exact(vec![
                        DataType::Interval(IntervalUnit::MonthDayNano),
                        DataType::Timestamp(TimeUnit::Nanosecond, None),
                        DataType::Boolean,
                    ]),
                    TypeSignature::Nullary,
                ],
                Volatility::Immutable,
            ),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn signature(&self) -> &Signature {
        &self.signature
    }

    /// A NULL condition becomes BOOLEAN (never true); every other type is kept as it is, so that
    /// `return_field` sees it and names it.
    pub(crate) fn coerce_types(arg_types: &[DataType]) -> Vec<DataType> {
        arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| match data_type {
                DataType::Null if position >= 2 => DataType::Boolean,
                _ => data_type.clone(),
            })
            .collect()
    }

    /// As [`return_field`](Self::return_field), from types alone (information_schema's listing).
    pub(crate) fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(self
            .return_field(&typed_fields(arg_types))?
            .data_type()
            .clone())
    }

    /// Checks the arguments at planning and gives the result's field.
    pub(crate) fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        Layout::read(self.name, arg_fields)?;
        let data_type = match self.output {
            FunnelOutput::Level => DataType::UInt8,
            FunnelOutput::Chain => {
                DataType::List(chain_item_field(&TimeKind::of(arg_fields[1].data_type())))
            }
        };
        Ok(Arc::new(Field::new(self.name, data_type, true)))
    }

    /// The state of a group: the times of its events and their step masks, as two lists of the
    /// same length (never NULL: a group without events has two empty lists).
    pub(crate) fn state_fields(args: &StateFieldsArgs) -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new(
                format_state_name(args.name, "times"),
                state_list_type(DataType::Int64),
                false,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "steps"),
                state_list_type(DataType::UInt32),
                false,
            )),
        ]
    }

    pub(crate) fn accumulator(&self, args: &AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(FunnelAccumulator {
            funnel: Funnel::from_accumulator_args(self.name, args)?,
            output: self.output,
            events: Vec::new(),
            scratch: Scratch::default(),
        }))
    }

    pub(crate) fn groups_accumulator(
        &self,
        args: &AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(FunnelGroupsAccumulator {
            funnel: Funnel::from_accumulator_args(self.name, args)?,
            output: self.output,
            events: Vec::new(),
            groups: 0,
            scratch: Scratch::default(),
        }))
    }

    pub(crate) fn check_constants_when_simplified(&self) -> AggregateFunctionSimplification {
        check_constants_when_simplified(self.name, 0)
    }
}

/// The `simplify` hook of a funnel aggregate whose `window, ts, c1, ..., cN, modes` follow
/// `leading` other arguments: leaves the call as it is, after checking that `window` and the
/// modes are valid constants, so that a column or a bad value there fails when the query is
/// planned rather than when it runs. Constant expressions are folded before the hook runs.
pub(crate) fn check_constants_when_simplified(
    name: &'static str,
    leading: usize,
) -> AggregateFunctionSimplification {
    Box::new(move |aggregate, context| {
        let args = aggregate.params.args.get(leading..).unwrap_or_default();
        check_constant_arguments(name, args, context)?;
        Ok(Expr::AggregateFunction(aggregate))
    })
}

fn check_constant_arguments(
    function: &str,
    args: &[Expr],
    context: &SimplifyContext,
) -> Result<()> {
    let fields: Result<Vec<FieldRef>> = args
        .iter()
        .map(|arg| {
            Ok(Arc::new(Field::new(
                arg.schema_name().to_string(),
                context.get_data_type(arg)?,
                true,
            )))
        })
        .collect();
    // Without the types the accumulators make the same checks, when the query runs.
    let Ok(fields) = fields else {
        return Ok(());
    };
    let layout = Layout::read(function, &fields)?;
    let literal = |position: usize| match &args[position] {
        Expr::Literal(value, _) => Some(value.clone()),
        _ => None,
    };
    Constants::read(function, &layout, literal).map(drop)
}

/// Fields for arguments known only by their types, named by their position.
fn typed_fields(arg_types: &[DataType]) -> Vec<FieldRef> {
    arg_types
        .iter()
        .enumerate()
        .map(|(position, data_type)| {
            Arc::new(Field::new(
                format!("argument {}", position + 1),
                data_type.clone(),
                true,
            ))
        })
        .collect()
}

/// Checks the types of a funnel aggregate's `window, ts, c1, ..., cN, modes`, naming the first
/// that is wrong and what it accepts.
pub(crate) fn check_funnel_types(function: &str, arg_types: &[DataType]) -> Result<()> {
    Layout::read(function, &typed_fields(arg_types)).map(drop)
}

/// The list type of a state column: `item`s that are never NULL.
fn state_list_type(item: DataType) -> DataType {
    DataType::List(state_item_field(item))
}

fn state_item_field(item: DataType) -> FieldRef {
    Arc::new(Field::new_list_field(item, false))
}

/// The items of `window_funnel_events`' lists: TIMESTAMPs of the time's unit and zone. They are
/// never NULL, but declared nullable, as in DataFusion's own list functions, so that the result
/// compares with list literals without casts.
pub(crate) fn chain_item_field(time: &TimeKind) -> FieldRef {
    Arc::new(Field::new_list_field(time.output_type(), true))
}

/// Where the arguments of a call are, read from their types: `window, ts, c1, ..., cN` and then
/// `modes` constant strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    steps: usize,
    modes: usize,
}

impl Layout {
    /// Checks every argument's type, naming the first that is wrong and what it accepts.
    fn read(function: &str, fields: &[FieldRef]) -> Result<Self> {
        let syntax = format!("{function}(window, ts, c1[, c2, ..., c32][, mode, ...])");
        let [window, ts, rest @ ..] = fields else {
            return plan_err!(
                "{function} takes a window, a time and 1 to {MAX_STEPS} BOOLEAN conditions, then \
                 optional modes: {syntax}; got {} argument(s)",
                fields.len()
            );
        };
        check_window_type(function, window, ts)?;
        check_time_argument(function, "ts", ts)?;
        let modes = rest
            .iter()
            .rev()
            .take_while(|field| is_text(field.data_type()))
            .count();
        let steps = rest.len() - modes;
        if steps == 0 || steps > MAX_STEPS {
            return plan_err!(
                "{function} takes 1 to {MAX_STEPS} BOOLEAN conditions after window and ts, got \
                 {steps}: {syntax}"
            );
        }
        for (k, field) in rest[..steps].iter().enumerate() {
            if field.data_type() != &DataType::Boolean {
                let hint = if is_text(field.data_type()) {
                    " (modes come after the last condition)"
                } else {
                    ""
                };
                return plan_err!(
                    "{function}: argument c{}: must be a BOOLEAN condition such as \
                     `event = 'signup'`, but `{}` has type {}{hint}",
                    k + 1,
                    field.name(),
                    field.data_type()
                );
            }
        }
        Ok(Self { steps, modes })
    }

    /// The position of the first mode argument.
    fn first_mode(&self) -> usize {
        2 + self.steps
    }
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

fn check_window_type(function: &str, window: &Field, ts: &Field) -> Result<()> {
    match window.data_type() {
        DataType::Interval(_) => Ok(()),
        data_type if data_type.is_integer() => {
            if matches!(ts.data_type(), DataType::Date32 | DataType::Date64) {
                plan_err!(
                    "{function}: argument window: with a DATE time it must be an INTERVAL such as \
                     INTERVAL '7 days', but `{}` has type {data_type} (an integer window is a \
                     number of seconds here, while ClickHouse counts it in days over a Date)",
                    window.name()
                )
            } else {
                Ok(())
            }
        }
        data_type => plan_err!(
            "{function}: argument window: must be {WINDOW_ACCEPTS}, but `{}` has type {data_type}",
            window.name()
        ),
    }
}

/// The modes of a call: each a flag, several allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Modes {
    strict_deduplication: bool,
    strict_order: bool,
    strict_increase: bool,
    strict_once: bool,
}

impl Modes {
    /// Adds the modes of one mode argument: one mode, or several separated by commas (as the
    /// `funnel` table function's option holds them); an empty string adds none.
    fn add(&mut self, function: &str, text: &str) -> Result<()> {
        let valid = MODES.map(|mode| format!("'{mode}'")).join(", ");
        for mode in text
            .split(',')
            .map(str::trim)
            .filter(|mode| !mode.is_empty())
        {
            match mode {
                "strict_deduplication" => self.strict_deduplication = true,
                "strict_order" => self.strict_order = true,
                "strict_increase" => self.strict_increase = true,
                "strict_once" => self.strict_once = true,
                "strict" => {
                    return plan_err!(
                        "{function}: argument mode: 'strict' is called 'strict_deduplication' \
                         (as in ClickHouse); valid modes: {valid}"
                    );
                }
                other => {
                    return plan_err!(
                        "{function}: argument mode: unknown mode '{other}'; valid modes: {valid}"
                    );
                }
            }
        }
        Ok(())
    }
}

/// The `window` argument's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowLength {
    Interval(IntervalMonthDayNano),
    Seconds(u64),
}

/// The constant arguments of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Constants {
    window: WindowLength,
    modes: Modes,
}

impl Constants {
    /// Reads `window` and the modes from `literal(position)`, the value of the argument at
    /// `position` when it is a constant.
    fn read(
        function: &str,
        layout: &Layout,
        literal: impl Fn(usize) -> Option<ScalarValue>,
    ) -> Result<Self> {
        let window = window_length(function, literal(0))?;
        let mut modes = Modes::default();
        for position in layout.first_mode()..layout.first_mode() + layout.modes {
            match literal(position) {
                Some(value) if !value.is_null() => match value.try_as_str().flatten() {
                    Some(text) => modes.add(function, text)?,
                    None => return internal_err!("{function}: mode {value} is not a string"),
                },
                Some(_) => {
                    return plan_err!(
                        "{function}: argument mode: must be a mode such as 'strict_order', not \
                         NULL"
                    );
                }
                None => {
                    return plan_err!(
                        "{function}: argument mode: must be a constant string such as \
                         'strict_order', not a column or other expression"
                    );
                }
            }
        }
        Ok(Self { window, modes })
    }
}

fn window_length(function: &str, value: Option<ScalarValue>) -> Result<WindowLength> {
    let Some(value) = value else {
        return plan_err!(
            "{function}: argument window: must be a constant, {WINDOW_ACCEPTS}, not a column or \
             other expression"
        );
    };
    if value.is_null() {
        return plan_err!("{function}: argument window: must be {WINDOW_ACCEPTS}, not NULL");
    }
    let seconds = match &value {
        ScalarValue::IntervalYearMonth(Some(months)) => {
            return positive_interval(function, IntervalMonthDayNano::new(*months, 0, 0), &value);
        }
        ScalarValue::IntervalDayTime(Some(interval)) => {
            let nanos = i64::from(interval.milliseconds) * 1_000_000;
            return positive_interval(
                function,
                IntervalMonthDayNano::new(0, interval.days, nanos),
                &value,
            );
        }
        ScalarValue::IntervalMonthDayNano(Some(interval)) => {
            return positive_interval(function, *interval, &value);
        }
        ScalarValue::Int8(Some(n)) => i128::from(*n),
        ScalarValue::Int16(Some(n)) => i128::from(*n),
        ScalarValue::Int32(Some(n)) => i128::from(*n),
        ScalarValue::Int64(Some(n)) => i128::from(*n),
        ScalarValue::UInt8(Some(n)) => i128::from(*n),
        ScalarValue::UInt16(Some(n)) => i128::from(*n),
        ScalarValue::UInt32(Some(n)) => i128::from(*n),
        ScalarValue::UInt64(Some(n)) => i128::from(*n),
        other => {
            return plan_err!(
                "{function}: argument window: must be {WINDOW_ACCEPTS}, but is {other} of type {}",
                other.data_type()
            );
        }
    };
    match u64::try_from(seconds) {
        Ok(seconds) if seconds > 0 => Ok(WindowLength::Seconds(seconds)),
        _ => plan_err!(
            "{function}: argument window: must be {WINDOW_ACCEPTS}, but is {seconds} seconds"
        ),
    }
}

fn positive_interval(
    function: &str,
    interval: IntervalMonthDayNano,
    value: &ScalarValue,
) -> Result<WindowLength> {
    let parts = [
        i64::from(interval.months),
        i64::from(interval.days),
        interval.nanoseconds,
    ];
    if parts.iter().all(|part| *part >= 0) && parts.iter().any(|part| *part > 0) {
        Ok(WindowLength::Interval(interval))
    } else {
        plan_err!(
            "{function}: argument window: must be {WINDOW_ACCEPTS} (longer than zero, no part negative), but \
             is {value}"
        )
    }
}

/// The type of the `ts` argument, and the ticks the funnel counts time in: a TIMESTAMP's own
/// values, a DATE's midnight in seconds (Date64: in milliseconds, as stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimeKind {
    Timestamp(TimeUnit, Option<Arc<str>>),
    Date32,
    Date64,
    /// A NULL constant: no row has a time.
    Null,
}

impl TimeKind {
    pub(crate) fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Timestamp(unit, zone) => TimeKind::Timestamp(*unit, zone.clone()),
            DataType::Date64 => TimeKind::Date64,
            DataType::Date32 => TimeKind::Date32,
            // Planning admits no other type.
            _ => TimeKind::Null,
        }
    }

    pub(crate) fn unit(&self) -> TimeUnit {
        match self {
            TimeKind::Timestamp(unit, _) => *unit,
            TimeKind::Date64 => TimeUnit::Millisecond,
            TimeKind::Date32 | TimeKind::Null => TimeUnit::Second,
        }
    }

    fn zone(&self) -> Option<&Arc<str>> {
        match self {
            TimeKind::Timestamp(_, zone) => zone.as_ref(),
            _ => None,
        }
    }

    /// The type of the chain's step times: the TIMESTAMP itself, or a DATE's midnight as a
    /// TIMESTAMP without a zone (what `CAST(d AS TIMESTAMP)` gives, in seconds).
    fn output_type(&self) -> DataType {
        DataType::Timestamp(self.unit(), self.zone().cloned())
    }
}

/// Ticks of `unit` in a second.
pub(crate) fn ticks_per_second(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// The window, in the funnel's ticks.
#[derive(Debug, Clone, Copy)]
enum Window {
    /// A fixed length: a chain ends at step-1 time + this many ticks (saturating).
    Fixed(i64),
    /// Months, or days in a zone with daylight saving: added by the calendar, as Arrow adds an
    /// INTERVAL to a TIMESTAMP.
    Calendar {
        interval: IntervalMonthDayNano,
        unit: TimeUnit,
        zone: Tz,
    },
}

impl Window {
    fn new(function: &str, length: WindowLength, time: &TimeKind) -> Result<Self> {
        let unit = time.unit();
        let saturate = |ticks: i128| i64::try_from(ticks).unwrap_or(i64::MAX);
        Ok(match length {
            WindowLength::Seconds(seconds) => {
                Window::Fixed(saturate(i128::from(seconds) * ticks_per_second(unit)))
            }
            WindowLength::Interval(interval)
                if interval.months != 0
                    || (interval.days != 0
                        && !time.zone().is_none_or(|zone| has_one_offset(zone))) =>
            {
                let zone = time.zone().map_or("+00:00", |zone| zone);
                let Ok(zone) = zone.parse::<Tz>() else {
                    return plan_err!("{function}: argument ts: unknown time zone '{zone}'");
                };
                Window::Calendar {
                    interval,
                    unit,
                    zone,
                }
            }
            WindowLength::Interval(interval) => {
                let nanos = i128::from(interval.days) * SECONDS_PER_DAY * NANOS_PER_SECOND
                    + i128::from(interval.nanoseconds);
                // Rounded down: a step is in the window when `ts <= first + window`, and `ts` is
                // a whole number of ticks.
                Window::Fixed(saturate(nanos * ticks_per_second(unit) / NANOS_PER_SECOND))
            }
        })
    }

    /// The last time of a chain whose step 1 is at `first`.
    fn end(&self, first: i64) -> i64 {
        match *self {
            Window::Fixed(ticks) => first.saturating_add(ticks),
            Window::Calendar {
                interval,
                unit,
                zone,
            } => add_interval(unit, first, interval, zone)
                // A local time that the zone skips or repeats has no single answer (and makes
                // `ts + window` fail in SQL): count in UTC there.
                .or_else(|| add_interval(unit, first, interval, "+00:00".parse().ok()?))
                .unwrap_or(i64::MAX),
        }
    }
}

/// Whether `zone` (a TIMESTAMP's) has only ever had one offset, so that its days are all 24 hours
/// long: an offset such as '+05:30', or UTC and its aliases. Days of the other zones are added by
/// the calendar, which costs a time zone lookup per chain.
fn has_one_offset(zone: &str) -> bool {
    match zone.parse::<chrono_tz::Tz>() {
        Ok(zone) => fixed_offset(zone).is_some(),
        Err(_) => zone.starts_with(['+', '-']),
    }
}

fn add_interval(unit: TimeUnit, ts: i64, interval: IntervalMonthDayNano, zone: Tz) -> Option<i64> {
    match unit {
        TimeUnit::Second => TimestampSecondType::add_month_day_nano(ts, interval, zone),
        TimeUnit::Millisecond => TimestampMillisecondType::add_month_day_nano(ts, interval, zone),
        TimeUnit::Microsecond => TimestampMicrosecondType::add_month_day_nano(ts, interval, zone),
        TimeUnit::Nanosecond => TimestampNanosecondType::add_month_day_nano(ts, interval, zone),
    }
}

/// One row of a group in the state: its time in ticks and its true conditions, bit k - 1 for
/// `ck` (0 for a row that met none, kept only in 'strict_order' mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Event {
    pub(crate) ts: i64,
    pub(crate) steps: u32,
}

/// The time column of a batch, as ticks.
enum Ticks<'a> {
    Values(&'a [i64]),
    Days(&'a [i32]),
    None,
}

impl<'a> Ticks<'a> {
    fn new(function: &str, array: &'a ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                Ticks::Values(&array.as_primitive::<TimestampSecondType>().values()[..])
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Ticks::Values(&array.as_primitive::<TimestampMillisecondType>().values()[..])
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Ticks::Values(&array.as_primitive::<TimestampMicrosecondType>().values()[..])
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                Ticks::Values(&array.as_primitive::<TimestampNanosecondType>().values()[..])
            }
            DataType::Date32 => Ticks::Days(&array.as_primitive::<Date32Type>().values()[..]),
            DataType::Date64 => Ticks::Values(&array.as_primitive::<Date64Type>().values()[..]),
            DataType::Null => Ticks::None,
            other => return internal_err!("{function}: ts reached execution as {other}"),
        })
    }

    fn get(&self, row: usize) -> i64 {
        match self {
            Ticks::Values(values) => values[row],
            Ticks::Days(days) => i64::from(days[row]) * SECONDS_PER_DAY as i64,
            Ticks::None => 0,
        }
    }
}

/// The rows of `array` that are valid and true.
fn valid_true(array: &BooleanArray) -> BooleanBuffer {
    match array.nulls() {
        Some(nulls) => array.values() & nulls.inner(),
        None => array.values().clone(),
    }
}

/// A funnel as one call defines it: its steps, modes, time type and window.
#[derive(Debug, Clone)]
pub(crate) struct Funnel {
    function: &'static str,
    steps: usize,
    modes: Modes,
    time: TimeKind,
    window: Window,
}

impl Funnel {
    /// Reads the call from the arguments of an accumulator: their fields, and the literal values
    /// of `window` and the modes.
    fn from_accumulator_args(function: &'static str, args: &AccumulatorArgs) -> Result<Self> {
        Self::from_arguments(function, args.exprs, args.expr_fields)
    }

    /// Reads the call from the expressions of `window, ts, c1, ..., cN, modes` and their fields.
    pub(crate) fn from_arguments(
        function: &'static str,
        exprs: &[Arc<dyn PhysicalExpr>],
        fields: &[FieldRef],
    ) -> Result<Self> {
        let layout = Layout::read(function, fields)?;
        let literal = |position: usize| {
            exprs[position]
                .downcast_ref::<Literal>()
                .map(|literal| literal.value().clone())
        };
        let constants = Constants::read(function, &layout, literal)?;
        let time = TimeKind::of(fields[1].data_type());
        Ok(Self {
            function,
            steps: layout.steps,
            modes: constants.modes,
            window: Window::new(function, constants.window, &time)?,
            time,
        })
    }

    /// The number of steps, one per condition.
    pub(crate) fn steps(&self) -> usize {
        self.steps
    }

    /// The type of the call's `ts`, and the unit of its ticks.
    pub(crate) fn time(&self) -> &TimeKind {
        &self.time
    }

    /// Calls `each(row, event)` for every row of a batch of arguments that a group keeps: rows
    /// with a time, that `filter` (if any) keeps, and that met a condition (in 'strict_order'
    /// mode every such row, since one that met none interrupts the chain).
    pub(crate) fn for_each_event(
        &self,
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut each: impl FnMut(usize, Event),
    ) -> Result<()> {
        let function = self.function;
        let Some(times) = values.get(1) else {
            return internal_err!("{function}: no ts column at execution");
        };
        let rows = times.len();
        let mut masks = vec![0u32; rows];
        for (k, condition) in values[2..2 + self.steps].iter().enumerate() {
            let Some(condition) = condition.as_boolean_opt() else {
                return internal_err!(
                    "{function}: condition c{} reached execution as {}, not BOOLEAN",
                    k + 1,
                    condition.data_type()
                );
            };
            for row in valid_true(condition).set_indices() {
                masks[row] |= 1 << k;
            }
        }
        let mut kept = match times.logical_nulls() {
            Some(nulls) => nulls.inner().clone(),
            None => BooleanBuffer::new_set(rows),
        };
        if let Some(filter) = filter {
            kept = &kept & &valid_true(filter);
        }
        let ticks = Ticks::new(function, times)?;
        for row in kept.set_indices() {
            let steps = masks[row];
            if steps != 0 || self.modes.strict_order {
                each(
                    row,
                    Event {
                        ts: ticks.get(row),
                        steps,
                    },
                );
            }
        }
        Ok(())
    }

    /// The results of `groups`, each a group's events (which this sorts).
    fn evaluate<'a>(
        &self,
        output: FunnelOutput,
        groups: impl Iterator<Item = &'a mut [Event]>,
        scratch: &mut Scratch,
    ) -> Result<ArrayRef> {
        match output {
            FunnelOutput::Level => {
                let levels: UInt8Array = groups
                    .map(|events| Some(self.run(events, scratch).level))
                    .collect();
                Ok(Arc::new(levels))
            }
            FunnelOutput::Chain => {
                let mut lengths = Vec::new();
                let mut times = Vec::new();
                for events in groups {
                    let reached = self.run(events, scratch);
                    let before = times.len();
                    scratch.push_chain(reached, &mut times);
                    lengths.push(times.len() - before);
                }
                Ok(Arc::new(ListArray::try_new(
                    chain_item_field(&self.time),
                    OffsetBuffer::from_lengths(lengths),
                    timestamps(&self.time, times),
                    None,
                )?))
            }
        }
    }

    /// Runs the funnel over one group's events: the level reached, and the last step of the
    /// first chain that reached it.
    pub(crate) fn run(&self, events: &mut [Event], scratch: &mut Scratch) -> Reached {
        scratch.steps.clear();
        scratch.nodes.clear();
        // Sorted first so that rows that look alike get the same numbers whatever order the
        // partial states arrived in.
        events.sort_unstable();
        for (row, event) in events.iter().enumerate() {
            let row = row as u32;
            if event.steps == 0 {
                scratch.steps.push(StepEvent {
                    ts: event.ts,
                    step: 0,
                    row,
                });
            }
            let mut bits = event.steps;
            while bits != 0 {
                scratch.steps.push(StepEvent {
                    ts: event.ts,
                    step: bits.trailing_zeros() as u8 + 1,
                    row,
                });
                bits &= bits - 1;
            }
        }
        // By time, then step index (ClickHouse's order), then row.
        scratch.steps.sort_unstable();
        self.follow_chains(scratch)
    }

    /// ClickHouse's algorithm. Without 'strict_once' (`getEventLevelNonStrictOnce`) each level
    /// holds one chain, the last one that reached it, and a step k event extends the chain of
    /// level k - 1. With it (`getEventLevelStrictOnce`) a level holds every chain that reached
    /// it, a step extends each of them that does not hold its row already, and a chain out of
    /// its window is dropped when a later step looks at it, except the last one left at its
    /// level.
    fn follow_chains(&self, scratch: &mut Scratch) -> Reached {
        let Scratch {
            steps,
            nodes,
            levels,
        } = scratch;
        let every_chain = self.modes.strict_once;
        levels.resize_with(self.steps, Vec::new);
        levels.iter_mut().for_each(Vec::clear);
        let mut reached = Reached::NOTHING;
        let mut started = false;
        for &StepEvent { ts, step, row } in steps.iter() {
            // A row that met no condition: only there in 'strict_order' mode.
            if step == 0 {
                if started {
                    break;
                }
                continue;
            }
            let k = usize::from(step - 1);
            if k == 0 {
                let node = push_node(nodes, ts, row, NO_NODE);
                let chain = Chain {
                    end: self.window.end(ts),
                    last: ts,
                    node,
                };
                hold(&mut levels[0], every_chain, chain);
                started = true;
                reached.reach(1, node);
            } else if (self.modes.strict_deduplication && !levels[k].is_empty())
                || (self.modes.strict_order && started && levels[k - 1].is_empty())
            {
                // A step the funnel had reached happens again, or a step comes before the step
                // ahead of it has happened: the run ends. Levels are reached from the first on
                // and never lost, so the highest reached is what ClickHouse returns here too.
                break;
            } else {
                let (lower, upper) = levels.split_at_mut(k);
                let (previous, next) = (&mut lower[k - 1], &mut upper[0]);
                let count = previous.len();
                let mut kept = 0;
                for read in 0..count {
                    let chain = previous[read];
                    let in_window = ts <= chain.end;
                    // `read - kept` chains dropped so far.
                    if !in_window && count - (read - kept) > 1 {
                        continue;
                    }
                    previous[kept] = chain;
                    kept += 1;
                    if in_window
                        && !(every_chain && holds_row(nodes, chain.node, row))
                        && (!self.modes.strict_increase || chain.last < ts)
                    {
                        let node = push_node(nodes, ts, row, chain.node);
                        let extended = Chain {
                            end: chain.end,
                            last: ts,
                            node,
                        };
                        hold(next, every_chain, extended);
                        reached.reach(k + 1, node);
                        if k + 1 == self.steps {
                            return reached;
                        }
                    }
                }
                previous.truncate(kept);
            }
        }
        reached
    }
}

/// Puts `chain` at its level: next to the chains there when following every chain, else in
/// their place.
fn hold(level: &mut Vec<Chain>, every_chain: bool, chain: Chain) {
    if !every_chain {
        level.clear();
    }
    level.push(chain);
}

/// The step times of `times` (ticks) as an array of the chain's item type.
pub(crate) fn timestamps(time: &TimeKind, times: Vec<i64>) -> ArrayRef {
    let zone = time.zone().cloned();
    match time.unit() {
        TimeUnit::Second => {
            Arc::new(PrimitiveArray::<TimestampSecondType>::from(times).with_timezone_opt(zone))
        }
        TimeUnit::Millisecond => Arc::new(
            PrimitiveArray::<TimestampMillisecondType>::from(times).with_timezone_opt(zone),
        ),
        TimeUnit::Microsecond => Arc::new(
            PrimitiveArray::<TimestampMicrosecondType>::from(times).with_timezone_opt(zone),
        ),
        TimeUnit::Nanosecond => {
            Arc::new(PrimitiveArray::<TimestampNanosecondType>::from(times).with_timezone_opt(zone))
        }
    }
}

/// An event of one step, as the funnel reads them: ordered by time, step index, then row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct StepEvent {
    ts: i64,
    /// 1 to 32, or 0 for a row that met no condition.
    step: u8,
    row: u32,
}

const NO_NODE: usize = usize::MAX;

/// A step of a chain: its time, its row, and the step before it.
#[derive(Debug, Clone, Copy)]
struct Node {
    ts: i64,
    row: u32,
    parent: usize,
}

fn push_node(nodes: &mut Vec<Node>, ts: i64, row: u32, parent: usize) -> usize {
    nodes.push(Node { ts, row, parent });
    nodes.len() - 1
}

/// Whether the chain ending at `node` holds a step from `row`.
fn holds_row(nodes: &[Node], mut node: usize, row: u32) -> bool {
    while node != NO_NODE {
        if nodes[node].row == row {
            return true;
        }
        node = nodes[node].parent;
    }
    false
}

/// A chain as a level holds it: when it must end, its last step's time, and that step.
#[derive(Debug, Clone, Copy)]
struct Chain {
    end: i64,
    last: i64,
    node: usize,
}

/// The level a run reached, and the last step of the first chain that reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reached {
    pub(crate) level: u8,
    node: usize,
}

impl Reached {
    const NOTHING: Reached = Reached {
        level: 0,
        node: NO_NODE,
    };

    fn reach(&mut self, level: usize, node: usize) {
        if level > usize::from(self.level) {
            self.level = level as u8;
            self.node = node;
        }
    }
}

/// What a run needs besides the events, kept from group to group to spare allocations.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    steps: Vec<StepEvent>,
    nodes: Vec<Node>,
    /// The chains each level holds.
    levels: Vec<Vec<Chain>>,
}

impl Scratch {
    /// Appends the step times of the chain that `reached` ends, from step 1 on.
    pub(crate) fn push_chain(&self, reached: Reached, times: &mut Vec<i64>) {
        let start = times.len();
        let mut node = reached.node;
        while node != NO_NODE {
            times.push(self.nodes[node].ts);
            node = self.nodes[node].parent;
        }
        times[start..].reverse();
    }

    pub(crate) fn size(&self) -> usize {
        self.steps.capacity() * size_of::<StepEvent>()
            + self.nodes.capacity() * size_of::<Node>()
            + self
                .levels
                .iter()
                .map(|chains| size_of::<Vec<Chain>>() + chains.capacity() * size_of::<Chain>())
                .sum::<usize>()
    }
}

/// The state arrays of `groups`: their events' times and step masks, one list per group.
fn state_arrays<'a>(groups: impl Iterator<Item = &'a [Event]>) -> Vec<ArrayRef> {
    let mut lengths = Vec::new();
    let mut times = Vec::new();
    let mut steps = Vec::new();
    for events in groups {
        lengths.push(events.len());
        times.extend(events.iter().map(|event| event.ts));
        steps.extend(events.iter().map(|event| event.steps));
    }
    let offsets = OffsetBuffer::from_lengths(lengths);
    let list = |values: ArrayRef| -> ArrayRef {
        let item = state_item_field(values.data_type().clone());
        Arc::new(ListArray::new(item, offsets.clone(), values, None))
    };
    vec![
        list(Arc::new(Int64Array::from(times))),
        list(Arc::new(UInt32Array::from(steps))),
    ]
}

/// Calls `each(row, times, steps)` for every row of a batch of states.
pub(crate) fn for_each_state(
    function: &str,
    states: &[ArrayRef],
    mut each: impl FnMut(usize, &[i64], &[u32]),
) -> Result<()> {
    let (Some(times), Some(steps)) = (
        states.first().and_then(|state| state.as_list_opt::<i32>()),
        states.get(1).and_then(|state| state.as_list_opt::<i32>()),
    ) else {
        return internal_err!("{function}: the state is not two lists");
    };
    let (Some(time_values), Some(step_values)) = (
        times.values().as_primitive_opt::<Int64Type>(),
        steps.values().as_primitive_opt::<UInt32Type>(),
    ) else {
        return internal_err!("{function}: the state's lists are not of BIGINT and UINT32");
    };
    let (time_offsets, step_offsets) = (times.value_offsets(), steps.value_offsets());
    for row in 0..times.len() {
        if times.is_null(row) || steps.is_null(row) {
            continue;
        }
        let time_range = time_offsets[row] as usize..time_offsets[row + 1] as usize;
        let step_range = step_offsets[row] as usize..step_offsets[row + 1] as usize;
        if time_range.len() != step_range.len() {
            return internal_err!("{function}: a state has more times than step masks or fewer");
        }
        each(
            row,
            &time_values.values()[time_range],
            &step_values.values()[step_range],
        );
    }
    Ok(())
}

pub(crate) fn extend_events(events: &mut Vec<Event>, times: &[i64], steps: &[u32]) {
    events.extend(
        times
            .iter()
            .zip(steps)
            .map(|(&ts, &steps)| Event { ts, steps }),
    );
}

/// A funnel aggregate over a single group (no GROUP BY, or a window frame).
#[derive(Debug)]
struct FunnelAccumulator {
    funnel: Funnel,
    output: FunnelOutput,
    events: Vec<Event>,
    scratch: Scratch,
}

impl Accumulator for FunnelAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let events = &mut self.events;
        self.funnel
            .for_each_event(values, None, |_, event| events.push(event))
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let result = self.funnel.evaluate(
            self.output,
            std::iter::once(self.events.as_mut_slice()),
            &mut self.scratch,
        )?;
        ScalarValue::try_from_array(&result, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.events.capacity() * size_of::<Event>() + self.scratch.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        state_arrays(std::iter::once(self.events.as_slice()))
            .iter()
            .map(|array| ScalarValue::try_from_array(array, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let events = &mut self.events;
        for_each_state(self.funnel.function, states, |_, times, steps| {
            extend_events(events, times, steps)
        })
    }
}

/// A funnel aggregate for every group of a GROUP BY: the events of all its groups in one list,
/// each with its group index. A list per group cost a million allocations for a million actors
/// (`malloc` and `free` were 12% of a `window_funnel` benchmark's samples); the groups' events are
/// put in order of group by a counting sort when they are emitted.
#[derive(Debug)]
struct FunnelGroupsAccumulator {
    funnel: Funnel,
    output: FunnelOutput,
    events: Vec<GroupEvent>,
    groups: usize,
    scratch: Scratch,
}

/// An event of the group with index `group`.
#[derive(Debug, Clone, Copy)]
struct GroupEvent {
    group: usize,
    event: Event,
}

/// The events of consecutive groups: group `g`'s are `events[starts[g]..starts[g + 1]]`.
pub(crate) struct Grouped {
    events: Vec<Event>,
    starts: Vec<usize>,
}

impl Grouped {
    /// `events`, each with its group below `groups`, put in order of group by a counting sort
    /// (in the order they came within a group).
    pub(crate) fn by_group(
        groups: usize,
        events: impl Iterator<Item = (usize, Event)> + Clone,
    ) -> Self {
        let mut starts = vec![0; groups + 1];
        for (group, _) in events.clone() {
            starts[group + 1] += 1;
        }
        for group in 1..starts.len() {
            starts[group] += starts[group - 1];
        }
        let mut next = starts.clone();
        let mut sorted = vec![Event { ts: 0, steps: 0 }; starts[groups]];
        for (group, event) in events {
            sorted[next[group]] = event;
            next[group] += 1;
        }
        Self {
            events: sorted,
            starts,
        }
    }

    /// The number of groups.
    pub(crate) fn groups(&self) -> usize {
        self.starts.len() - 1
    }

    /// Each group's events, empty for a group without any.
    pub(crate) fn slices(&mut self) -> impl Iterator<Item = &mut [Event]> {
        let mut rest = self.events.as_mut_slice();
        self.starts.windows(2).map(move |range| {
            let (group, after) = std::mem::take(&mut rest).split_at_mut(range[1] - range[0]);
            rest = after;
            group
        })
    }
}

impl FunnelGroupsAccumulator {
    /// Takes the events of the groups that `emit_to` names, in order of group; the groups after
    /// them are numbered from 0 again.
    fn take(&mut self, emit_to: EmitTo) -> Grouped {
        let emitted = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        };
        let taken = self
            .events
            .iter()
            .filter(|kept| kept.group < emitted)
            .map(|kept| (kept.group, kept.event));
        let grouped = Grouped::by_group(emitted, taken);
        self.events.retain_mut(|kept| {
            let stays = kept.group >= emitted;
            if stays {
                kept.group -= emitted;
            }
            stays
        });
        self.groups -= emitted;
        // The bytes of the emitted events are given back, as the memory pool counts them.
        if self.events.is_empty() {
            self.events = Vec::new();
        } else {
            self.events.shrink_to_fit();
        }
        grouped
    }
}

impl GroupsAccumulator for FunnelGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups = self.groups.max(total_num_groups);
        let events = &mut self.events;
        self.funnel
            .for_each_event(values, opt_filter, |row, event| {
                events.push(GroupEvent {
                    group: group_indices[row],
                    event,
                })
            })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut grouped = self.take(emit_to);
        self.funnel
            .evaluate(self.output, grouped.slices(), &mut self.scratch)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let mut grouped = self.take(emit_to);
        Ok(state_arrays(grouped.slices().map(|events| &*events)))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups = self.groups.max(total_num_groups);
        let events = &mut self.events;
        for_each_state(self.funnel.function, values, |row, times, steps| {
            let group = group_indices[row];
            events.extend(times.iter().zip(steps).map(|(&ts, &steps)| GroupEvent {
                group,
                event: Event { ts, steps },
            }));
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a state of its own: its event, or none.
        let rows = values.first().map_or(0, |array| array.len());
        let mut events: Vec<Option<Event>> = vec![None; rows];
        self.funnel
            .for_each_event(values, opt_filter, |row, event| events[row] = Some(event))?;
        Ok(state_arrays(events.iter().map(Option::as_slice)))
    }

    fn size(&self) -> usize {
        self.events.capacity() * size_of::<GroupEvent>() + self.scratch.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    use datafusion::arrow::array::TimestampSecondArray;
    use datafusion::arrow::datatypes::{Schema, UInt8Type};
    use datafusion::physical_expr::expressions::Column;

    const HOUR: i64 = 3_600;

    fn hours(n: i64) -> ScalarValue {
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
            0,
            0,
            n * HOUR * 1_000_000_000,
        )))
    }

    /// A call `function(window, ts, c1..cN, modes...)` over a TIMESTAMP(s) column, as the
    /// accumulators see it.
    struct Call {
        fields: Vec<FieldRef>,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: Schema,
    }

    impl Call {
        fn new(window: ScalarValue, steps: usize, modes: &[&str]) -> Self {
            let ts_type = DataType::Timestamp(TimeUnit::Second, None);
            let mut fields = vec![
                Arc::new(Field::new("window", window.data_type(), true)),
                Arc::new(Field::new("ts", ts_type, true)),
            ];
            let mut exprs: Vec<Arc<dyn PhysicalExpr>> = vec![
                Arc::new(Literal::new(window)),
                Arc::new(Column::new("ts", 1)),
            ];
            for k in 1..=steps {
                fields.push(Arc::new(Field::new(
                    format!("c{k}"),
                    DataType::Boolean,
                    true,
                )));
                exprs.push(Arc::new(Column::new(&format!("c{k}"), k + 1)));
            }
            for mode in modes {
                let value = ScalarValue::Utf8(Some(mode.to_string()));
                fields.push(Arc::new(Field::new("mode", DataType::Utf8, true)));
                exprs.push(Arc::new(Literal::new(value)));
            }
            let schema = Schema::new(fields.clone());
            Self {
                fields,
                exprs,
                schema,
            }
        }

        fn args(&self, output: FunnelOutput) -> AccumulatorArgs<'_> {
            let return_field = FunnelFunction::new("window_funnel", output)
                .return_field(&self.fields)
                .unwrap();
            AccumulatorArgs {
                return_field,
                schema: &self.schema,
                ignore_nulls: false,
                order_bys: &[],
                is_reversed: false,
                name: "window_funnel(...)",
                is_distinct: false,
                exprs: &self.exprs,
                expr_fields: &self.fields,
            }
        }

        fn funnel(&self) -> Result<Funnel> {
            Funnel::from_accumulator_args("window_funnel", &self.args(FunnelOutput::Level))
        }
    }

    /// The argument arrays of a batch: each row is (seconds, the steps it meets, 1-based).
    fn batch(steps: usize, rows: &[(i64, &[usize])]) -> Vec<ArrayRef> {
        let mut values: Vec<ArrayRef> = vec![
            values_of_window(rows.len()),
            Arc::new(TimestampSecondArray::from(
                rows.iter().map(|(ts, _)| *ts).collect::<Vec<_>>(),
            )),
        ];
        for k in 1..=steps {
            values.push(Arc::new(BooleanArray::from(
                rows.iter()
                    .map(|(_, met)| met.contains(&k))
                    .collect::<Vec<_>>(),
            )));
        }
        values
    }

    /// The level of one group of `rows`, with a window of `window_hours` hours.
    fn level(window_hours: i64, steps: usize, modes: &[&str], rows: &[(i64, &[usize])]) -> u8 {
        chain(window_hours, steps, modes, rows).0
    }

    /// The level and the chain (in seconds) of one group of `rows`, window in hours.
    fn chain(
        window_hours: i64,
        steps: usize,
        modes: &[&str],
        rows: &[(i64, &[usize])],
    ) -> (u8, Vec<i64>) {
        run(hours(window_hours), steps, modes, rows)
    }

    /// The level and the chain (in seconds) of one group of `rows`.
    fn run(
        window: ScalarValue,
        steps: usize,
        modes: &[&str],
        rows: &[(i64, &[usize])],
    ) -> (u8, Vec<i64>) {
        let funnel = Call::new(window, steps, modes).funnel().unwrap();
        let mut events = Vec::new();
        funnel
            .for_each_event(&batch(steps, rows), None, |_, event| events.push(event))
            .unwrap();
        let mut scratch = Scratch::default();
        let reached = funnel.run(&mut events, &mut scratch);
        let mut times = Vec::new();
        scratch.push_chain(reached, &mut times);
        (reached.level, times)
    }

    fn levels(array: &ArrayRef) -> Vec<u8> {
        array.as_primitive::<UInt8Type>().values().to_vec()
    }

    fn chains(array: &ArrayRef) -> Vec<Vec<i64>> {
        array
            .as_list::<i32>()
            .iter()
            .map(|list| {
                list.unwrap()
                    .as_primitive::<TimestampSecondType>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn return_types_are_uint8_and_a_list_of_the_time_type() {
        let call = Call::new(hours(1), 3, &["strict_order"]);
        let level = FunnelFunction::new("window_funnel", FunnelOutput::Level);
        assert_eq!(
            level.return_field(&call.fields).unwrap().data_type(),
            &DataType::UInt8
        );
        let events = FunnelFunction::new("window_funnel_events", FunnelOutput::Chain);
        let date = |data_type: DataType| {
            let mut types: Vec<DataType> = call
                .fields
                .iter()
                .map(|field| field.data_type().clone())
                .collect();
            types[1] = data_type;
            events.return_type(&types).unwrap()
        };
        let zoned = DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into()));
        assert_eq!(
            date(zoned.clone()),
            DataType::List(Arc::new(Field::new_list_field(zoned, true)))
        );
        assert_eq!(
            date(DataType::Date32),
            DataType::List(Arc::new(Field::new_list_field(
                DataType::Timestamp(TimeUnit::Second, None),
                true
            )))
        );
    }

    #[test]
    fn planning_names_the_wrong_argument_and_what_it_accepts() {
        let function = FunnelFunction::new("window_funnel", FunnelOutput::Level);
        let interval = DataType::Interval(IntervalUnit::MonthDayNano);
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let error = |types: Vec<DataType>| function.return_type(&types).unwrap_err().to_string();

        let few = error(vec![interval.clone()]);
        assert!(
            few.contains("takes a window, a time and 1 to 32 BOOLEAN"),
            "{few}"
        );
        let none = error(vec![interval.clone(), ts.clone(), DataType::Utf8]);
        assert!(
            none.contains("1 to 32 BOOLEAN conditions after window and ts, got 0"),
            "{none}"
        );
        let mut many = vec![interval.clone(), ts.clone()];
        many.extend(vec![DataType::Boolean; 33]);
        assert!(error(many).contains("got 33"));
        let condition = error(vec![
            interval.clone(),
            ts.clone(),
            DataType::Boolean,
            DataType::Int32,
        ]);
        assert!(
            condition.contains("argument c2: must be a BOOLEAN condition")
                && condition.contains("Int32"),
            "{condition}"
        );
        let window = error(vec![DataType::Utf8, ts.clone(), DataType::Boolean]);
        assert!(
            window.contains("argument window: must be a positive INTERVAL"),
            "{window}"
        );
        let time = error(vec![interval, DataType::Int64, DataType::Boolean]);
        assert!(
            time.contains("argument ts: must be a TIMESTAMP or a DATE"),
            "{time}"
        );
        let date_seconds = error(vec![DataType::Int64, DataType::Date32, DataType::Boolean]);
        assert!(
            date_seconds.contains("with a DATE time it must be an INTERVAL"),
            "{date_seconds}"
        );
    }

    #[test]
    fn constants_must_be_valid_literals() {
        let error = |window: ScalarValue, modes: &[&str]| {
            Call::new(window, 2, modes)
                .funnel()
                .unwrap_err()
                .to_string()
        };
        let zero = error(hours(0), &[]);
        assert!(zero.contains("must be a positive INTERVAL"), "{zero}");
        let negative = error(ScalarValue::Int64(Some(-5)), &[]);
        assert!(negative.contains("but is -5 seconds"), "{negative}");
        let mixed = error(
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(1, -40, 0))),
            &[],
        );
        assert!(
            mixed.contains("longer than zero, no part negative"),
            "{mixed}"
        );
        let mode = error(hours(1), &["strict_order", "fast"]);
        assert!(
            mode.contains(
                "unknown mode 'fast'; valid modes: 'strict_deduplication', \
                 'strict_order', 'strict_increase', 'strict_once'"
            ),
            "{mode}"
        );
        assert!(error(hours(1), &["strict"]).contains("is called 'strict_deduplication'"));

        let mut column_window = Call::new(hours(1), 2, &[]);
        column_window.exprs[0] = Arc::new(Column::new("ts", 1));
        let column = column_window.funnel().unwrap_err().to_string();
        assert!(
            column.contains("argument window: must be a constant"),
            "{column}"
        );
    }

    #[test]
    fn modes_combine_and_may_share_one_string() {
        let funnel = Call::new(
            hours(1),
            2,
            &["strict_order, strict_once", "", "strict_order"],
        )
        .funnel()
        .unwrap();
        assert_eq!(
            funnel.modes,
            Modes {
                strict_order: true,
                strict_once: true,
                ..Modes::default()
            }
        );
    }

    #[test]
    fn windows_become_ticks_of_the_time_unit() {
        let micros = TimeKind::Timestamp(TimeUnit::Microsecond, None);
        let window = |length, time: &TimeKind| Window::new("f", length, time).unwrap();
        let interval = |months, days, nanos| {
            WindowLength::Interval(IntervalMonthDayNano::new(months, days, nanos))
        };
        assert!(matches!(
            window(interval(0, 1, 1_500), &micros),
            Window::Fixed(86_400_000_001)
        ));
        assert!(matches!(
            window(WindowLength::Seconds(u64::MAX), &micros),
            Window::Fixed(i64::MAX)
        ));
        assert!(matches!(
            window(interval(0, 2, 0), &TimeKind::Date32),
            Window::Fixed(172_800)
        ));
        // 2024-01-31 + 1 month is 2024-02-29, as `ts + INTERVAL '1 month'` gives.
        let month = window(
            interval(1, 0, 0),
            &TimeKind::Timestamp(TimeUnit::Second, None),
        );
        assert_eq!(month.end(1_706_659_200), 1_709_164_800);
        // Paris moved to summer time on 2024-03-31: that day had 23 hours.
        let paris = TimeKind::Timestamp(TimeUnit::Second, Some("Europe/Paris".into()));
        let day = window(interval(0, 1, 0), &paris);
        let march_30_noon = 1_711_796_400;
        assert_eq!(day.end(march_30_noon), march_30_noon + 23 * HOUR);
        // Zones of one offset have days of 24 hours, without a calendar.
        for zone in ["UTC", "Etc/GMT-3", "+05:30"] {
            let zoned = TimeKind::Timestamp(TimeUnit::Second, Some(zone.into()));
            let days = window(interval(0, 2, 0), &zoned);
            assert!(matches!(days, Window::Fixed(172_800)), "{zone}: {days:?}");
        }
    }

    #[test]
    fn steps_in_order_within_the_window_make_the_level() {
        let rows: &[(i64, &[usize])] = &[(0, &[1]), (HOUR, &[2]), (2 * HOUR, &[3])];
        assert_eq!(level(2, 3, &[], rows), 3);
        assert_eq!(level(1, 3, &[], rows), 2);
    }

    #[test]
    fn a_step_exactly_window_after_step_one_counts() {
        assert_eq!(level(1, 2, &[], &[(0, &[1]), (HOUR, &[2])]), 2);
        assert_eq!(level(1, 2, &[], &[(0, &[1]), (HOUR + 1, &[2])]), 1);
    }

    #[test]
    fn steps_out_of_order_do_not_count() {
        assert_eq!(level(5, 3, &[], &[(0, &[3]), (1, &[2]), (2, &[1])]), 1);
        assert_eq!(level(5, 3, &[], &[(0, &[2]), (1, &[3])]), 0);
    }

    #[test]
    fn ties_at_one_time_are_taken_in_step_order() {
        // Step 2 arrives first in the batch, at the same second as step 1.
        assert_eq!(level(1, 2, &[], &[(7, &[2]), (7, &[1])]), 2);
        // One row that meets every condition makes every step, unless 'strict_once'.
        assert_eq!(level(1, 3, &[], &[(7, &[1, 2, 3])]), 3);
        assert_eq!(level(1, 3, &["strict_once"], &[(7, &[1, 2, 3])]), 1);
        assert_eq!(level(1, 3, &["strict_increase"], &[(7, &[1, 2, 3])]), 1);
    }

    #[test]
    fn the_highest_level_of_any_window_is_the_answer() {
        let second_window_higher: &[(i64, &[usize])] = &[
            (0, &[1]),
            (10, &[2]),
            (1_000, &[1]),
            (1_010, &[2]),
            (1_020, &[3]),
        ];
        let seconds = ScalarValue::Int64(Some(100));
        assert_eq!(
            run(seconds.clone(), 3, &[], second_window_higher),
            (3, vec![1_000, 1_010, 1_020])
        );
        let first_window_higher: &[(i64, &[usize])] = &[
            (0, &[1]),
            (10, &[2]),
            (20, &[3]),
            (1_000, &[1]),
            (1_010, &[2]),
        ];
        assert_eq!(
            run(seconds, 3, &[], first_window_higher),
            (3, vec![0, 10, 20])
        );
    }

    #[test]
    fn the_chain_is_the_first_to_reach_the_highest_level() {
        // Level 2 is reached at 5 s and again at 101 s; step 3 never happens.
        let rows: &[(i64, &[usize])] = &[(0, &[1]), (5, &[2]), (100, &[1]), (101, &[2])];
        assert_eq!(chain(1, 3, &[], rows), (2, vec![0, 5]));
        // Step 3 extends the chain of the latest step 1 before it.
        let rows: &[(i64, &[usize])] = &[(0, &[1]), (5, &[2]), (10, &[1]), (12, &[2]), (20, &[3])];
        assert_eq!(chain(1, 3, &[], rows), (3, vec![10, 12, 20]));
        assert_eq!(chain(1, 3, &[], &[(3, &[2])]), (0, vec![]));
    }

    #[test]
    fn strict_deduplication_stops_at_a_repeated_step() {
        // ClickHouse's issue 27469: a b c b d gives 3.
        let rows: &[(i64, &[usize])] = &[(1, &[1]), (2, &[2]), (3, &[3]), (4, &[2]), (5, &[4])];
        assert_eq!(level(1, 4, &[], rows), 4);
        assert_eq!(level(1, 4, &["strict_deduplication"], rows), 3);
        // A repeated step 1 starts over instead.
        let rows: &[(i64, &[usize])] = &[(1, &[1]), (2, &[1]), (3, &[2])];
        assert_eq!(level(1, 2, &["strict_deduplication"], rows), 2);
    }

    #[test]
    fn strict_order_stops_at_an_unrelated_event_or_a_skipped_step() {
        let unrelated: &[(i64, &[usize])] = &[(1, &[1]), (2, &[]), (3, &[2]), (4, &[3])];
        assert_eq!(level(1, 3, &[], unrelated), 3);
        assert_eq!(level(1, 3, &["strict_order"], unrelated), 1);
        let skipped: &[(i64, &[usize])] = &[(1, &[1]), (2, &[3]), (3, &[2])];
        assert_eq!(level(1, 3, &["strict_order"], skipped), 1);
        // Unrelated events before step 1 do not matter.
        let before: &[(i64, &[usize])] = &[(0, &[]), (1, &[1]), (2, &[2])];
        assert_eq!(level(1, 2, &["strict_order"], before), 2);
    }

    #[test]
    fn strict_increase_needs_later_times() {
        // ClickHouse's test: 1000 at 0, 1001..1003 at 1, 1004 at 2.
        let rows: &[(i64, &[usize])] = &[(0, &[1]), (1, &[2]), (1, &[3]), (1, &[4]), (2, &[5])];
        assert_eq!(level(1, 5, &[], rows), 5);
        assert_eq!(level(1, 5, &["strict_increase"], rows), 2);
    }

    #[test]
    fn strict_once_uses_a_row_once_per_chain() {
        // ClickHouse's test: steps failure, failure, success with a 200 s window.
        let failure: &[usize] = &[1, 2];
        let success: &[usize] = &[3];
        let user_123: &[(i64, &[usize])] = &[(180, failure), (220, failure), (250, success)];
        let user_234: &[(i64, &[usize])] = &[(100, failure), (250, failure)];
        let user_345: &[(i64, &[usize])] = &[(200, success), (210, failure), (230, success)];
        let run = |rows, modes: &[&str]| run(ScalarValue::Int64(Some(200)), 3, modes, rows);
        for modes in [
            &["strict_once"][..],
            &["strict_once", "strict_increase"],
            &["strict_once", "strict_deduplication"],
        ] {
            assert_eq!(run(user_123, modes), (3, vec![180, 220, 250]), "{modes:?}");
            assert_eq!(run(user_234, modes), (2, vec![100, 250]), "{modes:?}");
            assert_eq!(run(user_345, modes), (1, vec![210]), "{modes:?}");
        }
        // Without it one failure row makes steps 1 and 2.
        assert_eq!(run(user_345, &[]), (3, vec![210, 210, 230]));
    }

    #[test]
    fn no_time_or_false_conditions_make_no_event() {
        let funnel = Call::new(hours(1), 2, &[]).funnel().unwrap();
        let values = vec![
            values_of_window(3),
            Arc::new(TimestampSecondArray::from(vec![Some(1), None, Some(3)])) as ArrayRef,
            Arc::new(BooleanArray::from(vec![Some(true), Some(true), None])) as ArrayRef,
            Arc::new(BooleanArray::from(vec![None, Some(false), Some(false)])) as ArrayRef,
        ];
        let mut rows = Vec::new();
        funnel
            .for_each_event(&values, None, |row, event| rows.push((row, event)))
            .unwrap();
        assert_eq!(rows, [(0, Event { ts: 1, steps: 0b01 })]);
    }

    fn values_of_window(rows: usize) -> ArrayRef {
        hours(1).to_array_of_size(rows).unwrap()
    }

    /// Rows of three groups, 3 steps, window 1 hour:
    /// group 0: steps 1, 2, 3 in order → 3, [0, 10, 20]; group 1: step 2 only → 0, [];
    /// group 2: steps 1 then 2, step 3 too late → 2, [100, 200].
    fn three_groups() -> (Vec<ArrayRef>, Vec<usize>) {
        let rows: &[(i64, &[usize])] = &[
            (20, &[3]),
            (5, &[2]),
            (100, &[1]),
            (0, &[1]),
            (200, &[2]),
            (10, &[2]),
            (100 + HOUR + 1, &[3]),
        ];
        (batch(3, rows), vec![0, 1, 2, 0, 2, 0, 2])
    }

    fn groups_accumulator(output: FunnelOutput) -> Box<dyn GroupsAccumulator> {
        let call = Call::new(hours(1), 3, &[]);
        FunnelFunction::new("window_funnel", output)
            .groups_accumulator(&call.args(output))
            .unwrap()
    }

    #[test]
    fn groups_emitted_first_n_at_a_time_are_numbered_from_zero_after() {
        let (values, groups) = three_groups();
        let mut level = groups_accumulator(FunnelOutput::Level);
        level.update_batch(&values, &groups, None, 4).unwrap();
        assert_eq!(levels(&level.evaluate(EmitTo::First(1)).unwrap()), [3]);
        // Group 2 is now group 1; a later batch adds a step 3 within its hour.
        let late = batch(3, &[(250, &[3])]);
        level.update_batch(&late, &[1], None, 3).unwrap();
        assert_eq!(levels(&level.evaluate(EmitTo::First(1)).unwrap()), [0]);
        assert_eq!(levels(&level.evaluate(EmitTo::All).unwrap()), [3, 0]);
    }

    #[test]
    fn groups_accumulator_computes_each_group_on_its_own() {
        let (values, groups) = three_groups();
        let mut level = groups_accumulator(FunnelOutput::Level);
        level.update_batch(&values, &groups, None, 4).unwrap();
        assert_eq!(levels(&level.evaluate(EmitTo::All).unwrap()), [3, 0, 2, 0]);
        let mut chain = groups_accumulator(FunnelOutput::Chain);
        chain.update_batch(&values, &groups, None, 4).unwrap();
        assert_eq!(
            chains(&chain.evaluate(EmitTo::All).unwrap()),
            [vec![0, 10, 20], vec![], vec![100, 200], vec![]]
        );
    }

    #[test]
    fn groups_merge_of_partial_states_equals_a_single_pass() {
        let (values, groups) = three_groups();
        let mut single = groups_accumulator(FunnelOutput::Chain);
        single.update_batch(&values, &groups, None, 3).unwrap();

        // Two partitions see alternate rows, each with its own group numbering (reversed in the
        // second), as after a repartition.
        let mut merged = groups_accumulator(FunnelOutput::Chain);
        for (parity, renumber) in [(0, [0usize, 1, 2]), (1, [2, 1, 0])] {
            let take: Vec<u32> = (0..7u32).filter(|r| r % 2 == parity).collect();
            let indices = UInt32Array::from(take.clone());
            let part: Vec<ArrayRef> = values
                .iter()
                .map(|v| datafusion::arrow::compute::take(v, &indices, None).unwrap())
                .collect();
            let part_groups: Vec<usize> =
                take.iter().map(|&r| renumber[groups[r as usize]]).collect();
            let mut partial = groups_accumulator(FunnelOutput::Chain);
            partial.update_batch(&part, &part_groups, None, 3).unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged.merge_batch(&state, &renumber, 3).unwrap();
        }
        assert_eq!(
            chains(&merged.evaluate(EmitTo::All).unwrap()),
            chains(&single.evaluate(EmitTo::All).unwrap())
        );
    }

    #[test]
    fn convert_to_state_then_merge_equals_update() {
        let (values, groups) = three_groups();
        // The filter drops group 0's step 2 at 10 s: its chain stops at step 1, before its
        // step 3.
        let filter = BooleanArray::from(vec![
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            None,
            Some(true),
        ]);
        let mut updated = groups_accumulator(FunnelOutput::Chain);
        updated
            .update_batch(&values, &groups, Some(&filter), 3)
            .unwrap();
        let mut merged = groups_accumulator(FunnelOutput::Chain);
        let state = merged.convert_to_state(&values, Some(&filter)).unwrap();
        merged.merge_batch(&state, &groups, 3).unwrap();

        let expected = [vec![0], vec![], vec![100, 200]];
        assert_eq!(chains(&updated.evaluate(EmitTo::All).unwrap()), expected);
        assert_eq!(chains(&merged.evaluate(EmitTo::All).unwrap()), expected);
    }

    #[test]
    fn emit_first_keeps_and_renumbers_the_remaining_groups() {
        let (values, groups) = three_groups();
        let mut accumulator = groups_accumulator(FunnelOutput::Level);
        accumulator.update_batch(&values, &groups, None, 3).unwrap();
        let size = accumulator.size();
        let state = accumulator.state(EmitTo::First(1)).unwrap();
        // Group 0's three events leave, with their bytes.
        assert_eq!(state[0].as_list::<i32>().value_offsets(), [0, 3]);
        assert!(accumulator.size() < size);
        // Former group 1 is now group 0: its step 1 arrives late, after its step 2.
        let late = batch(3, &[(4, &[1])]);
        accumulator.update_batch(&late, &[0], None, 2).unwrap();
        assert_eq!(levels(&accumulator.evaluate(EmitTo::All).unwrap()), [2, 2]);
    }

    #[test]
    fn accumulator_merge_of_partial_states_equals_a_single_pass() {
        let call = Call::new(hours(1), 3, &[]);
        let function = FunnelFunction::new("window_funnel_events", FunnelOutput::Chain);
        let args = call.args(FunnelOutput::Chain);
        let rows: &[(i64, &[usize])] = &[(20, &[3]), (0, &[1]), (10, &[2])];
        let mut merged = function.accumulator(&args).unwrap();
        for row in rows {
            let mut partial = function.accumulator(&args).unwrap();
            partial.update_batch(&batch(3, &[*row])).unwrap();
            merge_state(partial.as_mut(), merged.as_mut());
        }
        let ScalarValue::List(list) = merged.evaluate().unwrap() else {
            panic!("window_funnel_events evaluates to a list");
        };
        let list: ArrayRef = list;
        assert_eq!(chains(&list), [vec![0, 10, 20]]);

        let mut empty = FunnelFunction::new("window_funnel", FunnelOutput::Level)
            .accumulator(&call.args(FunnelOutput::Level))
            .unwrap();
        assert_eq!(empty.evaluate().unwrap(), ScalarValue::UInt8(Some(0)));
    }

    /// The error of optimizing `sql` (parsed, checked and simplified, never run), if any.
    async fn optimize(sql: &str) -> Option<String> {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udaf(datafusion::logical_expr::AggregateUDF::from(
            WindowFunnel::new(),
        ));
        ctx.sql(
            "CREATE TABLE events (uid INT, ts TIMESTAMP, event VARCHAR) AS VALUES \
             (1, '2024-05-01 10:00:00', 'view')",
        )
        .await
        .unwrap();
        let plan = ctx
            .sql(sql)
            .await
            .and_then(|frame| frame.into_optimized_plan());
        plan.err().map(|error| error.to_string())
    }

    #[tokio::test]
    async fn bad_constants_fail_when_the_query_is_optimized() {
        let column = optimize("SELECT window_funnel(uid, ts, event = 'view') FROM events").await;
        assert!(
            column
                .as_deref()
                .is_some_and(|error| error.contains("argument window: must be a constant")),
            "{column:?}"
        );
        let mode =
            optimize("SELECT window_funnel(1, ts, event = 'view', 'strict_orde') FROM events")
                .await;
        assert!(
            mode.as_deref()
                .is_some_and(|error| error.contains("unknown mode 'strict_orde'")),
            "{mode:?}"
        );
        // A constant expression is folded before the check.
        let folded = "SELECT window_funnel(60 * 60, ts, event = 'view', \
                      concat('strict_', 'order')) FROM events";
        assert_eq!(optimize(folded).await, None);
    }

    #[test]
    fn documentation_has_description_syntax_arguments_and_example() {
        let udf = WindowFunnel::new();
        let doc = udf.documentation().unwrap();
        assert_eq!(
            doc.syntax_example,
            "window_funnel(window, ts, c1[, c2, ..., c32][, mode, ...])"
        );
        assert!(doc.description.contains("'strict_once'"));
        assert_eq!(doc.arguments.as_ref().unwrap().len(), 4);
        assert!(doc.sql_example.as_ref().unwrap().contains("window_funnel("));
    }

    #[test]
    fn information_schema_lists_the_exact_signature() {
        assert_eq!(
            WindowFunnel::new()
                .signature()
                .type_signature
                .get_example_types(),
            [vec![
                DataType::Interval(IntervalUnit::MonthDayNano),
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                DataType::Boolean
            ]]
        );
    }
}
