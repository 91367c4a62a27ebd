//! Restarting `Restart=` units through a private `dbus-daemon` with a stand-in for systemd.

mod fetch_restart;
mod restart_pending;
mod restart_units;
