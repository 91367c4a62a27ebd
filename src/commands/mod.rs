//! One module per verb: each reads its arguments, calls the floors below and prints.

pub mod check;
pub mod container_image_proxy;
pub mod fetch;
pub mod gc;
pub mod generate;
pub mod image;
pub mod image_proxy;
pub mod index;
pub mod status;
pub mod store;

use std::path::Path;
use std::time::Duration;

use crate::cli::TimeLimits;
use crate::cli::image::{AuthArgs, PlatformArgs};
use crate::container::policy::PolicyChoice;
use crate::container::resolve::{Auth, WantedPlatform};
use crate::format::oci::platform::{Platform, PlatformError};
use crate::format::text::untrusted;
use crate::format::transport_config::TransportConfig;
use crate::ui::{output, progress};
use crate::update::fetch::Report;

/// Tells what the engine does for one config: warnings always, progress to a person.
pub struct Reporter<'a> {
    pub name: &'a Path,
    pub progress: bool,
}

impl Report for Reporter<'_> {
    fn warn(&self, message: &str) {
        output::warning_line(&format!("{}: {message}", self.name.display()));
    }

    fn progress(&self, message: &str) {
        if self.progress {
            output::stderr_line(&format!("tako: {}: {message}", self.name.display()));
        }
    }

    fn download_bar(&self, version: &str, done: u64, total: u64) -> indicatif::ProgressBar {
        progress::download_bar(self.name, version, done, total)
    }
}

/// Prints the warnings about optional files (an unreadable `~/.netrc`) that the floors
/// below queued, each once per run (see `fs::warnings`).
pub fn say_file_warnings() {
    for warning in crate::fs::warnings::take() {
        output::warning_line(&warning);
    }
}

/// The transport's limits from the command line's time bounds and `--limit-rate`.
pub fn transport_config(limits: &TimeLimits, limit_rate: Option<u64>) -> TransportConfig {
    TransportConfig {
        idle_timeout: Duration::from_secs(limits.idle_timeout),
        speed_limit: limits.speed_limit,
        speed_time: Duration::from_secs(limits.speed_time),
        limit_rate,
        ..TransportConfig::default()
    }
}

/// The platform the options name, or the host's (`host`) when they name none. `--os`,
/// `--arch` and `--variant` fill in what they leave out from the host.
pub fn wanted_platform(
    args: &PlatformArgs,
    host: Result<Platform, PlatformError>,
) -> Result<WantedPlatform, PlatformError> {
    if let Some(text) = &args.platform {
        return Ok(WantedPlatform {
            platform: Platform::parse(text)?,
            explicit: true,
        });
    }
    if args.os.is_none() && args.arch.is_none() && args.variant.is_none() {
        return Ok(WantedPlatform {
            platform: host?,
            explicit: false,
        });
    }
    let host = host.ok();
    let os = args
        .os
        .clone()
        .or_else(|| host.as_ref().map(|h| h.os.clone()))
        .unwrap_or_else(|| "linux".to_owned());
    let arch = args
        .arch
        .clone()
        .or_else(|| host.as_ref().map(|h| h.architecture.clone()))
        .ok_or_else(|| PlatformError::Invalid(format!("{}/", untrusted(&os))))?;
    // The host's variant only goes with the host's architecture.
    let variant = match (&args.variant, &args.arch) {
        (Some(variant), _) => Some(variant.clone()),
        (None, None) => host.and_then(|h| h.variant),
        (None, Some(_)) => None,
    };
    let text = match variant {
        Some(variant) => format!("{os}/{arch}/{variant}"),
        None => format!("{os}/{arch}"),
    };
    Ok(WantedPlatform {
        platform: Platform::parse(&text)?,
        explicit: true,
    })
}

pub use crate::container::resolve::host_platform;

/// Where `--auth` says registry credentials come from.
/// Which policy.json `--policy` and `--insecure-policy` name.
pub fn policy_choice(args: &crate::cli::image::PolicyFileArgs) -> PolicyChoice {
    match (&args.policy, args.insecure_policy) {
        (_, true) => PolicyChoice::Insecure,
        (Some(file), false) => PolicyChoice::File(file.clone()),
        (None, false) => PolicyChoice::Host,
    }
}

pub fn auth_of(args: &AuthArgs) -> Auth {
    match &args.auth {
        Some(path) => Auth::JsonKey(path.clone()),
        None => Auth::Files,
    }
}
