#!/usr/bin/env python3
"""Load for benches/memory.sh: a slow upstream link and many clients.

    memload.py relay --target HOST:PORT --rate BYTES_PER_S
        A TCP relay whose every connection carries at most BYTES_PER_S from
        the target to the client (a thin uplink per connection, so that a
        256 MiB blob stays "still downloading" for seconds). Prints
        "relay PORT" on stdout once listening; stops on SIGTERM/SIGINT.

    memload.py warm --url URL --conns N --read BYTES [--rounds R] [--timeout S]
        N concurrent HTTP/1.1 keep-alive connections. Each sends GET URL and
        reads the status line and headers; once all N responses have begun
        (a barrier, so all N are in flight at once), each reads BYTES of the
        body (the whole body if it is shorter; "--read 0": the whole body)
        and, with --rounds R > 1 on a small body (a manifest), asks again,
        R times in all. Prints one JSON line: ok/failed counts, bytes, seconds.

Loopback only; every wait is bounded by --timeout.
"""

import argparse
import asyncio
import json
import signal
import sys
import time
from urllib.parse import urlsplit

CHUNK = 256 * 1024


async def relay_pipe(reader, writer, rate):
    """Forwards reader to writer; with a rate, at most rate bytes/s."""
    start = time.monotonic()
    sent = 0
    try:
        while True:
            data = await reader.read(CHUNK if rate is None else min(CHUNK, max(rate // 20, 4096)))
            if not data:
                break
            writer.write(data)
            await writer.drain()
            sent += len(data)
            if rate is not None:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def relay(args):
    host, port = args.target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            relay_pipe(client_reader, up_writer, None),
            relay_pipe(up_reader, client_writer, args.rate),
        )
        for w in (client_writer, up_writer):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"relay {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


async def read_head(reader):
    """Status code and content length of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, length


async def warm_client(args, url, all_started, started, results):
    request = (
        f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Accept: {args.accept}\r\n\r\n"
    ).encode()
    writer = None
    got = 0
    try:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        for round_no in range(args.rounds):
            writer.write(request)
            status, length = await read_head(reader)
            if status != 200 or length is None:
                raise RuntimeError(f"HTTP {status}")
            if round_no == 0:
                started[0] += 1
                if started[0] == args.conns:
                    all_started.set()
                await all_started.wait()
            want = length if args.read == 0 else min(args.read, length)
            while want > 0:
                data = await reader.read(min(want, CHUNK))
                if not data:
                    raise RuntimeError("connection closed early")
                want -= len(data)
                got += len(data)
            if want == 0 and (args.read == 0 or args.read >= length):
                continue
            break  # a partial read leaves the connection unusable
        results["ok"] += 1
    except Exception as e:  # noqa: BLE001 -- counted and reported
        results["failed"] += 1
        results["errors"][type(e).__name__ + ": " + str(e)[:80]] = (
            results["errors"].get(type(e).__name__ + ": " + str(e)[:80], 0) + 1
        )
        # The barrier must not wait for a client that failed before it.
        if not all_started.is_set():
            started[0] += 1
            if started[0] == args.conns:
                all_started.set()
    finally:
        results["bytes"] += got
        if writer is not None:
            writer.close()


async def warm(args):
    url = urlsplit(args.url)
    all_started = asyncio.Event()
    started = [0]
    results = {"ok": 0, "failed": 0, "bytes": 0, "errors": {}}
    t0 = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(
            *(warm_client(args, url, all_started, started, results) for _ in range(args.conns))
        ),
        args.timeout,
    )
    results["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(results), flush=True)
    return 0 if results["failed"] == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--target", required=True)
    r.add_argument("--rate", type=int, required=True)
    w = sub.add_parser("warm")
    w.add_argument("--url", required=True)
    w.add_argument("--conns", type=int, default=1000)
    w.add_argument("--read", type=int, default=0)
    w.add_argument("--rounds", type=int, default=1)
    w.add_argument("--timeout", type=float, default=300)
    w.add_argument(
        "--accept",
        default="application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.docker.distribution.manifest.list.v2+json, */*",
    )
    args = p.parse_args()
    if args.cmd == "relay":
        asyncio.run(relay(args))
        return 0
    return asyncio.run(warm(args))


if __name__ == "__main__":
    sys.exit(main())
