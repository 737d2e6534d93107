//! Conflict detection after losing a commit race (protocol "Writer Requirements", modelled
//! on Spark's `ConflictChecker`). Pure: no I/O.
//!
//! A transaction read the table at version `r` and tried to commit `r + 1`, but another
//! writer got there first. For every winning commit `w` in `r + 1 ..`, [`check`] decides
//! whether our transaction is still valid on top of it (then it is rebased and retried) or
//! not (a [`Error::Conflict`] naming the winning version, its operation and the clash).
//!
//! | winner \ ours | blind append | read + write (DELETE/UPDATE/overwrite) | OPTIMIZE (`dataChange=false`) | metadata change |
//! |---|---|---|---|---|
//! | blind append | rebase | WS: rebase · S: conflict if the new files match our read | rebase | conflict |
//! | append that read data | rebase | conflict if its new files match our read (both levels) | rebase | conflict |
//! | DELETE/UPDATE/overwrite | rebase | conflict if it removed a file we read or remove | conflict if it removed a file we remove | conflict |
//! | OPTIMIZE | rebase | conflict only if it removed a file we remove | conflict if it removed a file we remove | conflict |
//! | metadata or protocol change | conflict | conflict | conflict | conflict |
//! | same app `txn` id | conflict | conflict | conflict | conflict |
//!
//! WS = `WriteSerializable` (the default), S = `Serializable` (`delta.isolationLevel`).
//! "Match our read" is decided by the caller's predicate over the winner's `add` (partition
//! values and statistics), which is finer than Spark's partition-only check.

use std::collections::HashSet;

use crate::action::{Action, Add};
use crate::log::canonical_path;
use crate::{Error, Result, Version};

/// Delta's isolation levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Writes are serializable; reads may see blind appends that happen concurrently.
    #[default]
    WriteSerializable,
    /// Reads and writes are serializable: concurrent appends that match what we read conflict.
    Serializable,
}

impl IsolationLevel {
    /// From the table property `delta.isolationLevel` (absent ⇒ `WriteSerializable`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for unknown levels.
    pub fn from_property(value: Option<&str>) -> Result<Self> {
        match value {
            None | Some("WriteSerializable") => Ok(Self::WriteSerializable),
            Some("Serializable") => Ok(Self::Serializable),
            Some(other) => Err(Error::invalid(format!(
                "unknown delta.isolationLevel `{other}` (use WriteSerializable or Serializable)"
            ))),
        }
    }

    /// The name written in `commitInfo.isolationLevel`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteSerializable => "WriteSerializable",
            Self::Serializable => "Serializable",
        }
    }
}

/// What the table must not change under a transaction's feet.
#[derive(Clone, Debug, Default)]
pub struct ReadFootprint {
    /// Whether the transaction read table data at all (blind appends do not).
    pub reads_data: bool,
    /// Canonical paths of the files it read (and may rewrite).
    pub read_files: HashSet<String>,
    /// Canonical paths of the files it removes.
    pub removed_files: HashSet<String>,
    /// Whether it changes metadata or protocol.
    pub changes_metadata: bool,
    /// App transaction ids it records.
    pub app_ids: HashSet<String>,
}

