//! Partial pulls: multi-range blob requests answered `206
//! multipart/byteranges`, as podman's zstd:chunked partial pulls ask, from
//! stored blobs and from downloads under way; and ferry's Range answers
//! checked against docker-registry's (Go's `http.ServeContent`) case by case.
//! The podman test needs root: partial pulls work on the overlay driver only.

use reqwest::StatusCode;

use crate::support::util::pseudo_random_bytes;
use crate::support::*;

/// The files of the test image: `FILES` files of `FILE_SIZE` random bytes.
const FILES: usize = 40;
const FILE_SIZE: usize = 64 * 1024;
/// The files version 2 of the image changes.
const CHANGED: [usize; 3] = [5, 17, 31];

fn file_data(version: u64, i: usize) -> Vec<u8> {
    let version = if CHANGED.contains(&i) { version } else { 1 };
    pseudo_random_bytes(version * 1000 + i as u64 + 1, FILE_SIZE)
}

/// A tar of the image's files at `version` (1 or 2), with an entry for
/// their directory as image builders write. Without it podman 4.3
/// (containers/storage 1.43) sometimes fell back to a full download of v2
/// for a reason of its own: it copies the files v1 already has from 32
/// goroutines at once, each creating the missing `data/` first, and one that
/// loses the `mkdirat` race (EEXIST) fails the partial pull ("open
/// \"data/f25\" under the rootfs: no such file or directory"). A directory
/// entry is created before any copy starts.
fn rootfs_tar(version: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mtime(1_700_000_000);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "data/", std::io::empty()).unwrap();
    for i in 0..FILES {
        let data = file_data(version, i);
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, format!("data/f{i}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// Pushes versions 1 and 2 of the image to `upstream` as
/// `example/partial:v1`/`:v2`, with podman's zstd:chunked compression.
async fn push_zstd_chunked(upstream: &Upstream) {
    let pusher = Podman::new();
    let dir = tempfile::tempdir().unwrap();
    for version in [1, 2] {
        let tar = dir.path().join(format!("v{version}.tar"));
        std::fs::write(&tar, rootfs_tar(version)).unwrap();
        let local = format!("localhost/partial:v{version}");
        pusher.import(&tar, &local).await.expect_ok("podman import");
        let dest = format!("{}/example/partial:v{version}", upstream.host());
        pusher
            .push(&local, &dest, "zstd:chunked")
            .await
            .expect_ok("podman push zstd:chunked");
    }
}

/// The manifest digest upstream and its layers' digests and sizes.
async fn upstream_manifest(upstream: &Upstream, tag: &str) -> (String, Vec<(String, u64)>) {
    let resp = http_client()
        .get(format!(
            "{}/v2/example/partial/manifests/{tag}",
            upstream.url()
        ))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    let digest = resp.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert!(
                l["annotations"]["io.containers.zstd-chunked.manifest-position"].is_string(),
                "not a zstd:chunked layer: {l}"
            );
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    (digest, layers)
}

/// Podman (Debian 12's 4.3) with partial pulls on pulls a zstd:chunked
/// image, then its next version, through ferry: the images are byte-exact,
/// the second pull asks for the changed files' ranges in multi-range
/// requests that ferry answers 206 multipart, and ferry sends that client
/// a fraction of the layer. ferry still fetched and verified each whole
/// layer upstream once.
#[tokio::test]
async fn podman_partial_pull_of_zstd_chunked_through_ferry_is_exact() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    push_zstd_chunked(&upstream).await;
    let ferry = Ferry::start_simple(&upstream.url());
    let puller = Podman::with_partial_pulls();
    let multipart = |m: &inspect::Metrics| {
        m.sum(
            "ferry_blob_range_requests_total",
            &[("answer", "multipart")],
        )
    };
    let served = |m: &inspect::Metrics| m.sum("ferry_served_bytes_total", &[]);

    let v1_log = puller
        .pull_logged(&via_ferry(&ferry, "example/partial", "v1"))
        .await
        .expect_ok("partial pull of v1")
        .stderr;
    let before = inspect::metrics(&ferry.url()).await;
    let v2 = via_ferry(&ferry, "example/partial", "v2");
    let v2_log = puller
        .pull_logged(&v2)
        .await
        .expect_ok("partial pull of v2")
        .stderr;
    let after = inspect::metrics(&ferry.url()).await;
    // What podman and ferry said, should the pull not have been partial.
    let logs = || {
        format!(
            "podman (v1):\n{v1_log}\npodman (v2):\n{v2_log}\nferry:\n{}\nmetrics:\n{}",
            ferry.log(),
            after.text
        )
    };

    for tag in ["v1", "v2"] {
        let (digest, layers) = upstream_manifest(&upstream, tag).await;
        let image = via_ferry(&ferry, "example/partial", tag);
        let (_, pulled) = puller.image_id_and_digest(&image).await;
        assert_eq!(pulled, digest, "{tag}: podman's manifest digest");
        for (layer, _) in &layers {
            let stored = inspect::blob_path(&ferry.data_dir(), layer);
            assert_eq!(
                &inspect::sha256_file(&stored),
                layer,
                "{tag}: ferry's stored layer"
            );
        }
        let version = if tag == "v1" { 1 } else { 2 };
        for i in [0, 5, 17, 31, FILES - 1] {
            let got = puller.read_image_file(&image, &format!("data/f{i}")).await;
            assert!(
                got == file_data(version, i),
                "{tag}: data/f{i} differs from the pushed file"
            );
        }
    }
    assert!(
        multipart(&after) > multipart(&before),
        "the v2 pull made no multi-range request ferry answered multipart:\n{}",
        logs()
    );
    let (_, v2_layers) = upstream_manifest(&upstream, "v2").await;
    let layer_size = v2_layers[0].1 as f64;
    let sent = served(&after) - served(&before);
    assert!(
        sent < layer_size / 4.0,
        "the partial pull of v2 got {sent} bytes of a {layer_size}-byte layer:\n{}",
        logs()
    );
}

/// One part of a multipart/byteranges body: its Content-Range and bytes.
#[derive(Clone, Debug, PartialEq)]
struct Part {
    content_range: String,
    data: Vec<u8>,
}

/// Parses a multipart/byteranges body strictly (the framing Go writes:
/// no preamble, CRLF line ends, each part's length from its Content-Range).
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("content type {content_type}"));
    let delimiter = format!("--{boundary}");
    let mut rest = body;
    let mut parts = Vec::new();
    let take = |rest: &mut &[u8], what: &[u8]| {
        assert!(
            rest.starts_with(what),
            "expected {:?} at {:?}",
            String::from_utf8_lossy(what),
            String::from_utf8_lossy(&rest[..rest.len().min(80)])
        );
        *rest = &rest[what.len()..];
    };
    take(&mut rest, delimiter.as_bytes());
    loop {
        if rest == b"--\r\n" {
            return parts;
        }
        take(&mut rest, b"\r\n");
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers end");
        let headers = String::from_utf8(rest[..end].to_vec()).unwrap();
        rest = &rest[end + 4..];
        let mut content_range = None;
        for line in headers.split("\r\n") {
            let (name, value) = line.split_once(": ").expect("header line");
            match name.to_ascii_lowercase().as_str() {
                "content-range" => content_range = Some(value.to_string()),
                "content-type" => assert_eq!(value, "application/octet-stream"),
                other => panic!("unexpected part header {other}"),
            }
        }
        let content_range = content_range.expect("part without Content-Range");
        let (first, last) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(r, _)| r.split_once('-'))
            .expect("Content-Range bytes a-b/size");
        let len = last.parse::<usize>().unwrap() + 1 - first.parse::<usize>().unwrap();
        parts.push(Part {
            content_range,
            data: rest[..len].to_vec(),
        });
        rest = &rest[len..];
        take(&mut rest, b"\r\n");
        take(&mut rest, delimiter.as_bytes());
    }
}

