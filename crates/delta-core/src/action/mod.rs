//! The protocol vocabulary: actions as plain data plus their JSON codec.
//!
//! Every action of the Delta protocol ("Actions" section) is a struct here with serde
//! derives that match the log's camelCase JSON. Readers must ignore unknown actions and
//! unknown fields and accept `null` for optional fields, so every optional field is an
//! `Option` and unknown top-level keys parse to [`Action::Unknown`]. No I/O happens here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::deletion_vector::DeletionVectorDescriptor;
use crate::{Error, Result, Version};

/// A map from string to optional string, as `partitionValues` (values may be JSON `null`).
pub type PartitionValues = HashMap<String, Option<String>>;

/// Deserialize a possibly-null map into an empty map when null.
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `protocol`: the reader and writer versions and features a client must support.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    /// Minimum reader protocol version (1, 2 or 3).
    pub min_reader_version: i32,
    /// Minimum writer protocol version (1 to 7).
    pub min_writer_version: i32,
    /// Reader features; present when the reader version is 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_features: Option<Vec<String>>,
    /// Writer features; present when the writer version is 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_features: Option<Vec<String>>,
}

/// `metaData.format`: the data file format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    /// Always `parquet`.
    pub provider: String,
    /// Format options (unused by parquet).
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: HashMap<String, Option<String>>,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            provider: "parquet".to_owned(),
            options: HashMap::new(),
        }
    }
}

/// `metaData`: the table's identity, schema, partitioning and properties.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Unique table id (a GUID).
    pub id: String,
    /// User-facing name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// User-facing description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Data file format.
    #[serde(default)]
    pub format: Format,
    /// The schema as Spark struct JSON (empty when a writer omitted it, as Delta Live
    /// Tables does for a table that has no schema yet).
    #[serde(default)]
    pub schema_string: String,
    /// Logical names of the partition columns.
    #[serde(default, deserialize_with = "null_as_default")]
    pub partition_columns: Vec<String>,
    /// Creation time in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
    /// Table properties (`delta.*` and user keys).
    #[serde(default, deserialize_with = "null_as_default")]
    pub configuration: HashMap<String, Option<String>>,
}

impl Metadata {
    /// The value of table property `key`, if set and not null.
    #[must_use]
    pub fn property(&self, key: &str) -> Option<&str> {
        self.configuration.get(key).and_then(Option::as_deref)
    }
}

/// `add`: a data file that becomes part of the table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// URI-encoded path, relative to the table root or absolute.
    pub path: String,
    /// Partition values keyed by physical column name; `null` is SQL NULL.
    #[serde(default, deserialize_with = "null_as_default")]
    pub partition_values: PartitionValues,
    /// File size in bytes.
    pub size: i64,
    /// Modification time in milliseconds since the epoch.
    pub modification_time: i64,
    /// `false` when the file only rearranges existing data.
    pub data_change: bool,
    /// Per-file statistics as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
    /// The deletion vector that hides some of the file's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    /// Row tracking: the first row id of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_id: Option<i64>,
    /// Row tracking: the commit version rows of this file default to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_row_commit_version: Option<i64>,
    /// Clustering provider of clustered tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clustering_provider: Option<String>,
}

impl Add {
    /// The file's physical row count, from its statistics (`None` without `numRecords`).
    #[must_use]
    pub fn num_records(&self) -> Option<u64> {
        self.stats
            .as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v.get("numRecords").and_then(serde_json::Value::as_u64))
    }

    /// The rows a reader sees: [`Add::num_records`] minus the rows the deletion vector
    /// hides (`None` without `numRecords`).
    #[must_use]
    pub fn logical_rows(&self) -> Option<u64> {
        let hidden = self
            .deletion_vector
            .as_ref()
            .and_then(|d| u64::try_from(d.cardinality).ok())
            .unwrap_or(0);
        self.num_records().map(|n| n.saturating_sub(hidden))
    }
}

/// `remove`: a logical file that leaves the table (a tombstone).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    /// URI-encoded path, relative to the table root or absolute.
    pub path: String,
    /// When the file was removed, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    /// `false` when the removal only rearranges existing data.
    #[serde(default)]
    pub data_change: bool,
    /// When `true`, `partitionValues` and `size` are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    /// Partition values of the removed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<PartitionValues>,
    /// Size in bytes of the removed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Statistics of the removed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
    /// The deletion vector of the removed logical file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    /// Row tracking: the first row id of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_id: Option<i64>,
    /// Row tracking: default commit version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_row_commit_version: Option<i64>,
}

