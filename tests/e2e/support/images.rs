//! Builders for real, pullable images. Each returns the exact manifest bytes
//! pushed upstream plus every blob, so tests compare what came through ferry
//! against what was pushed. Layers are deterministic (fixed mtimes, gzip
//! header without timestamp) so digests are stable across runs.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::{json, Value};

use super::util::{digest_of, pseudo_random_bytes};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub media_type: String,
    pub data: Bytes,
}

impl Blob {
    pub fn new(media_type: &str, data: impl Into<Bytes>) -> Blob {
        let data = data.into();
        Blob {
            digest: digest_of(&data),
            media_type: media_type.to_string(),
            data,
        }
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// A manifest (or index) with what it references. For an index, `blobs` is
/// empty and `children` holds the per-platform images.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Bytes,
    pub digest: String,
    pub media_type: String,
    /// Config first, then layers (in manifest order).
    pub blobs: Vec<Blob>,
    pub children: Vec<Image>,
}

impl Image {
    fn from_manifest(
        media_type: &str,
        manifest: Value,
        blobs: Vec<Blob>,
        children: Vec<Image>,
    ) -> Image {
        let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap());
        Image {
            digest: digest_of(&bytes),
            manifest: bytes,
            media_type: media_type.into(),
            blobs,
            children,
        }
    }

    pub fn config(&self) -> &Blob {
        &self.blobs[0]
    }

    pub fn layers(&self) -> &[Blob] {
        &self.blobs[1..]
    }

    /// Blobs of this image and of all children.
    pub fn all_blobs(&self) -> Vec<&Blob> {
        let mut out: Vec<&Blob> = self.blobs.iter().collect();
        for c in &self.children {
            out.extend(c.all_blobs());
        }
        out
    }

    /// The child for `arch` (index images only).
    pub fn child(&self, arch: &str) -> &Image {
        self.children
            .iter()
            .find(|c| {
                let cfg: Value = serde_json::from_slice(&c.config().data).unwrap();
                cfg["architecture"] == arch
            })
            .unwrap_or_else(|| panic!("no {arch} child"))
    }

    fn descriptor(&self, platform: Option<(&str, &str)>) -> Value {
        let mut d = json!({"mediaType": self.media_type, "digest": self.digest, "size": self.manifest.len()});
        if let Some((os, arch)) = platform {
            d["platform"] = json!({"os": os, "architecture": arch});
        }
        d
    }
}

/// Which family of media types a builder uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavor {
    Docker,
    Oci,
}

impl Flavor {
    fn manifest(self) -> &'static str {
        match self {
            Flavor::Docker => DOCKER_MANIFEST,
            Flavor::Oci => OCI_MANIFEST,
        }
    }
    fn config(self) -> &'static str {
        match self {
            Flavor::Docker => DOCKER_CONFIG,
            Flavor::Oci => OCI_CONFIG,
        }
    }
    fn gzip_layer(self) -> &'static str {
        match self {
            Flavor::Docker => DOCKER_LAYER_GZIP,
            Flavor::Oci => OCI_LAYER_GZIP,
        }
    }
    fn index(self) -> &'static str {
        match self {
            Flavor::Docker => DOCKER_LIST,
            Flavor::Oci => OCI_INDEX,
        }
    }
}

/// A layer as built: the uncompressed tar (for the diff_id) and the blob.
struct Layer {
    diff_id: String,
    tar_gz: Vec<u8>,
}

enum Entry<'a> {
    File(&'a str, u32, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match *e {
            Entry::File(path, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data).unwrap();
            }
            Entry::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip_layer(entries: &[Entry]) -> Layer {
    use std::io::Write;
    let tar = tar_of(entries);
    // Fast level: debug-built flate2 is slow and the ratio does not matter.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    Layer {
        diff_id: digest_of(&tar),
        tar_gz: gz.finish().unwrap(),
    }
}

/// The busybox layer: `bin/busybox` (the host's static busybox, mode 0755)
/// and `bin/sh -> busybox`. Built once per test binary.
fn busybox_layer() -> &'static Layer {
    static L: OnceLock<Layer> = OnceLock::new();
    L.get_or_init(|| {
        let bin = std::fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
        gzip_layer(&[
            Entry::File("bin/busybox", 0o755, &bin),
            Entry::Symlink("bin/sh", "busybox"),
        ])
    })
}

