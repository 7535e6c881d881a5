//! Product and revenue metric functions for Apache DataFusion.
//!
//! This crate does no I/O and knows nothing of the command line: [`register_all`] adds everything it
//! offers to any [`SessionContext`], so the REPL, the Flight SQL server, batch jobs and a Ballista
//! executor all see the same functions with the same session settings.

mod options;

pub use options::{UsagelakeOptions, WeekStart};

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

/// Registers the `usagelake.*` session settings and every metric function into `ctx`.
///
/// Settings already present (for example set from the command line before this call) are kept.
pub fn register_all(ctx: &SessionContext) -> Result<()> {
    let state = ctx.state_ref();
    let mut state = state.write();
    let options = state.config_mut().options_mut();
    if options.extensions.get::<UsagelakeOptions>().is_none() {
        options.extensions.insert(UsagelakeOptions::default());
    }
    Ok(())
}
