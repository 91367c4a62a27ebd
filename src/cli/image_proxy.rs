//! `tako experimental-image-proxy`: what the image-proxy server accepts, skopeo's flags
//! included, since the `containers-image-proxy` crate passes them as it would to skopeo.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use super::TimeLimits;

#[derive(Debug, Args)]
pub struct ImageProxyArgs {
    /// Serve on the socket at this file descriptor: one end of a
    /// socketpair(AF_UNIX, SOCK_SEQPACKET) the client made. Default: standard
    /// input.
    #[arg(long, value_name = "FD", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64))]
    pub sockfd: u32,
    /// Read registry credentials from this auth file only (containers-auth.json
    /// or Docker's config.json format). Default: the files `tako image pull`
    /// reads.
    #[arg(long, value_name = "FILE", conflicts_with = "no_creds")]
    pub authfile: Option<PathBuf>,
    /// Access registries anonymously.
    #[arg(long)]
    pub no_creds: bool,
    /// Registry certificates, as containers/image reads such a directory: each
    /// *.crt holds CAs trusted beside the system's, and NAME.cert with NAME.key
    /// is the client certificate presented.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// With false, a docker:// registry's certificate is not checked, and one
    /// that does not answer TLS is reached over plain HTTP (for a registry on
    /// localhost or a private network).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub tls_verify: bool,
    /// The signature policy (containers-policy.json) a docker:// image must
    /// satisfy to be opened. Default: as for `tako image pull` (the user's,
    /// else /etc/containers/policy.json, else none). See docs/policy.md.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure_policy")]
    pub policy: Option<PathBuf>,
    /// Apply no policy.json: open whatever the registry serves (the
    /// containers-image-proxy crate passes it when asked to).
    #[arg(long)]
    pub insecure_policy: bool,
    /// Accepted for skopeo's sake and ignored.
    #[arg(long, value_name = "PREFIX")]
    pub user_agent_prefix: Option<String>,
    /// Print each request and each failure on standard error.
    #[arg(long)]
    pub debug: bool,
    /// Refused: tako does not decrypt encrypted layers.
    #[arg(long, value_name = "KEY", action = ArgAction::Append)]
    pub decryption_key: Vec<String>,
    #[command(flatten)]
    pub limits: TimeLimits,
    /// Try a transient failure to reach a registry this many more times,
    /// waiting about 1, 2, 4 … seconds in between.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,
}