/// What a client reads for a Range request: status, headers that matter,
/// and the body as parts (a single part for a plain 206 or 200).
#[derive(Clone, Debug, PartialEq)]
struct RangeAnswer {
    status: StatusCode,
    /// `Content-Range` of a plain 206 or a 416.
    content_range: Option<String>,
    parts: Vec<Part>,
}

async fn ask(url: &str, headers: &[(&str, &str)]) -> RangeAnswer {
    let mut rb = http_client().get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status();
    let header = |name| {
        resp.headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
    };
    let content_range = header("content-range");
    let content_type = header("content-type").unwrap_or_default();
    let length = header("content-length").map(|l| l.parse::<usize>().unwrap());
    if !status.is_success() {
        // docker-registry's 416 promises the blob's length and sends a
        // short text (Go 1.19's http.Error keeps Content-Length): no body.
        return RangeAnswer {
            status,
            content_range,
            parts: vec![],
        };
    }
    let body = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{url} {headers:?}: {status}: body: {e}"));
    if let Some(length) = length {
        assert_eq!(body.len(), length, "{url} {headers:?}: Content-Length");
    }
    let parts = if content_type.starts_with("multipart/byteranges") {
        parse_multipart(&content_type, &body)
    } else {
        vec![Part {
            content_range: content_range.clone().unwrap_or_default(),
            data: body.to_vec(),
        }]
    };
    RangeAnswer {
        status,
        content_range,
        parts,
    }
}

