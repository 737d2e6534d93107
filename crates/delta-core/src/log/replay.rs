//! Fold actions into table state (protocol "Action Reconciliation"). Pure: no I/O.
//!
//! Replay runs newest first: commits from the target version down, then the checkpoint.
//! The first action seen for a logical file `(canonical path, deletion-vector id)` decides
//! its fate (an `add` makes it live, a `remove` makes it a tombstone) and every older
//! action for the same key is ignored, so no live set ever has to be undone. An `add` also
//! claims its path: an older `add` of the same path with another deletion vector is dead.
//! `protocol` and `metaData` are the first seen; `txn` and `domainMetadata` the first seen
//! per id; `commitInfo` only from the target version.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::action::{Action, Add, CommitInfo, DomainMetadata, Metadata, Protocol, Remove, Txn};
use crate::{Error, Result, Version};

/// The reconciled state of a table at one version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableState {
    /// The version this state describes.
    pub version: Version,
    /// The protocol in force.
    pub protocol: Protocol,
    /// The metadata in force.
    pub metadata: Metadata,
    /// Live files, sorted by path.
    pub files: Vec<Add>,
    /// Tombstones (removed logical files not re-added), sorted by path.
    pub tombstones: Vec<Remove>,
    /// Latest `txn` per application id.
    pub txns: HashMap<String, Txn>,
    /// Non-removed domain metadata per domain.
    pub domains: HashMap<String, DomainMetadata>,
    /// The `commitInfo` of the target version's commit, when it was replayed.
    pub commit_info: Option<CommitInfo>,
}

/// Canonical form of a file path for reconciliation: URI-decoded, with `file:` schemes
/// reduced to the plain absolute path, so that `file:///x`, `file:/x` and `/x` are equal.
#[must_use]
pub fn canonical_path(path: &str) -> String {
    canonical_path_ref(path).into_owned()
}

/// [`canonical_path`] without an allocation when the path is already canonical (the usual
/// case: a relative path without `%` escapes).
fn canonical_path_ref(path: &str) -> Cow<'_, str> {
    if !path.contains('%') && !path.starts_with("file:") && !path.starts_with("//") {
        return Cow::Borrowed(path);
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let decoded = decoded.as_ref();
    let stripped = decoded
        .strip_prefix("file://")
        .or_else(|| decoded.strip_prefix("file:"))
        .unwrap_or(decoded);
    if stripped.starts_with("//") {
        Cow::Owned(format!("/{}", stripped.trim_start_matches('/')))
    } else {
        Cow::Owned(stripped.to_owned())
    }
}

fn dv_id(dv: Option<&crate::deletion_vector::DeletionVectorDescriptor>) -> Option<String> {
    dv.map(crate::deletion_vector::DeletionVectorDescriptor::unique_id)
}

/// The logical files that newer sources (commits) have already decided, which checkpoint
/// actions are looked up in.
#[derive(Debug, Default)]
pub struct Decided {
    /// Logical files `(canonical path, no DV)` already decided; split from `seen_with_dv` so
    /// that the common look-up borrows the path instead of building an owned key.
    seen_plain: HashSet<String>,
    /// Logical files `(canonical path, DV id)` already decided.
    seen_with_dv: HashSet<(String, String)>,
    /// Paths an `add` claimed: older adds of the path are dead whatever their DV.
    claimed_paths: HashSet<String>,
}

impl Decided {
    /// Record the logical file `(path, dv)` as decided; `false` when it already was.
    fn remember(&mut self, path: String, dv: Option<String>) -> bool {
        match dv {
            None => self.seen_plain.insert(path),
            Some(dv) => self.seen_with_dv.insert((path, dv)),
        }
    }

    /// Whether a checkpoint `add` of `path` (as written in the log) with deletion vector
    /// `dv` is live, i.e. no newer action decided its logical file and no newer `add`
    /// claimed its path. A look-up only: the checkpoint is the oldest source and holds each
    /// logical file once, so nothing older will ask about these keys (this is most of the
    /// work on tables with many files). Lets a checkpoint decoder skip dead rows before
    /// building them.
    #[must_use]
    pub fn checkpoint_add_is_live(
        &self,
        path: &str,
        dv: Option<&crate::deletion_vector::DeletionVectorDescriptor>,
    ) -> bool {
        if self.claimed_paths.is_empty()
            && self.seen_plain.is_empty()
            && self.seen_with_dv.is_empty()
        {
            return true;
        }
        let path = canonical_path_ref(path);
        if self.claimed_paths.contains(path.as_ref()) {
            return false;
        }
        match dv {
            None => !self.seen_plain.contains(path.as_ref()),
            Some(dv) => !self
                .seen_with_dv
                .contains(&(path.into_owned(), dv.unique_id())),
        }
    }
}

/// Incremental newest-first replay.
#[derive(Debug, Default)]
pub struct Replay {
    version: Version,
    protocol: Option<Protocol>,
    metadata: Option<Metadata>,
    decided: Decided,
    files: Vec<Add>,
    tombstones: Vec<Remove>,
    txns: HashMap<String, Txn>,
    domains: HashMap<String, Option<DomainMetadata>>,
    commit_info: Option<CommitInfo>,
}

