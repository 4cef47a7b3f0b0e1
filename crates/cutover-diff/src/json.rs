//! Values as JSON, for findings and delta files: exact numerics and
//! timestamps as strings, so nothing is rounded on the way out.

use cutover_db::Value;
use serde_json::Value as Json;

use crate::{GroupBy, Period};

/// One value as JSON: NULL as null, booleans and 64-bit integers as JSON
/// values, finite floats as numbers, everything else as its canonical text.
pub(crate) fn value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Int(number) => Json::from(*number),
        Value::Float(number) if number.is_finite() => Json::from(*number),
        Value::Json(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.clone()))
        }
        other => other.to_text().map(Json::String).unwrap_or(Json::Null),
    }
}

/// Named values as a JSON object, in the given order (not sorted by name).
pub(crate) fn object<'a>(names: impl IntoIterator<Item = &'a String>, values: &[Value]) -> String {
    let mut text = String::from("{");
    for (index, (name, item)) in names.into_iter().zip(values).enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&Json::String(name.clone()).to_string());
        text.push(':');
        text.push_str(&value(item).to_string());
    }
    text.push('}');
    text
}

/// A group-by value: the column's value, or its date truncated to the period.
pub(crate) fn group_value(group: &GroupBy, item: &Value) -> Json {
    let Some(period) = group.period else {
        return value(item);
    };
    let days = match item {
        Value::Date(days) => i64::from(*days),
        Value::Timestamp(micros) | Value::TimestampTz(micros) => micros.div_euclid(86_400_000_000),
        other => return value(other),
    };
    let Some(date) = i32::try_from(days)
        .ok()
        .and_then(cutover_db::value::date_from_days)
    else {
        return value(item);
    };
    Json::String(match period {
        Period::Year => date.format("%Y").to_string(),
        Period::Month => date.format("%Y-%m").to_string(),
        Period::Day => date.format("%Y-%m-%d").to_string(),
    })
}
