//! A statement with positional parameters written once, in `?` style, and run on either
//! backend.

use std::cell::OnceCell;
use std::ops::Range;

use diesel::QueryableByName;
use diesel::RunQueryDsl;
use diesel::query_builder::{AstPass, BoxedSqlQuery, QueryFragment, QueryId, SqlQuery};
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use super::{DbConn, DbError, MultiBackend};

/// A parameter value.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(Some(v.to_owned()))
    }
}
impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(Some(v))
    }
}
impl From<&String> for Bind {
    fn from(v: &String) -> Self {
        Bind::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::Text(v)
    }
}
impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        Bind::Text(v.map(str::to_owned))
    }
}
impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(Some(v))
    }
}
impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::Int(v)
    }
}
impl From<bool> for Bind {
    fn from(v: bool) -> Self {
        Bind::Bool(v)
    }
}

/// SQL text with `?` placeholders and its parameters.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
    /// Where the text between placeholders lies, found once per text: diesel walks a
    /// prepared statement two or three times per run, and an upload runs one per row
    /// (scanning the text each time was a tenth of SQLite's writing thread).
    segments: OnceCell<Vec<Range<usize>>>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            binds: Vec::new(),
            segments: OnceCell::new(),
        }
    }

    /// Appends SQL text (no parameters).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self.segments.take();
        self
    }

    /// Appends one `?` and its value.
    pub fn param(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.text.push('?');
        self.segments.take();
        self.binds.push(value.into());
        self
    }

    /// Forgets the values, keeping the text: to run one statement again with others.
    pub fn clear_binds(&mut self) -> &mut Self {
        self.binds.clear();
        self
    }

    /// Adds a value for a `?` already in the text.
    pub fn bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.binds.push(value.into());
        self
    }

    /// Adds values for `?`s already in the text.
    pub fn bind_all<B: Into<Bind>>(&mut self, values: impl IntoIterator<Item = B>) -> &mut Self {
        self.binds.extend(values.into_iter().map(Into::into));
        self
    }

    /// Appends `?, ?, ...` for each value.
    pub fn params<B: Into<Bind>>(&mut self, values: impl IntoIterator<Item = B>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.param(v);
        }
        self
    }

    /// [`placeholder_gaps`] of the text, kept until the text changes.
    fn gaps(&self) -> &[Range<usize>] {
        self.segments.get_or_init(|| placeholder_gaps(&self.text))
    }

    fn query(&self, conn: &DbConn) -> BoxedSqlQuery<'static, MultiBackend, SqlQuery> {
        let text = match conn {
            DbConn::Sqlite(_) => self.text.clone(),
            DbConn::Pg(_) => numbered_placeholders(&self.text),
        };
        let mut q = diesel::sql_query(text).into_boxed::<MultiBackend>();
        for b in &self.binds {
            q = match b.clone() {
                Bind::Text(v) => q.bind::<Nullable<Text>, _>(v),
                Bind::Int(v) => q.bind::<Nullable<BigInt>, _>(v),
                Bind::Bool(v) => q.bind::<Bool, _>(v),
            };
        }
        q
    }

    pub fn execute(&self, conn: &mut DbConn) -> Result<usize, DbError> {
        Ok(self.query(conn).execute(conn)?)
    }

    /// Runs the statement prepared once per connection and text, then only re-bound: for
    /// one statement shape run many times (an upload's per-row updates on SQLite, where a
    /// prepare costs as much as the write). Only for texts of few shapes: each distinct text
    /// stays prepared for the connection's life.
    pub fn execute_prepared(&self, conn: &mut DbConn) -> Result<usize, DbError> {
        Ok(Prepared(self).execute(conn)?)
    }

    pub fn load<T>(&self, conn: &mut DbConn) -> Result<Vec<T>, DbError>
    where
        T: QueryableByName<MultiBackend> + 'static,
    {
        Ok(self.query(conn).load(conn)?)
    }

    /// [`Sql::load`] with the statement prepared once per connection and text, as
    /// [`Sql::execute_prepared`] (the same caution: only for texts of few shapes).
    pub fn load_prepared<T>(&self, conn: &mut DbConn) -> Result<Vec<T>, DbError>
    where
        T: QueryableByName<MultiBackend> + 'static,
    {
        Ok(Prepared(self).load(conn)?)
    }

    pub fn first<T>(&self, conn: &mut DbConn) -> Result<Option<T>, DbError>
    where
        T: QueryableByName<MultiBackend> + 'static,
    {
        Ok(self.load(conn)?.into_iter().next())
    }
}

/// [`Sql`] as a statement diesel may keep in its per-connection cache, keyed by its text
/// (diesel's own `sql_query` opts out of that cache).
struct Prepared<'a>(&'a Sql);

impl diesel::query_builder::Query for Prepared<'_> {
    type SqlType = diesel::expression::expression_types::Untyped;
}

impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<MultiBackend> for Prepared<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> diesel::QueryResult<()> {
        // The backend writes each placeholder (`?` or `$n`) as its parameter is pushed.
        let mut binds = self.0.binds.iter();
        let sql = self.0;
        for (n, segment) in sql.gaps().iter().map(|r| &sql.text[r.clone()]).enumerate() {
            if n > 0 {
                match binds.next() {
                    Some(Bind::Text(v)) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                    Some(Bind::Int(v)) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                    Some(Bind::Bool(v)) => out.push_bind_param::<Bool, _>(v)?,
                    None => {
                        return Err(diesel::result::Error::QueryBuilderError(
                            "more placeholders than parameters".into(),
                        ));
                    }
                }
            }
            out.push_sql(segment);
        }
        Ok(())
    }
}