/// `cdc`: a change data file written by an operation (never part of the table state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cdc {
    /// URI-encoded path relative to the table root.
    pub path: String,
    /// Partition values of the change rows.
    #[serde(default, deserialize_with = "null_as_default")]
    pub partition_values: PartitionValues,
    /// Size in bytes.
    pub size: i64,
    /// Always `false`.
    #[serde(default)]
    pub data_change: bool,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
}

/// `txn`: the latest version an application committed (idempotent writes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    /// Application id.
    pub app_id: String,
    /// The application's own version number.
    pub version: i64,
    /// When it was recorded, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
}

/// `domainMetadata`: configuration of a named metadata domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainMetadata {
    /// Domain name; `delta.*` domains are system-controlled.
    pub domain: String,
    /// The domain's configuration (usually JSON).
    pub configuration: String,
    /// `true` is a tombstone for the domain.
    #[serde(default)]
    pub removed: bool,
}

/// `sidecar`: a file of a V2 checkpoint holding file actions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// URI-encoded path, usually a bare name under `_delta_log/_sidecars/`.
    pub path: String,
    /// Size in bytes.
    pub size_in_bytes: i64,
    /// Modification time in milliseconds since the epoch.
    pub modification_time: i64,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
}

/// `checkpointMetadata`: the header of a V2 checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointMetadata {
    /// The checkpoint's version.
    pub version: i64,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
}

/// `commitInfo`: free-form provenance of a commit. Kept as JSON because writers put
/// arbitrary types in it; accessors read the well-known keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommitInfo(pub serde_json::Map<String, serde_json::Value>);

impl CommitInfo {
    /// `timestamp` in milliseconds since the epoch.
    #[must_use]
    pub fn timestamp(&self) -> Option<i64> {
        self.0.get("timestamp").and_then(serde_json::Value::as_i64)
    }

    /// `inCommitTimestamp` in milliseconds since the epoch (In-Commit Timestamps feature).
    #[must_use]
    pub fn in_commit_timestamp(&self) -> Option<i64> {
        self.0
            .get("inCommitTimestamp")
            .and_then(serde_json::Value::as_i64)
    }

    /// `operation`, such as `WRITE` or `DELETE`.
    #[must_use]
    pub fn operation(&self) -> Option<&str> {
        self.0.get("operation").and_then(serde_json::Value::as_str)
    }
}

/// One action of the Delta log.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `protocol`.
    Protocol(Protocol),
    /// `metaData`.
    Metadata(Metadata),
    /// `add`.
    Add(Add),
    /// `remove`.
    Remove(Remove),
    /// `cdc`.
    Cdc(Cdc),
    /// `txn`.
    Txn(Txn),
    /// `commitInfo`.
    CommitInfo(CommitInfo),
    /// `domainMetadata`.
    DomainMetadata(DomainMetadata),
    /// `sidecar` (V2 checkpoints only).
    Sidecar(Sidecar),
    /// `checkpointMetadata` (V2 checkpoints only).
    CheckpointMetadata(CheckpointMetadata),
    /// An action this crate does not know; readers ignore it.
    Unknown(String),
}

