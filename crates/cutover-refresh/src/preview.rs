//! A preview of what acceptance will hold: a few rows of one copied table,
//! read through the table's `where` and masked by its rules exactly as the
//! refresh would, each column named with the rule that made it.

use cutover_db::{Database, Schema, Value};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::mask::Masker;
use crate::policy::{Action, Policy, Rule};

/// The most rows a preview shows.
pub const MAX_PREVIEW_ROWS: usize = 1_000;

/// Masked rows of one table.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The table's policy key.
    pub table: String,
    /// Each column and the rule that makes its values.
    pub columns: Vec<PreviewColumn>,
    /// The masked rows (text forms; `None` for NULL).
    pub rows: Vec<Vec<Option<String>>>,
}

/// One column of a [`Preview`].
#[derive(Debug, Clone, Serialize)]
pub struct PreviewColumn {
    /// The column.
    pub name: String,
    /// The rule, as the policy writes it (`(unique)` where a fake takes its unique form).
    pub rule: String,
}

/// Up to `rows` masked rows of `table` (a policy key or a bare name), as a
/// refresh would write them. The policy must have passed `check`.
pub async fn preview(
    source: &Database,
    policy: &Policy,
    schema: &Schema,
    table: &str,
    rows: usize,
    masker: &Masker,
) -> Result<Preview> {
    // Rows are kept as the refresh keeps them: following declared references too.
    let schema = &crate::subset::with_declared_references(policy, schema);
    let found = crate::check::find_table(schema, table)
        .ok_or_else(|| Error::Unsupported(format!("table {table} is not in the source")))?;
    let key = crate::check::table_key(found);
    let action = crate::check::policy_table(policy, found).map(|table_policy| table_policy.action);
    if action != Some(Action::Copy) {
        return Err(Error::Unsupported(format!(
            "table {key} is not copied (its action is {}): acceptance {} it, so there is nothing to preview",
            action.map_or("missing", Action::name),
            if action == Some(Action::Preserve) {
                "keeps its own rows of"
            } else {
                "gets no rows of"
            }
        )));
    }
    let plan = crate::subset::copy_plan(policy, schema, found)
        .ok_or_else(|| Error::Unsupported(format!("table {key} is not copied")))?;
    let columns = plan
        .table
        .columns
        .iter()
        .zip(&plan.rules)
        .zip(&plan.unique)
        .map(|((column, rule), unique)| PreviewColumn {
            name: column.name.clone(),
            rule: rule_text(rule, *unique),
        })
        .collect();
    let limit = rows.min(MAX_PREVIEW_ROWS);
    let sql = format!("{} LIMIT {limit}", plan.select(source));
    let mut stream = source
        .query(&sql, plan.table.columns.clone(), &format!("table {key}"))
        .await?;
    let mut masked = Vec::new();
    while let Some(row) = stream.next().await {
        let row = plan.transform(masker, row?)?;
        masked.push(row.iter().map(Value::to_text).collect());
        if masked.len() == limit {
            break;
        }
    }
    Ok(Preview {
        table: key,
        columns,
        rows: masked,
    })
}

fn rule_text(rule: &Rule, unique: bool) -> String {
    match rule {
        Rule::Fake(kind) if unique && kind.can_be_unique() => {
            format!("fake:{} (unique)", kind.name())
        }
        Rule::Fake(kind) => format!("fake:{}", kind.name()),
        Rule::ShiftDate {
            by: Some(by),
            max_days,
        } => format!("shift-date by {by} (±{max_days} d)"),
        Rule::ShiftDate { by: None, max_days } => format!("shift-date (±{max_days} d)"),
        other => other.name().to_owned(),
    }
}
