//! The changeset document (PROTOCOL.md §2): a streaming reader and writer.
//!
//! The reader pulls one `<record>`, `<delete>` or `<alias>` at a time from any `BufRead`
//! (gzip or plain, told apart by the magic bytes), checks names and values against the
//! domain, and never holds more than one item and one bounded XML event in memory. The
//! writer streams items out. Neither knows about databases, sessions or offline rights.

use std::io::{self, BufRead, BufReader, Read, Write};

use quick_xml::XmlVersion;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};

use super::code::ErrorCode;
use crate::domain::{self, Micros, TABLES, TableId, time, value};

/// The error code of an upload that sent such a value.
fn value_code(e: &value::ValueError) -> ErrorCode {
    match e {
        value::ValueError::Character(_) => ErrorCode::InvalidCharacter,
        value::ValueError::TooLong(_) => ErrorCode::ValueTooLong,
        _ => ErrorCode::InvalidValue,
    }
}

/// The only changeset version this server speaks.
pub const VERSION: &str = "1";

/// The largest single XML event (a tag with its attributes, or one run of text) the reader
/// accepts; keeps a hostile document from making one event as large as the upload.
pub const MAX_EVENT_BYTES: usize = 2 << 20;
/// The longest field value accepted.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What is wrong with a document.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not XML, not a changeset, or cut short.
    #[error("{0}")]
    Malformed(String),
    #[error("a changeset may not have a DOCTYPE")]
    Doctype,
    #[error("unknown changeset version {0:?}; this server speaks version {VERSION}")]
    Version(String),
    /// Well-formed, but a row names something unknown or holds a value that does not fit.
    #[error("{message}")]
    Invalid {
        code: ErrorCode,
        table: Option<String>,
        id: Option<String>,
        field: Option<String>,
        message: String,
    },
    /// The decompressed document is larger than allowed.
    #[error("the decompressed changeset is larger than {0} bytes")]
    TooLarge(u64),
    #[error("reading the changeset: {0}")]
    Io(io::Error),
}

impl CodecError {
    fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        CodecError::Invalid {
            code,
            table: None,
            id: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Whether the field's value at `base` was sent (`was=` / `was-null=`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Was {
    Unknown,
    Known(Option<String>),
}

/// One field of a `<record>`, its value in stored form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldChange {
    /// Index into the table's `fields`.
    pub index: usize,
    pub value: Option<String>,
    pub was: Was,
}

/// A `<record>`: a create (no base) or an edit (base), or in a download a whole row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub table: TableId,
    pub id: String,
    pub base: Option<Micros>,
    pub updated: Option<Micros>,
    pub fields: Vec<FieldChange>,
}