impl Replay {
    /// Start replaying the state of `version`.
    #[must_use]
    pub fn new(version: Version) -> Self {
        Self {
            version,
            ..Self::default()
        }
    }

    /// Whether protocol and metadata are already known (newer commits set them).
    #[must_use]
    pub fn has_protocol_and_metadata(&self) -> bool {
        self.protocol.is_some() && self.metadata.is_some()
    }

    /// The protocol found so far (newest wins).
    #[must_use]
    pub fn protocol(&self) -> Option<&Protocol> {
        self.protocol.as_ref()
    }

    /// The metadata found so far (newest wins).
    #[must_use]
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Make room for `additional` more live files (a checkpoint's row count), so that the
    /// file list of a big table is allocated once instead of doubled and copied as it grows.
    pub fn reserve_files(&mut self, additional: usize) {
        self.files.reserve_exact(additional);
    }

    /// Apply the actions of one commit or checkpoint; call newest source first.
    /// `commit_version` is `Some` for commits and `None` for checkpoint actions.
    pub fn apply(
        &mut self,
        actions: impl IntoIterator<Item = Action>,
        commit_version: Option<Version>,
    ) {
        for action in actions {
            match action {
                Action::Protocol(p) => {
                    if self.protocol.is_none() {
                        self.protocol = Some(p);
                    }
                }
                Action::Metadata(m) => {
                    if self.metadata.is_none() {
                        self.metadata = Some(m);
                    }
                }
                Action::Add(add) => {
                    if commit_version.is_some() {
                        self.apply_add(add);
                    } else {
                        self.apply_checkpoint_add(add);
                    }
                }
                Action::Remove(remove) => self.apply_remove(remove),
                Action::Txn(txn) => {
                    self.txns.entry(txn.app_id.clone()).or_insert(txn);
                }
                Action::DomainMetadata(d) => {
                    self.domains
                        .entry(d.domain.clone())
                        .or_insert_with(|| (!d.removed).then_some(d));
                }
                Action::CommitInfo(info) => {
                    if commit_version == Some(self.version) && self.commit_info.is_none() {
                        self.commit_info = Some(info);
                    }
                }
                Action::Cdc(_)
                | Action::Sidecar(_)
                | Action::CheckpointMetadata(_)
                | Action::Unknown(_) => {}
            }
        }
    }

    /// An `add` from a commit: it decides its logical file and claims its path.
    fn apply_add(&mut self, add: Add) {
        let path = canonical_path_ref(&add.path).into_owned();
        if self.decided.claimed_paths.contains(&path) {
            return;
        }
        if !self
            .decided
            .remember(path.clone(), dv_id(add.deletion_vector.as_ref()))
        {
            return;
        }
        self.decided.claimed_paths.insert(path);
        self.files.push(add);
    }

    /// See [`Decided::checkpoint_add_is_live`].
    #[must_use]
    pub fn checkpoint_add_is_live(
        &self,
        path: &str,
        dv: Option<&crate::deletion_vector::DeletionVectorDescriptor>,
    ) -> bool {
        self.decided.checkpoint_add_is_live(path, dv)
    }

    /// What a checkpoint decoder needs to add live files in place: the decided files to
    /// look up and the list to push the live ones onto (nothing else may be pushed there).
    pub(crate) fn checkpoint_adds(&mut self) -> (&Decided, &mut Vec<Add>) {
        (&self.decided, &mut self.files)
    }

    /// Keep the live ones of `adds`, checkpoint `add`s decoded ahead of the replay; the list
    /// is moved, not copied, when it is the first source of files.
    pub(crate) fn append_checkpoint_adds(&mut self, mut adds: Vec<Add>) {
        adds.retain(|a| {
            self.decided
                .checkpoint_add_is_live(&a.path, a.deletion_vector.as_ref())
        });
        if self.files.is_empty() && self.files.capacity() <= adds.capacity() {
            self.files = adds;
        } else {
            self.files.append(&mut adds);
        }
    }

    /// An `add` from a checkpoint (see [`Decided::checkpoint_add_is_live`]).
    fn apply_checkpoint_add(&mut self, add: Add) {
        if self.checkpoint_add_is_live(&add.path, add.deletion_vector.as_ref()) {
            self.files.push(add);
        }
    }

    fn apply_remove(&mut self, remove: Remove) {
        let path = canonical_path_ref(&remove.path).into_owned();
        if self
            .decided
            .remember(path, dv_id(remove.deletion_vector.as_ref()))
        {
            self.tombstones.push(remove);
        }
    }

    /// Finish replay.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `table` when no `protocol` or no `metaData` was found.
    pub fn finish(self, table: &str) -> Result<TableState> {
        let protocol = self.protocol.ok_or_else(|| {
            Error::corrupt(
                format!("{}/_delta_log", table.trim_end_matches('/')),
                format!(
                    "no protocol action found in the log up to version {}",
                    self.version
                ),
            )
        })?;
        let metadata = self.metadata.ok_or_else(|| {
            Error::corrupt(
                format!("{}/_delta_log", table.trim_end_matches('/')),
                format!(
                    "no metaData action found in the log up to version {}",
                    self.version
                ),
            )
        })?;
        let mut files = self.files;
        sort_by_path(&mut files, |a| &a.path);
        let mut tombstones = self.tombstones;
        sort_by_path(&mut tombstones, |r| &r.path);
        Ok(TableState {
            version: self.version,
            protocol,
            metadata,
            files,
            tombstones,
            txns: self.txns,
            domains: self
                .domains
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            commit_info: self.commit_info,
        })
    }
}

/// Sort `items` stably by path without the scratch copy of the elements a stable sort of
/// big structs needs (half the list: 150 MB for a million files). Sorts indices instead and
/// applies the permutation in place; does nothing when the list is already sorted.
fn sort_by_path<T>(items: &mut [T], path: impl Fn(&T) -> &str) {
    if items.is_sorted_by(|a, b| path(a) <= path(b)) {
        return;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| path(&items[*a]).cmp(path(&items[*b])));
    // `order[i]` is the index of the item that belongs at `i`: walk each cycle once,
    // marking a position done by making it a fixed point.
    for start in 0..items.len() {
        let mut current = start;
        loop {
            let next = order[current];
            order[current] = current;
            if next == start || next == current {
                break;
            }
            items.swap(current, next);
            current = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str, mt: i64) -> Action {
        Action::Add(Add {
            path: path.to_owned(),
            modification_time: mt,
            data_change: true,
            ..Add::default()
        })
    }

    fn remove(path: &str) -> Action {
        Action::Remove(Remove {
            path: path.to_owned(),
            data_change: true,
            ..Remove::default()
        })
    }

    fn base() -> Vec<Action> {
        vec![
            Action::Protocol(Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                ..Protocol::default()
            }),
            Action::Metadata(Metadata::default()),
        ]
    }

    /// Replays `commits` (oldest first) the way snapshots do: newest first.
    fn replay(commits: Vec<Vec<Action>>) -> TableState {
        let version = u64::try_from(commits.len() - 1).unwrap();
        let mut r = Replay::new(version);
        for (v, actions) in commits.into_iter().enumerate().rev() {
            r.apply(actions, Some(u64::try_from(v).unwrap()));
        }
        r.finish("t").unwrap()
    }

    #[test]
    fn re_added_file_wins_with_newest_fields() {
        let mut c0 = base();
        c0.push(add("foo", 1));
        let state = replay(vec![
            c0,
            vec![remove("foo")],
            vec![add("foo", 1_700_000_000_000), add("bar", 3)],
        ]);
        assert_eq!(state.files.len(), 2);
        let foo = state.files.iter().find(|f| f.path == "foo").unwrap();
        assert_eq!(foo.modification_time, 1_700_000_000_000);
        assert!(state.tombstones.is_empty());
    }

    #[test]
    fn canonical_paths_reconcile() {
        let mut c0 = base();
        c0.push(add("/some/unqualified/with%20space/p@%23h", 1));
        let state = replay(vec![
            c0,
            vec![remove("file:///some/unqualified/with%20space/p@%23h")],
        ]);
        assert!(state.files.is_empty());
        assert_eq!(canonical_path("file:/x/y"), "/x/y");
        assert_eq!(canonical_path("file:///x/y"), "/x/y");
        assert_eq!(canonical_path("a%20b"), "a b");
    }

    #[test]
    fn sort_by_path_is_a_stable_sort() {
        // Every permutation of a small list with duplicate keys, against the std stable sort.
        let keys = ["b", "a", "c", "a", "b", "d"];
        let mut items: Vec<(String, usize)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| ((*k).to_owned(), i))
            .collect();
        for round in 0..720 {
            // A deterministic walk over orderings: rotate and swap.
            items.rotate_left(round % 5 + 1);
            items.swap(round % 6, (round * 7 + 3) % 6);
            let mut expected = items.clone();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            let mut actual = items.clone();
            sort_by_path(&mut actual, |i| &i.0);
            assert_eq!(actual, expected, "round {round}");
        }
    }

    #[test]
    fn checkpoint_adds_are_looked_up_not_remembered() {
        let mut r = Replay::new(2);
        r.apply(base(), Some(2));
        r.apply(vec![remove("gone"), add("a%20b", 5)], Some(1));
        assert!(!r.checkpoint_add_is_live("gone", None));
        assert!(!r.checkpoint_add_is_live("a b", None));
        assert!(r.checkpoint_add_is_live("kept", None));
        r.apply(vec![add("kept", 1), add("kept", 1), add("gone", 1)], None);
        let state = r.finish("t").unwrap();
        let paths: Vec<_> = state.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a%20b", "kept", "kept"]);
    }

    #[test]
    fn missing_protocol_is_corrupt() {
        let mut r = Replay::new(0);
        r.apply(vec![Action::Metadata(Metadata::default())], Some(0));
        assert!(matches!(r.finish("t"), Err(Error::Corrupt { .. })));
    }
}
