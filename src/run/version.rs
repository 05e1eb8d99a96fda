//! The record's `schema_version` and the one way to read a record from JSON.
//!
//! `MAJOR.MINOR`: a minor bump adds optional fields (every reader of the same
//! major reads it, ignoring what it does not know); a major bump is anything
//! else (a field removed, renamed, retyped or made required, a new value in a
//! closed set), and readers refuse a major they do not know. A record without
//! the field was written before it existed: it is 1.0. See docs/run-record.md.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::RunRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaVersion {
    pub major: u64,
    pub minor: u64,
}

impl SchemaVersion {
    /// What this mbx writes.
    pub const CURRENT: SchemaVersion = SchemaVersion { major: 1, minor: 0 };
    /// What a record without `schema_version` is (mbx before the field existed).
    pub const UNVERSIONED: SchemaVersion = SchemaVersion { major: 1, minor: 0 };

    pub(super) fn unversioned() -> SchemaVersion {
        SchemaVersion::UNVERSIONED
    }

    /// Can this mbx read a record of this version? Every minor of its major.
    pub fn readable(&self) -> bool {
        self.major == SchemaVersion::CURRENT.major
    }
}

impl Default for SchemaVersion {
    fn default() -> Self {
        SchemaVersion::CURRENT
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for SchemaVersion {
    type Err = ();
    /// `MAJOR.MINOR`; a bare `MAJOR` reads as `MAJOR.0`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        let num = |p: &str| match p.bytes().all(|b| b.is_ascii_digit()) {
            true => p.parse::<u64>().map_err(|_| ()),
            false => Err(()),
        };
        Ok(SchemaVersion {
            major: num(major)?,
            minor: num(minor)?,
        })
    }
}

impl Serialize for SchemaVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        found(&v).ok_or_else(|| {
            serde::de::Error::custom(format!("schema_version {v} is not \"MAJOR.MINOR\""))
        })
    }
}

impl schemars::JsonSchema for SchemaVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SchemaVersion".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "MAJOR.MINOR of the record's shape. Readers take every minor of their major and refuse other majors; absent means 1.0.",
            "pattern": "^[0-9]+\\.[0-9]+$",
            "examples": ["1.0"]
        })
    }
}

/// A version as written: `"1.0"`, or an integer `7` (read as 7.0).
fn found(v: &serde_json::Value) -> Option<SchemaVersion> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64().map(|major| SchemaVersion { major, minor: 0 }),
        _ => None,
    }
}

/// Why bytes are not a record this mbx can read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not valid JSON (damaged or cut short?): {0}")]
    NotJson(serde_json::Error),
    /// Valid JSON, but neither `mbx_version` nor `schema_version` in it.
    #[error("not an mbx run record (no `mbx_version` or `schema_version` in it)")]
    NotARecord,
    #[error("record schema {found} is not MAJOR.MINOR (this mbx reads {reads}.x)", reads = SchemaVersion::CURRENT.major)]
    BadVersion { found: String },
    #[error("record schema {found}{by} is {newer} than this mbx ({this}) reads ({reads}.x)",
        by = written_by(.mbx_version),
        newer = newer_or_older(.found),
        this = env!("CARGO_PKG_VERSION"),
        reads = SchemaVersion::CURRENT.major)]
    Unreadable {
        found: SchemaVersion,
        mbx_version: Option<String>,
    },
    #[error("record schema {version}{by} does not fit its schema: {error}", by = written_by(.mbx_version))]
    Shape {
        version: SchemaVersion,
        mbx_version: Option<String>,
        error: serde_json::Error,
    },
}

fn newer_or_older(v: &SchemaVersion) -> &'static str {
    if v.major > SchemaVersion::CURRENT.major {
        "newer"
    } else {
        "older"
    }
}

fn written_by(v: &Option<String>) -> String {
    v.as_deref()
        .map(|v| format!(" (written by mbx {v})"))
        .unwrap_or_default()
}

impl RecordError {
    /// The error as a sentence about `file`: `F is not valid JSON …`,
    /// `F: record schema 2.0 … is newer than …`.
    pub fn about(&self, file: &str) -> String {
        match self {
            RecordError::NotJson(_) | RecordError::NotARecord => format!("{file} is {self}"),
            _ => format!("{file}: {self}"),
        }
    }

    /// Is the version the trouble (rather than damage)?
    pub fn is_version(&self) -> bool {
        matches!(
            self,
            RecordError::BadVersion { .. } | RecordError::Unreadable { .. }
        )
    }
}

impl RunRecord {
    /// The largest record file read (a record is kilobytes; a part
    /// downloaded from another job may be anything).
    pub const MAX_FILE_BYTES: u64 = 64 << 20;

