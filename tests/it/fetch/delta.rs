//! `tako fetch` as a delta update: the chunks a host has are copied, the rest fetched with
//! `Range` requests; anything wrong falls back to the whole image (docs/fetch.md).

use crate::support;

use std::fs;
use std::time::{Duration, Instant};

use support::http_server::{Fault, Server};
use support::nginx::Nginx;
use support::origin::World;
use support::tako::*;

const MIB: usize = 1 << 20;
const IMAGE: usize = 4 * MIB;

/// `old` with 8 KiB rewritten at three places.
fn rewritten(old: &[u8]) -> Vec<u8> {
    let mut new = old.to_vec();
    for (i, at) in [MIB, 2 * MIB + 12345, 3 * MIB + 777]
        .into_iter()
        .enumerate()
    {
        new[at..at + 8192].copy_from_slice(&noise(100 + i as u64, 8192));
    }
    new
}

/// A world whose host holds version 1.0 (fetched whole, through `url`), with 2.0 made
/// from it by `change` published beside it; returns the world and both digests and images.
struct Update {
    w: World,
    old: Vec<u8>,
    new: Vec<u8>,
    d1: String,
    d2: String,
}

fn update_world(change: impl Fn(&[u8]) -> Vec<u8>, publish_args: &[&str]) -> Update {
    let w = World::new();
    let old = noise(1, IMAGE);
    let new = change(&old);
    let d1 = w.publish_bytes("1.0", &old);
    let config = w.config("first.tako", &w.file_url(), "1.0", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    w.assert_latest(&d1, &old);
    let image = w.path("image-2.0");
    fs::write(&image, &new).unwrap();
    let mut args = vec![
        "store".to_owned(),
        "-k".to_owned(),
        test_secret(),
        "-o".to_owned(),
        w.origin().display().to_string(),
    ];
    args.extend(publish_args.iter().map(|a| a.to_string()));
    args.push(image.display().to_string());
    args.push("2.0".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_exit(&tako(&args), 0);
    let d2 = sha256_hex(&new);
    Update {
        w,
        old,
        new,
        d1,
        d2,
    }
}

fn serve(w: &World) -> Server {
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    server
}

/// The `Range` headers of the requests for `path`, in order; `None` for a request without.
fn ranges(server: &Server, path: &str) -> Vec<Option<String>> {
    server
        .recorded()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.header("range").map(str::to_owned))
        .collect()
}

/// The byte ranges requested as `(first, last)`, those of every request in turn.
fn requested(ranges: &[Option<String>]) -> Vec<(u64, u64)> {
    ranges
        .iter()
        .flat_map(|r| {
            let r = r.as_deref().expect("a range request");
            r.strip_prefix("bytes=").unwrap().split(',')
        })
        .map(|r| {
            let (first, last) = r.split_once('-').unwrap();
            (first.parse().unwrap(), last.parse().unwrap())
        })
        .collect()
}

/// `old` with 8 KiB rewritten at `count` places spread over the image.
fn rewritten_at(old: &[u8], count: usize) -> Vec<u8> {
    let mut new = old.to_vec();
    for i in 0..count {
        let at = i * (IMAGE / count) + 1000;
        new[at..at + 8192].copy_from_slice(&noise(300 + i as u64, 8192));
    }
    new
}

#[test]
fn an_update_fetches_only_the_changed_chunks_with_range_requests() {
    let u = update_world(rewritten, &[]);
    let server = serve(&u.w);
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&["--json"], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);

    let store = format!("/store/{}", u.d2);
    let asked = requested(&ranges(&server, &store));
    // Three changed places, each a few chunks: a few ranges, ascending, inside the image.
    assert!((1..=6).contains(&asked.len()), "range requests: {asked:?}");
    assert!(asked.windows(2).all(|w| w[0].1 < w[1].0), "{asked:?}");
    assert!(asked.iter().all(|&(a, b)| a <= b && b < IMAGE as u64));
    let sent = server.body_bytes_sent(&store);
    let index = fs::read(u.w.origin().join("index").join(&u.d2)).unwrap();
    assert_eq!(
        sent,
        asked.iter().map(|(a, b)| b - a + 1).sum::<u64>(),
        "bytes served are the bytes asked for"
    );
    assert!(
        sent < IMAGE as u64 / 8,
        "{sent} bytes of the image were sent"
    );
    assert_eq!(server.count(&format!("/index/{}", u.d2)), 1);

    // What a script reads: the bytes received, index included, of the image's size.
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["outcome"], "updated");
    assert_eq!(record["delta"], true);
    assert_eq!(record["downloaded_bytes"], sent + index.len() as u64);
    assert_eq!(record["image_bytes"], IMAGE as u64);

    // The index of the new image is cached for the next update; the old one's too.
    let cache = u.w.dest().join("index");
    assert_eq!(fs::read(cache.join(&u.d2)).unwrap(), index);
    assert!(cache.join(&u.d1).is_file());
    assert_eq!(mode(&cache.join(&u.d2)), 0o444);
}

