//! The declaration is the source: `domain::TABLES` against the migrated schema on both
//! databases (columns, types, nullability, the CHECK lists, parents, unique natural keys),
//! and against the names the XSD allows.

use std::collections::BTreeSet;

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use offsync::db::{DbConn, Sql};
use offsync::domain::{FieldType, TABLES, table_by_name};

use crate::helpers::*;
use crate::on_both;

on_both!(
    the_migrated_schema_is_the_declaration,
    a_database_of_the_last_release_upgrades_with_its_conflicts,
);

#[derive(QueryableByName, Debug)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
}

#[derive(QueryableByName)]
struct Definition {
    #[diesel(sql_type = Text)]
    def: String,
}

fn columns(conn: &mut DbConn, table: &str) -> Vec<Column> {
    let sql = match conn {
        DbConn::Sqlite(_) => format!(
            "SELECT name, lower(type) AS ty, \"notnull\" <> 0 AS not_null FROM pragma_table_info('{table}')"
        ),
        DbConn::Pg(_) => format!(
            "SELECT column_name::text AS name, data_type::text AS ty, is_nullable = 'NO' AS not_null \
             FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
    };
    Sql::new(sql).load(conn).expect("the columns")
}

/// The table's definition text where it states CHECKs, foreign keys and unique keys.
fn definitions(conn: &mut DbConn, table: &str) -> String {
    let sql = match conn {
        DbConn::Sqlite(_) => format!(
            "SELECT sql AS def FROM sqlite_master WHERE name = '{table}' OR tbl_name = '{table}' AND sql IS NOT NULL"
        ),
        DbConn::Pg(_) => format!(
            "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = '{table}'::regclass"
        ),
    };
    let defs: Vec<Definition> = Sql::new(sql).load(conn).expect("the definitions");
    defs.into_iter()
        .map(|d| d.def)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The quoted words of the CHECK that names `field`.
fn check_words(defs: &str, field: &str) -> BTreeSet<String> {
    let at = defs
        .match_indices("CHECK")
        .map(|(i, _)| &defs[i..])
        .find(|rest| {
            let clause = &rest[..rest.find(')').map_or(rest.len(), |e| e + 1)];
            clause.contains(field)
        })
        .unwrap_or_else(|| panic!("no CHECK on {field} in {defs}"));
    let clause = &at[..at.find("))").map_or(at.len(), |e| e + 2)];
    clause
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn the_migrated_schema_is_the_declaration(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let mut conn = app.conn();
    for def in TABLES {
        let cols = columns(&mut conn, def.name);
        let col = |name: &str| {
            cols.iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("{}.{name} is declared but not in the schema", def.name))
        };
        assert!(
            col("id").ty.contains("text") && col("id").not_null,
            "{}.id",
            def.name
        );
        assert!(col("last_updated").ty.contains("bigint") && col("last_updated").not_null);
        assert!(col("change_id").ty.contains("bigint") && col("change_id").not_null);
        if let DbConn::Pg(_) = &*conn {
            assert!(col("seq").ty.contains("bigint") && col("seq").not_null);
        }
        let known: BTreeSet<&str> = def
            .fields
            .iter()
            .map(|f| f.name)
            .chain(["id", "last_updated", "changed_by", "change_id"])
            // PostgreSQL orders a change id's rows by `seq`; SQLite by rowid.
            .chain(matches!(&*conn, DbConn::Pg(_)).then_some("seq"))
            .collect();
        for c in &cols {
            assert!(
                known.contains(c.name.as_str()),
                "{}.{} is in the schema but not declared",
                def.name,
                c.name
            );
        }
        let defs = definitions(&mut conn, def.name);
        for f in def.fields {
            let c = col(f.name);
            assert!(
                c.ty.contains("text"),
                "{}.{} is stored as text, not {}",
                def.name,
                f.name,
                c.ty
            );
            assert_eq!(
                c.not_null, !f.nullable,
                "{}.{} nullability",
                def.name, f.name
            );
            match f.ty {
                FieldType::Enum(words) => {
                    let want: BTreeSet<String> = words.iter().map(|w| (*w).to_owned()).collect();
                    assert_eq!(
                        check_words(&defs, f.name),
                        want,
                        "{}.{} CHECK list",
                        def.name,
                        f.name
                    );
                }
                FieldType::Parent(parent) => {
                    let fk = format!("REFERENCES {parent}");
                    let names_it = defs.lines().chain(defs.split(',')).any(|l| {
                        (l.contains(f.name) && l.contains(&fk))
                            || l.contains(&format!("REFERENCES {parent}(id)"))
                    });
                    assert!(
                        names_it,
                        "{}.{} references {parent}: {defs}",
                        def.name, f.name
                    );
                    assert!(table_by_name(parent).is_some());
                }
                _ => {}
            }
        }
        if let Some(k) = def.natural_key {
            assert!(
                defs.contains(&format!("{k} TEXT NOT NULL UNIQUE"))
                    || defs.contains(&format!("UNIQUE ({k})")),
                "{}.{k} is unique: {defs}",
                def.name
            );
        }
        // On PostgreSQL an update's new row version has room on its row's page.
        if let DbConn::Pg(_) = *conn {
            let options = Sql::new(format!(
                "SELECT COALESCE(array_to_string(reloptions, ','), '') AS def FROM pg_class \
                 WHERE relname = '{}' AND relkind = 'r'",
                def.name
            ))
            .first::<Definition>(&mut conn)
            .unwrap()
            .map(|d| d.def);
            assert_eq!(options.as_deref(), Some("fillfactor=80"), "{}", def.name);
        }
    }
}

#[test]
fn the_xsd_names_exactly_the_declared_tables_and_fields() {
    let xsd = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/changeset.xsd"))
        .expect("docs/changeset.xsd");
    let enumeration = |type_name: &str| -> BTreeSet<String> {
        let start = xsd
            .find(&format!("<xs:simpleType name=\"{type_name}\">"))
            .unwrap_or_else(|| panic!("the XSD has no type {type_name}"));
        let body = &xsd[start..start + xsd[start..].find("</xs:simpleType>").unwrap()];
        body.match_indices("<xs:enumeration value=\"")
            .map(|(i, m)| {
                let rest = &body[i + m.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
            .collect()
    };
    let tables: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(enumeration("table"), tables);
    let fields: BTreeSet<String> = TABLES
        .iter()
        .flat_map(|t| t.fields.iter().map(|f| f.name.to_owned()))
        .collect();
    assert_eq!(enumeration("fieldName"), fields);
}

/// Migrations up to the last release's (0003), some data, then the rest: nothing is lost.
fn a_database_of_the_last_release_upgrades_with_its_conflicts(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let data = "INSERT INTO users (id, name, password_hash, is_admin, is_conflict, created_at) \
                VALUES ('u1', 'jo', 'x', FALSE, TRUE, 1); \
                INSERT INTO devices (id, user_id, label, token_hash, created_at) \
                VALUES ('d1', 'u1', 'laptop', 'h', 1); \
                INSERT INTO conflicts (id, user_id, device_id, table_name, row_id, kind, status, \
                created_at, updated_at) VALUES ('c1', 'u1', 'd1', 'assets', 'r1', 'delete', 'open', 1, 1); \
                INSERT INTO conflict_fields (conflict_id, field, base_known, base_value, \
                server_value, offline_value) VALUES ('c1', 'notes', TRUE, 'a', 'b', 'c');";
    db.as_released(3, 3, data);
    // offsync opens it: the rest of the migrations run.
    let pool = offsync::db::connect(&db.url, 1).expect("the upgraded database");
    let mut conn = pool.get().unwrap();
    let c = offsync::db::repo::conflicts::get(&mut conn, "c1")
        .unwrap()
        .expect("kept");
    assert_eq!(
        (c.conflict_kind(), c.is_open(), c.server_by),
        (
            offsync::db::repo::conflicts::ConflictKind::Delete,
            true,
            None
        )
    );
    let fields = offsync::db::repo::conflicts::fields(&mut conn, "c1").unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(
        (
            fields[0].base_value.as_deref(),
            fields[0].offline_value.as_deref()
        ),
        (Some("a"), Some("c"))
    );
    // The new kind is admitted.
    Sql::new("UPDATE conflicts SET kind = 'parent_deleted' WHERE id = 'c1'")
        .execute(&mut conn)
        .expect("parent_deleted is a kind now");
}

/// SQLite only: the migration that rewrote the assets' status CHECK as comparisons rebuilds
/// the table (SQLite cannot alter a CHECK). Rows, their rowids, their children and the rule
/// come through it.
#[test]
fn the_rebuilt_assets_table_keeps_its_rows_children_and_rule() {
    use diesel::Connection;
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    // Every migration before the rebuild (2026-12-05-000009).
    db.as_released(
        8,
        0,
        "INSERT INTO sites (id, code, name, last_updated) VALUES ('s1', 'S-1', 'Site', 1);
             INSERT INTO assets (id, site_id, tag, status, notes, last_updated, change_id)
                 VALUES ('a1', 's1', 'P-1', 'ok', 'first', 1, 7),
                        ('a2', 's1', 'P-2', 'retired', NULL, 2, 8);
             DELETE FROM assets WHERE id = 'a1';
             INSERT INTO assets (id, site_id, tag, status, notes, last_updated, change_id)
                 VALUES ('a1', 's1', 'P-1', 'broken', 'again', 3, 9);
             INSERT INTO inspections (id, asset_id, inspected_at, result, last_updated)
                 VALUES ('i1', 'a2', '2026-12-01T10:00:00Z', 'pass', 4);",
    );
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Asset {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rid: i64,
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        notes: Option<String>,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        change_id: i64,
    }
    let read = "SELECT rowid AS rid, id, status, notes, change_id FROM assets ORDER BY rowid";
    let before: Vec<Asset> = {
        let mut c = DbConn::Sqlite(diesel::SqliteConnection::establish(&path).unwrap());
        Sql::new(read).load(&mut c).unwrap()
    };
    assert_eq!(before.len(), 2);
    // offsync opens it: the rebuild runs.
    let pool = offsync::db::connect(&db.url, 1).expect("the upgraded database");
    let mut conn = pool.get().unwrap();
    let after: Vec<Asset> = Sql::new(read).load(&mut conn).unwrap();
    assert_eq!(after, before, "same rows, same rowids, same values");
    let defs = definitions(&mut conn, "assets");
    assert!(
        defs.contains("status = 'ok' OR") && !defs.contains("IN ("),
        "{defs}"
    );
    assert_eq!(
        check_words(&defs, "status"),
        ["broken", "degraded", "ok", "retired"]
            .map(str::to_owned)
            .into(),
    );
    let refused = Sql::new("UPDATE assets SET status = 'lost' WHERE id = 'a2'").execute(&mut conn);
    assert!(
        format!("{refused:?}").contains("CHECK constraint failed"),
        "{refused:?}"
    );
    // The inspection still points at its asset, and the foreign key is still enforced.
    let orphaned = Sql::new("DELETE FROM assets WHERE id = 'a2'").execute(&mut conn);
    assert!(
        format!("{orphaned:?}").contains("FOREIGN KEY constraint failed"),
        "{orphaned:?}"
    );
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = Text)]
        integrity_check: String,
    }
    let ok: Vec<Check> = Sql::new("PRAGMA integrity_check").load(&mut conn).unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].integrity_check, "ok");
}
