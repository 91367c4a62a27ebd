//! `tako experimental-image-proxy`: serves skopeo's image-proxy protocol on a socket the
//! client passed (the server is `api::image_proxy`). Only warnings, and with `--debug`
//! each request, go to standard error; standard output is left alone.

use std::time::Duration;

use crate::api::image_proxy::{self, Options};
use crate::api::image_proxy_socket::{Socket, SocketError};
use crate::cli::image_proxy::ImageProxyArgs;
use crate::container::policy::PolicyChoice;
use crate::container::pull::Report;
use crate::container::resolve::{Auth, WantedPlatform};
use crate::format::oci::platform::{Platform, PlatformError};
use crate::origin::registry::{CertDirError, RegistryTls};
use crate::ui::output;
use crate::update::retry::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ImageProxyError {
    #[error(
        "--decryption-key: tako does not decrypt encrypted layers; use skopeo for encrypted images"
    )]
    Decryption,
    #[error("cannot tell this host's platform: {0}")]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(transparent)]
    CertDir(#[from] CertDirError),
}

/// Warnings always; progress (each request) with `--debug`.
struct Reporter {
    debug: bool,
}

impl Report for Reporter {
    fn warn(&self, message: &str) {
        output::warning_line(message);
    }

    fn progress(&self, message: &str) {
        if self.debug {
            output::stderr_line(&format!("tako: image proxy: {message}"));
        }
    }

    fn download_bar(&self, _what: &str, _done: u64, _total: u64) -> indicatif::ProgressBar {
        indicatif::ProgressBar::hidden()
    }
}

pub fn run(args: &ImageProxyArgs) -> Result<(), ImageProxyError> {
    if !args.decryption_key.is_empty() {
        return Err(ImageProxyError::Decryption);
    }
    let reporter = Reporter { debug: args.debug };
    let tls = match &args.cert_dir {
        Some(dir) => RegistryTls::from_cert_dir(dir)?,
        None => RegistryTls::default(),
    };
    let platform = Platform::host(
        std::env::consts::OS,
        std::env::consts::ARCH,
        cfg!(target_endian = "little"),
    )?;
    let auth = match (&args.authfile, args.no_creds) {
        (_, true) => Auth::Anonymous,
        (Some(path), false) => Auth::File(path.clone()),
        (None, false) => Auth::Files,
    };
    let options = Options {
        auth,
        tls_verify: args.tls_verify,
        tls,
        platform: WantedPlatform {
            platform,
            explicit: false,
        },
        limits: super::transport_config(&args.limits, None),
        retry: RetryPolicy {
            retries: args.retries,
            base: Duration::from_secs(1),
            deadline: None,
        },
        debug: args.debug,
        policy: match (&args.policy, args.insecure_policy) {
            (_, true) => PolicyChoice::Insecure,
            (Some(file), false) => PolicyChoice::File(file.clone()),
            (None, false) => PolicyChoice::Host,
        },
    };
    let socket = Socket::take(args.sockfd)?;
    image_proxy::serve(&socket, &options, &reporter)?;
    Ok(())
}
