//! Sets up and times the rollback check against an 8 MiB manifest, for `bench/rollback.sh`.
//!
//! ```text
//! cargo run --release --example rollback -- DIR [RUNS]
//! ```
//!
//! Makes, in the empty or missing directory `DIR`, an origin whose manifest is as close to
//! the 8 MiB limit as it gets (about 100,000 entries, versions `1.X.Y`, then `2.0.0`), a
//! destination whose manifest has every entry but the last, and a config `DIR/app.tako` for
//! them (a `file://` origin, `Version=2.*`, a fresh key). Only `2.0.0` has an image.
//!
//! Then it times, in this process, what every `tako fetch` does with two such manifests:
//! parsing and verifying each, and `Manifest::missing_from`, the rollback check. Each is
//! run RUNS times (default 5); the median and the slowest are printed, in milliseconds.

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use format::key::SecretKey;
use format::manifest::{Entry, MAX_MANIFEST_SIZE, Manifest};
use format::version::Version;
use sha2::{Digest, Sha256};

// tako's pure parsers, compiled in as they stand (as the fuzz crate does): the timings are
// of the very code `tako fetch` runs, which tako does not export.
#[allow(dead_code)]
#[path = "../src/format/mod.rs"]
mod format;

/// The bytes of the one image the manifests' highest entry names.
const IMAGE: &[u8] = b"the image of version 2.0.0\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, runs) = match args.as_slice() {
        [dir] => (dir.as_str(), 5),
        [dir, runs] => match runs.parse::<usize>() {
            Ok(runs) if runs > 0 => (dir.as_str(), runs),
            _ => return usage(),
        },
        _ => return usage(),
    };
    match run(Path::new(dir), runs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollback: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: rollback DIR [RUNS]");
    ExitCode::from(2)
}

fn entry(version: &str, size: u64, digest: [u8; 32]) -> Result<Entry, String> {
    let version = Version::parse(version).map_err(|e| format!("version {version}: {e}"))?;
    Ok(Entry {
        version,
        size,
        digest,
    })
}

fn run(dir: &Path, runs: usize) -> Result<(), String> {
    let key = SecretKey::generate().map_err(|e| e.to_string())?;
    let public = key.public_key();

    // Entries of a realistic shape (`1.X.Y SIZE DIGEST`, about 85 bytes a line) until the
    // signed manifest is as large as allowed, leaving room for the last entry.
    let mut old = Manifest::default();
    let mut size = 200;
    let mut i: u64 = 0;
    while size + 100 < MAX_MANIFEST_SIZE as usize {
        let version = format!("1.{}.{}", i / 100, i % 100);
        let digest: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
        let e = entry(&version, 50_000_000 + i, digest)?;
        size += e.to_string().len() + 1;
        old.insert(e).map_err(|e| e.to_string())?;
        i += 1;
    }
    let mut new = old.clone();
    let last = entry("2.0.0", IMAGE.len() as u64, Sha256::digest(IMAGE).into())?;
    let hex = last.digest_hex();
    new.insert(last).map_err(|e| e.to_string())?;
    let old_bytes = old.to_signed_bytes(&key);
    let new_bytes = new.to_signed_bytes(&key);
    if new_bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(format!(
            "the manifest came out too large: {}",
            new_bytes.len()
        ));
    }

    let write = |path: &Path, bytes: &[u8]| {
        fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let mkdir = |path: &Path| {
        fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let origin = dir.join("origin");
    let dest = dir.join("dest");
    mkdir(&origin.join("store"))?;
    mkdir(&dest)?;
    write(&origin.join("manifest"), &new_bytes)?;
    write(&origin.join("store").join(&hex), IMAGE)?;
    write(&dest.join("manifest"), &old_bytes)?;
    let absolute =
        |p: &Path| fs::canonicalize(p).map_err(|e| format!("cannot resolve {}: {e}", p.display()));
    let config = format!(
        "Origin=file://{}\nPublicKey={}\nDestination={}\nVersion=2.*\n",
        absolute(&origin)?.display(),
        public.to_base64(),
        absolute(&dest)?.display()
    );
    write(&dir.join("app.tako"), config.as_bytes())?;

    println!(
        "manifests: {} entries in {} bytes (origin), {} in {} bytes (destination)",
        new.entries().len(),
        new_bytes.len(),
        old.entries().len(),
        old_bytes.len()
    );
    let mut parsed = None;
    let parse = time(runs, || {
        parsed = Some(Manifest::parse(&new_bytes, &public));
    });
    let remote = parsed
        .ok_or("no run")?
        .map_err(|e| format!("the origin's manifest does not parse: {e}"))?;
    let local = Manifest::parse(&old_bytes, &public).map_err(|e| e.to_string())?;
    let mut missing = 0;
    let check = time(runs, || missing = local.missing_from(&remote).len());
    let recheck = time(runs, || missing += remote.missing_from(&remote).len());
    if missing != 0 {
        return Err(format!("{missing} entries reported missing; expected none"));
    }
    println!("parse and verify one manifest: {parse}");
    println!("rollback check, destination against origin: {check}");
    println!("rollback check, origin against itself: {recheck}");
    Ok(())
}

/// Runs `f` `runs` times; "median X ms, slowest Y ms".
fn time(runs: usize, mut f: impl FnMut()) -> String {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms, slowest {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    )
}
