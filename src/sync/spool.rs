//! Sorting a streamed changeset by table without holding it in memory: items are parsed
//! once and written to one anonymous temporary file per table, then read back parents
//! first in batches.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use super::SyncError;
use super::codec::{ChangesetReader, Item};
use crate::domain::TABLES;

pub struct Spool {
    files: Vec<BufWriter<File>>,
    pub items: u64,
}

impl Spool {
    /// Reads the whole document, checking it as it goes, into per-table files.
    pub fn fill<R: BufRead>(mut reader: ChangesetReader<R>) -> Result<Spool, SyncError> {
        let mut files = Vec::with_capacity(TABLES.len());
        for _ in TABLES {
            files.push(BufWriter::with_capacity(64 << 10, tempfile::tempfile()?));
        }
        let mut items = 0;
        reader.header()?;
        while let Some(item) = reader.next_item()? {
            let out = &mut files[item.table()];
            serde_json::to_writer(&mut *out, &item).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            items += 1;
        }
        Ok(Spool { files, items })
    }

    /// The items, table by table in declaration order (parents first), in batches.
    pub fn batches(self, size: usize) -> Result<Batches, SyncError> {
        let mut readers = Vec::with_capacity(self.files.len());
        for w in self.files {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.seek(SeekFrom::Start(0))?;
            readers.push(BufReader::with_capacity(64 << 10, f));
        }
        Ok(Batches {
            readers,
            table: 0,
            size,
            line: String::new(),
        })
    }
}

pub struct Batches {
    readers: Vec<BufReader<File>>,
    table: usize,
    size: usize,
    line: String,
}

impl Batches {
    /// The next batch of one table's items, with that table; `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<(usize, Vec<Item>)>, SyncError> {
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
            return Ok(Some((self.table, batch)));
        }
        Ok(None)
    }
}
