//! Man pages and shell completion scripts, rendered from the command-line definition.
//!
//! Both are derived from the same clap definition that parses the command line, so a new
//! command or option shows up in them without anyone remembering to edit a second copy.
//! The man pages follow git's and cargo's layout: `tako(1)` for the tool and one page per
//! command (`tako-fetch(1)`, …). clap_mangen writes the parts that come from the definition
//! (name, synopsis, options, the list of commands); this module adds the prose sections a
//! man page reader expects (exit status, files, environment, see also).

use std::io;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Subcommand, ValueEnum};
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

use super::Cli;

/// What `tako generate` makes.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Print the man page tako(1), or write every page into a directory.
    ///
    /// Rendered from the command line's definition, so the pages always list
    /// the options this binary accepts.
    Man(ManArgs),
    /// Print a completion script for a shell.
    ///
    /// Install it where the shell looks for completions, e.g.
    /// /usr/share/bash-completion/completions/tako for bash.
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Instead of printing tako(1), write it and one page per command (tako-fetch.1, …)
    /// into this existing directory, and print the path of each file written.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// The shells whose completion scripts are installed and tested; clap_complete knows a few
/// more, but a script nobody loads in a test could break unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// A man page that could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render man page {page}: {source}")]
pub struct RenderError {
    page: String,
    #[source]
    source: io::Error,
}

pub fn render_error(page: &str, why: &str) -> RenderError {
    RenderError {
        page: page.to_owned(),
        source: io::Error::other(why.to_owned()),
    }
}

/// The completion script for `shell`, for the binary name `tako`.
///
/// clap_complete offers hidden options too (the test-only `--retry-delay-ms`); they are
/// taken out of the script here, so that completion offers only what `--help` shows.
pub fn completion(shell: Shell) -> Vec<u8> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command();
    let hidden = hidden_long_options(&command);
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut command, "tako", &mut script);
    let text = String::from_utf8_lossy(&script);
    without_options(shell, &text, &hidden).into_bytes()
}

/// The long names of every hidden option of `command` and its subcommands.
fn hidden_long_options(command: &clap::Command) -> Vec<String> {
    let mut names: Vec<String> = command
        .get_arguments()
        .filter(|a| a.is_hide_set())
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    for sub in command.get_subcommands() {
        names.extend(hidden_long_options(sub));
    }
    names.sort();
    names.dedup();
    names
}

/// `script` without the lines and words that offer the options `names`.
fn without_options(shell: Shell, script: &str, names: &[String]) -> String {
    let mut out = String::with_capacity(script.len());
    let mut skipping_case = false;
    for line in script.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let offers = |name: &String| match shell {
            Shell::Bash => trimmed.starts_with(&format!("--{name})")),
            Shell::Zsh => {
                trimmed.starts_with(&format!("'--{name}="))
                    || trimmed.starts_with(&format!("'--{name}["))
            }
            Shell::Fish => line.contains(&format!(" -l {name} ")),
        };
        if skipping_case {
            // A bash case arm ends with its ";;" line.
            skipping_case = trimmed.trim_end() != ";;";
            continue;
        }
        if names.iter().any(offers) {
            skipping_case = shell == Shell::Bash;
            continue;
        }
        let mut kept = line.to_owned();
        if shell == Shell::Bash {
            for name in names {
                kept = kept.replace(&format!(" --{name} "), " ");
            }
        }
        out.push_str(&kept);
    }
    out
}

/// Every man page as (file name, roff source): `tako.1` first, then one page per command
/// and nested command, in the order `--help` lists them.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>, RenderError> {
    // The `help` pseudo-command has nothing to document, and a page list naming
    // tako-help(1) would point at a page that does not exist.
    let mut root = without_help_command(Cli::command());
    // Building fills in each command's display name (`tako-fetch`) and usage name
    // (`tako fetch`), which the pages are named and titled by.
    root.build();
    let mut pages = Vec::new();
    collect_pages(&root, None, &mut pages)?;
    Ok(pages)
}

fn without_help_command(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help_command)
}

