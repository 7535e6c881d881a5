//! [`ActorSets`]: the set of actors active in each period, for actors that are integers.
//!
//! The general first step of the actor-over-time functions is `GROUP BY actor`, and over a million
//! actors its hash table is most of the query's time (40% of `active_users` over 30M events, in
//! `perf`). When the actor is an integer, as surrogate keys are, the same facts fit in one bitset
//! per period indexed by the actor itself: adding an event sets one bit, with no hashing, and the
//! sets of partial aggregates merge by OR. Visiting the periods in order then gives each actor's
//! active periods in order, which is all the folds need.
//!
//! Each period's bitset spans only the range of that period's own actors: with ids handed out over
//! time, early periods hold fewer words, and no period is grown or copied because a later one
//! holds higher ids. New memory is most of what the sets cost (page faults were a fifth of
//! `active_users`' CPU when every period spanned every actor, with room to grow), so a period
//! grows by a quarter of its width at least, not by doubling, and a merged period that is new
//! is a copy of the state's words, not an OR into zeros.
//!
//! Bitsets cost the width of the actors' range in every period, so they are kept only while all of
//! them fit in [`DENSE_BUDGET_WORDS`]; past that (ids spread over a wide range) the sets turn into
//! sorted lists of ids, which cost the number of (actor, period) pairs instead.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;

use crate::fold::{list_of, single_list};

/// The most 64-bit words that the bitsets of all periods may take together: 256 MiB.
const DENSE_BUDGET_WORDS: usize = 1 << 25;

/// The most bytes that the pages of a growing [`ActorMap`] may take: 512 MiB (3.5M actors of
/// `feature_adoption_sets`, its largest values).
const DENSE_MAP_BYTES: usize = 1 << 29;

const WORD_BITS: i64 = 64;

/// Actors by period key (a day number, or the first day of a period).
#[derive(Debug, Default)]
pub(crate) struct ActorSets {
    sets: Sets,
}

#[derive(Debug)]
enum Sets {
    /// Each period's bits; `words` counts the words of all periods together.
    Dense {
        words: usize,
        periods: BTreeMap<i32, Bits>,
    },
    /// Each period's actors, sorted and without repeats up to `sorted`, then as they came.
    Sparse { periods: BTreeMap<i32, SparseSet> },
}

impl Default for Sets {
    fn default() -> Self {
        Sets::Dense {
            words: 0,
            periods: BTreeMap::new(),
        }
    }
}

/// Bit `actor - base` of `words` is set for each actor of one period; `base` is a multiple of 64.
#[derive(Debug)]
struct Bits {
    base: i64,
    words: Vec<u64>,
}

impl Bits {
    fn covers(&self, low: i64, high: i64) -> bool {
        word_of(self.base, self.words.len(), low).is_some()
            && word_of(self.base, self.words.len(), high).is_some()
    }

    fn set(&self) -> ActorSet<'_> {
        ActorSet::Bits {
            base: self.base,
            words: &self.words,
        }
    }
}

/// The first word's actor and the number of words of a bitset over `low..=high`, if it has at
/// most [`DENSE_BUDGET_WORDS`] words.
fn bitset_range(low: i64, high: i64) -> Option<(i64, usize)> {
    let first = low.div_euclid(WORD_BITS);
    let words = i128::from(high.div_euclid(WORD_BITS)) - i128::from(first) + 1;
    let words = usize::try_from(words)
        .ok()
        .filter(|words| *words <= DENSE_BUDGET_WORDS)?;
    Some((first * WORD_BITS, words))
}

/// Whether the bitsets still fit once period `key` holds `words` words from actor `base`: all
/// periods' words within the budget, and the range of all actors too, since
/// [`ActorSets::actor_map`] spans it.
fn dense_fits(
    periods: &BTreeMap<i32, Bits>,
    total: usize,
    key: i32,
    base: i64,
    words: usize,
) -> bool {
    let old = periods.get(&key).map_or(0, |bits| bits.words.len());
    let end = |base: i64, words: usize| i128::from(base) + words as i128 * i128::from(WORD_BITS);
    let (low, high) =
        periods
            .values()
            .fold((i128::from(base), end(base, words)), |(low, high), bits| {
                (
                    low.min(i128::from(bits.base)),
                    high.max(end(bits.base, bits.words.len())),
                )
            });
    (total - old).saturating_add(words) <= DENSE_BUDGET_WORDS
        && high - low <= DENSE_BUDGET_WORDS as i128 * i128::from(WORD_BITS)
}

#[derive(Debug, Default)]
struct SparseSet {
    actors: Vec<i64>,
    sorted: usize,
}

