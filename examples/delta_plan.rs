//! Plans a delta update from chunk indexes, for `bench/delta.sh`.
//!
//! ```text
//! cargo run --release --example delta_plan -- NEW_INDEX OLD_INDEX...
//! ```
//!
//! Reads the index files (as `tako store` writes them to `index/<sha256>`), plans the new
//! image from the old ones as a host would (`tako::delta::plan`) and prints one line of
//! tab-separated numbers: the image size, the index size, the bytes the plan fetches, the
//! bytes it copies from the old images, and the number of range requests.

use std::fs;
use std::process::ExitCode;

use tako::chunk_index::ChunkIndex;
use tako::delta;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: delta_plan NEW_INDEX OLD_INDEX...");
        return ExitCode::from(2);
    }
    let mut indexes = Vec::new();
    let mut new_bytes = 0;
    for (i, path) in args.iter().enumerate() {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("delta_plan: cannot read {path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if i == 0 {
            new_bytes = bytes.len();
        }
        match ChunkIndex::parse(&bytes) {
            Ok(index) => indexes.push(index),
            Err(e) => {
                eprintln!("delta_plan: {path} is not a chunk index: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (new, old) = indexes.split_at(1);
    let old: Vec<&ChunkIndex> = old.iter().collect();
    let plan = delta::plan(&new[0], &old);
    println!(
        "{}\t{}\t{}\t{}\t{}",
        plan.size,
        new_bytes,
        plan.to_fetch(),
        plan.reused(),
        plan.requests()
    );
    ExitCode::SUCCESS
}
