//! The fixed vocabularies of the sample lake: plans, segments, countries, devices, event names,
//! customer-success managers and features, each with the weights that shape the data.
//!
//! Rows carry small integer codes while they are generated; the strings live only here and are
//! copied once into the Arrow string columns, so no row ever allocates a String.

/// Plans, cheapest first; `FREE` accounts never pay.
pub(crate) const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
pub(crate) const FREE: u8 = 0;
pub(crate) const STARTER: u8 = 1;
pub(crate) const PRO: u8 = 2;
pub(crate) const ENTERPRISE: u8 = 3;
/// How many accounts sign up for each plan.
pub(crate) const PLAN_WEIGHTS: [u32; 4] = [50, 28, 16, 6];

pub(crate) const SEGMENTS: [&str; 3] = ["smb", "mid_market", "enterprise"];
pub(crate) const SMB: u8 = 0;
pub(crate) const MID_MARKET: u8 = 1;
pub(crate) const ENTERPRISE_SEGMENT: u8 = 2;

/// ISO 3166-1 alpha-2 codes, weighted like a US-led B2B product's customer base.
pub(crate) const COUNTRIES: [&str; 12] = [
    "US", "GB", "DE", "IN", "FR", "CA", "BR", "AU", "JP", "NL", "ES", "SE",
];
pub(crate) const COUNTRY_WEIGHTS: [u32; 12] = [32, 10, 9, 8, 7, 6, 6, 5, 5, 4, 4, 4];

pub(crate) const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
pub(crate) const DEVICE_WEIGHTS: [u32; 3] = [62, 30, 8];

/// Customer-success managers, assigned to bigger accounts.
pub(crate) const CSMS: [&str; 6] = [
    "Alice Moreau",
    "Bilal Khan",
    "Chen Wei",
    "Dana Kowalski",
    "Emeka Obi",
    "Freya Lindqvist",
];

/// Event names; the adoption stages follow `PURCHASE - 4 ..= PURCHASE` in funnel order.
pub(crate) const EVENTS: [&str; 12] = [
    "signup",
    "login",
    "page_view",
    "feature_use",
    "invite",
    "export",
    "logout",
    "feature_announcement_view",
    "feature_page_view",
    "pricing_view",
    "trial_start",
    "purchase",
];
pub(crate) const SIGNUP: u8 = 0;
pub(crate) const LOGIN: u8 = 1;
pub(crate) const PAGE_VIEW: u8 = 2;
pub(crate) const FEATURE_USE: u8 = 3;
pub(crate) const INVITE: u8 = 4;
pub(crate) const EXPORT: u8 = 5;
pub(crate) const LOGOUT: u8 = 6;
/// The first adoption stage (awareness); stage `k` (0-based) is event `FIRST_STAGE + k`.
pub(crate) const FIRST_STAGE: u8 = 7;
/// awareness → interest → evaluation → trial → adoption.
pub(crate) const ADOPTION_STAGES: u8 = 5;
/// The stage from which a user tries the feature and so starts using it.
pub(crate) const TRIAL_STAGE: u8 = 4;

/// When a feature was released, relative to the generated range.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Release {
    /// This many days before the range starts.
    DaysBeforeStart(u32),
    /// At this fraction of the range (0.5 = its middle): these features get an adoption funnel.
    FractionOfRange(f64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureSpec {
    pub(crate) name: &'static str,
    pub(crate) release: Release,
    /// How often the feature is picked by a `feature_use`, relative to the others released.
    pub(crate) popularity: u32,
}

pub(crate) const FEATURES: [FeatureSpec; 8] = [
    FeatureSpec {
        name: "dashboards",
        release: Release::DaysBeforeStart(420),
        popularity: 30,
    },
    FeatureSpec {
        name: "reports",
        release: Release::DaysBeforeStart(300),
        popularity: 24,
    },
    FeatureSpec {
        name: "alerts",
        release: Release::DaysBeforeStart(160),
        popularity: 14,
    },
    FeatureSpec {
        name: "integrations",
        release: Release::DaysBeforeStart(70),
        popularity: 12,
    },
    FeatureSpec {
        name: "sql_editor",
        release: Release::DaysBeforeStart(20),
        popularity: 10,
    },
    FeatureSpec {
        name: "ai_assistant",
        release: Release::FractionOfRange(0.25),
        popularity: 14,
    },
    FeatureSpec {
        name: "workflows",
        release: Release::FractionOfRange(0.50),
        popularity: 12,
    },
    FeatureSpec {
        name: "anomaly_detection",
        release: Release::FractionOfRange(0.75),
        popularity: 10,
    },
];
/// Code for "no feature" in an event row.
pub(crate) const NO_FEATURE: u8 = u8::MAX;

/// Share of session starts in each UTC hour: a working-day curve with an evening tail.
pub(crate) const HOUR_WEIGHTS: [u32; 24] = [
    2, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 11, 10, 11, 12, 12, 11, 9, 7, 6, 5, 4, 3, 3,
];
