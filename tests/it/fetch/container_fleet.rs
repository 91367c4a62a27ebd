//! `Kind=container` on a fleet: three versions sharing a base layer, published with `tako
//! store --container` to a static directory served by a real nginx and to a real registry;
//! two hosts of different platforms install from the one index, update, check, restart
//! their units on a private `dbus-daemon`, and download only the layer that changed, while
//! a reader of `latest` never finds a missing or half tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use super::container::{hex, installed_version, latest_target, publish};
use crate::image::Lab;
use crate::support;
use support::dbus::{Behaviour, DbusDaemon, FakeSystemd, Reaction};
use support::images::{
    Format, Image, Index, Platform, app_base_layer, app_layer, noise, sha256_digest,
};
use support::nginx::Nginx;
use support::tako::*;

/// Version `v` for this host and for a foreign platform, each with its own application
/// layer on the shared base layer.
fn fleet_index(v: &str) -> Index {
    Index::new(
        Format::Oci,
        vec![
            Image::new(
                Format::Oci,
                Platform::host(),
                vec![app_base_layer(), app_layer(v)],
            ),
            Image::new(
                Format::Oci,
                Platform::foreign(),
                vec![app_base_layer(), app_layer(&format!("{v} foreign"))],
            ),
        ],
    )
}

/// A host: its config and destination.
struct Host {
    config: PathBuf,
    dest: PathBuf,
    unit: &'static str,
}

impl Host {
    fn new(lab: &Lab, name: &str, origin: &str, extra: &str, unit: &'static str) -> Host {
        let dest = lab.path(&format!("{name}-dest"));
        fs::create_dir_all(&dest).unwrap();
        let config = lab.path(&format!("{name}.conf"));
        fs::write(
            &config,
            format!(
                "Origin={origin}\nPublicKey={TEST_PUBLIC}\nDestination={}\nKind=container\nRestart={unit}\n{extra}",
                dest.display()
            ),
        )
        .unwrap();
        Host { config, dest, unit }
    }

    fn fetch(&self, bus: &str) -> std::process::Output {
        let o = Fetch::new()
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .run(&[], &[&self.config]);
        assert_exit(&o, 0);
        o
    }

    /// `tako check`'s exit status.
    fn check(&self) -> i32 {
        let o = run_bounded(tako_cmd().arg("check").arg(&self.config));
        o.status.code().unwrap_or(-1)
    }
}

/// Reads `DEST/latest/…` in a loop until stopped; counts reads and what was wrong.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    handle: thread::JoinHandle<Vec<String>>,
}

impl Reader {
    fn start(dest: &Path) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let latest = dest.join("latest");
        let (s, r) = (Arc::clone(&stop), Arc::clone(&reads));
        let handle = thread::spawn(move || {
            let mut wrong = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match fs::read_to_string(latest.join("rootfs/app/version")) {
                    Ok(v) if ["1\n", "2\n", "3\n"].contains(&v.as_str()) => {}
                    other => wrong.push(format!("app/version: {other:?}")),
                }
                match fs::metadata(latest.join("rootfs/usr/base")) {
                    Ok(m) if m.len() == 200_000 => {}
                    other => wrong.push(format!("usr/base: {other:?}")),
                }
                if !latest.join("manifest.json").is_file() {
                    wrong.push("manifest.json missing".to_owned());
                }
                r.fetch_add(1, Ordering::SeqCst);
            }
            wrong
        });
        Reader {
            stop,
            reads,
            handle,
        }
    }

    /// Stops the reader; fails if it ever found `latest` missing or incomplete.
    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let wrong = self.handle.join().unwrap();
        assert!(
            self.reads.load(Ordering::SeqCst) > 10,
            "the reader hardly ran"
        );
        assert!(
            wrong.is_empty(),
            "a reader saw: {:?}",
            &wrong[..wrong.len().min(5)]
        );
    }
}

/// The layer blobs (by hex) of the image for `platform` (0: this host's, 1: foreign) in `index`.
fn layers(index: &Index, platform: usize) -> Vec<String> {
    index.images[platform]
        .layers
        .iter()
        .map(|l| hex(&sha256_digest(&l.blob)))
        .collect()
}

