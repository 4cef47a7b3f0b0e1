//! Which columns must stay unique after masking: the columns of primary
//! keys, unique constraints and unique indexes (single and composite), and
//! the columns that reference one (a foreign key always references a unique
//! key, so its values must mask as the referenced ones do).

use std::collections::BTreeSet;

use cutover_db::Table;

use crate::policy::Rule;

/// The table's unique keys, each as its columns (expression indexes, which
/// name no plain column, left out).
pub(crate) fn unique_keys(table: &Table) -> Vec<Vec<String>> {
    let mut keys: Vec<Vec<String>> = table
        .primary_key
        .iter()
        .chain(&table.unique_constraints)
        .map(|key| key.columns.clone())
        .chain(
            table
                .indexes
                .iter()
                .filter(|index| index.unique || index.primary)
                .map(|index| index.columns.clone()),
        )
        .filter(|columns| {
            !columns.is_empty() && columns.iter().all(|name| table.column(name).is_some())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The columns whose masked values must keep distinct values distinct.
pub(crate) fn unique_columns(table: &Table) -> BTreeSet<String> {
    unique_keys(table)
        .into_iter()
        .flatten()
        .chain(
            table
                .foreign_keys
                .iter()
                .flat_map(|foreign_key| foreign_key.columns.iter().cloned()),
        )
        .collect()
}

/// Why `rule` may give two distinct values of a unique column the same
/// masked value; `None` when it keeps them distinct (NULLs never clash in
/// a unique key).
pub(crate) fn clashes(rule: &Rule) -> Option<String> {
    match rule {
        Rule::Keep | Rule::Hash | Rule::Null => None,
        Rule::Fake(kind) if kind.can_be_unique() => None,
        Rule::Fake(kind) => Some(format!(
            "fake:{} has no unique form (its values repeat)",
            kind.name()
        )),
        Rule::Fixed(_) => Some("fixed gives every row the same value".into()),
        Rule::ShiftDate { .. } => {
            Some("shift-date moves values by different amounts, so two can meet (unless `by` names another column of the key)".into())
        }
        Rule::RedactBlob => Some("redact-blob empties every value".into()),
        Rule::Regex { .. } => Some("a regex replacement can make two values equal".into()),
    }
}
