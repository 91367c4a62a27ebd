//! `Kind=container` updates killed with SIGKILL, as when the power goes: at byte counts the
//! server chooses in every download of an update, and at random moments (unpacking, the
//! move into place, the flip of `latest`). After each kill `latest` names a complete tree,
//! the old one or the new one; the next run completes the update, downloading only what
//! the killed runs did not finish.

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::container::{hex, host_config, latest_target, publish};
use crate::image::Lab;
use crate::support;
use support::http_server::{Fault, Server};
use support::images::{
    Compression, Entry as E, Format, Image, Index, Layer, app_base_layer, noise, sha256_digest,
};
use support::tako::*;

/// Version `v` of an application with `extra` files in its own layer, on the shared base.
fn version(v: &str, extra: Vec<E>) -> Index {
    let mut entries = vec![E::dir("app"), E::file("app/version", format!("{v}\n"))];
    entries.extend(extra);
    Index::new(
        Format::Oci,
        vec![Image::host(
            Format::Oci,
            vec![app_base_layer(), Layer::new(&entries, Compression::Gzip)],
        )],
    )
}

/// Fails unless `latest` names a complete tree of one of `allowed` (hex, version); returns
/// the version it holds.
#[track_caller]
fn assert_valid(dest: &Path, allowed: &[(&str, &str)], context: &str) -> String {
    let target = latest_target(dest);
    let Some((_, v)) = allowed
        .iter()
        .find(|(hex, _)| target == format!("store/{hex}"))
    else {
        panic!("{context}: latest names {target}, none of {allowed:?}");
    };
    let tree = dest.join(&target);
    assert_eq!(
        fs::read_to_string(tree.join("rootfs/app/version")).unwrap(),
        format!("{v}\n"),
        "{context}"
    );
    assert_eq!(
        fs::metadata(tree.join("rootfs/usr/base")).unwrap().len(),
        200_000,
        "{context}"
    );
    assert!(tree.join("manifest.json").is_file(), "{context}");
    assert!(tree.join("config.json").is_file(), "{context}");
    // Nothing unverified is ever kept under a digest.
    for entry in fs::read_dir(dest.join("blobs/sha256")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let bytes = fs::read(dest.join("blobs/sha256").join(&name)).unwrap();
            assert_eq!(hex(&sha256_digest(&bytes)), name, "{context}");
        }
    }
    (*v).to_owned()
}

