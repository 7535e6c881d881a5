//! `sequence_match(pattern, ts, c1, ..., cN)`: ClickHouse's `sequenceMatch` aggregate, and what the
//! sequence aggregates (`sequence_count`, `sequence_match_events`) share: the checks of their
//! arguments, their state and their accumulators. Each function only says, through
//! [`SequenceOutput`], what it makes of a group's sorted events; the pattern language and the
//! matcher are in [`crate::sequence_pattern`].
//!
//! The state of a group is its list of events, as ClickHouse keeps it: one (time, conditions) pair
//! per row with a time and at least one true condition, `conditions` having bit k - 1 set when the
//! row met `ck`. Rows that met no condition are dropped as they arrive (they are not events). The
//! state travels as two lists of the same lengths, the times (`BIGINT`, in the time argument's own
//! unit) and the condition masks (`UINT32`), so that partial states from any number of partitions
//! merge by concatenation, in any order; events are sorted only when a group is evaluated. The
//! GROUP BY path keeps every group's events in one flat vector of (time, group, conditions), 16
//! bytes an event and no allocation per group, and sorts them into groups (a counting sort by
//! group, then each group's events by time) when the groups are emitted.
//!
//! The pattern must be a constant: it is parsed when the query is optimized, so that a malformed
//! pattern or a column there is a planning error, and again when the accumulators are made.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, Int64Type, TimeUnit, UInt32Type,
};
use datafusion::common::{
    ScalarValue, exec_datafusion_err, exec_err, internal_err, plan_datafusion_err, plan_err,
};
use datafusion::error::Result;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator, ReversedUDAF,
    Signature, TypeSignature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion_macros::user_doc;

use crate::fold::{list_of, state_field};
use crate::period::arguments::check_time_argument;
use crate::sequence_pattern::{Event, MAX_CONDITIONS, Pattern, TooComplex, sort_events};

/// What the pattern argument must be, for error messages.
const PATTERN_EXPECTED: &str = "a constant string such as '(?1).*(?2)'";

const SECONDS_PER_DAY: i64 = 86_400;

#[user_doc(
    doc_section(label = "General Functions"),
    description = "Whether the group's events hold a chain that matches `pattern`, as \
        ClickHouse's `sequenceMatch`. The events are the rows that met at least one condition (a \
        NULL condition is false; rows with a NULL time are ignored): other rows are not events, \
        so `.` never matches them. Events are read in time order, and events at the same time in \
        the order of their condition bitmask (a row meeting only c1, then one meeting only c2, \
        then one meeting both), whatever order the rows come in; ClickHouse leaves the order of \
        ties to chance. Pattern elements, written without spaces: `(?N)` an event that meets \
        condition N; `.` any one event; `.*` any number of events; `(?t op secs)` with op one of \
        `>=`, `>`, `<`, `<=`, `==`, such as `(?t>=3600)`: the seconds from the event matched \
        before (after `.*`, from the first event that `.*` did not skip) to the event the next \
        element matches, with any events between them. A chain may start at any event. Times \
        compare exactly, in the time's own unit (a DATE is its midnight UTC; ClickHouse counts \
        time conditions over a Date in days). Without time conditions the answer comes from \
        ClickHouse's DFA, with them from its backtracking search, which stops with an error \
        after 1,000,000 steps on one group as ClickHouse does, though far more rarely (the \
        search here remembers what failed). The pattern must be a constant: a malformed one, \
        `(?0)`, a condition beyond the call's, or the empty pattern (which ClickHouse matches on \
        every group) is a planning error naming the position. A group without events gives \
        false. Takes 1 to 32 BOOLEAN conditions (ClickHouse requires 2 or more).",
    syntax_example = "sequence_match(pattern, ts, c1[, c2, ..., c32])",
    sql_example = r#"```sql
> CREATE TABLE t AS
  SELECT to_timestamp_seconds(column1) AS time, column2 AS number
  FROM (VALUES (1, 1), (2, 3), (3, 2));
> SELECT sequence_match('(?1)(?2)', time, number = 1, number = 2) AS c12,
         sequence_match('(?1)(?2)', time, number = 1, number = 2, number = 3) AS c123,
         sequence_match('(?1)(?t<=3600)(?2)', time, number = 1, number = 2) AS within_an_hour
  FROM t;
