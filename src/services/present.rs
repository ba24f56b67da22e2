//! How rows and values are shown to people: labels, formatted values, field names.

use chrono_tz::Tz;

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

/// A stored instant (RFC 3339) in `zone`, as people read it: "2026-11-21 09:14 GMT".
pub fn instant_in(stored: &str, zone: Tz) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(stored).ok()?;
    Some(
        t.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string(),
    )
}

/// A stored instant as a `datetime-local` input holds it in `zone` ("2026-11-21T09:14",
/// with seconds only when it has some).
pub fn local_input(stored: &str, zone: Tz) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(stored)
        .ok()?
        .with_timezone(&zone);
    let format = match chrono::Timelike::second(&t) {
        0 => "%Y-%m-%dT%H:%M",
        _ => "%Y-%m-%dT%H:%M:%S",
    };
    Some(t.format(format).to_string())
}

/// What a person typed or picked for a date-time in `zone`, as the instant to store (RFC
/// 3339, UTC). Text that already names its zone is kept as it is, and so is text that is no
/// date-time at all (the field's validation names the problem). In the hour skipped when
/// clocks go forward the time is read as the first valid one after it; in the hour
/// repeated when they go back, as the first of the two.
pub fn from_local_input(text: &str, zone: Tz) -> String {
    use chrono::TimeZone;
    let trimmed = text.trim();
    if chrono::DateTime::parse_from_rfc3339(trimmed).is_ok() {
        return text.to_owned();
    }
    let formats = [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ];
    let Some(naive) = formats
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(trimmed, f).ok())
    else {
        return text.to_owned();
    };
    let local = zone.from_local_datetime(&naive).earliest().or_else(|| {
        // A time in the gap: an hour on is past it.
        zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
    });
    match local {
        Some(t) => t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => text.to_owned(),
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

    #[test]
    fn date_times_are_read_and_shown_in_the_persons_zone() {
        let london: Tz = "Europe/London".parse().unwrap();
        let new_york: Tz = "America/New_York".parse().unwrap();
        // (typed in the zone, the zone, stored)
        let cases = [
            ("2026-11-21T09:14", london, "2026-11-21T09:14:00Z"),
            ("2026-07-21T09:14", london, "2026-07-21T08:14:00Z"),
            ("2026-11-21 09:14", new_york, "2026-11-21T14:14:00Z"),
            ("2026-11-21T09:14:30", new_york, "2026-11-21T14:14:30Z"),
            // Clocks go forward at 01:00 on 29 March: 01:30 does not exist, 02:30 is meant.
            ("2026-03-29T01:30", london, "2026-03-29T01:30:00Z"),
            // They go back at 02:00 on 25 October: 01:30 happens twice, the first is meant.
            ("2026-10-25T01:30", london, "2026-10-25T00:30:00Z"),
            // Text that names its zone is kept; text that is no date-time is left to
            // the field's validation.
            (
                "2026-11-21T09:14:00+01:00",
                london,
                "2026-11-21T09:14:00+01:00",
            ),
            ("yesterday", london, "yesterday"),
        ];
        for (typed, zone, stored) in cases {
            assert_eq!(from_local_input(typed, zone), stored, "{typed} in {zone}");
        }
        assert_eq!(
            local_input("2026-11-21T14:14:00.000000Z", new_york).as_deref(),
            Some("2026-11-21T09:14")
        );
        assert_eq!(
            local_input("2026-07-21T08:14:30Z", london).as_deref(),
            Some("2026-07-21T09:14:30")
        );
        assert_eq!(local_input("not a time", london), None);
        assert_eq!(
            instant_in("2026-11-21T14:14:00Z", new_york).as_deref(),
            Some("2026-11-21 09:14 EST")
        );
    }
}