fn part(blob: &[u8], first: usize, last: usize) -> Part {
    Part {
        content_range: format!("bytes {first}-{last}/{}", blob.len()),
        data: blob[first..=last].to_vec(),
    }
}

/// A layer of 4 MiB pushed upstream, and ferry in front of the fault proxy.
struct Setup {
    upstream: Upstream,
    proxy: FakeFaultProxy,
    ferry: Ferry,
    blob: images::Blob,
}

async fn setup() -> Setup {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let image = images::large(4 << 20);
    RegistryClient::new(&upstream.url())
        .push_image("example/large", "v1", &image)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_simple(&proxy.url());
    let blob = image.layers()[0].clone();
    Setup {
        upstream,
        proxy,
        ferry,
        blob,
    }
}

impl Setup {
    fn ferry_url(&self) -> String {
        format!(
            "{}/v2/{CACHE}/example/large/blobs/{}",
            self.ferry.url(),
            self.blob.digest
        )
    }

    fn upstream_url(&self) -> String {
        format!(
            "{}/v2/example/large/blobs/{}",
            self.upstream.url(),
            self.blob.digest
        )
    }
}

/// Ranges like those a zstd:chunked pull names: scattered file chunks.
const SCATTERED: &str = "bytes=1000-1999,70000-135535,1048576-1050000,3000000-3100000";

