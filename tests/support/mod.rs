//! Test helpers shared by the integration tests: a private D-Bus and a stand-in systemd.

// Each test binary compiles every helper but uses only some of them.
#![allow(dead_code)]

pub mod dbus;
