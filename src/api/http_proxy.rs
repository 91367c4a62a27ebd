//! `tako container-image-proxy`: one image served over HTTP/1.1 on one connection (the
//! socket a client program handed over, or standard input and output).
//!
//! - `GET /manifest`: the image manifest for the platform (chosen as `tako image pull`
//!   chooses it), converted to OCI if the registry serves a Docker one; the digest of the
//!   manifest as the registry serves it in `Manifest-Digest`.
//! - `GET /blobs/<digest>`: the config or a layer the manifest names, as stored. A layer
//!   streams from the registry, hashed on the way: the response's `Content-Length` is the
//!   size the manifest names, and its last byte is written only once every byte before it
//!   matched the digest. On a mismatch (other bytes, too few, too many) or a failure of
//!   the registry mid-stream the connection is closed before that byte, so a client that
//!   checks it received `Content-Length` bytes never takes a bad blob for a good one.
//! - `POST /quit`: answered, then the server ends.
//!
//! The image is resolved, and its config fetched and checked, before the first request is
//! read: a reference that does not resolve ends the process with the error before it
//! serves anything. Anything else is 404 (an unknown path or blob) or 405 (another
//! method); a request that does not parse is answered 400 and the connection closed.

use std::io::{BufRead, BufReader, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::container::policy::{self, Applied};
use crate::container::pull::{self, PullError, Report};
use crate::container::resolve::{self, Source, WantedPlatform};
use crate::format::http_request::{self, MAX_HEAD, RequestError, RequestHead};
use crate::format::oci::config::{ImageConfig, MAX_CONFIG_SIZE};
use crate::format::oci::digest::Digest;
use crate::format::oci::manifest::{self, Descriptor, ManifestError, ParsedManifest};
use crate::format::oci::media;
use crate::format::text::untrusted;
use crate::origin::{Origin, OriginError};
use crate::update::retry::{RetryPolicy, describe_wait};

/// The largest request body read (and thrown away): the API's requests carry none.
const MAX_BODY: u64 = 64 * 1024;
/// The buffer a blob is streamed through.
const BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error("{image}: manifest {digest} cannot be converted to OCI: {source}")]
    Convert {
        image: String,
        digest: Digest,
        #[source]
        source: Box<ManifestError>,
    },
    #[error(
        "{image}: the config {digest} is {size} bytes, more than the {MAX_CONFIG_SIZE} allowed"
    )]
    ConfigTooLarge {
        image: String,
        digest: Digest,
        size: u64,
    },
    #[error("the connection to the client failed: {0}")]
    Client(#[source] std::io::Error),
    #[error("the client sent a bad request, answered 400 and the connection closed: {0}")]
    Request(#[source] RequestError),
    #[error(
        "{image}: blob {digest}: {reason}; the connection was closed before the blob's last byte"
    )]
    Blob {
        image: String,
        digest: Digest,
        reason: String,
    },
}

/// The image as the API serves it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The image, as printed.
    pub image: String,
    /// The manifest, converted to OCI.
    pub manifest: Vec<u8>,
    /// The digest of the manifest as the registry serves it.
    pub digest: Digest,
    pub config: Descriptor,
    /// The config's bytes, checked against its digest.
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
}

