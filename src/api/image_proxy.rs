//! `tako experimental-image-proxy`: the server side of skopeo's image-proxy protocol
//! (version 0.2.8), for programs such as the `containers-image-proxy` crate that fork a
//! helper to stream manifests and blobs.
//!
//! One request at a time arrives on the socket (`image_proxy_socket`); the messages are
//! read and written by `format::oci::proxy`. An image is resolved when it is opened, as
//! `tako image pull` resolves it: the reference, the host's platform in an index, every
//! manifest checked against the digest that names it; `oci:` layouts and `tako:` configs
//! are read from disk by `local_image`, with the same platform choice. A payload goes to the client on a
//! pipe written by a thread of its own, so a client that reads several pipes at once is
//! served; `FinishPipe` waits for that thread and reports what went wrong, and for a
//! blob that includes a digest or size that does not match (checked while it streams).

use std::collections::BTreeMap;
use std::io::{ErrorKind, PipeWriter, Write};
use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::Value;

use super::image_proxy_socket::{Received, Socket, SocketError};
use super::local_image::{self, Local, LocalError};
use crate::container::policy::{self, PolicyChoice};
use crate::container::pull::{self, PullError, Report};
use crate::container::resolve::{self, Auth, Chosen, Source, WantedPlatform};
use crate::format::oci::digest::Digest;
use crate::format::oci::manifest::{self, MAX_MANIFEST_SIZE};
use crate::format::oci::media::ManifestKind;
use crate::format::oci::proxy::{
    ErrorCode, ImageId, LayerInfo, MAX_MESSAGE, PipeError, Reply, Request,
};
use crate::format::oci::reference::{ImageName, Reference, ReferenceError};
use crate::format::oci::registries_conf::Endpoint;
use crate::format::text::untrusted;
use crate::format::transport_config::TransportConfig;
use crate::origin::Origin;
use crate::origin::registry::RegistryTls;
use crate::stream::hashing::{CopyError, copy_and_hash};
use crate::update::retry::RetryPolicy;

/// The largest config served (as `tako image pull` reads it).
const MAX_CONFIG: u64 = MAX_MANIFEST_SIZE;

/// How the proxy reaches registries.
#[derive(Debug, Clone)]
pub struct Options {
    pub auth: Auth,
    /// `--tls-verify`: with false, a `docker://` registry's certificate is not checked, and
    /// one that does not answer TLS is spoken to over plain HTTP.
    pub tls_verify: bool,
    /// `--cert-dir`: CAs trusted beside the system's, and a client certificate.
    pub tls: RegistryTls,
    pub platform: WantedPlatform,
    pub limits: TransportConfig,
    pub retry: RetryPolicy,
    /// `--debug`: each request and the outcome, on standard error.
    pub debug: bool,
    /// The signature policy (policy.json) a `docker://` image must satisfy to be opened.
    pub policy: PolicyChoice,
}

/// A failure to report: its kind for the client, and a message safe to show.
#[derive(Debug, Clone)]
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn other(message: impl Into<String>) -> Failure {
        Failure {
            code: ErrorCode::Other,
            message: message.into(),
        }
    }

    fn of_pull(e: &PullError) -> Failure {
        let transient = match e {
            PullError::Registry { source, .. } => source.is_transient(),
            _ => false,
        };
        Failure {
            code: if transient {
                ErrorCode::Retryable
            } else {
                ErrorCode::Other
            },
            message: e.to_string(),
        }
    }
}

/// Where an open image's blobs come from.
enum Place {
    Registry(Box<Source>),
    /// An OCI layout directory or a tako destination.
    Local(Local),
}

impl Place {
    fn shown(&self) -> &str {
        match self {
            Place::Registry(source) => &source.shown,
            Place::Local(local) => &local.shown,
        }
    }
}

impl Failure {
    fn of_local(e: &LocalError) -> Failure {
        match e {
            LocalError::Pull(e) => Failure::of_pull(e),
            e => Failure::other(e.to_string()),
        }
    }
}

/// An image a client opened.
struct Open {
    source: Arc<Place>,
    chosen: Chosen,
    /// The config blob, once read.
    config: Option<Vec<u8>>,
}

type Writer = JoinHandle<Result<(), Failure>>;

struct Server<'a> {
    options: &'a Options,
    report: &'a dyn Report,
    initialized: bool,
    images: BTreeMap<ImageId, Open>,
    last_image: u64,
    pipes: BTreeMap<NonZeroU32, Writer>,
    last_pipe: u32,
}