impl Record {
    /// A create of row `id` with fields named as the domain declares them (a field left
    /// out is NULL); `None` when the table or a field name is not declared.
    pub fn create(table: &str, id: &str, named: &[(&str, Option<&str>)]) -> Option<Record> {
        let t = domain::table_by_name(table)?;
        let fields = named
            .iter()
            .map(|(name, value)| {
                Some(FieldChange {
                    index: TABLES[t].field_index(name)?,
                    value: value.map(str::to_owned),
                    was: Was::Unknown,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Record {
            table: t,
            id: id.to_owned(),
            base: None,
            updated: None,
            fields,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delete {
    pub table: TableId,
    pub id: String,
    pub base: Option<Micros>,
    pub updated: Option<Micros>,
    /// The row's values at `base`, when the client sends them (`<field name="x" was="v"/>`
    /// inside the `<delete>`, an addition of offsync's: docs/protocol.md §7), by field
    /// index; so that a stale delete's conflict can show what changed since.
    #[serde(default)]
    pub was: Vec<(usize, Option<String>)>,
}

/// `<alias>`: the server joined a client's row onto an existing one (§4.5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alias {
    pub table: TableId,
    pub id: String,
    pub canonical: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Item {
    Record(Record),
    Delete(Delete),
    Alias(Alias),
}

impl Item {
    pub fn table(&self) -> TableId {
        match self {
            Item::Record(r) => r.table,
            Item::Delete(d) => d.table,
            Item::Alias(a) => a.table,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Item::Record(r) => &r.id,
            Item::Delete(d) => &d.id,
            Item::Alias(a) => &a.id,
        }
    }
}

/// Counts bytes read from the inner reader, failing past a limit: bounds the decompressed
/// size of an upload (a gzip bomb stops here) and, reset per event, the size of one event.
struct Budget<R> {
    inner: R,
    total: u64,
    total_limit: u64,
    event: usize,
}

#[derive(Debug)]
struct OverBudget(&'static str);

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for OverBudget {}

impl<R: BufRead> Read for Budget<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Budget<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.total > self.total_limit {
            return Err(io::Error::other(OverBudget("total")));
        }
        if self.event > MAX_EVENT_BYTES {
            return Err(io::Error::other(OverBudget("event")));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.total += n as u64;
        self.event += n;
        self.inner.consume(n);
    }
}

/// Opens a changeset that may be gzip-compressed, told apart by the magic bytes.
pub fn decompressing<R: Read + Send + 'static>(input: R) -> io::Result<Box<dyn BufRead + Send>> {
    let mut input = BufReader::with_capacity(64 << 10, input);
    let gz = input.fill_buf()?.starts_with(&GZIP_MAGIC);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            64 << 10,
            flate2::bufread::MultiGzDecoder::new(input),
        ))
    } else {
        Box::new(input)
    })
}

/// Level 2 with the zlib-rs backend: measured by `offsync bench --gzip` (docs/performance.md)
/// as nearly the bytes of level 6 in half its time.
pub const GZIP_LEVEL: u32 = 2;

/// A gzip stream for a changeset, with a buffer in front: the encoder must see large writes,
/// because flate2 zero-fills its whole output buffer on every write it is given (a profile
/// showed 95% of a download's instructions in that `memset` when it got one write per field).
pub fn gzip_writer<W: io::Write>(out: W) -> io::BufWriter<flate2::write::GzEncoder<W>> {
    io::BufWriter::with_capacity(
        64 << 10,
        flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL)),
    )
}

/// Ends a stream made by [`gzip_writer`] and returns the inner writer.
pub fn finish_gzip<W: io::Write>(gz: io::BufWriter<flate2::write::GzEncoder<W>>) -> io::Result<W> {
    let mut out = gz.into_inner().map_err(|e| e.into_error())?.finish()?;
    out.flush()?;
    Ok(out)
}

/// The root element's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub since: Option<Micros>,
    /// In a resumable download (docs/protocol.md §8): how many items this part holds.
    pub rows: Option<u64>,
}

/// Reads a changeset item by item.
pub struct ChangesetReader<R: BufRead> {
    xml: quick_xml::Reader<Budget<R>>,
    buf: Vec<u8>,
    decompressed_limit: u64,
    header: Option<Header>,
    done: bool,
    skip_unknown_fields: bool,
    /// The last `<checkpoint after="..."/>` of a resumable download, and how many items
    /// came before it.
    checkpoint: Option<(String, u64)>,
    items: u64,
}

impl<R: BufRead> ChangesetReader<R> {
    /// `decompressed_limit` bounds the bytes read from `input` (after decompression).
    pub fn new(input: R, decompressed_limit: u64) -> Self {
        let mut xml = quick_xml::Reader::from_reader(Budget {
            inner: input,
            total: 0,
            total_limit: decompressed_limit,
            event: 0,
        });
        let config = xml.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Self {
            xml,
            buf: Vec::with_capacity(4096),
            decompressed_limit,
            header: None,
            done: false,
            skip_unknown_fields: false,
            checkpoint: None,
            items: 0,
        }
    }

    /// The last checkpoint read (docs/protocol.md §8): the token to resume after, and how
    /// many items came before it. Only downloads have them.
    pub fn checkpoint(&self) -> Option<&(String, u64)> {
        self.checkpoint.as_ref()
    }

    /// A reader for downloads: a field this build does not know is left out rather than
    /// failing the sync, so that a server can add a field before every laptop is upgraded.
    pub fn for_download(input: R) -> Self {
        Self {
            skip_unknown_fields: true,
            ..Self::new(input, u64::MAX)
        }
    }

