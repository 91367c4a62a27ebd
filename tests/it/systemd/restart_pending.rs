//! Issue 8 §5: a failed restart is remembered in `DEST/restart-pending` and retried by every
//! later run until it succeeds; `Restart=` names are checked when the config loads. Runs
//! against a private `dbus-daemon` with a stand-in for systemd.

use crate::support;

use std::fs;
use std::path::PathBuf;

use super::fetch_on_bus as fetch;
use support::dbus::{Behaviour, DbusDaemon, FakeSystemd, Reaction};
use support::origin::World;
use support::tako::*;

fn calls(units: &[&str]) -> Vec<(String, String)> {
    units
        .iter()
        .map(|u| (u.to_string(), "replace".to_string()))
        .collect()
}

fn pending_file(w: &World) -> PathBuf {
    w.dest().join("restart-pending")
}

/// What `restart-pending` holds, if it exists.
fn pending(w: &World) -> Option<String> {
    fs::read_to_string(pending_file(w)).ok()
}

#[test]
fn a_failed_restart_is_retried_by_every_later_run_until_it_succeeds() {
    let bus = DbusDaemon::start();
    let w = World::new();
    let digest = w.publish("1.0");
    let config = w.config(
        "app.tako",
        &w.file_url(),
        "*",
        "Restart=db.service app.service web.service\n",
    );
    let name = config.display().to_string();

    // app.service fails: db.service is done, app.service and web.service are left.
    let failing = FakeSystemd::start(
        bus.address(),
        Behaviour::all(Reaction::Done).unit("app.service", Reaction::Failed),
    );
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 1);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "tako: error: {name}: installed 1.0, but the restart of app.service, web.service failed: restarting app.service failed: result 'failed'; the next run retries the restart (recorded in {})\ntako: error: 1 of 1 configs failed\n",
            pending_file(&w).display()
        )
    );
    assert_eq!(pending(&w).as_deref(), Some("app.service\nweb.service\n"));
    assert_eq!(mode(&pending_file(&w)), 0o444);
    w.assert_latest(&digest, &World::content("1.0"));

    // Nothing new is published, yet the next run retries, fails again, and says so.
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 1);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).starts_with(&format!(
            "tako: error: {name}: up to date (1.0), but the restart of app.service, web.service pending from an earlier run failed again: restarting app.service failed: result 'failed'; the next run retries it"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        failing.calls(),
        calls(&["db.service", "app.service", "app.service"])
    );
    assert_eq!(pending(&w).as_deref(), Some("app.service\nweb.service\n"));
    drop(failing);

    // Fixed: the next run restarts what was left, in order, and forgets it.
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{name}: up to date (1.0); restarted app.service, web.service (pending from an earlier run)\n"
        )
    );
    assert_eq!(stderr(&o), "");
    assert_eq!(pending(&w), None);
    assert_eq!(systemd.calls(), calls(&["app.service", "web.service"]));

    // And then there is nothing left to do.
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{name}: up to date (1.0)\n"));
    assert_eq!(systemd.calls(), calls(&["app.service", "web.service"]));
}

#[test]
fn fetch_init_succeeds_while_another_units_restart_is_pending() {
    let bus = DbusDaemon::start();
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Failed));
    assert_exit(&fetch(bus.address(), &[], &config), 1);
    assert_eq!(pending(&w).as_deref(), Some("app.service\n"));

    let o = fetch(bus.address(), &["--init"], &config);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{}: present (1.0)\n", config.display()));
    assert_eq!(stderr(&o), "");
    assert_eq!(
        systemd.calls(),
        calls(&["app.service"]),
        "no retry under --init"
    );
    assert_eq!(pending(&w).as_deref(), Some("app.service\n"));
}

#[test]
fn no_restart_reports_the_pending_restart_and_fails_without_retrying() {
    let bus = DbusDaemon::start();
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Failed));
    assert_exit(&fetch(bus.address(), &[], &config), 1);

    let o = fetch(bus.address(), &["--no-restart"], &config);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(
            "up to date (1.0), but the restart of app.service is pending from an earlier run and --no-restart was given"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(systemd.calls(), calls(&["app.service"]));
    assert_eq!(pending(&w).as_deref(), Some("app.service\n"));
}

