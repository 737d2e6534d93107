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

/// The protocol `protocol` becomes when `feature` is turned on (`None` when it already has
/// it): the writer feature (and the reader feature when `reader`), moving a legacy protocol
/// to table features (3/7 or 1/7) and listing the features its versions implied and the
/// table uses. The change data feed on a legacy protocol only raises the writer version to 4,
/// as Spark does.
#[must_use]
pub fn enable(
    protocol: &Protocol,
    metadata: &Metadata,
    feature: &str,
    reader: bool,
) -> Option<Protocol> {
    let writers = writer_features(protocol);
    let readers = reader_features(protocol);
    if writers.iter().any(|f| f == feature) && (!reader || readers.iter().any(|f| f == feature)) {
        return None;
    }
    if feature == "changeDataFeed" && !reader && protocol.min_writer_version < 7 {
        return Some(Protocol {
            min_writer_version: protocol.min_writer_version.max(4),
            ..protocol.clone()
        });
    }
    let mut writer_list: Vec<String> = if protocol.min_writer_version >= 7 {
        writers
    } else {
        writers
            .into_iter()
            .filter(|f| is_active(f, metadata))
            .collect()
    };
    if !writer_list.iter().any(|f| f == feature) {
        writer_list.push(feature.to_owned());
    }
    let (min_reader_version, reader_list) = if reader {
        let mut list = readers;
        if !list.iter().any(|f| f == feature) {
            list.push(feature.to_owned());
        }
        (3, Some(list))
    } else if protocol.min_reader_version >= 3 {
        (3, Some(readers))
    } else {
        (protocol.min_reader_version, None)
    };
    Some(Protocol {
        min_reader_version,
        min_writer_version: 7,
        reader_features: reader_list,
        writer_features: Some(writer_list),
    })
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
    fn enabling_features_upgrades_the_protocol() {
        let metadata = Metadata::default();
        let legacy = Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        };
        let cdf = enable(&legacy, &metadata, "changeDataFeed", false).unwrap();
        assert_eq!((cdf.min_reader_version, cdf.min_writer_version), (1, 4));
        assert!(enable(&cdf, &metadata, "changeDataFeed", false).is_none());
        let dv = enable(&cdf, &metadata, "deletionVectors", true).unwrap();
        assert_eq!((dv.min_reader_version, dv.min_writer_version), (3, 7));
        assert_eq!(reader_features(&dv), vec!["deletionVectors".to_owned()]);
        let writers = writer_features(&dv);
        for f in [
            "appendOnly",
            "invariants",
            "checkConstraints",
            "changeDataFeed",
        ] {
            assert!(writers.contains(&f.to_owned()), "{f} in {writers:?}");
        }
        // generatedColumns is implied by writer 4 but unused: not listed, still writable.
        assert!(!writers.contains(&"generatedColumns".to_owned()));
        check_writable(&dv, &metadata).unwrap();
        assert!(enable(&dv, &metadata, "deletionVectors", true).is_none());
        let with_cdf = enable(&dv, &metadata, "inCommitTimestamp", false).unwrap();
        assert_eq!(with_cdf.min_reader_version, 3);
    }

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
