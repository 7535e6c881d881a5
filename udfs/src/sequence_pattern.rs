//! The pattern language of ClickHouse's `sequenceMatch` family, and its matcher: what
//! `sequence_match`, `sequence_count` and `sequence_match_events` run over the events of one
//! group.
//!
//! A pattern is parsed once, when the query is planned ([`Pattern::parse`]), into the actions of
//! ClickHouse's `AggregateFunctionSequenceBase::parsePattern`: an implicit leading `.*` (a match
//! may start anywhere), then one action per element:
//!
//! - `(?N)`: the next event meets condition N (1-based);
//! - `.`: any one next event;
//! - `.*`: any number of events, none included;
//! - `(?t op secs)`, written without spaces as `(?t>=3600)`, with `op` one of `>=`, `>`, `<`,
//!   `<=`, `==`: the time from the event matched just before it (after `.*`, the first event that
//!   `.*` did not skip) to the event the next element matches, compared with `secs` seconds. Any
//!   number of events may lie between the two.
//!
//! The events are the rows of the group that met at least one condition (the others are not
//! events: `.` never matches them), sorted by time and then by their condition bitmask, so that
//! ties have one order whatever order the rows arrive in.
//!
//! The matcher gives ClickHouse's answers: `sequenceMatch` runs ClickHouse's DFA when the pattern
//! has no time condition and its backtracking search otherwise; `sequenceCount` repeats the
//! backtracking search, each time from the event after the previous match; `sequenceMatchEvents`
//! runs it once and reports the events of the match, or of the longest partial chain. The search
//! here is ClickHouse's, with one addition: it remembers where each action failed (a state's
//! outcome depends on nothing else) and does not try it there again, and it finds where a time
//! condition starts to hold by binary search, so that a long tail of events that cannot complete a
//! match costs linear time instead of ClickHouse's quadratic time. Tests compare it with a
//! line-by-line port of ClickHouse's search. It still stops, as ClickHouse does, after 1,000,000
//! steps in one search ([`TooComplex`]), taking at most the steps ClickHouse takes: ClickHouse
//! stops on about a thousand events that fail to complete a chain, this on hundreds of thousands.

use std::fmt;

/// ClickHouse's limit on the conditions of a call, and the width of [`Event::conditions`].
pub(crate) const MAX_CONDITIONS: usize = 32;

/// ClickHouse's `sequence_match_max_iterations`: the steps one search may take.
const MAX_STEPS: u64 = 1_000_000;

/// One event of a group: a row that met at least one condition.
///
/// The derived order (time, then conditions) is the order the matcher expects ([`sort_events`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Event {
    /// The time, in ticks of [`Pattern::with_ticks_per_second`] (seconds unless told otherwise).
    pub(crate) time: i64,
    /// Bit `k - 1` is set when the row met condition `k`.
    pub(crate) conditions: u32,
}

/// Sorts a group's events as the matcher expects them: by time, and events at the same time by
/// their condition bitmask (a row meeting only c1 before one meeting only c2, and that one before
/// a row meeting c1 and c2). ClickHouse sorts by time alone with an unstable sort, which leaves the
/// order of ties to chance; this is one of the orders it can produce, always the same one.
pub(crate) fn sort_events(events: &mut [Event]) {
    events.sort_unstable();
}

/// The comparison of a time condition `(?t op secs)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeOp {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

impl TimeOp {
    /// Whether `time` compares as `self` with `bound`: the base event's time plus the seconds
    /// (all in the same ticks).
    fn holds(self, time: i64, bound: i128) -> bool {
        let time = i128::from(time);
        match self {
            TimeOp::Less => time < bound,
            TimeOp::LessOrEqual => time <= bound,
            TimeOp::Greater => time > bound,
            TimeOp::GreaterOrEqual => time >= bound,
            TimeOp::Equal => time == bound,
        }
    }
}

/// One element of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `(?N)`, holding the bit of condition N.
    Condition(u32),
    /// `.`
    AnyEvent,
    /// `.*`, and the implicit one that starts every pattern.
    AnyEvents,
    /// `(?t op secs)`.
    Time(TimeOp, u64),
}

impl Action {
    /// Whether a search that ran out of events before this action still matches: ClickHouse
    /// lets trailing `.*`, `(?t<...)`, `(?t<=...)` and `(?t>=0)` match nothing.
    fn may_end_unmatched(self) -> bool {
        matches!(
            self,
            Action::AnyEvents
                | Action::Time(TimeOp::Less | TimeOp::LessOrEqual, _)
                | Action::Time(TimeOp::GreaterOrEqual, 0)
        )
    }
}

/// A state of ClickHouse's DFA for patterns without time conditions.
#[derive(Debug, Clone, Copy)]
struct DfaState {
    /// Whether a `.*` lets the state stay on any event.
    loops: bool,
    transition: Transition,
}

/// How a DFA state moves on to the next state.
#[derive(Debug, Clone, Copy)]
enum Transition {
    /// The final state.
    None,
    Condition(u32),
    AnyEvent,
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    text: String,
    /// Starts with the implicit `.*`.
    actions: Vec<Action>,
    dfa: Vec<DfaState>,
    has_time: bool,
    /// The conditions the pattern names: a group that never met one of them cannot match.
    required: u32,
    /// The ticks of [`Event::time`] in a second.
    ticks_per_second: i64,
}

/// A pattern that does not parse: where, and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError {
    text: String,
    /// 1-based, in characters.
    position: usize,
    problem: String,
    conditions: usize,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a valid pattern: at character {}, {}. A pattern is a sequence of (?N) \
             (an event that meets condition N, from 1 to {}), . (any one event), .* (any number \
             of events) and (?t op secs) (op one of >=, >, <, <=, ==; secs whole seconds since \
             the event matched before), written without spaces, such as '(?1).*(?2)(?t<=3600)(?3)'",
            self.text, self.position, self.problem, self.conditions
        )
    }
}

