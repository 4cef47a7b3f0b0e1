//! Checking a policy against the source's schema, failing closed: every
//! column of every copied table must have a rule that fits its type, and
//! everything the policy names must exist. All problems are listed at once.

use std::collections::BTreeSet;
use std::fmt;

use cutover_db::{Database, LogicalType, Schema, Table};

use crate::policy::{Action, Policy, Rule};

/// One thing wrong with a policy. Displayed as one line; never a row value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A source table the policy does not mention.
    UnclassifiedTable {
        /// The table.
        table: String,
    },
    /// A column of a copied table without a rule.
    UnclassifiedColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// The policy names a table the source does not have.
    UnknownTable {
        /// The name in the policy.
        table: String,
    },
    /// The policy names a column the source does not have.
    UnknownColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A rule that cannot apply to the column's type (or nullability).
    RuleMismatch {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Why.
        reason: String,
    },
    /// A `where` the source refuses.
    BadFilter {
        /// The table.
        table: String,
        /// The database's complaint (no row values: the source is only prepared against).
        reason: String,
    },
    /// A column referencing a masked key that is not masked the same way.
    ForeignKeyMismatch {
        /// The referencing table.
        table: String,
        /// The referencing column.
        column: String,
        /// The referenced `table.column`.
        referenced: String,
        /// The referenced column's rule.
        rule: String,
    },
    /// A rule that can make two rows of a unique key equal.
    UniqueClash {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The rule.
        rule: String,
        /// The key's columns.
        key: Vec<String>,
        /// Why the rule cannot keep it unique.
        reason: String,
    },
    /// A table or column only the target has, with no decision in `[drift]`.
    Drift {
        /// `table` or `column`.
        kind: &'static str,
        /// Its policy key (`schema.table` or `schema.table.column`).
        name: String,
    },
    /// `preserve` for a column only the target has: not possible, since
    /// the table's rows are replaced.
    DriftColumnPreserved {
        /// The column's policy key.
        name: String,
    },
    /// Copied tables referencing each other in a cycle that a `where`
    /// removes rows from, with no reference that can be nulled.
    ReferenceCycle {
        /// The tables of the cycle.
        tables: Vec<String>,
    },
    /// A declared reference (`references`) that does not fit the schema.
    BadReference {
        /// The referencing table.
        table: String,
        /// The referencing columns, as written.
        columns: String,
        /// Why.
        reason: String,
    },
    /// A hook the policy cannot run as written.
    BadHook {
        /// Why.
        reason: String,
    },
    /// Rules need the masking secret and it is not set.
    MissingSecret {
        /// The environment variable.
        variable: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnclassifiedTable { table } => write!(
                formatter,
                "table {table} is not in the policy (add it with action copy, skip or preserve)"
            ),
            Problem::UnclassifiedColumn { table, column } => write!(
                formatter,
                "table {table}: column {column} has no rule (every copied column must be classified)"
            ),
            Problem::UnknownTable { table } => {
                write!(
                    formatter,
                    "table {table} is in the policy but not in the source"
                )
            }
            Problem::UnknownColumn { table, column } => write!(
                formatter,
                "table {table}: column {column} is in the policy but not in the source"
            ),
            Problem::RuleMismatch {
                table,
                column,
                reason,
            } => {
                write!(formatter, "table {table}: column {column}: {reason}")
            }
            Problem::BadFilter { table, reason } => {
                write!(
                    formatter,
                    "table {table}: the where condition does not work on the source: {reason}"
                )
            }
            Problem::ForeignKeyMismatch {
                table,
                column,
                referenced,
                rule,
            } => write!(
                formatter,
                "table {table}: column {column} references {referenced}, whose rule is {rule}: give {column} the same rule so the reference still matches"
            ),
            Problem::UniqueClash {
                table,
                column,
                rule,
                key,
                reason,
            } => write!(
                formatter,
                "table {table}: column {column} is in the unique key ({}) and its rule {rule} cannot keep it unique: {reason}; use hash, keep, or a fake kind with a unique form",
                key.join(", ")
            ),
            Problem::Drift { kind, name } => write!(
                formatter,
                "{kind} {name} exists only in the target (a migration applied there first?): decide under [drift]: \"{name}\" = \"preserve\" or \"drop\"{}",
                if *kind == "column" {
                    " (only drop: the table's rows are replaced)"
                } else {
                    ""
                }
            ),
            Problem::DriftColumnPreserved { name } => write!(
                formatter,
                "column {name} exists only in the target and cannot be preserved (the table's rows come from the source): add it to the source, or decide \"drop\""
            ),
            Problem::BadHook { reason } => write!(formatter, "{reason}"),
            Problem::BadReference {
                table,
                columns,
                reason,
            } => write!(
                formatter,
                "table {table}: the reference declared for {columns}: {reason}"
            ),
            Problem::ReferenceCycle { tables } => write!(
                formatter,
                "tables {} reference each other in a cycle and a where removes rows from it: the rows to keep cannot be followed around it; set on_removed_parent = \"null\" on one of them whose reference is nullable, or remove the where",
                tables.join(", ")
            ),
            Problem::MissingSecret { variable } => write!(
                formatter,
                "rules hash, fake or shift-date need a secret: set the environment variable {variable}"
            ),
        }
    }
}

