//! Sorting a streamed changeset by table without holding it in memory: items are parsed
//! once and written to anonymous temporary files, one for each table's deletes and one for
//! its records, then read back in batches: every delete first (so that deletes are judged
//! against the server as the client saw it), then the records, parents first.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use super::SyncError;
use super::codec::{ChangesetReader, Item};
use crate::domain::TABLES;

pub struct Spool {
    /// Each table's deletes, then each table's records (and aliases), in declaration order.
    files: Vec<File>,
    pub items: u64,
}

/// Which part of the upload a batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Deletes,
    Records,
}

impl Spool {
    /// Reads the whole document, checking it as it goes, into per-table files.
    pub fn fill<R: BufRead>(mut reader: ChangesetReader<R>) -> Result<Spool, SyncError> {
        let mut files = Vec::with_capacity(2 * TABLES.len());
        for _ in 0..2 * TABLES.len() {
            files.push(BufWriter::with_capacity(64 << 10, tempfile::tempfile()?));
        }
        let mut items = 0;
        reader.header()?;
        while let Some(item) = reader.next_item()? {
            let part = match item {
                Item::Delete(_) => 0,
                _ => TABLES.len(),
            };
            let out = &mut files[part + item.table()];
            serde_json::to_writer(&mut *out, &item).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            items += 1;
        }
        let files = files
            .into_iter()
            .map(|w| w.into_inner().map_err(|e| e.into_error()))
            .collect::<Result<_, _>>()?;
        Ok(Spool { files, items })
    }

    /// The items in batches: every table's deletes, then every table's records, each
    /// table by table in declaration order (parents first). From the start each time (an
    /// upload applied again after it lost a race reads the same items).
    pub fn batches(&mut self, size: usize) -> Result<Batches<'_>, SyncError> {
        let mut readers = Vec::with_capacity(self.files.len());
        for f in &mut self.files {
            f.seek(SeekFrom::Start(0))?;
            readers.push(BufReader::with_capacity(64 << 10, &*f));
        }
        Ok(Batches {
            readers,
            table: 0,
            size,
            line: String::new(),
        })
    }
}

pub struct Batches<'a> {
    readers: Vec<BufReader<&'a File>>,
    table: usize,
    size: usize,
    line: String,
}

impl Batches<'_> {
    /// The next batch of one table's items, with its part and table; `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<(Part, usize, Vec<Item>)>, SyncError> {
        while self.table < self.readers.len() {
            let mut batch = Vec::new();
            while batch.len() < self.size {
                self.line.clear();
                if self.readers[self.table].read_line(&mut self.line)? == 0 {
                    break;
                }
                let item: Item = serde_json::from_str(&self.line).map_err(std::io::Error::other)?;
                batch.push(item);
            }
            if batch.is_empty() {
                self.table += 1;
                continue;
            }
            let (part, table) = if self.table < TABLES.len() {
                (Part::Deletes, self.table)
            } else {
                (Part::Records, self.table - TABLES.len())
            };
            return Ok(Some((part, table, batch)));
        }
        Ok(None)
    }
}
