#!/usr/bin/env python3
"""moto's server, with a count of the STS calls it receives.

Used by credd's end-to-end tests as the upstream STS: the count is taken at the
upstream, not by credd, so "1,000 concurrent requests make exactly one AssumeRole"
is measured where it matters.

Usage:
    python moto_counting.py PORT [--exit-with-stdin]

    PORT               TCP port on 127.0.0.1 (or on $MOTO_COUNTING_HOST, an address of
                       this machine, e.g. one end of a test veth); 0 picks a free port.
    --exit-with-stdin  exit when stdin reaches EOF (spawn with a piped stdin and keep
                       its write end open; if the test process dies, moto goes too).

Once it listens it prints exactly one line on stdout and flushes it:

    READY http://127.0.0.1:PORT

Everything else (errors, and request logs when MOTO_COUNTING_VERBOSE=1) goes to stderr.

Routes added in front of moto:

    GET  /_counts        -> 200 application/json {"AssumeRole": 1, "GetCallerIdentity": 2, ...}
                            STS calls received since start or the last reset, by Action.
                            Actions never seen are absent (read them as 0).
    POST /_counts/reset  -> 200 application/json: the counts before the reset; then zero.

Every other request goes to moto unchanged (the body read to find the Action is put
back), except that with MOTO_COUNTING_ROLE_SECONDS=N set, every AssumeRole asks for
DurationSeconds=N (moto honours any value; real STS's minimum is 900): credentials that
expire within seconds, so a test sees credd renew them while a client keeps calling. A request counts as STS when its SigV4 credential scope names the "sts"
service (Authorization header or X-Amz-Credential query parameter), or when it is
unsigned and its Action is one of STS's unsigned actions
(AssumeRoleWithWebIdentity, AssumeRoleWithSAML).

SIGINT/SIGTERM stop the server and exit 0.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlencode

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

UNSIGNED_STS_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
# Bodies larger than this are not inspected for an Action (STS bodies are small).
MAX_INSPECTED_BODY = 1 << 20


def _credential_service(environ: dict[str, Any], query: dict[str, list[str]]) -> str | None:
    """The service named in the SigV4 credential scope: AKID/DATE/REGION/SERVICE/aws4_request."""
    credential = None
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in auth:
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
    elif "X-Amz-Credential" in query:
        credential = query["X-Amz-Credential"][0]
    if not credential:
        return None
    parts = credential.split("/")
    if len(parts) >= 5:
        return parts[-2]
    return None


class CountingMiddleware:
    """WSGI middleware: serves /_counts and counts STS Actions on their way to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def _json(self, start_response: Any, status: str, payload: Any) -> list[bytes]:
        body = json.dumps(payload, sort_keys=True).encode("utf-8")
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def _action(self, environ: dict[str, Any]) -> tuple[str | None, dict[str, list[str]]]:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        action = query.get("Action", [None])[0]
        content_type = environ.get("CONTENT_TYPE", "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if (
            action is None
            and content_type.startswith("application/x-www-form-urlencoded")
            and 0 < length <= MAX_INSPECTED_BODY
        ):
            body = environ["wsgi.input"].read(length)
            # Put the body back so that moto reads exactly what the client sent.
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            action = form.get("Action", [None])[0]
            role_seconds = os.environ.get("MOTO_COUNTING_ROLE_SECONDS")
            if action == "AssumeRole" and role_seconds:
                form["DurationSeconds"] = [role_seconds]
                body = urlencode(form, doseq=True).encode("utf-8")
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
        return action, query

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path in ("/_counts", "/_counts/"):
            if method != "GET":
                return self._json(start_response, "405 Method Not Allowed", {"error": "use GET"})
            return self._json(start_response, "200 OK", self._snapshot())
        if path in ("/_counts/reset", "/_counts/reset/"):
            if method != "POST":
                return self._json(start_response, "405 Method Not Allowed", {"error": "use POST"})
            with self.lock:
                before = dict(self.counts)
                self.counts.clear()
            return self._json(start_response, "200 OK", before)

        action, query = self._action(environ)
        if action:
            service = _credential_service(environ, query)
            if service == "sts" or (service is None and action in UNSIGNED_STS_ACTIONS):
                with self.lock:
                    self.counts[action] += 1
        return self.app(environ, start_response)


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    unknown = flags - {"--exit-with-stdin"}
    if len(args) != 1 or unknown:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        port = int(args[0])
    except ValueError:
        print(f"moto_counting: port must be a number, got {args[0]!r}", file=sys.stderr)
        return 2

    verbose = os.environ.get("MOTO_COUNTING_VERBOSE") == "1"
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.ERROR)

    app = CountingMiddleware(DomainDispatcherApplication(create_backend_app))
    bind = os.environ.get("MOTO_COUNTING_HOST", "127.0.0.1")
    server = make_server(bind, port, app, threaded=True, request_handler=MotoRequestHandler)
    # Many concurrent clients: a deeper accept backlog than socketserver's default.
    server.socket.listen(1024)
    host, bound_port = server.server_address[:2]

    def stop(*_: Any) -> None:
        # shutdown() blocks until serve_forever returns: call it off the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if "--exit-with-stdin" in flags:

        def watch_stdin() -> None:
            # os.read on the raw fd: a daemon thread blocked in sys.stdin's buffered
            # reader would hold its lock and abort interpreter shutdown.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            stop()

        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"READY http://{host}:{bound_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
