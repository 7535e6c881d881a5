//! `sequence_next_node(direction, base, ts, value, base_condition, event1, ..., eventN)`:
//! ClickHouse's `sequenceNextNode` aggregate, the value that comes right after (or before) a
//! chain of events: what users do after viewing pricing, or did before they churned.
//!
//! Every row of a group with a time and a value is a node (rows meeting no condition too, unlike
//! the `sequence_match` family's events), sorted by time and, at the same time, by value, as
//! ClickHouse sorts them (then by base condition and event mask, so that the order never depends
//! on the order rows arrive in). The base is one node: the first (`'head'`) or the last
//! (`'tail'`) if it meets the base condition, or the first (`'first_match'`) or last
//! (`'last_match'`) node that meets the base condition and event 1. From the base, the next k
//! nodes in the direction, the base itself first, must meet event 1, ..., event k one by one; the
//! answer is the value of the node after them, NULL when the chain breaks or no node follows.
//! Only one base is tried, as in ClickHouse: a first match whose chain breaks gives NULL even
//! when a later node would start a whole chain.
//!
//! The state of a group is its nodes, as four lists of the same length (times in the time
//! argument's own unit, values, event masks, base conditions), so that partial states merge by
//! concatenation in any order. For `'head'` and `'tail'` a state keeps only the k + 1 nodes at
//! its start or end, the only ones that can matter, as ClickHouse's serialization does.
//!
//! The direction and the base must be constant strings: they are read when the query is planned
//! (so a misspelt one is a planning error that lists what is accepted) and again when the
//! accumulators are made.

use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, StringArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, TimeUnit, UInt32Type};
use datafusion::common::{ScalarValue, internal_err, plan_err};
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
use crate::sequence_match::{event_times, true_rows};
use crate::sequence_pattern::MAX_CONDITIONS;

const NAME: &str = "sequence_next_node";

/// The arguments before the events.
const LEADING_ARGUMENTS: usize = 5;

#[user_doc(
    doc_section(label = "General Functions"),
    description = "The value of the node that comes after (`'forward'`) or before \
        (`'backward'`) a chain of events, as ClickHouse's `sequenceNextNode`; NULL when there is \
        none. Every row with a time and a value is a node, sorted by time and, at the same time, \
        by value (ClickHouse's order; then by the conditions, so the order never depends on how \
        rows arrive). The base node is the first (`'head'`) or last (`'tail'`) node, if it meets \
        `base_condition`, or the first (`'first_match'`) or last (`'last_match'`) node that \
        meets `base_condition` and `event1`. From the base, the nodes one after the other in the \
        direction must meet `event1`, `event2`, ... (the base meets `event1`); the answer is the \
        value of the next node. Only that base is tried: when its chain breaks the answer is \
        NULL, even if a later node starts a whole chain. 'head' goes only forward and 'tail' \
        only backward, as in ClickHouse. A NULL condition is false; rows with a NULL time or \
        value are no nodes. Takes 1 to 32 BOOLEAN events (ClickHouse also takes none with \
        'head' or 'tail', and up to 64) and any TIMESTAMP or DATE, compared in its own unit \
        (ClickHouse takes a DateTime, in seconds); needs no setting (ClickHouse needs \
        `enable_funnel_functions`, formerly `allow_experimental_funnel_functions`).",
    syntax_example = "sequence_next_node(direction, base, ts, value, base_condition, event1[, event2, ..., event32])",
    sql_example = r#"```sql
> CREATE TABLE test_flow AS
  SELECT to_timestamp_seconds(column1) AS dt, column2 AS id, column3 AS page
  FROM (VALUES (1, 1, 'A'), (2, 1, 'B'), (3, 1, 'C'), (4, 1, 'E'), (5, 1, 'F'));
> SELECT id, sequence_next_node('forward', 'head', dt, page, page = 'A', page = 'A', page = 'B')
         AS next_flow
  FROM test_flow GROUP BY id;
