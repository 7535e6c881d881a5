//! `feature_adoption_sets(actor, time, feature, in_range, released, min_uses, eligible_listed)`:
//! the report of `feature_adoption` in one aggregate over the rows, for integer actors.
//!
//! The general plan of `feature_adoption` groups the events by actor and by (feature, actor),
//! then joins those groups with the features and with each other; the hash tables of the two
//! `GROUP BY`s and the joins are most of its time. With integer actors the same facts fit in
//! arrays indexed by the actor itself, with no hashing at all for feature names (their Arrow view
//! is the key). The fold at the end computes what the joins and `percentile_cont` of the general
//! plan compute, with the same interpolation, so both plans give the same report.
//!
//! Events come in time order, so the actors of a batch are in no order, and over a million actors
//! the arrays are far larger than the caches: each event waits for its slots' cache misses unless
//! they are small and asked for ahead. So every event updates its actor's first-seen and last
//! in-range time in an array of 16 bytes an actor (16 MB for a million), and only an event with a
//! feature also touches that feature's array of first uses and use counts; both slots are
//! prefetched [`PREFETCH_ROWS`] rows ahead. (With every feature's uses inline in the actor's slot,
//! 152 bytes an actor, the three quarters of events without a feature paid for a slot spanning
//! three cache lines, and the fold passed over that large array once for each feature.) The arrays
//! are paged ([`ActorMap::new`]): grown as one array, actors in no order copied it into new pages
//! again and again at its low end, and those copies' page faults were a fifth of the query's time.
//!
//! Three kinds of rows come in, told apart by which columns are NULL: events (actor and time),
//! launches (no actor, no time: a feature and its `released_at`) and the actors of an `eligible`
//! table (an actor, no time). States merge by taking minima, maxima and sums per actor.

use std::collections::HashMap;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::actor_sets::ActorMap;
use crate::fold::{
    Expected, check_arguments, list_of, report, set_bound, single_list, state_field,
};

const NAME: &str = "feature_adoption_sets";

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// How many rows ahead `update_batch` asks for an actor's slots: enough for a memory load to
/// arrive while the rows between are added.
const PREFETCH_ROWS: usize = 16;

/// The most feature names looked up by their Arrow view, before hashing.
const VIEW_CACHE_LEN: usize = 32;

/// The slots of [`AdoptionSetsAccumulator::view_slots`]: a power of two, many more than the
/// features of a usual log, so that names seldom share one.
const VIEW_SLOTS: usize = 64;

/// `percentile_cont`'s quantization of the interpolation weight (DataFusion's
/// `INTERPOLATION_PRECISION`), kept so that the percentiles equal the general plan's.
const INTERPOLATION_PRECISION: f64 = 1_000_000.0;

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The integer-actor plan of `feature_adoption`, one aggregate in place of its \
        GROUP BYs and joins: returns every reported feature with its launch (microseconds), \
        eligible actors, adopters and the median and 90th percentile of days to adopt, as one \
        list. Rows with an actor and a time are events; rows with neither are launches (a \
        feature and its released_at in microseconds); rows with an actor and no time are the \
        actors of an eligible table. `feature_adoption` plans it for you.",
    syntax_example = "feature_adoption_sets(actor, time, feature, in_range, released, min_uses, eligible_listed)",
    sql_example = r#"```sql
> SELECT unnest(feature_adoption_sets(user_id, CAST(ts AS BIGINT), feature, true,
    CAST(NULL AS BIGINT), 1, false)) FROM events;