/// What a request answers.
enum Answer {
    Reply(Reply),
    /// A reply whose payload is on a pipe, written by this thread.
    Piped(Value, std::io::PipeReader, Writer),
    /// `GetRawBlob`'s reply: the data and error pipes' read ends.
    Raw(Value, std::io::PipeReader, std::io::PipeReader),
    Shutdown,
}

/// Serves the client on `socket` until it sends `Shutdown` or closes its end.
pub fn serve(socket: &Socket, options: &Options, report: &dyn Report) -> Result<(), SocketError> {
    let mut server = Server {
        options,
        report,
        initialized: false,
        images: BTreeMap::new(),
        last_image: 0,
        pipes: BTreeMap::new(),
        last_pipe: 0,
    };
    loop {
        let packet = match socket.receive()? {
            Received::Closed => return Ok(()),
            Received::TooLarge(size) => {
                let reply = Reply::error(
                    ErrorCode::Other,
                    &format!(
                        "the request is {size} bytes, more than the {MAX_MESSAGE} a message holds"
                    ),
                );
                socket.send(&reply.encode(), &[])?;
                continue;
            }
            Received::Packet(packet) => packet,
        };
        let answer = match Request::parse(&packet) {
            Ok(request) => {
                if options.debug {
                    report.progress(&format!("request {}", request.method()));
                }
                server.answer(request)
            }
            Err(e) => Answer::Reply(Reply::error(ErrorCode::Other, &e.to_string())),
        };
        match answer {
            Answer::Reply(reply) => {
                if options.debug && !reply.success {
                    report.progress(&format!("failed: {}", reply.error));
                }
                socket.send(&reply.encode(), &[])?
            }
            Answer::Piped(value, reader, writer) => {
                let pipe = server.add_pipe(writer);
                socket.send(&Reply::piped(value, pipe).encode(), &[reader.as_fd()])?;
            }
            Answer::Raw(value, data, errors) => {
                socket.send(&Reply::ok(value).encode(), &[data.as_fd(), errors.as_fd()])?;
            }
            Answer::Shutdown => {
                // A client may close its end right after sending Shutdown without waiting
                // for the reply (the `containers-image-proxy` crate does): that is no
                // failure.
                let _ = socket.send(&Reply::ok(Value::Null).encode(), &[]);
                return Ok(());
            }
        }
    }
}

/// Writes `bytes` on a new pipe from a thread; the pipe's read end and the thread.
fn pipe_of(bytes: Vec<u8>) -> Result<(std::io::PipeReader, Writer), Failure> {
    let (reader, mut writer) = new_pipe()?;
    let thread = std::thread::spawn(move || writer.write_all(&bytes).map_err(write_failure));
    Ok((reader, thread))
}

fn new_pipe() -> Result<(std::io::PipeReader, PipeWriter), Failure> {
    std::io::pipe().map_err(|e| Failure::other(format!("cannot make a pipe: {e}")))
}

fn write_failure(e: std::io::Error) -> Failure {
    if e.kind() == ErrorKind::BrokenPipe {
        Failure {
            code: ErrorCode::Pipe,
            message: "the client closed the pipe before reading all of it".to_owned(),
        }
    } else {
        Failure::other(format!("cannot write to the pipe: {e}"))
    }
}

