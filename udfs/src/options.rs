//! The `usagelake.*` session settings: the default time zone and first day of the week of the metric
//! functions.
//!
//! They live in DataFusion's configuration (a [`ConfigExtension`]) rather than in our own state so
//! that `SET usagelake.tz = 'Europe/Istanbul'` and `SHOW usagelake.tz` work in every front end, and so
//! that a distributed plan carries them to its executors. Values are checked when set: a misspelt
//! zone fails at the `SET`, not later inside a query.

use std::any::Any;
use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

/// First day of a calendar week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeekStart {
    #[default]
    Monday,
    Sunday,
}

impl FromStr for WeekStart {
    type Err = DataFusionError;

    fn from_str(value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "monday" => Ok(Self::Monday),
            "sunday" => Ok(Self::Sunday),
            _ => Err(DataFusionError::Configuration(format!(
                "week start '{value}' is not valid: use 'monday' or 'sunday'"
            ))),
        }
    }
}

impl fmt::Display for WeekStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Monday => "monday",
            Self::Sunday => "sunday",
        })
    }
}

/// Session settings under the `usagelake.` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagelakeOptions {
    /// Default time zone of the metric functions (`usagelake.tz`).
    pub tz: Tz,
    /// Default first day of the week (`usagelake.week_start`).
    pub week_start: WeekStart,
}

impl Default for UsagelakeOptions {
    fn default() -> Self {
        Self {
            tz: Tz::UTC,
            week_start: WeekStart::Monday,
        }
    }
}

/// Parses an IANA time zone name, with an error that says how to find a valid one.
pub(crate) fn parse_tz(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        DataFusionError::Configuration(format!(
            "time zone '{name}' is not an IANA zone name: use a name such as 'UTC', \
             'Europe/Istanbul' or 'America/Los_Angeles'"
        ))
    })
}

impl ConfigExtension for UsagelakeOptions {
    const PREFIX: &'static str = "usagelake";
}

impl ExtensionOptions for UsagelakeOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "tz" => self.tz = parse_tz(value)?,
            "week_start" => self.week_start = value.parse()?,
            _ => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown setting 'usagelake.{key}': the settings are usagelake.tz and \
                     usagelake.week_start"
                )));
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: "usagelake.tz".to_string(),
                value: Some(self.tz.name().to_string()),
                description: "Default IANA time zone of the metric functions' periods",
            },
            ConfigEntry {
                key: "usagelake.week_start".to_string(),
                value: Some(self.week_start.to_string()),
                description: "First day of a week for the metric functions: monday or sunday",
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_accepts_iana_zones_and_week_starts() {
        let mut options = UsagelakeOptions::default();
        options.set("tz", "Europe/Istanbul").unwrap();
        options.set("week_start", "Sunday").unwrap();
        assert_eq!(options.tz, Tz::Europe__Istanbul);
        assert_eq!(options.week_start, WeekStart::Sunday);
    }

    #[test]
    fn set_rejects_unknown_zone_and_names_it() {
        let mut options = UsagelakeOptions::default();
        let error = options.set("tz", "Mars/Olympus").unwrap_err().to_string();
        assert!(error.contains("'Mars/Olympus'"), "{error}");
        assert_eq!(options.tz, Tz::UTC);
    }

    #[test]
    fn set_rejects_unknown_key_and_lists_valid_ones() {
        let mut options = UsagelakeOptions::default();
        let error = options.set("timezone", "UTC").unwrap_err().to_string();
        assert!(
            error.contains("usagelake.tz and usagelake.week_start"),
            "{error}"
        );
    }
}