#[test]
fn a_pending_restart_is_done_with_the_next_update() {
    let bus = DbusDaemon::start();
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let failing = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Failed));
    assert_exit(&fetch(bus.address(), &[], &config), 1);
    assert_eq!(pending(&w).as_deref(), Some("app.service\n"));
    drop(failing);

    let d11 = w.publish("1.1");
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: updated 1.0 -> 1.1; restarted app.service\n",
            config.display()
        )
    );
    assert_eq!(systemd.calls(), calls(&["app.service"]), "restarted once");
    assert_eq!(pending(&w), None);
    w.assert_latest(&d11, &World::content("1.1"));
}

#[test]
fn a_unit_taken_out_of_restart_is_no_longer_retried() {
    let bus = DbusDaemon::start();
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=gone.service\n");
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Refuse));
    assert_exit(&fetch(bus.address(), &[], &config), 1);
    assert_eq!(pending(&w).as_deref(), Some("gone.service\n"));

    let config = w.config("app.tako", &w.file_url(), "*", "");
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.0)\n", config.display())
    );
    assert_eq!(pending(&w), None);
    assert_eq!(systemd.calls(), calls(&["gone.service"]));
}

#[test]
fn a_run_that_fails_before_restarting_mentions_the_pending_restart() {
    let bus = DbusDaemon::start();
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Failed));
    assert_exit(&fetch(bus.address(), &[], &config), 1);

    fs::remove_file(w.origin().join("manifest")).unwrap();
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("warning: ") && err.contains("the restart of app.service is still pending"),
        "{err}"
    );
    assert_eq!(systemd.calls(), calls(&["app.service"]));
    assert_eq!(pending(&w).as_deref(), Some("app.service\n"));
}

#[test]
fn a_planted_restart_pending_symlink_is_refused_and_not_followed() {
    let bus = DbusDaemon::start();
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let elsewhere = w.path("elsewhere");
    fs::write(&elsewhere, "app.service\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, pending_file(&w)).unwrap();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("restart-pending is not a file that tako wrote (a symbolic link)"),
        "{err}"
    );
    assert!(systemd.calls().is_empty());
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "app.service\n");
}

#[test]
fn restart_names_get_the_service_suffix_as_systemctl_gives_them() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let w = World::new();
    w.publish("1.0");
    let config = w.config(
        "app.tako",
        &w.file_url(),
        "*",
        "Restart=app getty@tty1 db.socket app.v2\n",
    );
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert_eq!(
        systemd.calls(),
        calls(&[
            "app.service",
            "getty@tty1.service",
            "db.socket",
            "app.v2.service"
        ])
    );
    assert!(
        stdout(&o)
            .ends_with("; restarted app.service, getty@tty1.service, db.socket, app.v2.service\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn restart_names_systemctl_would_refuse_are_config_errors_with_file_and_line() {
    let w = World::new();
    w.publish("1.0");
    let long = "a".repeat(250);
    for (name, why) in [
        ("foo@.service", "template"),
        ("app/x.service", "only ASCII letters"),
        ("ünit", "only ASCII letters"),
        ("@x.service", "no name before '@'"),
        (".service", "no name before the unit type"),
        (long.as_str(), "at most 255 characters"),
    ] {
        let config = w.config(
            "app.tako",
            &w.file_url(),
            "*",
            &format!("Restart=ok.service\n\nRestart=x.service {name}\n"),
        );
        // No bus at all: the config must fail before anything is fetched or restarted.
        let o = fetch("unix:path=/nonexistent/bus", &[], &config);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!(
                "tako: error: {}:7: invalid unit name '",
                config.display()
            )),
            "{name}: {err}"
        );
        assert!(err.contains(why), "{name}: {err}");
        assert_eq!(w.latest(), None, "{name}");
    }
}

/// Issue 23, new user 4: when the bus itself fails, the error named no unit at all.
#[test]
fn a_restart_that_fails_before_any_unit_is_reached_names_the_units() {
    let w = World::new();
    w.publish("1.0");
    let config = w.config(
        "app.tako",
        &w.file_url(),
        "*",
        "Restart=app.service web.service\n",
    );
    let gone = w.path("no-bus-here");
    let o = fetch(&format!("unix:path={}", gone.display()), &[], &config);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "tako: error: {}: installed 1.0, but the restart of app.service, web.service failed: cannot connect to the system D-Bus",
            config.display()
        )),
        "{err}"
    );
    assert_eq!(pending(&w).as_deref(), Some("app.service\nweb.service\n"));
}
