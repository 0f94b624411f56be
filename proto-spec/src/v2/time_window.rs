//! Time windows used by filters (`when`) and checks (`subdue`, `subdues`).

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;
use crate::validate::{ValidationError, parse_kitchen, parse_rfc3339};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowWhen {
    #[serde(deserialize_with = "null_as_default")]
    pub days: TimeWindowDays,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowDays {
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub all: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub sunday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub monday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub tuesday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub wednesday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub thursday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub friday: Vec<TimeWindowTimeRange>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub saturday: Vec<TimeWindowTimeRange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowTimeRange {
    #[serde(deserialize_with = "null_as_default")]
    pub begin: String,
    #[serde(deserialize_with = "null_as_default")]
    pub end: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeWindowRepeated {
    #[serde(deserialize_with = "null_as_default")]
    pub begin: String,
    #[serde(deserialize_with = "null_as_default")]
    pub end: String,
    pub repeat: Option<Vec<String>>,
}

/// `repeat` values of a repeated time window.
pub const REPEAT_VALUES: &[&str] = &[
    "annually",
    "monthly",
    "weekly",
    "weekdays",
    "weekends",
    "daily",
    "sundays",
    "mondays",
    "tuesdays",
    "wednesdays",
    "thursdays",
    "fridays",
    "saturdays",
];

impl TimeWindowWhen {
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.days.validate().map_err(|e| e.within("days"))
    }
}

impl TimeWindowDays {
    /// Each day's windows, keyed as on the wire.
    pub fn by_day(&self) -> [(&'static str, &[TimeWindowTimeRange]); 8] {
        [
            ("all", &self.all),
            ("sunday", &self.sunday),
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
        ]
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        for (day, ranges) in self.by_day() {
            for (i, r) in ranges.iter().enumerate() {
                r.validate().map_err(|e| e.within(&format!("{day}[{i}]")))?;
            }
        }
        Ok(())
    }
}

impl TimeWindowTimeRange {
    /// `begin` and `end` are Go kitchen times (`3:04PM`); an end before the begin is a
    /// window across midnight, so any pair of valid times is valid.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, v) in [("begin", &self.begin), ("end", &self.end)] {
            if parse_kitchen(v).is_none() {
                return Err(ValidationError::new(
                    field,
                    format!("{v:?} is not a time such as 3:04PM"),
                ));
            }
        }
        Ok(())
    }
}

impl TimeWindowRepeated {
    pub fn repeat(&self) -> &[String] {
        self.repeat.as_deref().unwrap_or_default()
    }

    /// `begin` and `end` are RFC 3339 timestamps, `end` after `begin`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let parse = |field: &str, v: &str| {
            parse_rfc3339(v).ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!("{v:?} is not an RFC 3339 time such as 2006-01-02T15:04:05Z"),
                )
            })
        };
        let begin = parse("begin", &self.begin)?;
        let end = parse("end", &self.end)?;
        if end <= begin {
            return Err(ValidationError::new("end", "end must be after begin"));
        }
        for (i, r) in self.repeat().iter().enumerate() {
            if !REPEAT_VALUES.contains(&r.as_str()) {
                return Err(ValidationError::new(
                    format!("repeat[{i}]"),
                    format!("{r:?} is invalid; use one of {}", REPEAT_VALUES.join(", ")),
                ));
            }
        }
        Ok(())
    }
}
