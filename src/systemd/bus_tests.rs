//! Restarting units against a real `dbus-daemon`, with a stand-in for systemd on it: the
//! harness of the integration tests (`tests/it/support/dbus.rs`), compiled in here.
//!
//! The tests pass the private bus's address to `restart_units_at` rather than setting
//! `DBUS_SYSTEM_BUS_ADDRESS`, because the environment is shared by all tests in the process and
//! they run in parallel.

use std::time::{Duration, Instant};

use super::{SystemdError, restart_units_at};
use test_bus::{Behaviour, DbusDaemon, FakeSystemd, Reaction};

// The harness serves the integration tests too; these use only part of it.
#[allow(dead_code)]
#[path = "../../tests/it/support/dbus.rs"]
mod test_bus;

/// Generous, since a test machine may be slow; only the time-out test waits this long on purpose.
const JOB_TIMEOUT: Duration = Duration::from_secs(10);

fn units(names: &[&str]) -> Vec<String> {
    names.iter().map(|&name| name.to_owned()).collect()
}

fn call(unit: &str) -> (String, String) {
    (unit.to_owned(), "replace".to_owned())
}

#[test]
fn restarting_one_unit_asks_systemd_once_in_replace_mode() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));

    let restarted = restart_units_at(bus.address(), &units(&["app.service"]), JOB_TIMEOUT)
        .expect("the restart should succeed");

    assert_eq!(restarted, units(&["app.service"]));
    assert_eq!(systemd.calls(), [call("app.service")]);
}

#[test]
fn several_units_are_restarted_one_after_another_in_the_order_given() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
    let wanted = units(&["db.service", "app.service", "web.service"]);

    let restarted =
        restart_units_at(bus.address(), &wanted, JOB_TIMEOUT).expect("the restarts should succeed");

    assert_eq!(restarted, wanted);
    assert_eq!(
        systemd.calls(),
        [call("db.service"), call("app.service"), call("web.service")]
    );
}

#[test]
fn a_job_that_finishes_before_its_reply_arrives_is_not_missed() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::DoneBeforeReply));

    let restarted = restart_units_at(bus.address(), &units(&["quick.service"]), JOB_TIMEOUT)
        .expect("the restart should succeed");

    assert_eq!(restarted, units(&["quick.service"]));
    assert_eq!(systemd.calls(), [call("quick.service")]);
}

#[test]
fn a_failed_job_is_reported_with_its_unit_and_result_and_stops_the_rest() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(
        bus.address(),
        Behaviour::all(Reaction::Done).unit("app.service", Reaction::Failed),
    );

    let error = restart_units_at(
        bus.address(),
        &units(&["db.service", "app.service", "web.service"]),
        JOB_TIMEOUT,
    )
    .expect_err("the failed job should be reported");

    assert!(
        matches!(&error, SystemdError::JobFailed { unit, result }
            if unit == "app.service" && result == "failed"),
        "unexpected error: {error:?}"
    );
    assert_eq!(
        error.to_string(),
        "restarting app.service failed: result 'failed'"
    );
    assert_eq!(systemd.calls(), [call("db.service"), call("app.service")]);
}

#[test]
fn a_job_that_never_finishes_times_out_after_the_job_timeout() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Never));
    let started = Instant::now();

    let error = restart_units_at(
        bus.address(),
        &units(&["stuck.service"]),
        Duration::from_secs(1),
    )
    .expect_err("the stuck job should time out");

    let waited = started.elapsed();
    assert!(
        matches!(&error, SystemdError::Timeout { unit, secs: 1 } if unit == "stuck.service"),
        "unexpected error: {error:?}"
    );
    // Not before the configured second.
    assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    assert_eq!(
        error.to_string(),
        "restarting stuck.service did not finish within 1 s"
    );
    assert_eq!(systemd.calls(), [call("stuck.service")]);
}

#[test]
fn a_refused_restart_is_reported_with_systemds_message() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(
        bus.address(),
        Behaviour::all(Reaction::Done).unit("nope.service", Reaction::Refuse),
    );

    let error = restart_units_at(bus.address(), &units(&["nope.service"]), JOB_TIMEOUT)
        .expect_err("the refusal should be reported");

    assert!(
        matches!(&error, SystemdError::Call { unit, .. } if unit == "nope.service"),
        "unexpected error: {error:?}"
    );
    assert_eq!(
        error.to_string(),
        "systemd refused to restart nope.service: Unit nope.service not found."
    );
    assert_eq!(systemd.calls(), [call("nope.service")]);
}

#[test]
fn a_unit_name_with_a_nul_is_refused_without_asking_systemd() {
    let bus = DbusDaemon::start();
    let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));

    let error = restart_units_at(bus.address(), &units(&["app\0.service"]), JOB_TIMEOUT)
        .expect_err("a NUL in a unit name should be refused");

    assert_eq!(
        error.to_string(),
        "systemd refused to restart app\\0.service: a unit name cannot contain a NUL character"
    );
    assert_eq!(systemd.calls(), []);
}

#[test]
fn a_bus_without_systemd_on_it_is_reported_as_a_refused_call() {
    let bus = DbusDaemon::start();

    let error = restart_units_at(bus.address(), &units(&["app.service"]), JOB_TIMEOUT)
        .expect_err("with no systemd on the bus the call should fail");

    assert!(
        matches!(&error, SystemdError::Call { unit, message }
            if unit == "app.service" && message.contains("org.freedesktop.systemd1")),
        "unexpected error: {error:?}"
    );
}

#[test]
fn a_missing_bus_is_reported_as_a_connection_error_naming_the_address() {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let address = format!("unix:path={}", dir.path().join("no-bus-here").display());

    let error = restart_units_at(&address, &units(&["app.service"]), JOB_TIMEOUT)
        .expect_err("connecting to a missing socket should fail");

    assert!(
        matches!(&error, SystemdError::Bus { address: tried, .. } if *tried == address),
        "unexpected error: {error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot connect to the system D-Bus at {address}: "
        )),
        "unexpected message: {message}"
    );
}

#[test]
fn the_stand_in_systemd_lets_go_of_its_name_when_dropped() {
    let bus = DbusDaemon::start();
    drop(FakeSystemd::start(bus.address(), Behaviour::default()));

    // A second stand-in can only take the name if the first one really left the bus.
    let systemd = FakeSystemd::start(bus.address(), Behaviour::default());
    restart_units_at(bus.address(), &units(&["app.service"]), JOB_TIMEOUT)
        .expect("the restart should succeed");
    assert_eq!(systemd.calls(), [call("app.service")]);
}