impl Server<'_> {
    fn add_pipe(&mut self, writer: Writer) -> NonZeroU32 {
        // Ids are never reused while pipes are open; 2^32 - 1 pipes in one run wraps.
        loop {
            self.last_pipe = self.last_pipe.wrapping_add(1);
            if let Some(id) = NonZeroU32::new(self.last_pipe)
                && !self.pipes.contains_key(&id)
            {
                self.pipes.insert(id, writer);
                return id;
            }
        }
    }

    fn answer(&mut self, request: Request) -> Answer {
        match request {
            Request::Initialize => {
                self.initialized = true;
                return Answer::Reply(Reply::initialized());
            }
            Request::Shutdown => return Answer::Shutdown,
            _ if !self.initialized => {
                return Answer::Reply(Reply::error(
                    ErrorCode::Other,
                    "client error: Initialize must come first",
                ));
            }
            _ => {}
        }
        let outcome = match request {
            Request::OpenImage { reference } => self.open(&reference, false),
            Request::OpenImageOptional { reference } => self.open(&reference, true),
            Request::CloseImage { image } => self
                .images
                .remove(&image)
                .map(|_| Answer::Reply(Reply::ok(Value::Null)))
                .ok_or_else(|| no_image(image)),
            Request::GetManifest { image } => self.manifest(image),
            Request::GetFullConfig { image } => self.config(image, true),
            Request::GetConfig { image } => self.config(image, false),
            Request::GetLayerInfo { image } => self
                .image(image)
                .map(|open| layers(open))
                .map(|list| Answer::Reply(Reply::ok(list))),
            Request::GetLayerInfoPiped { image } => self.image(image).and_then(|open| {
                let list = LayerInfo::list(&open.chosen.manifest);
                let (reader, writer) = pipe_of(LayerInfo::encode_list(&list))?;
                Ok(Answer::Piped(Value::Null, reader, writer))
            }),
            Request::GetBlob {
                image,
                digest,
                size,
            } => self.blob(image, digest, size),
            Request::GetRawBlob { image, digest } => self.raw_blob(image, digest),
            Request::FinishPipe { pipe } => self.finish(pipe),
            Request::Initialize | Request::Shutdown => Err(Failure::other("handled above")),
        };
        match outcome {
            Ok(answer) => answer,
            Err(failure) => Answer::Reply(Reply::error(failure.code, &failure.message)),
        }
    }

    fn image(&mut self, image: ImageId) -> Result<&mut Open, Failure> {
        self.images.get_mut(&image).ok_or_else(|| no_image(image))
    }

    fn open(&mut self, text: &str, optional: bool) -> Result<Answer, Failure> {
        let failed = |e: ReferenceError| Failure::other(e.to_string());
        let (place, chosen) = match ImageName::parse(text).map_err(failed)? {
            ImageName::Registry(reference) => match self.open_registry(reference, optional)? {
                Some((source, chosen)) => (Place::Registry(Box::new(source)), chosen),
                None => return Ok(Answer::Reply(Reply::opened(None))),
            },
            ImageName::Layout(layout) => {
                // policy.json's `oci` transport, as skopeo applies it to `oci:` images.
                let shown = untrusted(text);
                let applied = policy::check_layout(
                    &self.options.policy,
                    std::path::Path::new(&layout.path),
                    layout.tag.as_deref(),
                    &shown,
                )
                .map_err(|e| Failure::of_pull(&PullError::from(e)))?;
                if let Some(applied) = applied {
                    self.report
                        .progress(&format!("{shown}: policy: {}", applied.describe()));
                }
                let (local, chosen) = local_image::open_layout(&layout, &self.options.platform)
                    .map_err(|e| Failure::of_local(&e))?;
                (Place::Local(local), chosen)
            }
            ImageName::Tako(config) => {
                let (local, chosen) = local_image::open_tako(&config, &self.options.platform)
                    .map_err(|e| Failure::of_local(&e))?;
                (Place::Local(local), chosen)
            }
        };
        if !matches!(
            chosen.kind,
            ManifestKind::OciManifest | ManifestKind::DockerManifest
        ) {
            return Err(Failure::other(format!(
                "{}: the manifest is a {}, not an image manifest",
                place.shown(),
                chosen.kind.media_type()
            )));
        }
        self.last_image = self.last_image.saturating_add(1);
        let id = ImageId::new(self.last_image)
            .ok_or_else(|| Failure::other("too many images opened in one run"))?;
        self.images.insert(
            id,
            Open {
                source: Arc::new(place),
                chosen,
                config: None,
            },
        );
        Ok(Answer::Reply(Reply::opened(Some(id))))
    }

    /// Resolves an image in a registry; `None` if the registry has no such image and it is
    /// `optional`.
    fn open_registry(
        &self,
        reference: Reference,
        optional: bool,
    ) -> Result<Option<(Source, Chosen)>, Failure> {
        // The host's registries.conf applies as for `tako image pull`: mirrors and blocks.
        let mut endpoints = crate::container::registries::endpoints(&reference)
            .map_err(|e| Failure::of_pull(&PullError::from(e)))?;
        // And its policy.json, as for `tako image pull`: a refusal is the client's error,
        // before any request.
        let mut applied = policy::check(&self.options.policy, &reference)
            .map_err(|e| Failure::of_pull(&PullError::from(e)))?;
        if !self.options.tls_verify {
            // Every place the image may come from is insecure, as with skopeo.
            if endpoints.is_empty() {
                endpoints.push(Endpoint {
                    reference: reference.clone(),
                    insecure: true,
                    mirror: None,
                });
            }
            for endpoint in &mut endpoints {
                endpoint.insecure = true;
            }
        }
        let source = Source::connect_with(
            reference,
            endpoints,
            &self.options.auth,
            self.options.limits,
            None,
            &self.options.tls,
        )
        .map_err(|e| Failure::of_pull(&e))?;
        let resolved = resolve::top(&source, self.options.retry, self.report).and_then(|top| {
            resolve::choose(
                &source,
                top,
                &self.options.platform,
                self.options.retry,
                self.report,
            )
        });
        let resolved = resolved.and_then(|chosen| {
            if let Some(applied) = &mut applied {
                policy::verify(
                    applied,
                    &source.image,
                    &source,
                    &pull::candidates(chosen.index, chosen.digest),
                    self.options.retry,
                    self.report,
                )?;
                self.report
                    .progress(&format!("{}: policy: {}", source.shown, applied.describe()));
            }
            Ok(chosen)
        });
        match resolved {
            Ok(chosen) => Ok(Some((source, chosen))),
            Err(PullError::NotFound { .. }) if optional => Ok(None),
            Err(e) => Err(Failure::of_pull(&e)),
        }
    }

    fn manifest(&mut self, image: ImageId) -> Result<Answer, Failure> {
        let open = self.image(image)?;
        let chosen = &open.chosen;
        let bytes = match chosen.kind {
            ManifestKind::DockerManifest => manifest::to_oci(&chosen.bytes).map_err(|e| {
                Failure::other(format!(
                    "{}: cannot convert manifest {} to OCI: {e}",
                    open.source.shown(),
                    chosen.digest
                ))
            })?,
            _ => chosen.bytes.clone(),
        };
        let (reader, writer) = pipe_of(bytes)?;
        Ok(Answer::Piped(
            Value::from(chosen.digest.to_string()),
            reader,
            writer,
        ))
    }

    /// The config blob (checked against its digest), or only its `config` member.
    fn config(&mut self, image: ImageId, full: bool) -> Result<Answer, Failure> {
        let (retry, report) = (self.options.retry, self.report);
        let open = self.image(image)?;
        let bytes = match &open.config {
            Some(bytes) => bytes.clone(),
            None => {
                let descriptor = &open.chosen.manifest.config;
                if descriptor.size > MAX_CONFIG {
                    return Err(Failure::other(format!(
                        "{}: the config {} is {} bytes, more than the {MAX_CONFIG} tako reads",
                        open.source.shown(),
                        descriptor.digest,
                        descriptor.size
                    )));
                }
                let bytes = match &*open.source {
                    Place::Registry(source) => source
                        .retrying(retry, report, |client| {
                            client.read_blob(&descriptor.digest.to_string(), descriptor.size)
                        })
                        .map_err(|e| Failure::of_pull(&e))?,
                    // Checked against its digest and size as it is read.
                    Place::Local(local) => local
                        .read_blob("config", &descriptor.digest, descriptor.size, MAX_CONFIG)
                        .map_err(|e| Failure::of_local(&e))?,
                };
                if bytes.len() as u64 != descriptor.size {
                    return Err(Failure::other(format!(
                        "{}: the config {} is {} bytes, not the {} the manifest names",
                        open.source.shown(),
                        descriptor.digest,
                        bytes.len(),
                        descriptor.size
                    )));
                }
                open.config = Some(bytes.clone());
                bytes
            }
        };
        let payload = if full {
            bytes
        } else {
            let parsed: Value = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::other(format!(
                    "{}: the config is not JSON: {}",
                    open.source.shown(),
                    untrusted(&e.to_string())
                ))
            })?;
            let inner = parsed.get("config").cloned().unwrap_or(Value::Null);
            serde_json::to_vec(&inner).map_err(|e| Failure::other(e.to_string()))?
        };
        let (reader, writer) = pipe_of(payload)?;
        Ok(Answer::Piped(Value::Null, reader, writer))
    }

    /// The blob, checked against `digest` and `size` while it streams.
    fn blob(&mut self, image: ImageId, digest: Digest, size: u64) -> Result<Answer, Failure> {
        let open = self.image(image)?;
        let source = Arc::clone(&open.source);
        let (reader, mut writer) = new_pipe()?;
        let thread = streaming(source, digest, move |source, body| {
            let summary = copy_and_hash(body, Some(&mut writer), Some(size))
                .map_err(|e| copy_failure(source, &digest, e))?;
            check_blob(source, &digest, size, summary.size, summary.digest)
        })?;
        Ok(Answer::Piped(Reply::blob_size(Some(size)), reader, thread))
    }

    /// The blob with an error pipe beside it; checked as `GetBlob` checks (against the
    /// size the manifest gives, if it names the blob), the error written on that pipe.
    fn raw_blob(&mut self, image: ImageId, digest: Digest) -> Result<Answer, Failure> {
        let open = self.image(image)?;
        let source = Arc::clone(&open.source);
        let manifest = &open.chosen.manifest;
        let size = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .find(|d| d.digest == digest)
            .map(|d| d.size);
        let (data, mut data_writer) = new_pipe()?;
        let (errors, mut error_writer) = new_pipe()?;
        streaming(source, digest, move |source, body| {
            let outcome = copy_and_hash(body, Some(&mut data_writer), size)
                .map_err(|e| copy_failure(source, &digest, e))
                .and_then(|summary| match size {
                    Some(size) => check_blob(source, &digest, size, summary.size, summary.digest),
                    None if summary.digest == *digest.as_bytes() => Ok(()),
                    None => Err(mismatch(source, &digest)),
                });
            if let Err(failure) = &outcome {
                // The error goes out before the data pipe closes, so a client that reads
                // the data to its end then the error pipe sees it. Nobody is left to tell
                // if the client closed the error pipe.
                let _ = error_writer
                    .write_all(&PipeError::new(failure.code, &failure.message).encode());
            }
            drop(error_writer);
            drop(data_writer);
            outcome
        })?;
        Ok(Answer::Raw(Reply::blob_size(size), data, errors))
    }

    fn finish(&mut self, pipe: NonZeroU32) -> Result<Answer, Failure> {
        let writer = self
            .pipes
            .remove(&pipe)
            .ok_or_else(|| Failure::other(format!("FinishPipe: no pipe {pipe} is open")))?;
        match writer.join() {
            Ok(Ok(())) => Ok(Answer::Reply(Reply::ok(Value::Null))),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(Failure::other("the thread writing the pipe failed")),
        }
    }
}

