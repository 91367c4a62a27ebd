//! `WWW-Authenticate` challenges and registry auth files never panic the parsers, and a
//! challenge survives being written back with every value quoted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::registry_auth::AuthFile;

/// The credentials an auth file's `auths` entries give `registry` and `repository`; never
/// runs a credential helper.
fn auth_file(
    bytes: &[u8],
    registry: &str,
    repository: &str,
) -> Result<Option<(String, String)>, String> {
    let file = AuthFile::parse(bytes).map_err(|e| e.to_string())?;
    let found = file
        .credentials(registry, repository)
        .map_err(|_| format!("a bad entry for {registry}"))?;
    Ok(found.map(|c| (c.username, c.password)))
}
use tako_fuzz::format::registry_auth::{Challenge, parse_challenge};

fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fuzz_target!(|data: &[u8]| {
    // The first line names `registry/repository`, the rest is the auth file.
    if let Some(i) = data.iter().position(|&b| b == b'\n')
        && let Ok(name) = std::str::from_utf8(&data[..i])
    {
        let (registry, repository) = name.split_once('/').unwrap_or((name, "app"));
        drop(auth_file(&data[i + 1..], registry, repository));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(Challenge::Bearer {
        realm,
        service,
        scope,
    }) = parse_challenge(text)
    {
        let mut written = format!("Bearer realm={}", quoted(&realm));
        if let Some(service) = &service {
            written += &format!(",service={}", quoted(service));
        }
        if let Some(scope) = &scope {
            written += &format!(", scope={}", quoted(scope));
        }
        assert_eq!(
            parse_challenge(&written),
            Some(Challenge::Bearer {
                realm,
                service,
                scope
            })
        );
    }
});
