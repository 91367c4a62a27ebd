//! `tako fetch` restarting `Restart=` units through a private `dbus-daemon` with a stand-in
//! for systemd. (The restart functions themselves are tested against the same harness in
//! `src/systemd.rs`.)

mod fetch_restart;
mod restart_pending;

use std::path::Path;
use std::process::Output;

use crate::support::tako::Fetch;

/// Runs `tako fetch ARGS CONFIG` with the system bus at `bus` (a private daemon's address).
pub fn fetch_on_bus(bus: &str, args: &[&str], config: &Path) -> Output {
    Fetch::new()
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .run(args, &[config])
}
