#!/usr/bin/env python3
"""Times a server's start-up: from spawning it to its first 200 on a URL.

    startup_time.py --url http://127.0.0.1:PORT/v2/ [--timeout 60] [--log FILE] -- CMD ARGS...

Spawns CMD (stdout and stderr to --log), polls the URL every millisecond
(one short-lived HTTP/1.1 request each time, like `curl /v2/`), prints the
milliseconds from spawn to the first 200 answer, then stops the server with
SIGTERM and waits for it to exit (so a database it holds is closed cleanly
before the next start). Exits non-zero if the server never answered.
"""

import argparse
import http.client
import signal
import subprocess
import sys
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--log", default="/dev/null")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    u = urllib.parse.urlsplit(args.url)
    host, port, path = u.hostname, u.port, u.path or "/"

    log = open(args.log, "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    elapsed = None
    try:
        while time.monotonic() - t0 < args.timeout:
            if proc.poll() is not None:
                print("server exited with %s before answering" % proc.returncode, file=sys.stderr)
                break
            try:
                c = http.client.HTTPConnection(host, port, timeout=2)
                c.request("GET", path)
                status = c.getresponse().status
                c.close()
                if status == 200:
                    elapsed = time.monotonic() - t0
                    break
            except OSError:
                pass
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if elapsed is None:
        print("no 200 from %s within %ss" % (args.url, args.timeout), file=sys.stderr)
        sys.exit(1)
    print("%.1f" % (elapsed * 1000.0))


if __name__ == "__main__":
    main()
