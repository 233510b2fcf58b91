//! Raw serde shapes of the policy file: exactly what TOML says, with spans, before validation.
//!
//! Nothing here is checked beyond TOML types; `validate` turns these into `model` types. Every
//! struct denies unknown fields, and [`fields_of`] reads the same field lists so the key pre-pass
//! (which reports every unknown key, not just the first) cannot drift from these types.
//!
//! Required keys are `Option`s too (marked "required" below): serde would stop an entry at its
//! first missing key, while validation reports every missing key of an entry along with the errors
//! in the keys that are present.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// Keys allowed at the top level of any policy file.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "include",
    "agent",
    "flexclone",
    "cluster",
    "schedule",
    "snapshot_policy",
    "volume",
    "window",
    "veeam",
    "ha",
];

/// Top-level keys that only the main policy file may hold.
pub const MAIN_FILE_ONLY: &[&str] = &["agent", "flexclone", "ha"];

/// `[agent]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub listen: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub snapshot_prefix: Option<Spanned<String>>,
    pub guard: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<i64>>,
    pub shutdown_timeout: Option<Spanned<String>>,
    pub observe_interval: Option<Spanned<String>>,
    pub audit_interval: Option<Spanned<String>>,
    pub foreign_snapshot_patterns: Option<Spanned<Vec<Spanned<String>>>>,
    pub token_file: Option<Spanned<String>>,
    pub listen_without_token: Option<Spanned<bool>>,
}

/// `[flexclone]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlexClone {
    pub recommend_after: Option<Spanned<i64>>,
    pub within: Option<Spanned<String>>,
    pub use_when_licensed: Option<bool>,
}

/// `[ha]`: leader election between replicas.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    /// Required.
    pub backend: Option<Spanned<String>>,
    /// Required.
    pub endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    pub lease_ttl: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub identity: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub pin_sha256: Option<Spanned<String>>,
    pub insecure: Option<Spanned<bool>>,
}

/// One `[[cluster]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// Required.
    pub name: Option<Spanned<String>>,
    /// Required.
    pub endpoint: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub pin_sha256: Option<Spanned<String>>,
    pub insecure: Option<Spanned<bool>>,
    pub timezone: Option<Spanned<String>>,
    pub simulator: Option<Spanned<RawSimulator>>,
}

/// `simulator = { … }` inside a `[[cluster]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    pub version: Option<Spanned<String>>,
    pub licenses: Option<Vec<Spanned<String>>>,
}

/// One `[[schedule]]`: exactly one of `cron` and `interval` (checked in validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// Required.
    pub name: Option<Spanned<String>>,
    pub cron: Option<Spanned<RawCron>>,
    pub interval: Option<Spanned<String>>,
    pub anchor: Option<Spanned<String>>,
}

/// `cron = "5 * * * *"` or `cron = { minutes = [5], … }`.
#[derive(Debug)]
pub enum RawCron {
    Expr(String),
    Lists(RawCronLists),
}

/// ONTAP's list form of a cron schedule; an omitted or empty list means every value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCronLists {
    pub minutes: Option<Spanned<Vec<u32>>>,
    pub hours: Option<Spanned<Vec<u32>>>,
    pub days: Option<Spanned<Vec<u32>>>,
    pub weekdays: Option<Spanned<Vec<u32>>>,
    pub months: Option<Spanned<Vec<u32>>>,
}

impl<'de> Deserialize<'de> for RawCron {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CronVisitor;
        impl<'de> Visitor<'de> for CronVisitor {
            type Value = RawCron;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 5-field cron string or a table of ONTAP cron lists")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCron, E> {
                Ok(RawCron::Expr(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawCron, A::Error> {
                RawCronLists::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawCron::Lists)
            }
        }
        deserializer.deserialize_any(CronVisitor)
    }
}

/// One `[[snapshot_policy]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshotPolicy {
    /// Required.
    pub name: Option<Spanned<String>>,
    /// Required; may be empty (ONTAP takes nothing, like its built-in `none`).
    pub copies: Option<Spanned<Vec<Spanned<RawCopies>>>>,
    /// How long a managed snapshot of this policy may wait for a live clone.
    pub max_defer: Option<Spanned<String>>,
}

