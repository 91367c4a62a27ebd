//! Issue 23 items G and 1: the files and programs that hold credentials are touched only
//! when a run goes online and only as far as it needs them. `fetch --init` with an image in
//! place starts the service whatever state they are in; a credential helper runs only when
//! a registry asks, and never longer than its time limit; an optional file that cannot be
//! read is a warning naming it, once per run; a file the config or the environment names
//! must be there; refused credentials are traced to the file they came from.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;

/// Where tako asks a registry for the signed manifest's artifact.
const MANIFEST_PATH: &str = "/v2/app/manifests/tako-manifest";

/// A 401 with a Basic challenge, as a registry that wants credentials answers.
fn wants_credentials() -> Fault {
    Fault::StatusWith {
        status: 401,
        headers: vec!["WWW-Authenticate: Basic realm=\"registry\"".to_owned()],
    }
}

/// A `docker-credential-NAME` program in `dir` running `body`, and a home directory whose
/// `~/.docker/config.json` names it as the credential store of every registry.
fn helper_home(world: &World, name: &str, body: &str) -> (PathBuf, PathBuf) {
    let bin = world.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join(format!("docker-credential-{name}"));
    fs::write(&helper, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let home = world.path("home");
    fs::create_dir_all(home.join(".docker")).unwrap();
    fs::write(
        home.join(".docker/config.json"),
        format!("{{\"credsStore\": \"{name}\"}}"),
    )
    .unwrap();
    (bin, home)
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A world with version 1.0 installed from its `file://` origin.
fn installed() -> World {
    let world = World::new();
    let digest = world.publish("1.0");
    let config = world.config("first.tako", &world.file_url(), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    world.assert_latest(&digest, &World::content("1.0"));
    world
}

#[test]
fn fetch_init_with_an_intact_image_reads_no_netrc_and_no_header_file() {
    let world = installed();
    let server = Server::serve_dir(world.origin());
    // A header file that is gone and a netrc the environment names that is gone: both
    // errors for a run that goes online, nothing at all for one that does not.
    let config = world.config(
        "app.tako",
        &server.url(),
        "*",
        &format!("HeaderFile={}\n", world.path("gone.headers").display()),
    );

    let o = Fetch::new()
        .env("NETRC", world.path("gone.netrc"))
        .run(&["--init"], &[&config]);

    assert_exit(&o, 0);
    assert!(stdout(&o).contains("present (1.0)"), "{}", stdout(&o));
    assert_eq!(server.requests(), Vec::<String>::new());

    // Online, the header file is read and its absence is an error naming it.
    let o = Fetch::new()
        .env("NETRC", world.path("gone.netrc"))
        .run(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("gone.netrc"), "{}", stderr(&o));
}

#[test]
fn fetch_init_with_an_intact_image_runs_no_credential_helper() {
    let world = installed();
    let registry = Server::serve_dir(world.path("empty"));
    registry.set_fault(MANIFEST_PATH, wants_credentials());
    let ran = world.path("helper-ran");
    let (bin, home) = helper_home(
        &world,
        "marker",
        &format!("touch '{}'\nexit 1", ran.display()),
    );
    let origin = format!("oci+http://127.0.0.1:{}/app", registry_port(&registry));
    let config = world.config("app.tako", &origin, "*", "");

    let o = Fetch::new()
        .env("HOME", &home)
        .env("PATH", path_with(&bin))
        .run(&["--init"], &[&config]);

    assert_exit(&o, 0);
    assert!(stdout(&o).contains("present (1.0)"), "{}", stdout(&o));
    assert!(!ran.exists(), "the credential helper ran for --init");
}

/// The port of a loopback server, from its URL.
fn registry_port(server: &Server) -> u16 {
    let url = server.url();
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    port.parse().unwrap()
}

#[test]
fn a_credential_helper_runs_only_when_the_registry_asks_for_credentials() {
    let world = World::new();
    // An anonymous registry that has no such repository: it never asks.
    let registry = Server::serve_dir(world.path("empty"));
    let ran = world.path("helper-ran");
    let (bin, home) = helper_home(
        &world,
        "marker",
        &format!("touch '{}'\nexit 1", ran.display()),
    );
    let origin = format!("oci+http://127.0.0.1:{}/app", registry_port(&registry));
    let config = world.config("app.tako", &origin, "*", "");

    let o = Fetch::new()
        .env("HOME", &home)
        .env("PATH", path_with(&bin))
        .run(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    assert!(
        !ran.exists(),
        "the helper ran though the registry never asked"
    );

    // Once the registry asks, the helper is asked.
    registry.set_fault(MANIFEST_PATH, wants_credentials());
    let o = Fetch::new()
        .env("HOME", &home)
        .env("PATH", path_with(&bin))
        .run(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    assert!(ran.exists(), "the helper was not asked: {}", stderr(&o));
}

#[test]
fn a_credential_helper_that_hangs_is_stopped_at_the_time_limit_and_named() {
    let world = World::new();
    let registry = Server::serve_dir(world.path("empty"));
    registry.set_fault(MANIFEST_PATH, wants_credentials());
    let (bin, home) = helper_home(&world, "hangs", "exec sleep 600");
    let origin = format!("oci+http://127.0.0.1:{}/app", registry_port(&registry));
    let config = world.config("app.tako", &origin, "*", "");

    let started = Instant::now();
    let o = Fetch::new()
        .env("HOME", &home)
        .env("PATH", path_with(&bin))
        .run(&["--retries", "0", "--max-time", "3"], &[&config]);

    assert_exit(&o, 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let err = stderr(&o);
    assert!(
        err.contains("credential helper docker-credential-hangs")
            && err.contains("did not answer within"),
        "{err}"
    );
}

#[test]
fn an_unreadable_optional_netrc_is_one_warning_naming_it_not_an_error() {
    let world = World::new();
    let digest = world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    // A HOME that is a file: ~/.netrc cannot be read (ENOTDIR), even by root.
    let home = world.path("home-is-a-file");
    fs::write(&home, "").unwrap();
    let first = world.config("first.tako", &server.url(), "*", "");
    let second = world.config("second.tako", &server.url(), "*", "");

    let o = Fetch::new().env("HOME", &home).run(&[], &[&first, &second]);

    assert_exit(&o, 0);
    world.assert_latest(&digest, &World::content("1.0"));
    let warning = format!(
        "tako: warning: cannot read the netrc file {}/.netrc",
        home.display()
    );
    let err = stderr(&o);
    assert_eq!(err.matches(&warning).count(), 1, "{err}");
}

#[test]
fn an_unreadable_optional_auth_file_is_a_warning_and_the_error_names_the_files_looked_in() {
    let world = World::new();
    let registry = Server::serve_dir(world.path("empty"));
    registry.set_fault(MANIFEST_PATH, wants_credentials());
    let home = world.path("home-is-a-file");
    fs::write(&home, "").unwrap();
    let origin = format!("oci+http://127.0.0.1:{}/app", registry_port(&registry));
    let config = world.config("app.tako", &origin, "*", "");

    let o = Fetch::new()
        .env("HOME", &home)
        .run(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    let auth_file = format!("{}/.docker/config.json", home.display());
    assert!(
        err.contains(&format!(
            "tako: warning: cannot read the registry auth file {auth_file}"
        )),
        "{err}"
    );
    assert!(
        err.contains("wants credentials for app (manifest")
            && err.contains(&format!("none found in {auth_file}")),
        "{err}"
    );
}

#[test]
fn a_registry_auth_file_named_by_the_environment_must_exist_and_is_named() {
    let world = World::new();
    let registry = Server::serve_dir(world.path("empty"));
    registry.set_fault(MANIFEST_PATH, wants_credentials());
    let typo = world.path("auth.jsno");
    let origin = format!("oci+http://127.0.0.1:{}/app", registry_port(&registry));
    let config = world.config("app.tako", &origin, "*", "");

    let o = Fetch::new()
        .env("REGISTRY_AUTH_FILE", &typo)
        .run(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot read registry auth file {} (named by REGISTRY_AUTH_FILE)",
            typo.display()
        )),
        "{err}"
    );
}

#[test]
fn refused_credentials_are_traced_to_the_file_they_came_from() {
    let world = World::new();
    world.publish("1.0");
    // A web origin that refuses the netrc login.
    let server = Server::serve_dir(world.origin());
    server.set_fault("/manifest", Fault::Status(401));
    let netrc = world.path("netrc");
    fs::write(&netrc, "machine 127.0.0.1 login u password wrong\n").unwrap();
    let config = world.config("web.tako", &server.url(), "*", "");
    let o = Fetch::new()
        .env("NETRC", &netrc)
        .run(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("HTTP 401")
            && err.contains(&format!(
                "the credentials sent came from the netrc file {}",
                netrc.display()
            )),
        "{err}"
    );

    // A registry that refuses the login of an auth file.
    let registry = Server::serve_dir(world.path("empty"));
    registry.set_fault(MANIFEST_PATH, wants_credentials());
    let port = registry_port(&registry);
    let auth = world.path("auth.json");
    // base64("u:p")
    fs::write(
        &auth,
        format!("{{\"auths\": {{\"127.0.0.1:{port}\": {{\"auth\": \"dTpw\"}}}}}}"),
    )
    .unwrap();
    let origin = format!("oci+http://127.0.0.1:{port}/app");
    let config = world.config("registry.tako", &origin, "*", "");
    let o = Fetch::new()
        .env("REGISTRY_AUTH_FILE", &auth)
        .run(&["--retries", "0"], &[&config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("refused the credentials for app")
            && err.contains(&format!(
                "they came from the registry auth file {}",
                auth.display()
            )),
        "{err}"
    );
}