impl SparseSet {
    fn push(&mut self, actor: i64) {
        self.actors.push(actor);
        // Sorting whenever the list doubles keeps repeats from piling up, at a cost amortised
        // over the pushes.
        if self.actors.len() >= 2 * self.sorted.max(1024) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.actors.sort_unstable();
        self.actors.dedup();
        self.sorted = self.actors.len();
    }
}

/// The word holding `actor`'s bit, when `actor` is in the range of `words` words from `base`.
fn word_of(base: i64, words: usize, actor: i64) -> Option<(usize, u64)> {
    let offset = actor.checked_sub(base)?;
    if offset < 0 || offset >= words as i64 * WORD_BITS {
        return None;
    }
    Some(((offset / WORD_BITS) as usize, 1 << (offset % WORD_BITS)))
}

impl ActorSets {
    /// Adds `actors[row]` to the set of period `keys[row]` for every row where both are valid.
    pub(crate) fn add_batch(&mut self, actors: &Int64Array, keys: &Int32Array) {
        if actors.null_count() == 0 && keys.null_count() == 0 {
            // The usual case (the plans filter NULLs out): plain slices, no validity checks.
            let (actors, keys) = (actors.values(), keys.values());
            let mut row = 0;
            while row < keys.len() {
                let key = keys[row];
                let end = row + keys[row..].iter().take_while(|k| **k == key).count();
                self.add_run(key, actors[row..end].iter().copied());
                row = end;
            }
            return;
        }
        let mut row = 0;
        while row < keys.len() {
            if keys.is_null(row) {
                row += 1;
                continue;
            }
            // Events come in time order, so rows of one period come in runs: each run finds its
            // set once.
            let key = keys.value(row);
            let mut end = row + 1;
            while end < keys.len() && keys.is_valid(end) && keys.value(end) == key {
                end += 1;
            }
            let run = actors.slice(row, end - row);
            self.add_run(key, run.iter().flatten());
            row = end;
        }
    }

    fn add_run(&mut self, key: i32, actors: impl Iterator<Item = i64> + Clone) {
        let Some((low, high)) = actors
            .clone()
            .fold(None, |range: Option<(i64, i64)>, actor| match range {
                Some((low, high)) => Some((low.min(actor), high.max(actor))),
                None => Some((actor, actor)),
            })
        else {
            return;
        };
        self.make_room(key, low, high);
        match &mut self.sets {
            Sets::Dense { periods, .. } => {
                let Some(bits) = periods.get_mut(&key) else {
                    return;
                };
                for actor in actors {
                    let offset = (actor - bits.base) as u64;
                    bits.words[(offset / WORD_BITS as u64) as usize] |=
                        1 << (offset % WORD_BITS as u64);
                }
            }
            Sets::Sparse { periods } => {
                let set = periods.entry(key).or_default();
                actors.for_each(|actor| set.push(actor));
            }
        }
    }

    /// Makes the bitset of period `key` hold `low..=high` while all bitsets fit the budget;
    /// otherwise turns the sets into lists.
    fn make_room(&mut self, key: i32, low: i64, high: i64) {
        let Sets::Dense { words, periods } = &mut self.sets else {
            return;
        };
        let range = match periods.get(&key) {
            Some(bits) if bits.covers(low, high) => return,
            Some(bits) => {
                // Grow by a quarter of the width at least, so that ids arriving in any order cost
                // amortised constant time, with little room left unused.
                let width = bits.words.len() as i64 * WORD_BITS;
                let grow = (width / 4).max(WORD_BITS);
                let old_high = bits.base + (width - 1);
                let new_low = if low < bits.base {
                    low.min(bits.base.saturating_sub(grow))
                } else {
                    bits.base
                };
                let new_high = if high > old_high {
                    high.max(old_high.saturating_add(grow))
                } else {
                    old_high
                };
                bitset_range(new_low, new_high)
            }
            None => bitset_range(low, high),
        };
        let old_words = periods.get(&key).map_or(0, |bits| bits.words.len());
        let Some((base, new_words)) =
            range.filter(|(base, new_words)| dense_fits(periods, *words, key, *base, *new_words))
        else {
            self.make_sparse();
            return;
        };
        let mut grown = vec![0; new_words];
        if let Some(old) = periods.get(&key) {
            let shift = ((old.base - base) / WORD_BITS) as usize;
            grown[shift..shift + old.words.len()].copy_from_slice(&old.words);
        }
        *words = *words - old_words + new_words;
        periods.insert(key, Bits { base, words: grown });
    }

    fn make_sparse(&mut self) {
        let sparse = self
            .periods()
            .map(|(key, set)| {
                let actors: Vec<i64> = set.actors().collect();
                let sorted = actors.len();
                (key, SparseSet { actors, sorted })
            })
            .collect();
        self.sets = Sets::Sparse { periods: sparse };
    }