/// Every Range case answered from the stored blob as docker-registry
/// answers it, except where ferry decided otherwise (listed with why).
#[tokio::test]
async fn range_answers_match_docker_registry_except_where_decided() {
    let s = setup().await;
    let blob = &s.blob.data[..];
    let size = blob.len();
    let whole = get_body(&s.ferry_url(), &[]).await.unwrap();
    assert_eq!(whole.digest, s.blob.digest, "warming the cache");

    let etag = format!("\"{}\"", s.blob.digest);
    let same: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("single", vec![("range", "bytes=2-4")]),
        ("open", vec![("range", "bytes=100-")]),
        ("suffix", vec![("range", "bytes=-300")]),
        ("suffix past the start", vec![("range", "bytes=-99999999")]),
        (
            "end past the size",
            vec![("range", "bytes=4194000-99999999")],
        ),
        ("start past the size", vec![("range", "bytes=99999999-")]),
        ("several", vec![("range", SCATTERED)]),
        (
            "several, out of order",
            vec![("range", "bytes=500-599,0-9,300-399")],
        ),
        ("empty list elements", vec![("range", "bytes=0-1,,4-5")]),
        // Not merged: containers/image maps parts to its chunks by position.
        ("touching", vec![("range", "bytes=0-99,100-199,1000-1099")]),
        (
            "one unsatisfiable of two",
            vec![("range", "bytes=0-1,99999999-")],
        ),
        (
            "all unsatisfiable",
            vec![("range", "bytes=99999999-,99999999999-")],
        ),
        (
            "If-Range of this blob",
            vec![("range", SCATTERED), ("if-range", &etag)],
        ),
        (
            "If-Range of another",
            vec![("range", SCATTERED), ("if-range", "\"sha256:00\"")],
        ),
        (
            "If-Range weak",
            vec![("range", SCATTERED), ("if-range", "W/\"x\"")],
        ),
        (
            "If-Range date",
            vec![
                ("range", SCATTERED),
                ("if-range", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ],
        ),
    ];
    for (case, headers) in &same {
        let ferry = ask(&s.ferry_url(), headers).await;
        let registry = ask(&s.upstream_url(), headers).await;
        assert_eq!(ferry, registry, "{case}: ferry vs docker-registry");
    }
    let several = ask(&s.ferry_url(), &[("range", SCATTERED)]).await;
    assert_eq!(several.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        several.parts,
        vec![
            part(blob, 1000, 1999),
            part(blob, 70000, 135535),
            part(blob, 1048576, 1050000),
            part(blob, 3000000, 3100000),
        ]
    );

    // Where ferry answers otherwise: (case, Range, docker-registry's
    // status, ferry's answer).
    let full = RangeAnswer {
        status: StatusCode::OK,
        content_range: None,
        parts: vec![Part {
            content_range: String::new(),
            data: blob.to_vec(),
        }],
    };
    let decided = [
        // RFC 9110 §14.1.1: a suffix of 0 bytes is unsatisfiable; Go
        // answers 206 "bytes SIZE-(SIZE-1)/SIZE" with an empty body.
        (
            "bytes=-0",
            StatusCode::PARTIAL_CONTENT,
            RangeAnswer {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                content_range: Some(format!("bytes */{size}")),
                parts: vec![],
            },
        ),
        // RFC 9110 §14.2: an invalid Range is ignored (Go answers 416).
        ("bytes=4-2", StatusCode::RANGE_NOT_SATISFIABLE, full.clone()),
        ("bytes=abc", StatusCode::RANGE_NOT_SATISFIABLE, full.clone()),
        ("items=0-1", StatusCode::RANGE_NOT_SATISFIABLE, full.clone()),
        (
            "bytes=0-1,x",
            StatusCode::RANGE_NOT_SATISFIABLE,
            full.clone(),
        ),
        // Overlapping ranges are coalesced (Go sends each).
        (
            "bytes=0-99,50-149",
            StatusCode::PARTIAL_CONTENT,
            single(blob, 0, 149),
        ),
        (
            "bytes=1000-1099,0-99,50-149",
            StatusCode::PARTIAL_CONTENT,
            RangeAnswer {
                status: StatusCode::PARTIAL_CONTENT,
                content_range: None,
                parts: vec![part(blob, 1000, 1099), part(blob, 0, 149)],
            },
        ),
        // Go answers 200 when the ranges add up to more than the blob.
        ("bytes=0-,0-", StatusCode::OK, single(blob, 0, size - 1)),
    ];
    for (range, registry_status, expected) in decided {
        let registry = ask(&s.upstream_url(), &[("range", range)]).await;
        assert_eq!(registry.status, registry_status, "{range}: docker-registry");
        let ferry = ask(&s.ferry_url(), &[("range", range)]).await;
        assert_eq!(ferry, expected, "{range}: ferry");
    }

    // Past the cap: the whole blob (docker-registry has no cap).
    let many: Vec<String> = (0..3000)
        .map(|i| format!("{}-{}", i * 10, i * 10))
        .collect();
    let many = format!("bytes={}", many.join(","));
    assert_eq!(ask(&s.ferry_url(), &[("range", &many)]).await, full);

    // HEAD answers as GET would, without the body.
    let head = http_client()
        .head(s.ferry_url())
        .header("range", SCATTERED)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::PARTIAL_CONTENT);
    let get = http_client()
        .get(s.ferry_url())
        .header("range", SCATTERED)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["content-length"],
        get.headers()["content-length"]
    );

    let m = inspect::metrics(&s.ferry.url()).await;
    assert!(
        m.sum(
            "ferry_blob_range_requests_total",
            &[("answer", "multipart")]
        ) >= 3.0
    );
}

