//! The synced tables, declared once.
//!
//! Everything that knows which tables and fields exist (the codec, the upload rules, the
//! SQL that reads and writes rows, the pages) walks [`TABLES`]; adding a table or a field
//! is a change here and in the migrations, nowhere else. This module is plain data and
//! value rules: it knows nothing of XML, SQL or HTTP.

pub mod rules;
pub mod time;
pub mod value;

pub use time::Micros;

/// What kind of value a field holds; decides parsing, comparison and storage form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Free text.
    Text,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// An RFC 3339 instant, stored in canonical UTC form with microseconds.
    Timestamp,
    /// A plain decimal number (`-12.50`), stored as written, compared as a number.
    Decimal,
    /// The id of a row of the named parent table.
    Parent(&'static str),
}

/// One field of a synced table (besides `id` and `last_updated`).
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub nullable: bool,
    /// Whether an offline client may change it in an edit.
    pub offline_edit: bool,
    /// The longest value accepted, in characters, on every path (forms, uploads, imports,
    /// resolutions).
    pub max_chars: usize,
    /// Whether surrounding white space is dropped from typed values: true for values that
    /// name something (natural keys, parents, set words, numbers, instants), false for prose,
    /// which is kept as typed apart from its line breaks.
    pub trimmed: bool,
}

/// One synced table.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// Singular noun for pages and messages.
    pub noun: &'static str,
    pub fields: &'static [Field],
    /// The field that names the same thing on every laptop (unique).
    pub natural_key: Option<&'static str>,
    pub offline_create: bool,
    pub offline_delete: bool,
}

/// The longest prose value: what a person types into a notes box.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The longest natural key (a site's code, an asset's tag).
pub const MAX_KEY_CHARS: usize = 100;

const fn field(name: &'static str, ty: FieldType, nullable: bool, offline_edit: bool) -> Field {
    Field {
        name,
        ty,
        nullable,
        offline_edit,
        max_chars: MAX_TEXT_CHARS,
        trimmed: !matches!(ty, FieldType::Text),
    }
}

/// A natural key: short, and trimmed so that `"P-001 "` and `P-001` are one key.
const fn key(name: &'static str) -> Field {
    Field {
        max_chars: MAX_KEY_CHARS,
        trimmed: true,
        ..field(name, FieldType::Text, false, false)
    }
}

use FieldType::{Decimal, Enum, Parent, Text, Timestamp};

/// Every synced table, parents before children: uploads are applied in this order.
pub static TABLES: &[Table] = &[
    Table {
        name: "sites",
        noun: "site",
        fields: &[
            key("code"),
            field("name", Text, false, false),
            field("address", Text, true, false),
            field("access_notes", Text, true, true),
        ],
        natural_key: Some("code"),
        offline_create: false,
        offline_delete: false,
    },
    Table {
        name: "assets",
        noun: "asset",
        fields: &[
            field("site_id", Parent("sites"), false, false),
            key("tag"),
            field("description", Text, true, true),
            field(
                "status",
                Enum(&["ok", "degraded", "broken", "retired"]),
                false,
                true,
            ),
            field("notes", Text, true, true),
        ],
        natural_key: Some("tag"),
        offline_create: true,
        offline_delete: false,
    },
    Table {
        name: "inspections",
        noun: "inspection",
        fields: &[
            field("asset_id", Parent("assets"), false, false),
            field("inspected_at", Timestamp, false, false),
            field("inspector", Text, true, false),
            field("result", Enum(&["pass", "fail"]), false, true),
            field("summary", Text, true, true),
        ],
        natural_key: None,
        offline_create: true,
        offline_delete: true,
    },
    Table {
        name: "readings",
        noun: "reading",
        fields: &[
            field("inspection_id", Parent("inspections"), false, false),
            field("kind", Text, false, false),
            field("value", Decimal, false, true),
            field("unit", Text, true, true),
        ],
        natural_key: None,
        offline_create: true,
        offline_delete: true,
    },
];

/// The most fields any table has; rows are read into fixed-width records of this size.
pub const MAX_FIELDS: usize = 6;

/// A table's position in [`TABLES`]: small, `Copy`, and orders parents first.
pub type TableId = usize;

/// Looks a table up by its wire name.
pub fn table_by_name(name: &str) -> Option<TableId> {
    TABLES.iter().position(|t| t.name == name)
}

impl Table {
    pub fn id(&self) -> TableId {
        TABLES
            .iter()
            .position(|t| std::ptr::eq(t, self))
            .expect("a Table is always one of TABLES")
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The foreign-key field and the parent table, for child tables.
    pub fn parent(&self) -> Option<(usize, TableId)> {
        self.fields
            .iter()
            .enumerate()
            .find_map(|(i, f)| match f.ty {
                Parent(p) => table_by_name(p).map(|t| (i, t)),
                _ => None,
            })
    }

    /// The tables whose rows point at rows of this one, with their foreign-key field.
    pub fn children(&self) -> impl Iterator<Item = (TableId, usize)> + '_ {
        let me = self.name;
        TABLES.iter().enumerate().filter_map(move |(ti, t)| {
            t.fields
                .iter()
                .position(|f| f.ty == Parent(me))
                .map(|fi| (ti, fi))
        })
    }

    pub fn natural_key_index(&self) -> Option<usize> {
        self.natural_key.and_then(|k| self.field_index(k))
    }
}

/// A row's field values in the table's field order; `None` is NULL. Values are in their
/// stored form (see [`value::parse`]).
pub type Values = Vec<Option<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_declared_parents_first() {
        for (i, t) in TABLES.iter().enumerate() {
            assert!(
                t.fields.len() <= MAX_FIELDS,
                "{} has too many fields",
                t.name
            );
            if let Some((_, parent)) = t.parent() {
                assert!(parent < i, "{} comes before its parent", t.name);
            }
            if let Some(k) = t.natural_key {
                let i = t.field_index(k);
                assert!(i.is_some(), "{}: natural key {k} is no field", t.name);
                let f = &t.fields[i.unwrap_or_default()];
                assert!(
                    f.trimmed && !f.nullable,
                    "{}.{k} is declared with key()",
                    t.name
                );
            }
        }
    }

    #[test]
    fn children_are_found_from_the_parent() {
        let assets = &TABLES[table_by_name("assets").unwrap()];
        let kids: Vec<_> = assets.children().map(|(t, _)| TABLES[t].name).collect();
        assert_eq!(kids, vec!["inspections"]);
        assert!(
            TABLES[table_by_name("readings").unwrap()]
                .children()
                .next()
                .is_none()
        );
    }
}