    fn event(&mut self) -> Result<Event<'_>, CodecError> {
        self.buf.clear();
        self.xml.get_mut().event = 0;
        let limit = self.decompressed_limit;
        let position = self.xml.buffer_position();
        self.xml
            .read_event_into(&mut self.buf)
            .map_err(|e| xml_error(e, limit, position))
    }

    /// The root element's attributes; reads up to and including the root tag.
    pub fn header(&mut self) -> Result<Header, CodecError> {
        if let Some(h) = &self.header {
            return Ok(h.clone());
        }
        loop {
            match self.event()? {
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::DocType(_) => return Err(CodecError::Doctype),
                Event::Text(t) if t.xml10_content().trim().is_empty() => {}
                Event::Start(e) if e.name().0 == "changeset" => {
                    let e = e.into_owned();
                    return self.root(&e, false);
                }
                Event::Empty(e) if e.name().0 == "changeset" => {
                    let e = e.into_owned();
                    return self.root(&e, true);
                }
                Event::Start(e) | Event::Empty(e) => {
                    return Err(CodecError::Malformed(format!(
                        "the root element is <{}>, expected <changeset>",
                        e.name().0
                    )));
                }
                Event::Eof => {
                    return Err(CodecError::Malformed(
                        "the document is empty or is not XML".into(),
                    ));
                }
                _ => {
                    return Err(CodecError::Malformed(
                        "the document does not start with a <changeset> element".into(),
                    ));
                }
            }
        }
    }

    fn root(&mut self, e: &BytesStart<'static>, empty: bool) -> Result<Header, CodecError> {
        let mut version = None;
        let mut since = None;
        let mut rows = None;
        for (k, v) in attributes(e)? {
            match k.as_str() {
                "version" => version = Some(v),
                "rows" => rows = v.parse().ok(),
                "since" => {
                    since = Some(time::parse(&v).ok_or_else(|| {
                        CodecError::Malformed(format!(
                            "the changeset's since {v:?} is not an RFC 3339 timestamp"
                        ))
                    })?)
                }
                _ => {}
            }
        }
        match version {
            Some(v) if v == VERSION => {}
            Some(v) => return Err(CodecError::Version(v)),
            None => {
                return Err(CodecError::Malformed(
                    "the <changeset> element has no version".into(),
                ));
            }
        }
        self.done = empty;
        let header = Header { since, rows };
        self.header = Some(header.clone());
        Ok(header)
    }

    /// The next item, or `None` after `</changeset>` and the end of the document.
    pub fn next_item(&mut self) -> Result<Option<Item>, CodecError> {
        self.header()?;
        if self.done {
            return self.expect_end_of_document().map(|()| None);
        }
        let download = self.skip_unknown_fields;
        loop {
            match self.event()? {
                Event::Text(t) if t.xml10_content().trim().is_empty() => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::DocType(_) => return Err(CodecError::Doctype),
                Event::End(_) => {
                    self.done = true;
                    return self.expect_end_of_document().map(|()| None);
                }
                Event::Empty(e) if download && e.name().0 == "checkpoint" => {
                    let e = e.into_owned();
                    let after = attributes(&e)?
                        .into_iter()
                        .find(|(k, _)| k == "after")
                        .map(|(_, v)| v)
                        .ok_or_else(|| {
                            CodecError::Malformed("a <checkpoint> without after".into())
                        })?;
                    self.checkpoint = Some((after, self.items));
                }
                Event::Start(e) => {
                    let e = e.into_owned();
                    self.items += 1;
                    return self.item(&e, false).map(Some);
                }
                Event::Empty(e) => {
                    let e = e.into_owned();
                    self.items += 1;
                    return self.item(&e, true).map(Some);
                }
                Event::Eof => return Err(truncated()),
                Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => {
                    return Err(CodecError::Malformed(
                        "text directly inside <changeset>; only elements belong there".into(),
                    ));
                }
                Event::Decl(_) => {
                    return Err(CodecError::Malformed("a second XML declaration".into()));
                }
            }
        }
    }

    fn expect_end_of_document(&mut self) -> Result<(), CodecError> {
        loop {
            match self.event()? {
                Event::Eof => return Ok(()),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.xml10_content().trim().is_empty() => {}
                _ => {
                    return Err(CodecError::Malformed(
                        "content after the end of </changeset>".into(),
                    ));
                }
            }
        }
    }

    fn item(&mut self, e: &BytesStart<'static>, empty: bool) -> Result<Item, CodecError> {
        let name = e.name().0.to_owned();
        let attrs = attributes(e)?;
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let table_name = get("table").unwrap_or_default().to_owned();
        let raw_id = get("id").unwrap_or_default().to_owned();
        let at = |code, message: String| CodecError::Invalid {
            code,
            table: Some(table_name.clone()).filter(|t| !t.is_empty()),
            id: Some(raw_id.clone()).filter(|i| !i.is_empty()),
            field: None,
            message,
        };
        if !matches!(name.as_str(), "record" | "delete" | "alias") {
            return Err(CodecError::Malformed(format!(
                "unexpected element <{name}> in a changeset"
            )));
        }
        if table_name.is_empty() {
            return Err(at(
                ErrorCode::MissingTable,
                format!("a <{name}> has no table"),
            ));
        }
        let table = domain::table_by_name(&table_name).ok_or_else(|| {
            at(
                ErrorCode::UnknownTable,
                format!("unknown table {table_name:?}"),
            )
        })?;
        let id = value::parse_id(&raw_id).map_err(|_| {
            at(
                ErrorCode::InvalidId,
                format!("the id {raw_id:?} is not a UUID"),
            )
        })?;
        let instant = |attr: &str| -> Result<Option<Micros>, CodecError> {
            get(attr)
                .map(|v| {
                    time::parse(v).ok_or_else(|| {
                        at(
                            ErrorCode::InvalidTimestamp,
                            format!("{attr}={v:?} is not an RFC 3339 timestamp"),
                        )
                    })
                })
                .transpose()
        };
        let base = instant("base")?;
        let updated = instant("updated")?;
        match name.as_str() {
            "delete" => {
                let was = if empty {
                    Vec::new()
                } else {
                    self.delete_fields(table, &id)?
                };
                Ok(Item::Delete(Delete {
                    table,
                    id,
                    base,
                    updated,
                    was,
                }))
            }
            "alias" => {
                if !empty {
                    self.skip_to_end("alias")?;
                }
                let canonical =
                    value::parse_id(get("canonical").unwrap_or_default()).map_err(|_| {
                        at(
                            ErrorCode::InvalidId,
                            "an <alias> without a valid canonical".into(),
                        )
                    })?;
                Ok(Item::Alias(Alias {
                    table,
                    id,
                    canonical,
                }))
            }
            _ => {
                let mut record = Record {
                    table,
                    id,
                    base,
                    updated,
                    fields: Vec::new(),
                };
                if !empty {
                    self.fields(&mut record)?;
                }
                Ok(Item::Record(record))
            }
        }
    }

    /// The `<field name="x" was="v"/>` elements inside a `<delete>`: the row at its base.
    fn delete_fields(
        &mut self,
        table: TableId,
        id: &str,
    ) -> Result<Vec<(usize, Option<String>)>, CodecError> {
        let def = &TABLES[table];
        let mut out: Vec<(usize, Option<String>)> = Vec::new();
        let within = format!("the <delete> of {} {id}", def.name);
        while let Some((start, empty)) = self.next_field(&within)? {
            if !empty {
                self.skip_to_end("field")?;
            }
            let attrs = attributes(&start)?;
            let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let name = get("name").unwrap_or_default();
            let invalid = |code, message: String| CodecError::Invalid {
                code,
                table: Some(def.name.to_owned()),
                id: Some(id.to_owned()),
                field: Some(name.to_owned()),
                message,
            };
            let index = def.field_index(name).ok_or_else(|| {
                invalid(
                    ErrorCode::UnknownField,
                    format!("{} has no field {name:?}", def.name),
                )
            })?;
            if out.iter().any(|(i, _)| *i == index) {
                return Err(invalid(
                    ErrorCode::DuplicateField,
                    format!("field {name:?} appears twice"),
                ));
            }
            let was = if get("was-null") == Some("true") {
                None
            } else {
                value::parse_was(&def.fields[index], get("was"))
                    .map_err(|e| invalid(ErrorCode::InvalidWas, format!("was of {name} {e}")))?
            };
            out.push((index, was));
        }
        Ok(out)
    }

    /// The next `<field>` inside the element being read (`within` names it for messages),
    /// and whether it is empty; `None` at that element's end.
    fn next_field(
        &mut self,
        within: &str,
    ) -> Result<Option<(BytesStart<'static>, bool)>, CodecError> {
        loop {
            let (start, empty) = match self.event()? {
                Event::Start(e) => (e.into_owned(), false),
                Event::Empty(e) => (e.into_owned(), true),
                Event::End(_) => return Ok(None),
                Event::Text(t) if t.xml10_content().trim().is_empty() => continue,
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Eof => return Err(truncated()),
                Event::DocType(_) => return Err(CodecError::Doctype),
                _ => {
                    return Err(CodecError::Malformed(format!(
                        "text directly inside {within}"
                    )));
                }
            };
            if start.name().0 != "field" {
                return Err(CodecError::Malformed(format!(
                    "unexpected <{}> in {within}",
                    start.name().0
                )));
            }
            return Ok(Some((start, empty)));
        }
    }

    /// Skips an element's (ignored) content up to its end tag.
    fn skip_to_end(&mut self, name: &str) -> Result<(), CodecError> {
        let mut depth = 0usize;
        loop {
            match self.event()? {
                Event::Start(_) => depth += 1,
                Event::End(_) if depth == 0 => return Ok(()),
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(truncated()),
                Event::DocType(_) => return Err(CodecError::Doctype),
                _ => {}
            }
            if depth > 8 {
                return Err(CodecError::Malformed(format!(
                    "a <{name}> nests elements too deeply"
                )));
            }
        }
    }

    fn fields(&mut self, record: &mut Record) -> Result<(), CodecError> {
        let table = &TABLES[record.table];
        let row_error = |code, field: Option<&str>, message: String| CodecError::Invalid {
            code,
            table: Some(table.name.to_owned()),
            id: Some(record.id.clone()),
            field: field.map(str::to_owned),
            message,
        };
        let within = format!("the <record> of {} {}", table.name, record.id);
        while let Some((start, empty)) = self.next_field(&within)? {
            let attrs = attributes(&start)?;
            let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let name = get("name").unwrap_or_default().to_owned();
            let Some(index) = table.field_index(&name) else {
                if self.skip_unknown_fields {
                    // A field this build does not know yet (a newer server): left out.
                    if !empty {
                        self.skip_to_end("field")?;
                    }
                    continue;
                }
                return Err(row_error(
                    ErrorCode::UnknownField,
                    Some(&name),
                    format!("{} has no field {name:?}", table.name),
                ));
            };
            if record.fields.iter().any(|f| f.index == index) {
                return Err(row_error(
                    ErrorCode::DuplicateField,
                    Some(&name),
                    format!("field {name:?} appears twice"),
                ));
            }
            let null = get("null") == Some("true");
            let text = if empty {
                String::new()
            } else {
                self.text_until_end(&name)?
            };
            let def = &table.fields[index];
            let raw = if null {
                if !text.is_empty() {
                    return Err(row_error(
                        ErrorCode::InvalidValue,
                        Some(&name),
                        format!("field {name:?} is marked null but has a value"),
                    ));
                }
                None
            } else {
                Some(text.as_str())
            };
            let value = value::parse(def, raw)
                .map_err(|e| row_error(value_code(&e), Some(&name), format!("{name} {e}")))?;
            let was = if get("was-null") == Some("true") {
                Was::Known(None)
            } else if let Some(w) = get("was") {
                let parsed = value::parse_was(def, Some(w)).map_err(|e| {
                    let code = match e {
                        value::ValueError::Character(_) => value_code(&e),
                        _ => ErrorCode::InvalidWas,
                    };
                    row_error(code, Some(&name), format!("was of {name} {e}"))
                })?;
                Was::Known(parsed)
            } else {
                Was::Unknown
            };
            record.fields.push(FieldChange { index, value, was });
        }
        Ok(())
    }

    /// The text content of a `<field>`, entities resolved, up to its end tag.
    fn text_until_end(&mut self, name: &str) -> Result<String, CodecError> {
        let mut out = String::new();
        loop {
            match self.event()? {
                Event::Text(t) => out.push_str(&t.xml10_content()),
                Event::CData(c) => out.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => {
                    if let Some(c) = r.resolve_char_ref().map_err(|e| {
                        CodecError::Malformed(format!("a bad character reference: {e}"))
                    })? {
                        out.push(c);
                    } else {
                        let entity = r.xml10_content();
                        let resolved = resolve_predefined_entity(&entity).ok_or_else(|| {
                            CodecError::Malformed(format!(
                                "unknown entity &{entity}; (only the five predefined ones are understood)"
                            ))
                        })?;
                        out.push_str(resolved);
                    }
                }
                Event::End(_) => return Ok(out),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(truncated()),
                Event::DocType(_) => return Err(CodecError::Doctype),
                _ => {
                    return Err(CodecError::Malformed(format!(
                        "field {name:?} holds an element; it may hold only text"
                    )));
                }
            }
            if out.len() > MAX_VALUE_BYTES {
                return Err(CodecError::invalid(
                    ErrorCode::ValueTooLong,
                    format!("field {name:?} is longer than {MAX_VALUE_BYTES} bytes"),
                ));
            }
        }
    }
}

