//! How rows and values are shown to people: labels, formatted values, field names.

use crate::domain::{FieldType, TABLES, TableId, Values, time};

/// A field name as a label: `access_notes` → "Access notes".
pub fn field_label(name: &str) -> String {
    let spaced = name.trim_end_matches("_id").replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A table's plural as a heading: `inspections` → "Inspections".
pub fn table_title(table: TableId) -> String {
    field_label(TABLES[table].name)
}

/// A stored timestamp as people read it.
pub fn timestamp(micros: i64) -> String {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => time::format(micros),
    }
}

/// A stored value as shown in a page; NULL is "—".
pub fn value(ty: FieldType, v: Option<&str>) -> String {
    match (ty, v) {
        (_, None) => "—".to_owned(),
        (FieldType::Timestamp, Some(text)) => time::parse(text).map_or(text.to_owned(), timestamp),
        (_, Some(text)) => text.to_owned(),
    }
}

/// A short name for a row: its natural key, else its first two fields that are not the
/// parent ("2026-11-21 09:00:00 UTC · pass", "pressure · 4.2").
pub fn row_label(table: TableId, values: &Values) -> String {
    let def = &TABLES[table];
    if let Some(k) = def.natural_key_index()
        && let Some(key) = &values[k]
    {
        return key.clone();
    }
    let parts: Vec<String> = def
        .fields
        .iter()
        .zip(values)
        .filter(|(f, v)| !matches!(f.ty, FieldType::Parent(_)) && v.is_some())
        .take(2)
        .map(|(f, v)| value(f.ty, v.as_deref()))
        .collect();
    parts.join(" · ")
}

/// Fields shown as a multi-line text box in forms.
pub fn is_multiline(name: &str) -> bool {
    matches!(
        name,
        "address" | "access_notes" | "notes" | "summary" | "description"
    )
}

/// The highest page number a list is asked for: far past any list's end, and small enough
/// that `(page - 1) * per_page` stays a valid offset on both databases.
pub const MAX_PAGE: i64 = 1_000_000;

/// A list's page number from the address: 1 when absent, within 1..=[`MAX_PAGE`].
pub fn page_number(asked: Option<i64>) -> i64 {
    asked.unwrap_or(1).clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::table_by_name;

    #[test]
    fn labels_read_as_words() {
        assert_eq!(field_label("access_notes"), "Access notes");
        assert_eq!(field_label("site_id"), "Site");
        assert_eq!(table_title(table_by_name("readings").unwrap()), "Readings");
    }

    #[test]
    fn rows_are_named_by_natural_key_or_first_fields() {
        let assets = table_by_name("assets").unwrap();
        let v = vec![
            Some("s".into()),
            Some("P-001".into()),
            None,
            Some("ok".into()),
            None,
        ];
        assert_eq!(row_label(assets, &v), "P-001");
        let readings = table_by_name("readings").unwrap();
        let v = vec![
            Some("i".into()),
            Some("pressure".into()),
            Some("4.2".into()),
            None,
        ];
        assert_eq!(row_label(readings, &v), "pressure · 4.2");
        assert_eq!(
            value(FieldType::Timestamp, Some("2026-11-21T09:00:00.000000Z")),
            "2026-11-21 09:00:00 UTC"
        );
        assert_eq!(value(FieldType::Text, None), "—");
    }
}