#[test]
fn the_text_output_says_how_much_was_downloaded() {
    let u = update_world(rewritten, &[]);
    let server = serve(&u.w);
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    let line = stdout(&o);
    let prefix = format!("{}: updated 1.0 -> 2.0 (downloaded ", config.display());
    assert!(line.starts_with(&prefix), "{line}");
    assert!(line.ends_with(" KiB of 4.0 MiB)\n"), "{line}");
    assert_eq!(stderr(&o), "", "no warning");
}

#[test]
fn a_first_install_asks_for_no_index() {
    let w = World::new();
    let image = noise(7, MIB);
    let digest = w.publish_bytes("1.0", &image);
    let server = serve(&w);
    let config = w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(server.count(&format!("/index/{digest}")), 0);
    assert_eq!(ranges(&server, &format!("/store/{digest}")), [None]);
    assert_eq!(
        stdout(&o),
        format!("{}: updated (none) -> 1.0\n", config.display())
    );
}

#[test]
fn an_image_with_bytes_inserted_still_reuses_most_chunks() {
    let insert = |old: &[u8]| {
        let mut new = old.to_vec();
        // From the end, so that the earlier places stay where they were.
        for (i, at) in [3_500_000, 2_000_000, 900_000, 100_000]
            .into_iter()
            .enumerate()
        {
            new.splice(at..at, noise(200 + i as u64, 100 + 300 * i));
        }
        new
    };
    let u = update_world(insert, &[]);
    assert_ne!(u.new.len(), u.old.len());
    let server = serve(&u.w);
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    let sent = server.body_bytes_sent(&format!("/store/{}", u.d2));
    assert!(
        sent < u.new.len() as u64 / 8,
        "{sent} bytes of {} were sent",
        u.new.len()
    );
    assert!(stdout(&o).contains("(downloaded "), "{}", stdout(&o));
}

/// Serves `index` as the index of 2.0 and checks that the host ends with a full, correct
/// download, a warning naming the problem, and no cached index for 2.0.
#[track_caller]
fn falls_back_with(u: &Update, index: Vec<u8>, says: &str) {
    let server = serve(&u.w);
    server.set_fault(&format!("/index/{}", u.d2), Fault::Body(index));
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    let err = stderr(&o);
    assert!(
        err.contains("cannot update 2.0 as a delta") && err.contains(says),
        "{err}"
    );
    assert!(err.contains("downloading the whole image"), "{err}");
    assert_eq!(
        stdout(&o),
        format!("{}: updated 1.0 -> 2.0\n", config.display())
    );
    // The last request for the image is a plain one, served whole.
    let asked = ranges(&server, &format!("/store/{}", u.d2));
    assert_eq!(asked.last(), Some(&None), "{asked:?}");
    assert!(server.body_bytes_sent(&format!("/store/{}", u.d2)) >= IMAGE as u64);
    assert!(!u.w.dest().join("index").join(&u.d2).exists());
}

/// The published index of 2.0: its text head and its 18-byte chunk records (a 16-byte
/// digest, then the length less one as two big-endian bytes; docs/index.md).
fn published_index(u: &Update) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = fs::read(u.w.origin().join("index").join(&u.d2)).unwrap();
    // The head is four lines: header, blank, summary, blank.
    let mut ends = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
    let head_end = ends.nth(3).unwrap().0 + 1;
    let (head, records) = bytes.split_at(head_end);
    assert_eq!(records.len() % 18, 0);
    (
        head.to_vec(),
        records.chunks(18).map(<[u8]>::to_vec).collect(),
    )
}

fn join(head: &[u8], records: &[Vec<u8>]) -> Vec<u8> {
    [head.to_vec(), records.concat()].concat()
}

fn length_of(record: &[u8]) -> u32 {
    u32::from(u16::from_be_bytes([record[16], record[17]])) + 1
}