/// A config JSON for `arch`; `label` makes otherwise equal images differ
/// (two tags, or a tag that moves upstream).
fn config_json(arch: &str, diff_ids: &[&str], label: &str) -> Vec<u8> {
    let cfg = json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Cmd": ["/bin/sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"org.example.ferry-e2e": label}
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| json!({"created": "2024-01-01T00:00:00Z", "created_by": "ferry e2e"})).collect::<Vec<_>>()
    });
    serde_json::to_vec(&cfg).unwrap()
}

fn image_of(flavor: Flavor, arch: &str, layers: &[&Layer], label: &str) -> Image {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = Blob::new(flavor.config(), config_json(arch, &diff_ids, label));
    let layer_blobs: Vec<Blob> = layers
        .iter()
        .map(|l| Blob::new(flavor.gzip_layer(), l.tar_gz.clone()))
        .collect();
    manifest_of(flavor, config, layer_blobs)
}

fn manifest_of(flavor: Flavor, config: Blob, layers: Vec<Blob>) -> Image {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": flavor.manifest(),
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let mut blobs = vec![config];
    blobs.extend(layers);
    Image::from_manifest(flavor.manifest(), manifest, blobs, vec![])
}

/// (a)/(b) A runnable linux/amd64 busybox image. Different `label`s give
/// different configs (and manifests) sharing the same layer.
pub fn busybox(flavor: Flavor, label: &str) -> Image {
    image_of(flavor, "amd64", &[busybox_layer()], label)
}

/// (c) Three small layers (Docker schema 2), each adding one file.
pub fn multi_layer(label: &str) -> Image {
    let layers: Vec<Layer> = (0..3)
        .map(|i| {
            let body = format!("layer {i} of {label}\n");
            gzip_layer(&[Entry::File(
                &format!("etc/layer-{i}"),
                0o644,
                body.as_bytes(),
            )])
        })
        .collect();
    image_of(
        Flavor::Docker,
        "amd64",
        &layers.iter().collect::<Vec<_>>(),
        label,
    )
}

/// (d) A two-platform index (OCI index or Docker manifest list) with
/// linux/amd64 (runnable busybox) and linux/arm64 (a marker layer only: it is
/// never run, it only has to differ).
pub fn multi_arch(flavor: Flavor, label: &str) -> Image {
    let amd64 = image_of(flavor, "amd64", &[busybox_layer()], label);
    let arm_layer = gzip_layer(&[Entry::File(
        "etc/arch",
        0o644,
        format!("arm64 {label}\n").as_bytes(),
    )]);
    let arm64 = image_of(flavor, "arm64", &[&arm_layer], label);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": flavor.index(),
        "manifests": [amd64.descriptor(Some(("linux", "amd64"))), arm64.descriptor(Some(("linux", "arm64")))],
    });
    Image::from_manifest(flavor.index(), index, vec![], vec![amd64, arm64])
}

/// (e) An OCI image whose single layer is an uncompressed tar holding `size`
/// deterministic random bytes (no gzip: compressing random data is slow and
/// gains nothing). Built once per (size) for the whole test binary.
pub fn large(size: usize) -> Arc<Image> {
    type BySize = std::sync::Mutex<Vec<(usize, Arc<Image>)>>;
    static CACHE: OnceLock<BySize> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    if let Some((_, img)) = cache.iter().find(|(s, _)| *s == size) {
        return img.clone();
    }
    let data = pseudo_random_bytes(0x5eed_f00d, size);
    let tar = tar_of(&[Entry::File("data/random.bin", 0o644, &data)]);
    let diff_id = digest_of(&tar);
    let config = Blob::new(OCI_CONFIG, config_json("amd64", &[&diff_id], "large"));
    let img = Arc::new(manifest_of(
        Flavor::Oci,
        config,
        vec![Blob::new(OCI_LAYER_TAR, tar)],
    ));
    cache.push((size, img.clone()));
    img
}

/// (f) An OCI 1.1 artifact: an image manifest with `artifactType`, the empty
/// config, one payload blob and a `subject` pointing at `subject`.
pub fn artifact(subject: &Image, artifact_type: &str, payload: &str) -> Image {
    let config = Blob::new(OCI_EMPTY, &b"{}"[..]);
    let layer = Blob::new(
        "application/vnd.example.payload.v1+json",
        payload.as_bytes().to_vec(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "subject": subject.descriptor(None),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    });
    Image::from_manifest(OCI_MANIFEST, manifest, vec![config, layer], vec![])
}