impl std::error::Error for PatternError {}

/// A search that took more steps than ClickHouse allows (`TOO_SLOW` there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooComplex;

impl fmt::Display for TooComplex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "matching the pattern took more than {MAX_STEPS} steps on one group's events, \
             ClickHouse's limit; a pattern with fewer .* or time conditions, or fewer events per \
             group, stays under it"
        )
    }
}

impl std::error::Error for TooComplex {}

/// Reads a pattern's text.
struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
    conditions: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    /// Consumes `token` if the rest starts with it.
    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    /// The digits at the current position, as a number (saturating), if there are any.
    fn number(&mut self) -> Option<u64> {
        let digits = self
            .rest()
            .bytes()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let value = self.rest()[..digits].bytes().fold(0u64, |value, digit| {
            value
                .saturating_mul(10)
                .saturating_add(u64::from(digit - b'0'))
        });
        self.pos += digits;
        Some(value)
    }

    /// An error at byte offset `at`.
    fn error_at(&self, at: usize, problem: impl Into<String>) -> PatternError {
        PatternError {
            text: self.text.to_string(),
            position: self.text[..at].chars().count() + 1,
            problem: problem.into(),
            conditions: self.conditions,
        }
    }

    /// An error at the current position that shows what was found there.
    fn expected(&self, what: &str) -> PatternError {
        let found = match self.rest() {
            "" => "the end of the pattern".to_string(),
            rest => format!("'{rest}'"),
        };
        self.error_at(self.pos, format!("expected {what}, found {found}"))
    }
}

impl Pattern {
    /// Parses `text` for a call with `conditions` conditions (1 to [`MAX_CONDITIONS`]).
    ///
    /// Accepts ClickHouse's syntax (numbers are plain digits, and there are no spaces), except the
    /// empty pattern (which ClickHouse matches on every group, with or without events) and `(?0)`
    /// (on which ClickHouse fails its own bounds check); the error names the character where the
    /// pattern stops making sense.
    pub(crate) fn parse(text: &str, conditions: usize) -> Result<Self, PatternError> {
        let mut parser = Parser {
            text,
            pos: 0,
            conditions,
        };
        if text.is_empty() {
            return Err(parser.error_at(0, "the pattern is empty"));
        }
        let mut actions = vec![Action::AnyEvents];
        let mut dfa = vec![DfaState {
            loops: true,
            transition: Transition::None,
        }];
        let mut required = 0u32;
        let mut has_time = false;
        while !parser.rest().is_empty() {
            let start = parser.pos;
            if parser.eat("(?") {
                if parser.eat("t") {
                    let op = [
                        ("<=", TimeOp::LessOrEqual),
                        ("<", TimeOp::Less),
                        (">=", TimeOp::GreaterOrEqual),
                        (">", TimeOp::Greater),
                        ("==", TimeOp::Equal),
                    ]
                    .into_iter()
                    .find_map(|(token, op)| parser.eat(token).then_some(op))
                    .ok_or_else(|| parser.expected("a time operator >=, >, <, <= or =="))?;
                    let seconds = parser
                        .number()
                        .ok_or_else(|| parser.expected("whole seconds, such as (?t>=3600)"))?;
                    if let Some(Action::Time(..)) = actions.last() {
                        return Err(parser.error_at(
                            start,
                            "a time condition follows another one; it must follow (?N), . or .*",
                        ));
                    }
                    has_time = true;
                    actions.push(Action::Time(op, seconds));
                } else {
                    let number = parser
                        .number()
                        .ok_or_else(|| parser.expected("a condition number or t after '(?'"))?;
                    let bit = match usize::try_from(number) {
                        Ok(0) => {
                            return Err(
                                parser.error_at(start + 2, "conditions are numbered from 1: (?0)")
                            );
                        }
                        Ok(n) if n <= conditions => (n - 1) as u32,
                        _ => {
                            return Err(parser.error_at(
                                start + 2,
                                format!(
                                    "condition {number} does not exist: the call has {conditions}"
                                ),
                            ));
                        }
                    };
                    required |= 1 << bit;
                    actions.push(Action::Condition(bit));
                    push_dfa_step(&mut dfa, Transition::Condition(bit));
                }
                if !parser.eat(")") {
                    return Err(parser.expected("')'"));
                }
            } else if parser.eat(".*") {
                actions.push(Action::AnyEvents);
                if let Some(last) = dfa.last_mut() {
                    last.loops = true;
                }
            } else if parser.eat(".") {
                actions.push(Action::AnyEvent);
                push_dfa_step(&mut dfa, Transition::AnyEvent);
            } else {
                let problem = match parser.rest().chars().next() {
                    Some(space) if space.is_whitespace() => {
                        "a space; patterns are written without spaces".to_string()
                    }
                    Some(other) => {
                        format!("an unexpected '{other}'; elements start with '(?' or '.'")
                    }
                    None => "the end of the pattern".to_string(),
                };
                return Err(parser.error_at(start, problem));
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            actions,
            dfa,
            has_time,
            required,
            ticks_per_second: 1,
        })
    }

    /// The pattern for events whose times count `ticks` to the second (1,000 for milliseconds):
    /// time conditions stay in seconds, and compare exactly, without rounding the times.
    pub(crate) fn with_ticks_per_second(mut self, ticks: i64) -> Self {
        self.ticks_per_second = ticks.max(1);
        self
    }

    /// The pattern as written.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether the events (sorted by [`sort_events`]) hold a chain that matches: ClickHouse's
    /// `sequenceMatch`.
    pub(crate) fn matches(&self, events: &[Event]) -> Result<bool, TooComplex> {
        if !self.may_match(events) {
            return Ok(false);
        }
        if !self.has_time {
            return Ok(self.dfa_matches(events));
        }
        Ok(Search::new(self, events).attempt(0)?.matched)
    }