fn set_length(record: &mut [u8], length: u32) {
    record[16..].copy_from_slice(&((length - 1) as u16).to_be_bytes());
}

#[test]
fn an_index_whose_lengths_do_not_add_up_falls_back_to_the_whole_image() {
    let u = update_world(rewritten, &[]);
    let (head, mut records) = published_index(&u);
    let length = length_of(&records[0]);
    set_length(&mut records[0], length - 1);
    falls_back_with(&u, join(&head, &records), "is invalid");
}

#[test]
fn an_index_with_wrong_hashes_falls_back_to_the_whole_image() {
    let u = update_world(rewritten, &[]);
    let (head, mut records) = published_index(&u);
    // Two chunks the host has, swapped: each is copied, verified against its hash, and
    // put in the other's place, so the image comes out wrong.
    records.swap(0, 2);
    falls_back_with(&u, join(&head, &records), "is not the signed one");
}

#[test]
fn an_index_with_swapped_lengths_gives_the_signed_image_and_is_not_kept() {
    let u = update_world(rewritten, &[]);
    let (head, mut records) = published_index(&u);
    let (na, nb) = (length_of(&records[0]), length_of(&records[1]));
    assert_ne!(na, nb, "the test needs two chunks of different lengths");
    set_length(&mut records[0], nb);
    set_length(&mut records[1], na);
    // The lengths still add up, so the index parses; its two chunks match nothing local
    // and are fetched, which gives the right bytes but shows the index is wrong.
    let server = serve(&u.w);
    server.set_fault(
        &format!("/index/{}", u.d2),
        Fault::Body(join(&head, &records)),
    );
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    let err = stderr(&o);
    assert!(
        err.contains("does not describe the image it names"),
        "{err}"
    );
    assert!(!u.w.dest().join("index").join(&u.d2).exists());
}

#[test]
fn a_version_1_index_left_by_an_older_tako_falls_back_to_the_whole_image_saying_what_to_do() {
    let u = update_world(rewritten, &[]);
    let size = u.new.len();
    let v1 = format!("Tako Chunk Index 1\n\n{size} {}\n\n{} {size}\n", u.d2, u.d2);
    falls_back_with(
        &u,
        v1.into_bytes(),
        "run 'tako index' on the server directory",
    );
}

#[test]
fn a_huge_index_is_not_read_past_its_bound() {
    let u = update_world(rewritten, &[]);
    // Far more than an index of a 4 MiB image can be (about 37 KB).
    falls_back_with(&u, vec![b'0'; 4 * MIB], "index");
}

#[test]
fn an_index_of_another_image_falls_back_to_the_whole_image() {
    let u = update_world(rewritten, &[]);
    let other = fs::read(u.w.origin().join("index").join(&u.d1)).unwrap();
    falls_back_with(&u, other, "describes another image");
}

#[test]
fn an_index_that_is_not_one_falls_back_to_the_whole_image() {
    let u = update_world(rewritten, &[]);
    falls_back_with(&u, b"<html>not here</html>\n".to_vec(), "is invalid");
}

#[test]
fn a_server_that_ignores_range_falls_back_to_the_whole_image() {
    let u = update_world(rewritten, &[]);
    // Without its HTTP features the server answers every GET with 200 and the whole file.
    let server = Server::serve_dir(u.w.origin());
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    let err = stderr(&o);
    assert!(err.contains("the server ignores Range"), "{err}");
    assert!(err.contains("downloading the whole image"), "{err}");
    let asked = ranges(&server, &format!("/store/{}", u.d2));
    // Several ranges at once, answered whole (which could be a server that ignores only
    // lists of ranges), one range alone, answered whole too, then the plain download.
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(asked[0].as_deref().is_some_and(|r| r.contains(',')));
    assert!(asked[1].as_deref().is_some_and(|r| !r.contains(',')));
    assert!(asked[2].is_none());
}

#[test]
fn a_missing_index_falls_back_silently() {
    let u = update_world(rewritten, &["--no-index"]);
    let server = serve(&u.w);
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    assert_eq!(stderr(&o), "");
    assert_eq!(server.count(&format!("/index/{}", u.d2)), 1);
    assert_eq!(ranges(&server, &format!("/store/{}", u.d2)), [None]);
    assert_eq!(
        stdout(&o),
        format!("{}: updated 1.0 -> 2.0\n", config.display())
    );
}