fn collect_pages(
    cmd: &clap::Command,
    parent: Option<&str>,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), RenderError> {
    // The footer names the package and version on every page; clap_mangen would name the
    // command (`fetch`) and no version on a command's page.
    let man = Man::new(cmd.clone()).source(concat!("tako ", env!("CARGO_PKG_VERSION")));
    let name = man.get_filename();
    let page = render_page(&man, cmd, parent).map_err(|source| RenderError {
        page: name.clone(),
        source,
    })?;
    pages.push((name, page));
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        collect_pages(sub, Some(page_name(cmd)), pages)?;
    }
    Ok(())
}

/// The page name a command is known by: `tako`, `tako-fetch`, `tako-generate-man`.
fn page_name(cmd: &clap::Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// One page: clap_mangen's sections in its order, with ours between the generated
/// options and the version line.
fn render_page(man: &Man, cmd: &clap::Command, parent: Option<&str>) -> io::Result<Vec<u8>> {
    let name = page_name(cmd);
    let mut page = Vec::new();
    // Each of clap_mangen's section writers starts with the same two-line preamble (it
    // defines the apostrophe string); the page needs it once, at the top.
    let preamble = Roff::new().render();
    let mut section = |render: &dyn Fn(&mut Vec<u8>) -> io::Result<()>| -> io::Result<()> {
        let mut buf = Vec::new();
        render(&mut buf)?;
        let body = match buf.strip_prefix(preamble.as_bytes()) {
            Some(body) if !page.is_empty() => body,
            _ => &buf[..],
        };
        page.extend_from_slice(body);
        Ok(())
    };

    section(&|w| title(name).to_writer(w))?;
    section(&|w| man.render_name_section(w))?;
    section(&|w| synopsis(cmd).to_writer(w))?;
    section(&|w| man.render_description_section(w))?;
    section(&|w| prose(name).description.to_writer(w))?;
    if cmd.get_arguments().any(|arg| !arg.is_hide_set()) {
        section(&|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|sub| !sub.is_hide_set()) {
        section(&|w| man.render_subcommands_section(w))?;
    }
    section(&|w| prose(name).sections.to_writer(w))?;
    section(&|w| see_also(cmd, parent).to_writer(w))?;
    if cmd.get_version().is_some() {
        section(&|w| man.render_version_section(w))?;
    }
    Ok(ascii_only(&page))
}

/// SYNOPSIS: the command, its options in the order `--help` lists them, each with what it
/// takes (`[--max-time SECONDS]`), and its arguments. clap_mangen 0.3 writes an option
/// without its argument (`[--max-time]`), which reads as a flag.
fn synopsis(cmd: &clap::Command) -> Roff {
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    let mut line: Vec<Inline> = vec![bold(name)];
    for arg in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
    {
        line.push(roman(" "));
        let required = arg.is_required_set();
        if !required {
            line.push(roman("["));
        }
        let mut first = true;
        if let Some(short) = arg.get_short() {
            line.push(bold(format!("-{short}")));
            first = false;
        }
        if let Some(long) = arg.get_long() {
            if !first {
                line.push(roman("|"));
            }
            line.push(bold(format!("--{long}")));
        }
        if arg.get_action().takes_values() {
            // A line never breaks between an option and its argument.
            line.push(roman(NO_BREAK));
            line.push(italic(value_name(arg)));
        }
        if !required {
            line.push(roman("]"));
        }
        if matches!(arg.get_action(), clap::ArgAction::Append) {
            line.push(roman("..."));
        }
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        line.push(roman(" "));
        let required = arg.is_required_set();
        if !required {
            line.push(roman("["));
        }
        line.push(italic(value_name(arg)));
        if !required {
            line.push(roman("]"));
        }
        if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            line.push(roman("..."));
        }
    }
    if cmd.get_subcommands().any(|sub| !sub.is_hide_set()) {
        line.push(roman(" "));
        line.push(italic("COMMAND"));
        line.push(roman(" ..."));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    // Neither stretched to the right margin nor hyphenated: `SEC-ONDS` reads badly.
    roff.control("nh", []);
    roff.control("ad", ["l"]);
    roff.text(line);
    roff.control("ad", []);
    roff.control("hy", []);
    roff
}

/// Stands for a space at which no line may break; [`ascii_only`] writes it as roff's `\~`.
const NO_BREAK: &str = "\u{a0}";

/// What an option or argument takes, as `--help` names it: `SECONDS`, `CONFIG`.
fn value_name(arg: &clap::Arg) -> String {
    match arg.get_value_names() {
        Some(names) if !names.is_empty() => names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => arg.get_id().as_str().to_uppercase(),
    }
}

/// The `.TH` line. clap_mangen writes an empty date as nothing at all, which shifts the
/// following fields one place to the left; an empty date must be quoted (the roff crate
/// quotes only arguments with spaces). There is no date, so that the same source always
/// gives the same page. The title is in capitals, as man-pages(7) asks.
fn title(name: &str) -> Roff {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            name.to_uppercase().as_str(),
            "1",
            "\"\"",
            concat!("tako ", env!("CARGO_PKG_VERSION")),
            "Tako Manual",
        ],
    );
    roff
}