+----+-----------+
| id | next_flow |
+----+-----------+
| 1  | C         |
+----+-----------+
```"#,
    argument(
        name = "direction",
        description = "Constant string: 'forward' (the node after the chain) or 'backward' \
            (the node before it, the chain read back from the base)."
    ),
    argument(
        name = "base",
        description = "Constant string: 'head', 'tail', 'first_match' or 'last_match', the node \
            the chain starts from."
    ),
    argument(
        name = "ts",
        description = "TIMESTAMP (any unit, with or without a zone) or DATE: the time of the row."
    ),
    argument(
        name = "value",
        description = "String: the value to return, such as `event` or `page`."
    ),
    argument(
        name = "base_condition",
        description = "BOOLEAN condition that the base node must meet, such as `plan = 'free'`."
    ),
    argument(
        name = "event1, ..., event32",
        description = "BOOLEAN conditions that the nodes of the chain meet one by one, from the \
            base on."
    )
)]
/// The `sequence_next_node` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SequenceNextNode {
    signature: Signature,
}

impl SequenceNextNode {
    pub(crate) fn new() -> Self {
        Self {
            // As `sequence_match`: every call goes through `coerce_types` (`UserDefined`), and
            // one without arguments is let through, so that `return_field` names what is wrong;
            // the `Exact` form is what information_schema lists.
            signature: Signature::one_of(
                vec![
                    TypeSignature::UserDefined,
                    TypeSignature::Exact(vec![
                        DataType::Utf8,
                        DataType::Utf8,
                        DataType::Timestamp(TimeUnit::Nanosecond, None),
                        DataType::Utf8,
                        DataType::Boolean,
                        DataType::Boolean,
                    ]),
                    TypeSignature::Nullary,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for SequenceNextNode {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for SequenceNextNode {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        // A NULL value is no node and a NULL condition never holds; other types are kept for
        // `return_field` to name.
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| match data_type {
                DataType::Null if position == 3 => DataType::Utf8,
                DataType::Null if position >= 4 => DataType::Boolean,
                _ => data_type.clone(),
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .enumerate()
            .map(|(position, data_type)| {
                Arc::new(Field::new(argument_name(position), data_type.clone(), true))
            })
            .collect();
        Ok(self.return_field(&fields)?.data_type().clone())
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        check_arguments(arg_fields)?;
        Ok(Arc::new(Field::new(NAME, DataType::Utf8, true)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(NextNodeAccumulator {
            call: read_call(&args)?,
            nodes: Nodes::default(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(&args, "times", list_of(DataType::Int64)),
            state_field(&args, "values", list_of(DataType::Utf8)),
            state_field(&args, "events", list_of(DataType::UInt32)),
            state_field(&args, "bases", list_of(DataType::Boolean)),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(NextNodeGroups {
            call: read_call(&args)?,
            groups: Vec::new(),
        }))
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        // Not a rewrite: the optimizer hands over the arguments with constants folded, which is
        // where a misspelt direction or base becomes a planning error.
        Some(Box::new(|aggregate, _| {
            let args = &aggregate.params.args;
            if args.len() > LEADING_ARGUMENTS {
                let literal = |expr: &Expr| match expr {
                    Expr::Literal(value, _) => Some(value.clone()),
                    _ => None,
                };
                Call::parse(
                    literal(&args[0]).as_ref(),
                    literal(&args[1]).as_ref(),
                    args.len() - LEADING_ARGUMENTS,
                )?;
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
        self.doc()
    }
}

/// The name of the argument at `position`, for error messages.
fn argument_name(position: usize) -> String {
    match position {
        0 => "direction".to_string(),
        1 => "base".to_string(),
        2 => "ts".to_string(),
        3 => "value".to_string(),
        4 => "base_condition".to_string(),
        _ => format!("event{}", position - LEADING_ARGUMENTS + 1),
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Checks the arguments' types at planning, naming the first that is wrong.
fn check_arguments(fields: &[FieldRef]) -> Result<()> {
    let count = fields.len();
    if !(LEADING_ARGUMENTS + 1..=LEADING_ARGUMENTS + MAX_CONDITIONS).contains(&count) {
        return plan_err!(
            "{NAME} takes a direction, a base, a time, a value, a base condition and 1 to \
             {MAX_CONDITIONS} BOOLEAN events: sequence_next_node(direction, base, ts, value, \
             base_condition, event1[, ..., event{MAX_CONDITIONS}]); got {count} arguments"
        );
    }
    for (position, accepted) in [(0, DIRECTIONS), (1, BASES)] {
        let field = &fields[position];
        if !is_string(field.data_type()) {
            return plan_err!(
                "{NAME}: argument {} must be a constant string, one of {accepted}, but `{}` has \
                 type {}",
                argument_name(position),
                field.name(),
                field.data_type()
            );
        }
    }
    check_time_argument(NAME, "ts", &fields[2])?;
    let value = &fields[3];
    if !is_string(value.data_type()) {
        return plan_err!(
            "{NAME}: argument value must be a string, such as `event`, but `{}` has type {} \
             (CAST it AS VARCHAR)",
            value.name(),
            value.data_type()
        );
    }
    if let Some((position, field)) = fields
        .iter()
        .enumerate()
        .skip(4)
        .find(|(_, field)| field.data_type() != &DataType::Boolean)
    {
        return plan_err!(
            "{NAME}: argument {} must be a BOOLEAN condition such as `event = 'pricing_view'`, \
             but `{}` has type {}",
            argument_name(position),
            field.name(),
            field.data_type()
        );
    }
    Ok(())
}

/// Which way the chain runs from its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

/// The accepted directions, for error messages.
const DIRECTIONS: &str = "'forward' or 'backward'";

/// The node the chain starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Head,
    Tail,
    FirstMatch,
    LastMatch,
}

/// The accepted bases, for error messages.
const BASES: &str = "'head', 'tail', 'first_match' or 'last_match'";

/// What one call asks: the direction, the base and the number of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Call {
    direction: Direction,
    base: Base,
    events: usize,
}

impl Call {
    /// Reads the direction and the base from their values when constant (`None` when not).
    fn parse(
        direction: Option<&ScalarValue>,
        base: Option<&ScalarValue>,
        events: usize,
    ) -> Result<Self> {
        let direction = match constant_string("direction", DIRECTIONS, direction)?.as_str() {
            "forward" => Direction::Forward,
            "backward" => Direction::Backward,
            other => {
                return plan_err!("{NAME}: argument direction must be {DIRECTIONS}, not '{other}'");
            }
        };
        let base = match constant_string("base", BASES, base)?.as_str() {
            "head" => Base::Head,
            "tail" => Base::Tail,
            "first_match" => Base::FirstMatch,
            "last_match" => Base::LastMatch,
            other => return plan_err!("{NAME}: argument base must be {BASES}, not '{other}'"),
        };
        match (base, direction) {
            (Base::Head, Direction::Backward) => plan_err!(
                "{NAME}: base 'head' goes only 'forward': nothing comes before the first node"
            ),
            (Base::Tail, Direction::Forward) => plan_err!(
                "{NAME}: base 'tail' goes only 'backward': nothing comes after the last node"
            ),
            _ => Ok(Call {
                direction,
                base,
                events,
            }),
        }
    }

    /// The index in `nodes` (sorted) of the node whose value is the answer.
    fn answer(&self, nodes: &[Node]) -> Option<usize> {
        let (count, events) = (nodes.len(), self.events);
        if count <= events {
            return None;
        }
        let starts = |node: &Node| node.base && node.events & 1 != 0;
        let base = match self.base {
            Base::Head => nodes[0].base.then_some(0),
            Base::Tail => nodes[count - 1].base.then_some(count - 1),
            Base::FirstMatch => nodes.iter().position(starts),
            Base::LastMatch => nodes.iter().rposition(starts),
        }?;
        let (chain, answer) = match self.direction {
            Direction::Forward if base + events < count => (base..base + events, base + events),
            Direction::Backward if base >= events => (base - events + 1..base + 1, base - events),
            _ => return None,
        };
        // Event i + 1 is met by the i-th node from the base, in the direction.
        let holds = chain.enumerate().all(|(i, index)| {
            let step = match self.direction {
                Direction::Forward => i,
                Direction::Backward => events - 1 - i,
            };
            nodes[index].events & (1 << step) != 0
        });
        holds.then_some(answer)
    }

    /// The nodes a state must keep of a group's sorted nodes.
    fn kept(&self, count: usize) -> std::ops::Range<usize> {
        let needed = self.events + 1;
        match self.base {
            Base::Head => 0..count.min(needed),
            Base::Tail => count.saturating_sub(needed)..count,
            Base::FirstMatch | Base::LastMatch => 0..count,
        }
    }
}

/// The string of a constant argument, or an error that names it and what it accepts.
fn constant_string(argument: &str, accepted: &str, value: Option<&ScalarValue>) -> Result<String> {
    match value.map(ScalarValue::try_as_str) {
        Some(Some(Some(text))) => Ok(text.to_string()),
        Some(Some(None)) => plan_err!("{NAME}: argument {argument} must be {accepted}, not NULL"),
        Some(None) | None => plan_err!(
            "{NAME}: argument {argument} must be a constant string, {accepted}, not a column or \
             an expression over columns"
        ),
    }
}

/// The call of an accumulator, from its literal first two arguments.
fn read_call(args: &AccumulatorArgs) -> Result<Call> {
    let literal = |position: usize| {
        args.exprs
            .get(position)
            .and_then(|expr| expr.downcast_ref::<Literal>())
            .map(Literal::value)
    };
    Call::parse(
        literal(0),
        literal(1),
        args.exprs.len().saturating_sub(LEADING_ARGUMENTS),
    )
}

/// One node of a group: its value is `Nodes::values[start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct Node {
    time: i64,
    start: usize,
    len: usize,
    /// Bit k - 1 is set when the row met event k.
    events: u32,
    /// Whether the row met the base condition.
    base: bool,
}

/// The nodes of one group, their values in one string.
#[derive(Debug, Default)]
struct Nodes {
    nodes: Vec<Node>,
    values: String,
    sorted: bool,
}

impl Nodes {
    fn push(&mut self, time: i64, value: &str, events: u32, base: bool) {
        self.nodes.push(Node {
            time,
            start: self.values.len(),
            len: value.len(),
            events,
            base,
        });
        self.values.push_str(value);
        self.sorted = false;
    }

    fn value(&self, node: &Node) -> &str {
        &self.values[node.start..node.start + node.len]
    }

    /// Sorts the nodes by time, value, base condition and events.
    fn sort(&mut self) {
        if self.sorted {
            return;
        }
        let values = &self.values;
        let value = |node: &Node| &values[node.start..node.start + node.len];
        self.nodes.sort_unstable_by(|a, b| {
            a.time
                .cmp(&b.time)
                .then_with(|| value(a).cmp(value(b)))
                .then_with(|| a.base.cmp(&b.base))
                .then_with(|| a.events.cmp(&b.events))
        });
        self.sorted = true;
    }

    fn answer(&mut self, call: &Call) -> Option<&str> {
        self.sort();
        let index = call.answer(&self.nodes)?;
        Some(self.value(&self.nodes[index]))
    }

    fn size(&self) -> usize {
        self.nodes.capacity() * size_of::<Node>() + self.values.capacity()
    }
}

/// The columns of a batch of the call's arguments, or of a batch of states, read as nodes.
struct Batch {
    times: Int64Array,
    values: StringArray,
    events: Vec<u32>,
    bases: Vec<bool>,
}

impl Batch {
    /// Reads a batch of the call's arguments (every row, nodes or not: see [`Batch::is_node`]).
    fn of_arguments(values: &[ArrayRef]) -> Result<Self> {
        let [_, _, times, strings, base, events @ ..] = values else {
            return internal_err!("{NAME}: reached execution with {} arguments", values.len());
        };
        let times = event_times(NAME, times)?;
        let strings = cast(strings, &DataType::Utf8)?.as_string::<i32>().clone();
        let boolean = |array: &ArrayRef, argument: String| -> Result<BooleanArray> {
            match array.as_boolean_opt() {
                Some(array) => Ok(array.clone()),
                None => internal_err!(
                    "{NAME}: {argument} reached execution as {}, not BOOLEAN",
                    array.data_type()
                ),
            }
        };
        let mut masks = vec![0u32; times.len()];
        for (k, event) in events.iter().enumerate() {
            let event = boolean(event, argument_name(LEADING_ARGUMENTS + k))?;
            for row in true_rows(&event).set_indices() {
                masks[row] |= 1 << k;
            }
        }
        let base = true_rows(&boolean(base, argument_name(4))?);
        Ok(Batch {
            times,
            values: strings,
            events: masks,
            bases: base.iter().collect(),
        })
    }

    /// Whether the row is a node: it has a time and a value.
    fn is_node(&self, row: usize) -> bool {
        self.times.is_valid(row) && self.values.is_valid(row)
    }

    fn add_to(&self, row: usize, nodes: &mut Nodes) {
        nodes.push(
            self.times.value(row),
            self.values.value(row),
            self.events[row],
            self.bases[row],
        );
    }
}

/// Calls `add(row, batch, item)` for each node in rows of states made by [`state_arrays`].
fn for_each_state_node(
    states: &[ArrayRef],
    mut add: impl FnMut(usize, &Batch, usize),
) -> Result<()> {
    let lists: Vec<&ListArray> = states
        .iter()
        .filter_map(|array| array.as_list_opt::<i32>())
        .collect();
    let [times, values, events, bases] = lists[..] else {
        return internal_err!("{NAME}: a state reached the merge in another form");
    };
    let (Some(time_items), Some(value_items), Some(event_items), Some(base_items)) = (
        times.values().as_primitive_opt::<Int64Type>(),
        values.values().as_string_opt::<i32>(),
        events.values().as_primitive_opt::<UInt32Type>(),
        bases.values().as_boolean_opt(),
    ) else {
        return internal_err!("{NAME}: a state reached the merge with other item types");
    };
    let batch = Batch {
        times: time_items.clone(),
        values: value_items.clone(),
        events: event_items.values().to_vec(),
        bases: base_items.values().iter().collect(),
    };
    // The four lists of a row have the same offsets: they were made together.
    let offsets = times.value_offsets();
    for row in 0..times.len() {
        if times.is_null(row) {
            continue;
        }
        for item in offsets[row] as usize..offsets[row + 1] as usize {
            add(row, &batch, item);
        }
    }
    Ok(())
}

/// The states of groups, each the nodes that `call` keeps of it, as four lists per group.
fn state_arrays<'a>(call: &Call, groups: impl Iterator<Item = &'a mut Nodes>) -> Vec<ArrayRef> {
    let mut lengths = Vec::new();
    let (mut times, mut values, mut events, mut bases) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for group in groups {
        group.sort();
        let kept = &group.nodes[call.kept(group.nodes.len())];
        lengths.push(kept.len());
        for node in kept {
            times.push(node.time);
            values.push(group.value(node).to_string());
            events.push(node.events);
            bases.push(node.base);
        }
    }
    let offsets = OffsetBuffer::from_lengths(lengths);
    let list = |item: DataType, items: ArrayRef| -> ArrayRef {
        Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(item, true)),
            offsets.clone(),
            items,
            None,
        ))
    };
    vec![
        list(DataType::Int64, Arc::new(Int64Array::from(times))),
        list(DataType::Utf8, Arc::new(StringArray::from(values))),
        list(DataType::UInt32, Arc::new(UInt32Array::from(events))),
        list(DataType::Boolean, Arc::new(BooleanArray::from(bases))),
    ]
}

