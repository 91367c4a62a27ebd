//! A private `dbus-daemon` and a stand-in for systemd's manager object, so that restarting units
//! can be tested against a real bus without touching the machine's systemd.
//!
//! Typical use:
//!
//! ```ignore
//! let bus = DbusDaemon::start();
//! let systemd = FakeSystemd::start(bus.address(), Behaviour::all(Reaction::Done));
//! // ... run code with DBUS_SYSTEM_BUS_ADDRESS=bus.address() ...
//! assert_eq!(systemd.calls(), [("app.service".to_owned(), "replace".to_owned())]);
//! ```
//!
//! Declare the daemon before the stand-in, so that the stand-in is dropped (and lets go of its
//! bus connection) first.
//!
//! It stands alone (std, tempfile, zbus, zruntime, futures-core): `src/systemd.rs` compiles it
//! into its own unit tests as well, which call the restart functions directly.

use std::{
    collections::HashMap,
    fs,
    future::poll_fn,
    io::{BufRead, BufReader, Read},
    path::Path,
    pin::Pin,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError, mpsc},
    thread::{self, JoinHandle},
    time::Duration,
};

use futures_core::Stream;
use tempfile::TempDir;
use zbus::{Connection, Message, MessageStream, connection::Builder, message::Type};

const DBUS_DAEMON: &str = "/usr/bin/dbus-daemon";

const SYSTEMD_SERVICE: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";

/// Long enough that the caller is usually already waiting when the job finishes, as with a real
/// restart, yet short enough to keep the tests quick.
const JOB_DURATION: Duration = Duration::from_millis(50);

/// Far above any job id the stand-in hands out, so a decoy never shares a job path with a real
/// job.
const DECOY_JOB_ID_OFFSET: u32 = 1_000_000;

/// A `dbus-daemon` of our own, listening on a socket in a temporary directory, killed on drop.
pub struct DbusDaemon {
    child: Child,
    address: String,
    // Holds the socket and the configuration; removed on drop, after the daemon is gone.
    _dir: TempDir,
}

impl DbusDaemon {
    /// Starts the daemon and waits until it is listening.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory for the bus");
        let config = dir.path().join("bus.conf");
        fs::write(&config, bus_config(&dir.path().join("bus")))
            .expect("cannot write the bus configuration");

        let mut child = Command::new(DBUS_DAEMON)
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {DBUS_DAEMON} (install `dbus`): {e}"));

        // The daemon prints its address only once it is listening, so reading it is the wait.
        let mut address = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut address);
        }
        let address = address.trim().to_owned();
        if address.is_empty() {
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            let _ = child.wait();
            panic!("dbus-daemon did not start: {stderr}");
        }

        Self {
            child,
            address,
            _dir: dir,
        }
    }

    /// The address clients connect to, e.g. `unix:path=/tmp/.tmpXXXX/bus,guid=…`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for DbusDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A system-type bus that lets anyone own any name and talk to anyone: the tests are about our
/// messages, not about bus policy.
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// What the stand-in does when asked to restart a unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Reaction {
    /// Returns a job, then reports it finished with result `done` shortly after.
    #[default]
    Done,
    /// Returns a job, then reports it finished with result `failed` shortly after.
    Failed,
    /// Returns a job and never reports it finished. (Only the unit tests in src/systemd.rs
    /// use it, not tests/it.)
    #[allow(dead_code)]
    Never,
    /// Reports the job finished with result `done` before even returning it, as a very quick
    /// job can on real systemd.
    DoneBeforeReply,
    /// Refuses with an error reply, as systemd does for a unit it does not know.
    Refuse,
    /// Runs this command, as the unit's `ExecStartPre=` would, then reports the job `done` if it
    /// exited with status 0 and `failed` otherwise.
    Run(Vec<String>),
}

/// How the stand-in reacts, unit by unit.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    otherwise: Reaction,
    per_unit: HashMap<String, Reaction>,
}

impl Behaviour {
    /// Reacts to every unit with `reaction`.
    pub fn all(reaction: Reaction) -> Self {
        Self {
            otherwise: reaction,
            per_unit: HashMap::new(),
        }
    }

    /// Reacts to `unit` with `reaction` instead.
    pub fn unit(mut self, unit: &str, reaction: Reaction) -> Self {
        self.per_unit.insert(unit.to_owned(), reaction);
        self
    }

    fn reaction_for(&self, unit: &str) -> &Reaction {
        self.per_unit.get(unit).unwrap_or(&self.otherwise)
    }
}

type Calls = Arc<Mutex<Vec<(String, String)>>>;

/// A bus peer that owns `org.freedesktop.systemd1` and answers `RestartUnit` on the manager
/// object, recording each call.
///
/// Before each job's own `JobRemoved`, it emits one for an unrelated (decoy) job that failed, as
/// real systemd broadcasts the end of every job, so a client must pick out its own by job path.
pub struct FakeSystemd {
    connection: Connection,
    calls: Calls,
    server: Option<JoinHandle<()>>,
}