/// The policy key of a table: `schema.table`, or `table` where there is no schema.
pub fn table_key(table: &Table) -> String {
    table.name.to_string()
}

/// The table `name` names: a policy key (`schema.table`), or a bare name.
pub(crate) fn find_table<'a>(schema: &'a Schema, name: &str) -> Option<&'a Table> {
    schema
        .tables
        .iter()
        .find(|candidate| table_key(candidate) == name)
        .or_else(|| {
            schema
                .tables
                .iter()
                .find(|candidate| candidate.name.name == name)
        })
}

pub(crate) fn policy_table<'a>(
    policy: &'a Policy,
    table: &Table,
) -> Option<&'a crate::policy::TablePolicy> {
    let key = table_key(table);
    policy.tables.get(&key).or_else(|| {
        // `public.x` may be written `x`, and SQLite tables have no schema.
        policy.tables.get(&table.name.name)
    })
}

/// Whether a rule can apply to a column of this logical type.
fn fits(rule: &Rule, logical: Option<LogicalType>, nullable: bool) -> Result<(), String> {
    use LogicalType as T;
    let Some(logical) = logical else {
        return match rule {
            Rule::Keep | Rule::Null => Ok(()),
            other => Err(format!(
                "rule {} cannot apply to a column of a type cutover cannot read (use keep or null)",
                other.name()
            )),
        };
    };
    let ok = match rule {
        Rule::Keep | Rule::Fixed(_) => true,
        Rule::Null => {
            if !nullable {
                return Err("rule null on a NOT NULL column (use fixed or fake instead)".into());
            }
            true
        }
        Rule::Hash => matches!(
            logical,
            T::Text | T::Integer | T::Uuid | T::Bytes | T::Numeric
        ),
        Rule::Fake(kind) => match kind {
            crate::policy::FakeKind::Date => {
                matches!(logical, T::Date | T::Timestamp | T::TimestampTz)
            }
            _ => logical == T::Text,
        },
        Rule::ShiftDate { .. } => matches!(logical, T::Date | T::Timestamp | T::TimestampTz),
        Rule::RedactBlob => matches!(logical, T::Bytes | T::Text),
        Rule::Regex { .. } => logical == T::Text,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "rule {} does not fit a {} column",
            rule.name(),
            logical.name()
        ))
    }
}

