//! Writing a large file past the page cache (`O_DIRECT`), where the file system says how.
//!
//! `tako store` copies a whole image once and never reads it back; through the page cache
//! that copy costs a kernel memcpy into freshly allocated pages and their writeback, as
//! much CPU as hashing the image on a VM. Written directly, the device reads the bytes
//! from the buffers themselves.

use std::fs::File;

use rustix::fs::{AtFlags, OFlags, StatxFlags};

/// Turns on direct writes for `file` when its file system supports them and asks for an
/// alignment that `align` (the alignment of the caller's buffers, offsets and lengths)
/// satisfies, as `statx` reports it (Linux 6.1 and later). Otherwise (tmpfs, an older
/// kernel, an unusual device) the file is left as it was and the answer is false: the
/// caller writes through the page cache, as always.
pub fn try_direct_writes(file: &File, align: usize) -> bool {
    let Ok(stat) = rustix::fs::statx(file, c"", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) else {
        return false;
    };
    let fits = |asked: u32| asked > 0 && align.is_multiple_of(asked as usize);
    let told = StatxFlags::from_bits_retain(stat.stx_mask).contains(StatxFlags::DIOALIGN);
    if !told || !fits(stat.stx_dio_mem_align) || !fits(stat.stx_dio_offset_align) {
        return false;
    }
    match rustix::fs::fcntl_getfl(file) {
        Ok(flags) => rustix::fs::fcntl_setfl(file, flags | OFlags::DIRECT).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_writes_are_turned_on_only_where_the_file_system_allows_them() {
        // Wherever the tests run: on, exactly when statx said so and the flag is set.
        let file = tempfile::tempfile().unwrap();
        let on = try_direct_writes(&file, 4096);
        let flags = rustix::fs::fcntl_getfl(&file).unwrap();
        assert_eq!(flags.contains(OFlags::DIRECT), on);
        // No file system takes direct writes aligned to single bytes: never turned on.
        let file = tempfile::tempfile().unwrap();
        assert!(!try_direct_writes(&file, 1));
        let flags = rustix::fs::fcntl_getfl(&file).unwrap();
        assert!(!flags.contains(OFlags::DIRECT));
    }
}
