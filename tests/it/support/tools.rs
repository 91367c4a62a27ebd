//! Outside programs some tests check tako's output with (groff, man, shells, systemd-analyze).
//!
//! A developer's machine may lack one: the test then says loudly that it did not run. In CI
//! (`CI` set, as `.ci/run` runs) `.ci/run` installs them all, so a missing one is a failure
//! there rather than a check that silently never runs.

use std::process::{Command, Stdio};

/// Whether `program` can be run. Without it, a test returns early after calling this; in CI
/// the test fails instead.
#[track_caller]
pub fn available(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{program} is not installed; .ci/run should have installed it");
    }
    eprintln!(
        "\n*** SKIPPED: {program} is not installed, so this check did not run. \
         .ci/run installs it; on Debian: apt-get install the package that has {program}. ***\n"
    );
    false
}