/// Checks `policy` against the source's `schema` without touching data.
/// `secret_present` says whether the masking secret is set.
pub fn check(policy: &Policy, schema: &Schema, secret_present: bool) -> Vec<Problem> {
    let mut problems: Vec<Problem> = crate::subset::declared_references(policy, schema)
        .into_iter()
        .filter_map(Result::err)
        .map(|(table, columns, reason)| Problem::BadReference {
            table,
            columns,
            reason,
        })
        .collect();
    let schema = &crate::subset::with_declared_references(policy, schema);
    let mut known = BTreeSet::new();
    let mut needs_secret = false;
    for table in &schema.tables {
        let Some(table_policy) = policy_table(policy, table) else {
            problems.push(Problem::UnclassifiedTable {
                table: table_key(table),
            });
            continue;
        };
        known.insert(table_key(table));
        known.insert(table.name.name.clone());
        if table_policy.action != Action::Copy {
            continue;
        }
        for column in &table.columns {
            match table_policy.columns.get(&column.name) {
                None => problems.push(Problem::UnclassifiedColumn {
                    table: table_key(table),
                    column: column.name.clone(),
                }),
                Some(rule) => {
                    needs_secret |= rule.needs_secret();
                    // A large object's content is masked as a blob.
                    let logical = crate::transform::copied_logical_type(column);
                    if let Err(reason) = fits(rule, logical, column.nullable) {
                        problems.push(Problem::RuleMismatch {
                            table: table_key(table),
                            column: column.name.clone(),
                            reason,
                        });
                    }
                    if matches!(rule, Rule::Fake(crate::policy::FakeKind::HealthCard))
                        && !policy.locale.has_health_cards()
                    {
                        problems.push(Problem::RuleMismatch {
                            table: table_key(table),
                            column: column.name.clone(),
                            reason: format!(
                                "fake:health-card has no shape in locale {} (set locale = \"en-CA\" or \"fr-CA\", or use hash)",
                                policy.locale.name()
                            ),
                        });
                    }
                    if let Some(problem) =
                        rule_details(rule, table, &column.name, column.logical_type)
                    {
                        problems.push(problem);
                    }
                }
            }
        }
        for name in table_policy.columns.keys() {
            if table.column(name).is_none() {
                problems.push(Problem::UnknownColumn {
                    table: table_key(table),
                    column: name.clone(),
                });
            }
        }
        problems.extend(unique_problems(table, table_policy));
        problems.extend(foreign_key_problems(policy, schema, table, table_policy));
    }
    for name in policy.tables.keys() {
        if !known.contains(name) {
            problems.push(Problem::UnknownTable {
                table: name.clone(),
            });
        }
    }
    problems.extend(
        crate::subset::unbreakable_cycles(policy, schema)
            .into_iter()
            .map(|tables| Problem::ReferenceCycle { tables }),
    );
    problems.extend(
        crate::hooks::hook_problems(policy)
            .into_iter()
            .map(|reason| Problem::BadHook { reason }),
    );
    if needs_secret && !secret_present {
        problems.push(Problem::MissingSecret {
            variable: policy.secret_env.clone(),
        });
    }
    problems
}

/// Problems inside a rule: a regex that does not compile, a fixed value that
/// is not of the column's type, a shift-date entity column that does not exist.
fn rule_details(
    rule: &Rule,
    table: &Table,
    column: &str,
    logical: Option<LogicalType>,
) -> Option<Problem> {
    let mismatch = |reason: String| Problem::RuleMismatch {
        table: table_key(table),
        column: column.to_owned(),
        reason,
    };
    match rule {
        Rule::Regex { pattern, .. } => regex::Regex::new(pattern).err().map(|error| {
            let error = error.to_string();
            let reason = error
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned();
            mismatch(format!("the regex does not compile: {reason}"))
        }),
        Rule::Fixed(value) => {
            let logical = logical?;
            cutover_db::Value::from_text(logical, value)
                .is_none()
                .then(|| mismatch(format!("the fixed value is not a valid {}", logical.name())))
        }
        Rule::ShiftDate { by: Some(by), .. } => table
            .column(by)
            .is_none()
            .then(|| mismatch(format!("shift-date by {by}: the table has no column {by}"))),
        _ => None,
    }
}

/// Every column of a unique key must keep distinct values distinct: a key
/// broken by masking would fail the load, hours in, instead of here.
fn unique_problems(table: &Table, table_policy: &crate::policy::TablePolicy) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut named = BTreeSet::new();
    for key in crate::unique::unique_keys(table) {
        for column in &key {
            let Some(rule) = table_policy.columns.get(column) else {
                continue;
            };
            // Rows of one `by` entity shift alike, so a shift-date keyed by
            // another column of the key, itself kept distinct, keeps the key unique.
            let shifted_within_key = match rule {
                Rule::ShiftDate { by: Some(by), .. } => {
                    key.contains(by)
                        && table_policy
                            .columns
                            .get(by)
                            .is_some_and(|rule| crate::unique::clashes(rule).is_none())
                }
                _ => false,
            };
            if let Some(reason) = crate::unique::clashes(rule)
                && !shifted_within_key
                && named.insert(column.clone())
            {
                let rule = match rule {
                    Rule::Fake(kind) => format!("fake:{}", kind.name()),
                    other => other.name().to_owned(),
                };
                problems.push(Problem::UniqueClash {
                    table: table_key(table),
                    column: column.clone(),
                    rule,
                    key: key.clone(),
                    reason,
                });
            }
        }
    }
    problems
}

