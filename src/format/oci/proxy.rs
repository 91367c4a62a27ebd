//! Messages of skopeo's experimental image-proxy protocol, version 0.2.8.
//!
//! One JSON object per `SOCK_SEQPACKET` packet: a request `{"method": "...", "args": [...]}`,
//! and a reply `{"success": bool, "value": ..., "pipeid": N, "error_code": "...", "error":
//! "..."}`; payloads (manifests, configs, blobs, layer lists) travel on pipes whose read ends
//! are passed beside the reply. This module only reads requests and writes replies; the
//! socket, the pipes and the images are the server's.
//!
//! Requests are read strictly: a known method, exactly its arguments, each of its type.
//! Numbers must be whole and at most 2^53 − 1 (skopeo reads them as JSON doubles, so a
//! larger one would not mean the same thing to it). A packet holds at most 32 KiB, as in
//! skopeo and the `containers-image-proxy` crate; a reply that would not fit becomes an error.

use std::num::NonZeroU32;

use serde::Serialize;
use serde_json::Value;

use super::digest::{Digest, DigestError};
use super::manifest::{Descriptor, ImageManifest};
use crate::format::text::untrusted;

/// The protocol version `Initialize` answers.
pub const PROTOCOL_VERSION: &str = "0.2.8";
/// The largest packet, request or reply.
pub const MAX_MESSAGE: usize = 32 * 1024;
/// The largest number an argument may be: JavaScript's (and so skopeo's) safe integers.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// The longest error message a reply carries, in characters.
const MAX_ERROR: usize = 4096;

/// An open image's handle. Never 0: `OpenImageOptional` answers 0 for "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(u64);

impl ImageId {
    /// A handle, if `id` is one a reply may carry (1 to 2^53 − 1).
    pub fn new(id: u64) -> Option<ImageId> {
        (id != 0 && id <= MAX_SAFE_INTEGER).then_some(ImageId(id))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// A request, with its arguments read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Answers [`PROTOCOL_VERSION`]; must come first.
    Initialize,
    /// Opens `TRANSPORT:REFERENCE`; answers an [`ImageId`].
    OpenImage {
        reference: String,
    },
    /// As `OpenImage`, answering 0 when the image does not exist.
    OpenImageOptional {
        reference: String,
    },
    CloseImage {
        image: ImageId,
    },
    /// The platform's manifest, converted to OCI, on a pipe; the value is the digest of
    /// that manifest as the registry has it (the platform's, not the index's: what skopeo
    /// answers, whatever its manual page says).
    GetManifest {
        image: ImageId,
    },
    /// The OCI image config, on a pipe.
    GetFullConfig {
        image: ImageId,
    },
    /// Only the config's `config` member, on a pipe (deprecated by skopeo).
    GetConfig {
        image: ImageId,
    },
    /// A blob on a pipe, checked against digest and size; `FinishPipe` reports a mismatch.
    GetBlob {
        image: ImageId,
        digest: Digest,
        size: u64,
    },
    /// A blob on a pipe with a second pipe for an error, unchecked; no `FinishPipe`.
    GetRawBlob {
        image: ImageId,
        digest: Digest,
    },
    /// The layers as [`LayerInfo`] in the reply itself (deprecated by skopeo).
    GetLayerInfo {
        image: ImageId,
    },
    /// The layers as [`LayerInfo`] on a pipe.
    GetLayerInfoPiped {
        image: ImageId,
    },
    /// Waits for a pipe's writer and reports its error.
    FinishPipe {
        pipe: NonZeroU32,
    },
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request is {0} bytes, more than the {MAX_MESSAGE} a message holds")]
    TooLarge(usize),
    #[error("invalid request: {0}")]
    Json(String),
    #[error("unknown method: {0}")]
    UnknownMethod(String),
    #[error("{method} takes {expected} argument(s) ({names}), not {got}")]
    ArgumentCount {
        method: &'static str,
        expected: usize,
        names: &'static str,
        got: usize,
    },
    #[error("{method}: the {name} {problem}")]
    Argument {
        method: &'static str,
        name: &'static str,
        problem: &'static str,
    },
    #[error("{method}: {source}")]
    Digest {
        method: &'static str,
        source: DigestError,
    },
}

/// The envelope of a request.
#[derive(serde::Deserialize)]
struct Wire {
    method: String,
    args: Vec<Value>,
}

/// The arguments of one method, checked one by one.
struct Args {
    method: &'static str,
    values: Vec<Value>,
}

impl Args {
    /// Checks that there are `count` arguments, `names` in a message if not.
    fn arity(&self, count: usize, names: &'static str) -> Result<(), RequestError> {
        if self.values.len() == count {
            return Ok(());
        }
        Err(RequestError::ArgumentCount {
            method: self.method,
            expected: count,
            names,
            got: self.values.len(),
        })
    }

