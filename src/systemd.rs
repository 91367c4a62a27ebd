//! Restarting systemd units over the system D-Bus, waiting for each restart job to finish.
//!
//! This speaks to systemd's manager object directly (as `systemctl restart` does) rather than
//! running `systemctl`, so the outcome of each job comes back as data instead of an exit code
//! and scraped text.
//!
//! zbus's API is async only; [`zbus::block_on`] drives it on the calling thread, so callers see a
//! plain blocking function and no async runtime enters the rest of the program.

use std::{
    env,
    future::{Future, poll_fn},
    io,
    num::NonZeroUsize,
    pin::{Pin, pin},
    task::{Context, Poll},
    time::Duration,
};

use futures_core::Stream;
use zbus::{
    Connection, DBusError, MatchRule, MessageStream, OwnedObjectPath, connection::Builder,
    message::Type,
};

/// How long [`restart_units_until_failure`] callers should normally let a single restart take.
///
/// systemd's own default start and stop timeouts are 90 s each, so a restart that takes longer
/// than this is stuck rather than slow.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// The environment variable that names the system bus, as libdbus and sd-bus read it.
pub const SYSTEM_BUS_ADDRESS_VAR: &str = "DBUS_SYSTEM_BUS_ADDRESS";

/// Where the system bus listens when [`SYSTEM_BUS_ADDRESS_VAR`] is not set.
pub const DEFAULT_SYSTEM_BUS_ADDRESS: &str = "unix:path=/var/run/dbus/system_bus_socket";

const SYSTEMD_SERVICE: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";

/// The job result systemd reports for a job that did what it was asked.
const JOB_DONE: &str = "done";

/// systemd announces every finished job on the bus, not only ours, so the queue of signals has to
/// absorb a burst from other jobs (say, a boot-time cascade) while our method call is in flight.
const SIGNAL_QUEUE_LEN: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// Why restarting the units stopped.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// The system bus could not be reached.
    #[error("cannot connect to the system D-Bus at {address}: {}", describe_bus_error(.source))]
    Bus {
        /// The bus address that was tried.
        address: String,
        /// What zbus reported.
        source: zbus::Error,
    },

    /// The bus refused to pass systemd's job notifications on to us.
    #[error(
        "cannot subscribe to systemd job notifications on the system D-Bus at {address}: {}",
        describe_bus_error(.source)
    )]
    Subscribe {
        /// The bus address that was used.
        address: String,
        /// What zbus reported.
        source: zbus::Error,
    },

    /// systemd (or the bus on its behalf) answered the restart request with an error.
    #[error("systemd refused to restart {unit}: {message}")]
    Call {
        /// The unit that was to be restarted.
        unit: String,
        /// The error systemd or the bus gave.
        message: String,
    },

    /// The restart job ran but did not succeed.
    #[error("restarting {unit} failed: result '{result}'")]
    JobFailed {
        /// The unit that was restarted.
        unit: String,
        /// systemd's job result, such as `failed`, `timeout` or `dependency`.
        result: String,
    },

    /// The restart job did not finish in time.
    #[error("restarting {unit} did not finish within {secs} s")]
    Timeout {
        /// The unit that was being restarted.
        unit: String,
        /// The time limit, in whole seconds (rounded up).
        secs: u64,
    },

    /// The bus went away while we were waiting for the restart job.
    #[error("lost the connection to the system D-Bus while restarting {unit}")]
    Disconnected {
        /// The unit that was being restarted.
        unit: String,
    },
}

/// A restart of several units that stopped at one of them.
#[derive(Debug)]
pub struct PartialRestart {
    /// The units restarted before the failure, in order: a prefix of the units asked for.
    pub restarted: Vec<String>,
    /// Why the next unit was not restarted.
    pub error: SystemdError,
}

/// Restarts `units` one after the other on the system bus, waiting up to `job_timeout` for each.
///
/// The bus is the one named by `DBUS_SYSTEM_BUS_ADDRESS`, or the standard system bus socket; see
/// [`system_bus_address`]. Returns the units restarted, which on success is all of them.
///
/// `job_timeout` bounds, for each unit, the restart request and the job it queues together, and
/// separately the connection to the bus, so that a wedged bus or systemd cannot hang the caller.
///
/// # Errors
///
/// Stops at the first unit that fails to restart, since later units may depend on earlier ones;
/// every unit before it was restarted successfully. The error tells which those were, so a
/// caller can remember exactly the ones still to do.
pub fn restart_units_until_failure(
    units: &[String],
    job_timeout: Duration,
) -> Result<Vec<String>, PartialRestart> {
    restart_units_until_failure_at(&system_bus_address(), units, job_timeout)
}

/// As [`restart_units_until_failure`], on the bus at `address`.
///
/// # Errors
///
/// As for [`restart_units_until_failure`].
pub fn restart_units_until_failure_at(
    address: &str,
    units: &[String],
    job_timeout: Duration,
) -> Result<Vec<String>, PartialRestart> {
    if units.is_empty() {
        return Ok(Vec::new());
    }
    zbus::block_on(restart_all(address, units, job_timeout))
}