    /// Sorts the lists, which [`periods`](Self::periods) and [`set`](Self::set) need.
    pub(crate) fn compact(&mut self) {
        if let Sets::Sparse { periods } = &mut self.sets {
            periods.values_mut().for_each(SparseSet::compact);
        }
    }

    /// Each period key with its actors, periods in ascending order (after
    /// [`compact`](Self::compact)).
    pub(crate) fn periods(&self) -> Box<dyn Iterator<Item = (i32, ActorSet<'_>)> + '_> {
        match &self.sets {
            Sets::Dense { periods, .. } => {
                Box::new(periods.iter().map(|(key, bits)| (*key, bits.set())))
            }
            Sets::Sparse { periods } => Box::new(
                periods
                    .iter()
                    .map(|(key, set)| (*key, ActorSet::Sorted(&set.actors))),
            ),
        }
    }

    /// The actors of period `key` (after [`compact`](Self::compact)).
    pub(crate) fn set(&self, key: i32) -> Option<ActorSet<'_>> {
        match &self.sets {
            Sets::Dense { periods, .. } => periods.get(&key).map(Bits::set),
            Sets::Sparse { periods } => periods.get(&key).map(|set| ActorSet::Sorted(&set.actors)),
        }
    }

    /// A map from actor to a value, sized for these sets: an array over the bitsets' range, or a
    /// hash map for lists.
    pub(crate) fn actor_map<T: Copy + PartialEq>(&self, empty: T) -> ActorMap<T> {
        match &self.sets {
            Sets::Dense { periods, .. } => {
                let low = periods.values().map(|bits| bits.base).min().unwrap_or(0);
                // The range fits the budget (`dense_fits`), so its length fits a usize.
                let length = periods
                    .values()
                    .map(|bits| (bits.base - low) as usize + bits.words.len() * WORD_BITS as usize)
                    .max()
                    .unwrap_or(0);
                ActorMap::Dense {
                    base: low,
                    values: vec![empty; length],
                    empty,
                }
            }
            Sets::Sparse { .. } => ActorMap::Sparse {
                values: HashMap::new(),
                empty,
            },
        }
    }

    /// The sets as state values: keys, each period's dense base (NULL for lists), the length of
    /// each period's items, and the items (bitset words, or actor ids).
    pub(crate) fn state(&mut self) -> [ScalarValue; 4] {
        let mut keys = Vec::new();
        let mut lengths = Vec::new();
        let mut items = Vec::new();
        let bases = match &mut self.sets {
            Sets::Dense { periods, words } => {
                let mut bases = Vec::with_capacity(periods.len());
                items.reserve_exact(*words);
                for (key, bits) in periods.iter() {
                    keys.push(*key);
                    bases.push(bits.base);
                    lengths.push(bits.words.len() as i64);
                    items.extend(bits.words.iter().map(|word| *word as i64));
                }
                single_list(Arc::new(Int64Array::from(bases)))
            }
            Sets::Sparse { periods } => {
                for (key, set) in periods.iter_mut() {
                    set.compact();
                    keys.push(*key);
                    lengths.push(set.actors.len() as i64);
                    items.extend_from_slice(&set.actors);
                }
                ScalarValue::List(Arc::new(ListArray::new_null(
                    Arc::new(Field::new_list_field(DataType::Int64, true)),
                    1,
                )))
            }
        };
        [
            single_list(Arc::new(Int32Array::from(keys))),
            bases,
            single_list(Arc::new(Int64Array::from(lengths))),
            single_list(Arc::new(Int64Array::from(items))),
        ]
    }

