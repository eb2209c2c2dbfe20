#!/usr/bin/env python3
"""A counting TCP proxy for the benchmarks.

    count_proxy.py --target 127.0.0.1:5000 [--listen-port 0] [--control-port 0]

Forwards every connection made to the listen port to --target and counts the
bytes in each direction. On start it prints one line to stdout:

    proxy PORT control CONTROL_PORT

The control port speaks just enough HTTP for curl:

    curl -s http://127.0.0.1:CONTROL_PORT/        -> {"down": N, "up": N, "connections": N}
    curl -s http://127.0.0.1:CONTROL_PORT/reset   -> the counts, then sets them to 0

"down" is bytes from the target to the clients (what a cache downloads from
its upstream: headers and bodies), "up" the other way. Bytes are counted as
they are read, before they are forwarded, so once a client has its answer the
counts include it. Loopback only; it stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import json
import signal

COUNTS = {"down": 0, "up": 0, "connections": 0}
CHUNK = 256 * 1024


async def pipe(reader, writer, key):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            COUNTS[key] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def handle(client_reader, client_writer, host, port):
    COUNTS["connections"] += 1
    try:
        up_reader, up_writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        pipe(client_reader, up_writer, "up"),
        pipe(up_reader, client_writer, "down"),
    )
    for w in (up_writer, client_writer):
        try:
            w.close()
        except OSError:
            pass


async def control(reader, writer):
    try:
        line = await reader.readline()
        # Drain the request headers.
        while True:
            h = await reader.readline()
            if not h or h in (b"\r\n", b"\n"):
                break
        body = json.dumps(COUNTS).encode() + b"\n"
        if b" /reset" in line:
            for k in COUNTS:
                COUNTS[k] = 0
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        await writer.drain()
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    args = ap.parse_args()
    host, port = args.target.rsplit(":", 1)
    port = int(port)

    server = await asyncio.start_server(
        lambda r, w: handle(r, w, host, port), "127.0.0.1", args.listen_port, backlog=1024
    )
    ctl = await asyncio.start_server(control, "127.0.0.1", args.control_port)
    print(
        "proxy %d control %d"
        % (server.sockets[0].getsockname()[1], ctl.sockets[0].getsockname()[1]),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    ctl.close()


if __name__ == "__main__":
    asyncio.run(main())
