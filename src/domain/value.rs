//! Field values: checking what a client sent, and comparing values as values
//! (`4.2` equals `4.20`; one instant written two ways is one instant).

use super::{Field, FieldType, time};

/// Why a value does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("is required and may not be null")]
    Null,
    #[error("must be one of {allowed}, not {got:?}")]
    NotAllowed { allowed: String, got: String },
    #[error("is not an RFC 3339 timestamp: {0:?}")]
    Timestamp(String),
    #[error("is not a plain decimal number: {0:?}")]
    Decimal(String),
    #[error("is not a UUID: {0:?}")]
    Id(String),
}

/// Checks a value for `field` and returns its stored form: timestamps in canonical UTC,
/// ids in lower-case hyphenated form, decimals trimmed, text as given.
pub fn parse(field: &Field, value: Option<&str>) -> Result<Option<String>, ValueError> {
    let Some(text) = value else {
        return if field.nullable {
            Ok(None)
        } else {
            Err(ValueError::Null)
        };
    };
    parse_present(field.ty, text).map(Some)
}

fn parse_present(ty: FieldType, text: &str) -> Result<String, ValueError> {
    match ty {
        FieldType::Text => Ok(text.to_owned()),
        FieldType::Enum(allowed) => {
            if allowed.contains(&text) {
                Ok(text.to_owned())
            } else {
                Err(ValueError::NotAllowed {
                    allowed: allowed.join(", "),
                    got: text.to_owned(),
                })
            }
        }
        FieldType::Timestamp => time::parse(text)
            .map(time::format)
            .ok_or_else(|| ValueError::Timestamp(text.to_owned())),
        FieldType::Decimal => {
            let trimmed = text.trim();
            if normalize_decimal(trimmed).is_some() {
                Ok(trimmed.to_owned())
            } else {
                Err(ValueError::Decimal(text.to_owned()))
            }
        }
        FieldType::Parent(_) => parse_id(text),
    }
}

/// A row id in its stored form (lower-case hyphenated UUID).
pub fn parse_id(text: &str) -> Result<String, ValueError> {
    uuid::Uuid::parse_str(text.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ValueError::Id(text.to_owned()))
}

/// Whether two stored values of one field are the same value.
pub fn same(ty: FieldType, a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match ty {
            FieldType::Decimal => {
                match (normalize_decimal(a.trim()), normalize_decimal(b.trim())) {
                    (Some(x), Some(y)) => x == y,
                    _ => a == b,
                }
            }
            FieldType::Timestamp => match (time::parse(a), time::parse(b)) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            },
            FieldType::Parent(_) => a.eq_ignore_ascii_case(b),
            FieldType::Text | FieldType::Enum(_) => a == b,
        },
        _ => false,
    }
}

/// A decimal in a form where equal numbers are equal strings: no leading zeros in the
/// integer part, no trailing zeros in the fraction, no sign on zero. `None` when `text` is
/// not a plain decimal (`[+-]digits[.digits]`, digits on at least one side of the point).
pub fn normalize_decimal(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative && (int != "0" || !frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TABLES, table_by_name};

    fn field(table: &str, name: &str) -> &'static Field {
        let t = &TABLES[table_by_name(table).unwrap()];
        &t.fields[t.field_index(name).unwrap()]
    }

    #[test]
    fn decimals_compare_as_numbers() {
        let cases = [
            ("4.2", "4.20", true),
            ("4.2", "4.21", false),
            ("007", "7.000", true),
            ("-0.0", "0", true),
            ("+1.5", "1.50", true),
            (".5", "0.5", true),
            ("5.", "5", true),
            ("-1", "1", false),
        ];
        for (a, b, same_value) in cases {
            assert_eq!(
                same(FieldType::Decimal, Some(a), Some(b)),
                same_value,
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn malformed_decimals_are_rejected() {
        for bad in ["", ".", "-", "1e5", "1,5", "four", "1.2.3", " "] {
            assert_eq!(normalize_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert!(same(
            FieldType::Timestamp,
            Some("2026-11-20T10:00:00.000000Z"),
            Some("2026-11-20T10:00:00+00:00")
        ));
        assert!(!same(
            FieldType::Timestamp,
            Some("2026-11-20T10:00:00Z"),
            Some("2026-11-20T10:00:01Z")
        ));
    }

    #[test]
    fn null_and_empty_differ() {
        assert!(!same(FieldType::Text, None, Some("")));
        assert!(same(FieldType::Text, None, None));
        assert!(same(FieldType::Text, Some(""), Some("")));
    }

    #[test]
    fn parse_checks_type_set_and_nullability() {
        assert_eq!(
            parse(field("assets", "status"), Some("ok")),
            Ok(Some("ok".into()))
        );
        assert!(matches!(
            parse(field("assets", "status"), Some("fine")),
            Err(ValueError::NotAllowed { .. })
        ));
        assert_eq!(
            parse(field("assets", "status"), None),
            Err(ValueError::Null)
        );
        assert_eq!(parse(field("assets", "notes"), None), Ok(None));
        assert_eq!(
            parse(
                field("inspections", "inspected_at"),
                Some("2026-11-20T11:00:00+01:00")
            ),
            Ok(Some("2026-11-20T10:00:00.000000Z".into()))
        );
        assert!(parse(field("readings", "value"), Some("abc")).is_err());
        assert_eq!(
            parse(
                field("assets", "site_id"),
                Some("0193A1C4-0000-7000-8000-000000000001")
            ),
            Ok(Some("0193a1c4-0000-7000-8000-000000000001".into()))
        );
        assert!(parse(field("assets", "site_id"), Some("site-1")).is_err());
    }
}
