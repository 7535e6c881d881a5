//! Product and revenue metric functions for Apache DataFusion.
//!
//! This crate does no I/O and knows nothing of the command line: [`register_all`] adds everything it
//! offers to any [`SessionContext`], so the REPL, the Flight SQL server, batch jobs and a Ballista
//! executor all see the same functions with the same session settings.

mod active_days;
mod active_user_counts;
mod active_user_sets;
mod active_users;
mod actor_id_funnel;
mod actor_id_sessions;
mod actor_id_window_funnel;
mod actor_sessions;
mod actor_sets;
mod adoption_rate;
mod ces;
mod churn_rate;
mod churn_risk;
mod cohort_counts;
mod cohort_retention;
mod cohort_sets;
mod compounded_revenue;
mod feature_adoption;
mod feature_adoption_sets;
mod fold;
mod funnel;
mod input_provider;
mod k_factor;
mod lifecycle;
mod lifecycle_counts;
mod lifecycle_sets;
mod ltv;
mod mrr_history;
mod nps;
mod number_arguments;
mod options;
mod period;
mod period_diff;
mod period_start;
mod retention;
mod retention_rate;
mod revenue_churn;
mod revenue_movement_sets;
mod revenue_movements;
mod rolling_cohort_counts;
mod score_sums;
mod sequence_count;
mod sequence_match;
mod sequence_match_events;
mod sequence_next_node;
mod sequence_pattern;
mod sessionize;
mod sessions;
mod step_number;
mod string_in_list;
mod table_function;
#[cfg(test)]
mod test_merge;
#[cfg(test)]
mod test_random;
mod time_arguments;
mod to_mrr;
mod usage_frequency;
mod usage_frequency_counts;
mod usage_frequency_sets;
mod usagelake_functions;
mod window_funnel;
mod window_funnel_blocks;
mod window_funnel_events;

pub use options::{UsagelakeOptions, WeekStart};

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::SessionContext;

use crate::table_function::{MetricTableFunction, MetricTablePlanner};
use crate::usagelake_functions::UsagelakeFunctions;

fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(period_start::PeriodStart::new()),
        ScalarUDF::from(period_diff::PeriodDiff::new()),
        ScalarUDF::from(churn_rate::ChurnRate::new()),
        ScalarUDF::from(to_mrr::ToMrr::new()),
        ScalarUDF::from(ltv::Ltv::new()),
        ScalarUDF::from(retention_rate::RetentionRate::new()),
        ScalarUDF::from(compounded_revenue::CompoundedRevenue::new()),
        ScalarUDF::from(step_number::StepNumber::new()),
    ]
}

fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::from(retention::Retention::new()),
        AggregateUDF::from(sequence_match::SequenceMatch::new()),
        AggregateUDF::from(sequence_count::SequenceCount::new()),
        AggregateUDF::from(adoption_rate::AdoptionRate::new()),
        AggregateUDF::from(active_days::ActiveDays::new()),
        AggregateUDF::from(active_user_counts::ActiveUserCounts::new()),
        AggregateUDF::from(active_user_sets::ActiveUserSets::new()),
        AggregateUDF::from(cohort_counts::CohortCounts::new()),
        AggregateUDF::from(cohort_sets::CohortSets::new()),
        AggregateUDF::from(lifecycle_counts::LifecycleCounts::new()),
        AggregateUDF::from(feature_adoption_sets::FeatureAdoptionSets::new()),
        AggregateUDF::from(lifecycle_sets::LifecycleSets::new()),
        AggregateUDF::from(mrr_history::MrrHistory::new()),
        AggregateUDF::from(revenue_movement_sets::RevenueMovementSets::new()),
        AggregateUDF::from(revenue_movements::RevenueMovements::new()),
        AggregateUDF::from(rolling_cohort_counts::RollingCohortCounts::new()),
        AggregateUDF::from(usage_frequency_counts::UsageFrequencyCounts::new()),
        AggregateUDF::from(usage_frequency_sets::UsageFrequencySets::new()),
        AggregateUDF::from(window_funnel::WindowFunnel::new()),
        AggregateUDF::from(window_funnel_events::WindowFunnelEvents::new()),
        AggregateUDF::from(nps::Nps::new()),
        AggregateUDF::from(ces::Ces::new()),
        AggregateUDF::from(k_factor::KFactor::new()),
        AggregateUDF::from(sequence_match_events::SequenceMatchEvents::new()),
        AggregateUDF::from(sequence_next_node::SequenceNextNode::new()),
        AggregateUDF::from(actor_sessions::ActorSessions::new()),
        AggregateUDF::from(actor_id_sessions::ActorIdSessions::new()),
        AggregateUDF::from(actor_id_funnel::ActorIdFunnel::new()),
        AggregateUDF::from(actor_id_window_funnel::ActorIdWindowFunnel::new()),
    ]
}

fn window_functions() -> Vec<WindowUDF> {
    vec![WindowUDF::from(sessionize::Sessionize::new())]
}

/// The metric table functions, planned by [`MetricTablePlanner`].
fn metric_table_functions() -> Vec<Arc<dyn MetricTableFunction>> {
    vec![
        Arc::new(active_users::ActiveUsers),
        Arc::new(churn_risk::ChurnRisk),
        Arc::new(cohort_retention::CohortRetention),
        Arc::new(feature_adoption::FeatureAdoption),
        Arc::new(funnel::Funnel),
        Arc::new(lifecycle::Lifecycle),
        Arc::new(revenue_churn::RevenueChurn),
        Arc::new(sessions::Sessions),
        Arc::new(usage_frequency::UsageFrequency),
    ]
}

/// DataFusion's physical optimizer rules, then this crate's (a filter by a list of strings run as
/// `step_number`, see string_in_list.rs), for `SessionStateBuilder::with_physical_optimizer_rules`.
pub fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    rules.push(Arc::new(string_in_list::StringInListAsStepNumber));
    rules
}

/// Registers the `usagelake.*` session settings, every metric function and the optimizer rule of
/// `window_funnel` over integer actors into `ctx`. A context's physical optimizer rules are fixed
/// when it is built, so those of this crate come from [`physical_optimizer_rules`] instead.
///
/// Settings already present (for example set from the command line before this call) are kept.
pub fn register_all(ctx: &SessionContext) -> Result<()> {
    {
        // Scoped: registering functions below takes the same lock.
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        if options.extensions.get::<UsagelakeOptions>().is_none() {
            options.extensions.insert(UsagelakeOptions::default());
        }
    }
    let scalars = scalar_functions();
    let aggregates = aggregate_functions();
    let windows = window_functions();
    let mut tables = metric_table_functions();
    let listing = UsagelakeFunctions::new(&scalars, &aggregates, &windows, &tables);
    tables.push(Arc::new(listing));
    for function in scalars {
        ctx.register_udf(function);
    }
    for function in aggregates {
        ctx.register_udaf(function);
    }
    for function in windows {
        ctx.register_udwf(function);
    }
    let catalogs = Arc::clone(ctx.state_ref().read().catalog_list());
    ctx.register_relation_planner(Arc::new(MetricTablePlanner::new(tables, catalogs)))?;
    ctx.add_optimizer_rule(Arc::new(window_funnel_blocks::WindowFunnelByIdBlocks));
    Ok(())
}