    /// How many chains match, each searched from the event after the previous one (chains do
    /// not overlap): ClickHouse's `sequenceCount`.
    pub(crate) fn count(&self, events: &[Event]) -> Result<u64, TooComplex> {
        if !self.may_match(events) {
            return Ok(0);
        }
        let mut search = Search::new(self, events);
        let (mut count, mut start) = (0, 0);
        while start < events.len() {
            let attempt = search.attempt(start)?;
            if !attempt.matched {
                break;
            }
            count += 1;
            start = attempt.next;
        }
        Ok(count)
    }

    /// The events of ClickHouse's `sequenceMatchEvents`, as indices in `events`: those that each
    /// `(?N)` of the first matching chain matched, in the pattern's order, when a chain matches;
    /// otherwise the longest chain that matches a beginning of the pattern (the first such chain
    /// the search met), so that a group that met only (?1) and (?2) of '(?1).*(?2).*(?3)' names
    /// those two events, and a group that met no step names none.
    ///
    /// Both come from the backtracking search that [`matches`](Self::matches) runs with a time
    /// condition (ClickHouse runs it for `sequenceMatchEvents` with or without one), without the
    /// shortcut that gives up on a group missing a condition of the pattern: that group still
    /// has a partial chain to report.
    pub(crate) fn matched_events(&self, events: &[Event]) -> Result<Vec<usize>, TooComplex> {
        let mut search = Search::new(self, events);
        let attempt = search.attempt(0)?;
        Ok(if attempt.matched {
            search.path
        } else {
            search.longest
        })
    }

    /// ClickHouse's shortcut: a group that never met a condition of the pattern cannot match it.
    fn may_match(&self, events: &[Event]) -> bool {
        let met = events.iter().fold(0, |met, event| met | event.conditions);
        met & self.required == self.required
    }

    /// ClickHouse's `dfaMatch`, for patterns without time conditions.
    fn dfa_matches(&self, events: &[Event]) -> bool {
        let states = self.dfa.len();
        let mut active = vec![false; states];
        let mut next = vec![false; states];
        active[0] = true;
        let mut any_active = true;
        for event in events {
            if !any_active || active[states - 1] {
                break;
            }
            next.fill(false);
            any_active = false;
            for (state, dfa) in self.dfa.iter().enumerate() {
                if !active[state] {
                    continue;
                }
                let moves = match dfa.transition {
                    Transition::None => false,
                    Transition::AnyEvent => true,
                    Transition::Condition(bit) => event.conditions & (1 << bit) != 0,
                };
                if moves {
                    next[state + 1] = true;
                    any_active = true;
                }
                if dfa.loops {
                    next[state] = true;
                    any_active = true;
                }
            }
            std::mem::swap(&mut active, &mut next);
        }
        active[states - 1]
    }
}

/// Adds a DFA state reached from the last one by `transition`.
fn push_dfa_step(dfa: &mut Vec<DfaState>, transition: Transition) {
    if let Some(last) = dfa.last_mut() {
        last.transition = transition;
    }
    dfa.push(DfaState {
        loops: false,
        transition: Transition::None,
    });
}

/// Where ClickHouse's backtracking search stands: the next action, the next event, and the event
/// the next time condition measures from.
#[derive(Debug, Clone, Copy)]
struct State {
    action: usize,
    event: usize,
    base: usize,
}

/// A choice the search made at a `.*` or a met time condition (`state`): to move on to the next
/// action at the same event. When that fails, it retries the same action at the next event.
#[derive(Debug, Clone, Copy)]
struct Frame {
    state: State,
    /// The length of the path when the choice was made.
    path_len: usize,
    /// Where in `Search::pending` the states that fail with this choice begin.
    chain: usize,
}

/// How a run of steps without choices ended.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// No action or no event left: the search is over.
    End,
    /// At a `.*` or a met time condition.
    Choice,
    /// A step failed: back to the last choice.
    Fail,
}

/// The outcome of one search.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    matched: bool,
    /// Where ClickHouse's `sequenceCount` searches next.
    next: usize,
}

/// ClickHouse's `backtrackingMatch` over one group's events, remembering the states it saw fail
/// across the searches of the group.
///
/// A state is (action, event, base); its outcome depends on nothing else, and the base matters
/// only when the action is a time condition (every other action sets it before reading it). So
/// the states of other actions that failed are kept, per action, as pointers from each failed
/// event to the next event not known to fail ([`Search::next_open`]). A `.*` or a time condition
/// retries the next action at one event after another: it jumps over the events where that action
/// is known to fail, and a time condition finds where it starts to hold by binary search instead of
/// a scan (the events are sorted by time). Both skip only what ClickHouse's search would try and
/// see fail, so the first match found, and where `sequenceCount` goes on, are ClickHouse's.
struct Search<'a> {
    actions: &'a [Action],
    events: &'a [Event],
    ticks_per_second: i128,
    /// For each action, empty while nothing failed there, else `n + 1` pointers: an event's own
    /// index while it may match there, a later event's once it failed.
    failed: Vec<Vec<u32>>,
    frames: Vec<Frame>,
    /// The (action, event) states entered since each choice, which fail together when it does.
    pending: Vec<(usize, usize)>,
    /// The events matched by each `(?N)` so far.
    path: Vec<usize>,
    /// The longest `path` of the current search, the first one of its length.
    longest: Vec<usize>,
}

impl<'a> Search<'a> {
    fn new(pattern: &'a Pattern, events: &'a [Event]) -> Self {
        Search {
            actions: &pattern.actions,
            events,
            ticks_per_second: i128::from(pattern.ticks_per_second),
            failed: vec![Vec::new(); pattern.actions.len()],
            frames: Vec::new(),
            pending: Vec::new(),
            path: Vec::new(),
            longest: Vec::new(),
        }
    }

