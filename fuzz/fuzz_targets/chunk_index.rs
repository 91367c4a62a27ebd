//! The chunk index parser never panics, and what it accepts is canonical and within bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::chunk_index::{ChunkIndex, MAX_CHUNK, MIN_CHUNK, max_index_size};

fuzz_target!(|data: &[u8]| {
    match ChunkIndex::parse(data) {
        // Error messages are shown to users; formatting them must not panic.
        Err(e) => drop(e.to_string()),
        Ok(index) => {
            // One serialization per index: the parser refuses every other spelling.
            assert_eq!(index.to_bytes(), data);
            assert!(data.len() as u64 <= max_index_size(index.size));
            let total: u64 = index.chunks.iter().map(|c| u64::from(c.length)).sum();
            assert_eq!(total, index.size);
            let last = index.chunks.len().saturating_sub(1);
            for (i, chunk) in index.chunks.iter().enumerate() {
                assert!(chunk.length >= 1 && chunk.length <= MAX_CHUNK);
                assert!(i == last || chunk.length >= MIN_CHUNK);
            }
        }
    }
});