    fn problem(&self, name: &'static str, problem: &'static str) -> RequestError {
        RequestError::Argument {
            method: self.method,
            name,
            problem,
        }
    }

    fn string(&self, at: usize, name: &'static str) -> Result<String, RequestError> {
        match self.values.get(at) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(self.problem(name, "is not a string")),
        }
    }

    fn number(&self, at: usize, name: &'static str) -> Result<u64, RequestError> {
        let Some(Value::Number(n)) = self.values.get(at) else {
            return Err(self.problem(name, "is not a number"));
        };
        match n.as_u64() {
            Some(v) if v <= MAX_SAFE_INTEGER => Ok(v),
            Some(_) => Err(self.problem(name, "is more than 2^53 - 1")),
            None if n.is_i64() => Err(self.problem(name, "is negative")),
            None => Err(self.problem(name, "is not an integer")),
        }
    }

    fn image(&self, at: usize) -> Result<ImageId, RequestError> {
        ImageId::new(self.number(at, "image id")?)
            .ok_or_else(|| self.problem("image id", "is 0, which names no image"))
    }

    fn digest(&self, at: usize) -> Result<Digest, RequestError> {
        Digest::parse(&self.string(at, "digest")?).map_err(|source| RequestError::Digest {
            method: self.method,
            source,
        })
    }
}

const METHODS: [&str; 13] = [
    "Initialize",
    "OpenImage",
    "OpenImageOptional",
    "CloseImage",
    "GetManifest",
    "GetFullConfig",
    "GetConfig",
    "GetBlob",
    "GetRawBlob",
    "GetLayerInfo",
    "GetLayerInfoPiped",
    "FinishPipe",
    "Shutdown",
];

impl Request {
    /// Reads one request packet.
    pub fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(RequestError::TooLarge(bytes.len()));
        }
        // serde would read a struct from an array of its fields too; the protocol is objects.
        if !super::manifest::is_json_object(bytes) {
            return Err(RequestError::Json(
                "the request is not a JSON object".to_string(),
            ));
        }
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| RequestError::Json(untrusted(&e.to_string())))?;
        let Some(method) = METHODS.iter().copied().find(|m| *m == wire.method) else {
            return Err(RequestError::UnknownMethod(untrusted(&wire.method)));
        };
        let args = Args {
            method,
            values: wire.args,
        };
        let image_only = |args: &Args| -> Result<ImageId, RequestError> {
            args.arity(1, "image id")?;
            args.image(0)
        };
        Ok(match method {
            "Initialize" => {
                args.arity(0, "none")?;
                Request::Initialize
            }
            "OpenImage" | "OpenImageOptional" => {
                args.arity(1, "image reference")?;
                let reference = args.string(0, "image reference")?;
                if method == "OpenImage" {
                    Request::OpenImage { reference }
                } else {
                    Request::OpenImageOptional { reference }
                }
            }
            "CloseImage" => Request::CloseImage {
                image: image_only(&args)?,
            },
            "GetManifest" => Request::GetManifest {
                image: image_only(&args)?,
            },
            "GetFullConfig" => Request::GetFullConfig {
                image: image_only(&args)?,
            },
            "GetConfig" => Request::GetConfig {
                image: image_only(&args)?,
            },
            "GetLayerInfo" => Request::GetLayerInfo {
                image: image_only(&args)?,
            },
            "GetLayerInfoPiped" => Request::GetLayerInfoPiped {
                image: image_only(&args)?,
            },
            "GetBlob" => {
                args.arity(3, "image id, digest, size")?;
                Request::GetBlob {
                    image: args.image(0)?,
                    digest: args.digest(1)?,
                    size: args.number(2, "size")?,
                }
            }
            "GetRawBlob" => {
                args.arity(2, "image id, digest")?;
                Request::GetRawBlob {
                    image: args.image(0)?,
                    digest: args.digest(1)?,
                }
            }
            "FinishPipe" => {
                args.arity(1, "pipe id")?;
                let pipe = args.number(0, "pipe id")?;
                let pipe = u32::try_from(pipe)
                    .map_err(|_| args.problem("pipe id", "is more than 2^32 - 1"))?;
                Request::FinishPipe {
                    pipe: NonZeroU32::new(pipe)
                        .ok_or_else(|| args.problem("pipe id", "is 0, which names no pipe"))?,
                }
            }
            _ => {
                args.arity(0, "none")?;
                Request::Shutdown
            }
        })
    }

    /// The method's name, as on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Request::Initialize => "Initialize",
            Request::OpenImage { .. } => "OpenImage",
            Request::OpenImageOptional { .. } => "OpenImageOptional",
            Request::CloseImage { .. } => "CloseImage",
            Request::GetManifest { .. } => "GetManifest",
            Request::GetFullConfig { .. } => "GetFullConfig",
            Request::GetConfig { .. } => "GetConfig",
            Request::GetBlob { .. } => "GetBlob",
            Request::GetRawBlob { .. } => "GetRawBlob",
            Request::GetLayerInfo { .. } => "GetLayerInfo",
            Request::GetLayerInfoPiped { .. } => "GetLayerInfoPiped",
            Request::FinishPipe { .. } => "FinishPipe",
            Request::Shutdown => "Shutdown",
        }
    }
}