/// One entry of `copies`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCopies {
    /// Required.
    pub schedule: Option<Spanned<String>>,
    /// Required.
    pub count: Option<Spanned<i64>>,
    pub prefix: Option<Spanned<String>>,
    pub snapmirror_label: Option<Spanned<String>>,
}

/// One `[[volume]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVolume {
    /// Required.
    pub cluster: Option<Spanned<String>>,
    /// Required.
    pub svm: Option<Spanned<String>>,
    /// Required.
    pub name: Option<Spanned<String>>,
    /// Required.
    pub luns: Option<Spanned<Vec<Spanned<String>>>>,
    /// Required.
    pub snapshot_policy: Option<Spanned<String>>,
    /// A `[[snapshot_policy]]` whose copies snapwarden takes itself.
    pub managed_snapshots: Option<Spanned<String>>,
    pub clone: Option<Spanned<String>>,
}

/// One `[[window]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Required.
    pub name: Option<Spanned<String>>,
    /// Required.
    pub volumes: Option<Spanned<Vec<Spanned<String>>>>,
    /// Required.
    pub start: Option<Spanned<String>>,
    /// Required.
    pub timezone: Option<Spanned<String>>,
    /// Required.
    pub expected: Option<Spanned<String>>,
    /// Required.
    pub max: Option<Spanned<String>>,
    pub on_conflict: Option<Spanned<String>>,
    pub on_overrun: Option<Spanned<String>>,
    pub shift_limit: Option<Spanned<String>>,
    pub hook: Option<Spanned<RawHook>>,
    /// `snapwarden` (default), `veeam` or `hook`: who makes the backing snapshot.
    pub driver: Option<Spanned<String>>,
    /// Required exactly with `driver = "veeam"`.
    pub veeam: Option<Spanned<RawWindowVeeam>>,
}

/// `veeam = { … }` inside a `[[window]]`: the Veeam job the window starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindowVeeam {
    /// Required: a `[[veeam]]` name.
    pub server: Option<Spanned<String>>,
    /// Required: the job's name or id on that server.
    pub job: Option<Spanned<String>>,
}

/// One `[[veeam]]`: a Veeam Backup & Replication server's REST API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVeeam {
    /// Required.
    pub name: Option<Spanned<String>>,
    /// Required.
    pub url: Option<Spanned<String>>,
    /// Required.
    pub username: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub pin_sha256: Option<Spanned<String>>,
    pub insecure: Option<Spanned<bool>>,
    pub api_version: Option<Spanned<String>>,
}

/// `hook = { … }` inside a `[[window]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    /// Exactly one of `command` and `url`.
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub url: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

/// The field names serde accepts for struct `T`, in declaration order.
///
/// Works by asking `T` to deserialize from a probe that records the `fields` argument of
/// `deserialize_struct` and then fails; panics if `T` is not a derived struct (a programming error).
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields.expect("fields_of is only used with derived structs")
}

struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe: not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("field probe: fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_reads_declaration_order() {
        assert_eq!(
            fields_of::<RawHook>(),
            &["command", "url", "timeout"] as &[&str]
        );
        assert_eq!(fields_of::<RawCluster>()[0], "name");
    }

    #[test]
    fn cron_takes_a_string_or_lists() {
        #[derive(Deserialize)]
        struct Doc {
            a: RawCron,
            b: RawCron,
        }
        let doc: Doc = toml::from_str("a = \"5 * * * *\"\nb = { minutes = [15], hours = [0] }")
            .expect("valid");
        assert!(matches!(doc.a, RawCron::Expr(ref s) if s == "5 * * * *"));
        let RawCron::Lists(lists) = doc.b else {
            panic!("expected lists")
        };
        assert_eq!(lists.minutes.map(|m| m.into_inner()), Some(vec![15]));
        assert!(lists.days.is_none());
    }
}