/// `sequence_next_node` over a single group (no GROUP BY).
#[derive(Debug)]
struct NextNodeAccumulator {
    call: Call,
    nodes: Nodes,
}

impl Accumulator for NextNodeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let batch = Batch::of_arguments(values)?;
        for row in (0..batch.times.len()).filter(|&row| batch.is_node(row)) {
            batch.add_to(row, &mut self.nodes);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_state_node(states, |_, batch, item| batch.add_to(item, &mut self.nodes))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        state_arrays(&self.call, std::iter::once(&mut self.nodes))
            .iter()
            .map(|list| ScalarValue::try_from_array(list, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(
            self.nodes.answer(&self.call).map(str::to_string),
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.nodes.size()
    }
}

/// `sequence_next_node` for every group of a GROUP BY.
#[derive(Debug)]
struct NextNodeGroups {
    call: Call,
    groups: Vec<Nodes>,
}

impl NextNodeGroups {
    fn grow(&mut self, total_num_groups: usize) {
        if self.groups.len() < total_num_groups {
            self.groups.resize_with(total_num_groups, Nodes::default);
        }
    }
}

impl GroupsAccumulator for NextNodeGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let batch = Batch::of_arguments(values)?;
        let kept = opt_filter.map(true_rows);
        for (row, &group) in group_indices.iter().enumerate() {
            if batch.is_node(row) && kept.as_ref().is_none_or(|kept| kept.value(row)) {
                batch.add_to(row, &mut self.groups[group]);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = emit_to.take_needed(&mut self.groups);
        let answers: StringArray = groups
            .iter_mut()
            .map(|nodes| nodes.answer(&self.call))
            .collect();
        Ok(Arc::new(answers))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let mut groups = emit_to.take_needed(&mut self.groups);
        Ok(state_arrays(&self.call, groups.iter_mut()))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let groups = &mut self.groups;
        for_each_state_node(values, |row, batch, item| {
            batch.add_to(item, &mut groups[group_indices[row]])
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a group of its own, with its node if it is one.
        let batch = Batch::of_arguments(values)?;
        let kept = opt_filter.map(true_rows);
        let mut groups: Vec<Nodes> = (0..batch.times.len())
            .map(|row| {
                let mut nodes = Nodes::default();
                if batch.is_node(row) && kept.as_ref().is_none_or(|kept| kept.value(row)) {
                    batch.add_to(row, &mut nodes);
                }
                nodes
            })
            .collect();
        Ok(state_arrays(&self.call, groups.iter_mut()))
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<Nodes>()
            + self.groups.iter().map(Nodes::size).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::TimestampSecondArray;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::col;

    use super::*;

    fn call(direction: &str, base: &str, events: usize) -> Call {
        Call::parse(
            Some(&ScalarValue::from(direction)),
            Some(&ScalarValue::from(base)),
            events,
        )
        .unwrap()
    }

    /// A group of nodes from (time, value, base condition, events met as 1-based numbers).
    fn nodes(rows: &[(i64, &str, bool, &[u32])]) -> Nodes {
        let mut nodes = Nodes::default();
        for &(time, value, base, events) in rows {
            let mask = events.iter().fold(0, |mask, k| mask | 1 << (k - 1));
            nodes.push(time, value, mask, base);
        }
        nodes
    }

    /// Pages in order, each row a node meeting the base condition when it is `base_page`, and
    /// event k when it is `chain[k - 1]`.
    fn pages(pages: &[&'static str], base_page: &str, chain: &[&str]) -> Nodes {
        let mut nodes = Nodes::default();
        for (time, page) in pages.iter().enumerate() {
            let mask = (0..chain.len())
                .filter(|&k| chain[k] == *page)
                .fold(0, |mask, k| mask | 1 << k);
            nodes.push(time as i64, page, mask, *page == base_page);
        }
        nodes
    }

    fn answer(call: &Call, mut nodes: Nodes) -> Option<String> {
        nodes.answer(call).map(str::to_string)
    }

    #[test]
    fn forward_from_the_head_returns_the_node_after_the_chain() {
        // ClickHouse's first documented example: A, B, C, E, F; after A, B comes C.
        let flow = || pages(&["A", "B", "C", "E", "F"], "A", &["A", "B"]);
        assert_eq!(
            answer(&call("forward", "head", 2), flow()),
            Some("C".into())
        );
        // The head must meet the base condition.
        let refused = pages(&["A", "B", "C"], "B", &["A", "B"]);
        assert_eq!(answer(&call("forward", "head", 2), refused), None);
        // The chain runs node by node: A, then B right after it.
        let broken = pages(&["A", "X", "B", "C"], "A", &["A", "B"]);
        assert_eq!(answer(&call("forward", "head", 2), broken), None);
        // A chain that ends the group has no next node.
        let last = pages(&["A", "B"], "A", &["A", "B"]);
        assert_eq!(answer(&call("forward", "head", 2), last), None);
    }

    #[test]
    fn backward_reads_the_chain_back_from_the_base() {
        // Home, Home, Gift, Basket from the tail: Basket, then Gift before it, then Home.
        let flow = || {
            pages(
                &["Home", "Home", "Gift", "Basket"],
                "Basket",
                &["Basket", "Gift"],
            )
        };
        assert_eq!(
            answer(&call("backward", "tail", 2), flow()),
            Some("Home".into())
        );
        // Gift, Basket: no node before the chain.
        let short = pages(&["Gift", "Basket"], "Basket", &["Basket", "Gift"]);
        assert_eq!(answer(&call("backward", "tail", 2), short), None);
        // last_match: the last Gift, and the node before it.
        let gifts = pages(&["Gift", "Home", "Gift", "Basket"], "Gift", &["Gift"]);
        assert_eq!(
            answer(&call("backward", "last_match", 1), gifts),
            Some("Home".into())
        );
    }

    #[test]
    fn only_the_first_match_is_tried() {
        // The first A is followed by X, not B: NULL, though the second A starts A, B, C.
        let flow = pages(&["A", "X", "A", "B", "C"], "A", &["A", "B"]);
        assert_eq!(answer(&call("forward", "first_match", 2), flow), None);
        let flow = pages(&["A", "X", "A", "B", "C"], "A", &["A", "B"]);
        assert_eq!(
            answer(&call("forward", "last_match", 2), flow),
            Some("C".into())
        );
        // The base meets the base condition and event 1: the A at 0 fails the base condition.
        let flow = nodes(&[
            (0, "A", false, &[1]),
            (1, "B", true, &[]),
            (2, "A", true, &[1]),
            (3, "D", false, &[]),
        ]);
        assert_eq!(
            answer(&call("forward", "first_match", 1), flow),
            Some("D".into())
        );
    }

    #[test]
    fn nodes_at_one_time_are_ordered_by_value_whatever_order_they_come_in() {
        for rows in [
            [
                (1, "B", true, &[1][..]),
                (1, "A", true, &[][..]),
                (3, "C", true, &[][..]),
            ],
            [
                (3, "C", true, &[][..]),
                (1, "A", true, &[][..]),
                (1, "B", true, &[1][..]),
            ],
        ] {
            // A sorts before B at time 1: the head is A, which does not meet event 1.
            assert_eq!(answer(&call("forward", "head", 1), nodes(&rows)), None);
            assert_eq!(
                answer(&call("forward", "first_match", 1), nodes(&rows)),
                Some("C".into())
            );
        }
    }

    #[test]
    fn bad_directions_and_bases_are_named_with_what_is_accepted() {
        let error = |direction: ScalarValue, base: ScalarValue| {
            Call::parse(Some(&direction), Some(&base), 1)
                .unwrap_err()
                .to_string()
        };
        let sideways = error("sideways".into(), "head".into());
        assert!(
            sideways.contains(
                "sequence_next_node: argument direction must be 'forward' or 'backward', not 'sideways'"
            ),
            "{sideways}"
        );
        let middle = error("forward".into(), "middle".into());
        assert!(
            middle.contains(
                "argument base must be 'head', 'tail', 'first_match' or 'last_match', not 'middle'"
            ),
            "{middle}"
        );
        assert!(error("backward".into(), "head".into()).contains("'head' goes only 'forward'"));
        assert!(error("forward".into(), "tail".into()).contains("'tail' goes only 'backward'"));
        assert!(error(ScalarValue::Utf8(None), "head".into()).contains("not NULL"));
        let column = Call::parse(None, Some(&"head".into()), 1).unwrap_err();
        assert!(column.to_string().contains("not a column"), "{column}");
    }

    fn fields(types: &[DataType]) -> Vec<FieldRef> {
        types
            .iter()
            .enumerate()
            .map(|(position, data_type)| {
                Arc::new(Field::new(
                    format!("arg{position}"),
                    data_type.clone(),
                    true,
                ))
            })
            .collect()
    }

    #[test]
    fn argument_types_and_counts_are_checked_at_planning() {
        let udf = SequenceNextNode::new();
        let ts = DataType::Timestamp(TimeUnit::Second, None);
        let call = |rest: &[DataType]| {
            let mut types = vec![DataType::Utf8, DataType::Utf8, ts.clone(), DataType::Utf8];
            types.extend_from_slice(rest);
            udf.return_field(&fields(&types))
        };
        assert_eq!(
            call(&[DataType::Boolean, DataType::Boolean])
                .unwrap()
                .data_type(),
            &DataType::Utf8
        );
        let no_event = call(&[DataType::Boolean]).unwrap_err().to_string();
        assert!(no_event.contains("1 to 32 BOOLEAN events"), "{no_event}");
        assert!(no_event.contains("got 5 arguments"), "{no_event}");
        let too_many = call(&vec![DataType::Boolean; 34]).unwrap_err().to_string();
        assert!(too_many.contains("got 38 arguments"), "{too_many}");
        assert!(call(&vec![DataType::Boolean; 33]).is_ok());
        let base = call(&[DataType::Int64, DataType::Boolean])
            .unwrap_err()
            .to_string();
        assert!(
            base.contains("argument base_condition must be a BOOLEAN condition"),
            "{base}"
        );
        let event = call(&[DataType::Boolean, DataType::Boolean, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(
            event.contains("argument event2 must be a BOOLEAN"),
            "{event}"
        );
        let value = udf
            .return_field(&fields(&[
                DataType::Utf8,
                DataType::Utf8,
                ts.clone(),
                DataType::Int64,
                DataType::Boolean,
                DataType::Boolean,
            ]))
            .unwrap_err()
            .to_string();
        assert!(value.contains("argument value must be a string"), "{value}");
        let time = udf
            .return_type(&[
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Boolean,
                DataType::Boolean,
            ])
            .unwrap_err()
            .to_string();
        assert!(
            time.contains("argument ts: must be a TIMESTAMP or a DATE"),
            "{time}"
        );
    }

    /// The accumulator arguments of `sequence_next_node(direction, base, ts, page, is_base, e1,
    /// e2)`.
    fn with_args<T>(direction: &str, base: &str, make: impl FnOnce(AccumulatorArgs) -> T) -> T {
        let schema = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("page", DataType::Utf8, true),
            Field::new("is_base", DataType::Boolean, true),
            Field::new("e1", DataType::Boolean, true),
            Field::new("e2", DataType::Boolean, true),
        ]);
        let literal = |text: &str| -> Arc<dyn PhysicalExpr> {
            Arc::new(Literal::new(ScalarValue::from(text)))
        };
        let mut exprs = vec![literal(direction), literal(base)];
        exprs.extend(["ts", "page", "is_base", "e1", "e2"].map(|name| col(name, &schema).unwrap()));
        let fields: Vec<FieldRef> = exprs
            .iter()
            .map(|expr| expr.return_field(&schema).unwrap())
            .collect();
        make(AccumulatorArgs {
            return_field: Arc::new(Field::new(NAME, DataType::Utf8, true)),
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: NAME,
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        })
    }

    /// Rows of (time, page): the base condition is page = 'A', e1 page = 'A', e2 page = 'B'.
    fn batch(rows: &[(i64, Option<&str>)]) -> Vec<ArrayRef> {
        let pages: StringArray = rows.iter().map(|row| row.1).collect();
        let is = |page: &str| -> ArrayRef {
            Arc::new(
                rows.iter()
                    .map(|row| row.1.map(|p| p == page))
                    .collect::<BooleanArray>(),
            )
        };
        vec![
            Arc::new(StringArray::from(vec!["unused"; rows.len()])),
            Arc::new(StringArray::from(vec!["unused"; rows.len()])),
            Arc::new(TimestampSecondArray::from(
                rows.iter().map(|row| row.0).collect::<Vec<_>>(),
            )),
            Arc::new(pages),
            is("A"),
            is("A"),
            is("B"),
        ]
    }

    fn strings(array: &ArrayRef) -> Vec<Option<String>> {
        array
            .as_string::<i32>()
            .iter()
            .map(|value| value.map(str::to_string))
            .collect()
    }

    #[test]
    fn groups_get_their_answers_and_merged_partial_states_agree() {
        // Group 0: A, B, C (answer C); group 1: X, A, B, NULL page (no node), D (answer D for
        // first_match, NULL for head); group 2: nothing.
        let rows = [
            (1, Some("A")),
            (1, Some("X")),
            (2, Some("B")),
            (2, Some("A")),
            (3, Some("C")),
            (3, Some("B")),
            (4, None),
            (5, Some("D")),
        ];
        let groups_of_rows = [0, 1, 0, 1, 0, 1, 1, 1];
        for (base, expected) in [
            ("head", [Some("C"), None, None]),
            ("first_match", [Some("C"), Some("D"), None]),
        ] {
            let make = || {
                with_args("forward", base, |args| {
                    SequenceNextNode::new()
                        .create_groups_accumulator(args)
                        .unwrap()
                })
            };
            let expected: Vec<Option<String>> =
                expected.iter().map(|v| v.map(str::to_string)).collect();
            let mut direct = make();
            direct
                .update_batch(&batch(&rows), &groups_of_rows, None, 3)
                .unwrap();
            assert_eq!(
                strings(&direct.evaluate(EmitTo::All).unwrap()),
                expected,
                "{base}"
            );

            // Each row in a partition of its own (convert_to_state), the later rows first.
            let mut merged = make();
            let reversed: Vec<_> = rows.iter().rev().copied().collect();
            let groups_reversed: Vec<usize> = groups_of_rows.iter().rev().copied().collect();
            let states = merged.convert_to_state(&batch(&reversed), None).unwrap();
            merged.merge_batch(&states, &groups_reversed, 3).unwrap();
            // A state of the merged groups, merged again: what a second stage does.
            let state = merged.state(EmitTo::All).unwrap();
            let mut again = make();
            again.merge_batch(&state, &[0, 1, 2], 3).unwrap();
            assert_eq!(
                strings(&again.evaluate(EmitTo::All).unwrap()),
                expected,
                "{base}"
            );
        }
    }

    #[test]
    fn head_and_tail_states_keep_only_the_nodes_that_can_matter() {
        let call = call("forward", "head", 2);
        let mut group = pages(&["A", "B", "C", "D", "E"], "A", &["A", "B"]);
        let state = state_arrays(&call, std::iter::once(&mut group));
        assert_eq!(state[0].as_list::<i32>().value(0).len(), 3);
        let tail = Call::parse(Some(&"backward".into()), Some(&"tail".into()), 1).unwrap();
        assert_eq!(tail.kept(5), 3..5);
        assert_eq!(tail.kept(1), 0..1);
    }

    #[test]
    fn the_single_group_accumulator_gives_the_same_answer() {
        let mut accumulator = with_args("forward", "head", |args| {
            SequenceNextNode::new().accumulator(args).unwrap()
        });
        accumulator
            .update_batch(&batch(&[(3, Some("C")), (1, Some("A")), (2, Some("B"))]))
            .unwrap();
        let state = accumulator.state().unwrap();
        assert_eq!(accumulator.evaluate().unwrap(), ScalarValue::from("C"));
        let mut merged = with_args("forward", "head", |args| {
            SequenceNextNode::new().accumulator(args).unwrap()
        });
        let arrays: Vec<ArrayRef> = state.iter().map(|v| v.to_array().unwrap()).collect();
        merged.merge_batch(&arrays).unwrap();
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::from("C"));
    }

    #[test]
    fn documentation_has_description_syntax_arguments_and_example() {
        let udf = SequenceNextNode::new();
        let doc = udf.documentation().unwrap();
        assert!(
            doc.syntax_example
                .starts_with("sequence_next_node(direction, base, ts")
        );
        assert_eq!(doc.arguments.as_ref().unwrap().len(), 6);
        assert!(
            doc.sql_example
                .as_ref()
                .unwrap()
                .contains("| 1  | C         |")
        );
    }
}
