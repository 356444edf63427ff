#!/usr/bin/env python3
"""A TCP forwarder: Docker Desktop's `host.docker.internal`, stood in for on Linux.

On Docker Desktop (macOS, Windows), a container's connection to
host.docker.internal:PORT arrives at the host's 127.0.0.1:PORT, made by Desktop's own
process, running as the user. credd's relay compose file (docs/docker.md) relies on
that. On Linux, `host-gateway` is the default bridge's address, where a daemon bound
to loopback does not listen; the compose test (tests/tests/docker_compose.rs) runs
this in the engine's network namespace to give that address Desktop's behaviour:
every connection to LISTEN_HOST:PORT is forwarded, by a local process of the test's
user, to 127.0.0.1:TARGET_PORT.

Usage: python tcp_forward.py LISTEN_HOST PORT TARGET_PORT
Prints `READY` once listening; exits when stdin reaches EOF (spawn it with a piped
stdin: if the test dies, so does the forwarder).
"""

import asyncio
import os
import sys
import threading


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(host: str, port: int, target: int) -> None:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, uw), pipe(ur, cw))

    server = await asyncio.start_server(handle, host, port)
    print("READY", flush=True)
    async with server:
        await server.serve_forever()


def exit_with_stdin() -> None:
    while os.read(0, 4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    threading.Thread(target=exit_with_stdin, daemon=True).start()
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