fn no_image(image: ImageId) -> Failure {
    Failure::other(format!("no image {} is open", image.get()))
}

fn layers(open: &Open) -> Value {
    serde_json::to_value(LayerInfo::list(&open.chosen.manifest)).unwrap_or(Value::Null)
}

/// Opens the blob `digest` on a thread that then runs `copy` on it; a failure to open it
/// (not found, refused, unreachable) is returned here, for the request's own reply.
fn streaming(
    source: Arc<Place>,
    digest: Digest,
    copy: impl FnOnce(&Place, &mut dyn std::io::Read) -> Result<(), Failure> + Send + 'static,
) -> Result<Writer, Failure> {
    let (opened, outcome) = std::sync::mpsc::sync_channel::<Result<(), Failure>>(1);
    let thread = std::thread::spawn(move || {
        let opened_blob: Result<Box<dyn std::io::Read>, Failure> = match &*source {
            Place::Registry(registry) => registry
                .registry()
                .open_image(&digest.hex(), None)
                .map(|body| Box::new(body) as Box<dyn std::io::Read>)
                .map_err(|e| Failure {
                    code: if e.is_transient() {
                        ErrorCode::Retryable
                    } else {
                        ErrorCode::Other
                    },
                    message: format!("{}: blob {digest}: {e}", registry.shown),
                }),
            Place::Local(local) => local
                .open_blob(&digest)
                .map(|file| Box::new(file) as Box<dyn std::io::Read>)
                .map_err(|e| Failure::of_local(&e)),
        };
        let mut body = match opened_blob {
            Ok(body) => body,
            Err(failure) => {
                let _ = opened.send(Err(failure.clone()));
                return Err(failure);
            }
        };
        let _ = opened.send(Ok(()));
        copy(&source, &mut body)
    });
    match outcome.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::other("the thread opening the blob failed")),
    }
}

