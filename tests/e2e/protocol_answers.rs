//! Exact protocol answers: malformed and unknown names, references,
//! digests, `n`/`last`, methods and paths, each sent to Debian's
//! docker-registry directly and to ferry in front of it (Range requests
//! are `registry_api`'s).
//!
//! Each row says what both answer: the status, and the OCI error code or
//! the kind of body. A row where ferry deliberately answers otherwise says
//! why; a row without a reason must get the same answer from both. The
//! test fails when either program's answer leaves its row, so the table
//! stays true of docker-registry too. Run with `--nocapture` to print it.

use std::fmt;

use serde_json::Value;

use crate::support::raw_http::{exchange, RawResponse};
use crate::support::registry_client::ACCEPT_ALL_MANIFESTS;
use crate::support::*;

/// What a body is, as a user checking the answer would tell it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    /// An OCI error body whose first error has this code.
    Code(&'static str),
    /// A body that is not JSON: docker-registry's router's plain-text
    /// `404 page not found` or `Method not allowed`, a redirect's page.
    /// (Go's mux sends a 301 for dot segments with no body at all.)
    Text,
    /// No body (HEAD, OPTIONS, an accepted upload).
    Empty,
    /// JSON of no other kind here (`{}` from `/v2/`).
    Json,
    /// Bytes that hash to the `Docker-Content-Digest` sent with them.
    Content,
    /// A tag list, catalog or referrers index of this many entries, with
    /// or without a `Link` to a next page.
    Page(usize, bool),
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Code(code) => f.write_str(code),
            Body::Text => f.write_str("text"),
            Body::Empty => f.write_str("no body"),
            Body::Json => f.write_str("JSON"),
            Body::Content => f.write_str("content"),
            Body::Page(n, link) => {
                let entries = if *n == 1 { "entry" } else { "entries" };
                let next = if *link { " + Link" } else { "" };
                write!(f, "{n} {entries}{next}")
            }
        }
    }
}

use Body::*;

type Answer = (u16, Body);

struct Row {
    case: &'static str,
    /// `METHOD PATH`; in the path `{name}` is the repository
    /// (`library/busybox` upstream, `docker-cache/library/busybox` through
    /// ferry) and `{base}` ferry's base path alone (nothing upstream).
    request: String,
    registry: Answer,
    ferry: Answer,
    /// Why ferry answers otherwise; empty when it answers the same.
    why: &'static str,
}

fn same(case: &'static str, request: String, answer: Answer) -> Row {
    differs(case, request, answer, answer, "")
}

fn differs(
    case: &'static str,
    request: String,
    registry: Answer,
    ferry: Answer,
    why: &'static str,
) -> Row {
    Row {
        case,
        request,
        registry,
        ferry,
        why,
    }
}

const ROUTER_TEXT: &str = "same status; docker-registry's router answers it in plain text, \
    ferry with the spec's JSON error body";
const DOTS: &str = "docker-registry (Go's mux) redirects to the path with the dot segments \
    resolved, which names another resource; ferry resolves nothing, so no request reaches \
    a name or blob it did not spell out";
const READ_ONLY: &str = "ferry is a read-only cache: every push, upload and delete gets \
    405 UNSUPPORTED with `Allow: GET, HEAD` (empty on upload paths)";
const METHOD_TEXT: &str = "same status and Allow header; docker-registry's router answers in \
    plain text, ferry with the spec's UNSUPPORTED error body";
const HEAD_LIKE_GET: &str = "RFC 9110 9.1: a server MUST answer HEAD wherever it answers GET; \
    docker-registry's router lists GET only";
const NO_TAG_PAGES: &str = "docker-registry 2.8 ignores n and last on tag lists (distribution 3 \
    pages them); ferry pages as the spec says, n=0 being an empty list without Link";
const SHA384: &str = "ferry verifies what it serves and supports the OCI image-spec's \
    registered sha256 and sha512; an unsupported algorithm is DIGEST_INVALID, as for md5 \
    below (docker-registry's go-digest also knows sha384)";
const STORAGE_500: &str = "docker-registry takes the malformed digest for a tag and fails in \
    its storage (a 500 naming its storage path); ferry answers as docker-registry does for \
    the same digest on /blobs/";