/// Decide whether our transaction can be rebased over one winning commit.
///
/// `matches_read` says whether a file the winner added could hold rows our transaction's
/// read predicate selects (return `true` when unsure).
///
/// # Errors
/// [`Error::Conflict`] naming `winner_version`, the winner's operation and the clash.
pub fn check(
    ours: &ReadFootprint,
    isolation: IsolationLevel,
    winner_version: Version,
    winner: &[Action],
    matches_read: &dyn Fn(&Add) -> bool,
) -> Result<()> {
    let operation = winner
        .iter()
        .find_map(|a| match a {
            Action::CommitInfo(ci) => ci.operation().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| "unknown operation".to_owned());
    let conflict = |reason: String| Error::Conflict {
        winning_version: winner_version,
        operation: operation.clone(),
        reason,
    };
    let winner_blind_append = winner.iter().any(|a| {
        matches!(a, Action::CommitInfo(ci) if ci.0.get("isBlindAppend").and_then(serde_json::Value::as_bool) == Some(true))
    }) && !winner.iter().any(|a| matches!(a, Action::Remove(_)));
    for action in winner {
        match action {
            Action::Protocol(_) => {
                return Err(conflict("it changed the table protocol".to_owned()));
            }
            Action::Metadata(_) => {
                return Err(conflict(
                    "it changed the table metadata (schema, partitioning or properties)".to_owned(),
                ));
            }
            Action::Txn(txn) if ours.app_ids.contains(&txn.app_id) => {
                return Err(conflict(format!(
                    "it recorded a transaction for application `{}` too",
                    txn.app_id
                )));
            }
            Action::Remove(remove) => {
                let path = canonical_path(&remove.path);
                if ours.removed_files.contains(&path) {
                    return Err(conflict(format!("it also removed file {}", remove.path)));
                }
                if remove.data_change && ours.read_files.contains(&path) {
                    return Err(conflict(format!(
                        "it removed file {} that this transaction read",
                        remove.path
                    )));
                }
            }
            Action::Add(add) if add.data_change => {
                if ours.changes_metadata {
                    return Err(conflict(
                        "it added data while this transaction changes the metadata".to_owned(),
                    ));
                }
                let check_adds = ours.reads_data
                    && (isolation == IsolationLevel::Serializable || !winner_blind_append);
                if check_adds && matches_read(add) {
                    return Err(conflict(format!(
                        "it added file {} whose rows this transaction's read may have included",
                        add.path
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{CommitInfo, Metadata, Remove, Txn};

    fn info(op: &str, blind: bool) -> Action {
        let mut map = serde_json::Map::new();
        map.insert("operation".into(), op.into());
        map.insert("isBlindAppend".into(), blind.into());
        Action::CommitInfo(CommitInfo(map))
    }

    fn add(path: &str) -> Action {
        Action::Add(Add {
            path: path.into(),
            data_change: true,
            ..Add::default()
        })
    }

    fn remove(path: &str, data_change: bool) -> Action {
        Action::Remove(Remove {
            path: path.into(),
            data_change,
            ..Remove::default()
        })
    }

    fn blind_append() -> ReadFootprint {
        ReadFootprint::default()
    }

    fn delete_of(files: &[&str]) -> ReadFootprint {
        ReadFootprint {
            reads_data: true,
            read_files: files.iter().map(|s| (*s).to_owned()).collect(),
            removed_files: files.iter().map(|s| (*s).to_owned()).collect(),
            ..ReadFootprint::default()
        }
    }

    fn optimize_of(files: &[&str]) -> ReadFootprint {
        ReadFootprint {
            reads_data: false,
            read_files: files.iter().map(|s| (*s).to_owned()).collect(),
            removed_files: files.iter().map(|s| (*s).to_owned()).collect(),
            ..ReadFootprint::default()
        }
    }

    fn all(_: &Add) -> bool {
        true
    }

    fn none(_: &Add) -> bool {
        false
    }

    const WS: IsolationLevel = IsolationLevel::WriteSerializable;
    const S: IsolationLevel = IsolationLevel::Serializable;

    /// The matrix of the module docs, cell by cell.
    #[test]
    fn conflict_matrix() {
        let append = vec![info("WRITE", true), add("new")];
        let read_append = vec![info("MERGE", false), add("new")];
        let delete_a = vec![info("DELETE", false), remove("a", true), add("a2")];
        let optimize_a = vec![
            info("OPTIMIZE", false),
            remove("a", false),
            Action::Add(Add {
                path: "big".into(),
                data_change: false,
                ..Add::default()
            }),
        ];
        let metadata = vec![
            info("SET TBLPROPERTIES", false),
            Action::Metadata(Metadata::default()),
        ];
        type Case<'a> = (
            &'a str,
            ReadFootprint,
            IsolationLevel,
            &'a Vec<Action>,
            &'a dyn Fn(&Add) -> bool,
            bool,
        );
        let cases: Vec<Case<'_>> = vec![
            ("append vs append", blind_append(), WS, &append, &all, true),
            (
                "append vs append (S)",
                blind_append(),
                S,
                &append,
                &all,
                true,
            ),
            (
                "delete vs blind append WS",
                delete_of(&["a"]),
                WS,
                &append,
                &all,
                true,
            ),
            (
                "delete vs blind append S, matching",
                delete_of(&["a"]),
                S,
                &append,
                &all,
                false,
            ),
            (
                "delete vs blind append S, not matching",
                delete_of(&["a"]),
                S,
                &append,
                &none,
                true,
            ),
            (
                "delete vs reading append, matching",
                delete_of(&["a"]),
                WS,
                &read_append,
                &all,
                false,
            ),
            (
                "delete vs reading append, not matching",
                delete_of(&["a"]),
                WS,
                &read_append,
                &none,
                true,
            ),
            (
                "delete vs delete same file",
                delete_of(&["a"]),
                WS,
                &delete_a,
                &none,
                false,
            ),
            (
                "delete vs delete other file",
                delete_of(&["b"]),
                WS,
                &delete_a,
                &none,
                true,
            ),
            (
                "delete vs optimize same file",
                delete_of(&["a"]),
                WS,
                &optimize_a,
                &none,
                false,
            ),
            (
                "delete vs optimize other file",
                delete_of(&["b"]),
                WS,
                &optimize_a,
                &none,
                true,
            ),
            (
                "optimize vs append",
                optimize_of(&["a"]),
                WS,
                &append,
                &all,
                true,
            ),
            (
                "optimize vs delete same file",
                optimize_of(&["a"]),
                WS,
                &delete_a,
                &none,
                false,
            ),
            (
                "optimize vs delete other file",
                optimize_of(&["b"]),
                WS,
                &delete_a,
                &none,
                true,
            ),
            (
                "append vs delete",
                blind_append(),
                WS,
                &delete_a,
                &all,
                true,
            ),
            (
                "append vs metadata",
                blind_append(),
                WS,
                &metadata,
                &all,
                false,
            ),
            (
                "delete vs metadata",
                delete_of(&["a"]),
                S,
                &metadata,
                &none,
                false,
            ),
        ];
        for (name, ours, level, winner, matches, ok) in cases {
            let result = check(&ours, level, 7, winner, matches);
            assert_eq!(result.is_ok(), ok, "{name}: {result:?}");
            if let Err(e) = result {
                assert!(e.to_string().contains("version 7"), "{name}: {e}");
            }
        }
    }

    #[test]
    fn same_app_id_conflicts_and_names_it() {
        let ours = ReadFootprint {
            app_ids: ["silver".to_owned()].into(),
            ..ReadFootprint::default()
        };
        let winner = vec![
            info("WRITE", true),
            Action::Txn(Txn {
                app_id: "silver".into(),
                version: 3,
                last_updated: None,
            }),
        ];
        let err = check(&ours, WS, 4, &winner, &all).unwrap_err().to_string();
        assert!(
            err.contains("silver") && err.contains("version 4") && err.contains("WRITE"),
            "{err}"
        );
    }

    #[test]
    fn metadata_change_of_ours_conflicts_with_new_data() {
        let ours = ReadFootprint {
            changes_metadata: true,
            ..ReadFootprint::default()
        };
        let winner = vec![info("WRITE", true), add("x")];
        assert!(check(&ours, WS, 1, &winner, &all).is_err());
    }
}
