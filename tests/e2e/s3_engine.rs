//! Issue 16: what an S3 engine may do differently must not matter to ferry.
//! Garage 2.5 was seen to ignore `If-None-Match: *` on PUT (a second upload
//! of a key overwrites it) and to answer a multi-range GET with the whole
//! object. Content addressing makes the first harmless (the same key always
//! holds the same verified bytes), and ferry answers a multi-range request
//! itself, one ranged GET per part. These run on the run's object store:
//! the shared one in an object-store run (scripts/garage.sh points it at a
//! three-node Garage), else a SeaweedFS of the test's own.

use reqwest::StatusCode;

use crate::support::images;
use crate::support::s3_api::CreateOnly;
use crate::support::seaweed::{s3_mode, shared, Seaweed};
use crate::support::util::sha256_hex;
use crate::support::*;

const MIB: usize = 1 << 20;

fn object_key(prefix: &str, digest: &str) -> String {
    format!("{prefix}blobs/{}", digest.replacen(':', "/", 1))
}

#[tokio::test]
async fn a_second_upload_of_the_same_digest_is_harmless() {
    let own;
    let weed: &Seaweed = if s3_mode() {
        shared()
    } else {
        own = Seaweed::start();
        &own
    };
    let upstream = Upstream::start(UpstreamAuth::None).await;
    // Above the single-PUT size: the multipart path, whose completion
    // Garage does not make create-only either.
    let big = images::large(20 * MIB);
    RegistryClient::new(&upstream.url())
        .push_image("example/big", "v1", &big)
        .await;
    let cluster = TestCluster::start_on(weed, 2, &[CacheSpec::new(CACHE, &upstream.url())], None);
    // Both members pull the cold image at once: each may upload it.
    let (a, b) = (
        via_ferry(&cluster.nodes[0], "example/big", "v1"),
        via_ferry(&cluster.nodes[1], "example/big", "v1"),
    );
    tokio::join!(
        assert_skopeo_copy_matches(&a, &big),
        assert_skopeo_copy_matches(&b, &big)
    );

    // Uploaded once more, create-only as ferry sends it: refused, or (Garage)
    // written over with the same bytes.
    let api = weed.s3_api();
    for blob in big.all_blobs() {
        let key = object_key(&cluster.prefix, &blob.digest);
        let answer = api.put_create_only(&key, &blob.data);
        eprintln!("second create-only PUT of {key}: {answer:?}");
        assert!(matches!(
            answer,
            CreateOnly::Refused | CreateOnly::Overwritten
        ));
        let stored = api.get(&key).expect("object");
        assert_eq!(format!("sha256:{}", sha256_hex(&stored)), blob.digest);
    }
    // Every member still serves the image, byte for byte.
    for node in &cluster.nodes {
        assert_skopeo_copy_matches(&via_ferry(node, "example/big", "v1"), &big).await;
    }
}

/// The parts of a `multipart/byteranges` body: (Content-Range, bytes).
fn byteranges(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a boundary")
        .trim_matches('"');
    let delimiter = format!("\r\n--{boundary}");
    // A leading CRLF makes the first delimiter look like the others.
    let text = [b"\r\n".as_slice(), body].concat();
    let mut parts = Vec::new();
    let mut rest = text.as_slice();
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part headers");
        let head = String::from_utf8_lossy(&rest[..head_end]).to_lowercase();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("content-range:"))
            .expect("Content-Range in every part")
            .trim()
            .to_string();
        let data_start = head_end + 4;
        let data_end = data_start + find(&rest[data_start..], delimiter.as_bytes()).expect("end");
        parts.push((range, rest[data_start..data_end].to_vec()));
        rest = &rest[data_end..];
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn a_multi_range_get_of_a_stored_blob_is_answered_by_ferry_whatever_the_engine_does() {
    let own;
    let weed: &Seaweed = if s3_mode() {
        shared()
    } else {
        own = Seaweed::start();
        &own
    };
    let prefix = format!(
        "engine-{}-{}/",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &upstream.url())],
        &FerryOptions {
            storage_toml: Some(weed.storage_toml(&prefix)),
            ..Default::default()
        },
    );
    let layer = &image.layers()[0];
    let url = format!(
        "{}/v2/{CACHE}/{BUSYBOX}/blobs/{}",
        ferry.url(),
        layer.digest
    );
    assert_eq!(get_body(&url, &[]).await.unwrap().digest, layer.digest);
    let key = object_key(&prefix, &layer.digest);
    eprintln!(
        "the engine's own answer to a multi-range GET: {}",
        weed.s3_api().multi_range_answer(&key, "bytes=0-3,20-29")
    );

    let len = layer.data.len();
    let resp = http_client()
        .get(&url)
        .header("range", format!("bytes=0-3,20-29,{}-", len - 5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("multipart/byteranges"),
        "{content_type}"
    );
    let body = resp.bytes().await.unwrap();
    let parts = byteranges(&content_type, &body);
    let want = [(0, 3), (20, 29), (len - 5, len - 1)];
    assert_eq!(parts.len(), want.len(), "{parts:?}");
    for ((range, bytes), (a, b)) in parts.iter().zip(want) {
        assert_eq!(range, &format!("bytes {a}-{b}/{len}"));
        assert_eq!(bytes.as_slice(), &layer.data[a..=b]);
    }
}