    /// The first event from `event` on where `action` is not known to fail (`n` if none).
    fn next_open(&mut self, action: usize, event: usize) -> usize {
        let Some(next) = self.failed.get_mut(action).filter(|next| !next.is_empty()) else {
            return event;
        };
        let mut open = event;
        while next[open] as usize != open {
            open = next[open] as usize;
        }
        // Path compression: later look-ups from these events jump straight there.
        let mut at = event;
        while at != open {
            let following = next[at] as usize;
            next[at] = open as u32;
            at = following;
        }
        open
    }

    fn mark_failed(&mut self, action: usize, event: usize) {
        let events = self.events.len();
        let next = &mut self.failed[action];
        if next.is_empty() {
            *next = (0..=events as u32).collect();
        }
        next[event] = event as u32 + 1;
    }

    /// Whether entering `state` is known to fail.
    fn has_failed(&self, state: State) -> bool {
        match self.actions.get(state.action) {
            Some(Action::Time(..)) | None => false,
            Some(_) => self.failed[state.action]
                .get(state.event)
                .is_some_and(|&next| next as usize != state.event),
        }
    }

    /// One search from event `start`, as ClickHouse's `backtrackingMatch` runs it.
    fn attempt(&mut self, start: usize) -> Result<Attempt, TooComplex> {
        let events = self.events.len();
        let mut steps = 0;
        self.frames.clear();
        self.pending.clear();
        self.path.clear();
        self.longest.clear();
        let mut chain = 0;
        let mut state = State {
            action: 0,
            event: start,
            base: start,
        };
        loop {
            self.pending.push((state.action, state.event));
            let stop = if self.has_failed(state) {
                Stop::Fail
            } else {
                self.advance(&mut state, &mut steps)?
            };
            match stop {
                Stop::End => return Ok(self.finish(state.action, state.event, start)),
                Stop::Choice => {
                    self.frames.push(Frame {
                        state,
                        path_len: self.path.len(),
                        chain,
                    });
                    chain = self.pending.len();
                    state = State {
                        action: state.action + 1,
                        base: state.event,
                        ..state
                    };
                }
                Stop::Fail => loop {
                    // Every state entered since the last choice fails with it.
                    for index in chain..self.pending.len() {
                        let (action, event) = self.pending[index];
                        let timed = matches!(self.actions.get(action), Some(Action::Time(..)));
                        if !timed && action < self.actions.len() && event < events {
                            self.mark_failed(action, event);
                        }
                    }
                    self.pending.truncate(chain);
                    let Some(frame) = self.frames.pop() else {
                        // No choice left: ClickHouse stops on the leading `.*`, past the events.
                        return Ok(self.finish(0, events, start));
                    };
                    self.path.truncate(frame.path_len);
                    chain = frame.chain;
                    if frame.state.event + 1 < events {
                        state = State {
                            event: frame.state.event + 1,
                            ..frame.state
                        };
                        break;
                    }
                },
            }
        }
    }

    /// Runs the steps that involve no choice, from `state`.
    fn advance(&mut self, state: &mut State, steps: &mut u64) -> Result<Stop, TooComplex> {
        let events = self.events.len();
        loop {
            let Some(&action) = self.actions.get(state.action) else {
                return Ok(Stop::End);
            };
            let Some(event) = self.events.get(state.event) else {
                return Ok(Stop::End);
            };
            *steps += 1;
            if *steps > MAX_STEPS {
                return Err(TooComplex);
            }
            match action {
                Action::Condition(bit) => {
                    if event.conditions & (1 << bit) == 0 {
                        return Ok(Stop::Fail);
                    }
                    self.path.push(state.event);
                    if self.path.len() > self.longest.len() {
                        self.longest.clone_from(&self.path);
                    }
                    state.base = state.event;
                    state.action += 1;
                    state.event += 1;
                }
                Action::AnyEvent => {
                    state.base = state.event;
                    state.action += 1;
                    state.event += 1;
                }
                Action::AnyEvents => {
                    // The events where the next action is known to fail are tried in vain.
                    state.event = self.next_open(state.action + 1, state.event);
                    return Ok(if state.event == events {
                        Stop::Fail
                    } else {
                        Stop::Choice
                    });
                }
                Action::Time(op, seconds) => {
                    let bound = i128::from(self.events[state.base].time)
                        + i128::from(seconds) * self.ticks_per_second;
                    let before = |event: &Event| match op {
                        TimeOp::Greater => i128::from(event.time) <= bound,
                        _ => i128::from(event.time) < bound,
                    };
                    // `<` and `<=` fail where they first fail; the others scan on to where they
                    // hold, and then hold on (`==` only while the time is equal).
                    let first = match op {
                        TimeOp::Less | TimeOp::LessOrEqual => state.event,
                        _ => state.event + self.events[state.event..].partition_point(before),
                    };
                    let candidate = self.next_open(state.action + 1, first);
                    let holds = self
                        .events
                        .get(candidate)
                        .is_some_and(|event| op.holds(event.time, bound));
                    if !holds {
                        return Ok(Stop::Fail);
                    }
                    state.event = candidate;
                    return Ok(Stop::Choice);
                }
            }
        }
    }

