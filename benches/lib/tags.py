#!/usr/bin/env python3
"""Many tags, pushed to or pulled through a registry over keep-alive HTTP.

    tags.py push --registry http://127.0.0.1:P --repo bench/tags --count N \
                 --config DIGEST:SIZE --layer DIGEST:SIZE [--concurrency 4]
    tags.py pull --base http://127.0.0.1:P/v2/<name> --count N [--concurrency 8]

push: PUTs N distinct OCI image manifests (same config and layer, told apart
by an annotation) as tags t00000, t00001, ... The blobs must already be in
the repository.
pull: GETs /manifests/tNNNNN for each tag under --base (with an OCI Accept
header) and fails if any answer is not 200.

Both print "N ok in S s". Bounded: N requests, each with a 60 s timeout.
"""

import argparse
import hashlib
import http.client
import json
import sys
import threading
import time
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def tag_name(i):
    return "t%05d" % i


def manifest(i, config, layer):
    cd, cs = config.rsplit(":", 1)
    ld, ls = layer.rsplit(":", 1)
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": int(cs)},
            "layers": [{"mediaType": OCI_LAYER, "digest": ld, "size": int(ls)}],
            "annotations": {"org.example.bench.tag": tag_name(i)},
        },
        separators=(",", ":"),
    ).encode()


def run(count, concurrency, work):
    errors = []
    lock = threading.Lock()
    nxt = [0]

    def worker():
        conn = None
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= count or errors:
                break
            for attempt in range(3):
                try:
                    if conn is None:
                        conn = work.connect()
                    work.do(conn, i)
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn = None
                    if attempt == 2:
                        errors.append("%s: %s" % (tag_name(i), e))
                except RuntimeError as e:
                    errors.append(str(e))
                    break

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        print("errors: %s" % errors[:5], file=sys.stderr)
        sys.exit(1)
    print("%d ok in %.1f s" % (count, dt))


class Push:
    def __init__(self, args):
        u = urllib.parse.urlsplit(args.registry)
        self.host, self.port = u.hostname, u.port
        self.repo, self.config, self.layer = args.repo, args.config, args.layer

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def do(self, conn, i):
        body = manifest(i, self.config, self.layer)
        conn.request(
            "PUT",
            "/v2/%s/manifests/%s" % (self.repo, tag_name(i)),
            body=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError("PUT %s: HTTP %d" % (tag_name(i), r.status))
        want = "sha256:" + hashlib.sha256(body).hexdigest()
        got = r.getheader("Docker-Content-Digest")
        if got and got != want:
            raise RuntimeError("PUT %s: digest %s, expected %s" % (tag_name(i), got, want))


class Pull:
    def __init__(self, args):
        u = urllib.parse.urlsplit(args.base)
        self.host, self.port, self.path = u.hostname, u.port, u.path.rstrip("/")

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def do(self, conn, i):
        conn.request("GET", "%s/manifests/%s" % (self.path, tag_name(i)), headers={"Accept": ACCEPT})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError("GET %s: HTTP %d" % (tag_name(i), r.status))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push")
    p.add_argument("--registry", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--config", required=True, help="DIGEST:SIZE")
    p.add_argument("--layer", required=True, help="DIGEST:SIZE")
    p.add_argument("--concurrency", type=int, default=4)
    q = sub.add_parser("pull")
    q.add_argument("--base", required=True)
    q.add_argument("--count", type=int, required=True)
    q.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    work = Push(args) if args.cmd == "push" else Pull(args)
    run(args.count, args.concurrency, work)


if __name__ == "__main__":
    main()
