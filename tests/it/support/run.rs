//! Running a program under a hang guard. Every run of `tako` in these tests goes through
//! here (and so do the tools that run it for a test, such as `script` or `make`), so a run
//! that hangs fails its own test after a bound instead of stalling the whole suite.
//!
//! Captured output is read by one thread per stream while the program runs, so a program
//! that writes more than a pipe holds never blocks on a test that is waiting for it to end.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// How long a run may take before it counts as hung: a guard against hangs, not a measure
/// of speed.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// The guard for runs that are slow on purpose: a rate-limited server, retries with backoff,
/// a server that stalls until a timeout fires.
pub const SLOW_GUARD: Duration = Duration::from_secs(120);

/// How long the output of a killed run is still waited for, to show it in the failure.
const LAST_WORDS: Duration = Duration::from_secs(2);

/// Runs `cmd` with an empty standard input and its output captured, killing it and failing
/// the test if it has not ended within [`HANG_GUARD`].
#[track_caller]
pub fn run_bounded(cmd: &mut Command) -> Output {
    Bounded::new(cmd).run()
}

/// A run about to start: its guard, its input and where its output goes. By default the
/// input is empty (`/dev/null`), stdout and stderr are captured through pipes, and the
/// guard is [`HANG_GUARD`].
pub struct Bounded<'a> {
    cmd: &'a mut Command,
    guard: Duration,
    input: Option<Vec<u8>>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

impl<'a> Bounded<'a> {
    pub fn new(cmd: &'a mut Command) -> Bounded<'a> {
        Bounded {
            cmd,
            guard: HANG_GUARD,
            input: None,
            stdout: None,
            stderr: None,
        }
    }

    pub fn within(mut self, guard: Duration) -> Self {
        self.guard = guard;
        self
    }

    /// Feeds `bytes` to standard input through a pipe, which is then closed.
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.input = Some(bytes.into());
        self
    }

    /// Sends stdout to `to` (a file, `/dev/full`, `Stdio::null()`) instead of capturing it;
    /// the output then has no stdout bytes.
    pub fn stdout(mut self, to: impl Into<Stdio>) -> Self {
        self.stdout = Some(to.into());
        self
    }

    /// Sends stderr to `to` instead of capturing it.
    pub fn stderr(mut self, to: impl Into<Stdio>) -> Self {
        self.stderr = Some(to.into());
        self
    }

    /// Starts the program; the guard counts from now.
    #[track_caller]
    pub fn spawn(self) -> Running {
        let program = std::path::Path::new(self.cmd.get_program());
        let name = program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned();
        let captured_out = self.stdout.is_none();
        let captured_err = self.stderr.is_none();
        self.cmd
            .stdin(if self.input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(self.stdout.unwrap_or_else(Stdio::piped))
            .stderr(self.stderr.unwrap_or_else(Stdio::piped));
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        if let (Some(bytes), Some(mut stdin)) = (self.input, child.stdin.take()) {
            // From a thread: a program that does not read all of it must not block the test.
            thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let stdout = captured_out.then(|| read_all(child.stdout.take()));
        let stderr = captured_err.then(|| read_all(child.stderr.take()));
        Running {
            name,
            child,
            guard: self.guard,
            started: Instant::now(),
            stdout,
            stderr,
        }
    }

    /// Starts the program and waits for it to end, within the guard.
    #[track_caller]
    pub fn run(self) -> Output {
        self.spawn().finish()
    }
}

/// A thread reading `pipe` to its end; the bytes come through the receiver.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    rx
}

/// A started run. Dropping it kills the program, so a test that fails while one runs leaves
/// nothing behind.
pub struct Running {
    name: String,
    child: Child,
    guard: Duration,
    started: Instant,
    stdout: Option<Receiver<Vec<u8>>>,
    stderr: Option<Receiver<Vec<u8>>>,
}

impl Running {
    /// Whether the program is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the program to end and returns what it printed. If it has not ended when
    /// the guard runs out, it is killed and the test fails, showing its output so far.
    #[track_caller]
    pub fn finish(mut self) -> Output {
        let deadline = self.started + self.guard;
        // Captured streams close when the program ends, so waiting for them needs no
        // polling in the common case.
        let stdout = match self.stdout.take() {
            Some(rx) => match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(bytes) => bytes,
                Err(_) => {
                    self.stdout = Some(rx);
                    self.hung(None)
                }
            },
            None => Vec::new(),
        };
        let stderr = match self.stderr.take() {
            Some(rx) => match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(bytes) => bytes,
                Err(_) => {
                    self.stderr = Some(rx);
                    self.hung(Some(stdout))
                }
            },
            None => Vec::new(),
        };
        let status = self.wait_until(deadline, &stdout);
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Kills the program with SIGKILL, leaving it no chance to tidy up (as when the power
    /// goes), and waits for it to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    #[track_caller]
    fn wait_until(&mut self, deadline: Instant, stdout: &[u8]) -> ExitStatus {
        let mut nap = Duration::from_millis(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() >= deadline => self.hung(Some(stdout.to_vec())),
                Ok(None) => {}
                Err(e) => panic!("cannot wait for {}: {e}", self.name),
            }
            thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }

    /// Kills the hung program and fails the test with what it printed (`stdout` when that
    /// was read already).
    #[track_caller]
    fn hung(&mut self, stdout: Option<Vec<u8>>) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let last = |rx: Option<Receiver<Vec<u8>>>| {
            rx.and_then(|rx| rx.recv_timeout(LAST_WORDS).ok())
                .unwrap_or_default()
        };
        let stdout = stdout.unwrap_or_else(|| last(self.stdout.take()));
        let stderr = last(self.stderr.take());
        panic!(
            "{} did not finish within {:?} (or something it started still held its output) \
             and was killed\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.guard,
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The runner itself, with programs every system has.
mod tests {
    use super::*;

    #[test]
    fn a_run_that_outlives_its_guard_is_killed_and_fails_its_test() {
        let started = Instant::now();
        let failed = std::panic::catch_unwind(|| {
            Bounded::new(Command::new("sleep").arg("60"))
                .within(Duration::from_millis(300))
                .run()
        });
        let message = failed.expect_err("the run was not stopped");
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(
            message.starts_with("sleep did not finish within 300ms"),
            "{message}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn output_larger_than_a_pipe_holds_is_captured_whole() {
        let o = run_bounded(Command::new("head").args(["-c", "3000000", "/dev/zero"]));
        assert!(o.status.success());
        assert_eq!(o.stdout.len(), 3_000_000);
    }

    #[test]
    fn input_reaches_standard_input_and_stderr_can_go_elsewhere() {
        let o = Bounded::new(Command::new("cat").arg("-").arg("/nonexistent"))
            .input("typed\n")
            .stderr(Stdio::null())
            .run();
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(o.stdout, b"typed\n");
        assert!(o.stderr.is_empty());
    }
}
