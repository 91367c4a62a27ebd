//! `tako container-image-proxy`: what the HTTP image server for other programs accepts.

use clap::Args;

use super::TimeLimits;
use super::image::{AuthArgs, PlatformArgs, PolicyFileArgs};

#[derive(Debug, Args)]
pub struct ContainerImageProxyArgs {
    /// The file descriptor of the connected socket to serve, inherited from the
    /// program that started tako. Default: requests are read from standard input
    /// and answered on standard output.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(i32).range(0..))]
    pub sockfd: Option<i32>,
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub policy: PolicyFileArgs,
    #[command(flatten)]
    pub limits: TimeLimits,
    /// Try a transient failure (connection error, timeout, HTTP 408, 429 or 5xx) this many
    /// more times, waiting about 1, 2, 4 … seconds in between. A blob already being sent
    /// to the client is not tried again: its connection is closed.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,
    /// The wait before the first retry, in milliseconds (for tests; see --retries).
    #[arg(long, value_name = "MS", default_value_t = 1000, hide = true,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub retry_delay_ms: u64,
    /// Cap the download rate at this many bytes per second, as curl's option of the
    /// same name: a number with an optional K, M or G suffix (powers of 1024), e.g. 500K
    /// or 10M. Default: no limit.
    #[arg(long, value_name = "RATE", value_parser = crate::format::rate::parse_rate)]
    pub limit_rate: Option<u64>,
    /// The image, as for `tako image pull`.
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn the_proxy_takes_a_socket_a_platform_and_one_image() {
        let cli = Cli::try_parse_from([
            "tako",
            "container-image-proxy",
            "--sockfd",
            "3",
            "--platform",
            "linux/arm64",
            "docker://r/app:1",
        ])
        .unwrap();
        let Command::ContainerImageProxy(args) = cli.command else {
            panic!("expected container-image-proxy")
        };
        assert_eq!(args.sockfd, Some(3));
        assert_eq!(args.platform.platform.as_deref(), Some("linux/arm64"));
        assert_eq!(args.image, "docker://r/app:1");
        for bad in [&["--sockfd", "-1", "a"][..], &["a", "b"], &[]] {
            let mut line = vec!["tako", "container-image-proxy"];
            line.extend_from_slice(bad);
            assert!(Cli::try_parse_from(line).is_err(), "{bad:?}");
        }
    }
}