/// The scenario both origins go through. `publish_version` publishes `fleet_index(n)` as
/// `n.0` and returns its hex; `blob_gets` lists the hexes of every blob request so far.
fn fleet(
    lab: &Lab,
    origin: &str,
    publish_version: &dyn Fn(&Index, &str) -> String,
    blob_gets: &dyn Fn() -> Vec<String>,
) {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let foreign = Platform::foreign().to_string();
    // One host takes every version of its own platform; the other, of the foreign platform,
    // is bounded below 3.
    let a = Host::new(lab, "a", origin, "Version=*\n", "app-a.service");
    let b = Host::new(
        lab,
        "b",
        origin,
        &format!("Version=1 <= v < 3\nPlatform={foreign}\n"),
        "app-b.service",
    );
    let call = |unit: &str| (unit.to_owned(), "replace".to_owned());

    let v1 = fleet_index("1");
    let hex1 = publish_version(&v1, "1.0");
    for host in [&a, &b] {
        assert_eq!(host.check(), 100, "{} before its first fetch", host.unit);
        host.fetch(bus.address());
        assert_eq!(latest_target(&host.dest), format!("store/{hex1}"));
        assert_eq!(host.check(), 0);
    }
    assert_eq!(installed_version(&a.dest), "1\n");
    assert_eq!(
        fs::read_to_string(b.dest.join("latest/rootfs/app/version")).unwrap(),
        "1 foreign\n"
    );
    assert_eq!(
        fs::read(b.dest.join("latest/rootfs/usr/base")).unwrap(),
        noise(7, 200_000)
    );
    assert_eq!(
        systemd.calls(),
        [call("app-a.service"), call("app-b.service")]
    );

    // Version 2: both hosts take it, each downloading its own changed layer only, while a
    // reader on host a keeps reading its tree.
    let reader = Reader::start(&a.dest);
    let v2 = fleet_index("2");
    let hex2 = publish_version(&v2, "2.0");
    for (platform, host) in [&a, &b].into_iter().enumerate() {
        assert_eq!(host.check(), 100, "{} with 2.0 published", host.unit);
        let before = blob_gets().len();
        let o = host.fetch(bus.address());
        assert!(
            stdout(&o).contains("updated 1.0 -> 2.0 (downloaded ")
                && stdout(&o).contains("1 layer reused); restarted"),
            "{}",
            stdout(&o)
        );
        let asked = blob_gets()[before..].to_vec();
        let [base, own] = &layers(&v2, platform)[..] else {
            unreachable!()
        };
        let other = &layers(&v2, 1 - platform)[1];
        assert!(asked.contains(own), "{}: {asked:?}", host.unit);
        assert!(
            !asked.contains(base),
            "{}: the base travelled again",
            host.unit
        );
        assert!(
            !asked.contains(other),
            "{}: the other platform's layer",
            host.unit
        );
        let layers_asked = asked
            .iter()
            .filter(|h| layers(&v2, 0).contains(h) || layers(&v2, 1).contains(h))
            .count();
        assert_eq!(layers_asked, 1, "{}: {asked:?}", host.unit);
        assert_eq!(latest_target(&host.dest), format!("store/{hex2}"));
        assert_eq!(host.check(), 0);
    }
    assert_eq!(installed_version(&a.dest), "2\n");

    // Version 3: outside host b's bounds.
    let v3 = fleet_index("3");
    let hex3 = publish_version(&v3, "3.0");
    assert_eq!(a.check(), 100);
    assert_eq!(b.check(), 0, "3.0 is not allowed on host b");
    a.fetch(bus.address());
    let o = b.fetch(bus.address());
    assert!(stdout(&o).contains("up to date (2.0)"), "{}", stdout(&o));
    reader.finish();
    assert_eq!(latest_target(&a.dest), format!("store/{hex3}"));
    assert_eq!(latest_target(&b.dest), format!("store/{hex2}"));
    assert_eq!(installed_version(&a.dest), "3\n");
    assert_eq!(a.check(), 0);
    // Each update restarted its host's unit once, after `latest` moved; nothing else did.
    assert_eq!(
        systemd.calls(),
        [
            call("app-a.service"),
            call("app-b.service"),
            call("app-a.service"),
            call("app-b.service"),
            call("app-a.service"),
        ]
    );
    // The old trees stay for whatever still runs them.
    for hex in [&hex1, &hex2] {
        assert!(
            a.dest
                .join(format!("store/{hex}/rootfs/app/version"))
                .is_file()
        );
    }
}

#[test]
fn two_hosts_of_two_platforms_update_from_nginx_serving_a_static_directory() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let nginx = Nginx::serve_dir(&out);
    let publish_version =
        |index: &Index, version: &str| publish(&lab, out.to_str().unwrap(), index, version);
    let blob_gets = || {
        // nginx logs a request once it has finished it; the fetch that made it has ended.
        thread::sleep(std::time::Duration::from_millis(100));
        nginx
            .records()
            .iter()
            .filter(|r| r.method == "GET" && r.status / 100 == 2)
            .filter_map(|r| r.uri.split("/blobs/sha256/").nth(1).map(str::to_owned))
            .collect()
    };
    fleet(&lab, &nginx.url(), &publish_version, &blob_gets);
}

#[test]
fn two_hosts_of_two_platforms_update_from_a_registry() {
    let lab = Lab::new();
    let target = lab.registry.origin("published");
    let publish_version = |index: &Index, version: &str| publish(&lab, &target, index, version);
    // The hosts go through the recording proxy; publishing goes to the registry itself.
    let origin = format!("oci+http://{}/published", lab.proxy.host());
    let blob_gets = || {
        lab.proxy
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .filter_map(|r| {
                r.route()
                    .strip_prefix("/v2/published/blobs/sha256:")
                    .map(str::to_owned)
            })
            .collect()
    };
    fleet(&lab, &origin, &publish_version, &blob_gets);
}