```"#,
    argument(name = "actor", description = "An integer: the actor of the event."),
    argument(
        name = "time",
        description = "BIGINT: the event time in microseconds since the epoch."
    ),
    argument(
        name = "feature",
        description = "A string: the feature the event uses, or NULL."
    ),
    argument(
        name = "in_range",
        description = "BOOLEAN: whether the event counts towards uses and eligibility."
    ),
    argument(
        name = "released",
        description = "BIGINT: on a launch row, the feature's release in microseconds."
    ),
    argument(
        name = "min_uses",
        description = "A constant BIGINT: the uses in the range that make an adopter."
    ),
    argument(
        name = "eligible_listed",
        description = "A constant BOOLEAN: whether the eligible actors are those of the eligible \
            rows rather than those active at or after the launch."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FeatureAdoptionSets {
    signature: Signature,
}

impl FeatureAdoptionSets {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(7, Volatility::Immutable),
        }
    }
}

/// The fields of one report row.
pub(crate) fn report_fields() -> Fields {
    Fields::from(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("launch", DataType::Int64, true),
        Field::new("eligible", DataType::Int64, false),
        Field::new("adopters", DataType::Int64, false),
        Field::new("median_days", DataType::Float64, true),
        Field::new("p90_days", DataType::Float64, true),
    ])
}

/// The state fields: types, in the order of [`AdoptionSetsAccumulator::state`].
const STATE_TYPES: [(&str, DataType); 12] = [
    ("actors", DataType::Int64),
    ("first_seen", DataType::Int64),
    ("last_in_range", DataType::Int64),
    ("listed", DataType::Int64),
    ("features", DataType::Utf8),
    ("feature_listed", DataType::Boolean),
    ("released", DataType::Int64),
    ("use_lengths", DataType::Int64),
    ("use_actors", DataType::Int64),
    ("first_uses", DataType::Int64),
    ("uses", DataType::Int64),
    ("bounds", DataType::Int64),
];

impl AggregateUDFImpl for FeatureAdoptionSets {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [
            ("actor", Integer),
            ("time", BigInt),
            ("feature", String),
            ("in_range", Boolean),
            ("released", BigInt),
            ("min_uses", BigInt),
            ("eligible_listed", Boolean),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(report_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(AdoptionSetsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE_TYPES
            .iter()
            .map(|(name, data_type)| state_field(&args, name, list_of(data_type.clone())))
            .collect())
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// An actor's first event over all history and its last event in the range: what every event
/// updates, in an array of its own (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    /// `i64::MAX` for none.
    first: i64,
    /// `i64::MIN` for none.
    last_in_range: i64,
}

const NOT_SEEN: Seen = Seen {
    first: i64::MAX,
    last_in_range: i64::MIN,
};

/// One actor's uses of one feature.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Uses {
    /// Its first use over all history; `i64::MAX` for none.
    first: i64,
    /// Its uses in the range.
    in_range: i64,
}

const NO_USES: Uses = Uses {
    first: i64::MAX,
    in_range: 0,
};

/// One feature: whether a launch row named it, its earliest `released_at`, and its uses by actor.
#[derive(Debug)]
struct Feature {
    name: String,
    listed: bool,
    released: Option<i64>,
    uses: ActorMap<Uses>,
}

/// A row's feature in [`AdoptionSetsAccumulator::row_features`] when it has none.
const NO_FEATURE: u32 = u32::MAX;

#[derive(Debug)]
struct AdoptionSetsAccumulator {
    actors: ActorMap<Seen>,
    /// The actors of the eligible table.
    listed: ActorMap<bool>,
    features: Vec<Feature>,
    feature_index: HashMap<String, usize>,
    /// Features by the Arrow view of their name: the whole view for a name inline in it, else its
    /// length and first four bytes (then checked against the name).
    view_cache: Vec<(u128, usize)>,
    /// Short names' features by a hash of their view, each slot the last view seen there
    /// ([`NO_FEATURE`] when none): one comparison for most rows with a feature, where scanning
    /// `view_cache` took a tenth of the query's samples.
    view_slots: [(u128, u32); VIEW_SLOTS],
    /// The feature of each row of the batch being added, looked up before its rows are added so
    /// that a row's uses can be prefetched rows ahead; kept to reuse its memory.
    row_features: Vec<u32>,
    min_uses: Option<i64>,
    eligible_listed: Option<bool>,
}

impl Default for AdoptionSetsAccumulator {
    fn default() -> Self {
        Self {
            actors: ActorMap::new(NOT_SEEN),
            listed: ActorMap::new(false),
            features: Vec::new(),
            feature_index: HashMap::new(),
            view_cache: Vec::new(),
            view_slots: [(0, NO_FEATURE); VIEW_SLOTS],
            row_features: Vec::new(),
            min_uses: None,
            eligible_listed: None,
        }
    }
}

impl AdoptionSetsAccumulator {
    /// The index of feature `name`, added if new.
    fn feature(&mut self, name: &str) -> usize {
        if let Some(index) = self.feature_index.get(name) {
            return *index;
        }
        let index = self.features.len();
        self.features.push(Feature {
            name: name.to_string(),
            listed: false,
            released: None,
            uses: ActorMap::new(NO_USES),
        });
        self.feature_index.insert(name.to_string(), index);
        index
    }

    fn add_launch(&mut self, feature: usize, listed: bool, released: Option<i64>) {
        let feature = &mut self.features[feature];
        feature.listed |= listed;
        feature.released = min_of(feature.released, released);
    }

    /// The index of the feature whose name has Arrow view `view` (its length in the low 32 bits,
    /// then its first bytes).
    #[inline]
    fn feature_of_view(&mut self, view: u128, name: &str) -> usize {
        let inline = name.len() <= 12;
        // A longer name's view ends with where its bytes are, which says nothing of the name.
        let key = if inline {
            view
        } else {
            view & u128::from(u64::MAX)
        };
        let features = &self.features;
        if let Some((_, index)) = self
            .view_cache
            .iter()
            .find(|(known, index)| *known == key && (inline || features[*index].name == name))
        {
            return *index;
        }
        let index = self.feature(name);
        if self.view_cache.len() < VIEW_CACHE_LEN {
            self.view_cache.push((key, index));
        }
        index
    }

    fn set_bounds(&mut self, min_uses: Option<i64>, eligible_listed: Option<bool>) -> Result<()> {
        set_bound(NAME, &mut self.min_uses, min_uses, "min_uses")?;
        set_bound(
            NAME,
            &mut self.eligible_listed,
            eligible_listed,
            "eligible_listed",
        )
    }

    /// The reported features, each with its launch and its adopters' days to adopt in
    /// microseconds: one pass over each feature's uses.
    fn reported(&self) -> Vec<Reported> {
        let eligible_listed = self.eligible_listed.unwrap_or(false);
        let min_uses = self.min_uses.unwrap_or(1);
        let mut reported = Vec::new();
        for (index, feature) in self.features.iter().enumerate() {
            let mut first_use_any = i64::MAX;
            let mut used_in_range = false;
            // Each adopter's first use and first-seen time: the launch, which moves the start of
            // the days, is known only at the end of the pass.
            let mut adopters = Vec::new();
            feature.uses.for_each(|actor, uses| {
                first_use_any = first_use_any.min(uses.first);
                used_in_range |= uses.in_range > 0;
                if uses.in_range >= min_uses && (!eligible_listed || self.listed.get(actor)) {
                    // An adopter used the feature, so it was seen.
                    adopters.push((uses.first, self.actors.get(actor).first));
                }
            });
            // A feature is reported when it is used in the range, or named by a launch.
            if !(used_in_range || feature.listed) {
                continue;
            }
            let first_use_any = (first_use_any != i64::MAX).then_some(first_use_any);
            let launch = min_of(first_use_any, feature.released);
            let days_micros = adopters
                .into_iter()
                .map(|(first_use, first_seen)| {
                    first_use - first_seen.max(launch.unwrap_or(i64::MIN))
                })
                .collect();
            reported.push(Reported {
                index,
                launch,
                days_micros,
            });
        }
        reported
    }

    /// The eligible actors of each reported feature: the listed actors, or those whose last event
    /// in the range is at or after its launch, counted for every feature in one pass over the
    /// actors.
    fn eligible(&self, reported: &[Reported]) -> Vec<i64> {
        if self.eligible_listed.unwrap_or(false) {
            let mut listed = 0;
            self.listed.for_each(|_, _| listed += 1);
            return vec![listed; reported.len()];
        }
        let launches: Vec<Option<i64>> = reported.iter().map(|feature| feature.launch).collect();
        let mut eligible = vec![0; reported.len()];
        self.actors.for_each(|_, seen| {
            if seen.last_in_range == NOT_SEEN.last_in_range {
                return;
            }
            for (count, launch) in eligible.iter_mut().zip(&launches) {
                *count += i64::from(launch.is_some_and(|launch| seen.last_in_range >= launch));
            }
        });
        eligible
    }
}

/// A feature of the report, before its counts and percentiles.
struct Reported {
    index: usize,
    launch: Option<i64>,
    /// Each adopter's microseconds from the later of its first-seen time and the launch to its
    /// first use, in no order.
    days_micros: Vec<i64>,
}

/// The slot of `view` in [`AdoptionSetsAccumulator::view_slots`]: the top bits of a
/// multiplicative hash of its two halves.
#[inline]
fn view_slot(view: u128) -> usize {
    let mixed = (view as u64 ^ (view >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> (64 - VIEW_SLOTS.trailing_zeros())) as usize
}

/// The smaller of two optional values, ignoring a missing one (as SQL's `least`).
fn min_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `percentile_cont(fraction)` of the days whose microseconds are `micros` (in any order; this
/// reorders them), computed as DataFusion computes it: between the neighbours of position
/// `fraction * (n - 1)`, with its weight quantized. Only the two neighbours are needed, so they
/// are selected in linear time instead of sorting; microseconds order as their days do.
fn percentile(micros: &mut [i64], fraction: f64) -> Option<f64> {
    let days = |micros: i64| micros as f64 / MICROS_PER_DAY;
    match micros.len() {
        0 => None,
        1 => Some(days(micros[0])),
        len => {
            let index = fraction * ((len - 1) as f64);
            let (lower, upper) = (index.floor() as usize, index.ceil() as usize);
            let (_, lower_micros, above) = micros.select_nth_unstable(lower);
            let lower_days = days(*lower_micros);
            if lower == upper {
                return Some(lower_days);
            }
            // `upper` is `lower + 1`: the least of the values above.
            let upper_days = days(above.iter().copied().min()?);
            let scaled = ((index - lower as f64) * INTERPOLATION_PRECISION) as usize;
            let weight = scaled as f64 / INTERPOLATION_PRECISION;
            Some(lower_days + (upper_days - lower_days) * weight)
        }
    }
}

impl Accumulator for AdoptionSetsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values[0].is_empty() {
            return Ok(());
        }
        // The bounds are constants: one row of each batch says what they are.
        let min_uses = values[5].as_primitive_opt::<Int64Type>();
        let eligible_listed = values[6].as_boolean_opt();
        self.set_bounds(
            min_uses.and_then(|array| array.is_valid(0).then(|| array.value(0))),
            eligible_listed.and_then(|array| array.is_valid(0).then(|| array.value(0))),
        )?;
        let actors = cast(&values[0], &DataType::Int64)?;
        let actors = actors.as_primitive::<Int64Type>();
        let times = values[1].as_primitive::<Int64Type>();
        let features = cast(&values[2], &DataType::Utf8View)?;
        let features = features.as_string_view();
        // NULL counts as false: one bitmap to read per row, not a validity and a value.
        let in_range = values[3].as_boolean();
        let released = values[4].as_primitive::<Int64Type>();
        let views = features.views();
        let mut row_features = std::mem::take(&mut self.row_features);
        row_features.clear();
        row_features.extend((0..features.len()).map(|row| {
            if features.is_valid(row) {
                let view = views[row];
                let slot = &self.view_slots[view_slot(view)];
                if slot.0 == view && slot.1 != NO_FEATURE {
                    return slot.1;
                }
                let feature = self.feature_of_view(view, features.value(row)) as u32;
                // A short name is all in its view, so the view alone names its feature.
                if features.value(row).len() <= 12 {
                    self.view_slots[view_slot(view)] = (view, feature);
                }
                feature
            } else {
                NO_FEATURE
            }
        }));
        let actor_ids = actors.values();
        for row in 0..actors.len() {
            if let Some(ahead) = actor_ids.get(row + PREFETCH_ROWS) {
                self.actors.prefetch(*ahead);
                if let Some(feature) = self
                    .features
                    .get(row_features[row + PREFETCH_ROWS] as usize)
                {
                    feature.uses.prefetch(*ahead);
                }
            }
            let feature = row_features[row];
            match (actors.is_valid(row), times.is_valid(row)) {
                (true, true) => {
                    let (actor, time) = (actors.value(row), times.value(row));
                    let counted = in_range.is_valid(row) && in_range.value(row);
                    let seen = self.actors.entry(actor);
                    seen.first = seen.first.min(time);
                    if counted {
                        seen.last_in_range = seen.last_in_range.max(time);
                    }
                    if feature != NO_FEATURE {
                        let uses = self.features[feature as usize].uses.entry(actor);
                        uses.first = uses.first.min(time);
                        uses.in_range += i64::from(counted);
                    }
                }
                (true, false) => *self.listed.entry(actors.value(row)) = true,
                (false, _) => {
                    if feature != NO_FEATURE {
                        let released = released.is_valid(row).then(|| released.value(row));
                        self.add_launch(feature as usize, true, released);
                    }
                }
            }
        }
        self.row_features = row_features;
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        // Sized for every slot up front: growing these to a million actors copied them into new
        // pages again and again, and capacity never written costs no memory.
        let slots = self.actors.slots();
        let (mut actors, mut first_seen, mut last_in_range) = (
            Vec::with_capacity(slots),
            Vec::with_capacity(slots),
            Vec::with_capacity(slots),
        );
        self.actors.for_each(|actor, seen| {
            actors.push(actor);
            first_seen.push(seen.first);
            last_in_range.push(seen.last_in_range);
        });
        let mut listed = Vec::new();
        self.listed.for_each(|actor, _| listed.push(actor));
        // Each feature's uses one after the other, their number per feature in `use_lengths`.
        let use_slots = self
            .features
            .iter()
            .map(|feature| feature.uses.slots())
            .sum();
        let (mut use_lengths, mut use_actors, mut first_uses, mut uses) = (
            Vec::with_capacity(self.features.len()),
            Vec::with_capacity(use_slots),
            Vec::with_capacity(use_slots),
            Vec::with_capacity(use_slots),
        );
        for feature in &self.features {
            let before = use_actors.len();
            feature.uses.for_each(|actor, feature_uses| {
                use_actors.push(actor);
                first_uses.push(feature_uses.first);
                uses.push(feature_uses.in_range);
            });
            use_lengths.push((use_actors.len() - before) as i64);
        }
        let lists: [ArrayRef; 12] = [
            Arc::new(Int64Array::from(actors)),
            Arc::new(Int64Array::from(first_seen)),
            Arc::new(Int64Array::from(last_in_range)),
            Arc::new(Int64Array::from(listed)),
            Arc::new(StringArray::from_iter_values(
                self.features.iter().map(|feature| feature.name.as_str()),
            )),
            Arc::new(BooleanArray::from_iter(
                self.features.iter().map(|feature| Some(feature.listed)),
            )),
            Arc::new(Int64Array::from_iter(
                self.features.iter().map(|feature| feature.released),
            )),
            Arc::new(Int64Array::from(use_lengths)),
            Arc::new(Int64Array::from(use_actors)),
            Arc::new(Int64Array::from(first_uses)),
            Arc::new(Int64Array::from(uses)),
            // min_uses, then eligible_listed as 0 or 1 (NULL while unknown).
            Arc::new(Int64Array::from(vec![
                self.min_uses,
                self.eligible_listed.map(i64::from),
            ])),
        ];
        Ok(lists.into_iter().map(single_list).collect())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            if states[0].is_null(row) {
                continue;
            }
            let list = |index: usize| states[index].as_list::<i32>().value(row);
            let bounds = list(11);
            let bounds = bounds.as_primitive::<Int64Type>();
            let bound = |index: usize| bounds.is_valid(index).then(|| bounds.value(index));
            self.set_bounds(bound(0), bound(1).map(|listed| listed != 0))?;
            let (actors, first_seen, last_in_range) = (list(0), list(1), list(2));
            let actors = actors.as_primitive::<Int64Type>().values();
            let first_seen = first_seen.as_primitive::<Int64Type>().values();
            let last_in_range = last_in_range.as_primitive::<Int64Type>().values();
            if first_seen.len() != actors.len() || last_in_range.len() != actors.len() {
                return exec_err!("{NAME}: a state's actor lists differ in length");
            }
            for ((actor, first), last) in actors.iter().zip(first_seen).zip(last_in_range) {
                let seen = self.actors.entry(*actor);
                seen.first = seen.first.min(*first);
                seen.last_in_range = seen.last_in_range.max(*last);
            }
            for actor in list(3).as_primitive::<Int64Type>().values() {
                *self.listed.entry(*actor) = true;
            }
            let (names, feature_listed, released) = (list(4), list(5), list(6));
            let names = names.as_string::<i32>();
            let feature_listed = feature_listed.as_boolean();
            let released = released.as_primitive::<Int64Type>();
            let mut indexes = Vec::with_capacity(names.len());
            for index in 0..names.len() {
                let feature = self.feature(names.value(index));
                let released = released.is_valid(index).then(|| released.value(index));
                self.add_launch(feature, feature_listed.value(index), released);
                indexes.push(feature);
            }
            let (use_lengths, use_actors, first_uses, uses) = (list(7), list(8), list(9), list(10));
            let use_lengths = use_lengths.as_primitive::<Int64Type>().values();
            let use_actors = use_actors.as_primitive::<Int64Type>().values();
            let first_uses = first_uses.as_primitive::<Int64Type>().values();
            let uses = uses.as_primitive::<Int64Type>().values();
            let total: i64 = use_lengths.iter().sum();
            if use_lengths.len() != indexes.len()
                || [use_actors.len(), first_uses.len(), uses.len()]
                    .iter()
                    .any(|len| *len as i64 != total)
            {
                return exec_err!("{NAME}: a state's use lists do not match its features");
            }
            let mut start = 0;
            for (feature, length) in indexes.iter().zip(use_lengths) {
                let end = start + *length as usize;
                let map = &mut self.features[*feature].uses;
                for use_row in start..end {
                    let known = map.entry(use_actors[use_row]);
                    known.first = known.first.min(first_uses[use_row]);
                    known.in_range += uses[use_row];
                }
                start = end;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut reported = self.reported();
        let eligible = self.eligible(&reported);
        let mut percentiles = Vec::with_capacity(reported.len());
        for feature in &mut reported {
            let days = &mut feature.days_micros;
            percentiles.push((percentile(days, 0.5), percentile(days, 0.9)));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                reported
                    .iter()
                    .map(|feature| self.features[feature.index].name.as_str()),
            )),
            Arc::new(Int64Array::from_iter(
                reported.iter().map(|feature| feature.launch),
            )),
            Arc::new(Int64Array::from(eligible)),
            Arc::new(Int64Array::from_iter_values(
                reported
                    .iter()
                    .map(|feature| feature.days_micros.len() as i64),
            )),
            Arc::new(Float64Array::from_iter(
                percentiles.iter().map(|(median, _)| *median),
            )),
            Arc::new(Float64Array::from_iter(
                percentiles.iter().map(|(_, p90)| *p90),
            )),
        ];
        report(StructArray::try_new(report_fields(), columns, None)?)
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.actors.size()
            + self.listed.size()
            + self
                .features
                .iter()
                .map(|feature| size_of::<Feature>() + 2 * feature.name.len() + feature.uses.size())
                .sum::<usize>()
            + self.feature_index.capacity() * size_of::<(String, usize)>()
            + self.view_cache.capacity() * size_of::<(u128, usize)>()
            + self.row_features.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use crate::test_merge::merge_state;
    use datafusion::arrow::array::{BooleanArray, Int64Array, StringArray};

    use super::*;
    use crate::test_random::Random;

    const DAY: i64 = 86_400_000_000;

    /// A row: actor, time, feature, released.
    type TestRow<'a> = (Option<i64>, Option<i64>, Option<&'a str>, Option<i64>);

    /// One batch of rows, all in the range, min_uses 1.
    fn batch(rows: &[TestRow]) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|row| row.0))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|row| row.1))),
            Arc::new(StringArray::from_iter(rows.iter().map(|row| row.2))),
            Arc::new(BooleanArray::from(vec![true; rows.len()])),
            Arc::new(Int64Array::from_iter(rows.iter().map(|row| row.3))),
            Arc::new(Int64Array::from(vec![1; rows.len()])),
            Arc::new(BooleanArray::from(vec![false; rows.len()])),
        ]
    }

    #[test]
    fn percentiles_interpolate_between_neighbours() {
        // Position 0.5 * 2 = 1 is a value; 0.9 * 2 = 1.8 is 0.8 of the way from 1.5 to 3.
        // In microseconds and out of order: the neighbours are selected, not read off a sort.
        let mut days = [3 * DAY, 0, 3 * DAY / 2];
        assert_eq!(percentile(&mut days, 0.5), Some(1.5));
        assert_eq!(percentile(&mut days, 0.9), Some(2.7));
        assert_eq!(percentile(&mut [4 * DAY], 0.9), Some(4.0));
        assert_eq!(percentile(&mut [], 0.5), None);
    }

    #[test]
    fn merged_states_give_the_report_of_all_rows() {
        // Actor 1 is seen on day 0 and uses a on day 2; actor 2 (far from 1, so the map turns
        // into a hash map) is seen on day 1 and uses a on day 5; actor 3 only has an event on
        // day 6. A launch row releases a on day 1 and names b, which nobody uses.
        let far = 1 << 40;
        let mut first = AdoptionSetsAccumulator::default();
        first
            .update_batch(&batch(&[
                (Some(1), Some(0), None, None),
                (Some(far), Some(5 * DAY), Some("a"), None),
            ]))
            .unwrap();
        let mut second = AdoptionSetsAccumulator::default();
        second
            .update_batch(&batch(&[
                (Some(1), Some(2 * DAY), Some("a"), None),
                (Some(far), Some(DAY), None, None),
                (Some(3), Some(6 * DAY), None, None),
                (None, None, Some("a"), Some(DAY)),
                (None, None, Some("b"), None),
            ]))
            .unwrap();
        let mut merged = AdoptionSetsAccumulator::default();
        for partial in [&mut first, &mut second] {
            merge_state(partial, &mut merged);
        }
        let ScalarValue::List(report) = merged.evaluate().unwrap() else {
            panic!("the report is a list");
        };
        let rows = report.value(0);
        let rows = rows.as_struct();
        // a launched on day 1: all three actors have an event at or after it; actor 1 took 2 - 1
        // days, actor 2 5 - 1: median 2.5, p90 1 + 0.9 * 3 = 3.7. b has no launch and no one
        // eligible.
        let column = |name: &str| Arc::clone(rows.column_by_name(name).unwrap());
        assert_eq!(
            column("feature")
                .as_string::<i32>()
                .iter()
                .collect::<Vec<_>>(),
            [Some("a"), Some("b")]
        );
        assert_eq!(
            column("launch")
                .as_primitive::<Int64Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(DAY), None]
        );
        assert_eq!(
            column("eligible").as_primitive::<Int64Type>().values(),
            &[3, 0]
        );
        assert_eq!(
            column("adopters").as_primitive::<Int64Type>().values(),
            &[2, 0]
        );
        let median = column("median_days");
        let median = median.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(median.iter().collect::<Vec<_>>(), [Some(2.5), None]);
        let p90 = column("p90_days");
        let p90 = p90.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert!((p90.value(0) - 3.7).abs() < 1e-12);
    }

    /// The report of `accumulator`, as text rows in order (features come in the order the
    /// accumulator first met them; the plan sorts them).
    fn report_rows(accumulator: &mut AdoptionSetsAccumulator) -> Vec<String> {
        let ScalarValue::List(report) = accumulator.evaluate().unwrap() else {
            panic!("the report is a list");
        };
        let rows = report.value(0);
        let rows = rows.as_struct();
        let mut rows: Vec<String> = (0..rows.len())
            .map(|row| {
                let cells: Vec<String> = rows
                    .columns()
                    .iter()
                    .map(|column| {
                        ScalarValue::try_from_array(column, row)
                            .unwrap()
                            .to_string()
                    })
                    .collect();
                cells.join(" ")
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn long_names_with_the_same_length_and_prefix_stay_apart() {
        // Both names are 17 bytes long and start with "anom", so their views differ only where
        // their bytes are stored: actor 1 uses the first twice, actor 2 the second once.
        let mut accumulator = AdoptionSetsAccumulator::default();
        accumulator
            .update_batch(&batch(&[
                (Some(1), Some(0), Some("anomaly_detection"), None),
                (Some(2), Some(DAY), Some("anomaly_detectors"), None),
                (Some(1), Some(2 * DAY), Some("anomaly_detection"), None),
            ]))
            .unwrap();
        // Launched at their first uses, days 0 and 1: both actors' last events (days 2 and 1)
        // are at or after either launch; each adopter took 0 days.
        assert_eq!(
            report_rows(&mut accumulator),
            [
                "anomaly_detection 0 2 1 0 0",
                "anomaly_detectors 86400000000 2 1 0 0"
            ]
        );
    }

    /// `count` random rows: events of actors spread so wide at times that the maps turn into hash
    /// maps, with NULL and long feature names and times in and out of the range; launches; and
    /// eligible actors.
    fn random_rows(random: &mut Random, count: usize, wide: bool) -> Vec<ArrayRef> {
        const NAMES: [&str; 11] = [
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
            "g",
            "h",
            "i",
            "anomaly_detection",
            "anomaly_detectors",
        ];
        let (mut actors, mut times, mut features, mut in_range, mut released) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..count {
            let kind = random.below(20);
            let actor = random.below(300) as i64 - 20;
            let actor = if wide && random.below(50) == 0 {
                actor << 40
            } else {
                actor
            };
            let feature = (random.below(3) > 0).then(|| NAMES[random.below(11) as usize]);
            match kind {
                0 => {
                    actors.push(None);
                    times.push(None);
                    features.push(Some(NAMES[random.below(11) as usize]));
                    in_range.push(false);
                    released.push((random.below(2) == 0).then(|| random.below(40) as i64 * DAY));
                }
                1 => {
                    actors.push(Some(actor));
                    times.push(None);
                    features.push(None);
                    in_range.push(false);
                    released.push(None);
                }
                _ => {
                    actors.push(Some(actor));
                    times.push(Some(random.below(60 * 24) as i64 * DAY / 24));
                    features.push(feature);
                    in_range.push(random.below(4) > 0);
                    released.push(None);
                }
            }
        }
        vec![
            Arc::new(Int64Array::from(actors)),
            Arc::new(Int64Array::from(times)),
            Arc::new(StringArray::from(features)),
            Arc::new(BooleanArray::from(in_range)),
            Arc::new(Int64Array::from(released)),
            Arc::new(Int64Array::from(vec![2; count])),
            Arc::new(BooleanArray::from(vec![wide; count])),
        ]
    }

    #[test]
    fn merged_partial_states_give_the_report_of_one_pass() {
        let mut random = Random(0x5eed_f00d);
        for case in 0..40 {
            let wide = case % 2 == 1;
            let batches: Vec<Vec<ArrayRef>> = (0..6)
                .map(|_| {
                    let count = 1 + random.below(400) as usize;
                    random_rows(&mut random, count, wide)
                })
                .collect();
            let mut whole = AdoptionSetsAccumulator::default();
            for batch in &batches {
                whole.update_batch(batch).unwrap();
            }
            // Each batch to one of three partial states (some get none); the merged state's
            // states are merged once more, as a cluster's stages would.
            let mut partials: Vec<AdoptionSetsAccumulator> =
                (0..3).map(|_| AdoptionSetsAccumulator::default()).collect();
            for batch in &batches {
                partials[random.below(3) as usize]
                    .update_batch(batch)
                    .unwrap();
            }
            let mut merged = AdoptionSetsAccumulator::default();
            for partial in &mut partials {
                merge_state(partial, &mut merged);
            }
            let mut again = AdoptionSetsAccumulator::default();
            merge_state(&mut merged, &mut again);
            let expected = report_rows(&mut whole);
            assert!(expected.len() > 5, "case {case}: {expected:?}");
            assert_eq!(report_rows(&mut again), expected, "case {case}");
        }
    }
}
