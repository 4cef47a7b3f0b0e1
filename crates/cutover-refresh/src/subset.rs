//! Subsetting: which source rows a refresh keeps. A table's own `where`
//! removes rows; rows referencing a removed row are removed too (or their
//! reference set to NULL, as the policy says), so foreign keys stay
//! consistent. Conditions are pushed into the source's SELECTs.

use crate::policy::{Action, OnRemovedParent, Policy};
use crate::transform::TableCopy;

/// The source rows of `table` that the refresh keeps: its own `where`, and,
/// where rows referencing a removed row are removed, only rows whose parent
/// is kept (recursively). `None` when every row is kept.
fn kept_condition(
    policy: &Policy,
    schema: &cutover_db::Schema,
    table: &cutover_db::Table,
    depth: usize,
) -> Option<String> {
    let table_policy = crate::check::policy_table(policy, table)?;
    let mut conditions: Vec<String> = table_policy
        .filter
        .iter()
        .map(|filter| format!("({filter})"))
        .collect();
    if depth < 8
        && table_policy
            .on_removed_parent
            .unwrap_or(OnRemovedParent::Remove)
            == OnRemovedParent::Remove
    {
        conditions.extend(parent_conditions(policy, schema, table, depth));
    }
    (!conditions.is_empty()).then(|| conditions.join(" AND "))
}

/// For each single-column reference to a copied parent that removes rows:
/// `(column, "EXISTS (SELECT 1 FROM parent WHERE parent.key = table.column AND kept)")`.
/// A correlated EXISTS is one key lookup per row; `column IN (SELECT …)`
/// under an OR cannot become a join, and once the kept keys outgrow the
/// server's hash memory it rescans the parent for every row.
fn references_to_filtered(
    policy: &Policy,
    schema: &cutover_db::Schema,
    table: &cutover_db::Table,
    depth: usize,
) -> Vec<(String, String)> {
    let mut references = Vec::new();
    for foreign_key in &table.foreign_keys {
        if foreign_key.columns.len() != 1 || foreign_key.referenced_table.name == table.name.name {
            continue;
        }
        let Some(parent) = schema.table(&foreign_key.referenced_table) else {
            continue;
        };
        let parent_copied = crate::check::policy_table(policy, parent)
            .is_some_and(|parent_policy| parent_policy.action == Action::Copy);
        if !parent_copied {
            continue;
        }
        let Some(kept) = kept_condition(policy, schema, parent, depth + 1) else {
            continue;
        };
        let column = cutover_db::schema::quote_identifier(&foreign_key.columns[0]);
        let parent_column =
            cutover_db::schema::quote_identifier(&foreign_key.referenced_columns[0]);
        let parent_name = parent.name.quoted();
        let table_name = table.name.quoted();
        references.push((
            foreign_key.columns[0].clone(),
            format!(
                "EXISTS (SELECT 1 FROM {parent_name} WHERE {parent_name}.{parent_column} = {table_name}.{column} AND ({kept}))"
            ),
        ));
    }
    references
}

fn parent_conditions(
    policy: &Policy,
    schema: &cutover_db::Schema,
    table: &cutover_db::Table,
    depth: usize,
) -> Vec<String> {
    references_to_filtered(policy, schema, table, depth)
        .into_iter()
        .map(|(column, kept)| {
            format!(
                "({} IS NULL OR {kept})",
                cutover_db::schema::quote_identifier(&column)
            )
        })
        .collect()
}

/// Tables ordered so that referenced tables come before the tables referencing them.
pub(crate) fn load_order(schema: &cutover_db::Schema) -> Vec<&cutover_db::Table> {
    let mut placed: Vec<&cutover_db::Table> = Vec::new();
    let mut remaining: Vec<&cutover_db::Table> = schema.tables.iter().collect();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|table| {
            table.foreign_keys.iter().all(|foreign_key| {
                foreign_key.referenced_table.name == table.name.name
                    || !remaining
                        .iter()
                        .any(|other| other.name.name == foreign_key.referenced_table.name)
            })
        });
        // A cycle: take the next table as it is.
        placed.push(remaining.remove(ready.unwrap_or(0)));
    }
    placed
}

/// The copy plan of a copied table: its rules, its kept rows, and references
/// to removed rows nulled where the policy says so. `None` unless copied.
pub(crate) fn copy_plan(
    policy: &Policy,
    schema: &cutover_db::Schema,
    table: &cutover_db::Table,
) -> Option<TableCopy> {
    let mut copy = TableCopy::plan(policy, table)?;
    copy.filter = kept_condition(policy, schema, table, 0);
    let nulls = crate::check::policy_table(policy, table)
        .and_then(|table_policy| table_policy.on_removed_parent)
        == Some(OnRemovedParent::Null);
    if nulls {
        for (column, kept) in references_to_filtered(policy, schema, table, 0) {
            if let Some(index) = table
                .columns
                .iter()
                .position(|candidate| candidate.name == column)
            {
                let quoted = cutover_db::schema::quote_identifier(&column);
                copy.expressions[index] = Some(format!("CASE WHEN {kept} THEN {quoted} END"));
            }
        }
    }
    Some(copy)
}

/// The engine's estimate of the rows the copied tables hold (for progress).
pub(crate) fn copied_rows_estimate(policy: &Policy, schema: &cutover_db::Schema) -> u64 {
    schema
        .tables
        .iter()
        .filter(|table| {
            crate::check::policy_table(policy, table)
                .is_some_and(|table_policy| table_policy.action == Action::Copy)
        })
        .map(|table| table.row_count.or(table.row_estimate).unwrap_or(0))
        .sum()
}

/// The columns of a copied table that a rule other than `keep` changes, in table order.
pub(crate) fn masked_columns(policy: &Policy, table: &cutover_db::Table) -> Vec<String> {
    let Some(table_policy) = crate::check::policy_table(policy, table) else {
        return Vec::new();
    };
    if table_policy.action != Action::Copy {
        return Vec::new();
    }
    table
        .columns
        .iter()
        .filter(|column| {
            table_policy
                .columns
                .get(&column.name)
                .is_some_and(|rule| !matches!(rule, crate::policy::Rule::Keep))
        })
        .map(|column| column.name.clone())
        .collect()
}