/// The table. `request` is `METHOD PATH`.
#[rustfmt::skip]
fn rows(manifest: &str, layer: &str) -> Vec<Row> {
    let absent = format!("sha256:{}", "0".repeat(64));
    let absent512 = format!("sha512:{}", "a".repeat(128));
    let a = |n: usize| "a".repeat(n);
    let upper = format!("sha256:{}", "A".repeat(64));
    let non_hex = format!("sha256:{}", "g".repeat(64));
    let md5 = format!("md5:{}", a(32));
    let sha384 = format!("sha384:{}", a(96));
    let blake3 = format!("blake3:{}", a(64));
    let escaped_colon = layer.replace(':', "%3A");
    let m = |reference: &str| format!("GET /v2/{{name}}/manifests/{reference}");
    let b = |digest: &str| format!("GET /v2/{{name}}/blobs/{digest}");
    let t = |query: &str| format!("GET /v2/{{name}}/tags/list{query}");
    let c = |query: &str| format!("GET /v2/_catalog{query}");
    let named = |len: usize| format!("GET /v2/{{base}}{}/manifests/latest", a(len));
    let head = |request: String| request.replacen("GET", "HEAD", 1);
    let with = |method: &str, request: String| request.replacen("GET", method, 1);
    let e = Code;
    vec![
        // The base endpoint and paths that name nothing.
        same("API version check", "GET /v2/".into(), (200, Json)),
        same("API version check", "HEAD /v2/".into(), (200, Empty)),
        differs("push-like method on /v2/", "POST /v2/".into(), (200, Json), (405, e("UNSUPPORTED")),
            "docker-registry answers any method on /v2/; ferry answers GET and HEAD there (the spec's end-1)"),
        differs("no such endpoint", "GET /v2/{name}/unknownthing/x".into(), (404, Text), (404, e("UNSUPPORTED")),
            "same status; the spec has no code for an unknown path, so ferry's JSON body says UNSUPPORTED"),
        differs("trailing slash", t("/"), (301, Text), (404, e("UNSUPPORTED")),
            "docker-registry redirects to the path without the slash; ferry does not rewrite paths"),
        // Manifests.
        same("manifest by tag", m("1.36"), (200, Content)),
        same("manifest by tag", head(m("1.36")), (200, Empty)),
        same("manifest by digest", m(manifest), (200, Content)),
        same("tag with a percent-escape (1%2e36)", m("1%2e36"), (200, Content)),
        same("tag absent", m("nosuch"), (404, e("MANIFEST_UNKNOWN"))),
        same("tag absent", head(m("nosuch")), (404, Empty)),
        same("tag of 128 characters, absent", m(&a(128)), (404, e("MANIFEST_UNKNOWN"))),
        differs("tag of 129 characters", m(&a(129)), (404, Text), (404, e("MANIFEST_UNKNOWN")), ROUTER_TEXT),
        differs("tag with `!`", m("bad!tag"), (404, Text), (404, e("MANIFEST_UNKNOWN")), ROUTER_TEXT),
        same("tag with `!`", head(m("bad!tag")), (404, Empty)),
        differs("tag starting with `.`", m(".x"), (404, Text), (404, e("MANIFEST_UNKNOWN")), ROUTER_TEXT),
        differs("algorithm without hex", m("sha256:"), (404, Text), (404, e("MANIFEST_UNKNOWN")), ROUTER_TEXT),
        differs("hex without algorithm", m(":abc"), (404, Text), (404, e("MANIFEST_UNKNOWN")), ROUTER_TEXT),
        differs("escaped `..` as reference", m("%2e%2e"), (301, Empty), (404, e("MANIFEST_UNKNOWN")), DOTS),
        same("digest absent", m(&absent), (404, e("MANIFEST_UNKNOWN"))),
        same("digest absent", head(m(&absent)), (404, Empty)),
        same("sha512 digest absent", m(&absent512), (404, e("MANIFEST_UNKNOWN"))),
        differs("digest with short hex", m("sha256:abc"), (500, e("UNKNOWN")), (400, e("DIGEST_INVALID")), STORAGE_500),
        differs("digest with uppercase hex", m(&upper), (500, e("UNKNOWN")), (400, e("DIGEST_INVALID")), STORAGE_500),
        differs("digest of algorithm md5", m(&md5), (500, e("UNKNOWN")), (400, e("DIGEST_INVALID")), STORAGE_500),
        differs("digest of algorithm sha384", m(&sha384), (404, e("MANIFEST_UNKNOWN")), (400, e("DIGEST_INVALID")), SHA384),
        same("repository absent", "GET /v2/{base}nosuch/repo/manifests/latest".into(), (404, e("MANIFEST_UNKNOWN"))),
        same("repository absent, by digest", format!("GET /v2/{{base}}nosuch/repo/manifests/{absent}"),
            (404, e("MANIFEST_UNKNOWN"))),
        // Names.
        differs("no cache serves the name", "GET /v2/nobase/repo/manifests/latest".into(),
            (404, e("MANIFEST_UNKNOWN")), (404, e("NAME_UNKNOWN")),
            "docker-registry has no base paths: any name may be a repository; ferry knows no cache serves it"),
        differs("uppercase first component", "GET /v2/{base}Library/busybox/manifests/latest".into(),
            (404, e("MANIFEST_UNKNOWN")), (404, e("NAME_UNKNOWN")),
            "docker-registry reads an uppercase first component as a registry host; names are lowercase (spec)"),
        differs("uppercase component", "GET /v2/{base}library/Busybox/manifests/latest".into(),
            (404, Text), (404, e("NAME_UNKNOWN")), ROUTER_TEXT),
        differs("component ending in `_`", "GET /v2/{base}a_/manifests/latest".into(),
            (404, Text), (404, e("NAME_UNKNOWN")), ROUTER_TEXT),
        same("uppercase name, tag list", "GET /v2/{base}Library/busybox/tags/list".into(), (404, e("NAME_UNKNOWN"))),
        same("name of 255 characters through ferry", named(242), (404, e("MANIFEST_UNKNOWN"))),
        differs("name of 256 characters through ferry", named(243), (404, e("MANIFEST_UNKNOWN")), (400, e("NAME_INVALID")),
            "the spec's limit (under 256) is on the name the client sends, which holds ferry's base path"),
        differs("name of 256 characters upstream", named(256), (500, e("UNKNOWN")), (400, e("NAME_INVALID")),
            "distribution means 400 NAME_INVALID here; 2.8 does not map the error and answers 500"),
        differs("`..` component", "GET /v2/{base}library/../busybox/manifests/1.36".into(),
            (301, Empty), (404, e("NAME_UNKNOWN")), DOTS),
        differs("escaped `..` component", "GET /v2/{base}library/%2e%2e/library/busybox/manifests/1.36".into(),
            (301, Empty), (404, e("NAME_UNKNOWN")), DOTS),
        differs("encoded slash in the name", "GET /v2/{base}library%2fbusybox/manifests/1.36".into(),
            (200, Content), (404, e("NAME_UNKNOWN")),
            "`%2F` is data inside one segment (RFC 3986 2.2), and no name component holds a `/`; \
             docker-registry decodes it into a separator"),
        // Blobs.
        same("blob", b(layer), (200, Content)),
        same("blob", head(b(layer)), (200, Empty)),
        same("blob digest with an escaped colon", b(&escaped_colon), (200, Content)),
        same("blob absent", b(&absent), (404, e("BLOB_UNKNOWN"))),
        same("blob absent", head(b(&absent)), (404, Empty)),
        same("sha512 blob absent", b(&absent512), (404, e("BLOB_UNKNOWN"))),
        same("digest with short hex", b("sha256:abc"), (400, e("DIGEST_INVALID"))),
        same("digest with short hex", head(b("sha256:abc")), (400, Empty)),
        same("digest with uppercase hex", b(&upper), (400, e("DIGEST_INVALID"))),
        same("digest with non-hex letters", b(&non_hex), (400, e("DIGEST_INVALID"))),
        same("digest of algorithm md5", b(&md5), (400, e("DIGEST_INVALID"))),
        same("digest of algorithm blake3", b(&blake3), (400, e("DIGEST_INVALID"))),
        differs("digest of algorithm sha384", b(&sha384), (404, e("BLOB_UNKNOWN")), (400, e("DIGEST_INVALID")), SHA384),
        differs("not a digest", b("notadigest"), (404, Text), (404, e("BLOB_UNKNOWN")), ROUTER_TEXT),
        differs("escaped traversal", b("..%2f..%2fx"), (301, Empty), (404, e("BLOB_UNKNOWN")), DOTS),
        same("blob in an absent repository", format!("GET /v2/{{base}}nosuch/repo/blobs/{layer}"), (404, e("BLOB_UNKNOWN"))),
        // Referrers (OCI 1.1).
        differs("referrers", format!("GET /v2/{{name}}/referrers/{manifest}"), (404, Text), (200, Page(0, false)),
            "ferry implements the OCI 1.1 referrers API; distribution 2.8 predates it"),
        differs("referrers of a short-hex digest", "GET /v2/{name}/referrers/sha256:abc".into(),
            (404, Text), (400, e("DIGEST_INVALID")), "as above; the spec's end-12a answers 400 for a bad digest"),
        differs("referrers of a tag", "GET /v2/{name}/referrers/1.36".into(),
            (404, Text), (404, e("MANIFEST_UNKNOWN")), "as above; a tag names no subject digest"),
        // Tag lists.
        same("tag list", t(""), (200, Page(6, false))),
        differs("tag list, n=2", t("?n=2"), (200, Page(6, false)), (200, Page(2, true)), NO_TAG_PAGES),
        differs("tag list, n=0", t("?n=0"), (200, Page(6, false)), (200, Page(0, false)), NO_TAG_PAGES),
        same("tag list, n=6 (all there are)", t("?n=6"), (200, Page(6, false))),
        same("tag list, n=-1 (ignored)", t("?n=-1"), (200, Page(6, false))),
        same("tag list, n=abc (ignored)", t("?n=abc"), (200, Page(6, false))),
        same("tag list, n past 64 bits (ignored)", t("?n=99999999999999999999"), (200, Page(6, false))),
        differs("tag list, last beyond the end", t("?last=zzz"), (200, Page(6, false)), (200, Page(0, false)), NO_TAG_PAGES),
        differs("tag list, n=2&last=b", t("?n=2&last=b"), (200, Page(6, false)), (200, Page(2, false)), NO_TAG_PAGES),
        differs("tag list", head(t("")), (405, Empty), (200, Empty), HEAD_LIKE_GET),
        same("tag list of an absent repository", "GET /v2/{base}nosuch/repo/tags/list".into(), (404, e("NAME_UNKNOWN"))),
        differs("tag list", with("POST", t("")), (405, Text), (405, e("UNSUPPORTED")), METHOD_TEXT),
        // The catalog: one repository each, the one pulled.
        same("catalog", c(""), (200, Page(1, false))),
        same("catalog, n=0", c("?n=0"), (200, Page(0, false))),
        same("catalog, n=1 (all there are)", c("?n=1"), (200, Page(1, false))),
        same("catalog, n=-1 (ignored)", c("?n=-1"), (200, Page(1, false))),
        same("catalog, n=abc (ignored)", c("?n=abc"), (200, Page(1, false))),
        differs("catalog, n=100000", c("?n=100000"), (400, e("PAGINATION_NUMBER_INVALID")), (200, Page(1, false)),
            "docker-registry caps n at its maxentries (1000) with a code outside the spec; \
             the spec asks for n entries or all there are"),
        same("catalog, last beyond the end", c("?last=zzz"), (200, Page(0, false))),
        differs("catalog", head(c("")), (405, Empty), (200, Empty), HEAD_LIKE_GET),
        // Methods a read-only cache does not answer.
        differs("manifest", with("POST", m("1.36")), (405, Text), (405, e("UNSUPPORTED")), METHOD_TEXT),
        differs("manifest", with("PATCH", m("1.36")), (405, Text), (405, e("UNSUPPORTED")), METHOD_TEXT),
        differs("manifest", with("TRACE", m("1.36")), (405, Text), (405, e("UNSUPPORTED")), METHOD_TEXT),
        same("manifest", with("OPTIONS", m("1.36")), (200, Empty)),
        differs("manifest push, empty body", with("PUT", m("1.36")), (400, e("MANIFEST_INVALID")), (405, e("UNSUPPORTED")), READ_ONLY),
        differs("manifest delete, absent", with("DELETE", m(&absent)), (404, e("MANIFEST_UNKNOWN")), (405, e("UNSUPPORTED")), READ_ONLY),
        differs("blob delete, absent", with("DELETE", b(&absent)), (404, e("BLOB_UNKNOWN")), (405, e("UNSUPPORTED")), READ_ONLY),
        differs("upload start", "POST /v2/{name}/blobs/uploads/".into(), (202, Empty), (405, e("UNSUPPORTED")), READ_ONLY),
        differs("upload status", "GET /v2/{name}/blobs/uploads/abc".into(), (404, e("BLOB_UPLOAD_INVALID")), (405, e("UNSUPPORTED")), READ_ONLY),
    ]
}

