//! Order-independent content fingerprints of tables: evidence that a
//! preserved table came back exactly as it was.

use cutover_db::{Database, ReadRequest, TableName};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A table's row count and content hash (the wrapping sum of every row's
/// canonical xxh3 hash, so row order does not matter and duplicates count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Rows.
    pub rows: u64,
    /// The content hash, as 16 hex digits.
    #[serde(with = "hex")]
    pub hash: u64,
}

mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{hash:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// A preserved table before the refresh (the live target) and after (staged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preserved {
    /// The target's table before the refresh.
    pub before: Fingerprint,
    /// The refreshed table.
    pub after: Fingerprint,
    /// The policy's after-load hooks changed it: `after` is what they left.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed_by_hooks: bool,
}

/// Records a preserved table's fingerprint after the after-load hooks:
/// where they changed it, `after` is what they left.
pub(crate) fn after_hooks(outcome: &mut crate::sqlite_refresh::TableOutcome, now: Fingerprint) {
    if let Some(preserved) = &mut outcome.preserved
        && preserved.after != now
    {
        preserved.after = now;
        preserved.changed_by_hooks = true;
    }
}

/// The fingerprint of `columns` of `table`, streamed.
pub async fn table(
    database: &Database,
    table: &TableName,
    columns: &[String],
) -> Result<Fingerprint> {
    let mut rows = database
        .read(
            &ReadRequest::table(table.clone())
                .columns(columns.to_vec())
                .unordered(),
        )
        .await?;
    let mut hasher = cutover_db::canonical::RowHasher::new();
    let mut fingerprint = Fingerprint { rows: 0, hash: 0 };
    while let Some(row) = rows.next().await {
        let row = row?;
        fingerprint.rows += 1;
        fingerprint.hash = fingerprint.hash.wrapping_add(hasher.hash(&row));
    }
    Ok(fingerprint)
}