/// The byte ranges of the text between `?` placeholders (outside string literals).
fn placeholder_gaps(text: &str) -> Vec<Range<usize>> {
    let mut gaps = Vec::new();
    let mut start = 0;
    let mut in_string = false;
    // Both marks are ASCII, so a byte scan cannot split a character.
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'\'' => in_string = !in_string,
            b'?' if !in_string => {
                gaps.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
    }
    gaps.push(start..text.len());
    gaps
}

impl RunQueryDsl<DbConn> for Prepared<'_> {}

/// A PostgreSQL statement whose parameters may be arrays, in `?` style: a batch's ids and
/// values go as one parameter per column (`= ANY(?)`, `unnest(?, ?)`), so the text is the
/// same for a batch of any size (prepared once per connection) and PostgreSQL reads a few
/// parameters instead of hundreds. Bound one by one, an upload's 500-id lookups and
/// 1,000-value updates took PostgreSQL longer to bind than to run.
pub struct PgSql<'a> {
    text: String,
    binds: Vec<PgBind<'a>>,
}

enum PgBind<'a> {
    Text(&'a str),
    Texts(Vec<Option<&'a str>>),
    Ints(Vec<i64>),
}

impl<'a> PgSql<'a> {
    pub fn new(text: impl Into<String>) -> Self {
        PgSql {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    /// Appends SQL text (no parameters).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends one `?` for a text value.
    pub fn text(&mut self, value: &'a str) -> &mut Self {
        self.text.push('?');
        self.binds.push(PgBind::Text(value));
        self
    }

    /// Appends one `?` for an array of texts (NULLs allowed), typed `text[]`.
    pub fn texts(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) -> &mut Self {
        self.text.push_str("?::text[]");
        self.binds.push(PgBind::Texts(values.into_iter().collect()));
        self
    }

    /// Appends one `?` for an array of integers, typed `bigint[]`.
    pub fn ints(&mut self, values: impl IntoIterator<Item = i64>) -> &mut Self {
        self.text.push_str("?::bigint[]");
        self.binds.push(PgBind::Ints(values.into_iter().collect()));
        self
    }

    /// Runs it prepared once per connection and text (the caution of
    /// [`Sql::execute_prepared`]: for texts of few shapes).
    pub fn execute(self, conn: &mut diesel::PgConnection) -> Result<usize, DbError> {
        Ok(RunQueryDsl::execute(self, conn)?)
    }

    /// [`PgSql::execute`] for a query.
    pub fn load<T>(self, conn: &mut diesel::PgConnection) -> Result<Vec<T>, DbError>
    where
        T: QueryableByName<diesel::pg::Pg> + 'static,
    {
        Ok(RunQueryDsl::load(self, conn)?)
    }
}

impl diesel::query_builder::Query for PgSql<'_> {
    type SqlType = diesel::expression::expression_types::Untyped;
}

impl QueryId for PgSql<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<diesel::pg::Pg> for PgSql<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> diesel::QueryResult<()> {
        use diesel::sql_types::Array;
        let mut binds = self.binds.iter();
        let segments = placeholder_gaps(&self.text);
        for (n, segment) in segments.iter().map(|r| &self.text[r.clone()]).enumerate() {
            if n > 0 {
                match binds.next() {
                    Some(PgBind::Text(v)) => out.push_bind_param::<Text, _>(v)?,
                    Some(PgBind::Texts(v)) => out.push_bind_param::<Array<Nullable<Text>>, _>(v)?,
                    Some(PgBind::Ints(v)) => out.push_bind_param::<Array<BigInt>, _>(v)?,
                    None => {
                        return Err(diesel::result::Error::QueryBuilderError(
                            "more placeholders than parameters".into(),
                        ));
                    }
                }
            }
            out.push_sql(segment);
        }
        Ok(())
    }
}

impl RunQueryDsl<diesel::PgConnection> for PgSql<'_> {}

/// `?` → `$1, $2, ...` outside string literals, for PostgreSQL.
fn numbered_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut in_string = false;
    for c in text.chars() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '?' if !in_string => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_split_outside_strings() {
        let text = "a = ? AND b = '?' AND c IN (?, ?)";
        let parts: Vec<&str> = super::placeholder_gaps(text)
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(parts, ["a = ", " AND b = '?' AND c IN (", ", ", ")"]);
    }

    #[test]
    fn the_kept_gaps_follow_the_text() {
        let mut sql = super::Sql::new("a = ?");
        assert_eq!(sql.gaps(), [0..4, 5..5]);
        sql.push(" AND b = ").param(1);
        assert_eq!(sql.gaps(), [0..4, 5..14, 15..15]);
        sql.clear_binds();
        assert_eq!(sql.gaps().len(), 3, "new values, the same text");
    }

    #[test]
    fn placeholders_are_numbered_outside_strings() {
        assert_eq!(
            super::numbered_placeholders("a = ? AND b = '?' AND c IN (?, ?)"),
            "a = $1 AND b = '?' AND c IN ($2, $3)"
        );
    }
}