impl Action {
    /// The action's key in the log (`add`, `metaData`, ...).
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Protocol(_) => "protocol",
            Self::Metadata(_) => "metaData",
            Self::Add(_) => "add",
            Self::Remove(_) => "remove",
            Self::Cdc(_) => "cdc",
            Self::Txn(_) => "txn",
            Self::CommitInfo(_) => "commitInfo",
            Self::DomainMetadata(_) => "domainMetadata",
            Self::Sidecar(_) => "sidecar",
            Self::CheckpointMetadata(_) => "checkpointMetadata",
            Self::Unknown(name) => name,
        }
    }

    /// Parse the actions of one log line `{"<name>": {...}}`.
    ///
    /// A line normally holds one action. Keys the protocol does not know are ignored
    /// (writers may add new actions, even beside a known one on the same line).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `path` and `line` when the value is not an object or a known
    /// action's fields do not match the protocol.
    pub fn from_json_line(value: serde_json::Value, path: &str, line: usize) -> Result<Vec<Self>> {
        let serde_json::Value::Object(map) = value else {
            return Err(Error::corrupt(
                path,
                format!("line {line}: an action must be a JSON object"),
            ));
        };
        let mut actions = Vec::with_capacity(1);
        for (name, body) in map {
            if body.is_null() {
                continue;
            }
            actions.push(Self::from_name_and_body(name, body, path, line)?);
        }
        Ok(actions)
    }

    /// Parse one action from its JSON value `{"<name>": {...}}`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `path` and `line` when the value is not an object with
    /// exactly one key or a known action's fields do not match the protocol.
    pub fn from_json_value(value: serde_json::Value, path: &str, line: usize) -> Result<Self> {
        let serde_json::Value::Object(map) = value else {
            return Err(Error::corrupt(
                path,
                format!("line {line}: an action must be a JSON object"),
            ));
        };
        let mut entries = map.into_iter();
        let (Some((name, body)), None) = (entries.next(), entries.next()) else {
            return Err(Error::corrupt(
                path,
                format!("line {line}: an action must have exactly one key"),
            ));
        };
        Self::from_name_and_body(name, body, path, line)
    }

    fn from_name_and_body(
        name: String,
        body: serde_json::Value,
        path: &str,
        line: usize,
    ) -> Result<Self> {
        fn decode<T: serde::de::DeserializeOwned>(
            body: serde_json::Value,
            name: &str,
            path: &str,
            line: usize,
        ) -> Result<T> {
            serde_json::from_value(body).map_err(|e| {
                Error::corrupt(path, format!("line {line}: invalid `{name}` action: {e}"))
            })
        }
        let action = match name.as_str() {
            "protocol" => Self::Protocol(decode(body, &name, path, line)?),
            "metaData" => Self::Metadata(decode(body, &name, path, line)?),
            "add" => Self::Add(decode(body, &name, path, line)?),
            "remove" => Self::Remove(decode(body, &name, path, line)?),
            "cdc" => Self::Cdc(decode(body, &name, path, line)?),
            "txn" => Self::Txn(decode(body, &name, path, line)?),
            "commitInfo" => match body {
                serde_json::Value::Object(map) => Self::CommitInfo(CommitInfo(map)),
                _ => Self::CommitInfo(CommitInfo::default()),
            },
            "domainMetadata" => Self::DomainMetadata(decode(body, &name, path, line)?),
            "sidecar" => Self::Sidecar(decode(body, &name, path, line)?),
            "checkpointMetadata" => Self::CheckpointMetadata(decode(body, &name, path, line)?),
            _ => Self::Unknown(name),
        };
        Ok(action)
    }

    /// The action as its JSON value `{"<name>": {...}}`; `None` for unknown actions.
    #[must_use]
    pub fn to_json_value(&self) -> Option<serde_json::Value> {
        let body = match self {
            Self::Protocol(a) => serde_json::to_value(a),
            Self::Metadata(a) => serde_json::to_value(a),
            Self::Add(a) => serde_json::to_value(a),
            Self::Remove(a) => serde_json::to_value(a),
            Self::Cdc(a) => serde_json::to_value(a),
            Self::Txn(a) => serde_json::to_value(a),
            Self::CommitInfo(a) => serde_json::to_value(a),
            Self::DomainMetadata(a) => serde_json::to_value(a),
            Self::Sidecar(a) => serde_json::to_value(a),
            Self::CheckpointMetadata(a) => serde_json::to_value(a),
            Self::Unknown(_) => return None,
        }
        .ok()?;
        let mut map = serde_json::Map::new();
        map.insert(self.name().to_owned(), body);
        Some(serde_json::Value::Object(map))
    }
}

/// Parse a commit file (newline-delimited JSON, one action per line).
///
/// Blank lines are skipped. `path` is used only in error messages.
///
/// # Errors
/// [`Error::Corrupt`] naming the file and the 1-based line of the first bad action.
pub fn parse_commit(bytes: &[u8], path: &str) -> Result<Vec<Action>> {
    let mut actions = Vec::new();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(trimmed)
            .map_err(|e| Error::corrupt(path, format!("line {line_no}: not valid JSON ({e})")))?;
        actions.extend(Action::from_json_line(value, path, line_no)?);
    }
    Ok(actions)
}