/// The kind of a failure, for a client deciding whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Success: written as `""`.
    None,
    /// The client closed a pipe before reading all of it.
    Pipe,
    /// A transient failure (network, a server error, a timeout): trying again may work.
    Retryable,
    Other,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::None => "",
            ErrorCode::Pipe => "EPIPE",
            ErrorCode::Retryable => "retryable",
            ErrorCode::Other => "other",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error message bounded so that a reply always fits a packet.
fn bounded(message: &str) -> String {
    match message.char_indices().nth(MAX_ERROR) {
        Some((at, _)) => format!("{}…", message.get(..at).unwrap_or("")),
        None => message.to_string(),
    }
}

/// A reply. Every field is always written, as skopeo writes them (clients read `error` and
/// `pipeid` unconditionally).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub success: bool,
    pub value: Value,
    pub pipeid: u32,
    pub error_code: ErrorCode,
    pub error: String,
}

impl Reply {
    /// Success with `value` and no pipe.
    pub fn ok(value: Value) -> Reply {
        Reply {
            success: true,
            value,
            pipeid: 0,
            error_code: ErrorCode::None,
            error: String::new(),
        }
    }

    /// Success with `value`; the payload is on the pipe `pipe`, to be finished.
    pub fn piped(value: Value, pipe: NonZeroU32) -> Reply {
        Reply {
            pipeid: pipe.get(),
            ..Reply::ok(value)
        }
    }

    /// A failure. `message` must already be safe to show (untrusted parts escaped).
    pub fn error(code: ErrorCode, message: &str) -> Reply {
        let code = if code == ErrorCode::None {
            ErrorCode::Other
        } else {
            code
        };
        Reply {
            success: false,
            value: Value::Null,
            pipeid: 0,
            error_code: code,
            error: bounded(message),
        }
    }

    /// The answer to `Initialize`.
    pub fn initialized() -> Reply {
        Reply::ok(Value::from(PROTOCOL_VERSION))
    }

    /// The answer to `OpenImage` (always an image) or `OpenImageOptional` (`None`: not found).
    pub fn opened(image: Option<ImageId>) -> Reply {
        Reply::ok(Value::from(image.map_or(0, ImageId::get)))
    }

    /// The answer to `GetBlob` and `GetRawBlob`: the blob's size, -1 when unknown.
    pub fn blob_size(size: Option<u64>) -> Value {
        size.and_then(|s| i64::try_from(s).ok())
            .map_or(Value::from(-1), Value::from)
    }

