//! The changeset reader on any bytes (gzip or plain): items or an error, never a panic,
//! and never more memory than its budget allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use offsync::sync::codec::{ChangesetReader, decompressing};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = decompressing(std::io::Cursor::new(data.to_vec())) else {
        return;
    };
    let mut reader = ChangesetReader::new(input, 1 << 20);
    if reader.header().is_ok() {
        while let Ok(Some(_)) = reader.next_item() {}
    }
});
