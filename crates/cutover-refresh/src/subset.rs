//! Subsetting: which source rows a refresh keeps. A table's own `where`
//! removes rows; rows referencing a removed row are removed too (or their
//! reference set to NULL, as the policy says), so foreign keys stay
//! consistent. Conditions are pushed into the source's SELECTs.

use crate::policy::{Action, OnRemovedParent, Policy};
use crate::transform::TableCopy;

/// The rows of a table a refresh keeps: a condition on the table's rows,
/// and the joins (kept parent keys) it names.
#[derive(Debug, Default)]
struct Kept {
    joins: Vec<String>,
    conditions: Vec<String>,
}

/// The source rows of `table` that the refresh keeps: its own `where`, and,
/// where rows referencing a removed row are removed, only rows whose parent
/// is kept (recursively). `None` when every row is kept.
fn kept_rows(
    policy: &Policy,
    schema: &cutover_db::Schema,
    table: &cutover_db::Table,
    depth: usize,
) -> Option<Kept> {
    let table_policy = crate::check::policy_table(policy, table)?;
    let mut kept = Kept {
        joins: Vec::new(),
        conditions: table_policy
            .filter
            .iter()
            .map(|filter| format!("({filter})"))
            .collect(),
    };
    if depth < 8
        && table_policy
            .on_removed_parent
            .unwrap_or(OnRemovedParent::Remove)
            == OnRemovedParent::Remove
    {
        for reference in references_to_filtered(policy, schema, table, depth) {
            // A reference with a NULL in any of its columns references
            // nothing (MATCH SIMPLE, the default), so it stays.
            kept.conditions
                .push(format!("({} OR {})", reference.nulls(), reference.found));
            kept.joins.push(reference.join);
        }
    }
    (!kept.conditions.is_empty()).then_some(kept)
}

/// A reference (single or multi-column) from a table to a copied parent
/// that removes rows, as a join to the parent's kept keys.
struct KeptParent {
    /// The referencing columns.
    columns: Vec<String>,
    /// `LEFT JOIN (SELECT [DISTINCT] key … FROM parent … WHERE kept) AS
    /// alias ON alias.key = table.column …`.
    join: String,
    /// True where the row's parent is kept (`alias.key IS NOT NULL`).
    found: String,
}