/// Resolves `source` to the manifest for `wanted` (checked as `tako image pull` checks
/// it), checks its signatures against `policy` (see `container::policy::verify`), and
/// fetches its config.
pub fn resolve(
    source: &Source,
    wanted: &WantedPlatform,
    policy: Option<&mut Applied>,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Served, ProxyError> {
    let top = resolve::top(source, retry, report)?;
    let (index, fetched) = match &top.parsed {
        ParsedManifest::Image { .. } => (None, top),
        ParsedManifest::Index { .. } => {
            // The resolution keeps the parsed manifest, not its bytes: they are fetched
            // again by digest (and checked against it) to be converted.
            let index = top.digest;
            let chosen = resolve::choose(source, top, wanted, retry, report)?;
            let fetched = source.fetch(&chosen.digest.to_string(), None, retry, report)?;
            (Some(index), fetched)
        }
    };
    if let Some(applied) = policy {
        policy::verify(
            applied,
            &source.image,
            source,
            &pull::candidates(index, fetched.digest),
            retry,
            report,
        )?;
    }
    let ParsedManifest::Image {
        manifest: parsed, ..
    } = &fetched.parsed
    else {
        // `choose` ends on an image manifest; the one fetched by its digest is the same.
        return Err(PullError::TooDeep {
            image: source.shown.clone(),
            max: resolve::MAX_INDEX_DEPTH,
        }
        .into());
    };
    let config = parsed.config.clone();
    if config.size > MAX_CONFIG_SIZE {
        return Err(ProxyError::ConfigTooLarge {
            image: source.shown.clone(),
            digest: config.digest,
            size: config.size,
        });
    }
    let config_bytes = source.retrying(retry, report, |client| {
        client.read_blob(&config.digest.to_string(), config.size)
    })?;
    if config_bytes.len() as u64 != config.size {
        return Err(PullError::Size {
            image: source.shown.clone(),
            what: "config",
            digest: config.digest,
            expected: config.size,
            actual: config_bytes.len() as u64,
        }
        .into());
    }
    let image_config = ImageConfig::parse(&config_bytes).map_err(|e| PullError::Config {
        image: source.shown.clone(),
        digest: config.digest,
        source: Box::new(e),
    })?;
    resolve::check_platform(source, &image_config, wanted)?;
    let oci = manifest::to_oci(&fetched.bytes).map_err(|e| ProxyError::Convert {
        image: source.shown.clone(),
        digest: fetched.digest,
        source: Box::new(e),
    })?;
    Ok(Served {
        image: source.shown.clone(),
        manifest: oci,
        digest: fetched.digest,
        layers: parsed.layers.clone(),
        config,
        config_bytes,
    })
}

/// Where layer blobs come from.
pub trait Blobs {
    /// Opens the blob `blob` names; the caller checks what it reads. The error is the
    /// message the client is answered with.
    fn open(&self, blob: &Descriptor) -> Result<Box<dyn Read + '_>, String>;
}

/// The registry as [`Blobs`]: through the transport `tako image pull` downloads layers
/// with (idle and speed timeouts, `--max-time`), a transient failure to open tried again.
pub struct RegistryBlobs<'a> {
    pub source: &'a Source,
    pub retry: RetryPolicy,
    pub report: &'a dyn Report,
}

impl Blobs for RegistryBlobs<'_> {
    fn open(&self, blob: &Descriptor) -> Result<Box<dyn Read + '_>, String> {
        let hex = blob.digest.hex();
        let mut round = 0;
        loop {
            match self.source.registry().open_image(&hex, None) {
                Ok(body) => return Ok(Box::new(body)),
                Err(e) if e.is_transient() && round < self.retry.retries => {
                    let wait = self.retry.delay(round, e.retry_after());
                    self.report.warn(&format!(
                        "{}: blob {}: {e}; retrying in {} (retry {} of {})",
                        self.source.shown,
                        blob.digest,
                        describe_wait(wait),
                        round + 1,
                        self.retry.retries
                    ));
                    std::thread::sleep(wait);
                    round += 1;
                }
                Err(e) => return Err(describe(&self.source.shown, blob, &e)),
            }
        }
    }
}

fn describe(image: &str, blob: &Descriptor, e: &OriginError) -> String {
    format!("{image}: blob {}: {e}", blob.digest)
}

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Manifest,
    Blob(Digest),
    Quit,
    NotFound,
    /// The path exists for another method, which `Allow` names.
    NotAllowed(&'static str),
}

fn route(method: &str, target: &str) -> Route {
    let (path_method, want) = match target {
        "/manifest" => ("GET", Route::Manifest),
        "/quit" => ("POST", Route::Quit),
        other => match other.strip_prefix("/blobs/").map(Digest::parse) {
            Some(Ok(digest)) => ("GET", Route::Blob(digest)),
            _ => return Route::NotFound,
        },
    };
    if method == path_method {
        want
    } else {
        Route::NotAllowed(path_method)
    }
}

/// Reads one request head: `None` when the client closed the connection between requests.
fn read_head(input: &mut impl BufRead) -> Result<Option<Vec<u8>>, ProxyError> {
    let mut head = Vec::new();
    loop {
        let buf = input.fill_buf().map_err(ProxyError::Client)?;
        if buf.is_empty() {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(ProxyError::Client(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the client closed the connection in the middle of a request",
            )));
        }
        // Where the blank line may start: it can straddle what was read before.
        let from = head.len().saturating_sub(3);
        let before = head.len();
        head.extend_from_slice(buf);
        let taken = match head
            .get(from..)
            .and_then(http_request::head_end)
            .map(|end| end + from)
        {
            Some(end) => {
                head.truncate(end);
                end - before
            }
            None => buf.len(),
        };
        input.consume(taken);
        if head.len() > MAX_HEAD || head_end_at(&head).is_some() {
            return Ok(Some(head));
        }
    }
}

