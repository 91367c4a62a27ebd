//! `tako fetch` restarting `Restart=` units through a real, private `dbus-daemon`.

use crate::support;

use super::fetch_on_bus as fetch;
use support::dbus::{Behaviour, DbusDaemon, FakeSystemd, Reaction};
use support::origin::World;
use support::tako::*;

fn call(unit: &str) -> (String, String) {
    (unit.to_string(), "replace".to_string())
}

#[test]
fn restarts_the_unit_after_an_update_and_says_so() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let w = World::new();
    let digest = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!(
            "{}: updated (none) -> 1.0; restarted app.service\n",
            config.display()
        )
    );
    assert_eq!(systemd.calls(), [call("app.service")]);
    w.assert_latest(&digest, &World::content("1.0"));
}

#[test]
fn restarts_units_from_several_lines_in_order() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let w = World::new();
    w.publish("1.0");
    let extra = "Restart=db.service app.service\n# comment\nRestart=web.service\n";
    let config = w.config("app.tako", &w.file_url(), "*", extra);
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert!(stdout(&o).ends_with("restarted db.service, app.service, web.service\n"));
    assert_eq!(
        systemd.calls(),
        [call("db.service"), call("app.service"), call("web.service")]
    );
}

#[test]
fn does_not_restart_when_nothing_changed() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    assert_exit(&fetch(bus.address(), &[], &config), 0);
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: up to date (1.0)\n", config.display())
    );
    assert_eq!(
        systemd.calls(),
        [call("app.service")],
        "only the first run restarts"
    );
    // A newer release restarts again.
    w.publish("1.1");
    assert_exit(&fetch(bus.address(), &[], &config), 0);
    assert_eq!(systemd.calls(), [call("app.service"), call("app.service")]);
}

#[test]
fn never_restarts_under_init() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let w = World::new();
    let digest = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let o = fetch(bus.address(), &["--init"], &config);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{}: updated (none) -> 1.0\n", config.display())
    );
    w.assert_latest(&digest, &World::content("1.0"));
    assert!(systemd.calls().is_empty());
}

#[test]
fn no_restart_flag_skips_restarts() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    assert_exit(&fetch(bus.address(), &["--no-restart"], &config), 0);
    assert!(systemd.calls().is_empty());
}

#[test]
fn a_failed_job_fails_the_config_but_keeps_the_new_image() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(
        bus.address(),
        Behaviour::all(Reaction::Done).unit("app.service", Reaction::Failed),
    );
    let w = World::new();
    let digest = w.publish("1.0");
    let config = w.config(
        "app.tako",
        &w.file_url(),
        "*",
        "Restart=app.service after.service\n",
    );
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("restarting app.service failed: result 'failed'"),
        "{err}"
    );
    assert!(
        err.starts_with(&format!("tako: error: {}: ", config.display())),
        "{err}"
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(
        systemd.calls(),
        [call("app.service")],
        "stops at the failure"
    );
    w.assert_latest(&digest, &World::content("1.0"));
}

#[test]
fn a_missing_bus_fails_the_config_naming_the_address() {
    let w = World::new();
    let digest = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let address = format!("unix:path={}", w.path("no-bus-here").display());
    let o = fetch(&address, &[], &config);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("cannot connect to the system D-Bus"), "{err}");
    assert!(err.contains("no-bus-here"), "{err}");
    w.assert_latest(&digest, &World::content("1.0"));
}

#[test]
fn a_config_without_restart_never_touches_the_bus() {
    let w = World::new();
    w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "");
    let address = format!("unix:path={}", w.path("no-bus-here").display());
    assert_exit(&fetch(&address, &[], &config), 0);
}

/// Regression: the fetch held the destination lock while it waited for the
/// restart, so a unit whose `ExecStartPre=` runs `tako fetch --init` on the
/// same destination waited for it until the restart timed out.
#[test]
fn a_restarted_unit_can_run_fetch_init_on_the_same_destination() {
    let w = World::new();
    let digest = w.publish("1.0");
    let config = w.config("app.tako", &w.file_url(), "*", "Restart=app.service\n");
    let init_output = w.path("init.out");
    let script = format!(
        "timeout 20 {} fetch --init {} > {} 2>&1",
        env!("CARGO_BIN_EXE_tako"),
        config.display(),
        init_output.display()
    );
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(
        bus.address(),
        Behaviour::all(Reaction::Run(vec!["sh".into(), "-c".into(), script])),
    );
    let o = fetch(bus.address(), &[], &config);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).ends_with("; restarted app.service\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(systemd.calls(), [call("app.service")]);
    assert_eq!(
        std::fs::read_to_string(&init_output).unwrap(),
        format!("{}: present (1.0)\n", config.display())
    );
    w.assert_latest(&digest, &World::content("1.0"));
}