fn single(blob: &[u8], first: usize, last: usize) -> RangeAnswer {
    let p = part(blob, first, last);
    RangeAnswer {
        status: StatusCode::PARTIAL_CONTENT,
        content_range: Some(p.content_range.clone()),
        parts: vec![p],
    }
}

/// A multi-range request for a blob not yet cached waits for the one
/// whole-blob download (held at the fake proxy until the request reached
/// ferry) and gets exactly the ranges' bytes; upstream saw one GET of the
/// whole blob.
#[tokio::test]
async fn multi_range_answer_of_an_arriving_blob_is_exact_and_fetches_once() {
    let s = setup().await;
    s.proxy.set_fault(Fault::HoldBlobGets);
    let url = s.ferry_url();
    let client = tokio::spawn(async move { ask(&url, &[("range", SCATTERED)]).await });
    inspect::wait_until(
        "ferry's upstream GET to be held",
        std::time::Duration::from_secs(20),
        || s.proxy.held() >= 1,
    )
    .await;
    s.proxy.release_held();
    let answer = client.await.unwrap();
    let blob = &s.blob.data[..];
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        answer.parts,
        vec![
            part(blob, 1000, 1999),
            part(blob, 70000, 135535),
            part(blob, 1048576, 1050000),
            part(blob, 3000000, 3100000),
        ]
    );
    assert_eq!(s.proxy.blob_gets(&s.blob.digest), 1);
    assert!(s.proxy.blob_bytes_sent(&s.blob.digest) >= blob.len() as u64);
    assert!(inspect::has_blob(&s.ferry.data_dir(), &s.blob.digest));
}

/// A download whose bytes do not hash to the digest: a multi-range answer
/// of it, all of whose ranges arrived before the end, never completes
/// (the last part's last byte waits for the verification, which fails),
/// and nothing is cached.
#[tokio::test]
async fn multi_range_answer_of_a_corrupted_download_never_completes() {
    let s = setup().await;
    s.proxy.set_fault(Fault::CorruptBlob);
    let read = get_body(&s.ferry_url(), &[("range", "bytes=0-99,1000-1099")]).await;
    if let Ok(read) = &read {
        assert!(
            read.status != StatusCode::PARTIAL_CONTENT || !read.complete(),
            "a complete 206 of a corrupted download ({} bytes)",
            read.len
        );
    }
    assert!(!inspect::has_blob(&s.ferry.data_dir(), &s.blob.digest));
}

/// A multi-range request that joins a download under way (slowed at the
/// fake proxy; asked once the proxy relayed 1.5 MiB of 4, so some ranges
/// have arrived and one has not) gets exactly the ranges' bytes from the
/// growing file (`X-Cache: MISS`), and the blob is still fetched once.
#[tokio::test]
async fn multi_range_request_joining_a_download_gets_the_exact_bytes() {
    let s = setup().await;
    s.proxy.set_fault(Fault::SlowBlob {
        // The 2.5 MiB still to come take at least 2 s: the request below
        // joins well before the download ends.
        piece: 64 * 1024,
        pause_ms: 50,
    });
    let url = s.ferry_url();
    let whole = tokio::spawn(async move { get_body(&url, &[]).await });
    inspect::wait_until(
        "the proxy to relay 1.5 MiB of the blob",
        std::time::Duration::from_secs(30),
        || s.proxy.blob_bytes_sent(&s.blob.digest) >= 3 << 19,
    )
    .await;
    let resp = http_client()
        .get(s.ferry_url())
        .header("range", SCATTERED)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()["x-cache"], "MISS", "not from the download");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    let body = resp.bytes().await.unwrap();
    let blob = &s.blob.data[..];
    assert_eq!(
        parse_multipart(&content_type, &body),
        vec![
            part(blob, 1000, 1999),
            part(blob, 70000, 135535),
            part(blob, 1048576, 1050000),
            part(blob, 3000000, 3100000),
        ]
    );
    let whole = whole.await.unwrap().unwrap();
    assert_eq!(whole.digest, s.blob.digest);
    assert_eq!(s.proxy.blob_gets(&s.blob.digest), 1);
}