    /// The state fields' types, in the order of [`ActorSets::state`].
    pub(crate) fn state_types() -> [(&'static str, DataType); 4] {
        [
            ("keys", list_of(DataType::Int32)),
            ("bases", list_of(DataType::Int64)),
            ("lengths", list_of(DataType::Int64)),
            ("items", list_of(DataType::Int64)),
        ]
    }

    /// Adds the sets of a state at `row` of `states` (four columns, as [`ActorSets::state`]).
    pub(crate) fn merge(&mut self, states: &[ArrayRef], row: usize) -> Result<()> {
        if states[0].is_null(row) {
            return Ok(());
        }
        let list = |index: usize| states[index].as_list::<i32>().value(row);
        let keys = list(0);
        let keys = keys.as_primitive::<Int32Type>().values();
        let lengths = list(2);
        let lengths = lengths.as_primitive::<Int64Type>().values();
        let items = list(3);
        let items = items.as_primitive::<Int64Type>().values();
        let bases = states[1].as_list::<i32>();
        let bases = bases.is_valid(row).then(|| bases.value(row));
        let bases = bases
            .as_ref()
            .map(|bases| bases.as_primitive::<Int64Type>().values());
        if bases.is_some_and(|bases| bases.len() != keys.len()) {
            return exec_err!("actor sets: a state holds a base for some periods only");
        }
        let mut start = 0;
        for (index, (key, length)) in keys.iter().zip(lengths.iter()).enumerate() {
            let end = start + *length as usize;
            if end > items.len() {
                return exec_err!("actor sets: a state holds fewer items than its lengths say");
            }
            let part = &items[start..end];
            match bases {
                Some(bases) => self.merge_words(*key, bases[index], part),
                None => self.add_run(*key, part.iter().copied()),
            }
            start = end;
        }
        Ok(())
    }

    /// ORs the bitset `words` of a state, whose bit 0 is actor `from` (a multiple of 64), into
    /// period `key`.
    fn merge_words(&mut self, key: i32, from: i64, words: &[i64]) {
        let (Some(first), Some(last)) = (
            words.iter().position(|word| *word != 0),
            words.iter().rposition(|word| *word != 0),
        ) else {
            return;
        };
        let low = from + first as i64 * WORD_BITS;
        let high = from + (last as i64 + 1) * WORD_BITS - 1;
        let words = &words[first..=last];
        if let Sets::Dense {
            words: total,
            periods,
        } = &mut self.sets
            && !periods.contains_key(&key)
            && dense_fits(periods, *total, key, low, words.len())
        {
            // A period no other state had so far: its words as they are.
            *total += words.len();
            let words = words.iter().map(|word| *word as u64).collect();
            periods.insert(key, Bits { base: low, words });
            return;
        }
        self.make_room(key, low, high);
        match &mut self.sets {
            Sets::Dense { periods, .. } => {
                let Some(bits) = periods.get_mut(&key) else {
                    return;
                };
                let offset = ((low - bits.base) / WORD_BITS) as usize;
                for (into, word) in bits.words[offset..].iter_mut().zip(words) {
                    *into |= *word as u64;
                }
            }
            Sets::Sparse { periods } => {
                let set = periods.entry(key).or_default();
                for actor in set_bits_of(words) {
                    set.push(low + actor);
                }
            }
        }
    }

    pub(crate) fn size(&self) -> usize {
        match &self.sets {
            Sets::Dense { words, periods } => words * 8 + periods.len() * 48,
            Sets::Sparse { periods } => periods
                .values()
                .map(|set| set.actors.capacity() * 8 + 64)
                .sum(),
        }
    }
}

/// The positions of the set bits of `words`, ascending.
fn set_bits(words: &[u64]) -> impl Iterator<Item = i64> + '_ {
    words
        .iter()
        .enumerate()
        .flat_map(|(index, word)| word_bits(index, *word))
}

/// The positions of the set bits of state `words` (bit patterns stored as BIGINT), ascending.
fn set_bits_of(words: &[i64]) -> impl Iterator<Item = i64> + '_ {
    words
        .iter()
        .enumerate()
        .flat_map(|(index, word)| word_bits(index, *word as u64))
}

/// The positions of the set bits of `word`, the `index`-th word of a bitset.
fn word_bits(index: usize, word: u64) -> impl Iterator<Item = i64> {
    let mut bits = word;
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let bit = bits.trailing_zeros();
        bits &= bits - 1;
        Some(index as i64 * WORD_BITS + i64::from(bit))
    })
}

/// The actors of one period.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ActorSet<'a> {
    /// Bit `actor - base` of `words`.
    Bits { base: i64, words: &'a [u64] },
    /// Sorted, without repeats.
    Sorted(&'a [i64]),
}

impl<'a> ActorSet<'a> {
    /// The actors, ascending.
    pub(crate) fn actors(self) -> Box<dyn Iterator<Item = i64> + 'a> {
        match self {
            ActorSet::Bits { base, words } => Box::new(set_bits(words).map(move |bit| base + bit)),
            ActorSet::Sorted(actors) => Box::new(actors.iter().copied()),
        }
    }

    /// Calls `visit` with each actor, ascending: as [`actors`](Self::actors), without the
    /// dynamic dispatch per actor that the folds' inner loops cannot afford.
    pub(crate) fn for_each(self, mut visit: impl FnMut(i64)) {
        match self {
            ActorSet::Bits { base, words } => {
                for (index, word) in words.iter().enumerate() {
                    let mut bits = *word;
                    let word_base = base + index as i64 * WORD_BITS;
                    while bits != 0 {
                        visit(word_base + i64::from(bits.trailing_zeros()));
                        bits &= bits - 1;
                    }
                }
            }
            ActorSet::Sorted(actors) => actors.iter().for_each(|actor| visit(*actor)),
        }
    }

    /// How many actors the set holds.
    pub(crate) fn len(self) -> usize {
        match self {
            ActorSet::Bits { words, .. } => {
                words.iter().map(|word| word.count_ones() as usize).sum()
            }
            ActorSet::Sorted(actors) => actors.len(),
        }
    }

    pub(crate) fn contains(self, actor: i64) -> bool {
        match self {
            ActorSet::Bits { base, words } => {
                word_of(base, words.len(), actor).is_some_and(|(word, bit)| words[word] & bit != 0)
            }
            ActorSet::Sorted(actors) => actors.binary_search(&actor).is_ok(),
        }
    }
}