/// Serialize actions as a commit file (one JSON object per line, trailing newline).
#[must_use]
pub fn format_commit(actions: &[Action]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in actions.iter().filter_map(Action::to_json_value) {
        out.extend_from_slice(value.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The commit-file version of an action list's `checkpointMetadata`, if it names one.
#[must_use]
pub fn checkpoint_version(actions: &[Action]) -> Option<Version> {
    actions.iter().find_map(|a| match a {
        Action::CheckpointMetadata(m) => u64::try_from(m.version).ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_actions_and_fields_are_ignored() {
        let log = br#"{"some_new_action":{"a":1}}
{"add":{"path":"a.parquet","partitionValues":{},"size":1,"modificationTime":2,"dataChange":true,"futureField":7}}
"#;
        let actions = parse_commit(log, "00.json").unwrap();
        assert_eq!(actions.len(), 2);
        assert!(matches!(&actions[0], Action::Unknown(n) if n == "some_new_action"));
        assert!(matches!(&actions[1], Action::Add(a) if a.path == "a.parquet"));
    }

    #[test]
    fn null_optional_fields_are_accepted() {
        let log = br#"{"add":{"path":"a","partitionValues":null,"size":1,"modificationTime":2,"dataChange":true,"stats":null,"tags":null,"deletionVector":null}}
{"metaData":{"id":"x","format":{"provider":"parquet","options":null},"schemaString":"{}","partitionColumns":[],"configuration":null,"createdTime":null}}"#;
        let actions = parse_commit(log, "0.json").unwrap();
        assert_eq!(actions.len(), 2);
    }

    #[test]
    fn truncated_line_names_file_and_line() {
        let log = b"{\"commitInfo\":{}}\n{\"add\":{\"path\":\"a\",\"size\"";
        let err = parse_commit(log, "_delta_log/00000000000000000003.json").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("00000000000000000003.json"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn missing_required_field_is_corrupt() {
        let log = br#"{"add":{"path":"a"}}"#;
        let err = parse_commit(log, "5.json").unwrap_err();
        assert!(err.to_string().contains("invalid `add` action"));
    }

    fn opt_map() -> impl Strategy<Value = Option<HashMap<String, Option<String>>>> {
        proptest::option::of(proptest::collection::hash_map(
            "[a-z]{1,5}",
            proptest::option::of("[ -~]{0,8}"),
            0..3,
        ))
    }

    fn any_action() -> impl Strategy<Value = Action> {
        let add = (
            "[a-zA-Z0-9/=%._ -]{1,30}",
            proptest::collection::hash_map("[a-z]{1,4}", proptest::option::of("[ -~]{0,6}"), 0..3),
            0i64..1 << 40,
            any::<i64>(),
            any::<bool>(),
            proptest::option::of("\\{\"numRecords\":[0-9]{1,4}\\}"),
            opt_map(),
        )
            .prop_map(|(path, pv, size, mt, dc, stats, tags)| {
                Action::Add(Add {
                    path,
                    partition_values: pv,
                    size,
                    modification_time: mt,
                    data_change: dc,
                    stats,
                    tags,
                    ..Add::default()
                })
            });
        let remove = (
            "[a-z0-9/._-]{1,20}",
            proptest::option::of(any::<i64>()),
            any::<bool>(),
            proptest::option::of(0i64..1000),
        )
            .prop_map(|(path, ts, dc, size)| {
                Action::Remove(Remove {
                    path,
                    deletion_timestamp: ts,
                    data_change: dc,
                    size,
                    ..Remove::default()
                })
            });
        let protocol = (
            1i32..4,
            1i32..8,
            proptest::option::of(proptest::collection::vec("[a-zA-Z]{1,10}", 0..3)),
        )
            .prop_map(|(r, w, f)| {
                Action::Protocol(Protocol {
                    min_reader_version: r,
                    min_writer_version: w,
                    reader_features: f.clone(),
                    writer_features: f,
                })
            });
        let txn = (
            "[a-z0-9-]{1,12}",
            any::<i64>(),
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(app_id, version, last_updated)| {
                Action::Txn(Txn {
                    app_id,
                    version,
                    last_updated,
                })
            });
        let domain = ("[a-z.]{1,12}", "[ -~]{0,20}", any::<bool>()).prop_map(|(d, c, r)| {
            Action::DomainMetadata(DomainMetadata {
                domain: d,
                configuration: c,
                removed: r,
            })
        });
        let metadata = (
            "[a-f0-9-]{8,36}",
            proptest::option::of("[ -~]{0,10}"),
            proptest::collection::vec("[a-z]{1,5}", 0..3),
            proptest::collection::hash_map(
                "[a-z.]{1,10}",
                proptest::option::of("[ -~]{0,6}"),
                0..3,
            ),
        )
            .prop_map(|(id, description, partition_columns, configuration)| {
                Action::Metadata(Metadata {
                    id,
                    description,
                    schema_string: r#"{"type":"struct","fields":[]}"#.to_owned(),
                    partition_columns,
                    configuration,
                    ..Metadata::default()
                })
            });
        prop_oneof![add, remove, protocol, txn, domain, metadata]
    }

    proptest! {
        #[test]
        fn action_json_round_trips(actions in proptest::collection::vec(any_action(), 0..8)) {
            let bytes = format_commit(&actions);
            let parsed = parse_commit(&bytes, "x.json").unwrap();
            prop_assert_eq!(parsed, actions);
        }
    }
}