fn truncated() -> CodecError {
    CodecError::Malformed("the changeset ends before </changeset>: truncated".into())
}

fn attributes(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, CodecError> {
    e.attributes()
        .map(|a| {
            let a = a.map_err(|err| CodecError::Malformed(format!("a bad attribute: {err}")))?;
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| CodecError::Malformed(format!("a bad attribute value: {err}")))?;
            Ok((a.key.0.to_owned(), v.into_owned()))
        })
        .collect()
}

fn xml_error(e: quick_xml::Error, limit: u64, position: u64) -> CodecError {
    if let quick_xml::Error::Io(io) = &e {
        if let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<OverBudget>()) {
            return match inner.0 {
                "total" => CodecError::TooLarge(limit),
                _ => CodecError::invalid(
                    ErrorCode::EventTooLarge,
                    format!("one XML tag or text is larger than {MAX_EVENT_BYTES} bytes"),
                ),
            };
        }
        return match io.kind() {
            io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::UnexpectedEof => CodecError::Malformed(format!(
                "the upload is not a valid gzip or XML stream: {io}"
            )),
            _ => CodecError::Io(io::Error::new(io.kind(), io.to_string())),
        };
    }
    CodecError::Malformed(format!("not well-formed XML near byte {position}: {e}"))
}

/// Writes a changeset item by item.
pub struct ChangesetWriter<W: Write> {
    out: W,
}

