//! The OCI distribution API spoken test-side, over ureq: reading back what `tako store`
//! pushed to a registry, and pushing the hostile or careless states a test needs, without
//! going through tako's own registry client.
//!
//! The media types are tako's published layout (docs/registries.md), written out here so a
//! change to them shows up as a failing test.

use base64::Engine;
use sha2::Digest;

/// The tag of the artifact that holds the signed manifest.
pub const MANIFEST_TAG: &str = "tako-manifest";
/// `artifactType` and layer media type of the signed manifest.
pub const MANIFEST_TYPE: &str = "application/vnd.tako.manifest.v1";
/// `artifactType` and first layer media type of a version's artifact.
pub const IMAGE_TYPE: &str = "application/vnd.tako.image.v1";
/// Media type of the chunk-index layer beside an image.
pub const INDEX_TYPE: &str = "application/vnd.tako.chunk-index.v2";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// More than any blob a test pushes.
const MAX_BODY: u64 = 64 << 20;

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The `Authorization` value for Basic auth.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A layer or config descriptor.
pub fn descriptor(media_type: &str, bytes_digest: &str, size: u64) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": bytes_digest, "size": size })
}

/// An OCI 1.1 artifact manifest of `artifact_type` with the empty config and `layers`.
pub fn artifact(artifact_type: &str, layers: Vec<serde_json::Value>) -> Vec<u8> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(EMPTY_TYPE, &digest(EMPTY_CONFIG), EMPTY_CONFIG.len() as u64),
        "layers": layers,
    });
    serde_json::to_vec(&manifest).unwrap()
}

/// One repository of a registry on 127.0.0.1, named as tako names it
/// (`oci+http://HOST/REPOSITORY`).
pub struct Repository {
    host: String,
    name: String,
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl Repository {
    pub fn of(origin: &str) -> Repository {
        let rest = origin
            .strip_prefix("oci+http://")
            .expect("an oci+http:// origin");
        let (host, name) = rest.split_once('/').expect("a repository");
        let agent = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .build()
            .into();
        Repository {
            host: host.to_string(),
            name: name.to_string(),
            authorization: None,
            agent,
        }
    }

    /// The same repository, every request with Basic auth.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Repository {
        self.authorization = Some(basic(user, password));
        self
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/v2/{}/{path}", self.host, self.name)
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value.as_str()),
            None => request,
        }
    }

    /// The blob `digest`.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let url = self.url(&format!("blobs/{digest}"));
        let mut response = self.authorized(self.agent.get(&url)).call().unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let body = response.body_mut().with_config().limit(MAX_BODY);
        body.read_to_vec().unwrap()
    }

    /// The manifest tagged `tag`, if there is one.
    pub fn manifest(&self, tag: &str) -> Option<Vec<u8>> {
        let url = self.url(&format!("manifests/{tag}"));
        let request = self.agent.get(&url).header("Accept", OCI_MANIFEST);
        let mut response = self.authorized(request).call().unwrap();
        match response.status().as_u16() {
            404 => None,
            200 => Some(response.body_mut().read_to_vec().unwrap()),
            status => panic!("GET {url}: status {status}"),
        }
    }

    /// The signed manifest the `tako-manifest` tag holds: its artifact's single layer.
    pub fn signed_manifest(&self) -> Vec<u8> {
        let artifact = self.manifest(MANIFEST_TAG).expect("a tako-manifest tag");
        let parsed: serde_json::Value = serde_json::from_slice(&artifact).unwrap();
        assert_eq!(parsed["artifactType"], MANIFEST_TYPE);
        let layers = parsed["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{parsed}");
        self.blob(layers[0]["digest"].as_str().unwrap())
    }

    /// Uploads `bytes` as a blob (a POST for the upload, a PUT with its digest); returns
    /// the digest.
    pub fn push_blob(&self, bytes: &[u8]) -> String {
        let digest = digest(bytes);
        let url = self.url("blobs/uploads/");
        let response = self.authorized(self.agent.post(&url)).send_empty().unwrap();
        assert_eq!(response.status(), 202, "POST {url}");
        let location = response.headers()["location"].to_str().unwrap();
        let mut upload = if location.starts_with('/') {
            format!("http://{}{location}", self.host)
        } else {
            location.to_string()
        };
        upload.push(if upload.contains('?') { '&' } else { '?' });
        upload.push_str(&format!("digest={digest}"));
        let request = self
            .agent
            .put(&upload)
            .header("Content-Type", "application/octet-stream");
        let response = self.authorized(request).send(bytes).unwrap();
        assert_eq!(response.status(), 201, "PUT {upload}");
        digest
    }

    /// Puts `manifest` (OCI image manifest JSON) under `tag`.
    pub fn put_manifest(&self, tag: &str, manifest: &[u8]) {
        self.put_manifest_as(tag, OCI_MANIFEST, manifest);
    }

    /// Puts `manifest` of `media_type` (an index, a Docker manifest list…) under
    /// `reference`, a tag or a digest.
    pub fn put_manifest_as(&self, reference: &str, media_type: &str, manifest: &[u8]) {
        let url = self.url(&format!("manifests/{reference}"));
        let request = self.agent.put(&url).header("Content-Type", media_type);
        let mut response = self.authorized(request).send(manifest).unwrap();
        let status = response.status();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "PUT {url}: {body}");
    }

    /// Replaces the `tako-manifest` tag with an artifact holding `bytes` as its signed
    /// manifest, as a hostile or careless publisher could.
    pub fn push_signed_manifest(&self, bytes: &[u8]) {
        let layer = self.push_blob(bytes);
        self.push_blob(EMPTY_CONFIG);
        let artifact = artifact(
            MANIFEST_TYPE,
            vec![descriptor(MANIFEST_TYPE, &layer, bytes.len() as u64)],
        );
        self.put_manifest(MANIFEST_TAG, &artifact);
    }
}