/// As [`restart_units_until_failure_at`], with only the error: what the tests check.
#[cfg(test)]
fn restart_units_at(
    address: &str,
    units: &[String],
    job_timeout: Duration,
) -> Result<Vec<String>, SystemdError> {
    restart_units_until_failure_at(address, units, job_timeout).map_err(|partial| partial.error)
}

/// The system bus address: `DBUS_SYSTEM_BUS_ADDRESS` if set, else the standard socket.
///
/// This follows zbus's own `Address::system`, which is not used directly only because error
/// messages need the address as text. An empty variable counts as unset, as it is almost always
/// a shell script's accident rather than a request for an empty address.
pub fn system_bus_address() -> String {
    address_from_env(env::var(SYSTEM_BUS_ADDRESS_VAR).ok())
}

fn address_from_env(var: Option<String>) -> String {
    var.filter(|address| !address.is_empty())
        .unwrap_or_else(|| DEFAULT_SYSTEM_BUS_ADDRESS.to_owned())
}

async fn restart_all(
    address: &str,
    units: &[String],
    job_timeout: Duration,
) -> Result<Vec<String>, PartialRestart> {
    let mut restarted = Vec::with_capacity(units.len());
    match restart_all_into(address, units, job_timeout, &mut restarted).await {
        Ok(()) => Ok(restarted),
        Err(error) => Err(PartialRestart { restarted, error }),
    }
}

/// Restarts `units` in order, adding each one to `restarted` once its job is done.
async fn restart_all_into(
    address: &str,
    units: &[String],
    job_timeout: Duration,
    restarted: &mut Vec<String>,
) -> Result<(), SystemdError> {
    let bus_error = |source| SystemdError::Bus {
        address: address.to_owned(),
        source,
    };
    // The timer runs on the runtime `zbus::block_on` is driving, so it needs no thread of its own.
    let runtime = zruntime::SharedRuntime::current().map_err(|e| bus_error(e.into()))?;

    // A socket that accepts but never answers (a wedged bus) would otherwise hang us for good.
    let connection = runtime
        .timeout(job_timeout, Builder::address(address).build())
        .await
        .map_err(|timed_out| bus_error(io::Error::from(timed_out).into()))?
        .map_err(bus_error)?;

    let outcome = async {
        let subscribe_error = |source| SystemdError::Subscribe {
            address: address.to_owned(),
            source,
        };
        let mut jobs = runtime
            .timeout(job_timeout, JobWatch::subscribe(&connection))
            .await
            .map_err(|timed_out| subscribe_error(io::Error::from(timed_out).into()))?
            .map_err(subscribe_error)?;

        for unit in units {
            runtime
                .timeout(job_timeout, restart_one(&connection, &mut jobs, unit))
                .await
                .map_err(|_| SystemdError::Timeout {
                    unit: unit.clone(),
                    secs: whole_secs_rounded_up(job_timeout),
                })??;
            restarted.push(unit.clone());
        }
        Ok(())
    }
    .await;

    // Closing tells the bus to forget our subscription at once; the outcome is already decided,
    // so a failure to close changes nothing for the caller.
    let _ = connection.close().await;
    outcome
}

/// Asks systemd to restart `unit` and waits for the job it queued to finish.
async fn restart_one(
    connection: &Connection,
    jobs: &mut JobWatch,
    unit: &str,
) -> Result<(), SystemdError> {
    // D-Bus strings cannot carry NUL; zbus would send it anyway and the bus would hang up on us,
    // leaving only a baffling I/O error to report.
    if unit.contains('\0') {
        return Err(SystemdError::Call {
            unit: unit.escape_debug().to_string(),
            message: "a unit name cannot contain a NUL character".to_owned(),
        });
    }

    // Signals from before this call belong to earlier jobs and can never match this one.
    jobs.finished.clear();

    let arguments = (unit, "replace");
    let mut call = pin!(connection.call_method(
        Some(SYSTEMD_SERVICE),
        MANAGER_PATH,
        Some(MANAGER_INTERFACE),
        "RestartUnit",
        &arguments,
    ));
    // The job can finish before its reply reaches us, so notifications are kept while we wait,
    // and the queue keeps draining so a flood of other jobs' notifications cannot stall the
    // connection that the reply has to come in on.
    let reply = poll_fn(|cx| {
        jobs.collect(cx);
        call.as_mut().poll(cx)
    })
    .await
    .map_err(|e| SystemdError::Call {
        unit: unit.to_owned(),
        // Whatever answers on the bus wrote this text.
        message: crate::format::text::untrusted(&describe_call_error(&e)),
    })?;
    let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| SystemdError::Call {
        unit: unit.to_owned(),
        message: format!("unexpected reply: {e}"),
    })?;

    let result = poll_fn(|cx| {
        let ended = jobs.collect(cx);
        match jobs.take_result_of(&job) {
            Some(result) => Poll::Ready(Some(result)),
            None if ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    })
    .await;

    match result {
        Some(result) if result == JOB_DONE => Ok(()),
        Some(result) => Err(SystemdError::JobFailed {
            unit: unit.to_owned(),
            result: crate::format::text::untrusted(&result),
        }),
        None => Err(SystemdError::Disconnected {
            unit: unit.to_owned(),
        }),
    }
}