impl<W: Write> ChangesetWriter<W> {
    pub fn start(out: W, since: Option<Micros>) -> io::Result<Self> {
        Self::start_part(out, since, None)
    }

    /// The start of a changeset; `rows`: the part of a resumable download it is, by the
    /// number of items it holds (docs/protocol.md §8).
    pub fn start_part(mut out: W, since: Option<Micros>, rows: Option<u64>) -> io::Result<Self> {
        out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<changeset version=\"1\"")?;
        if let Some(s) = since {
            write!(out, " since=\"{}\"", time::format(s))?;
        }
        if let Some(n) = rows {
            write!(out, " rows=\"{n}\"")?;
        }
        out.write_all(b">\n")?;
        Ok(Self { out })
    }

    /// A point a resumable download may be resumed after (docs/protocol.md §8).
    pub fn checkpoint(&mut self, after: &str) -> io::Result<()> {
        writeln!(self.out, "<checkpoint after=\"{}\"/>", attr(after))
    }

    pub fn item(&mut self, item: &Item) -> io::Result<()> {
        match item {
            Item::Record(r) => self.record(r),
            Item::Delete(d) => {
                let table = &TABLES[d.table];
                write!(
                    self.out,
                    "<delete table=\"{}\" id=\"{}\"",
                    table.name,
                    attr(&d.id)
                )?;
                self.times(d.base, d.updated)?;
                if d.was.is_empty() {
                    return self.out.write_all(b"/>\n");
                }
                self.out.write_all(b">")?;
                for (index, was) in &d.was {
                    let name = table.fields[*index].name;
                    match was {
                        Some(v) => {
                            write!(self.out, "<field name=\"{name}\" was=\"{}\"/>", attr(v))?
                        }
                        None => write!(self.out, "<field name=\"{name}\" was-null=\"true\"/>")?,
                    }
                }
                self.out.write_all(b"</delete>\n")
            }
            Item::Alias(a) => writeln!(
                self.out,
                "<alias table=\"{}\" id=\"{}\" canonical=\"{}\"/>",
                TABLES[a.table].name,
                attr(&a.id),
                attr(&a.canonical)
            ),
        }
    }

    fn times(&mut self, base: Option<Micros>, updated: Option<Micros>) -> io::Result<()> {
        if let Some(b) = base {
            write!(self.out, " base=\"{}\"", time::format(b))?;
        }
        if let Some(u) = updated {
            write!(self.out, " updated=\"{}\"", time::format(u))?;
        }
        Ok(())
    }

    fn record(&mut self, r: &Record) -> io::Result<()> {
        let table = &TABLES[r.table];
        self.open_record(table.name, &r.id, r.base, r.updated)?;
        for f in &r.fields {
            self.field(table.fields[f.index].name, &f.was, f.value.as_deref())?;
        }
        self.out.write_all(b"</record>\n")
    }

    /// A downloaded row, written straight from the values read, with no [`Record`] built
    /// for it (a download writes every row once, so copies per row add up).
    pub fn row(
        &mut self,
        table: TableId,
        id: &str,
        updated: Micros,
        values: &[Option<String>],
    ) -> io::Result<()> {
        let def = &TABLES[table];
        self.open_record(def.name, id, None, Some(updated))?;
        for (field, value) in def.fields.iter().zip(values) {
            self.field(field.name, &Was::Unknown, value.as_deref())?;
        }
        self.out.write_all(b"</record>\n")
    }

    // One record per line, without indentation: whitespace between elements means nothing
    // to a reader, and every byte written is a byte to compress.
    fn open_record(
        &mut self,
        table: &str,
        id: &str,
        base: Option<Micros>,
        updated: Option<Micros>,
    ) -> io::Result<()> {
        // Pieces rather than `write!`: formatting machinery was a tenth of a download's
        // instructions (callgrind, docs/performance.md).
        self.out.write_all(b"<record table=\"")?;
        self.out.write_all(table.as_bytes())?;
        self.out.write_all(b"\" id=\"")?;
        self.out.write_all(attr(id).as_bytes())?;
        self.out.write_all(b"\"")?;
        self.times(base, updated)?;
        self.out.write_all(b">")
    }

    fn field(&mut self, name: &str, was: &Was, value: Option<&str>) -> io::Result<()> {
        self.out.write_all(b"<field name=\"")?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(b"\"")?;
        match was {
            Was::Unknown => {}
            Was::Known(None) => self.out.write_all(b" was-null=\"true\"")?,
            Was::Known(Some(w)) => {
                self.out.write_all(b" was=\"")?;
                self.out.write_all(attr(w).as_bytes())?;
                self.out.write_all(b"\"")?;
            }
        }
        match value {
            None => self.out.write_all(b" null=\"true\"/>"),
            Some(v) => {
                self.out.write_all(b">")?;
                self.out.write_all(text(v).as_bytes())?;
                self.out.write_all(b"</field>")
            }
        }
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"</changeset>\n")?;
        Ok(self.out)
    }
}

/// Whether `v` holds a byte that text or an attribute writes otherwise than as itself.
/// Most values hold none: one pass over them, instead of an escape's scan and then a
/// search for each kind of whitespace (an eighth of a download's writing thread).
fn plain(v: &str) -> bool {
    !v.bytes()
        .any(|b| matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'' | b'\r' | b'\n' | b'\t'))
}

/// Escapes element text; a carriage return becomes a reference, or the reader's
/// end-of-line normalisation would turn it into a line feed.
fn text(v: &str) -> std::borrow::Cow<'_, str> {
    if plain(v) {
        return v.into();
    }
    let escaped = escape(v);
    if escaped.contains('\r') {
        escaped.replace('\r', "&#13;").into()
    } else {
        escaped
    }
}

/// Escapes an attribute value; whitespace other than a space is written as a reference so
/// that attribute-value normalisation leaves it alone.
fn attr(v: &str) -> std::borrow::Cow<'_, str> {
    if plain(v) {
        return v.into();
    }
    let escaped = escape(v);
    if escaped.contains(['\n', '\r', '\t']) {
        escaped
            .replace('\n', "&#10;")
            .replace('\r', "&#13;")
            .replace('\t', "&#9;")
            .into()
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests;
