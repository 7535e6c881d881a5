//! `actor_id_window_funnel(actor, window, ts, c1, ..., cN [, mode, ...])`: `window_funnel`'s
//! level of every actor of a group, for actors that are integers, as one list of (actor, level).
//!
//! `window_funnel` under `GROUP BY actor` pays for DataFusion's hash table of actors twice, in
//! the partial and the final aggregate, to gather a couple of events per actor (`perf`: 15% of
//! the query interning a million keys). The rule in `window_funnel_blocks.rs` plans that query
//! as this aggregate under `GROUP BY actor / 16384` instead, and unnests its lists back into one
//! row per actor: a block keeps its events in one list, sorted by actor with a counting sort when
//! it is evaluated, as `actor_id_funnel` does ([`ActorIdFunnelGroups`]), and each actor's level
//! comes from `window_funnel`'s own [`Funnel::run`](crate::window_funnel::Funnel::run), so the
//! two plans agree by construction.

use datafusion::logical_expr::{AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

use crate::actor_id_funnel::{BlockOutput, actor_block_methods};

const NAME: &str = "actor_id_window_funnel";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "window_funnel's level of each actor of the group, for integer actors: one \
list of structs (actor BIGINT, level TINYINT UNSIGNED) in order of actor, the rows with a NULL \
actor last as one actor NULL. The same arguments as window_funnel after actor, the same algorithm \
and modes. A group's actors may span at most 1,048,576 ids; ts must be a TIMESTAMP. \
`window_funnel(...) ... GROUP BY actor` is planned with it for you.",
    syntax_example = "actor_id_window_funnel(actor, window, ts, c1[, c2, ..., c32][, mode, ...])",
    sql_example = r#"```sql
> SELECT unnest(actor_id_window_funnel(user_id, INTERVAL '1 day', ts,
           event = 'signup', event = 'invite'))
  FROM events GROUP BY user_id / 16384;
```"#,
    argument(name = "actor", description = "An integer: the actor."),
    argument(
        name = "window, ts, c1, ..., c32, mode",
        description = "As for window_funnel, with ts a TIMESTAMP."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActorIdWindowFunnel {
    signature: Signature,
}

impl ActorIdWindowFunnel {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for ActorIdWindowFunnel {
    actor_block_methods!(NAME, BlockOutput::Levels);

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
