//! Field values: the one place that decides what a valid value is, how a typed value is
//! normalised, and when two values are the same value (`4.2` equals `4.20`; one instant
//! written two ways is one instant). Every write path (uploads, imports, forms, conflict
//! resolutions, the laptop's downloads) goes through [`parse`] and compares with [`same`].

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
    #[error("holds the character U+{0:04X}, which XML 1.0 cannot carry")]
    Character(u32),
    #[error("is longer than {0} characters")]
    TooLong(usize),
}

/// Checks a value for `field` and returns its stored form: line breaks as LF, trimmed
/// where the field is [`Field::trimmed`], timestamps in canonical UTC, ids in lower-case
/// hyphenated form; prose otherwise as given.
pub fn parse(field: &Field, value: Option<&str>) -> Result<Option<String>, ValueError> {
    let Some(text) = value else {
        return if field.nullable {
            Ok(None)
        } else {
            Err(ValueError::Null)
        };
    };
    if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
        return Err(ValueError::Character(u32::from(c)));
    }
    let text = normalize(field, text);
    if text.chars().count() > field.max_chars {
        return Err(ValueError::TooLong(field.max_chars));
    }
    parse_present(field.ty, &text).map(Some)
}

/// A `was` (the value an edit started from): checked like a value, but NULL is always a
/// value it may have had.
pub fn parse_was(field: &Field, value: Option<&str>) -> Result<Option<String>, ValueError> {
    parse(
        &Field {
            nullable: true,
            // The server's own value may predate today's limit; a base is never stored.
            max_chars: usize::MAX,
            ..*field
        },
        value,
    )
}

/// The one normalisation of typed text: CR LF and lone CR become LF (browsers send CR LF
/// from every textarea), and fields that name something lose surrounding white space.
pub fn normalize<'a>(field: &Field, text: &'a str) -> std::borrow::Cow<'a, str> {
    let text = if field.trimmed { text.trim() } else { text };
    if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Whether XML 1.0 can carry the character in a text node (its `Char` production).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
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
            if normalize_decimal(text).is_some() {
                Ok(text.to_owned())
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

    #[test]
    fn one_normalisation_for_every_path() {
        let notes = field("assets", "notes");
        let tag = field("assets", "tag");
        type Case<'a> = (&'a Field, &'a str, Result<Option<&'a str>, ValueError>);
        let cases: &[Case<'_>] = &[
            (notes, "a\r\nb\rc\n", Ok(Some("a\nb\nc\n"))),
            (notes, "  kept as typed  ", Ok(Some("  kept as typed  "))),
            (notes, "", Ok(Some(""))),
            (tag, " P-001 ", Ok(Some("P-001"))),
            (field("readings", "value"), " 4.20 ", Ok(Some("4.20"))),
            (field("assets", "status"), " ok", Ok(Some("ok"))),
            (notes, "nul\0here", Err(ValueError::Character(0))),
            (notes, "bell\u{7}", Err(ValueError::Character(7))),
            (notes, "\u{FFFE}", Err(ValueError::Character(0xFFFE))),
            (notes, "tab\tand\nline", Ok(Some("tab\tand\nline"))),
        ];
        for (f, input, want) in cases {
            let got = parse(f, Some(input));
            assert_eq!(
                got,
                want.clone().map(|v| v.map(str::to_owned)),
                "{}: {input:?}",
                f.name
            );
        }
    }

    #[test]
    fn one_length_limit_per_field() {
        let notes = field("assets", "notes");
        let at_limit = "é".repeat(notes.max_chars);
        assert!(
            parse(notes, Some(&at_limit)).is_ok(),
            "counted in characters"
        );
        assert_eq!(
            parse(notes, Some(&format!("{at_limit}x"))),
            Err(ValueError::TooLong(notes.max_chars))
        );
        let tag = field("assets", "tag");
        assert_eq!(
            parse(tag, Some(&"T".repeat(tag.max_chars + 1))),
            Err(ValueError::TooLong(tag.max_chars))
        );
        assert!(parse_was(notes, Some(&format!("{at_limit}x"))).is_ok());
        assert_eq!(parse_was(field("assets", "status"), None), Ok(None));
    }
}
