//! The rules of the data that are not about one value: how a changed field is judged
//! against the server's (PROTOCOL §4.3) and what the next `last_updated` is. Pure
//! functions; every write path calls them and none re-implements them.

use super::{Field, FieldType, Micros, Table, time, value};

/// What to do with one field of an edit whose row may have changed since its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The server already holds the value: nothing to do.
    Same,
    /// Only the editor changed it: write it.
    Apply,
    /// Both sides changed it, or nobody can tell: the server's value stays, the difference
    /// is a conflict.
    Conflict,
}

/// Judges one field (PROTOCOL §4.3). `was` is the value the edit started from, when it is
/// known (`Some(None)` is "it was NULL"); `base_current` says whether the row is still at
/// the edit's base, in which case every field is the editor's to write.
pub fn judge_field(
    ty: FieldType,
    server: Option<&str>,
    value: Option<&str>,
    was: Option<Option<&str>>,
    base_current: bool,
) -> Verdict {
    if value::same(ty, value, server) {
        Verdict::Same
    } else if base_current {
        Verdict::Apply
    } else {
        match was {
            Some(was) if value::same(ty, was, server) => Verdict::Apply,
            _ => Verdict::Conflict,
        }
    }
}

/// The first field a whole row must have (NOT NULL) and does not.
pub fn missing_required<'a>(table: &'a Table, values: &[Option<String>]) -> Option<&'a Field> {
    table
        .fields
        .iter()
        .zip(values)
        .find_map(|(f, v)| (!f.nullable && v.is_none()).then_some(f))
}

/// The `last_updated` of a write at `now` to a row last stamped `previous` (0 for a new
/// row): later than both, and later than anything this process issued (PROTOCOL §1: two
/// writes to one row never share a value).
pub fn next_stamp(now: Micros, previous: Micros) -> Micros {
    time::after(now.max(previous.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::Verdict::{Apply, Conflict, Same};
    use super::*;

    #[test]
    fn fields_are_judged_as_protocol_4_3_says() {
        const TEXT: FieldType = FieldType::Text;
        const DEC: FieldType = FieldType::Decimal;
        // (type, server, value, was, base current, verdict, the rule)
        type Case = (
            FieldType,
            Option<&'static str>,
            Option<&'static str>,
            Option<Option<&'static str>>,
            bool,
            Verdict,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                TEXT,
                Some("a"),
                Some("b"),
                None,
                true,
                Apply,
                "row at base: applied",
            ),
            (
                TEXT,
                Some("a"),
                Some("a"),
                None,
                true,
                Same,
                "row at base, same value",
            ),
            (
                TEXT,
                Some("x"),
                Some("x"),
                Some(Some("a")),
                false,
                Same,
                "equal values: no conflict",
            ),
            (
                TEXT,
                Some("a"),
                Some("b"),
                Some(Some("a")),
                false,
                Apply,
                "only the laptop changed it",
            ),
            (
                TEXT,
                Some("x"),
                Some("b"),
                Some(Some("a")),
                false,
                Conflict,
                "both changed it",
            ),
            (
                TEXT,
                Some("x"),
                Some("b"),
                None,
                false,
                Conflict,
                "no was: cannot tell",
            ),
            (
                TEXT,
                None,
                Some("b"),
                Some(None),
                false,
                Apply,
                "was NULL, server NULL",
            ),
            (
                TEXT,
                Some(""),
                Some("b"),
                Some(None),
                false,
                Conflict,
                "NULL is not empty",
            ),
            (
                TEXT,
                Some("x"),
                Some("a"),
                Some(Some("a")),
                false,
                Conflict,
                "unchanged value over a change",
            ),
            (
                DEC,
                Some("4.20"),
                Some("4.2"),
                Some(Some("1")),
                false,
                Same,
                "numbers compare as numbers",
            ),
            (
                DEC,
                Some("1.0"),
                Some("2"),
                Some(Some("1")),
                false,
                Apply,
                "was compared as a number",
            ),
        ];
        for (ty, server, value, was, current, want, rule) in cases {
            assert_eq!(
                judge_field(*ty, *server, *value, *was, *current),
                *want,
                "{rule}"
            );
        }
    }

    #[test]
    fn a_whole_row_has_every_required_field() {
        let readings = &crate::domain::TABLES[crate::domain::table_by_name("readings").unwrap()];
        let v = |s: &str| Some(s.to_owned());
        let full = [v("i"), v("pressure"), v("4.2"), None];
        assert!(
            missing_required(readings, &full).is_none(),
            "a NULL unit is allowed"
        );
        let no_value = [v("i"), v("pressure"), None, v("bar")];
        assert_eq!(
            missing_required(readings, &no_value).map(|f| f.name),
            Some("value")
        );
    }

    #[test]
    fn stamps_increase_per_row_and_past_the_clock() {
        let now = time::now();
        assert!(next_stamp(now, 0) >= now);
        let far = now + 10_000_000;
        assert!(
            next_stamp(now, far) > far,
            "a row stamped ahead of the clock still moves on"
        );
        let a = next_stamp(now, 0);
        assert!(next_stamp(now, 0) > a, "two writes never share a stamp");
    }
}
