//! Issue 23, hostile review I: files planted in a destination are read only as far as the
//! signed manifest allows. Each file planted here is sparse, 20 GiB that cost no disk but
//! would take minutes to read: a run that read one would end at the hang guard.

use crate::support;

use std::fs::{self, File};
use std::path::Path;

use support::http_server::Server;
use support::origin::World;
use support::tako::*;

const PLANTED: u64 = 20 << 30;

/// Plants a sparse file of [`PLANTED`] bytes at `path`, replacing what is there.
fn plant_sparse(path: &Path) {
    let _ = fs::remove_file(path);
    File::create(path).unwrap().set_len(PLANTED).unwrap();
}

/// A world whose host holds version 1.0 (a MiB of noise), with 2.0 (a few bytes changed)
/// published beside it with its chunk index, served with ranges; returns the world, the
/// server, both digests and 2.0's image.
fn update_world() -> (World, Server, String, String, Vec<u8>) {
    let w = World::new();
    let old = noise(31, 1 << 20);
    let d10 = w.publish_bytes("1.0", &old);
    let first = w.config("first.tako", &w.file_url(), "1.0", "");
    assert_exit(&fetch(&[], &[&first]), 0);
    let mut new = old.clone();
    new[500_000..500_100].copy_from_slice(&noise(32, 100));
    let d20 = w.publish_bytes("2.0", &new);
    let server = Server::serve_dir(w.origin());
    server.enable_http_features();
    (w, server, d10, d20, new)
}

#[test]
fn a_sparse_partial_larger_than_the_signed_image_is_removed_unread() {
    let w = World::new();
    let digest = w.publish("1.0");
    let store = w.dest().join("store");
    fs::create_dir(&store).unwrap();
    let partial = store.join(format!("{digest}.partial"));
    plant_sparse(&partial);
    let config = w.config("app.tako", &w.file_url(), "*", "");

    let o = fetch(&[], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&digest, &World::content("1.0"));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{} holds {PLANTED} bytes, more than the {} signed for 1.0; removed unread",
            partial.display(),
            World::content("1.0").len()
        )),
        "{err}"
    );
    assert_eq!(w.store_files(), [digest]);
}

#[test]
fn a_sparse_store_file_named_by_a_digest_is_not_chunked_as_a_delta_source() {
    let (w, server, d10, d20, new) = update_world();
    let store = w.dest().join("store");
    // The image `latest` points at, grown to a size its entry does not sign, with a cached
    // index as large; and a file named by a digest the manifest does not list.
    plant_sparse(&store.join(&d10));
    fs::create_dir_all(w.dest().join("index")).unwrap();
    plant_sparse(&w.dest().join("index").join(&d10));
    let unlisted = "ab".repeat(32);
    plant_sparse(&store.join(&unlisted));
    let config = w.config("app.tako", &server.url(), "*", "");

    let o = fetch(&[], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&d20, &new);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "not using a local image for a delta: {} is {PLANTED} bytes, not the {} bytes signed for it; not reading it",
            store.join(&d10).display(),
            1 << 20
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "not using a local image for a delta: {} is {PLANTED} bytes, more than the largest image the manifest lists ({} bytes); not reading it",
            store.join(&unlisted).display(),
            1 << 20
        )),
        "{err}"
    );
    // Neither was used: the image came whole.
    assert_eq!(
        server.body_bytes_sent(&format!("/store/{d20}")),
        new.len() as u64
    );
    // The planted files stay for `tako gc` and the admin, as other unlisted files do.
    assert_eq!(
        fs::metadata(w.dest().join("index").join(&d10))
            .unwrap()
            .len(),
        PLANTED
    );
}

#[test]
fn a_sparse_file_planted_as_a_cached_chunk_index_is_replaced_unread() {
    let (w, server, d10, d20, new) = update_world();
    let cached = w.dest().join("index").join(&d10);
    fs::create_dir_all(w.dest().join("index")).unwrap();
    plant_sparse(&cached);
    let config = w.config("app.tako", &server.url(), "*", "");

    let o = fetch(&["--json"], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&d20, &new);
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["delta"], true, "{record}");
    // The image was chunked again and its index cached in place of the planted file.
    let len = fs::metadata(&cached).unwrap().len();
    assert!(len > 0 && len < 64 << 10, "{len}");
}
