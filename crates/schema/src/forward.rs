//! Reading documents written by a newer gradient.
//!
//! A newer gradient may add a tier or a shared input. `Tier` and `Input` are gradient-core's
//! closed enums, used everywhere a tier is decided on, so they get no `Unknown` variant;
//! instead a list of records reads through [`known_tiers`] or [`known_inputs`], which leave
//! out each record whose kind this version cannot name. The rest of the document reads as
//! usual, and a record with a known kind that is malformed still fails.

use gradient_core::{Input, Tier};
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

/// The records of a list whose `tier` names a tier this gradient knows.
pub fn known_tiers<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    records_of_known_kind::<D, T, Tier>(deserializer, "tier")
}

/// The records of a list whose `input` names a shared input this gradient knows.
pub fn known_inputs<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    records_of_known_kind::<D, T, Input>(deserializer, "input")
}

/// Read each record of a list unless its `field` holds a value `Kind` does not know.
fn records_of_known_kind<'de, D, T, Kind>(deserializer: D, field: &str) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
    Kind: DeserializeOwned,
{
    Vec::<Value>::deserialize(deserializer)?
        .into_iter()
        .filter(|record| is_known::<Kind>(record.get(field)))
        .map(|record| serde_json::from_value(record).map_err(D::Error::custom))
        .collect()
}

/// Whether `kind` is a name `Kind` reads; a missing or non-text kind counts as known, so
/// that reading the record reports what is wrong with it.
fn is_known<Kind: DeserializeOwned>(kind: Option<&Value>) -> bool {
    match kind {
        Some(Value::String(name)) => {
            serde_json::from_value::<Kind>(Value::String(name.clone())).is_ok()
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Record {
        tier: Tier,
    }

    #[derive(Debug, Deserialize)]
    struct List {
        #[serde(deserialize_with = "known_tiers")]
        records: Vec<Record>,
    }

    #[test]
    fn a_record_of_an_unknown_tier_is_left_out() {
        let list: List = serde_json::from_str(
            r#"{"records": [{"tier": "wheel"}, {"tier": "flatpak"}, {"tier": "deb"}]}"#,
        )
        .unwrap();
        assert_eq!(
            list.records,
            [Record { tier: Tier::Wheel }, Record { tier: Tier::Deb }]
        );
    }

    #[test]
    fn a_malformed_record_of_a_known_tier_still_fails() {
        let error = serde_json::from_str::<List>(r#"{"records": [{"tier": 7}]}"#).unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }
}