/// The actors of a page of a growing [`ActorMap`] (64 KiB of 16-byte values): small enough that a
/// feature used by a few actors takes a few pages, large enough that the directory of a million
/// actors' pages stays in cache.
const PAGE_ACTORS: i64 = 1 << 12;

/// The most pages that the directory of a growing [`ActorMap`] may span (a range of 4G actors).
const MOST_PAGES: i64 = 1 << 20;

/// A value per actor: see [`ActorSets::actor_map`], or, grown as actors come,
/// [`ActorMap::new`]. `empty` is the value of absent actors.
#[derive(Debug)]
pub(crate) enum ActorMap<T> {
    /// An array over a range of actors known up front.
    Dense {
        base: i64,
        values: Vec<T>,
        empty: T,
    },
    /// Pages of [`PAGE_ACTORS`] actors, each allocated when an actor of it first comes, under a
    /// directory from page `first_page` on. Actors in no order never move a value: an array over
    /// their range would be copied into new pages each time it grew at its low end.
    Paged {
        first_page: i64,
        pages: Vec<Option<Box<[T]>>>,
        /// The pages allocated.
        allocated: usize,
        empty: T,
    },
    Sparse {
        values: HashMap<i64, T>,
        empty: T,
    },
}

/// The (actor, value) pairs of an array of actors from `base` on whose value is not `empty`.
fn set_values<T: Copy + PartialEq>(
    base: i64,
    values: &[T],
    empty: T,
) -> impl Iterator<Item = (i64, T)> + '_ {
    values
        .iter()
        .enumerate()
        .filter(move |(_, value)| **value != empty)
        .map(move |(index, value)| (base + index as i64, *value))
}

/// The page of `actor` and its place in it.
#[inline]
fn page_of(actor: i64) -> (i64, usize) {
    (
        actor.div_euclid(PAGE_ACTORS),
        actor.rem_euclid(PAGE_ACTORS) as usize,
    )
}

impl<T: Copy + PartialEq> ActorMap<T> {
    /// An empty map that grows to the actors it is given: pages over their range while they fit
    /// in [`DENSE_MAP_BYTES`] and [`MOST_PAGES`], else a hash map.
    pub(crate) fn new(empty: T) -> Self {
        ActorMap::Paged {
            first_page: 0,
            pages: Vec::new(),
            allocated: 0,
            empty,
        }
    }

    /// The slot of `actor` when it has one, without growing the map.
    #[inline]
    fn slot(&self, actor: i64) -> Option<&T> {
        match self {
            ActorMap::Dense { base, values, .. } => actor
                .checked_sub(*base)
                .and_then(|index| usize::try_from(index).ok())
                .and_then(|index| values.get(index)),
            ActorMap::Paged {
                first_page, pages, ..
            } => {
                let (page, offset) = page_of(actor);
                let index = usize::try_from(page - first_page).ok()?;
                pages.get(index)?.as_ref().map(|values| &values[offset])
            }
            ActorMap::Sparse { values, .. } => values.get(&actor),
        }
    }

    /// Asks the CPU to bring `actor`'s slot of a dense or paged map into cache, so that a caller
    /// reading actors in no order can start the memory load rows before it needs the slot: over
    /// an array larger than the caches each event would otherwise wait for its slot's cache
    /// misses.
    #[inline]
    pub(crate) fn prefetch(&self, actor: i64) {
        #[cfg(target_arch = "x86_64")]
        if !matches!(self, ActorMap::Sparse { .. })
            && let Some(slot) = self.slot(actor)
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let slot = (slot as *const T).cast::<i8>();
            // One prefetch per cache line the slot may span.
            for offset in (0..std::mem::size_of::<T>()).step_by(64) {
                // SAFETY: a prefetch is a hint that neither reads nor writes memory, and SSE,
                // which it needs, is part of every x86_64 CPU.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(slot.wrapping_add(offset)) };
            }
            // SAFETY: as above.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(
                    slot.wrapping_add(std::mem::size_of::<T>().saturating_sub(1)),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = actor;
    }

