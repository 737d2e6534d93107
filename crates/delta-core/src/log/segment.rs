//! Which log files make up version `v` of a table (protocol "Snapshot Reconstruction").
//!
//! Pure: takes a listing of `_delta_log` and returns the newest complete checkpoint at or
//! below the target plus the contiguous commits after it. Invariant of the result: the
//! commits are exactly `checkpoint_version + 1 ..= version` (or `0 ..= version` without a
//! checkpoint), in ascending order, with no gap.

use std::collections::BTreeMap;

use super::path::{CheckpointKind, LogPath};
use crate::{Error, Result, Version};

/// A file found by listing `_delta_log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    /// The parsed name.
    pub log_path: LogPath,
    /// Location in the store (`<root>/_delta_log/<name>`).
    pub location: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time in milliseconds since the epoch.
    pub last_modified_ms: i64,
}

/// The files to replay for one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSegment {
    /// The version the segment reconstructs.
    pub version: Version,
    /// The checkpoint files (all parts) replay starts from, if any.
    pub checkpoint: Vec<LogFile>,
    /// Commits after the checkpoint, ascending.
    pub commits: Vec<LogFile>,
}

impl LogSegment {
    /// The version of the checkpoint this segment starts from.
    #[must_use]
    pub fn checkpoint_version(&self) -> Option<Version> {
        self.checkpoint.first().and_then(|f| f.log_path.version())
    }
}

/// Pick the newest complete checkpoint at or below `max_version` from `files`.
fn newest_checkpoint(files: &[LogFile], max_version: Version) -> Option<Vec<LogFile>> {
    // (version, group key) -> parts found; group key separates naming schemes and part counts.
    let mut groups: BTreeMap<(Version, String), (u32, Vec<LogFile>)> = BTreeMap::new();
    for file in files {
        let LogPath::Checkpoint { version, kind } = &file.log_path else {
            continue;
        };
        if *version > max_version {
            continue;
        }
        // Prefer, at one version: UUID-named (V2) > classic > multi-part, by key order.
        let (key, parts) = match kind {
            CheckpointKind::Uuid { uuid, is_json } => {
                (format!("0-{}-{uuid}", u8::from(*is_json)), 1)
            }
            CheckpointKind::Classic => ("1".to_owned(), 1),
            CheckpointKind::MultiPart { parts, .. } => (format!("2-{parts:010}"), *parts),
        };
        let entry = groups
            .entry((*version, key))
            .or_insert_with(|| (parts, Vec::new()));
        if !entry.1.iter().any(|f| f.log_path == file.log_path) {
            entry.1.push(file.clone());
        }
    }
    let mut best: Option<(Version, Vec<LogFile>)> = None;
    for ((version, _), (parts, mut found)) in groups {
        let complete = usize::try_from(parts).is_ok_and(|p| p == found.len());
        if !complete {
            continue;
        }
        found.sort_by(|a, b| a.location.cmp(&b.location));
        match &best {
            Some((v, _)) if *v >= version => {}
            _ => best = Some((version, found)),
        }
    }
    best.map(|(_, files)| files)
}