impl KeptParent {
    /// True where a referencing column is NULL (the reference names nothing).
    fn nulls(&self) -> String {
        self.columns
            .iter()
            .map(|column| format!("{} IS NULL", cutover_db::schema::quote_identifier(column)))
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

/// Each reference of `table` to a copied parent that removes rows, joined to
/// the parent's kept keys. A join lets the server build the kept keys once
/// (a hash of them, spilling to disk when large) where a correlated EXISTS
/// under `IS NULL OR` is a key lookup per row, in every partition of a
/// partitioned parent that its key does not prune.
fn references_to_filtered(
    policy: &Policy,
    schema: &cutover_db::Schema,
    table: &cutover_db::Table,
    depth: usize,
) -> Vec<KeptParent> {
    let mut references = Vec::new();
    for foreign_key in &table.foreign_keys {
        if foreign_key.columns.is_empty()
            || foreign_key.columns.len() != foreign_key.referenced_columns.len()
            || foreign_key.referenced_table.name == table.name.name
        {
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
        let Some(parent_kept) = kept_rows(policy, schema, parent, depth + 1) else {
            continue;
        };
        let quote = cutover_db::schema::quote_identifier;
        let parent_name = parent.name.quoted();
        let table_name = table.name.quoted();
        // Aliases differ between the joins of one level; a nested level's
        // aliases are inside its own subquery.
        let alias = format!("cutover_kept_{depth}_{}", references.len());
        let keys: Vec<String> = foreign_key
            .referenced_columns
            .iter()
            .enumerate()
            .map(|(index, column)| format!("{parent_name}.{} AS cutover_k{index}", quote(column)))
            .collect();
        let on: Vec<String> = foreign_key
            .columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                format!("{alias}.cutover_k{index} = {table_name}.{}", quote(column))
            })
            .collect();
        // A referenced key that is not unique (a declared reference) is
        // made so, or the join would repeat the referencing rows.
        let unique = crate::unique::unique_keys(parent).iter().any(|key| {
            key.iter()
                .all(|column| foreign_key.referenced_columns.contains(column))
        });
        references.push(KeptParent {
            columns: foreign_key.columns.clone(),
            join: format!(
                "LEFT JOIN (SELECT {}{} FROM {parent_name}{} WHERE {}) AS {alias} ON {}",
                if unique { "" } else { "DISTINCT " },
                keys.join(", "),
                crate::transform::joined(&parent_kept.joins),
                parent_kept.conditions.join(" AND "),
                on.join(" AND ")
            ),
            found: format!("{alias}.cutover_k0 IS NOT NULL"),
        });
    }
    references
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
    if let Some(kept) = kept_rows(policy, schema, table, 0) {
        copy.filter = Some(kept.conditions.join(" AND "));
        copy.joins = kept.joins;
    }
    let nulls = crate::check::policy_table(policy, table)
        .and_then(|table_policy| table_policy.on_removed_parent)
        == Some(OnRemovedParent::Null);
    if nulls {
        for reference in references_to_filtered(policy, schema, table, 0) {
            // A reference with a NULL in any column references nothing: it stays.
            let kept = format!("{} OR {}", reference.nulls(), reference.found);
            for column in &reference.columns {
                if let Some(index) = table
                    .columns
                    .iter()
                    .position(|candidate| &candidate.name == column)
                {
                    let quoted = cutover_db::schema::quote_identifier(column);
                    copy.expressions[index] = Some(format!("CASE WHEN {kept} THEN {quoted} END"));
                }
            }
            copy.joins.push(reference.join);
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

/// Copied tables whose references form a cycle that a `where` removes rows
/// from, with no table in it whose references to removed rows are nulled
/// (`on_removed_parent = "null"` on nullable columns): the rows to keep
/// cannot be followed around the cycle, so the refresh refuses it. Each
/// cycle as its tables (a strongly connected set of two or more).
pub(crate) fn unbreakable_cycles(policy: &Policy, schema: &cutover_db::Schema) -> Vec<Vec<String>> {
    let copied: Vec<&cutover_db::Table> = schema
        .tables
        .iter()
        .filter(|table| {
            crate::check::policy_table(policy, table)
                .is_some_and(|table_policy| table_policy.action == Action::Copy)
        })
        .collect();
    let index_of = |name: &cutover_db::TableName| {
        copied.iter().position(|table| {
            table.name.name == name.name
                && (name.schema.is_none() || table.name.schema == name.schema)
        })
    };
    let edges: Vec<Vec<usize>> = copied
        .iter()
        .enumerate()
        .map(|(index, table)| {
            table
                .foreign_keys
                .iter()
                .filter_map(|foreign_key| index_of(&foreign_key.referenced_table))
                .filter(|parent| *parent != index)
                .collect()
        })
        .collect();
    // Strongly connected sets: the tables each table reaches and is reached by.
    let reach = |start: usize| {
        let mut seen = vec![false; copied.len()];
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for next in &edges[node] {
                if !seen[*next] {
                    seen[*next] = true;
                    stack.push(*next);
                }
            }
        }
        seen
    };
    let reaches: Vec<Vec<bool>> = (0..copied.len()).map(reach).collect();
    let mut placed = vec![false; copied.len()];
    let mut cycles = Vec::new();
    for start in 0..copied.len() {
        if placed[start] || !reaches[start][start] {
            continue;
        }
        let members: Vec<usize> = (0..copied.len())
            .filter(|other| reaches[start][*other] && reaches[*other][start])
            .collect();
        for member in &members {
            placed[*member] = true;
        }
        let policy_of = |index: usize| crate::check::policy_table(policy, copied[index]);
        let filtered = members.iter().any(|member| {
            policy_of(*member).is_some_and(|table_policy| table_policy.filter.is_some())
        });
        let broken = members.iter().any(|member| {
            let table = copied[*member];
            policy_of(*member).and_then(|table_policy| table_policy.on_removed_parent)
                == Some(OnRemovedParent::Null)
                && table.foreign_keys.iter().any(|foreign_key| {
                    index_of(&foreign_key.referenced_table)
                        .is_some_and(|parent| members.contains(&parent))
                        && foreign_key.columns.iter().all(|column| {
                            table.column(column).is_some_and(|column| column.nullable)
                        })
                })
        });
        if filtered && !broken {
            let mut names: Vec<String> = members
                .iter()
                .map(|member| crate::check::table_key(copied[*member]))
                .collect();
            names.sort();
            cycles.push(names);
        }
    }
    cycles
}

/// One reference the policy declares (`[tables.T.references]`, local
/// columns → `table(col, …)`), resolved against the source's schema: the
/// referencing table's index and the reference as a foreign key; or the
/// referencing table's key, the local columns as written, and why the
/// declaration does not fit.
type Declared = Result<(usize, cutover_db::schema::ForeignKey), (String, String, String)>;

/// Every reference the policy declares, resolved against `schema`.
pub(crate) fn declared_references(policy: &Policy, schema: &cutover_db::Schema) -> Vec<Declared> {
    let mut declared = Vec::new();
    for (index, table) in schema.tables.iter().enumerate() {
        let Some(table_policy) = crate::check::policy_table(policy, table) else {
            continue;
        };
        for (columns, target) in &table_policy.references {
            let failed = |reason: String| (crate::check::table_key(table), columns.clone(), reason);
            declared.push(
                resolve_reference(schema, table, columns, target)
                    .map(|foreign_key| (index, foreign_key))
                    .map_err(failed),
            );
        }
    }
    declared
}

fn resolve_reference(
    schema: &cutover_db::Schema,
    table: &cutover_db::Table,
    columns: &str,
    target: &str,
) -> Result<cutover_db::schema::ForeignKey, String> {
    let names = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect()
    };
    let (parent_name, parent_columns) = target
        .trim()
        .strip_suffix(')')
        .and_then(|rest| rest.split_once('('))
        .map(|(name, list)| (name.trim(), names(list)))
        .filter(|(name, list)| !name.is_empty() && !list.is_empty())
        .ok_or_else(|| format!("`{target}` is not of the form table(column, …)"))?;
    let local = names(columns);
    if let Some(missing) = local.iter().find(|column| table.column(column).is_none()) {
        return Err(format!("the table has no column {missing}"));
    }
    let parent = crate::check::find_table(schema, parent_name)
        .ok_or_else(|| format!("the source has no table {parent_name}"))?;
    if let Some(missing) = parent_columns
        .iter()
        .find(|column| parent.column(column).is_none())
    {
        return Err(format!("table {parent_name} has no column {missing}"));
    }
    if local.len() != parent_columns.len() {
        return Err(format!(
            "{} columns reference {} columns of {parent_name}",
            local.len(),
            parent_columns.len()
        ));
    }
    Ok(cutover_db::schema::ForeignKey {
        name: None,
        columns: local,
        referenced_table: parent.name.clone(),
        referenced_columns: parent_columns,
        on_delete: "no action".into(),
    })
}

/// `schema` with the policy's declared references added as foreign keys,
/// so that subsetting, load order, cycles and masking consistency follow
/// them (declarations that do not fit are left out: `check` reports them).
/// Only what is read from the source uses it: no constraint is created.
pub(crate) fn with_declared_references(
    policy: &Policy,
    schema: &cutover_db::Schema,
) -> cutover_db::Schema {
    let mut declared = schema.clone();
    for (index, foreign_key) in declared_references(policy, schema).into_iter().flatten() {
        declared.tables[index].foreign_keys.push(foreign_key);
    }
    declared
}
