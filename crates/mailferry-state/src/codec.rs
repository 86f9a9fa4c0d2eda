//! How core types are stored in SQL columns, and the errors a store call can end in. Encodings
//! are chosen to be unambiguous and portable to PostgreSQL: folder paths as a JSON array of
//! segments (a `/`-joined name would confuse `a/b` with the single segment `"a/b"`), checksums
//! as 32-byte blobs, statuses as small integers, `u64`s bit-cast to SQL's signed 64-bit
//! integers (lossless both ways; ordering is irrelevant for the columns that hold them).

use mailferry_core::{
    Checksum, Error, FolderPath, FolderScope, ItemRecord, ItemStatus, SourceKey, TargetKey,
};

/// Why a store call failed, before the location and operation are added.
#[derive(Debug)]
pub(crate) enum Failure {
    /// SQLite said no.
    Sql(rusqlite::Error),
    /// A value in the file is not what this crate writes.
    Corrupt(String),
    /// The file's schema is newer than this build.
    NewerSchema { found: i64, known: i64 },
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

impl Failure {
    /// The mailferry error for this failure while doing `what` on the store at `location`.
    /// Busy and locked are transient (another process holds the write lock longer than the busy
    /// timeout; retrying helps); everything else about a state store is fatal, because going on
    /// without a working state would lose the exactly-once guarantee.
    pub(crate) fn into_error(self, location: &str, what: &str) -> Error {
        use rusqlite::ErrorCode as C;
        match self {
            Failure::Sql(e) => {
                let code = e.sqlite_error_code();
                let message = match code {
                    Some(C::DatabaseBusy | C::DatabaseLocked) => {
                        return Error::transient(format!(
                            "state store {location}: {what}: the database is locked by another \
                             process or connection"
                        ))
                        .with_source(e);
                    }
                    Some(C::DatabaseCorrupt | C::NotADatabase) => format!(
                        "state store {location} is damaged or not a mailferry state file \
                         ({what}); move it aside to start over"
                    ),
                    Some(C::CannotOpen | C::PermissionDenied | C::ReadOnly) => format!(
                        "cannot write the state store {location} ({what}): check that the file \
                         and its directory are writable"
                    ),
                    Some(C::DiskFull) => {
                        format!("state store {location}: {what}: the disk is full")
                    }
                    _ => format!("state store {location}: {what}"),
                };
                Error::fatal(message).with_source(e)
            }
            Failure::Corrupt(reason) => Error::fatal(format!(
                "state store {location} holds data this version cannot read ({what}): {reason}"
            )),
            Failure::NewerSchema { found, known } => Error::fatal(format!(
                "state store {location} was written by a newer mailferry (schema version \
                 {found}, this build knows up to {known}): upgrade mailferry or use another \
                 state file"
            )),
        }
    }
}

/// Says which folder a call is about, for error messages.
pub(crate) fn describe(scope: &FolderScope) -> String {
    format!(
        "folder {} of migration {:?} (validity {})",
        scope.folder, scope.migration, scope.validity
    )
}

/// The `folders.folder` column: a JSON array of segments.
pub(crate) fn folder_column(path: &FolderPath) -> Result<String, Failure> {
    serde_json::to_string(path).map_err(|e| Failure::Corrupt(format!("folder {path}: {e}")))
}

/// Bit-casts a `u64` into SQL's signed integer; [`from_sql_u64`] undoes it exactly.
pub(crate) fn to_sql_u64(v: u64) -> i64 {
    v as i64
}

/// Undoes [`to_sql_u64`].
pub(crate) fn from_sql_u64(v: i64) -> u64 {
    v as u64
}

/// The `items.status` column.
pub(crate) fn status_code(status: ItemStatus) -> i64 {
    match status {
        ItemStatus::Pending => 0,
        ItemStatus::Done => 1,
        ItemStatus::Failed => 2,
    }
}

fn status_from_code(code: i64) -> Option<ItemStatus> {
    match code {
        0 => Some(ItemStatus::Pending),
        1 => Some(ItemStatus::Done),
        2 => Some(ItemStatus::Failed),
        _ => None,
    }
}

/// The columns [`record_from_row`] reads, in order.
pub(crate) const ITEM_COLUMNS: &str =
    "key, checksum, size, fingerprint, target_key, status, reason";

/// Reads an [`ItemRecord`] from a row selected with [`ITEM_COLUMNS`].
pub(crate) fn record_from_row(row: &rusqlite::Row<'_>) -> Result<ItemRecord, Failure> {
    let key: String = row.get(0)?;
    let checksum = match row.get::<_, Option<Vec<u8>>>(1)? {
        None => None,
        Some(blob) => {
            let bytes: [u8; 32] = blob.as_slice().try_into().map_err(|_| {
                Failure::Corrupt(format!(
                    "the checksum of item {key} is {} bytes, not 32",
                    blob.len()
                ))
            })?;
            Some(Checksum::from_bytes(bytes))
        }
    };
    let code: i64 = row.get(5)?;
    let status = status_from_code(code)
        .ok_or_else(|| Failure::Corrupt(format!("item {key} has the unknown status {code}")))?;
    Ok(ItemRecord {
        checksum,
        size: from_sql_u64(row.get(2)?),
        fingerprint: row.get(3)?,
        target_key: row.get::<_, Option<String>>(4)?.map(TargetKey),
        status,
        reason: row.get(6)?,
        key: SourceKey(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_survives_the_signed_column_at_the_extremes() {
        for v in [0, 1, u64::from(u32::MAX), i64::MAX as u64, u64::MAX] {
            assert_eq!(from_sql_u64(to_sql_u64(v)), v);
        }
    }

    #[test]
    fn status_codes_round_trip_and_unknown_codes_are_refused() {
        for s in [ItemStatus::Pending, ItemStatus::Done, ItemStatus::Failed] {
            assert_eq!(status_from_code(status_code(s)), Some(s));
        }
        assert_eq!(status_from_code(3), None);
    }

    #[test]
    fn folder_column_keeps_a_slash_inside_a_segment_distinct() {
        let nested = folder_column(&FolderPath::new(["a", "b"])).expect("encode");
        let flat = folder_column(&FolderPath::new(["a/b"])).expect("encode");
        assert_ne!(nested, flat);
        assert_eq!(nested, r#"["a","b"]"#);
    }

    #[test]
    fn busy_is_transient_and_corruption_is_fatal_naming_the_file() {
        let sql = |code| {
            Failure::Sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        let busy = sql(rusqlite::ffi::SQLITE_BUSY).into_error("/tmp/s.db", "recording");
        assert!(busy.is_transient(), "{busy}");
        let corrupt = sql(rusqlite::ffi::SQLITE_NOTADB).into_error("/tmp/s.db", "opening");
        assert!(corrupt.is_fatal());
        assert!(corrupt.to_string().contains("/tmp/s.db"), "{corrupt}");
    }
}