/// The hexes of the blobs (and the signed `store/<hex>`) a list of request paths asked for.
fn asked(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| {
            p.split("/blobs/sha256/")
                .nth(1)
                .or_else(|| p.split("/store/").nth(1))
        })
        .map(|h| h.split('?').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn an_update_killed_in_every_download_resumes_and_downloads_only_what_is_missing() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    server.enable_http_features();
    let dir = out.to_str().unwrap();
    let hex1 = publish(&lab, dir, &version("1", vec![]), "1.0");
    let (config, dest) = host_config(&lab, &server.url());
    assert_exit(&fetch(&[], &[&config]), 0);

    const BIG: usize = 3 << 20;
    let v2 = version("2", vec![E::file("app/big", noise(9, BIG))]);
    let hex2 = publish(&lab, dir, &v2, "2.0");
    let image = &v2.images[0];
    let path = |hex: &str| format!("/blobs/sha256/{hex}");
    let layer = path(&hex(&sha256_digest(&image.layers[1].blob)));
    let layer_len = image.layers[1].blob.len() as u64;
    let platform_manifest = path(&hex(&image.manifest_digest()));
    let config_blob = path(&hex(&image.config_digest()));
    let signed = format!("/store/{hex2}");
    let len = |p: &str| {
        fs::metadata(out.join(p.trim_start_matches('/')))
            .unwrap()
            .len()
    };
    let kill_points = [
        ("/manifest".to_owned(), len("/manifest") / 2),
        (signed.clone(), len(&signed) / 2),
        (platform_manifest.clone(), len(&platform_manifest) / 2),
        (config_blob.clone(), len(&config_blob) / 2),
        (layer.clone(), 0),
        (layer.clone(), 1),
        // A resumed download's stall counts from where it resumed.
        (layer.clone(), 1 << 20),
    ];
    let allowed = [(hex1.as_str(), "1"), (hex2.as_str(), "2")];
    for (step, (at, after)) in kill_points.iter().enumerate() {
        server.set_fault(at, Fault::Stall { after: *after });
        let run = Fetch::new().within(SLOW_GUARD).spawn(&[], &[&config]);
        let stalls = kill_points[..=step].iter().filter(|p| &p.0 == at).count();
        assert!(
            server.wait_for_stalls(at, stalls, HANG_GUARD),
            "{at} never stalled after {after} bytes"
        );
        // The bytes are on their way; a partial that holds them shows they arrived.
        let partial = dest
            .join("blobs/sha256")
            .join(format!("{}.partial", at.rsplit('/').next().unwrap()));
        crate::image::wait_until(std::time::Duration::from_secs(5), || {
            fs::metadata(&partial).is_ok_and(|m| m.len() >= *after)
        });
        run.kill();
        server.clear_fault(at);
        let holds = assert_valid(&dest, &allowed, &format!("killed in {at} at {after}"));
        assert_eq!(holds, "1", "killed in {at} at {after}");
    }

    // The last run finds the small blobs whole, and resumes the layer.
    let layer_partial = dest
        .join("blobs/sha256")
        .join(format!("{}.partial", layer.rsplit('/').next().unwrap()));
    let kept = fs::metadata(&layer_partial).unwrap().len();
    assert!(
        kept >= 1 << 20 && kept < layer_len,
        "the killed runs kept {kept} bytes"
    );
    let before = server.recorded().len();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(assert_valid(&dest, &allowed, "the completing run"), "2");
    assert_eq!(
        fs::read(dest.join("latest/rootfs/app/big")).unwrap(),
        noise(9, BIG)
    );
    let recorded = server.recorded()[before..].to_vec();
    let paths: Vec<String> = recorded.iter().map(|r| r.path.clone()).collect();
    let hexes = asked(&paths);
    for done in [&signed, &platform_manifest, &config_blob] {
        let done = done.rsplit('/').next().unwrap();
        assert!(!hexes.iter().any(|h| h == done), "{done} again: {paths:?}");
    }
    let resumed: Vec<_> = recorded.iter().filter(|r| r.path == layer).collect();
    assert_eq!(resumed.len(), 1, "{paths:?}");
    assert_eq!(
        resumed[0].header("range"),
        Some(format!("bytes={kept}-").as_str()),
        "the layer was not resumed where the last kill left it"
    );
    assert!(
        !fs::read_dir(dest.join("store")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tako-new")),
        "a tree being built was left"
    );
}

#[test]
fn an_update_killed_at_random_moments_leaves_a_complete_tree_and_the_next_run_completes_it() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    let dir = out.to_str().unwrap();
    // Many files, so that unpacking and syncing take a while to land kills in.
    let files = |v: &str| -> Vec<E> {
        (0..2000)
            .map(|i| E::file(format!("app/f{i}"), format!("{v} {i}\n")))
            .collect()
    };
    let hex1 = publish(&lab, dir, &version("1", files("1")), "1.0");
    let (config, dest) = host_config(&lab, &server.url());
    let started = Instant::now();
    assert_exit(&fetch(&[], &[&config]), 0);
    let whole = started.elapsed();

    let mut installed = vec![(hex1, "1".to_owned())];
    // From a fixed seed, so that a failure can be run again.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut landed = 0;
    for n in 2..=5 {
        let v = n.to_string();
        let hex = publish(&lab, dir, &version(&v, files(&v)), &format!("{v}.0"));
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = whole.mul_f64(0.2 + (state % 1000) as f64 / 1000.0 * 1.0);
        let mut run = Fetch::new().within(SLOW_GUARD).spawn(&[], &[&config]);
        std::thread::sleep(delay);
        if run.is_running() {
            landed += 1;
        }
        run.kill();
        installed.push((hex.clone(), v.clone()));
        let allowed: Vec<(&str, &str)> = installed
            .iter()
            .rev()
            .take(2)
            .map(|(h, v)| (h.as_str(), v.as_str()))
            .collect();
        let context = format!("version {v}, killed after {delay:?}");
        assert_valid(&dest, &allowed, &context);

        // What the killed run finished is not downloaded again.
        let blobs: Vec<String> = fs::read_dir(dest.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64)
            .collect();
        let before = server.requests().len();
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 0);
        assert_eq!(assert_valid(&dest, &allowed[..1], &context), v);
        let again: Vec<String> = asked(&server.requests()[before..])
            .into_iter()
            .filter(|h| blobs.contains(h))
            .collect();
        assert!(again.is_empty(), "{context}: downloaded again: {again:?}");
        let left: Vec<String> = fs::read_dir(dest.join("store"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tako-new"))
            .collect();
        assert!(left.is_empty(), "{context}: {left:?}");
    }
    assert!(
        landed > 0,
        "no kill landed while an update ran (one takes {whole:?})"
    );
}