impl FakeSystemd {
    /// Connects to the bus at `address`, takes systemd's name and starts answering.
    pub fn start(address: &str, behaviour: Behaviour) -> Self {
        let calls = Calls::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        let server = {
            let address = address.to_owned();
            let calls = Arc::clone(&calls);
            thread::spawn(move || serve(&address, &behaviour, &calls, &ready_tx))
        };
        let connection = match ready_rx.recv() {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => panic!("the stand-in systemd could not join the bus: {e}"),
            Err(_) => panic!("the stand-in systemd stopped before joining the bus"),
        };
        Self {
            connection,
            calls,
            server: Some(server),
        }
    }

    /// Every `RestartUnit` call so far, as (unit, mode), in the order received.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        // Closing ends the server's message stream, which is what lets its thread finish.
        let _ = zbus::block_on(self.connection.clone().close());
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

fn serve(
    address: &str,
    behaviour: &Behaviour,
    calls: &Calls,
    ready: &mpsc::Sender<Result<Connection, String>>,
) {
    zbus::block_on(async {
        let joined = async {
            let connection = Builder::address(address).build().await?;
            // Listening before taking the name means no call sent to the name can be missed.
            let stream = MessageStream::from(&connection);
            connection.request_name(SYSTEMD_SERVICE).await?;
            Ok::<_, zbus::Error>((connection, stream))
        };
        let (connection, mut stream) = match joined.await {
            Ok(joined) => joined,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let _ = ready.send(Ok(connection.clone()));

        let mut last_job_id = 0;
        while let Some(message) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            let Ok(message) = message else { continue };
            if message.message_type() == Type::MethodCall {
                answer(&connection, &message, behaviour, calls, &mut last_job_id).await;
            }
        }
    });
}

async fn answer(
    connection: &Connection,
    call: &Message,
    behaviour: &Behaviour,
    calls: &Calls,
    last_job_id: &mut u32,
) {
    let header = call.header();
    let is_restart_unit = header.path().is_some_and(|p| p == MANAGER_PATH)
        && header.interface().is_some_and(|i| i == MANAGER_INTERFACE)
        && header.member().is_some_and(|m| m == "RestartUnit");
    if !is_restart_unit {
        let _ = connection
            .reply_error(
                &header,
                "org.freedesktop.DBus.Error.UnknownMethod",
                &"the stand-in systemd only knows RestartUnit",
            )
            .await;
        return;
    }
    let Ok((unit, mode)) = call.body().deserialize::<(String, String)>() else {
        let _ = connection
            .reply_error(
                &header,
                "org.freedesktop.DBus.Error.InvalidArgs",
                &"RestartUnit takes (s name, s mode)",
            )
            .await;
        return;
    };
    calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((unit.clone(), mode));

    let reaction = behaviour.reaction_for(&unit).clone();
    if reaction == Reaction::Refuse {
        let _ = connection
            .reply_error(
                &header,
                "org.freedesktop.systemd1.NoSuchUnit",
                &format!("Unit {unit} not found."),
            )
            .await;
        return;
    }

    *last_job_id += 1;
    let id = *last_job_id;
    let job = job_path(id);
    if reaction == Reaction::DoneBeforeReply {
        finish_job(connection, id, &unit, "done").await;
    }
    let _ = connection
        .reply(&header, &zbus::ObjectPath::from_str_unchecked(&job))
        .await;

    let result = match reaction {
        Reaction::Done => "done",
        Reaction::Failed => "failed",
        Reaction::Run(command) => {
            let connection = connection.clone();
            thread::spawn(move || {
                let ok = command.split_first().is_some_and(|(program, args)| {
                    std::process::Command::new(program)
                        .args(args)
                        .status()
                        .is_ok_and(|status| status.success())
                });
                let result = if ok { "done" } else { "failed" };
                zbus::block_on(finish_job(&connection, id, &unit, result));
            });
            return;
        }
        Reaction::Never | Reaction::DoneBeforeReply | Reaction::Refuse => return,
    };
    let connection = connection.clone();
    zruntime::spawn(async move {
        if let Ok(runtime) = zruntime::SharedRuntime::current() {
            runtime.sleep(JOB_DURATION).await;
        }
        finish_job(&connection, id, &unit, result).await;
    })
    .detach();
}

fn job_path(id: u32) -> String {
    format!("{MANAGER_PATH}/job/{id}")
}

/// Announces a decoy job's end, then job `id`'s.
async fn finish_job(connection: &Connection, id: u32, unit: &str, result: &str) {
    let decoy = id + DECOY_JOB_ID_OFFSET;
    job_removed(connection, decoy, "decoy.service", "failed").await;
    job_removed(connection, id, unit, result).await;
}

async fn job_removed(connection: &Connection, id: u32, unit: &str, result: &str) {
    let job = job_path(id);
    let _ = connection
        .emit_signal(
            None::<&str>,
            MANAGER_PATH,
            MANAGER_INTERFACE,
            "JobRemoved",
            &(id, zbus::ObjectPath::from_str_unchecked(&job), unit, result),
        )
        .await;
}