#[test]
fn a_file_origin_updates_as_a_delta() {
    let u = update_world(rewritten, &[]);
    let config = u.w.config("app.tako", &u.w.file_url(), "*", "");
    let o = fetch(&["--json"], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    assert_eq!(stderr(&o), "");
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["delta"], true);
    let downloaded = record["downloaded_bytes"].as_u64().unwrap();
    assert!(downloaded < IMAGE as u64 / 8, "{downloaded}");
    assert!(u.w.dest().join("index").join(&u.d2).is_file());
}

#[test]
fn a_file_origin_without_an_index_downloads_the_whole_image() {
    let u = update_world(rewritten, &["--no-index"]);
    let config = u.w.config("app.tako", &u.w.file_url(), "*", "");
    let o = fetch(&["--json"], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    assert_eq!(stderr(&o), "");
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["delta"], false);
    assert_eq!(record["downloaded_bytes"], serde_json::Value::Null);
}

#[test]
fn a_delta_killed_mid_download_leaves_a_valid_destination() {
    let u = update_world(rewritten, &[]);
    let server = serve(&u.w);
    let store = format!("/store/{}", u.d2);
    // Every range request stalls after a few bytes.
    server.set_fault(&store, Fault::Stall { after: 100 });
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let child = Fetch::new().spawn(&[], &[&config]);
    let new_file = u.w.dest().join("store").join(format!("{}.new", u.d2));
    let start = Instant::now();
    while !(server.count(&store) > 0 && new_file.exists()) {
        assert!(start.elapsed() < HANG_GUARD, "the delta never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ranges(&server, &store)[0].is_some(), "a range request");
    child.kill();

    // What a crash leaves: the old image in place, latest on it, no new image.
    u.w.assert_latest(&u.d1, &u.old);
    assert!(!u.w.dest().join("store").join(&u.d2).exists());

    server.clear_fault(&store);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    assert!(stdout(&o).contains("(downloaded "), "{}", stdout(&o));
    assert_eq!(
        u.w.store_files(),
        {
            let mut names = vec![u.d1.clone(), u.d2.clone()];
            names.sort();
            names
        },
        "the temporary is gone"
    );
}

#[test]
fn gc_drops_the_cached_indexes_of_images_it_removes() {
    let u = update_world(rewritten, &[]);
    let config = u.w.config("app.tako", &u.w.file_url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let cache = u.w.dest().join("index");
    assert!(cache.join(&u.d1).is_file() && cache.join(&u.d2).is_file());
    let o = run_bounded(tako_cmd().args(["gc", "--keep", "1"]).arg(&config));
    assert_exit(&o, 0);
    assert!(!cache.join(&u.d1).exists());
    assert!(cache.join(&u.d2).is_file());
}

#[test]
fn against_nginx_the_index_and_every_range_share_one_connection() {
    let u = update_world(rewritten, &[]);
    let nginx = Nginx::serve_dir(&u.w.origin());
    let config = u.w.config("app.tako", &nginx.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    let records = nginx.wait_records(3);
    let index = format!("/index/{}", u.d2);
    let store = format!("/store/{}", u.d2);
    let delta: Vec<_> = records
        .iter()
        .filter(|r| r.uri == index || r.uri == store)
        .collect();
    assert!(delta.len() >= 2, "{records:#?}");
    assert!(
        delta
            .iter()
            .all(|r| r.connection == delta[0].connection && matches!(r.status, 200 | 206)),
        "{delta:#?}"
    );
    let ranges = delta.iter().filter(|r| r.range.is_some()).count();
    assert_eq!(
        ranges,
        delta.len() - 1,
        "every request but the index's asks for a range"
    );
}

#[test]
fn a_symlink_planted_as_the_index_cache_is_not_followed_and_the_update_still_happens() {
    let u = update_world(rewritten, &[]);
    let elsewhere = u.w.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, u.w.dest().join("index")).unwrap();
    let config = u.w.config("app.tako", &u.w.file_url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    assert!(
        stderr(&o).contains("not using a local image"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through it"
    );
    assert!(
        fs::symlink_metadata(u.w.dest().join("index"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn a_dead_first_mirror_does_not_cost_the_delta_from_the_next() {
    let u = update_world(rewritten, &[]);
    let good = serve(&u.w);
    // A port nothing listens on any more, listed first.
    let dead = Server::serve_dir(u.w.origin());
    let dead_url = dead.url();
    drop(dead);
    let extra = format!("Origin={}\n", good.url());
    let config = u.w.config("app.tako", &dead_url, "*", &extra);
    let o = fetch(&["--retries", "0"], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    let store = format!("/store/{}", u.d2);
    let asked = ranges(&good, &store);
    assert!(
        !asked.is_empty() && asked.iter().all(Option::is_some),
        "only range requests for the image: {asked:?}"
    );
    assert!(
        good.body_bytes_sent(&store) < IMAGE as u64 / 4,
        "{} bytes of the image sent",
        good.body_bytes_sent(&store)
    );
    assert!(stdout(&o).contains("(downloaded "), "{}", stdout(&o));
}

#[test]
fn against_nginx_a_delta_asks_for_many_ranges_in_one_request_and_gets_only_the_changed_chunks() {
    let places = 20;
    let u = update_world(|old| rewritten_at(old, places), &[]);
    let nginx = Nginx::serve_dir(&u.w.origin());
    let config = u.w.config("app.tako", &nginx.url(), "*", "");
    let o = fetch(&["--json"], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    let records = nginx.wait_records(3);
    let store = format!("/store/{}", u.d2);
    let image: Vec<_> = records.iter().filter(|r| r.uri == store).collect();
    assert_eq!(image.len(), 1, "one request for all the ranges: {image:#?}");
    assert_eq!(image[0].status, 206);
    let asked = requested(&[image[0].range.clone()]);
    assert!(asked.len() >= places / 2, "{asked:?}");
    let asked_bytes: u64 = asked.iter().map(|(a, b)| b - a + 1).sum();
    // The changed bytes (20 × 8 KiB) and the rest of the chunks they touch: no unchanged
    // chunk in between is fetched to save a request.
    let changed = (places * 8192) as u64;
    assert!(
        asked_bytes >= changed && asked_bytes < changed + places as u64 * 2 * (64 << 10),
        "{asked_bytes} bytes asked for {changed} changed"
    );
    // nginx sent the ranges and a short head per part, nothing more.
    let sent = image[0].body_bytes_sent;
    assert!(
        sent > asked_bytes && sent < asked_bytes + 200 * asked.len() as u64,
        "{sent} bytes sent for {asked_bytes} asked"
    );
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["delta"], true);
    let index = fs::read(u.w.origin().join("index").join(&u.d2)).unwrap();
    assert_eq!(record["downloaded_bytes"], asked_bytes + index.len() as u64);
}

#[test]
fn a_server_that_ignores_several_ranges_gets_them_one_at_a_time() {
    let u = update_world(|old| rewritten_at(old, 5), &[]);
    let server = serve(&u.w);
    server.ignore_multiple_ranges();
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    u.w.assert_latest(&u.d2, &u.new);
    assert!(!stderr(&o).contains("whole image"), "{}", stderr(&o));
    let asked = ranges(&server, &format!("/store/{}", u.d2));
    // The list (answered with the whole file, dropped unread), then each range alone.
    assert!(asked.len() >= 3, "{asked:?}");
    assert!(asked[0].as_deref().unwrap().contains(','), "{asked:?}");
    let singles = &asked[1..];
    assert!(singles.iter().all(|r| !r.as_deref().unwrap().contains(',')));
    assert_eq!(
        requested(&asked[..1]).len(),
        singles.len(),
        "the same ranges, one at a time"
    );
}

#[test]
fn a_malformed_multipart_answer_is_refused_and_nothing_is_installed() {
    let u = update_world(|old| rewritten_at(old, 5), &[]);
    let server = serve(&u.w);
    let store = format!("/store/{}", u.d2);
    // A part that is not the range asked for, with bytes that would hash to nothing good.
    let body = b"\r\n--B\r\nContent-Range: bytes 0-9/4194304\r\n\r\n0123456789\r\n--B--\r\n";
    server.set_fault(
        &store,
        Fault::Response {
            status: 206,
            headers: vec!["Content-Type: multipart/byteranges; boundary=B".to_owned()],
            body: body.to_vec(),
        },
    );
    let config = u.w.config("app.tako", &server.url(), "*", "");
    let o = fetch(&["--retries", "0"], &[&config]);
    assert!(o.status.code() != Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("part 0 of the multipart body is bytes 0-9, not bytes"),
        "{err}"
    );
    assert!(
        err.contains(&server.url()),
        "the message names the URL: {err}"
    );
    u.w.assert_latest(&u.d1, &u.old);
    assert!(!u.w.dest().join("store").join(&u.d2).exists());
}