    /// The bytes of a record file, refusing one over [`Self::MAX_FILE_BYTES`].
    pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let too_big = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "larger than {} MiB: not a run record",
                    Self::MAX_FILE_BYTES >> 20
                ),
            )
        };
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() > Self::MAX_FILE_BYTES {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        // A file that grows, or a device: never more than the cap either.
        file.take(Self::MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > Self::MAX_FILE_BYTES {
            return Err(too_big());
        }
        Ok(bytes)
    }

    /// Read a record: JSON first, then its version, then its shape — so a
    /// record of another major is refused for its version, not for a field.
    pub fn from_json(bytes: &[u8]) -> Result<RunRecord, RecordError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(RecordError::NotJson)?;
        let obj = value.as_object().ok_or(RecordError::NotARecord)?;
        if !obj.contains_key("mbx_version") && !obj.contains_key("schema_version") {
            return Err(RecordError::NotARecord);
        }
        let mbx_version = obj
            .get("mbx_version")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let version = match obj.get("schema_version") {
            None => SchemaVersion::UNVERSIONED,
            Some(v) => found(v).ok_or_else(|| RecordError::BadVersion {
                found: v.to_string(),
            })?,
        };
        if !version.readable() {
            return Err(RecordError::Unreadable {
                found: version,
                mbx_version,
            });
        }
        serde_json::from_value(value).map_err(|error| RecordError::Shape {
            version,
            mbx_version,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(extra: &str) -> String {
        format!(
            r#"{{"mbx_version": "0.1.0", "started_at": 0.0, "host_platform": "linux/amd64",
                "output": "o", "tags": [], "platforms": [], "index_digest": null,
                "verified": false, "wall_seconds": 0.0{extra}}}"#
        )
    }

    #[test]
    fn versions_parse_and_print() {
        assert_eq!("1.0".parse(), Ok(SchemaVersion { major: 1, minor: 0 }));
        assert_eq!("7".parse(), Ok(SchemaVersion { major: 7, minor: 0 }));
        assert_eq!("2.13".parse::<SchemaVersion>().unwrap().to_string(), "2.13");
        for bad in ["", "1.", ".1", "v1", "1.0.0", "-1.0", "1.x", "+1.0"] {
            assert_eq!(bad.parse::<SchemaVersion>(), Err(()), "{bad}");
        }
        assert!(SchemaVersion { major: 1, minor: 9 }.readable());
        assert!(!SchemaVersion { major: 2, minor: 0 }.readable());
        assert!(!SchemaVersion { major: 0, minor: 1 }.readable());
    }

    #[test]
    fn a_record_without_a_version_is_1_0_and_is_written_with_the_current_one() {
        let r = RunRecord::from_json(minimal("").as_bytes()).unwrap();
        assert_eq!(r.schema_version, SchemaVersion::UNVERSIONED);
        let written = serde_json::to_value(RunRecord::default()).unwrap();
        assert_eq!(
            written["schema_version"],
            SchemaVersion::CURRENT.to_string()
        );
        let back = RunRecord::from_json(written.to_string().as_bytes()).unwrap();
        assert_eq!(back.schema_version, SchemaVersion::CURRENT);
    }

    #[test]
    fn a_newer_minor_is_read_and_its_new_fields_ignored() {
        let r = RunRecord::from_json(
            minimal(r#", "schema_version": "1.7", "a_field_from_1_7": {"x": 1}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(r.schema_version, SchemaVersion { major: 1, minor: 7 });
    }

    #[test]
    fn another_major_is_refused_naming_the_version_and_the_writer() {
        // A major-2 record need not fit the 1.x types: the version is what is reported.
        let e = RunRecord::from_json(
            br#"{"mbx_version": "9.0.0", "schema_version": "2.1", "platforms": 3}"#,
        )
        .unwrap_err();
        assert!(e.is_version());
        assert_eq!(
            e.to_string(),
            format!(
                "record schema 2.1 (written by mbx 9.0.0) is newer than this mbx ({}) reads (1.x)",
                env!("CARGO_PKG_VERSION")
            )
        );
        let e = RunRecord::from_json(minimal(r#", "schema_version": 7"#).as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("record schema 7.0 (written by mbx 0.1.0) is newer"),
            "{e}"
        );
        let e =
            RunRecord::from_json(minimal(r#", "schema_version": "0.3""#).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("is older than"), "{e}");
        for bad in [r#""one""#, "null", "1.5", r#""1.0.0""#, "-1"] {
            let e =
                RunRecord::from_json(minimal(&format!(r#", "schema_version": {bad}"#)).as_bytes())
                    .unwrap_err();
            assert!(matches!(e, RecordError::BadVersion { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn damage_and_foreign_json_are_told_apart() {
        let full = minimal("");
        let e = RunRecord::from_json(&full.as_bytes()[..100]).unwrap_err();
        assert!(matches!(e, RecordError::NotJson(_)), "{e}");
        assert!(e.to_string().starts_with("not valid JSON"), "{e}");
        assert!(matches!(
            RunRecord::from_json(br#"{"not": "a record"}"#).unwrap_err(),
            RecordError::NotARecord
        ));
        assert!(matches!(
            RunRecord::from_json(b"[1, 2]").unwrap_err(),
            RecordError::NotARecord
        ));
        // The right version but a field of the wrong type.
        let e =
            RunRecord::from_json(minimal(r#", "schema_version": "1.0", "checks": 5"#).as_bytes())
                .unwrap_err();
        assert!(matches!(e, RecordError::Shape { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("record schema 1.0 (written by mbx 0.1.0) does not fit"),
            "{e}"
        );
    }
}