/// Build the segment for `target` (latest when `None`) from a listing of `_delta_log`.
///
/// `table` names the table in errors.
///
/// # Errors
/// [`Error::NotATable`] when there is neither a commit nor a checkpoint;
/// [`Error::VersionNotFound`] when the target is newer than the latest version or older
/// than what the retained log can reconstruct; [`Error::Corrupt`] when a commit between
/// the checkpoint and the target is missing.
pub fn build_segment(
    files: &[LogFile],
    target: Option<Version>,
    table: &str,
) -> Result<LogSegment> {
    let latest_commit = files
        .iter()
        .filter_map(|f| match f.log_path {
            LogPath::Commit(v) => Some(v),
            _ => None,
        })
        .max();
    let latest_checkpoint = newest_checkpoint(files, Version::MAX)
        .and_then(|c| c.first().and_then(|f| f.log_path.version()));
    let latest = match (latest_commit, latest_checkpoint) {
        (None, None) => {
            return Err(Error::NotATable {
                location: table.to_owned(),
            });
        }
        (a, b) => a.max(b).unwrap_or_default(),
    };
    let version = target.unwrap_or(latest);
    if version > latest {
        return Err(Error::VersionNotFound {
            requested: version,
            reason: format!("the latest version is {latest}"),
        });
    }
    let checkpoint = newest_checkpoint(files, version).unwrap_or_default();
    let start = checkpoint
        .first()
        .and_then(|f| f.log_path.version())
        .map_or(0, |v| v + 1);
    let mut commits: Vec<LogFile> = files
        .iter()
        .filter(|f| matches!(f.log_path, LogPath::Commit(v) if v >= start && v <= version))
        .cloned()
        .collect();
    commits.sort_by_key(|f| f.log_path.version());
    commits.dedup_by_key(|f| f.log_path.version());
    let mut expected = start;
    for commit in &commits {
        let v = commit.log_path.version().unwrap_or_default();
        if v != expected {
            return Err(if expected == 0 && checkpoint.is_empty() {
                Error::VersionNotFound {
                    requested: version,
                    reason: format!(
                        "commits before version {v} were cleaned up and no checkpoint at or below {version} remains"
                    ),
                }
            } else {
                Error::corrupt(
                    format!("{}/_delta_log", table.trim_end_matches('/')),
                    format!(
                        "commit {expected} is missing (versions must be contiguous, found {v} next)"
                    ),
                )
            });
        }
        expected = v + 1;
    }
    if expected != version + 1 {
        return Err(if checkpoint.is_empty() && commits.is_empty() {
            Error::VersionNotFound {
                requested: version,
                reason: "its commit and any checkpoint below it were cleaned up".to_owned(),
            }
        } else {
            Error::corrupt(
                format!("{}/_delta_log", table.trim_end_matches('/')),
                format!("commit {expected} is missing (versions must be contiguous)"),
            )
        });
    }
    Ok(LogSegment {
        version,
        checkpoint,
        commits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> LogFile {
        LogFile {
            log_path: LogPath::parse(name).unwrap(),
            location: format!("t/_delta_log/{name}"),
            size: 1,
            last_modified_ms: 0,
        }
    }

    fn commit(v: u64) -> LogFile {
        file(&format!("{v:020}.json"))
    }

    #[test]
    fn uses_newest_checkpoint_then_tail() {
        let mut files: Vec<_> = (0..=12).map(commit).collect();
        files.push(file("00000000000000000010.checkpoint.parquet"));
        let seg = build_segment(&files, None, "t").unwrap();
        assert_eq!(seg.version, 12);
        assert_eq!(seg.checkpoint_version(), Some(10));
        assert_eq!(seg.commits.len(), 2);
        let seg = build_segment(&files, Some(9), "t").unwrap();
        assert_eq!(seg.checkpoint_version(), None);
        assert_eq!(seg.commits.len(), 10);
    }

    #[test]
    fn incomplete_multi_part_checkpoint_is_ignored() {
        let mut files: Vec<_> = (0..=3).map(commit).collect();
        files.push(file(
            "00000000000000000002.checkpoint.0000000001.0000000002.parquet",
        ));
        let seg = build_segment(&files, None, "t").unwrap();
        assert_eq!(seg.checkpoint_version(), None);
        files.push(file(
            "00000000000000000002.checkpoint.0000000002.0000000002.parquet",
        ));
        let seg = build_segment(&files, None, "t").unwrap();
        assert_eq!(seg.checkpoint_version(), Some(2));
        assert_eq!(seg.checkpoint.len(), 2);
    }

    #[test]
    fn gap_is_corrupt_and_cleaned_history_is_not_found() {
        let files = vec![commit(0), commit(2)];
        let err = build_segment(&files, None, "t").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        let files = vec![
            commit(5),
            commit(6),
            file("00000000000000000005.checkpoint.parquet"),
        ];
        assert!(matches!(
            build_segment(&files, Some(3), "t"),
            Err(Error::VersionNotFound { .. })
        ));
        assert_eq!(
            build_segment(&files, Some(5), "t").unwrap().commits.len(),
            0
        );
        assert!(matches!(
            build_segment(&files, Some(9), "t"),
            Err(Error::VersionNotFound { .. })
        ));
    }

    #[test]
    fn checkpoint_only_log_is_a_table() {
        let files = vec![file("00000000000000000108.checkpoint.parquet")];
        let seg = build_segment(&files, None, "t").unwrap();
        assert_eq!(seg.version, 108);
        assert!(matches!(
            build_segment(&[], None, "t"),
            Err(Error::NotATable { .. })
        ));
    }
}
