//! `tako container-image-proxy`: resolves the image, takes the socket (or standard input
//! and output) and hands both to `api::http_proxy`.

use std::fs::File;
use std::os::fd::AsFd;
use std::time::Duration;

use super::{auth_of, host_platform, transport_config, wanted_platform};
use crate::Exit;
use crate::api::http_proxy::{self, ProxyError, RegistryBlobs};
use crate::cli::container_image_proxy::ContainerImageProxyArgs;
use crate::container::pull::{PullError, Report};
use crate::container::resolve::Source;
use crate::format::oci::platform::PlatformError;
use crate::ui::output;
use crate::update::retry::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("cannot take file descriptor {fd} (--sockfd): {source}")]
    Socket {
        fd: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use standard {which} for the client's connection: {source}")]
    Stdio {
        which: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Warnings on standard error; nobody watches progress, and standard output may be the
/// client's connection.
struct Warnings;

impl Report for Warnings {
    fn warn(&self, message: &str) {
        output::warning_line(message);
    }

    fn progress(&self, _message: &str) {}

    fn download_bar(&self, _what: &str, _done: u64, _total: u64) -> indicatif::ProgressBar {
        indicatif::ProgressBar::hidden()
    }
}

/// The client's connection: the socket `--sockfd` names, else standard input and output
/// (unbuffered: the responses are written whole and flushed by the server).
fn connection(sockfd: Option<i32>) -> Result<(File, File), ServeError> {
    match sockfd {
        Some(fd) => {
            let failed = |e: rustix::io::Errno| ServeError::Socket {
                fd,
                source: e.into(),
            };
            // A descriptor number is taken over without `unsafe` by asking the kernel for
            // a copy of it through this process's own pidfd (Linux 5.6).
            let me = rustix::process::pidfd_open(
                rustix::process::getpid(),
                rustix::process::PidfdFlags::empty(),
            )
            .map_err(failed)?;
            let socket =
                rustix::process::pidfd_getfd(&me, fd, rustix::process::PidfdGetfdFlags::empty())
                    .map_err(failed)?;
            let read = File::from(socket);
            let write = read
                .try_clone()
                .map_err(|source| ServeError::Socket { fd, source })?;
            Ok((read, write))
        }
        None => {
            let stdio = |which, fd: std::os::fd::BorrowedFd<'_>| {
                fd.try_clone_to_owned()
                    .map(File::from)
                    .map_err(|source| ServeError::Stdio { which, source })
            };
            Ok((
                stdio("input", std::io::stdin().as_fd())?,
                stdio("output", std::io::stdout().as_fd())?,
            ))
        }
    }
}

/// Runs `tako container-image-proxy`.
pub fn run(args: &ContainerImageProxyArgs) -> Result<Exit, crate::Error> {
    Ok(serve(args)?)
}

fn serve(args: &ContainerImageProxyArgs) -> Result<Exit, ServeError> {
    let wanted = wanted_platform(&args.platform, host_platform())?;
    let retry = RetryPolicy {
        retries: args.retries,
        base: Duration::from_millis(args.retry_delay_ms),
        deadline: args
            .limits
            .max_time
            .map(|secs| std::time::Instant::now() + Duration::from_secs(secs)),
    };
    // The host's registries.conf applies as for `tako image pull`: mirrors, blocks, aliases.
    let (image, endpoints) = crate::container::registries::route(&args.image)
        .map_err(|e| ProxyError::Pull(PullError::from(e)))?;
    // And its policy.json, before any request.
    let mut applied = crate::container::policy::check(&super::policy_choice(&args.policy), &image)
        .map_err(|e| ProxyError::Pull(PullError::from(e)))?;
    let source = Source::connect(
        image,
        endpoints,
        &auth_of(&args.auth),
        transport_config(&args.limits, args.limit_rate),
        args.limits.max_time.map(Duration::from_secs),
    )
    .map_err(ProxyError::Pull)?;
    let report = Warnings;
    let served = http_proxy::resolve(&source, &wanted, applied.as_mut(), retry, &report)?;
    if let Some(applied) = &applied {
        output::stderr_line(&format!(
            "tako: {}: policy: {}",
            source.shown,
            applied.describe()
        ));
    }
    let (input, output) = connection(args.sockfd)?;
    let blobs = RegistryBlobs {
        source: &source,
        retry,
        report: &report,
    };
    http_proxy::serve(input, output, &served, &blobs)?;
    Ok(Exit::Success)
}