fn copy_failure(source: &Place, digest: &Digest, e: CopyError) -> Failure {
    match e {
        CopyError::Write(e) => write_failure(e),
        // A read that failed or timed out: the registry or the network, worth a retry.
        CopyError::Read(e) => Failure {
            code: ErrorCode::Retryable,
            message: format!("{}: blob {digest}: {e}", source.shown()),
        },
        CopyError::TooLong { limit } => Failure::other(format!(
            "{}: blob {digest} is longer than the {limit} bytes asked for",
            source.shown()
        )),
    }
}

fn mismatch(source: &Place, digest: &Digest) -> Failure {
    let who = match source {
        Place::Registry(_) => "the registry sent",
        Place::Local(_) => "the directory holds",
    };
    Failure::other(format!(
        "{}: {who} other bytes for blob {digest} (their digest differs)",
        source.shown()
    ))
}

fn check_blob(
    source: &Place,
    digest: &Digest,
    size: u64,
    got: u64,
    hash: [u8; 32],
) -> Result<(), Failure> {
    if got != size {
        return Err(Failure::other(format!(
            "{}: blob {digest} is {got} bytes, not the {size} asked for",
            source.shown()
        )));
    }
    if hash != *digest.as_bytes() {
        return Err(mismatch(source, digest));
    }
    Ok(())
}
