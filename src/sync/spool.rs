//! The order an upload is judged in: every delete first (so that deletes are judged against
//! the server as the client saw it), then the records, parents first, in batches of one
//! table. A document already in that order (offsync's laptop writes them so) is judged as it
//! is parsed, on another thread ([`Stream`]): parsing and the database then use two cores,
//! and nothing is written twice. Any other document is sorted first without holding it in
//! memory ([`Spool`]): its items are parsed once and written to anonymous temporary files,
//! one for each table's deletes and one for its records, then read back in batches.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

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

/// A batch of one table's items and the part of the upload it belongs to.
pub type Batch = (Part, usize, Vec<Item>);

/// Where the judge takes its batches from.
pub trait Source {
    /// The next batch; `None` at the end.
    fn next_batch(&mut self) -> Result<Option<Batch>, SyncError>;
}

impl Source for Batches<'_> {
    fn next_batch(&mut self) -> Result<Option<Batch>, SyncError> {
        Batches::next_batch(self)
    }
}

/// The order key of an item: deletes before records, then the table.
fn order_of(item: &Item) -> (Part, usize) {
    match item {
        Item::Delete(_) => (Part::Deletes, item.table()),
        _ => (Part::Records, item.table()),
    }
}

impl PartialOrd for Part {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Part {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |p: &Part| matches!(p, Part::Records);
        rank(self).cmp(&rank(other))
    }
}

enum Message {
    Batch(Batch),
    /// An item came after one it should precede: the document must be sorted first.
    OutOfOrder,
    Failed(SyncError),
}

/// Batches parsed on another thread while the judge works through the earlier ones. Stops
/// at the first item out of order (see [`Stream::out_of_order`]).
pub struct Stream {
    batches: Receiver<Message>,
    pub items: u64,
    out_of_order: bool,
}

impl Stream {
    /// Starts parsing `reader` on a thread of `scope`; at most a few batches are parsed
    /// ahead, so memory stays flat.
    pub fn start<'scope, R: BufRead + Send + 'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        reader: ChangesetReader<R>,
        size: usize,
    ) -> Stream {
        let (tx, batches) = sync_channel(4);
        scope.spawn(move || parse_in_order(reader, size, &tx));
        Stream {
            batches,
            items: 0,
            out_of_order: false,
        }
    }

    /// Whether the document turned out not to be in judging order (then nothing it gave
    /// may be kept: the caller rolls back and sorts it with a [`Spool`]).
    pub fn out_of_order(&self) -> bool {
        self.out_of_order
    }

    /// After the judge failed: what the rest of the document says of it — its own error if
    /// parsing fails further on (a malformed document is that, whatever the judge found
    /// before its end), or [`SyncError::Unordered`] if it turns out not to be in judging
    /// order (then only the sorted judgement counts).
    pub fn error_further_on(self) -> Option<SyncError> {
        for message in self.batches {
            match message {
                Message::Failed(e) => return Some(e),
                Message::OutOfOrder => return Some(SyncError::Unordered),
                Message::Batch(_) => {}
            }
        }
        None
    }
}

impl Source for Stream {
    fn next_batch(&mut self) -> Result<Option<Batch>, SyncError> {
        match self.batches.recv() {
            Ok(Message::Batch(b)) => {
                self.items += b.2.len() as u64;
                Ok(Some(b))
            }
            Ok(Message::OutOfOrder) => {
                self.out_of_order = true;
                Err(SyncError::Unordered)
            }
            Ok(Message::Failed(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }
}

fn parse_in_order<R: BufRead>(
    mut reader: ChangesetReader<R>,
    size: usize,
    tx: &SyncSender<Message>,
) {
    let send = |m: Message| tx.send(m).is_ok();
    if let Err(e) = reader.header() {
        send(Message::Failed(e.into()));
        return;
    }
    let mut batch: Vec<Item> = Vec::with_capacity(size);
    let mut key: Option<(Part, usize)> = None;
    loop {
        match reader.next_item() {
            Ok(Some(item)) => {
                let k = order_of(&item);
                if key.is_some_and(|current| k < current) {
                    send(Message::OutOfOrder);
                    return;
                }
                if key != Some(k) || batch.len() == size {
                    if let Some((part, table)) = key.filter(|_| !batch.is_empty())
                        && !send(Message::Batch((part, table, std::mem::take(&mut batch))))
                    {
                        return;
                    }
                    key = Some(k);
                }
                batch.push(item);
            }
            Ok(None) => {
                if let Some((part, table)) = key.filter(|_| !batch.is_empty()) {
                    send(Message::Batch((part, table, batch)));
                }
                return;
            }
            Err(e) => {
                send(Message::Failed(e.into()));
                return;
            }
        }
    }
}