/// A referencing column must be masked like the column it references, or
/// the copied foreign key would point at nothing.
fn foreign_key_problems(
    policy: &Policy,
    schema: &Schema,
    table: &Table,
    table_policy: &crate::policy::TablePolicy,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for foreign_key in &table.foreign_keys {
        let Some(referenced) = schema.table(&foreign_key.referenced_table) else {
            continue;
        };
        let Some(referenced_policy) = policy_table(policy, referenced) else {
            continue;
        };
        if referenced_policy.action != Action::Copy {
            continue;
        }
        for (column, referenced_column) in foreign_key
            .columns
            .iter()
            .zip(&foreign_key.referenced_columns)
        {
            let referenced_rule = referenced_policy
                .columns
                .get(referenced_column)
                .unwrap_or(&Rule::Keep);
            let rule = table_policy.columns.get(column).unwrap_or(&Rule::Keep);
            let changes_values = !matches!(referenced_rule, Rule::Keep);
            if changes_values && rule != referenced_rule && !matches!(rule, Rule::Null) {
                problems.push(Problem::ForeignKeyMismatch {
                    table: table_key(table),
                    column: column.clone(),
                    referenced: format!("{}.{referenced_column}", table_key(referenced)),
                    rule: referenced_rule.name().to_owned(),
                });
            }
        }
    }
    problems
}

/// The target's tables and columns the source lacks, and what the policy
/// decided for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Target-only tables kept as they are.
    pub preserved_tables: Vec<String>,
    /// Target-only tables dropped.
    pub dropped_tables: Vec<String>,
    /// Target-only columns of replaced tables, dropped with them.
    pub dropped_columns: Vec<String>,
    /// Target-only tables and columns without a decision (or a decision
    /// that cannot be carried out).
    pub problems: Vec<Problem>,
}

/// Compares the target's schema with the source's: every table and column
/// only the target has must be decided in the policy's `[drift]`.
pub fn drift(policy: &Policy, source: &Schema, target: &Schema) -> Drift {
    use crate::policy::DriftDecision;
    let mut drift = Drift::default();
    let decision = |keys: [String; 2]| keys.iter().find_map(|key| policy.drift.get(key).copied());
    for table in &target.tables {
        let key = table_key(table);
        if table
            .name
            .schema
            .as_deref()
            .is_some_and(|schema| schema.starts_with("cutover_"))
        {
            continue;
        }
        let in_source = source.tables.iter().find(|candidate| {
            table_key(candidate) == key || candidate.name.name == table.name.name
        });
        let Some(in_source) = in_source else {
            match decision([key.clone(), table.name.name.clone()]) {
                Some(DriftDecision::Preserve) => drift.preserved_tables.push(key),
                Some(DriftDecision::Drop) => drift.dropped_tables.push(key),
                None => drift.problems.push(Problem::Drift {
                    kind: "table",
                    name: key,
                }),
            }
            continue;
        };
        for column in &table.columns {
            if in_source.column(&column.name).is_some() {
                continue;
            }
            let name = format!("{key}.{}", column.name);
            match decision([name.clone(), format!("{}.{}", table.name.name, column.name)]) {
                Some(DriftDecision::Drop) => drift.dropped_columns.push(name),
                Some(DriftDecision::Preserve) => {
                    drift.problems.push(Problem::DriftColumnPreserved { name })
                }
                None => drift.problems.push(Problem::Drift {
                    kind: "column",
                    name,
                }),
            }
        }
    }
    drift
}

/// Asks the source to prepare each copied table's `where` (nothing is run).
pub async fn check_filters(database: &Database, policy: &Policy, schema: &Schema) -> Vec<Problem> {
    let mut problems = Vec::new();
    for table in &schema.tables {
        let Some(table_policy) = policy_table(policy, table) else {
            continue;
        };
        let Some(filter) = &table_policy.filter else {
            continue;
        };
        let sql = format!("SELECT 1 FROM {} WHERE ({filter})", table.name.quoted());
        if let Err(error) = database.describe(&sql).await {
            problems.push(Problem::BadFilter {
                table: table_key(table),
                reason: error.to_string(),
            });
        }
    }
    problems
}