    /// The value of `actor`, and a place to set it.
    #[inline]
    pub(crate) fn entry(&mut self, actor: i64) -> &mut T {
        // The hot path, small enough to inline into the callers' loops over rows.
        if let ActorMap::Paged {
            first_page, pages, ..
        } = self
        {
            let (page, offset) = page_of(actor);
            if let Ok(index) = usize::try_from(page - *first_page)
                && let Some(Some(_)) = pages.get(index)
            {
                // Borrowed again here so that the slow path below may reshape `self`.
                let ActorMap::Paged { pages, .. } = self else {
                    unreachable!()
                };
                return &mut pages[index].as_mut().expect("checked above")[offset];
            }
        } else if let ActorMap::Dense { base, values, .. } = self
            && let Some(index) = actor.checked_sub(*base)
            && (0..values.len() as i64).contains(&index)
        {
            let ActorMap::Dense { values, .. } = self else {
                unreachable!()
            };
            return &mut values[index as usize];
        }
        self.entry_slow(actor)
    }

    /// [`entry`](Self::entry) for an actor of a page not allocated yet, outside a dense map's
    /// array, or in a hash map.
    #[cold]
    #[inline(never)]
    fn entry_slow(&mut self, actor: i64) -> &mut T {
        let (page, offset) = page_of(actor);
        // The fast path has already found `actor` outside a dense map's array, or its page not
        // allocated yet.
        match self {
            // `ActorSets::actor_map` sized the array for every actor of the sets.
            ActorMap::Dense { .. } => self.make_sparse(),
            ActorMap::Paged { .. } => self.add_page(page),
            ActorMap::Sparse { .. } => (),
        }
        match self {
            ActorMap::Dense { .. } => unreachable!("a dense map was made sparse above"),
            ActorMap::Paged {
                first_page, pages, ..
            } => {
                let values = pages[(page - *first_page) as usize].as_mut();
                &mut values.expect("the page was added above")[offset]
            }
            ActorMap::Sparse { values, empty } => values.entry(actor).or_insert(*empty),
        }
    }

    /// Allocates page `page` of a paged map, or turns the map into a hash map when the page
    /// would take it past [`DENSE_MAP_BYTES`] or its directory past [`MOST_PAGES`].
    fn add_page(&mut self, page: i64) {
        let ActorMap::Paged {
            first_page,
            pages,
            allocated,
            empty,
        } = self
        else {
            return;
        };
        let (low, high) = if pages.is_empty() {
            (page, page)
        } else {
            (
                page.min(*first_page),
                page.max(*first_page + pages.len() as i64 - 1),
            )
        };
        let page_bytes = PAGE_ACTORS as usize * size_of::<T>().max(1);
        if high - low >= MOST_PAGES || (*allocated + 1) * page_bytes > DENSE_MAP_BYTES {
            self.make_sparse();
            return;
        }
        if pages.is_empty() {
            *first_page = page;
        }
        if low < *first_page {
            // The directory is a pointer a page: moving it is cheap, unlike the values.
            let below = (*first_page - low) as usize;
            pages.splice(0..0, std::iter::repeat_with(|| None).take(below));
            *first_page = low;
        }
        let index = (page - *first_page) as usize;
        if pages.len() <= index {
            pages.resize_with(index + 1, || None);
        }
        pages[index] = Some(vec![*empty; PAGE_ACTORS as usize].into_boxed_slice());
        *allocated += 1;
    }

    /// Moves every value set into a hash map.
    fn make_sparse(&mut self) {
        let empty = match self {
            ActorMap::Dense { empty, .. } | ActorMap::Paged { empty, .. } => *empty,
            ActorMap::Sparse { .. } => return,
        };
        let mut values = HashMap::new();
        self.for_each(|actor, value| {
            values.insert(actor, value);
        });
        *self = ActorMap::Sparse { values, empty };
    }

    /// The value of `actor`, or the empty one: any actor, not only those of the sets.
    pub(crate) fn get(&self, actor: i64) -> T {
        match self.slot(actor) {
            Some(value) => *value,
            None => self.empty(),
        }
    }

    fn empty(&self) -> T {
        match self {
            ActorMap::Dense { empty, .. }
            | ActorMap::Paged { empty, .. }
            | ActorMap::Sparse { empty, .. } => *empty,
        }
    }

