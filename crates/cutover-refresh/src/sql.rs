//! Small catalog queries shared by the refreshers and the verification:
//! typed result columns, SQL literals, and short text or count results.

use cutover_db::{Column, Database, LogicalType, Value};

use crate::error::Result;

/// A nullable result column of one logical type.
fn column(name: &str, type_name: &str, logical: LogicalType) -> Column {
    Column {
        name: name.into(),
        type_name: type_name.into(),
        logical_type: Some(logical),
        nullable: true,
        default: None,
    }
}

/// A nullable text result column.
pub(crate) fn text_column(name: &str) -> Column {
    column(name, "text", LogicalType::Text)
}

/// Quoted column names, comma-separated.
pub(crate) fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|column| cutover_db::schema::quote_identifier(column))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Rows of `width` text columns from a catalog query (small results only;
/// NULL reads as the empty string).
pub(crate) async fn texts(
    database: &Database,
    sql: &str,
    width: usize,
    label: &str,
) -> Result<Vec<Vec<String>>> {
    let columns = (0..width)
        .map(|index| text_column(&format!("c{index}")))
        .collect();
    let mut rows = database.query(sql, columns, label).await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await {
        out.push(
            row?.into_iter()
                .map(|value| match value {
                    Value::Text(text) => text,
                    _ => String::new(),
                })
                .collect(),
        );
    }
    Ok(out)
}

/// The first column of a catalog query's rows.
pub(crate) async fn first_column(
    database: &Database,
    sql: &str,
    label: &str,
) -> Result<Vec<String>> {
    Ok(texts(database, sql, 1, label)
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect())
}

/// The single count a query returns (0 for none).
pub(crate) async fn count(database: &Database, sql: &str, label: &str) -> Result<u64> {
    let mut rows = database
        .query(
            sql,
            vec![column("n", "bigint", LogicalType::Integer)],
            label,
        )
        .await?;
    let mut total = 0;
    if let Some(row) = rows.next().await {
        if let Some(Value::Int(number)) = row?.first() {
            total = u64::try_from(*number).unwrap_or_default();
        }
    }
    Ok(total)
}