fn head_end_at(head: &[u8]) -> Option<usize> {
    head.ends_with(b"\r\n\r\n").then_some(head.len())
}

/// Writes a response head, and `body` after it.
fn respond(
    output: &mut impl Write,
    status: &str,
    fields: &[(&str, String)],
    body: &[u8],
) -> Result<(), ProxyError> {
    let mut text = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in fields {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    output
        .write_all(text.as_bytes())
        .and_then(|()| output.write_all(body))
        .and_then(|()| output.flush())
        .map_err(ProxyError::Client)
}

fn plain(message: &str) -> (Vec<(&'static str, String)>, Vec<u8>) {
    (
        vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
        format!("{message}\n").into_bytes(),
    )
}

/// Serves `image` to the client on `input`/`output` until it asks to quit or closes the
/// connection.
pub fn serve(
    input: impl Read,
    mut output: impl Write,
    image: &Served,
    blobs: &dyn Blobs,
) -> Result<(), ProxyError> {
    let mut input = BufReader::new(input);
    loop {
        let Some(head) = read_head(&mut input)? else {
            return Ok(());
        };
        let request = match http_request::parse_head(&head).and_then(|h| {
            let length = h.body_length()?;
            Ok((h, length))
        }) {
            Ok(parsed) => parsed,
            Err(e) => {
                let (mut fields, body) = plain(&e.to_string());
                fields.push(("Connection", "close".to_owned()));
                respond(&mut output, "400 Bad Request", &fields, &body)?;
                return Err(ProxyError::Request(e));
            }
        };
        let (head, length) = request;
        if length > MAX_BODY {
            let (mut fields, body) = plain("the request body is too large");
            fields.push(("Connection", "close".to_owned()));
            return respond(&mut output, "413 Content Too Large", &fields, &body);
        }
        // The API reads no body; one sent is skipped so the next request starts right.
        let skipped = std::io::copy(&mut (&mut input).take(length), &mut std::io::sink())
            .map_err(ProxyError::Client)?;
        if skipped < length {
            return Ok(());
        }
        match answer(&head, &mut output, image, blobs)? {
            Next::Quit => return Ok(()),
            Next::Continue if head.keep_alive() => {}
            Next::Continue => return Ok(()),
        }
    }
}

enum Next {
    Continue,
    Quit,
}

fn answer(
    head: &RequestHead,
    output: &mut impl Write,
    image: &Served,
    blobs: &dyn Blobs,
) -> Result<Next, ProxyError> {
    let close = if head.keep_alive() {
        Vec::new()
    } else {
        vec![("Connection", "close".to_owned())]
    };
    match route(&head.method, &head.target) {
        Route::Manifest => {
            let mut fields = vec![
                ("Content-Type", media::OCI_MANIFEST.to_owned()),
                ("Manifest-Digest", image.digest.to_string()),
            ];
            fields.extend(close);
            respond(output, "200 OK", &fields, &image.manifest)?;
        }
        Route::Quit => {
            let (mut fields, body) = plain("bye");
            fields.push(("Connection", "close".to_owned()));
            respond(output, "200 OK", &fields, &body)?;
            return Ok(Next::Quit);
        }
        Route::NotFound => {
            let (mut fields, body) =
                plain(&format!("no such resource: {}", untrusted(&head.target)));
            fields.extend(close);
            respond(output, "404 Not Found", &fields, &body)?;
        }
        Route::NotAllowed(allow) => {
            let (mut fields, body) =
                plain(&format!("{} takes only {allow}", untrusted(&head.target)));
            fields.push(("Allow", allow.to_owned()));
            fields.extend(close);
            respond(output, "405 Method Not Allowed", &fields, &body)?;
        }
        Route::Blob(digest) if digest == image.config.digest => {
            let mut fields = vec![("Content-Type", "application/octet-stream".to_owned())];
            fields.extend(close);
            respond(output, "200 OK", &fields, &image.config_bytes)?;
        }
        Route::Blob(digest) => {
            let Some(layer) = image.layers.iter().find(|l| l.digest == digest) else {
                let (mut fields, body) = plain(&format!("the manifest names no blob {digest}"));
                fields.extend(close);
                respond(output, "404 Not Found", &fields, &body)?;
                return Ok(Next::Continue);
            };
            match blobs.open(layer) {
                Err(message) => {
                    let (mut fields, body) = plain(&message);
                    fields.extend(close);
                    respond(output, "502 Bad Gateway", &fields, &body)?;
                }
                Ok(reader) => stream_blob(output, &image.image, layer, reader, &close)?,
            }
        }
    }
    Ok(Next::Continue)
}

/// Streams a blob, holding its last byte back until every byte matched (see the module's
/// documentation).
fn stream_blob(
    output: &mut impl Write,
    image: &str,
    blob: &Descriptor,
    reader: Box<dyn Read + '_>,
    close: &[(&'static str, String)],
) -> Result<(), ProxyError> {
    let cut = |reason: String| ProxyError::Blob {
        image: image.to_owned(),
        digest: blob.digest,
        reason,
    };
    // One byte more than the manifest names is read, to notice a blob that is too long.
    let mut reader = reader.take(blob.size.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0; BUFFER];
    let mut received: u64 = 0;
    let mut held: Option<u8> = None;
    let mut started = false;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(cut(format!("reading it from the registry failed: {e}"))),
        };
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        received = received.saturating_add(n as u64);
        if received > blob.size {
            return Err(cut(format!(
                "the registry sent more than the {} bytes the manifest names",
                blob.size
            )));
        }
        hasher.update(chunk);
        if !started {
            let mut fields = vec![("Content-Type", "application/octet-stream".to_owned())];
            fields.extend(close.iter().cloned());
            write_head(output, blob.size, &fields)?;
            started = true;
        }
        let Some((last, rest)) = chunk.split_last() else {
            continue;
        };
        if let Some(byte) = held {
            output.write_all(&[byte]).map_err(ProxyError::Client)?;
        }
        output.write_all(rest).map_err(ProxyError::Client)?;
        held = Some(*last);
    }
    if received < blob.size {
        return Err(cut(format!(
            "the registry sent {received} bytes, not the {} the manifest names",
            blob.size
        )));
    }
    let got = Digest::from(<[u8; 32]>::from(hasher.finalize()));
    if got != blob.digest {
        return Err(cut(format!(
            "the registry sent content whose digest is {got}"
        )));
    }
    if !started {
        // An empty blob: nothing was held back, and nothing could be cut; it is answered
        // only now that it is known to match.
        write_head(output, 0, close)?;
    }
    if let Some(byte) = held {
        output.write_all(&[byte]).map_err(ProxyError::Client)?;
    }
    output.flush().map_err(ProxyError::Client)
}

fn write_head(
    output: &mut impl Write,
    length: u64,
    fields: &[(&'static str, String)],
) -> Result<(), ProxyError> {
    let mut text = "HTTP/1.1 200 OK\r\n".to_owned();
    for (name, value) in fields {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {length}\r\n\r\n"));
    output
        .write_all(text.as_bytes())
        .map_err(ProxyError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oci::manifest::tests::docker_manifest;

    fn descriptor(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media::OCI_LAYER_TAR_GZIP.to_owned(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// Serves layers from memory: the bytes a registry would send for each digest.
    struct Memory(Vec<(Digest, Vec<u8>)>);

    impl Blobs for Memory {
        fn open(&self, blob: &Descriptor) -> Result<Box<dyn Read + '_>, String> {
            self.0
                .iter()
                .find(|(d, _)| *d == blob.digest)
                .map(|(_, bytes)| Box::new(bytes.as_slice()) as Box<dyn Read>)
                .ok_or_else(|| "gone".to_owned())
        }
    }

    fn served(layers: &[&[u8]]) -> Served {
        let original = docker_manifest(1);
        Served {
            image: "r/app:1".to_owned(),
            manifest: manifest::to_oci(original.as_bytes()).unwrap(),
            digest: Digest::of(original.as_bytes()),
            config: descriptor(b"{}"),
            config_bytes: b"{}".to_vec(),
            layers: layers.iter().map(|l| descriptor(l)).collect(),
        }
    }

    fn exchange(
        requests: &str,
        image: &Served,
        blobs: &Memory,
    ) -> (String, Result<(), ProxyError>) {
        let mut output = Vec::new();
        let result = serve(requests.as_bytes(), &mut output, image, blobs);
        (String::from_utf8_lossy(&output).into_owned(), result)
    }

    #[test]
    fn paths_and_methods_route_as_the_api_says() {
        let d = Digest::of(b"x");
        assert_eq!(route("GET", "/manifest"), Route::Manifest);
        assert_eq!(route("GET", &format!("/blobs/{d}")), Route::Blob(d));
        assert_eq!(route("POST", "/quit"), Route::Quit);
        assert_eq!(route("POST", "/manifest"), Route::NotAllowed("GET"));
        assert_eq!(route("GET", "/quit"), Route::NotAllowed("POST"));
        assert_eq!(route("GET", "/blobs/sha256:zz"), Route::NotFound);
        assert_eq!(route("GET", "/manifest/"), Route::NotFound);
        assert_eq!(route("GET", "/"), Route::NotFound);
    }

    #[test]
    fn the_manifest_is_oci_with_the_original_digest_and_the_connection_stays_open() {
        let image = served(&[]);
        let (text, result) = exchange(
            "GET /manifest HTTP/1.1\r\n\r\nGET /nothing HTTP/1.1\r\n\r\nPOST /quit HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            &image,
            &Memory(Vec::new()),
        );
        result.unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains(&format!("Manifest-Digest: {}\r\n", image.digest)));
        assert!(text.contains(&format!("Content-Type: {}\r\n", media::OCI_MANIFEST)));
        assert!(text.contains(media::OCI_MANIFEST));
        assert!(text.contains("HTTP/1.1 404 Not Found"), "{text}");
        assert!(text.ends_with("bye\n"), "{text}");
    }

    #[test]
    fn a_blob_streams_whole_when_it_matches_and_loses_its_last_byte_when_not() {
        let good = b"layer bytes".as_slice();
        let image = served(&[good]);
        let digest = Digest::of(good);
        let get = format!("GET /blobs/{digest} HTTP/1.1\r\n\r\n");
        let (text, result) = exchange(&get, &image, &Memory(vec![(digest, good.to_vec())]));
        result.unwrap();
        assert!(
            text.contains("Content-Length: 11\r\n\r\nlayer bytes"),
            "{text}"
        );

        for lie in [&b"layer bytez"[..], b"layer byte", b"layer bytes!"] {
            let (text, result) = exchange(&get, &image, &Memory(vec![(digest, lie.to_vec())]));
            assert!(matches!(result, Err(ProxyError::Blob { .. })), "{lie:?}");
            let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
            assert!(body.len() < good.len(), "{lie:?}: {text}");
        }
    }

    #[test]
    fn the_config_unknown_blobs_and_bad_requests_are_answered() {
        let image = served(&[]);
        let get = format!(
            "GET /blobs/{} HTTP/1.1\r\n\r\nGET /blobs/{} HTTP/1.1\r\n\r\n",
            image.config.digest,
            Digest::of(b"other")
        );
        let (text, result) = exchange(&get, &image, &Memory(Vec::new()));
        result.unwrap();
        assert!(text.contains("Content-Length: 2\r\n\r\n{}"), "{text}");
        assert!(text.contains("404 Not Found"), "{text}");

        let (text, result) = exchange("GET /manifest\r\n\r\n", &image, &Memory(Vec::new()));
        assert!(text.starts_with("HTTP/1.1 400 Bad Request"), "{text}");
        assert!(matches!(result, Err(ProxyError::Request(_))));
        let (text, _) = exchange(
            "POST /quit HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            &image,
            &Memory(Vec::new()),
        );
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        let (text, _) = exchange("GET /quit HTTP/1.1\r\n\r\n", &image, &Memory(Vec::new()));
        assert!(text.contains("Allow: POST\r\n"), "{text}");
    }

    #[test]
    fn a_request_cut_short_or_too_long_ends_the_connection() {
        let image = served(&[]);
        let (_, result) = exchange("GET /manifest HTTP/1.1\r\n", &image, &Memory(Vec::new()));
        assert!(matches!(result, Err(ProxyError::Client(_))));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD + 10));
        let (text, result) = exchange(&long, &image, &Memory(Vec::new()));
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(matches!(
            result,
            Err(ProxyError::Request(RequestError::TooLong))
        ));
    }
}