/// Replaces every non-ASCII character with groff's `\[uXXXX]` escape. Help texts may use
/// characters such as `…`, and groff reads its input as Latin-1 unless a preprocessor
/// converts it, so a raw UTF-8 byte would print as garbage (and `groff -ww` warns).
fn ascii_only(page: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(page);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else if c == '\u{a0}' {
            out.push_str("\\~");
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out.into_bytes()
}

/// Hand-written parts of one page: paragraphs that continue DESCRIPTION, and whole
/// sections that follow the options.
struct Prose {
    description: Roff,
    sections: Roff,
}

/// A builder for roff text that keeps the call sites readable.
struct Doc(Roff);

impl Doc {
    fn new() -> Doc {
        Doc(Roff::new())
    }
    fn section(mut self, title: &str) -> Doc {
        self.0.control("SH", [title]);
        self
    }
    fn para(mut self, text: impl Into<Vec<Inline>>) -> Doc {
        self.0.control("PP", []);
        self.0.text(text);
        self
    }
    /// A tagged paragraph: `tag` on its own line, `text` indented below it.
    fn item(mut self, tag: impl Into<Vec<Inline>>, text: impl Into<Vec<Inline>>) -> Doc {
        self.0.control("TP", []);
        self.0.text(tag);
        self.0.text(text);
        self
    }
    /// Lines shown as they are, for file layouts and examples.
    fn example(mut self, lines: &[&str]) -> Doc {
        self.0.control("PP", []);
        self.0.control("RS", ["4"]);
        self.0.control("nf", []);
        for line in lines {
            self.0.text([roman(*line)]);
        }
        self.0.control("fi", []);
        self.0.control("RE", []);
        self
    }
    fn done(self) -> Roff {
        self.0
    }
}

fn prose(page: &str) -> Prose {
    match page {
        "tako" => Prose {
            description: Doc::new()
                .para([roman(
                    "A publisher signs a manifest that lists every published version of an \
                     image with its size and SHA-256, and puts it with the images on any \
                     static file server (the origin). Each host names the origin, the \
                     publisher's public key, a version pattern and a local destination \
                     directory in a configuration file, and runs ",
                ), bold("tako fetch"), roman(
                    " from a timer: it installs the highest matching version into a \
                     content-addressed store, points the symbolic link latest at it, and \
                     restarts the systemd units that use it.",
                )])
                .para([roman(
                    "An image the publisher did not sign is never installed, a server cannot \
                     make a host download more bytes than were signed, and a manifest that \
                     drops or changes a version the host has seen is refused, so a \
                     compromised mirror cannot roll a host back.",
                )])
                .done(),
            sections: Doc::new()
                .section("EXIT STATUS")
                .item([bold("0")], [roman("Success.")])
                .item([bold("1")], [roman(
                    "A failure; with several configuration files, at least one of them failed. \
                     Each failure is reported on standard error as a line starting with \
                     \"tako: error:\".",
                )])
                .item([bold("2")], [roman("The command line was not understood.")])
                .item([bold("100")], [
                    bold("tako check"),
                    roman(" only: an update is available for at least one configuration, and none failed."),
                ])
                .section("ENVIRONMENT")
                .item([bold("TAKO_SECRET_KEY")], [
                    roman("The secret key for "),
                    bold("tako store"),
                    roman(" when neither --key nor --key-file is given."),
                ])
                .item([bold("NETRC")], [roman(
                    "A netrc file with the user name and password for each origin's host; a \
                     missing or unreadable file is then an error. Without it, \
                     $CREDENTIALS_DIRECTORY/netrc and then ~/.netrc are read if they exist.",
                )])
                .item([bold("CREDENTIALS_DIRECTORY")], [roman(
                    "Set by systemd for a unit with LoadCredential=: its file netrc is read \
                     before ~/.netrc.",
                )])
                .item([bold("HOME")], [roman(
                    "Where ~/.netrc, ~/.docker/config.json and the default blob cache \
                     ~/.cache/tako are.",
                )])
                .item([bold("REGISTRY_AUTH_FILE")], [roman(
                    "The registry auth file (containers-auth.json(5)) read first for oci:// \
                     origins and tako image; then $XDG_RUNTIME_DIR/containers/auth.json and \
                     ~/.docker/config.json. Credential helpers named there \
                     (docker-credential-NAME) are looked up in $PATH.",
                )])
                .item([bold("XDG_RUNTIME_DIR")], [roman(
                    "Where containers/auth.json, the auth file of podman login, is looked for.",
                )])
                .item([bold("CONTAINERS_REGISTRIES_CONF")], [roman(
                    "The registries.conf (containers-registries.conf(5)) tako image pull, \
                     digest and tako store --container read, with the registries.conf.d \
                     drop-ins next to it; without it, \
                     $XDG_CONFIG_HOME/containers/registries.conf (else \
                     ~/.config/containers/registries.conf) if it exists and tako is not run \
                     as root, else /etc/containers/registries.conf.",
                )])
                .item([bold("XDG_CONFIG_HOME")], [roman(
                    "Where containers/registries.conf is looked for first when not run as root.",
                )])
                .item([bold("TAKO_CACHE")], [
                    roman("The blob cache of "),
                    bold("tako image"),
                    roman(" when --cache is not given, or no for none."),
                ])
                .item([bold("XDG_CACHE_HOME")], [roman(
                    "The blob cache of tako image is $XDG_CACHE_HOME/tako when not run as root \
                     (else ~/.cache/tako; as root /var/cache/tako).",
                )])
                .item([
                    bold("https_proxy"), roman(", "), bold("http_proxy"), roman(", "),
                    bold("no_proxy"), roman(" (or "), bold("HTTPS_PROXY"), roman(", "),
                    bold("HTTP_PROXY"), roman(", "), bold("NO_PROXY"), roman(")"),
                ], [roman(
                    "The HTTP proxy for https:// and for http:// URLs, and the hosts reached \
                     directly, as for curl; the lower-case name wins. all_proxy is not read.",
                )])
                .item([bold("SSL_CERT_FILE"), roman(", "), bold("SSL_CERT_DIR")], [roman(
                    "A PEM file, and directories, of CA certificates to trust instead of the \
                     system's, for https:// and oci:// origins without CACertificate=.",
                )])
                .item([bold("DBUS_SYSTEM_BUS_ADDRESS")], [roman(
                    "The system bus through which units are restarted; by default \
                     unix:path=/var/run/dbus/system_bus_socket.",
                )])
                .item([bold("JOURNAL_STREAM")], [roman(
                    "Set by systemd when standard error is the journal: error and warning \
                     lines then start with the journal's priority prefixes <3> and <4>.",
                )])
                .item([bold("COLUMNS")], [roman(
                    "The width that progress lines fit; by default the terminal's.",
                )])
                .section("DOCUMENTATION")
                .para([roman(
                    "The guides for operators and publishers, the configuration reference and \
                     the manifest format are installed as Markdown files with this page, in ",
                ), italic("PREFIX"), roman(
                    "/share/doc/tako (for example /usr/local/share/doc/tako), together with \
                     example systemd units and configuration files.",
                )])
                .done(),
        },
        "tako-fetch" => Prose {
            description: Doc::new()
                .para([roman(
                    "For each configuration file, in the order given: lock the destination, \
                     check the local manifest, download the origin's manifest (at most 8 MiB) \
                     and verify its signature, refuse it if it lacks an entry of the local \
                     one, save it, pick the highest version the pattern matches, make sure \
                     that image is in the store (downloading it to a temporary file while \
                     hashing, and refusing any byte beyond the signed size), point latest at \
                     it, and restart the Restart= units if latest moved. One failing \
                     configuration does not stop the others.",
                )])
                .para([roman(
                    "Each configuration gets one line on standard output, for example",
                )])
                .example(&[
                    "app.tako: updated 1.0.0 -> 1.1.0",
                    "app.tako: up to date (1.1.0)",
                    "app.tako: no version matches 3.* (available: 1.0.0, 1.1.0)",
                ])
                .done(),
            sections: Doc::new()
                .section("CONFIGURATION")
                .para([roman(
                    "One file per image, with one Key=Value per line; blank lines and lines \
                     starting with # or ; are ignored:",
                )])
                .example(&[
                    "Origin=https://images.example.com/app",
                    "PublicKey=<the publisher's public key>",
                    "Destination=/var/lib/images/app",
                    "Version=1.*",
                    "Restart=app.service",
                ])
                .para([roman(
                    "A file whose name ends in .toml holds the same settings in TOML, each \
                     key in snake case (shown in parentheses below); a repeatable key takes \
                     a string or an array of strings.",
                )])
                .item([bold("Origin="), roman(" (origin)")], [roman(
                    "Where the images are: the https://, http:// or file:// URL of the \
                     directory that holds manifest and store/, or an OCI registry repository, \
                     oci://REGISTRY[:PORT]/REPOSITORY (oci+http:// for a registry in plain \
                     HTTP). A URL may carry a user name and password. Repeat it to list \
                     mirrors of the same publisher's files, in order of preference: a mirror \
                     that fails, or serves what does not verify, is skipped with a warning \
                     naming it. A mirror needs no trust of its own.",
                )])
                .item([bold("PublicKey="), roman(" (public_key)")], [
                    roman("The publisher's public key, as printed by "),
                    bold("tako gen-key"),
                    roman(
                        ". Repeat it to trust several keys during a key rotation; the \
                         first is preferred.",
                    ),
                ])
                .item([bold("Destination="), roman(" (destination)")], [roman(
                    "The local directory that receives the manifest, the store and latest. \
                     It must exist; tako never creates it.",
                )])
                .item([bold("Version="), roman(" (version)")], [roman(
                    "Which versions to accept: an exact version (1.13.7), a wildcard (1.*, or * \
                     for any) or bounds (2.3 <= v < 3.0). The highest match is installed.",
                )])
                .item([bold("Restart="), roman(" (restart)")], [roman(
                    "Optional, repeatable: systemd units to restart after latest moved; an \
                     empty Restart= clears the list.",
                )])
                .item([bold("Keep="), roman(" (keep)")], [
                    roman(
                        "Optional: how many images to keep in the store. After each update \
                         fetch removes older ones, and it is what ",
                    ),
                    bold("tako gc"),
                    roman(" keeps by default. Without it, fetch keeps every image."),
                ])
                .item([bold("HeaderFile="), roman(" (header_file)")], [roman(
                    "Optional: a file of extra request headers for the origin, one \
                     Name: value per line (bearer tokens).",
                )])
                .item([bold("CACertificate="), roman(" (ca_certificate)")], [roman(
                    "Optional: a PEM file of CA certificates that replaces the system's \
                     trusted roots for this config.",
                )])
                .item([
                    bold("ClientCertificate="), roman(" (client_certificate), "),
                    bold("ClientKey="), roman(" (client_key)"),
                ], [roman(
                    "Optional, both or neither: a PEM client certificate and its key, for \
                     origins that want TLS client authentication.",
                )])
                .item([bold("MirrorStaleAfter="), roman(" (mirror_stale_after)")], [roman(
                    "Optional, with mirrors: how long the origin the manifest comes from may \
                     serve the same manifest before the next mirror is asked too (12h, 1d; \
                     default 1d); a newer manifest there is taken, with a warning.",
                )])
                .item([bold("Kind="), roman(" (kind)")], [roman(
                    "Optional: file (the default) or container. With container, each \
                     version's signed digest names a container image's manifest or index: \
                     fetch downloads its config and the layers not already in blobs/sha256/ \
                     and unpacks them into store/<hex>/rootfs/.",
                )])
                .item([bold("Platform="), roman(" (platform)")], [roman(
                    "Optional, with Kind=container: the platform to install from an index, \
                     OS/ARCH[/VARIANT] (linux/arm64/v8); default the host's, as for tako \
                     image pull.",
                )])
                .para([roman(
                    "configuration.md in the documentation directory describes each key in \
                     full, with the messages for mistakes.",
                )])
                .section("FILES")
                .para([roman("A destination directory holds:")])
                .example(&[
                    "manifest                     the signed manifest, as last verified",
                    "manifest.validators          the origin's ETag and date for it, for the next poll",
                    "latest                       symbolic link to store/<hex> of the installed image",
                    "store/<hex>                  verified images, read-only, named by their SHA-256",
                    "store/<hex>/                 Kind=container: a version's tree: rootfs/, manifest.json,",
                    "                             config.json, and files, the record status --verify checks",
                    "blobs/sha256/<hex>           Kind=container: the verified blobs of its trees",
                    "store/<hex>.partial          an interrupted download, resumed by the next run",
                    "store/<hex>.partial.validator  the ETag or date the partial's bytes came with",
                    "index/<hex>                  chunk indexes of local images, for delta updates",
                    "restart-pending              Restart= units whose restart has not succeeded yet",
                    "manifest.seen                since when the manifest's mirror serves it unchanged",
                    "withdrawn                    images the publisher withdrew (410), not asked for again",
                ])
                .para([roman(
                    "Every file is written under a temporary name, flushed and renamed into \
                     place, so after a crash at any point latest is either absent or points \
                     at a complete, verified image. tako gc removes partials and other files \
                     no manifest entry names.",
                )])
                .done(),
        },
        "tako-status" => Prose {
            description: Doc::new()
                .para([roman(
                    "Offline and without writing anything (and without a lock unless the \
                     installed image does not look intact: then it waits for a running fetch \
                     or gc and looks again): for each configuration, the installed version (every version that names the image \
                     latest points at), whether that image is intact (its size; with --verify \
                     also its SHA-256; for Kind=container, with --verify every entry of the \
                     tree against the record written when it was unpacked, each difference \
                     named by path), newer matching versions the local manifest lists, the \
                     files in the store with their versions and sizes, and a pending restart. \
                     Every line starts with the configuration's name:",
                )])
                .example(&[
                    "app.tako: installed 1.4.0, intact (size checked)",
                    "app.tako:   newer in the local manifest: 1.5.0",
                ])
                .para([roman(
                    "The exit status is 0 when every configuration has an intact installed \
                     image, 1 otherwise.",
                )])
                .done(),
            sections: Roff::new(),
        },
        "tako-check" => Prose {
            description: Doc::new()
                .para([roman(
                    "Downloads and verifies each origin's manifest exactly as tako fetch does \
                     (size limit, signature, no rollback), changes nothing on disk, and prints \
                     one line per configuration:",
                )])
                .example(&[
                    "app.tako: update available 1.1.0 -> 1.2.0",
                    "app.tako: up to date (1.2.0)",
                ])
                .para([roman(
                    "The exit status is 0 when nothing is to be updated, 100 when at least one \
                     configuration has an update available, and 1 when any configuration \
                     failed, whatever the others found.",
                )])
                .done(),
            sections: Roff::new(),
        },
        "tako-gc" => Prose {
            description: Doc::new()
                .para([roman(
                    "Under the destination's lock, removes from each store the images beyond \
                     the newest N (ranked by the highest version naming each), never the one \
                     latest points at, plus files no manifest entry names and temporary files \
                     left by interrupted runs. N is --keep, else the configuration's Keep=, \
                     else 3. Prints each removed version and the bytes freed:",
                )])
                .example(&[
                    "app.tako: removed 1.0.0 (50.00 MiB)",
                    "app.tako: freed 52428800 bytes (50.00 MiB)",
                ])
                .done(),
            sections: Roff::new(),
        },
        "tako-store" => Prose {
            description: Doc::new()
                .para([roman(
                    "Copies the image into the server directory's store/ under its SHA-256 \
                     while hashing it, adds the entry to the manifest in version order, \
                     re-signs the manifest and replaces it atomically, and prints \
                     VERSION -> SHA256. Publishing a version that is already in the manifest \
                     with the same image changes nothing; with a different image it is \
                     refused. DIR may also be a registry repository, oci://REGISTRY/REPOSITORY \
                     (or oci+http://), which gets the image as a blob and the manifest as the \
                     tag tako-manifest. Concurrent runs on one directory are serialised by a \
                     lock; a registry has none, so after pushing, tako store reads the manifest \
                     again and merges its entry once more if another publisher dropped it.",
                )])
                .done(),
            sections: Doc::new()
                .section("FILES")
                .para([roman(
                    "The server directory, served as it is by any static file server:",
                )])
                .example(&[
                    "manifest             the signed list of versions, sizes and digests",
                    "store/<sha256>       every published image, read-only",
                    "index/<sha256>       its chunk index, for delta updates (not with --no-index)",
                ])
                .section("ENVIRONMENT")
                .item([bold("TAKO_SECRET_KEY")], [roman(
                    "The secret key, when neither --key nor --key-file is given.",
                )])
                .done(),
        },
        "tako-index" => Prose {
            description: Doc::new()
                .para([roman(
                    "Hashes every image in the server directory's store/ and writes its chunk \
                     index to index/<sha256> if it has none (or an invalid one, such as a \
                     version-1 index of an older tako), so that hosts can download only the \
                     parts of new images they lack. Needs no key: an \
                     image whose bytes do not match its name is reported and not indexed, \
                     and the exit status is then 1. Runs under the lock tako store takes.",
                )])
                .done(),
            sections: Roff::new(),
        },
        "tako-gen-key" => Prose {
            description: Doc::new()
                .para([roman(
                    "The output is five lines: a heading, the secret key (SECRET+ and 128 \
                     base64 characters), a blank line, a heading and the public key (44 base64 \
                     characters). Keep the secret key in an encrypted secret store; put the \
                     public key into every client's PublicKey=.",
                )])
                .done(),
            sections: Roff::new(),
        },
        "tako-image" => Prose {
            description: Doc::new()
                .para([roman(
                    "Container images from any registry, as plain directory trees for \
                     systemd-nspawn -D, RootDirectory= or portable services, with no container \
                     engine. Every manifest, config and layer is checked against its digest; \
                     layers are kept, compressed, in a blob cache shared by every pull. \
                     Registries sign nothing tako checks: pin IMAGE@sha256:... to pull exactly \
                     the image meant.",
                )])
                .done(),
            sections: Roff::new(),
        },
        "tako-image-pull" => Prose {
            description: Doc::new()
                .para([roman(
                    "Resolves IMAGE to one image manifest (for a multi-platform image, the \
                     entry for this host or --platform; never the first entry silently), \
                     fetches its config and downloads its layers into the cache, several at \
                     once, each checked for its size and SHA-256, resuming a download that was \
                     cut off. Each layer is unpacked as soon as it and every layer before it \
                     are verified, into a new tree beside DIR, without ever following a \
                     symbolic link the image planted, and its uncompressed digest is checked \
                     against the config. Only the complete tree is moved into place: by a \
                     rename if DIR is absent or empty, or with --force by swapping it with \
                     the old tree (renameat2 RENAME_EXCHANGE), which is then removed. A \
                     failed or interrupted pull leaves DIR as it was.",
                )])
                .para([roman("It prints what it pulled, for example")])
                .example(&[
                    "/var/lib/machines/debian: pulled docker.io/library/debian:12",
                    "  index sha256:4f2d... (linux/amd64, linux/arm64/v8)",
                    "  manifest sha256:a1b4... for linux/amd64",
                    "  1 layer: 1 downloaded (47.6 MiB), 0 from the cache (0 bytes); 116.5 MiB unpacked in 6712 entries",
                    "  not signature-checked: only the registry says what the tag names; ...",
                ])
                .para([roman(
                    "Not as root, files belong to the caller, setuid and setgid bits are \
                     dropped, and the image's owners are kept in the user.rootlesscontainers \
                     extended attribute. Device nodes are never created.",
                )])
                .done(),
            sections: Doc::new()
                .section("FILES")
                .example(&[
                    "PARENT/.NAME.tako-new      the tree being built (mode 0700)",
                    "PARENT/.NAME.tako-lock     one pull into PARENT/NAME at a time",
                    "CACHE/blobs/sha256/<hex>   verified layers and configs",
                    "CACHE/trees/<key>          which blobs each pulled tree uses",
                ])
                .para([roman(
                    "CACHE is --cache, else $TAKO_CACHE, else /var/cache/tako as root and \
                     $XDG_CACHE_HOME/tako (~/.cache/tako) otherwise.",
                )])
                .section("EXAMPLES")
                .example(&[
                    "tako image pull debian:12 /var/lib/machines/debian",
                    "systemd-nspawn -D /var/lib/machines/debian",
                    "tako image pull --force --platform linux/arm64 ghcr.io/acme/app@sha256:... /srv/app",
                ])
                .done(),
        },
        "tako-image-digest" => Prose {
            description: Doc::new()
                .para([roman(
                    "Prints one line, sha256: and 64 hexadecimal digits: the digest of the \
                     index IMAGE names (or of its single manifest), or with --platform the \
                     digest of that platform's manifest. Downloads no layer and writes \
                     nothing. Run it again later to see whether a tag moved, or use the digest \
                     to pin IMAGE@sha256:....",
                )])
                .done(),
            sections: Roff::new(),
        },
        "tako-image-purge" => Prose {
            description: Doc::new()
                .para([roman(
                    "Every pull records in the cache which blobs its tree was built from; a \
                     later pull into the same directory replaces the record, and a tree that \
                     is gone no longer holds its blobs. Purge removes the blobs no remaining \
                     tree uses, partial downloads and leftover temporaries, and prints each \
                     removal and the bytes freed. It waits for the pulls using the cache to \
                     finish; pulls wait for it.",
                )])
                .done(),
            sections: Roff::new(),
        },
        "tako-generate" => Prose {
            description: Doc::new()
                .para([roman(
                    "For packagers: the man pages and completion scripts are made from the \
                     same definition that parses tako's command line, so they always match \
                     the binary that printed them. The install step runs:",
                )])
                .example(&[
                    "tako generate man --dir share/man/man1",
                    "tako generate completion bash > share/bash-completion/completions/tako",
                    "tako generate completion zsh > share/zsh/site-functions/_tako",
                    "tako generate completion fish > share/fish/vendor_completions.d/tako.fish",
                ])
                .done(),
            sections: Roff::new(),
        },
        _ => Prose {
            description: Roff::new(),
            sections: Roff::new(),
        },
    }
}

/// SEE ALSO: the top page lists every command's page; a command's page lists the top page
/// and its parent's, so a reader can always climb back up.
fn see_also(cmd: &clap::Command, parent: Option<&str>) -> Roff {
    let mut refs: Vec<String> = Vec::new();
    if parent.is_none() {
        let mut stack: Vec<&clap::Command> = cmd.get_subcommands().collect();
        stack.reverse();
        while let Some(sub) = stack.pop() {
            if sub.is_hide_set() {
                continue;
            }
            refs.push(format!("{}(1)", page_name(sub)));
            let mut children: Vec<&clap::Command> = sub.get_subcommands().collect();
            children.reverse();
            stack.extend(children);
        }
        refs.extend([
            "systemd.service(5)".to_owned(),
            "systemd.timer(5)".to_owned(),
        ]);
    } else {
        refs.push("tako(1)".to_owned());
        if let Some(parent) = parent.filter(|&parent| parent != "tako") {
            refs.push(format!("{parent}(1)"));
        }
    }
    let mut text = Vec::new();
    for (i, reference) in refs.iter().enumerate() {
        if i > 0 {
            text.push(roman(", "));
        }
        let (page, section) = reference.split_once('(').unwrap_or((reference, ""));
        text.push(bold(page));
        text.push(roman(format!("({section}")));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text(text);
    roff
}