/// The tags `library/busybox` carries upstream (six, for the pages).
const TAGS: [&str; 6] = ["1.36", "1.35", "latest", "a", "b", "c"];

#[tokio::test]
async fn ferry_answers_what_the_spec_and_docker_registry_answer() {
    let (upstream, image) = upstream_with_busybox().await;
    let pusher = RegistryClient::new(&upstream.url());
    for tag in &TAGS[1..] {
        pusher
            .push_manifest(BUSYBOX, tag, &image.media_type, &image.manifest)
            .await;
    }
    let ferry = Ferry::start_simple(&upstream.url());
    // One pull through ferry, so that its catalog holds the repository
    // as docker-registry's does.
    let pulled = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
        .await;
    assert_eq!(pulled.status, reqwest::StatusCode::OK);

    let rows = rows(&image.digest, &image.layers()[0].digest);
    let mut table = vec![
        "| case | request | docker-registry | ferry | why ferry differs |".to_string(),
        "|---|---|---|---|---|".to_string(),
    ];
    let mut wrong = Vec::new();
    for row in &rows {
        let (method, path) = row.request.split_once(' ').expect("METHOD PATH");
        let upstream_path = path.replace("{name}", BUSYBOX).replace("{base}", "");
        let ferry_path = path
            .replace("{name}", &format!("{CACHE}/{BUSYBOX}"))
            .replace("{base}", &format!("{CACHE}/"));
        let got_registry = answer(&upstream.host(), method, &upstream_path).await;
        let got_ferry = answer(ferry.host(), method, &ferry_path).await;
        let request = abbreviate(&row.request);
        let describe = |a: &Answer| format!("{} {}", a.0, a.1);
        for (who, expected, got) in [
            ("docker-registry", &row.registry, &got_registry),
            ("ferry", &row.ferry, &got_ferry),
        ] {
            if describe(expected) != *got {
                wrong.push(format!(
                    "{} / {request}: {who} answered {got}, the table says {}",
                    row.case,
                    describe(expected)
                ));
            }
        }
        let answers_differ = row.registry != row.ferry;
        if answers_differ == row.why.is_empty() {
            wrong.push(format!(
                "{} / {request}: a row needs a reason exactly when the answers differ",
                row.case
            ));
        }
        table.push(format!(
            "| {} | `{request}` | {} | {} | {} |",
            row.case,
            describe(&row.registry),
            describe(&row.ferry),
            row.why
        ));
    }
    println!("{}", table.join("\n"));
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// `STATUS BODY` as the table writes it. A 405 must name the allowed
/// methods (RFC 9110 15.5.6; both programs do): one without `Allow` is
/// told apart, and so leaves its row.
async fn answer(host: &str, method: &str, path: &str) -> String {
    let resp = exchange(host, method, path, &[("Accept", ACCEPT_ALL_MANIFESTS)]).await;
    let mut answer = format!("{} {}", resp.status, body_of(&resp));
    if resp.status == 405 && resp.header("allow").is_none() {
        answer.push_str(" without Allow");
    }
    answer
}

fn body_of(resp: &RawResponse) -> String {
    if resp.body.is_empty() {
        return Empty.to_string();
    }
    if let Some(digest) = resp.header("docker-content-digest") {
        return if digest_of(&resp.body) == digest {
            Content.to_string()
        } else {
            format!("content not matching its digest {digest}")
        };
    }
    let Ok(json) = serde_json::from_slice::<Value>(&resp.body) else {
        return Text.to_string();
    };
    if let Some(code) = json["errors"][0]["code"].as_str() {
        return code.to_string();
    }
    let entries = ["tags", "repositories", "manifests"]
        .iter()
        .find_map(|key| json[key].as_array());
    match entries {
        Some(list) => Page(list.len(), resp.header("link").is_some()).to_string(),
        None => Json.to_string(),
    }
}

/// The path with long runs of one kind (digests, long names) shortened,
/// for a table that fits on a screen.
fn abbreviate(path: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() > 16 {
            out.push_str(&format!("{}…({})", &run[..6], run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in path.chars() {
        if ch.is_ascii_alphanumeric() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    out
}
