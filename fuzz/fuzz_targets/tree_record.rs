//! The tree record parser never panics, and a record it accepts renders back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::tree_record::{TreeRecord, compare};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = TreeRecord::parse(data) {
        let rendered = record.render();
        assert_eq!(rendered.as_bytes(), data);
        assert_eq!(TreeRecord::parse(rendered.as_bytes()), Ok(record.clone()));
        assert!(compare(&record, &record).is_empty());
        // Every entry missing from an empty tree is named once.
        assert_eq!(compare(&record, &TreeRecord::default()).len(), record.entries.len());
    }
});