    /// The reply as one packet. One that would be larger than [`MAX_MESSAGE`] is replaced
    /// by an error saying so (an inline `GetLayerInfo` of a very large image).
    pub fn encode(&self) -> Vec<u8> {
        let too_large = |size: usize| {
            Reply::error(
                ErrorCode::Other,
                &format!(
                    "the reply is {size} bytes, more than the {MAX_MESSAGE} a message holds (use GetLayerInfoPiped)"
                ),
            )
        };
        match serde_json::to_vec(self) {
            Ok(bytes) if bytes.len() <= MAX_MESSAGE => bytes,
            Ok(bytes) => serde_json::to_vec(&too_large(bytes.len())).unwrap_or_default(),
            Err(e) => serde_json::to_vec(&Reply::error(
                ErrorCode::Other,
                &format!("cannot write the reply: {}", untrusted(&e.to_string())),
            ))
            .unwrap_or_default(),
        }
    }
}

/// What `GetRawBlob` writes on its error pipe when the copy fails.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipeError {
    pub code: ErrorCode,
    pub message: String,
}

impl PipeError {
    pub fn new(code: ErrorCode, message: &str) -> PipeError {
        PipeError {
            code,
            message: bounded(message),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One layer as `GetLayerInfo` and `GetLayerInfoPiped` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LayerInfo {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

impl LayerInfo {
    pub fn of(layer: &Descriptor) -> LayerInfo {
        LayerInfo {
            digest: layer.digest,
            size: layer.size,
            media_type: layer.media_type.clone(),
        }
    }

    /// The layers of `manifest`, in order, with the media types it gives them (skopeo
    /// reports the original manifest's, Docker ones for a Docker image).
    pub fn list(manifest: &ImageManifest) -> Vec<LayerInfo> {
        manifest.layers.iter().map(LayerInfo::of).collect()
    }

    /// The JSON array written on `GetLayerInfoPiped`'s pipe.
    pub fn encode_list(layers: &[LayerInfo]) -> Vec<u8> {
        serde_json::to_vec(layers).unwrap_or_else(|_| b"[]".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oci::manifest::tests::{docker_manifest, hex_of};
    use crate::format::oci::manifest::{self, ParsedManifest};
    use serde_json::json;

    fn request(value: Value) -> Result<Request, RequestError> {
        Request::parse(&serde_json::to_vec(&value).unwrap())
    }

    fn id(n: u64) -> ImageId {
        ImageId::new(n).unwrap()
    }

    #[test]
    fn every_method_is_read_with_its_arguments() {
        let digest = hex_of(3);
        for (value, expected) in [
            (
                json!({"method":"Initialize","args":[]}),
                Request::Initialize,
            ),
            (
                json!({"method":"OpenImage","args":["docker://quay.io/a/b:1"]}),
                Request::OpenImage {
                    reference: "docker://quay.io/a/b:1".to_string(),
                },
            ),
            (
                json!({"method":"OpenImageOptional","args":["oci:/srv/x"]}),
                Request::OpenImageOptional {
                    reference: "oci:/srv/x".to_string(),
                },
            ),
            (
                json!({"method":"CloseImage","args":[1]}),
                Request::CloseImage { image: id(1) },
            ),
            (
                json!({"method":"GetManifest","args":[2]}),
                Request::GetManifest { image: id(2) },
            ),
            (
                json!({"method":"GetFullConfig","args":[3]}),
                Request::GetFullConfig { image: id(3) },
            ),
            (
                json!({"method":"GetConfig","args":[4]}),
                Request::GetConfig { image: id(4) },
            ),
            (
                json!({"method":"GetBlob","args":[5, digest, 1234]}),
                Request::GetBlob {
                    image: id(5),
                    digest: Digest::from([3; 32]),
                    size: 1234,
                },
            ),
            (
                json!({"method":"GetRawBlob","args":[6, digest]}),
                Request::GetRawBlob {
                    image: id(6),
                    digest: Digest::from([3; 32]),
                },
            ),
            (
                json!({"method":"GetLayerInfo","args":[7]}),
                Request::GetLayerInfo { image: id(7) },
            ),
            (
                json!({"method":"GetLayerInfoPiped","args":[8]}),
                Request::GetLayerInfoPiped { image: id(8) },
            ),
            (
                json!({"method":"FinishPipe","args":[9]}),
                Request::FinishPipe {
                    pipe: NonZeroU32::new(9).unwrap(),
                },
            ),
            (json!({"method":"Shutdown","args":[]}), Request::Shutdown),
        ] {
            let parsed = request(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(parsed, expected);
            assert_eq!(parsed.method(), value["method"]);
        }
    }

    #[test]
    fn unknown_fields_beside_method_and_args_are_ignored() {
        assert_eq!(
            request(json!({"method":"Initialize","args":[],"id":1})),
            Ok(Request::Initialize)
        );
    }

    #[test]
    fn unknown_methods_and_malformed_envelopes_are_refused() {
        let e = request(json!({"method":"GetSignatures","args":[1]})).unwrap_err();
        assert_eq!(e.to_string(), "unknown method: GetSignatures");
        let e = request(json!({"method":"getmanifest","args":[1]})).unwrap_err();
        assert!(matches!(e, RequestError::UnknownMethod(_)));
        for bad in [
            &b"{\"method\":\"Initialize\"}"[..],
            b"{\"args\":[]}",
            b"{\"method\":1,\"args\":[]}",
            b"{\"method\":\"Initialize\",\"args\":{}}",
            b"[]",
            b"[\"Initialize\",[]]",
            b"",
            b"\xff",
        ] {
            assert!(
                matches!(Request::parse(bad), Err(RequestError::Json(_))),
                "{}",
                crate::format::text::untrusted_bytes(bad)
            );
        }
        let e = request(json!({"method":"Evil\u{1b}[2J","args":[]})).unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }

    #[test]
    fn the_argument_count_must_be_exact() {
        let e = request(json!({"method":"GetBlob","args":[1, hex_of(1)]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GetBlob takes 3 argument(s) (image id, digest, size), not 2"
        );
        for value in [
            json!({"method":"Initialize","args":[1]}),
            json!({"method":"Shutdown","args":["now"]}),
            json!({"method":"FinishPipe","args":[]}),
            json!({"method":"GetManifest","args":[1, 2]}),
            json!({"method":"OpenImage","args":[]}),
        ] {
            assert!(
                matches!(
                    request(value.clone()),
                    Err(RequestError::ArgumentCount { .. })
                ),
                "{value}"
            );
        }
    }

    #[test]
    fn arguments_must_have_their_types_and_ranges() {
        for (value, says) in [
            (
                json!({"method":"OpenImage","args":[1]}),
                "image reference is not a string",
            ),
            (
                json!({"method":"GetManifest","args":["1"]}),
                "image id is not a number",
            ),
            (
                json!({"method":"GetManifest","args":[0]}),
                "is 0, which names no image",
            ),
            (
                json!({"method":"GetManifest","args":[-1]}),
                "image id is negative",
            ),
            (
                json!({"method":"GetManifest","args":[1.5]}),
                "is not an integer",
            ),
            (
                json!({"method":"GetManifest","args":[1.0]}),
                "is not an integer",
            ),
            (
                json!({"method":"GetManifest","args":[9007199254740992u64]}),
                "more than 2^53 - 1",
            ),
            (
                json!({"method":"GetBlob","args":[1, hex_of(1), -5]}),
                "size is negative",
            ),
            (json!({"method":"FinishPipe","args":[0]}), "names no pipe"),
            (
                json!({"method":"FinishPipe","args":[4294967296u64]}),
                "2^32 - 1",
            ),
            (
                json!({"method":"GetRawBlob","args":[1, 2]}),
                "digest is not a string",
            ),
        ] {
            let e = request(value.clone()).unwrap_err();
            assert!(e.to_string().contains(says), "{value}: {e}");
        }
        assert_eq!(
            request(json!({"method":"GetManifest","args":[MAX_SAFE_INTEGER]})),
            Ok(Request::GetManifest {
                image: id(MAX_SAFE_INTEGER)
            })
        );
    }

    #[test]
    fn a_blob_digest_must_be_a_sha256_digest() {
        let e = request(
            json!({"method":"GetBlob","args":[1, format!("sha512:{}", "a".repeat(128)), 1]}),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            RequestError::Digest {
                method: "GetBlob",
                ..
            }
        ));
        assert!(e.to_string().contains("sha256 digests only"), "{e}");
        assert!(request(json!({"method":"GetRawBlob","args":[1, "../../etc/passwd"]})).is_err());
    }

    #[test]
    fn a_request_larger_than_a_packet_is_refused_before_it_is_read() {
        let reference = "a".repeat(MAX_MESSAGE);
        let e = request(json!({"method":"OpenImage","args":[reference]})).unwrap_err();
        assert!(matches!(e, RequestError::TooLarge(_)), "{e}");
    }

    #[test]
    fn replies_carry_every_field_as_skopeo_writes_them() {
        assert_eq!(
            String::from_utf8(Reply::initialized().encode()).unwrap(),
            r#"{"success":true,"value":"0.2.8","pipeid":0,"error_code":"","error":""}"#
        );
        let digest = hex_of(1);
        let reply = Reply::piped(Value::from(digest.as_str()), NonZeroU32::new(7).unwrap());
        assert_eq!(
            String::from_utf8(reply.encode()).unwrap(),
            format!(
                r#"{{"success":true,"value":"{digest}","pipeid":7,"error_code":"","error":""}}"#
            )
        );
        assert_eq!(
            String::from_utf8(Reply::error(ErrorCode::Retryable, "timed out").encode()).unwrap(),
            r#"{"success":false,"value":null,"pipeid":0,"error_code":"retryable","error":"timed out"}"#
        );
        // A failure always has a code.
        assert_eq!(
            Reply::error(ErrorCode::None, "x").error_code,
            ErrorCode::Other
        );
    }

    /// The reply as a client of the protocol reads it: every field required, with these types.
    #[derive(serde::Deserialize)]
    struct ClientReply {
        success: bool,
        error: String,
        pipeid: u32,
        value: Value,
    }

    #[test]
    fn a_client_reads_the_values_of_open_and_blob_replies() {
        let read =
            |reply: Reply| -> ClientReply { serde_json::from_slice(&reply.encode()).unwrap() };
        let opened = read(Reply::opened(Some(id(3))));
        assert!(opened.success && opened.error.is_empty() && opened.pipeid == 0);
        assert_eq!(opened.value, json!(3));
        assert_eq!(read(Reply::opened(None)).value, json!(0));
        let blob = read(Reply::piped(
            Reply::blob_size(Some(42)),
            NonZeroU32::new(5).unwrap(),
        ));
        assert_eq!((blob.value, blob.pipeid), (json!(42), 5));
        assert_eq!(read(Reply::ok(Reply::blob_size(None))).value, json!(-1));
        let failed = read(Reply::error(ErrorCode::Other, "no image 9"));
        assert!(!failed.success);
        assert_eq!(failed.error, "no image 9");
    }

    #[test]
    fn a_reply_too_large_for_a_packet_becomes_an_error_that_fits() {
        let layers: Vec<Value> = (0..1000)
            .map(|i| json!({"digest": hex_of(i as u8), "size": i, "media_type": "application/vnd.oci.image.layer.v1.tar+gzip"}))
            .collect();
        let bytes = Reply::ok(Value::Array(layers)).encode();
        assert!(bytes.len() <= MAX_MESSAGE);
        let reply: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(reply["success"], json!(false));
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("GetLayerInfoPiped")
        );
        let long = Reply::error(ErrorCode::Other, &"é".repeat(MAX_MESSAGE)).encode();
        assert!(long.len() <= MAX_MESSAGE);
    }

    #[test]
    fn the_raw_blob_error_pipe_carries_a_code_and_a_message() {
        assert_eq!(
            String::from_utf8(PipeError::new(ErrorCode::Retryable, "connection reset").encode())
                .unwrap(),
            r#"{"code":"retryable","message":"connection reset"}"#
        );
        assert_eq!(
            serde_json::to_value(PipeError::new(ErrorCode::Pipe, "closed")).unwrap()["code"],
            "EPIPE"
        );
    }

    #[test]
    fn layer_info_lists_each_layer_digest_size_and_media_type() {
        let ParsedManifest::Image { manifest, .. } =
            manifest::parse(docker_manifest(2).as_bytes(), None).unwrap()
        else {
            panic!("not an image")
        };
        let layers = LayerInfo::list(&manifest);
        let text = String::from_utf8(LayerInfo::encode_list(&layers)).unwrap();
        assert_eq!(
            text,
            format!(
                r#"[{{"digest":"{}","size":100,"media_type":"application/vnd.docker.image.rootfs.diff.tar.gzip"}},{{"digest":"{}","size":101,"media_type":"application/vnd.docker.image.rootfs.diff.tar.gzip"}}]"#,
                hex_of(0),
                hex_of(1)
            )
        );
        let back: Vec<LayerInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, layers);
    }
}