+------+-------+----------------+
| c12  | c123  | within_an_hour |
+------+-------+----------------+
| true | false | true           |
+------+-------+----------------+
```"#,
    argument(
        name = "pattern",
        description = "Constant string: the chain to look for, such as '(?1).*(?t<=3600)(?2)'."
    ),
    argument(
        name = "ts",
        description = "TIMESTAMP (any unit, with or without a zone) or DATE: the time of the row."
    ),
    argument(
        name = "c1",
        description = "BOOLEAN condition that `(?1)` matches, such as `event = 'signup'`."
    ),
    argument(
        name = "c2, ..., c32",
        description = "BOOLEAN conditions that `(?2)`, ..., `(?32)` match."
    )
)]
/// The result and documentation of `sequence_match`.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct MatchOutput;

/// The `sequence_match` aggregate function.
pub(crate) type SequenceMatch = SequenceFunction<MatchOutput>;

impl SequenceOutput for MatchOutput {
    const NAME: &'static str = "sequence_match";
    type Value = bool;

    fn data_type(_time: &DataType) -> DataType {
        DataType::Boolean
    }

    fn value(pattern: &Pattern, events: &[Event]) -> Result<bool, TooComplex> {
        pattern.matches(events)
    }

    fn array(values: Vec<bool>, _time: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(BooleanArray::from(values)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// What one sequence aggregate makes of a group's events; everything else is shared.
pub(crate) trait SequenceOutput:
    fmt::Debug + Default + PartialEq + Eq + Hash + Send + Sync + 'static
{
    /// The function's SQL name.
    const NAME: &'static str;
    /// The result of one group.
    type Value;

    /// The SQL type of the result, for a time argument of type `time`.
    fn data_type(time: &DataType) -> DataType;
    /// The result of a group, from its events sorted by [`sort_events`].
    fn value(pattern: &Pattern, events: &[Event]) -> Result<Self::Value, TooComplex>;
    /// The results of several groups, in order, for a time argument of type `time`.
    fn array(values: Vec<Self::Value>, time: &DataType) -> Result<ArrayRef>;
    fn documentation(&self) -> Option<&Documentation>;
}

/// A sequence aggregate: `sequence_match`, `sequence_count`, ..., told apart by `O`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SequenceFunction<O> {
    signature: Signature,
    output: O,
}

impl<O: SequenceOutput> SequenceFunction<O> {
    pub(crate) fn new() -> Self {
        Self {
            // The two `Exact` forms are what `SHOW FUNCTIONS` and information_schema list. Every
            // call goes through `coerce_types` first (`UserDefined`), and a call without
            // arguments is let through (`Nullary`), so that `return_field` checks the arguments
            // and names what is wrong, rather than DataFusion's generic coercion error.
            signature: Signature::one_of(
                vec![
                    TypeSignature::UserDefined,
                    TypeSignature::Exact(vec![
                        DataType::Utf8,
                        DataType::Timestamp(TimeUnit::Nanosecond, None),
                        DataType::Boolean,
                    ]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Date32, DataType::Boolean]),
                    TypeSignature::Nullary,
                ],
                Volatility::Immutable,
            ),
            output: O::default(),
        }
    }
}

impl<O: SequenceOutput> Default for SequenceFunction<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: SequenceOutput> AggregateUDFImpl for SequenceFunction<O> {
    fn name(&self) -> &str {
        O::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        // A NULL condition is a condition that is never true; every other type is kept for
        // `return_field` to name.
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| match data_type {
                DataType::Null if position >= 2 => DataType::Boolean,
                _ => data_type.clone(),
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| {
                let name = match position {
                    0 => "pattern".to_string(),
                    1 => "ts".to_string(),
                    _ => format!("c{}", position - 1),
                };
                Arc::new(Field::new(name, data_type.clone(), true))
            })
            .collect();
        check_arguments(O::NAME, &fields)?;
        Ok(O::data_type(fields[1].data_type()))
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        check_arguments(O::NAME, arg_fields)?;
        let data_type = O::data_type(arg_fields[1].data_type());
        Ok(Arc::new(Field::new(O::NAME, data_type, true)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SequenceAccumulator::<O> {
            pattern: read_pattern(O::NAME, &args)?,
            time: time_type(&args),
            events: Vec::new(),
            output: PhantomData,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(&args, "times", list_of(DataType::Int64)),
            state_field(&args, "conditions", list_of(DataType::UInt32)),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SequenceGroups::<O> {
            pattern: read_pattern(O::NAME, &args)?,
            time: time_type(&args),
            events: Vec::new(),
            groups: 0,
            output: PhantomData,
        }))
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        // Not a rewrite: the optimizer hands over the arguments with constants folded, which is
        // where a bad pattern becomes a planning error.
        Some(Box::new(|aggregate, _| {
            let args = &aggregate.params.args;
            if args.len() >= 3 {
                let literal = match &args[0] {
                    Expr::Literal(value, _) => Some(value),
                    _ => None,
                };
                parse_pattern(O::NAME, literal, args.len() - 2)?;
            }
            Ok(Expr::AggregateFunction(aggregate))
        }))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.output.documentation()
    }
}

/// Checks the arguments of a sequence aggregate at planning, naming the first that is wrong.
fn check_arguments(function: &str, fields: &[FieldRef]) -> Result<()> {
    let count = fields.len();
    if !(3..=MAX_CONDITIONS + 2).contains(&count) {
        return plan_err!(
            "{function} takes a pattern, a time and 1 to {MAX_CONDITIONS} BOOLEAN conditions, \
             got {count} arguments"
        );
    }
    let pattern = &fields[0];
    match pattern.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {}
        DataType::Null => {
            return plan_err!("{function}: argument pattern must be {PATTERN_EXPECTED}, not NULL");
        }
        other => {
            return plan_err!(
                "{function}: argument pattern must be {PATTERN_EXPECTED}, but `{}` has type \
                 {other}",
                pattern.name()
            );
        }
    }
    check_time_argument(function, "ts", &fields[1])?;
    if let Some((k, field)) = fields[2..]
        .iter()
        .enumerate()
        .find(|(_, field)| field.data_type() != &DataType::Boolean)
    {
        return plan_err!(
            "{function}: argument c{} must be a BOOLEAN condition such as `event = 'signup'`, but \
             `{}` has type {}",
            k + 1,
            field.name(),
            field.data_type()
        );
    }
    Ok(())
}

/// Parses the pattern argument of a call with `conditions` conditions: `value` is the argument
/// when it is a constant.
fn parse_pattern(
    function: &str,
    value: Option<&ScalarValue>,
    conditions: usize,
) -> Result<Pattern> {
    let Some(value) = value else {
        return plan_err!(
            "{function}: argument pattern must be {PATTERN_EXPECTED}, not a column or an \
             expression over columns"
        );
    };
    match value.try_as_str() {
        Some(Some(text)) => Pattern::parse(text, conditions)
            .map_err(|error| plan_datafusion_err!("{function}: argument pattern: {error}")),
        Some(None) => {
            plan_err!("{function}: argument pattern must be {PATTERN_EXPECTED}, not NULL")
        }
        None => plan_err!(
            "{function}: argument pattern must be {PATTERN_EXPECTED}, not {}",
            value.data_type()
        ),
    }
}

/// The pattern of a call, from its literal first argument, for events in the time argument's unit.
fn read_pattern(function: &str, args: &AccumulatorArgs) -> Result<Pattern> {
    let literal = args
        .exprs
        .first()
        .and_then(|expr| expr.downcast_ref::<Literal>())
        .map(Literal::value);
    let pattern = parse_pattern(function, literal, args.exprs.len().saturating_sub(2))?;
    let ticks = args
        .expr_fields
        .get(1)
        .map_or(1, |field| ticks_per_second(field.data_type()));
    Ok(pattern.with_ticks_per_second(ticks))
}

/// The type of the time argument of a call.
fn time_type(args: &AccumulatorArgs) -> DataType {
    args.expr_fields
        .get(1)
        .map_or(DataType::Null, |field| field.data_type().clone())
}

/// How many units of [`event_times`] make a second, for a time argument of type `data_type`.
fn ticks_per_second(data_type: &DataType) -> i64 {
    match data_type {
        DataType::Timestamp(TimeUnit::Second, _) => 1,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000_000,
        // A Date32 is read in seconds; a NULL time never makes an event.
        _ => 1,
    }
}

/// The times of a batch as integers, in the unit of [`ticks_per_second`]: a TIMESTAMP's own unit
/// (an instant, whatever its zone), milliseconds for a Date64, seconds for a Date32 (its midnight).
pub(crate) fn event_times(function: &str, array: &ArrayRef) -> Result<Int64Array> {
    Ok(match array.data_type() {
        DataType::Timestamp(..) | DataType::Date64 => cast(array, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .unary(|days| i64::from(days) * SECONDS_PER_DAY),
        DataType::Null => Int64Array::new_null(array.len()),
        other => return internal_err!("{function}: the time reached execution as {other}"),
    })
}

/// The rows in which a BOOLEAN is true (not false, not NULL).
pub(crate) fn true_rows(array: &BooleanArray) -> BooleanBuffer {
    match array.nulls() {
        Some(nulls) => array.values() & nulls.inner(),
        None => array.values().clone(),
    }
}

/// Calls `add(row, event)` for each row of a batch of the call's arguments that is an event: a
/// time that is not NULL and at least one true condition, in a row that `filter` (if any) keeps.
fn for_each_event(
    function: &str,
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut add: impl FnMut(usize, Event),
) -> Result<()> {
    let (Some(times), Some(conditions)) = (values.get(1), values.get(2..)) else {
        return internal_err!(
            "{function}: reached execution with {} arguments",
            values.len()
        );
    };
    let times = event_times(function, times)?;
    let mut masks = vec![0u32; times.len()];
    for (k, condition) in conditions.iter().enumerate() {
        let Some(condition) = condition.as_boolean_opt() else {
            return internal_err!(
                "{function}: condition c{} reached execution as {}, not BOOLEAN",
                k + 1,
                condition.data_type()
            );
        };
        for row in true_rows(condition).set_indices() {
            masks[row] |= 1 << k;
        }
    }
    let kept = filter.map(true_rows);
    for (row, &mask) in masks.iter().enumerate() {
        if mask != 0 && times.is_valid(row) && kept.as_ref().is_none_or(|kept| kept.value(row)) {
            add(
                row,
                Event {
                    time: times.value(row),
                    conditions: mask,
                },
            );
        }
    }
    Ok(())
}

/// The state of groups whose events are `events`, group g's being those between `offsets` g and
/// g + 1: their times and their condition masks, as two lists per group.
fn state_arrays(offsets: OffsetBuffer<i32>, events: &[Event]) -> Vec<ArrayRef> {
    let times = Int64Array::from_iter_values(events.iter().map(|event| event.time));
    let conditions = UInt32Array::from_iter_values(events.iter().map(|event| event.conditions));
    let list = |item: DataType, values: ArrayRef, offsets: OffsetBuffer<i32>| -> ArrayRef {
        Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(item, true)),
            offsets,
            values,
            None,
        ))
    };
    vec![
        list(DataType::Int64, Arc::new(times), offsets.clone()),
        list(DataType::UInt32, Arc::new(conditions), offsets),
    ]
}

/// Calls `add(row, event)` for each event in rows of states made by [`state_arrays`].
fn for_each_state_event(
    function: &str,
    states: &[ArrayRef],
    mut add: impl FnMut(usize, Event),
) -> Result<()> {
    let lists = (
        states.first().and_then(|array| array.as_list_opt::<i32>()),
        states.get(1).and_then(|array| array.as_list_opt::<i32>()),
    );
    let (Some(times), Some(conditions)) = lists else {
        return internal_err!("{function}: a state reached the merge in another form");
    };
    let (Some(time_values), Some(condition_values)) = (
        times.values().as_primitive_opt::<Int64Type>(),
        conditions.values().as_primitive_opt::<UInt32Type>(),
    ) else {
        return internal_err!("{function}: a state reached the merge with other item types");
    };
    let (time_offsets, condition_offsets) = (times.value_offsets(), conditions.value_offsets());
    for row in 0..times.len() {
        if times.is_null(row) || conditions.is_null(row) {
            continue;
        }
        let first_time = time_offsets[row] as usize;
        let first_condition = condition_offsets[row] as usize;
        for i in 0..times.value_length(row) as usize {
            add(
                row,
                Event {
                    time: time_values.value(first_time + i),
                    conditions: condition_values.value(first_condition + i),
                },
            );
        }
    }
    Ok(())
}

/// The result of a group whose events are sorted.
fn group_value<O: SequenceOutput>(pattern: &Pattern, events: &[Event]) -> Result<O::Value> {
    O::value(pattern, events).map_err(|error| {
        exec_datafusion_err!(
            "{}: pattern '{}' over a group of {} events: {error}",
            O::NAME,
            pattern.text(),
            events.len()
        )
    })
}

/// A sequence aggregate over a single group (no GROUP BY).
#[derive(Debug)]
struct SequenceAccumulator<O> {
    pattern: Pattern,
    /// The type of the time argument.
    time: DataType,
    events: Vec<Event>,
    output: PhantomData<O>,
}

impl<O: SequenceOutput> Accumulator for SequenceAccumulator<O> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_event(O::NAME, values, None, |_, event| self.events.push(event))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_state_event(O::NAME, states, |_, event| self.events.push(event))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let offsets = OffsetBuffer::from_lengths([self.events.len()]);
        state_arrays(offsets, &self.events)
            .iter()
            .map(|list| ScalarValue::try_from_array(list, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        sort_events(&mut self.events);
        let value = group_value::<O>(&self.pattern, &self.events)?;
        ScalarValue::try_from_array(&O::array(vec![value], &self.time)?, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.events.capacity() * size_of::<Event>()
    }
}

/// An event of a GROUP BY, with its group index.
#[derive(Debug, Clone, Copy)]
struct GroupEvent {
    time: i64,
    group: u32,
    conditions: u32,
}

/// A sequence aggregate for every group of a GROUP BY: all groups' events in one vector.
#[derive(Debug)]
struct SequenceGroups<O> {
    pattern: Pattern,
    /// The type of the time argument.
    time: DataType,
    events: Vec<GroupEvent>,
    /// The number of groups, with or without events.
    groups: usize,
    output: PhantomData<O>,
}

impl<O: SequenceOutput> SequenceGroups<O> {
    fn grow(&mut self, total_num_groups: usize) -> Result<()> {
        if total_num_groups > u32::MAX as usize {
            return exec_err!(
                "{}: more than {} groups in one partition",
                O::NAME,
                u32::MAX
            );
        }
        self.groups = self.groups.max(total_num_groups);
        Ok(())
    }

    fn push(&mut self, group: usize, event: Event) {
        self.events.push(GroupEvent {
            time: event.time,
            group: group as u32,
            conditions: event.conditions,
        });
    }

    /// Removes the events of the groups that `emit_to` names, and returns them by group: group
    /// g's are `events[offsets[g]..offsets[g + 1]]`. The remaining groups are numbered from 0.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<usize>, Vec<Event>) {
        let emitted = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        };
        let taken = match emit_to {
            EmitTo::All => std::mem::take(&mut self.events),
            EmitTo::First(_) => {
                let (taken, mut kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.events)
                    .into_iter()
                    .partition(|event| (event.group as usize) < emitted);
                for event in &mut kept {
                    event.group -= emitted as u32;
                }
                self.events = kept;
                taken
            }
        };
        self.groups -= emitted;
        let mut offsets = vec![0; emitted + 1];
        for event in &taken {
            offsets[event.group as usize + 1] += 1;
        }
        for group in 0..emitted {
            offsets[group + 1] += offsets[group];
        }
        let mut next = offsets[..emitted].to_vec();
        let mut events = vec![Event::default(); taken.len()];
        for event in taken {
            let slot = &mut next[event.group as usize];
            events[*slot] = Event {
                time: event.time,
                conditions: event.conditions,
            };
            *slot += 1;
        }
        (offsets, events)
    }
}

impl<O: SequenceOutput> GroupsAccumulator for SequenceGroups<O> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups)?;
        for_each_event(O::NAME, values, opt_filter, |row, event| {
            self.push(group_indices[row], event)
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (offsets, mut events) = self.take(emit_to);
        let mut values = Vec::with_capacity(offsets.len() - 1);
        for bounds in offsets.windows(2) {
            let group = &mut events[bounds[0]..bounds[1]];
            sort_events(group);
            values.push(group_value::<O>(&self.pattern, group)?);
        }
        O::array(values, &self.time)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (offsets, events) = self.take(emit_to);
        let lengths = offsets.windows(2).map(|bounds| bounds[1] - bounds[0]);
        Ok(state_arrays(OffsetBuffer::from_lengths(lengths), &events))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups)?;
        for_each_state_event(O::NAME, values, |row, event| {
            self.push(group_indices[row], event)
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a group of its own, with its event if it is one.
        let mut lengths = vec![0; values.first().map_or(0, |array| array.len())];
        let mut events = Vec::new();
        for_each_event(O::NAME, values, opt_filter, |row, event| {
            lengths[row] = 1;
            events.push(event);
        })?;
        Ok(state_arrays(OffsetBuffer::from_lengths(lengths), &events))
    }

    fn size(&self) -> usize {
        self.events.capacity() * size_of::<GroupEvent>()
    }
}

#[cfg(test)]
mod tests {
    use crate::test_merge::merge_state;
    use datafusion::arrow::array::{StringArray, TimestampMillisecondArray, TimestampSecondArray};
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::logical_expr::simplify::SimplifyContext;
    use datafusion::logical_expr::{AggregateUDF, col, lit};

    use super::*;

    /// A batch of the call's arguments: the pattern, times in seconds, and condition columns.
    fn batch(
        pattern: &str,
        times: &[Option<i64>],
        conditions: &[&[Option<bool>]],
    ) -> Vec<ArrayRef> {
        let mut values: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![pattern; times.len()])),
            Arc::new(TimestampSecondArray::from(times.to_vec())),
        ];
        values.extend(
            conditions
                .iter()
                .map(|rows| Arc::new(BooleanArray::from(rows.to_vec())) as ArrayRef),
        );
        values
    }

    fn accumulator(pattern: &str, conditions: usize) -> SequenceAccumulator<MatchOutput> {
        SequenceAccumulator {
            pattern: Pattern::parse(pattern, conditions).unwrap(),
            time: DataType::Timestamp(TimeUnit::Second, None),
            events: Vec::new(),
            output: PhantomData,
        }
    }

    fn groups(pattern: &str, conditions: usize) -> SequenceGroups<MatchOutput> {
        SequenceGroups {
            pattern: Pattern::parse(pattern, conditions).unwrap(),
            time: DataType::Timestamp(TimeUnit::Second, None),
            events: Vec::new(),
            groups: 0,
            output: PhantomData,
        }
    }

    fn booleans(array: &ArrayRef) -> Vec<bool> {
        array.as_boolean().iter().map(Option::unwrap).collect()
    }

    /// The number of events in each row of a state.
    fn lengths(times: &ArrayRef) -> Vec<i32> {
        let lists = times.as_list::<i32>();
        (0..lists.len())
            .map(|row| lists.value_length(row))
            .collect()
    }

    fn evaluate(accumulator: &mut SequenceAccumulator<MatchOutput>) -> bool {
        match accumulator.evaluate().unwrap() {
            ScalarValue::Boolean(Some(matched)) => matched,
            other => panic!("sequence_match evaluates to a BOOLEAN, not {other:?}"),
        }
    }

    fn fields(types: &[DataType]) -> Vec<FieldRef> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| Arc::new(Field::new(format!("arg{i}"), t.clone(), true)))
            .collect()
    }

    fn return_field_error(types: &[DataType]) -> String {
        SequenceMatch::new()
            .return_field(&fields(types))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn return_field_is_a_nullable_boolean_named_after_the_function() {
        let field = SequenceMatch::new()
            .return_field(&fields(&[
                DataType::Utf8,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                DataType::Boolean,
                DataType::Boolean,
            ]))
            .unwrap();
        assert_eq!(
            (field.name().as_str(), field.data_type()),
            ("sequence_match", &DataType::Boolean)
        );
        assert!(
            SequenceMatch::new()
                .return_type(&[DataType::Utf8View, DataType::Date32, DataType::Boolean])
                .is_ok()
        );
    }

    #[test]
    fn return_field_rejects_too_few_and_too_many_arguments() {
        let few = return_field_error(&[DataType::Utf8, DataType::Date32]);
        assert!(
            few.contains(
                "sequence_match takes a pattern, a time and 1 to 32 BOOLEAN conditions, got 2 \
                 arguments"
            ),
            "{few}"
        );
        let mut many = vec![DataType::Utf8, DataType::Date32];
        many.extend(vec![DataType::Boolean; 33]);
        assert!(return_field_error(&many).contains("got 35 arguments"));
        let mut most = vec![DataType::Utf8, DataType::Date32];
        most.extend(vec![DataType::Boolean; 32]);
        assert!(SequenceMatch::new().return_field(&fields(&most)).is_ok());
    }

    #[test]
    fn return_field_names_a_pattern_that_is_not_a_string() {
        let error = return_field_error(&[DataType::Int64, DataType::Date32, DataType::Boolean]);
        assert!(error.starts_with("Error during planning"), "{error}");
        assert!(
            error.contains(
                "sequence_match: argument pattern must be a constant string such as \
                 '(?1).*(?2)', but `arg0` has type Int64"
            ),
            "{error}"
        );
        let null = return_field_error(&[DataType::Null, DataType::Date32, DataType::Boolean]);
        assert!(null.contains("not NULL"), "{null}");
    }

    #[test]
    fn return_field_names_a_time_that_is_not_a_timestamp_or_date() {
        let error = return_field_error(&[DataType::Utf8, DataType::Int64, DataType::Boolean]);
        assert!(
            error.contains(
                "sequence_match: argument ts: must be a TIMESTAMP or a DATE, but `arg1` has type \
                 Int64"
            ),
            "{error}"
        );
    }

    #[test]
    fn return_field_names_a_condition_that_is_not_boolean() {
        let error = return_field_error(&[
            DataType::Utf8,
            DataType::Date32,
            DataType::Boolean,
            DataType::Int32,
        ]);
        assert!(
            error.contains(
                "sequence_match: argument c2 must be a BOOLEAN condition such as `event = \
                 'signup'`, but `arg3` has type Int32"
            ),
            "{error}"
        );
    }

    #[test]
    fn coerce_types_makes_null_conditions_boolean_and_keeps_the_rest() {
        let coerced = SequenceMatch::new()
            .coerce_types(&[
                DataType::Null,
                DataType::Null,
                DataType::Null,
                DataType::Int8,
            ])
            .unwrap();
        assert_eq!(
            coerced,
            [
                DataType::Null,
                DataType::Null,
                DataType::Boolean,
                DataType::Int8
            ]
        );
    }

    #[test]
    fn pattern_must_be_a_constant_string_that_parses() {
        let column = parse_pattern("sequence_match", None, 2)
            .unwrap_err()
            .to_string();
        assert!(
            column.contains("not a column or an expression over columns"),
            "{column}"
        );
        let null = parse_pattern("sequence_match", Some(&ScalarValue::Utf8(None)), 2)
            .unwrap_err()
            .to_string();
        assert!(null.contains("not NULL"), "{null}");
        let number = parse_pattern("sequence_match", Some(&ScalarValue::Int64(Some(1))), 2)
            .unwrap_err()
            .to_string();
        assert!(number.contains("not Int64"), "{number}");
        let malformed = parse_pattern(
            "sequence_match",
            Some(&ScalarValue::Utf8View(Some("(?1)(?3)".into()))),
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(
            malformed.starts_with("Error during planning"),
            "{malformed}"
        );
        assert!(
            malformed.contains(
                "sequence_match: argument pattern: '(?1)(?3)' is not a valid pattern: at \
                 character 7, condition 3 does not exist: the call has 2"
            ),
            "{malformed}"
        );
    }

    #[test]
    fn simplify_checks_the_pattern_when_the_query_is_optimized() {
        let udf = SequenceMatch::new();
        let simplify = |pattern: Expr| {
            let call =
                AggregateUDF::from(SequenceMatch::new()).call(vec![pattern, col("ts"), col("a")]);
            let Expr::AggregateFunction(aggregate) = call else {
                panic!("a call of an aggregate is an aggregate function");
            };
            udf.simplify().unwrap()(aggregate, &SimplifyContext::default())
        };
        assert!(matches!(
            simplify(lit("(?1).*")),
            Ok(Expr::AggregateFunction(_))
        ));
        let error = simplify(lit("(?2)")).unwrap_err().to_string();
        assert!(error.contains("condition 2 does not exist"), "{error}");
        let column = simplify(col("p")).unwrap_err().to_string();
        assert!(column.contains("not a column"), "{column}");
    }

    #[test]
    fn documentation_has_description_syntax_arguments_and_example() {
        let udf = SequenceMatch::new();
        let doc = udf.documentation().unwrap();
        assert_eq!(
            doc.syntax_example,
            "sequence_match(pattern, ts, c1[, c2, ..., c32])"
        );
        assert!(doc.description.contains("`(?t op secs)`"));
        assert_eq!(doc.arguments.as_ref().unwrap().len(), 4);
        assert!(
            doc.sql_example
                .as_ref()
                .unwrap()
                .contains("| true | false | true           |")
        );
    }

    #[test]
    fn rows_without_a_true_condition_or_a_time_are_not_events() {
        let values = batch(
            "(?1)(?2)",
            &[Some(1), Some(2), None, Some(4)],
            &[
                &[Some(true), Some(false), Some(false), None],
                &[Some(false), None, Some(true), Some(true)],
            ],
        );
        let mut kept = Vec::new();
        for_each_event("sequence_match", &values, None, |row, event| {
            kept.push((row, event))
        })
        .unwrap();
        // Row 1 has no true condition (a NULL is false); row 2 no time.
        assert_eq!(
            kept,
            [
                (
                    0,
                    Event {
                        time: 1,
                        conditions: 0b01
                    }
                ),
                (
                    3,
                    Event {
                        time: 4,
                        conditions: 0b10
                    }
                )
            ]
        );
    }

    #[test]
    fn times_keep_their_unit_and_dates_count_in_seconds() {
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1_500]));
        assert_eq!(event_times("f", &millis).unwrap().values(), &[1_500]);
        assert_eq!(ticks_per_second(millis.data_type()), 1_000);
        let dates: ArrayRef = Arc::new(datafusion::arrow::array::Date32Array::from(vec![2]));
        assert_eq!(event_times("f", &dates).unwrap().values(), &[172_800]);
        assert_eq!(ticks_per_second(dates.data_type()), 1);
        let nulls: ArrayRef = Arc::new(datafusion::arrow::array::NullArray::new(2));
        assert_eq!(event_times("f", &nulls).unwrap().null_count(), 2);
    }

    #[test]
    fn rows_in_any_order_are_matched_in_time_order() {
        let mut accumulator = accumulator("(?1)(?2)", 2);
        // c2 arrives first but happens later.
        accumulator
            .update_batch(&batch(
                "(?1)(?2)",
                &[Some(9)],
                &[&[Some(false)], &[Some(true)]],
            ))
            .unwrap();
        accumulator
            .update_batch(&batch(
                "(?1)(?2)",
                &[Some(3)],
                &[&[Some(true)], &[Some(false)]],
            ))
            .unwrap();
        assert!(evaluate(&mut accumulator));
    }

    #[test]
    fn an_empty_group_does_not_match() {
        assert!(!evaluate(&mut accumulator("(?1)", 1)));
        assert!(!evaluate(&mut accumulator(".", 1)));
    }

    #[test]
    fn accumulator_merge_of_partial_states_equals_a_single_pass() {
        let first = batch(
            "(?1).(?2)",
            &[Some(5), Some(1)],
            &[
                &[Some(false), Some(true)],
                &[Some(true), Some(false)],
                &[Some(false), Some(false)],
            ],
        );
        let second = batch(
            "(?1).(?2)",
            &[Some(3)],
            &[&[Some(false)], &[Some(false)], &[Some(true)]],
        );
        let mut merged = accumulator("(?1).(?2)", 3);
        for values in [&first, &second] {
            let mut partial = accumulator("(?1).(?2)", 3);
            partial.update_batch(values).unwrap();
            merge_state(&mut partial, &mut merged);
        }
        let mut single = accumulator("(?1).(?2)", 3);
        single.update_batch(&first).unwrap();
        single.update_batch(&second).unwrap();
        // c1 at 1, c3 at 3, c2 at 5: one event between.
        assert!(evaluate(&mut merged));
        assert!(evaluate(&mut single));
    }

    /// Rows of three groups (0, 1, 2) with conditions (c1, c2):
    /// group 0: c2 at 1, c1 at 2, c2 at 3 → matches; group 1: c2 at 1, c1 at 2 → no;
    /// group 2: c1 at 1 only → no.
    fn three_groups() -> (Vec<ArrayRef>, Vec<usize>) {
        let values = batch(
            "(?1)(?2)",
            &[Some(3), Some(2), Some(1), Some(1), Some(2), Some(1)],
            &[
                &[
                    Some(false),
                    Some(true),
                    Some(false),
                    Some(false),
                    Some(true),
                    Some(true),
                ],
                &[
                    Some(true),
                    Some(false),
                    Some(true),
                    Some(true),
                    None,
                    Some(false),
                ],
            ],
        );
        (values, vec![0, 0, 0, 1, 1, 2])
    }

    #[test]
    fn groups_accumulator_computes_each_group_on_its_own() {
        let (values, group_indices) = three_groups();
        let mut accumulator = groups("(?1)(?2)", 2);
        accumulator
            .update_batch(&values, &group_indices, None, 4)
            .unwrap();
        // Group 3 has no rows.
        assert_eq!(
            booleans(&accumulator.evaluate(EmitTo::All).unwrap()),
            [true, false, false, false]
        );
    }

    #[test]
    fn groups_merge_of_partial_states_equals_a_single_pass() {
        let (values, group_indices) = three_groups();
        let mut single = groups("(?1)(?2)", 2);
        single
            .update_batch(&values, &group_indices, None, 3)
            .unwrap();

        // Two partitions see alternate rows, the second numbering the groups backwards.
        let mut merged = groups("(?1)(?2)", 2);
        for (parity, renumber) in [(0, [0usize, 1, 2]), (1, [2, 1, 0])] {
            let rows: Vec<u32> = (0..6).filter(|row| row % 2 == parity).collect();
            let indices = UInt32Array::from(rows.clone());
            let part: Vec<ArrayRef> = values
                .iter()
                .map(|column| datafusion::arrow::compute::take(column, &indices, None).unwrap())
                .collect();
            let part_groups: Vec<usize> = rows
                .iter()
                .map(|&row| renumber[group_indices[row as usize]])
                .collect();
            let mut partial = groups("(?1)(?2)", 2);
            partial.update_batch(&part, &part_groups, None, 3).unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged.merge_batch(&state, &renumber, 3).unwrap();
        }
        assert_eq!(
            booleans(&merged.evaluate(EmitTo::All).unwrap()),
            booleans(&single.evaluate(EmitTo::All).unwrap())
        );
    }

    #[test]
    fn convert_to_state_then_merge_equals_update_with_a_filter() {
        let (values, group_indices) = three_groups();
        // The filter drops group 0's c2 at 3 (false) and group 2's only row (NULL).
        let filter = BooleanArray::from(vec![
            Some(false),
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            None,
        ]);
        let mut updated = groups("(?1)(?2)", 2);
        updated
            .update_batch(&values, &group_indices, Some(&filter), 3)
            .unwrap();
        let mut merged = groups("(?1)(?2)", 2);
        let state = merged.convert_to_state(&values, Some(&filter)).unwrap();
        assert_eq!(lengths(&state[0]), &[0, 1, 1, 1, 1, 0]);
        merged.merge_batch(&state, &group_indices, 3).unwrap();
        assert_eq!(
            booleans(&updated.evaluate(EmitTo::All).unwrap()),
            [false, false, false]
        );
        assert_eq!(
            booleans(&merged.evaluate(EmitTo::All).unwrap()),
            [false, false, false]
        );
    }

    #[test]
    fn emit_first_keeps_and_renumbers_the_remaining_groups() {
        let (values, group_indices) = three_groups();
        let mut accumulator = groups("(?1)(?2)", 2);
        accumulator
            .update_batch(&values, &group_indices, None, 3)
            .unwrap();
        let state = accumulator.state(EmitTo::First(1)).unwrap();
        assert_eq!(lengths(&state[0]), &[3]);
        // Former group 2 is now group 1: its c2 arrives late.
        let late = batch("(?1)(?2)", &[Some(5)], &[&[Some(false)], &[Some(true)]]);
        accumulator.update_batch(&late, &[1], None, 2).unwrap();
        assert_eq!(
            booleans(&accumulator.evaluate(EmitTo::All).unwrap()),
            [false, true]
        );
    }

    #[test]
    fn a_search_over_the_limit_is_an_error_naming_the_function_and_pattern() {
        // A c2, then half a million c1 at one later time: more than a million steps.
        let pattern = Pattern::parse("(?1).*(?2)", 2).unwrap();
        let mut events = vec![Event::default(); 500_001];
        events[0].conditions = 0b10;
        for event in &mut events[1..] {
            *event = Event {
                time: 1,
                conditions: 0b01,
            };
        }
        let error = group_value::<crate::sequence_count::CountOutput>(&pattern, &events)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("sequence_count: pattern '(?1).*(?2)' over a group of 500001 events"),
            "{error}"
        );
    }
}
