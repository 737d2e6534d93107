//! Names of the files in `_delta_log` (protocol "Delta Log Entries" and "Checkpoints").
//!
//! Pure parsing and formatting: `00000000000000000042.json` is commit 42, versions are
//! zero-padded to 20 digits, multi-part checkpoint part numbers to 10. Anything else in
//! the folder (`.crc` side files of Hadoop, `.tmp/`, `_last_checkpoint`) is `Other` or a
//! named variant that replay ignores.

use crate::Version;

/// The kind of a checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckpointKind {
    /// `<v>.checkpoint.parquet`.
    Classic,
    /// `<v>.checkpoint.<part>.<parts>.parquet`, 1-based part.
    MultiPart {
        /// This file's part number (1-based).
        part: u32,
        /// The number of parts.
        parts: u32,
    },
    /// `<v>.checkpoint.<uuid>.json|parquet` (V2).
    Uuid {
        /// The UUID-ish unique part of the name.
        uuid: String,
        /// `true` for `.json`, `false` for `.parquet`.
        is_json: bool,
    },
}

/// A parsed `_delta_log` file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogPath {
    /// A commit: `<v>.json`.
    Commit(Version),
    /// A checkpoint file.
    Checkpoint {
        /// The version it summarises.
        version: Version,
        /// Which naming scheme.
        kind: CheckpointKind,
    },
    /// A log compaction `<x>.<y>.compacted.json`.
    Compaction {
        /// First version included.
        start: Version,
        /// Last version included.
        end: Version,
    },
    /// A version checksum `<v>.crc`.
    Checksum(Version),
    /// `_last_checkpoint`.
    LastCheckpoint,
}

fn parse_padded(s: &str, width: usize) -> Option<u64> {
    (s.len() == width && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl LogPath {
    /// Parse a file name (the last path segment) in `_delta_log`; `None` if it is not a
    /// Delta log file.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        if name == "_last_checkpoint" {
            return Some(Self::LastCheckpoint);
        }
        let (version_str, rest) = name.split_once('.')?;
        let version = parse_padded(version_str, 20)?;
        match rest {
            "json" => return Some(Self::Commit(version)),
            "crc" => return Some(Self::Checksum(version)),
            "checkpoint.parquet" => {
                return Some(Self::Checkpoint {
                    version,
                    kind: CheckpointKind::Classic,
                });
            }
            _ => {}
        }
        if let Some(end) = rest.strip_suffix(".compacted.json") {
            let end = parse_padded(end, 20)?;
            return (end > version).then_some(Self::Compaction {
                start: version,
                end,
            });
        }
        let tail = rest.strip_prefix("checkpoint.")?;
        let parts: Vec<&str> = tail.split('.').collect();
        match parts.as_slice() {
            [part, parts, "parquet"] => {
                let part = u32::try_from(parse_padded(part, 10)?).ok()?;
                let parts = u32::try_from(parse_padded(parts, 10)?).ok()?;
                (part >= 1 && part <= parts).then_some(Self::Checkpoint {
                    version,
                    kind: CheckpointKind::MultiPart { part, parts },
                })
            }
            [uuid, ext @ ("json" | "parquet")] if !uuid.is_empty() => Some(Self::Checkpoint {
                version,
                kind: CheckpointKind::Uuid {
                    uuid: (*uuid).to_owned(),
                    is_json: *ext == "json",
                },
            }),
            _ => None,
        }
    }

    /// The file name of this log entry.
    #[must_use]
    pub fn file_name(&self) -> String {
        match self {
            Self::Commit(v) => format!("{v:020}.json"),
            Self::Checksum(v) => format!("{v:020}.crc"),
            Self::LastCheckpoint => "_last_checkpoint".to_owned(),
            Self::Compaction { start, end } => format!("{start:020}.{end:020}.compacted.json"),
            Self::Checkpoint { version, kind } => match kind {
                CheckpointKind::Classic => format!("{version:020}.checkpoint.parquet"),
                CheckpointKind::MultiPart { part, parts } => {
                    format!("{version:020}.checkpoint.{part:010}.{parts:010}.parquet")
                }
                CheckpointKind::Uuid { uuid, is_json } => format!(
                    "{version:020}.checkpoint.{uuid}.{}",
                    if *is_json { "json" } else { "parquet" }
                ),
            },
        }
    }

    /// The version this file belongs to (the end version for compactions).
    #[must_use]
    pub fn version(&self) -> Option<Version> {
        match self {
            Self::Commit(v) | Self::Checksum(v) | Self::Checkpoint { version: v, .. } => Some(*v),
            Self::Compaction { end, .. } => Some(*end),
            Self::LastCheckpoint => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_known_names() {
        assert_eq!(
            LogPath::parse("00000000000000000042.json"),
            Some(LogPath::Commit(42))
        );
        assert_eq!(
            LogPath::parse("00000000000000000001.checkpoint.0000000001.0000000002.parquet"),
            Some(LogPath::Checkpoint {
                version: 1,
                kind: CheckpointKind::MultiPart { part: 1, parts: 2 }
            })
        );
        assert!(matches!(
            LogPath::parse(
                "00000000000000000002.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.json"
            ),
            Some(LogPath::Checkpoint {
                version: 2,
                kind: CheckpointKind::Uuid { is_json: true, .. }
            })
        ));
        assert_eq!(LogPath::parse(".00000000000000000000.json.crc"), None);
        assert_eq!(LogPath::parse("0.json"), None);
        assert_eq!(LogPath::parse("00000000000000000000.json.tmp"), None);
        assert_eq!(
            LogPath::parse("00000000000000000006.00000000000000000010.compacted.json"),
            Some(LogPath::Compaction { start: 6, end: 10 })
        );
    }

    fn any_log_path() -> impl Strategy<Value = LogPath> {
        let v = 0u64..100_000_000_000;
        prop_oneof![
            v.clone().prop_map(LogPath::Commit),
            v.clone().prop_map(LogPath::Checksum),
            v.clone().prop_map(|version| LogPath::Checkpoint {
                version,
                kind: CheckpointKind::Classic
            }),
            (v.clone(), 1u32..50)
                .prop_flat_map(|(v, parts)| (Just(v), 1..=parts, Just(parts)))
                .prop_map(|(version, part, parts)| LogPath::Checkpoint {
                    version,
                    kind: CheckpointKind::MultiPart { part, parts }
                }),
            (v.clone(), "[a-f0-9-]{36}", any::<bool>()).prop_map(|(version, uuid, is_json)| {
                LogPath::Checkpoint {
                    version,
                    kind: CheckpointKind::Uuid { uuid, is_json },
                }
            }),
            (v, 1u64..1000).prop_map(|(start, len)| LogPath::Compaction {
                start,
                end: start + len
            }),
        ]
    }

    proptest! {
        #[test]
        fn log_path_round_trips(path in any_log_path()) {
            prop_assert_eq!(LogPath::parse(&path.file_name()), Some(path));
        }
    }
}