/// Our subscription to systemd's `JobRemoved` signal, and the signals it has brought so far.
struct JobWatch {
    stream: MessageStream,
    finished: Vec<FinishedJob>,
    ended: bool,
}

struct FinishedJob {
    job: OwnedObjectPath,
    result: String,
}

impl JobWatch {
    /// Subscribes before any job is queued, so that no job can finish unseen (as `systemctl`
    /// does).
    async fn subscribe(connection: &Connection) -> zbus::Result<Self> {
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(SYSTEMD_SERVICE)
            .path(MANAGER_PATH)
            .interface(MANAGER_INTERFACE)
            .member("JobRemoved")
            .build()?;
        let stream =
            MessageStream::for_match_rule(rule, connection, Some(SIGNAL_QUEUE_LEN)).await?;
        Ok(Self {
            stream,
            finished: Vec::new(),
            ended: false,
        })
    }

    /// Takes in every signal already queued, and tells whether the stream has ended.
    fn collect(&mut self, cx: &mut Context<'_>) -> bool {
        while !self.ended {
            match Pin::new(&mut self.stream).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    // Job id and unit name are in the signal too, but the job path alone
                    // identifies our job; a body of another shape is not systemd's and is
                    // ignored.
                    if let Ok((_id, job, _unit, result)) =
                        message
                            .body()
                            .deserialize::<(u32, OwnedObjectPath, String, String)>()
                    {
                        self.finished.push(FinishedJob { job, result });
                    }
                }
                // A read error ends the stream right after it, so there is nothing to act on yet.
                Poll::Ready(Some(Err(_))) => {}
                Poll::Ready(None) => self.ended = true,
                Poll::Pending => break,
            }
        }
        self.ended
    }

    fn take_result_of(&mut self, job: &OwnedObjectPath) -> Option<String> {
        let found = self
            .finished
            .iter()
            .position(|finished| finished.job == *job)?;
        Some(self.finished.swap_remove(found).result)
    }
}

/// The part of a bus error worth showing next to the address we already name.
fn describe_bus_error(error: &zbus::Error) -> String {
    match error {
        // zbus's own text repeats the address.
        zbus::Error::Connection(io_error, _) => io_error.to_string(),
        zbus::Error::InputOutput(io_error) if io_error.kind() == io::ErrorKind::TimedOut => {
            "timed out".to_owned()
        }
        zbus::Error::InputOutput(io_error) => io_error.to_string(),
        other => other.to_string(),
    }
}

/// The text of an error reply, as `systemctl` would show it, or zbus's account of other failures.
fn describe_call_error(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, description, _) => description
            .clone()
            .unwrap_or_else(|| name.as_str().to_owned()),
        zbus::Error::FDO(fdo_error) => fdo_error
            .description()
            .map_or_else(|| fdo_error.name().to_string(), str::to_owned),
        other => other.to_string(),
    }
}

/// Rounded up so that a sub-second limit never reads as "0 s".
fn whole_secs_rounded_up(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

#[cfg(test)]
mod bus_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_variable_means_the_standard_system_bus_socket() {
        assert_eq!(address_from_env(None), DEFAULT_SYSTEM_BUS_ADDRESS);
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        assert_eq!(
            address_from_env(Some(String::new())),
            DEFAULT_SYSTEM_BUS_ADDRESS
        );
    }

    #[test]
    fn a_set_variable_names_the_bus() {
        assert_eq!(
            address_from_env(Some("unix:path=/tmp/bus".to_owned())),
            "unix:path=/tmp/bus"
        );
    }

    #[test]
    fn timeouts_are_reported_in_whole_seconds_rounded_up() {
        assert_eq!(whole_secs_rounded_up(Duration::from_secs(90)), 90);
        assert_eq!(whole_secs_rounded_up(Duration::from_millis(1500)), 2);
        assert_eq!(whole_secs_rounded_up(Duration::from_millis(1)), 1);
    }

    #[test]
    fn no_units_means_no_bus_connection() {
        let restarted = restart_units_at("unix:path=/nonexistent/bus", &[], DEFAULT_JOB_TIMEOUT);
        assert!(restarted.is_ok_and(|units| units.is_empty()));
    }

    #[test]
    fn a_failed_job_names_the_unit_and_result() {
        let error = SystemdError::JobFailed {
            unit: "app.service".to_owned(),
            result: "failed".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "restarting app.service failed: result 'failed'"
        );
    }
}
