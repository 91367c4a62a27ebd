//! Resumed downloads against a real nginx: a download killed at several points goes on from
//! its `store/<hex>.partial` with a `Range` request, and a file changed under its name since
//! is not spliced (`If-Range`). What nginx logged is the evidence.

use crate::support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use support::nginx::{Nginx, Options};
use support::origin::World;
use support::tako::*;

/// Bytes that are not all alike, so that a spliced or shifted copy cannot pass.
fn image_bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

/// nginx sending at most `rate` per response through a small socket buffer, so a
/// download takes a while and the log follows what the client read.
fn slow_nginx(root: &Path, rate: &str) -> Nginx {
    Nginx::start(
        root,
        Options {
            limit_rate: Some(rate.to_owned()),
            send_buffer: Some("16k".to_owned()),
            ..Options::default()
        },
    )
}

#[test]
fn a_download_killed_at_random_points_resumes_from_its_partial_with_a_range_request() {
    let w = World::new();
    let size = 6 << 20;
    let image = image_bytes(size, 7);
    let digest = w.publish_bytes("1.0", &image);
    // 6 MiB at 2 MiB/s: about 3 s of transfer in all.
    let nginx = slow_nginx(&w.origin(), "2m");
    let config = w.config("app.tako", &nginx.url(), "*", "");
    let uri = format!("/store/{digest}");
    let partial = w.dest().join("store").join(format!("{digest}.partial"));

    let mut kills = 0;
    let mut kept = 0;
    // Each run is killed once its partial holds 1, 2 and then 3 MiB: nginx's rate leaves
    // 1.5 s or more of the transfer to go then, so every kill lands during a download.
    for mib in 1..=3 {
        let mut child = Fetch::new().within(SLOW_GUARD).spawn(&[], &[&config]);
        let give_up = Instant::now() + HANG_GUARD;
        while fs::metadata(&partial).map_or(0, |m| m.len()) < mib << 20
            && child.is_running()
            && Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.is_running() {
            // SIGKILL: no chance to tidy up, as after a power cut of the process.
            kills += 1;
        }
        child.kill();
        let now = fs::metadata(&partial).map_or(0, |m| m.len());
        assert!(now >= kept, "a partial never shrinks: {now} < {kept}");
        kept = now;
        assert_eq!(
            w.latest(),
            None,
            "nothing is installed before it is complete"
        );
    }
    assert!(kills > 0, "no kill landed during the download");
    assert!(kept > 0, "the killed runs kept no bytes");

    let o = fetch_slow(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    assert!(!partial.exists());

    let records: Vec<_> = nginx
        .wait_records(kills + 2)
        .into_iter()
        .filter(|r| r.uri == uri)
        .collect();
    let resumed: Vec<_> = records.iter().filter(|r| r.range.is_some()).collect();
    assert!(!resumed.is_empty(), "no Range request: {records:#?}");
    for r in &resumed {
        let range = r.range.as_deref().unwrap();
        assert!(
            range.starts_with("bytes=") && range.ends_with('-'),
            "{range}"
        );
        assert_eq!(r.status, 206, "{r:?}");
        assert!(r.if_range.is_some(), "resumed without If-Range: {r:?}");
    }
    let last = records.last().unwrap();
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(last.body_bytes_sent, size as u64 - kept);
    let sent: u64 = records.iter().map(|r| r.body_bytes_sent).sum();
    assert!(
        sent < 2 * size as u64,
        "{sent} bytes sent for a {size}-byte image"
    );
}

#[test]
fn a_file_changed_under_the_same_name_is_not_spliced() {
    let w = World::new();
    let size = 1 << 20;
    let image = image_bytes(size, 8);
    let digest = w.publish_bytes("1.0", &image);
    let served = w.origin().join("store").join(&digest);
    // The origin first serves a damaged copy of the same length…
    let mut damaged = image.clone();
    damaged[1000] ^= 0xff;
    fs::set_permissions(&served, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&served, &damaged).unwrap();
    let nginx = slow_nginx(&w.origin(), "256k");
    let config = w.config("app.tako", &nginx.url(), "*", "");

    // …and the first run is cut off by --max-time with part of it.
    let o = fetch_slow(&["--retries", "0", "--max-time", "1"], &[&config]);
    assert_exit(&o, 1);
    let partial = w.dest().join("store").join(format!("{digest}.partial"));
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < size as u64, "{kept}");

    // The publisher repairs the file: same name, same length, another mtime, so nginx
    // gives it another ETag.
    fs::write(&served, &image).unwrap();
    let later = SystemTime::now() + Duration::from_secs(10);
    fs::File::options()
        .write(true)
        .open(&served)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let o = fetch_slow(&["--retries", "0"], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &image);
    let records = nginx.wait_records(4);
    let last = records
        .iter()
        .rfind(|r| r.uri == format!("/store/{digest}"))
        .unwrap();
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert!(last.if_range.is_some(), "{last:?}");
    // If-Range did not match: the whole new file, not the tail of it.
    assert_eq!(last.status, 200, "{last:?}");
    assert_eq!(last.body_bytes_sent, size as u64);
}
