#!/usr/bin/env python3
"""A realistic mix of manifest pulls, for counting what a cache asks upstream.

    tag_mix.py push --registry http://127.0.0.1:P --repo bench/app \
                    --config DIGEST:SIZE --layer DIGEST:SIZE --out tags.json
    tag_mix.py pull --base http://127.0.0.1:P/v2/<name> --tags tags.json \
                    --count 1000 --seconds 20 [--seed 14]

push: PUTs one distinct OCI manifest (same config and layer, told apart by an
annotation) for each tag of the mix: `latest`, 20 release tags v1.0.0 to
v1.0.19 and 20 CI tags main-sha-<7 hex>; writes {tag: digest} to --out.

pull: GETs --count manifests under --base, spread evenly over --seconds
(so the run spans --seconds / TTL tag TTLs), each drawn with a fixed seed:
35% `latest`, 30% a release tag, 20% a CI tag, 15% a digest of one of them
(a pinned deployment). Release and CI tags are drawn with a skew towards
the newest, as real fleets pull. Fails on any answer but 200 or a wrong
digest. Prints one JSON line: {"pulls": N, "by_kind": {...}, "seconds": S}.
Bounded: --count requests, each with a 30 s timeout.
"""

import argparse
import hashlib
import http.client
import json
import random
import sys
import time
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ACCEPT = OCI_MANIFEST + ", application/vnd.oci.image.index.v1+json"

RELEASES = ["v1.0.%d" % i for i in range(20)]
CI_BUILDS = ["main-sha-%s" % hashlib.sha1(b"commit %d" % i).hexdigest()[:7] for i in range(20)]
MIX = [("latest", 0.35), ("release", 0.30), ("ci", 0.20), ("digest", 0.15)]


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30), u.path.rstrip("/")


def push(args):
    conn, _ = connect(args.registry)
    cd, cs = args.config.rsplit(":", 1)
    ld, ls = args.layer.rsplit(":", 1)
    digests = {}
    for tag in ["latest"] + RELEASES + CI_BUILDS:
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": int(cs)},
                "layers": [{"mediaType": OCI_LAYER, "digest": ld, "size": int(ls)}],
                "annotations": {"org.example.bench.tag": tag},
            },
            separators=(",", ":"),
        ).encode()
        conn.request(
            "PUT",
            "/v2/%s/manifests/%s" % (args.repo, tag),
            body=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            sys.exit("PUT %s: HTTP %d" % (tag, r.status))
        digests[tag] = "sha256:" + hashlib.sha256(body).hexdigest()
    with open(args.out, "w") as f:
        json.dump(digests, f)


def skewed(rng, names):
    """The newest names (last in the list) most often."""
    i = min(int(rng.expovariate(1 / 4.0)), len(names) - 1)
    return names[len(names) - 1 - i]


def draws(seed, count, digests):
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "latest":
            yield kind, "latest", digests["latest"]
        elif kind == "release":
            tag = skewed(rng, RELEASES)
            yield kind, tag, digests[tag]
        elif kind == "ci":
            tag = skewed(rng, CI_BUILDS)
            yield kind, tag, digests[tag]
        else:
            tag = skewed(rng, RELEASES + CI_BUILDS)
            yield kind, digests[tag], digests[tag]


def pull(args):
    with open(args.tags) as f:
        digests = json.load(f)
    conn, path = connect(args.base)
    by_kind = {}
    interval = args.seconds / args.count
    t0 = time.monotonic()
    for n, (kind, reference, want) in enumerate(draws(args.seed, args.count, digests)):
        # Paced: pull n is due at n * interval (time stands in for the
        # hours a fleet takes to make this many pulls).
        due = t0 + n * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        for attempt in range(2):
            try:
                conn.request("GET", "%s/manifests/%s" % (path, reference), headers={"Accept": ACCEPT})
                r = conn.getresponse()
                r.read()
                break
            except (OSError, http.client.HTTPException):
                conn, path = connect(args.base)
                if attempt == 1:
                    raise
        got = r.getheader("Docker-Content-Digest")
        if r.status != 200 or got != want:
            sys.exit("GET %s: HTTP %d, digest %s, expected %s" % (reference, r.status, got, want))
        by_kind[kind] = by_kind.get(kind, 0) + 1
    print(json.dumps({"pulls": args.count, "by_kind": by_kind, "seconds": round(time.monotonic() - t0, 1)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push")
    p.add_argument("--registry", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--config", required=True, help="DIGEST:SIZE")
    p.add_argument("--layer", required=True, help="DIGEST:SIZE")
    p.add_argument("--out", required=True)
    q = sub.add_parser("pull")
    q.add_argument("--base", required=True)
    q.add_argument("--tags", required=True)
    q.add_argument("--count", type=int, default=1000)
    q.add_argument("--seconds", type=float, default=20.0)
    q.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    push(args) if args.cmd == "push" else pull(args)


if __name__ == "__main__":
    main()