    /// The outcome of a search that ended at `action` and `event`.
    fn finish(&self, action: usize, event: usize, start: usize) -> Attempt {
        let unmatched = &self.actions[action.min(self.actions.len())..];
        Attempt {
            matched: unmatched.iter().all(|action| action.may_end_unmatched()),
            // ClickHouse's `sequenceCount` moves on by at least one event.
            next: if event == start { start + 1 } else { event },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_random::Random;

    /// Events from (time in seconds, conditions met as 1-based numbers).
    fn events(rows: &[(i64, &[u32])]) -> Vec<Event> {
        // A row that meets no condition is not an event, as in the aggregates.
        let mut events: Vec<Event> = rows
            .iter()
            .map(|&(time, met)| Event {
                time,
                conditions: met.iter().fold(0, |mask, k| mask | 1 << (k - 1)),
            })
            .filter(|event| event.conditions != 0)
            .collect();
        sort_events(&mut events);
        events
    }

    fn pattern(text: &str, conditions: usize) -> Pattern {
        Pattern::parse(text, conditions).unwrap()
    }

    fn matches(text: &str, conditions: usize, rows: &[(i64, &[u32])]) -> bool {
        pattern(text, conditions).matches(&events(rows)).unwrap()
    }

    fn count(text: &str, conditions: usize, rows: &[(i64, &[u32])]) -> u64 {
        pattern(text, conditions).count(&events(rows)).unwrap()
    }

    fn parse_error(text: &str, conditions: usize) -> PatternError {
        Pattern::parse(text, conditions).unwrap_err()
    }

    #[test]
    fn parses_every_element_after_an_implicit_leading_any_events() {
        let parsed = pattern("(?1).(?t>=3600).*(?2)(?t==5)(?3)", 3);
        assert_eq!(
            parsed.actions,
            [
                Action::AnyEvents,
                Action::Condition(0),
                Action::AnyEvent,
                Action::Time(TimeOp::GreaterOrEqual, 3600),
                Action::AnyEvents,
                Action::Condition(1),
                Action::Time(TimeOp::Equal, 5),
                Action::Condition(2),
            ]
        );
        assert!(parsed.has_time);
        assert_eq!(parsed.required, 0b111);
        assert_eq!(parsed.text(), "(?1).(?t>=3600).*(?2)(?t==5)(?3)");
    }

    #[test]
    fn parses_each_time_operator() {
        for (text, op) in [
            ("(?1)(?t<=1)(?2)", TimeOp::LessOrEqual),
            ("(?1)(?t<1)(?2)", TimeOp::Less),
            ("(?1)(?t>=1)(?2)", TimeOp::GreaterOrEqual),
            ("(?1)(?t>1)(?2)", TimeOp::Greater),
            ("(?1)(?t==1)(?2)", TimeOp::Equal),
        ] {
            assert_eq!(pattern(text, 2).actions[2], Action::Time(op, 1), "{text}");
        }
    }

    #[test]
    fn parse_error_names_position_and_what_is_accepted() {
        let error = parse_error("(?1)(?x)", 2);
        assert_eq!(error.position, 7);
        let message = error.to_string();
        assert!(
            message.starts_with(
                "'(?1)(?x)' is not a valid pattern: at character 7, expected a condition number \
                 or t after '(?', found 'x)'."
            ),
            "{message}"
        );
        assert!(
            message.contains("(?N) (an event that meets condition N, from 1 to 2)"),
            "{message}"
        );
        assert!(message.contains("op one of >=, >, <, <=, =="), "{message}");
    }

    #[test]
    fn parse_rejects_condition_zero_and_conditions_beyond_the_call() {
        let zero = parse_error("(?0)", 2);
        assert_eq!(zero.position, 3);
        assert!(zero.to_string().contains("conditions are numbered from 1"));
        let beyond = parse_error("(?1).*(?3)", 2);
        assert_eq!(beyond.position, 9);
        assert!(
            beyond
                .to_string()
                .contains("condition 3 does not exist: the call has 2")
        );
        let huge = parse_error("(?99999999999999999999999)", 32);
        assert!(huge.to_string().contains("does not exist"), "{huge}");
    }

    #[test]
    fn parse_rejects_unbalanced_parentheses() {
        let open = parse_error("(?1", 1);
        assert_eq!(open.position, 4);
        assert!(
            open.to_string()
                .contains("expected ')', found the end of the pattern")
        );
        let extra = parse_error("(?1))", 1);
        assert_eq!(extra.position, 5);
        assert!(extra.to_string().contains("an unexpected ')'"));
        let nested = parse_error("((?1))", 1);
        assert_eq!(nested.position, 1);
        assert!(nested.to_string().contains("an unexpected '('"));
    }

    #[test]
    fn parse_rejects_unknown_time_operators_and_missing_seconds() {
        let unknown = parse_error("(?1)(?t!=5)(?2)", 2);
        assert_eq!(unknown.position, 8);
        assert!(
            unknown
                .to_string()
                .contains("expected a time operator >=, >, <, <= or ==, found '!=5)(?2)'")
        );
        let spaced = parse_error("(?1)(?t >= 5)(?2)", 2);
        assert_eq!(spaced.position, 8);
        let missing = parse_error("(?1)(?t>=)(?2)", 2);
        assert_eq!(missing.position, 10);
        assert!(missing.to_string().contains("expected whole seconds"));
        let negative = parse_error("(?1)(?t>-5)(?2)", 2);
        assert_eq!(negative.position, 9);
    }

    #[test]
    fn parse_rejects_spaces_empty_patterns_and_two_time_conditions_in_a_row() {
        let space = parse_error("(?1) (?2)", 2);
        assert_eq!(space.position, 5);
        assert!(space.to_string().contains("written without spaces"));
        assert!(
            parse_error("", 1)
                .to_string()
                .contains("at character 1, the pattern is empty")
        );
        let twice = parse_error("(?1)(?t>1)(?t<9)(?2)", 2);
        assert_eq!(twice.position, 11);
        assert!(twice.to_string().contains("follows another one"));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(parse_error("(?1)é", 1).position, 5);
        assert_eq!(parse_error("é(?1)", 1).position, 1);
    }

    #[test]
    fn clickhouse_documented_sequence_match_examples() {
        // time, number: (1, 1), (2, 3), (3, 2); a row is an event only if it meets a condition.
        let numbers = [(1, 1), (2, 3), (3, 2)];
        let rows = |conditions: &[i64]| -> Vec<(i64, Vec<u32>)> {
            numbers
                .iter()
                .map(|&(time, number)| {
                    let met = (1..=conditions.len() as u32)
                        .filter(|&k| conditions[k as usize - 1] == number)
                        .collect();
                    (time, met)
                })
                .collect()
        };
        let run = |conditions: &[i64]| {
            let rows = rows(conditions);
            let borrowed: Vec<(i64, &[u32])> =
                rows.iter().map(|(t, met)| (*t, met.as_slice())).collect();
            matches("(?1)(?2)", conditions.len(), &borrowed)
        };
        assert!(run(&[1, 2]));
        assert!(!run(&[1, 2, 3]));
        assert!(run(&[1, 2, 4]));
    }

    #[test]
    fn clickhouse_documented_sequence_count_example() {
        // number 1 at times 1 and 4, number 2 at times 3 and 6, number 3 (no condition) between.
        let rows: [(i64, &[u32]); 6] = [
            (1, &[1]),
            (2, &[]),
            (3, &[2]),
            (4, &[1]),
            (5, &[]),
            (6, &[2]),
        ];
        assert_eq!(count("(?1).*(?2)", 2, &rows), 2);
    }

    #[test]
    fn dot_is_exactly_one_event_and_dot_star_any_number() {
        let rows: [(i64, &[u32]); 4] = [(1, &[1]), (2, &[3]), (3, &[3]), (4, &[2])];
        assert!(!matches("(?1).(?2)", 3, &rows));
        assert!(matches("(?1)..(?2)", 3, &rows));
        assert!(matches("(?1).*(?2)", 3, &rows));
        assert!(!matches("(?1)...(?2)", 3, &rows));
        // `.*` also matches no event at all.
        assert!(matches("(?3).*(?3)", 3, &rows));
    }

    #[test]
    fn dot_skips_only_events_not_rows_without_conditions() {
        // The row at time 2 meets no condition: it is not an event, so `.` needs another one.
        let rows: [(i64, &[u32]); 3] = [(1, &[1]), (2, &[]), (3, &[2])];
        assert!(matches("(?1)(?2)", 2, &rows));
        assert!(!matches("(?1).(?2)", 2, &rows));
    }

    #[test]
    fn time_conditions_hold_at_their_exact_boundaries() {
        let at = |gap: i64| [(0, &[1][..]), (gap, &[2][..])];
        let check = |text: &str, gap: i64| matches(text, 2, &at(gap));
        assert!(check("(?1)(?t>=3600)(?2)", 3600));
        assert!(!check("(?1)(?t>=3600)(?2)", 3599));
        assert!(!check("(?1)(?t>3600)(?2)", 3600));
        assert!(check("(?1)(?t>3600)(?2)", 3601));
        assert!(check("(?1)(?t<=3600)(?2)", 3600));
        assert!(!check("(?1)(?t<=3600)(?2)", 3601));
        assert!(!check("(?1)(?t<3600)(?2)", 3600));
        assert!(check("(?1)(?t<3600)(?2)", 3599));
        assert!(check("(?1)(?t==3600)(?2)", 3600));
        assert!(!check("(?1)(?t==3600)(?2)", 3599));
        assert!(!check("(?1)(?t==3600)(?2)", 3601));
    }

    #[test]
    fn time_conditions_let_any_events_lie_between() {
        let rows: [(i64, &[u32]); 4] = [(0, &[1]), (10, &[3]), (20, &[3]), (100, &[2])];
        assert!(matches("(?1)(?t>50)(?2)", 3, &rows));
        assert!(matches("(?1)(?t<=100)(?2)", 3, &rows));
        assert!(!matches("(?1)(?t<100)(?2)", 3, &rows));
    }

    #[test]
    fn time_after_dot_star_measures_from_the_first_event_it_did_not_skip() {
        // ClickHouse: `.*` moves the time base to the event after (?1), here 50 s later.
        let rows: [(i64, &[u32]); 3] = [(0, &[1]), (50, &[3]), (100, &[2])];
        assert!(matches("(?1)(?t>=100)(?2)", 3, &rows));
        assert!(!matches("(?1).*(?t>=100)(?2)", 3, &rows));
        assert!(matches("(?1).*(?t>=50)(?2)", 3, &rows));
    }

    #[test]
    fn time_conditions_compare_ticks_exactly() {
        // Milliseconds: 1.5 s apart is more than one second.
        let events = events(&[(0, &[1]), (1_500, &[2])]);
        let within = |text: &str| {
            pattern(text, 2)
                .with_ticks_per_second(1_000)
                .matches(&events)
                .unwrap()
        };
        assert!(!within("(?1)(?t<=1)(?2)"));
        assert!(within("(?1)(?t<=2)(?2)"));
        assert!(within("(?1)(?t>1)(?2)"));
    }

    #[test]
    fn ties_are_ordered_by_condition_bitmask() {
        // Both at time 5: c1 (mask 1) sorts before c2 (mask 2), whatever the input order.
        let forward = events(&[(5, &[1]), (5, &[2])]);
        let backward = events(&[(5, &[2]), (5, &[1])]);
        assert_eq!(forward, backward);
        assert!(pattern("(?1)(?2)", 2).matches(&forward).unwrap());
        assert!(!pattern("(?2)(?1)", 2).matches(&forward).unwrap());
        // A row meeting c1 and c2 (mask 3) comes after one meeting only c2.
        let both = events(&[(5, &[1, 2]), (5, &[2])]);
        assert_eq!(both[0].conditions, 0b10);
        assert!(pattern("(?2)(?1)", 2).matches(&both).unwrap());
    }

    #[test]
    fn one_event_meeting_two_conditions_matches_one_step() {
        let rows: [(i64, &[u32]); 1] = [(1, &[1, 2])];
        assert!(matches("(?1)", 2, &rows));
        assert!(matches("(?2)", 2, &rows));
        assert!(!matches("(?1)(?2)", 2, &rows));
    }

    #[test]
    fn no_events_match_only_patterns_that_need_none() {
        let none: [(i64, &[u32]); 0] = [];
        assert!(!matches("(?1)", 1, &none));
        assert!(!matches(".", 1, &none));
        assert!(matches(".*", 1, &none));
        assert_eq!(count("(?1)", 1, &none), 0);
    }

    #[test]
    fn count_finds_non_overlapping_chains() {
        let rows: [(i64, &[u32]); 6] = [
            (1, &[1]),
            (2, &[1]),
            (3, &[2]),
            (4, &[2]),
            (5, &[1]),
            (6, &[2]),
        ];
        // 1→3, then from 4: 5→6.
        assert_eq!(count("(?1).*(?2)", 2, &rows), 2);
        // 2→3 and 5→6 are adjacent.
        assert_eq!(count("(?1)(?2)", 2, &rows), 2);
        assert_eq!(count("(?1)", 2, &rows), 3);
        assert_eq!(count("(?2)(?1)", 2, &rows), 1);
    }

    #[test]
    fn count_with_time_conditions() {
        let rows: [(i64, &[u32]); 4] = [(0, &[1]), (30, &[2]), (100, &[1]), (200, &[2])];
        assert_eq!(count("(?1)(?t<=60)(?2)", 2, &rows), 1);
        assert_eq!(count("(?1)(?t<=100)(?2)", 2, &rows), 2);
        assert_eq!(count("(?1)(?t>60)(?2)", 2, &rows), 1);
    }

    #[test]
    fn matched_events_name_the_events_of_each_condition_step() {
        let events = events(&[(1, &[2]), (2, &[1]), (3, &[3]), (4, &[2]), (9, &[2])]);
        assert_eq!(
            pattern("(?1).(?2)", 3).matched_events(&events),
            Ok(vec![1, 3])
        );
        assert_eq!(
            pattern("(?1)(?t>5)(?2)", 3).matched_events(&events),
            Ok(vec![1, 4])
        );
    }

    #[test]
    fn matched_events_without_a_match_are_the_longest_partial_chain() {
        // ClickHouse's documented rows: 1 at 1 and 4, 2 at 3 and 6, 3 (no condition) between.
        let rows: [(i64, &[u32]); 6] = [
            (1, &[1]),
            (2, &[]),
            (3, &[2]),
            (4, &[1]),
            (5, &[]),
            (6, &[2]),
        ];
        let documented = events(&rows);
        // Condition 3 never holds: the chain stops after (?1) at 1 and (?2) at 3.
        assert_eq!(
            pattern("(?1).*(?2).*(?3)", 3).matched_events(&documented),
            Ok(vec![0, 1])
        );
        // No event meets (?3): nothing to name.
        assert_eq!(
            pattern("(?3)(?1)", 3).matched_events(&documented),
            Ok(vec![])
        );
        // ClickHouse's issue 118120: the time gate fails from the A at 0 to the B at 100, so
        // the chain is A, B at 5, not the A, B, C that skips the gate.
        let gated = events(&[(0, &[1]), (5, &[2]), (100, &[2]), (101, &[3])]);
        let gate = pattern("(?1)(?t<=10)(?2)(?3)", 3);
        assert_eq!(gate.matches(&gated), Ok(false));
        assert_eq!(gate.matched_events(&gated), Ok(vec![0, 1]));
    }

    #[test]
    fn matched_events_of_a_match_are_the_matching_chain() {
        // c1, c2 at 1 and 2 fail the gate to 10; c1, c2 at 20 and 21 pass it to 22. ClickHouse
        // 26.9 reports [1, 2], the first chain that met every (?N), though it is not the match;
        // the spec asks for the matched steps, so this reports [20, 21].
        let rows: [(i64, &[u32]); 6] = [
            (1, &[1]),
            (2, &[2]),
            (10, &[3]),
            (20, &[1]),
            (21, &[2]),
            (22, &[3]),
        ];
        let gated = pattern("(?1)(?2)(?t<=1).", 3);
        assert_eq!(gated.matches(&events(&rows)), Ok(true));
        assert_eq!(gated.matched_events(&events(&rows)), Ok(vec![3, 4]));
    }

    /// One c2, then `len` c1 that never see a c2 after them.
    fn failing_tail(len: i64) -> Vec<Event> {
        let c2 = Event {
            time: 0,
            conditions: 0b10,
        };
        let c1 = (1..=len).map(|time| Event {
            time,
            conditions: 0b01,
        });
        std::iter::once(c2).chain(c1).collect()
    }

    #[test]
    fn a_long_failing_tail_stays_under_the_step_limit() {
        // ClickHouse's search revisits the tail for every c1 (about 37 million steps here) and
        // stops with TOO_SLOW.
        let rows = failing_tail(5_000);
        let pattern = pattern("(?1).*(?2)", 2);
        assert_eq!(pattern.count(&rows), Ok(0));
        for text in [
            "(?1)(?t<=1000000)(?2)",
            "(?1).*(?t<=1000000)(?2)",
            "(?1)(?t>=1)(?2)",
        ] {
            let timed = Pattern::parse(text, 2).unwrap();
            assert_eq!(timed.matches(&rows), Ok(false), "{text}");
            assert_eq!(timed.count(&rows), Ok(0), "{text}");
        }
    }

    #[test]
    fn huge_groups_stop_at_clickhouses_step_limit() {
        // The search is linear here, but half a million events that fail to complete the chain
        // still take more than the million steps ClickHouse allows one search.
        let rows = failing_tail(500_000);
        assert_eq!(pattern("(?1).*(?2)", 2).count(&rows), Err(TooComplex));
        // Without a time condition sequenceMatch runs ClickHouse's DFA, which has no limit.
        assert_eq!(pattern("(?1).*(?2)", 2).matches(&rows), Ok(false));
        assert!(TooComplex.to_string().contains("1000000 steps"));
    }

    /// ClickHouse's `backtrackingMatch`, line for line, without the step limit: the oracle. With
    /// the bookkeeping of its `sequenceMatchEvents` (as fixed in ClickHouse 26.9): the events of
    /// the `(?N)` matched so far, cut back on backtracking, and the longest such chain, left in
    /// `chain` (the matched chain when the search matches).
    fn clickhouse_backtracking(
        pattern: &Pattern,
        events: &[Event],
        start: &mut usize,
        chain: &mut Vec<usize>,
    ) -> bool {
        let actions = &pattern.actions;
        let end = events.len();
        let begin = *start;
        let (mut action, mut event, mut base) = (0, begin, begin);
        let mut path: Vec<usize> = Vec::new();
        let mut longest: Vec<usize> = Vec::new();
        let mut stack: Vec<(usize, usize, usize, usize)> = Vec::new();
        let backtrack = |stack: &mut Vec<(usize, usize, usize, usize)>,
                         path: &mut Vec<usize>,
                         action: &mut usize,
                         event: &mut usize,
                         base: &mut usize| {
            while let Some((a, e, b, matched)) = stack.pop() {
                *action = a;
                *event = e + 1;
                *base = b;
                path.truncate(matched);
                if *event != end {
                    return true;
                }
            }
            false
        };
        let bound = |base: usize, seconds: u64| {
            i128::from(events[base].time)
                + i128::from(seconds) * i128::from(pattern.ticks_per_second)
        };
        while action != actions.len() && event != end {
            match actions[action] {
                Action::Condition(bit) => {
                    if events[event].conditions & (1 << bit) != 0 {
                        path.push(event);
                        if path.len() > longest.len() {
                            longest.clone_from(&path);
                        }
                        base = event;
                        action += 1;
                        event += 1;
                    } else if !backtrack(&mut stack, &mut path, &mut action, &mut event, &mut base)
                    {
                        break;
                    }
                }
                Action::AnyEvent => {
                    base = event;
                    action += 1;
                    event += 1;
                }
                Action::AnyEvents => {
                    stack.push((action, event, base, path.len()));
                    base = event;
                    action += 1;
                }
                Action::Time(op, seconds) => {
                    if op.holds(events[event].time, bound(base, seconds)) {
                        stack.push((action, event, base, path.len()));
                        base = event;
                        action += 1;
                    } else if matches!(op, TimeOp::Less | TimeOp::LessOrEqual) {
                        if !backtrack(&mut stack, &mut path, &mut action, &mut event, &mut base) {
                            break;
                        }
                    } else {
                        event += 1;
                        if event == end
                            && !backtrack(&mut stack, &mut path, &mut action, &mut event, &mut base)
                        {
                            break;
                        }
                    }
                }
            }
        }
        while action < actions.len() && actions[action].may_end_unmatched() {
            action += 1;
        }
        *start = if event == begin { event + 1 } else { event };
        let matched = action == actions.len();
        *chain = if matched { path } else { longest };
        matched
    }

    fn clickhouse_count(pattern: &Pattern, events: &[Event]) -> u64 {
        if !pattern.may_match(events) {
            return 0;
        }
        let (mut count, mut start) = (0, 0);
        let mut chain = Vec::new();
        while start < events.len()
            && clickhouse_backtracking(pattern, events, &mut start, &mut chain)
        {
            count += 1;
        }
        count
    }

    fn random_pattern(random: &mut Random, conditions: u64) -> String {
        let mut text = String::new();
        let mut last_time = false;
        for _ in 0..1 + random.below(6) {
            match random.below(6) {
                0 | 1 => {
                    text += &format!("(?{})", 1 + random.below(conditions));
                    last_time = false;
                }
                2 => {
                    text += ".";
                    last_time = false;
                }
                3 => {
                    text += ".*";
                    last_time = false;
                }
                _ if !last_time => {
                    let op = ["<", "<=", ">", ">=", "=="][random.below(5) as usize];
                    text += &format!("(?t{op}{})", random.below(4));
                    last_time = true;
                }
                _ => text += &format!("(?{})", 1 + random.below(conditions)),
            }
        }
        text
    }

    #[test]
    fn search_agrees_with_clickhouses_backtracking_and_dfa() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let conditions = 1 + random.below(3);
            let text = random_pattern(&mut random, conditions);
            let pattern = Pattern::parse(&text, conditions as usize).unwrap();
            let mut events: Vec<Event> = (0..random.below(9))
                .map(|_| Event {
                    time: random.below(6) as i64,
                    conditions: 1 + random.below((1 << conditions) - 1) as u32,
                })
                .collect();
            sort_events(&mut events);

            let (mut next, mut chain) = (0, Vec::new());
            let backtracking = clickhouse_backtracking(&pattern, &events, &mut next, &mut chain);
            let context = format!("{text} on {events:?}");
            // ClickHouse answers sequenceMatch with its DFA when there is no time condition: the
            // DFA and the backtracking search must agree there, or `matched_events` would not.
            if !pattern.has_time {
                assert_eq!(pattern.dfa_matches(&events), backtracking, "{context}");
            }
            let expected = pattern.may_match(&events) && backtracking;
            assert_eq!(pattern.matches(&events), Ok(expected), "{context}");
            let attempt = Search::new(&pattern, &events).attempt(0).unwrap();
            assert_eq!(
                (attempt.matched, attempt.next),
                (backtracking, next),
                "{context}"
            );
            assert_eq!(
                pattern.count(&events),
                Ok(clickhouse_count(&pattern, &events)),
                "{context}"
            );
            assert_eq!(pattern.matched_events(&events), Ok(chain), "{context}");
        }
    }
}
