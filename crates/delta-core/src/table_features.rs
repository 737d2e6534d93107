//! Protocol gating (protocol "Protocol Versions" and "Table Features"). Pure.
//!
//! Legacy versions imply features (reader 2 ⇒ `columnMapping`; writer 2 ⇒ `appendOnly` and
//! `invariants`; 3 ⇒ `checkConstraints`; 4 ⇒ `changeDataFeed`, `generatedColumns`;
//! 5 ⇒ `columnMapping`; 6 ⇒ `identityColumns`). Version 3/7 tables list them explicitly.
//! A reader refuses any reader feature it does not implement, naming it.

use crate::action::{Metadata, Protocol};
use crate::{Error, Result};

/// Reader features this crate implements.
pub const SUPPORTED_READER_FEATURES: &[&str] = &[
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "typeWidening",
    "typeWidening-preview",
    "variantType",
    "variantType-preview",
];

/// The reader features a protocol requires, legacy versions included.
#[must_use]
pub fn reader_features(protocol: &Protocol) -> Vec<String> {
    match protocol.min_reader_version {
        3 => protocol.reader_features.clone().unwrap_or_default(),
        2 => vec!["columnMapping".to_owned()],
        _ => Vec::new(),
    }
}

/// The writer features a protocol requires, legacy versions included.
#[must_use]
pub fn writer_features(protocol: &Protocol) -> Vec<String> {
    if protocol.min_writer_version >= 7 {
        return protocol.writer_features.clone().unwrap_or_default();
    }
    let ladder: [(i32, &[&str]); 5] = [
        (2, &["appendOnly", "invariants"]),
        (3, &["checkConstraints"]),
        (4, &["changeDataFeed", "generatedColumns"]),
        (5, &["columnMapping"]),
        (6, &["identityColumns"]),
    ];
    ladder
        .iter()
        .filter(|(v, _)| protocol.min_writer_version >= *v)
        .flat_map(|(_, names)| names.iter().map(|n| (*n).to_owned()))
        .collect()
}

/// Check that this crate can read a table with `protocol`.
///
/// # Errors
/// [`Error::Unsupported`] naming the reader version or the first unknown reader feature.
pub fn check_readable(protocol: &Protocol) -> Result<()> {
    if !(1..=3).contains(&protocol.min_reader_version) {
        return Err(Error::Unsupported {
            kind: "reader version",
            feature: format!(
                "{} (this reader supports 1 to 3)",
                protocol.min_reader_version
            ),
        });
    }
    if protocol.min_reader_version == 3 && protocol.reader_features.is_none() {
        return Err(Error::corrupt(
            "protocol",
            "reader version 3 requires a readerFeatures list",
        ));
    }
    for feature in reader_features(protocol) {
        if !SUPPORTED_READER_FEATURES.contains(&feature.as_str()) {
            return Err(Error::Unsupported {
                kind: "reader feature",
                feature,
            });
        }
    }
    Ok(())
}

/// Writer features this crate implements (it writes tables that have them correctly).
pub const SUPPORTED_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "vacuumProtocolCheck",
    "domainMetadata",
    "inCommitTimestamp",
    "changeDataFeed",
];

/// Whether a legacy-implied writer feature is actually in use by the table.
fn is_active(feature: &str, metadata: &Metadata) -> bool {
    let schema_uses = |key: &str| metadata.schema_string.contains(key);
    match feature {
        "generatedColumns" => schema_uses("delta.generationExpression"),
        "identityColumns" => schema_uses("delta.identity."),
        _ => true,
    }
}

/// Check that this crate can write a table with `protocol` and `metadata`.
///
/// Tables with writer version 7 must list only features this crate implements; legacy
/// versions imply features, which are refused only when the table actually uses them
/// (a 1/4 table without generated columns is writable).
///
/// # Errors
/// [`Error::Unsupported`] naming the writer version or feature.
pub fn check_writable(protocol: &Protocol, metadata: &Metadata) -> Result<()> {
    check_readable(protocol)?;
    if !(1..=7).contains(&protocol.min_writer_version) {
        return Err(Error::Unsupported {
            kind: "writer version",
            feature: format!(
                "{} (this writer supports 1 to 7)",
                protocol.min_writer_version
            ),
        });
    }
    let legacy = protocol.min_writer_version < 7;
    for feature in writer_features(protocol) {
        if SUPPORTED_WRITER_FEATURES.contains(&feature.as_str()) {
            continue;
        }
        if legacy && !is_active(&feature, metadata) {
            continue;
        }
        return Err(Error::Unsupported {
            kind: "writer feature",
            feature,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reader_feature_is_named() {
        let p = Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(vec!["deletionVectors".into(), "catalogManaged".into()]),
            writer_features: Some(vec![]),
        };
        let err = check_readable(&p).unwrap_err().to_string();
        assert!(err.contains("catalogManaged"), "{err}");
    }

    #[test]
    fn reader_version_99_is_refused() {
        let p = Protocol {
            min_reader_version: 99,
            min_writer_version: 7,
            ..Protocol::default()
        };
        assert!(matches!(check_readable(&p), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn writers_refuse_unknown_features_and_active_legacy_ones() {
        let p = Protocol {
            min_reader_version: 1,
            min_writer_version: 7,
            reader_features: None,
            writer_features: Some(vec!["appendOnly".into(), "collations".into()]),
        };
        let err = check_writable(&p, &Metadata::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("collations"), "{err}");
        let legacy = Protocol {
            min_reader_version: 1,
            min_writer_version: 4,
            ..Protocol::default()
        };
        assert!(check_writable(&legacy, &Metadata::default()).is_ok());
        let generated = Metadata {
            schema_string: r#"{"type":"struct","fields":[{"name":"c2","type":"long","nullable":true,"metadata":{"delta.generationExpression":"c1 + 1"}}]}"#.into(),
            ..Metadata::default()
        };
        let err = check_writable(&legacy, &generated).unwrap_err().to_string();
        assert!(err.contains("generatedColumns"), "{err}");
    }

    #[test]
    fn legacy_versions_imply_features() {
        let p = Protocol {
            min_reader_version: 2,
            min_writer_version: 5,
            ..Protocol::default()
        };
        assert_eq!(reader_features(&p), vec!["columnMapping"]);
        assert!(writer_features(&p).contains(&"changeDataFeed".to_owned()));
        assert!(check_readable(&p).is_ok());
    }
}