    /// Calls `visit` with every (actor, value) set for an actor, in no particular order (actors
    /// ascending in a dense or paged map): as [`pairs`](Self::pairs), without the dynamic
    /// dispatch per actor that the folds' passes over a million actors cannot afford.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(i64, T)) {
        match self {
            ActorMap::Dense {
                base,
                values,
                empty,
            } => set_values(*base, values, *empty).for_each(|(actor, value)| visit(actor, value)),
            ActorMap::Paged {
                first_page,
                pages,
                empty,
                ..
            } => {
                for (index, page) in pages.iter().enumerate() {
                    if let Some(values) = page {
                        let base = (*first_page + index as i64) * PAGE_ACTORS;
                        set_values(base, values, *empty)
                            .for_each(|(actor, value)| visit(actor, value));
                    }
                }
            }
            ActorMap::Sparse { values, .. } => values
                .iter()
                .for_each(|(actor, value)| visit(*actor, *value)),
        }
    }

    /// Every value set for an actor, in no particular order.
    pub(crate) fn values(&self) -> Box<dyn Iterator<Item = T> + '_> {
        Box::new(self.pairs().map(|(_, value)| value))
    }

    /// Every (actor, value) set for an actor, in no particular order.
    pub(crate) fn pairs(&self) -> Box<dyn Iterator<Item = (i64, T)> + '_> {
        let empty = self.empty();
        match self {
            ActorMap::Dense { base, values, .. } => Box::new(set_values(*base, values, empty)),
            ActorMap::Paged {
                first_page, pages, ..
            } => Box::new(pages.iter().enumerate().flat_map(move |(index, page)| {
                page.as_deref().into_iter().flat_map(move |values| {
                    set_values((*first_page + index as i64) * PAGE_ACTORS, values, empty)
                })
            })),
            ActorMap::Sparse { values, .. } => {
                Box::new(values.iter().map(|(actor, value)| (*actor, *value)))
            }
        }
    }

    /// How many actors the map has room for without growing: at least those set.
    pub(crate) fn slots(&self) -> usize {
        match self {
            ActorMap::Dense { values, .. } => values.len(),
            ActorMap::Paged { allocated, .. } => allocated * PAGE_ACTORS as usize,
            ActorMap::Sparse { values, .. } => values.len(),
        }
    }

    /// The bytes the values take.
    pub(crate) fn size(&self) -> usize {
        match self {
            ActorMap::Dense { values, .. } => values.capacity() * size_of::<T>(),
            ActorMap::Paged {
                pages, allocated, ..
            } => {
                pages.capacity() * size_of::<Option<Box<[T]>>>()
                    + allocated * PAGE_ACTORS as usize * size_of::<T>()
            }
            ActorMap::Sparse { values, .. } => values.capacity() * (size_of::<T>() + 16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collected(sets: &mut ActorSets) -> Vec<(i32, Vec<i64>)> {
        sets.compact();
        sets.periods()
            .map(|(key, set)| (key, set.actors().collect()))
            .collect()
    }

    fn add(sets: &mut ActorSets, rows: &[(i32, i64)]) {
        let keys = Int32Array::from_iter_values(rows.iter().map(|(key, _)| *key));
        let actors = Int64Array::from_iter_values(rows.iter().map(|(_, actor)| *actor));
        sets.add_batch(&actors, &keys);
    }

    #[test]
    fn bitsets_grow_both_ways_and_list_each_actor_once_in_order() {
        let mut sets = ActorSets::default();
        add(
            &mut sets,
            &[(3, 100), (3, 5), (1, 100), (3, 100), (3, -70), (1, 1000)],
        );
        assert!(matches!(sets.sets, Sets::Dense { .. }));
        assert_eq!(
            collected(&mut sets),
            vec![(1, vec![100, 1000]), (3, vec![-70, 5, 100])]
        );
    }

    /// Each period's words, by key.
    fn widths(sets: &ActorSets) -> Vec<(i32, usize)> {
        let Sets::Dense { periods, .. } = &sets.sets else {
            panic!("the sets are lists");
        };
        periods
            .iter()
            .map(|(key, bits)| (*key, bits.words.len()))
            .collect()
    }

    #[test]
    fn each_bitset_spans_its_own_period_s_actors() {
        let mut sets = ActorSets::default();
        // Period 1: actors 0..64 (one word); period 2: 640_000..640_128 (two words).
        add(&mut sets, &[(1, 3), (1, 60), (2, 640_000), (2, 640_127)]);
        assert_eq!(widths(&sets), vec![(1, 1), (2, 2)]);
        let mut merged = merged(&mut [sets]);
        assert_eq!(widths(&merged), vec![(1, 1), (2, 2)]);
        assert_eq!(
            collected(&mut merged),
            vec![(1, vec![3, 60]), (2, vec![640_000, 640_127])]
        );
    }

    #[test]
    fn periods_far_apart_turn_into_lists_though_each_is_narrow() {
        // Each period needs one word, but a map over all actors would span 2^40 of them.
        let mut sets = ActorSets::default();
        add(&mut sets, &[(1, 5), (2, 1 << 40)]);
        assert!(matches!(sets.sets, Sets::Sparse { .. }));
        assert_eq!(collected(&mut sets), vec![(1, vec![5]), (2, vec![1 << 40])]);
    }

    #[test]
    fn ids_too_wide_for_bitsets_turn_into_lists_with_the_same_members() {
        let mut sets = ActorSets::default();
        add(&mut sets, &[(0, 1), (0, 7), (2, 7)]);
        add(&mut sets, &[(2, i64::MAX), (0, i64::MIN), (0, 7)]);
        assert!(matches!(sets.sets, Sets::Sparse { .. }));
        assert_eq!(
            collected(&mut sets),
            vec![(0, vec![i64::MIN, 1, 7]), (2, vec![7, i64::MAX])]
        );
    }

    fn merged(parts: &mut [ActorSets]) -> ActorSets {
        let mut merged = ActorSets::default();
        for part in parts {
            let state: Vec<ArrayRef> = part
                .state()
                .iter()
                .map(|value| value.to_array().unwrap())
                .collect();
            merged.merge(&state, 0).unwrap();
        }
        merged
    }

    #[test]
    fn states_merge_into_the_union_whatever_their_kinds() {
        let mut dense = ActorSets::default();
        add(&mut dense, &[(1, 64), (1, 3), (2, 200)]);
        let mut other_dense = ActorSets::default();
        add(&mut other_dense, &[(1, 5000), (1, 3), (4, 1)]);
        let mut sparse = ActorSets::default();
        add(&mut sparse, &[(2, 1 << 50), (2, -(1 << 50)), (1, 64)]);
        assert!(matches!(sparse.sets, Sets::Sparse { .. }));

        let mut both_dense = merged(&mut [dense, other_dense]);
        assert!(matches!(both_dense.sets, Sets::Dense { .. }));
        assert_eq!(
            collected(&mut both_dense),
            vec![(1, vec![3, 64, 5000]), (2, vec![200]), (4, vec![1])]
        );

        let mut dense = ActorSets::default();
        add(&mut dense, &[(1, 64), (1, 3), (2, 200)]);
        let mut mixed = merged(&mut [dense, sparse]);
        assert_eq!(
            collected(&mut mixed),
            vec![(1, vec![3, 64]), (2, vec![-(1 << 50), 200, 1 << 50])]
        );
    }

    #[test]
    fn the_actor_map_keeps_one_value_per_actor() {
        let mut sets = ActorSets::default();
        add(&mut sets, &[(1, 10), (1, 20), (1, 30)]);
        let mut map = sets.actor_map(-1);
        *map.entry(10) = 5;
        *map.entry(20) = 6;
        *map.entry(10) = 7;
        assert_eq!((*map.entry(10), *map.entry(20)), (7, 6));
        let mut values: Vec<i32> = map.values().collect();
        values.sort_unstable();
        assert_eq!(values, vec![6, 7]);
    }

    /// A grown map against a `BTreeMap` of the same updates: actors in no order on both sides of
    /// zero, over pages far apart.
    fn grown_map_matches_a_btree_map(spread: u64) -> ActorMap<i64> {
        let mut random = crate::test_random::Random(0x9e37_79b9_7f4a_7c15);
        let mut map = ActorMap::new(0_i64);
        let mut expected = std::collections::BTreeMap::new();
        for _ in 0..20_000 {
            let actor = random.below(spread) as i64 - (spread / 2) as i64;
            let add = random.below(5) as i64 + 1;
            *map.entry(actor) += add;
            *expected.entry(actor).or_insert(0) += add;
        }
        let mut visited = Vec::new();
        map.for_each(|actor, value| visited.push((actor, value)));
        let mut pairs: Vec<(i64, i64)> = map.pairs().collect();
        pairs.sort_unstable();
        let expected: Vec<(i64, i64)> = expected.into_iter().collect();
        assert_eq!(pairs, expected);
        visited.sort_unstable();
        assert_eq!(visited, expected);
        for (actor, value) in &expected {
            assert_eq!(map.get(*actor), *value);
        }
        assert_eq!(map.get(i64::MAX), 0);
        map
    }

    #[test]
    fn a_grown_map_keeps_actors_in_no_order_in_pages() {
        let map = grown_map_matches_a_btree_map(300_000);
        let ActorMap::Paged {
            pages, allocated, ..
        } = &map
        else {
            panic!("300,000 actors' range fits in pages")
        };
        // Every page of the range is touched, and only those.
        assert_eq!(*allocated, pages.iter().flatten().count());
        assert!(pages.len() as i64 <= 300_000 / PAGE_ACTORS + 2);
        let mut ascending = Vec::new();
        map.for_each(|actor, _| ascending.push(actor));
        assert!(ascending.is_sorted(), "a paged map visits actors in order");
    }

    #[test]
    fn a_grown_map_past_its_directory_becomes_a_hash_map() {
        let map = grown_map_matches_a_btree_map(1 << 50);
        assert!(matches!(map, ActorMap::Sparse { .. }));
    }
}
