//! Test support for ferry's end-to-end tests: real upstream registries,
//! image builders, the ferry process, client wrappers and fakes.
#![allow(dead_code)] // not every test module uses every helper

pub mod black_hole;
pub mod clients;
pub mod cluster;
pub mod fake_proxy;
pub mod fake_upstream;
pub mod ferry;
pub mod httpie;
pub mod images;
pub mod inspect;
pub mod proxy;
pub mod pulp_api;
pub mod raw_http;
pub mod registry_client;
pub mod s3_api;
pub mod seaweed;
pub mod tls;
pub mod tls_front;
pub mod token;
pub mod upstream;
pub mod util;

pub use black_hole::FakeBlackHole;
pub use clients::{skopeo_copy, skopeo_inspect_raw, skopeo_list_tags, DirImage, Podman};
pub use cluster::TestCluster;
pub use fake_proxy::{FakeFaultProxy, Fault, PathKind, RateLimitHeaders};
pub use ferry::{ferry_bin, CacheSpec, Ferry, FerryOptions, ADMIN_PASSWORD, CACHE};
pub use httpie::Httpie;
pub use images::{Flavor, Image};
pub use pulp_api::PulpApi;
pub use registry_client::RegistryClient;
pub use token::TokenIssuer;
pub use upstream::{Upstream, UpstreamAuth, PASSWORD, USER};
pub use util::{digest_of, error_code, get_body, http_client, BodyRead};

/// The repository most tests use upstream (Docker Hub's layout).
pub const BUSYBOX: &str = "library/busybox";

/// An unauthenticated upstream holding `library/busybox:1.36` (Docker
/// schema 2). Returns the upstream and the pushed image.
pub async fn upstream_with_busybox() -> (Upstream, Image) {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let image = images::busybox(Flavor::Docker, "1.36");
    RegistryClient::new(&upstream.url())
        .push_image(BUSYBOX, "1.36", &image)
        .await;
    (upstream, image)
}

/// Like `upstream_with_busybox`, behind htpasswd Basic auth (`USER`/`PASSWORD`).
pub async fn upstream_with_busybox_behind_basic_auth() -> (Upstream, Image) {
    let upstream = Upstream::start(UpstreamAuth::Basic).await;
    let image = images::busybox(Flavor::Docker, "1.36");
    RegistryClient::new(&upstream.url())
        .with_credentials(USER, PASSWORD)
        .push_image(BUSYBOX, "1.36", &image)
        .await;
    (upstream, image)
}

/// Asserts that a `dir:` copy holds exactly `image`: same manifest bytes and
/// every blob byte-identical.
pub fn assert_dir_matches(dir: &std::path::Path, image: &Image) {
    let copied = DirImage::read(dir);
    assert_eq!(
        digest_of(&copied.manifest),
        image.digest,
        "manifest digest differs from upstream"
    );
    assert_eq!(
        copied.manifest, image.manifest,
        "manifest bytes differ from upstream"
    );
    for blob in &image.blobs {
        let got = copied.blob(&blob.digest);
        assert_eq!(
            digest_of(&got),
            blob.digest,
            "blob {} content differs",
            blob.digest
        );
    }
}

/// An image reference `HOST/REPO:TAG` or `HOST/REPO@DIGEST`.
pub fn image_ref(host: &str, repo: &str, reference: &str) -> String {
    let sep = if reference.contains(':') { '@' } else { ':' };
    format!("{host}/{repo}{sep}{reference}")
}

/// The same image as pulled through ferry's `docker-cache` base path.
pub fn via_ferry(ferry: &Ferry, repo: &str, reference: &str) -> String {
    image_ref(ferry.host(), &format!("{CACHE}/{repo}"), reference)
}

/// skopeo-copies `image_ref` into a temp dir and asserts it equals `image`.
pub async fn assert_skopeo_copy_matches(image_ref: &str, image: &Image) {
    let dest = tempfile::tempdir().unwrap();
    skopeo_copy(image_ref, dest.path(), None)
        .await
        .expect_ok(&format!("skopeo copy {image_ref}"));
    assert_dir_matches(dest.path(), image);
}
