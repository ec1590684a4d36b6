"""Who may talk to the app and which files it may hand out.

- **Binding**: 127.0.0.1 (or another loopback name) by default. Any other host needs a token
  (`SCALELAB_SERVE_TOKEN`), and the app refuses to start without one.
- **Token**: when set, every request must carry it — `Authorization: Bearer T`, the `X-Scalelab-Token` header, the
  `scalelab_token` cookie, or `?token=T` once (the answer then sets the cookie, so a browser needs the link only
  once). Compared in constant time.
- **Host header**: on loopback without a token, a request naming another host is refused, so a web page elsewhere
  cannot reach the app through DNS rebinding.
- **Body size**: a request body over `max_body` bytes is refused (413) before it is read.
- **Files**: `safe_file(root, rel)` resolves a user-given relative path inside `root` only: absolute paths, `..`,
  backslashes, NUL bytes and symbolic links that lead out of the folder are refused (after URL decoding, so
  `%2e%2e%2f` is `../`).
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs

from scalelab.errors import InputError, MissingInput

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "SCALELAB_SERVE_TOKEN"
COOKIE = "scalelab_token"


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if host not in LOOPBACK and not token:
        raise InputError(f"--host {host} makes the app reachable from other machines; set {TOKEN_ENV} to a secret "
                         "token (every request must then carry it), or serve on 127.0.0.1")


def safe_file(root: Path, rel: str) -> Path:
    """The file `rel` inside `root`; InputError for a path that leaves it, MissingInput when it is not there."""
    if "\x00" in rel or "\\" in rel:
        raise InputError(f"path {rel!r} holds a NUL byte or a backslash; use a relative path with '/'")
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or ".." in parts:
        raise InputError(f"path {rel!r} is absolute or climbs with '..'; files are served only from inside "
                         f"the folder")
    base = root.resolve()
    full = (base / rel).resolve()
    if not full.is_relative_to(base):
        raise InputError(f"path {rel!r} leads outside the folder (a symbolic link); it is not served")
    if not full.is_file():
        raise MissingInput(f"no file {rel!r} in the folder")
    return full


def _host_ok(host_header: str, bound: str) -> bool:
    name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    name = name.strip("[]").lower()
    return name in (*LOOPBACK, bound.lower())


class Guard:
    """ASGI middleware: token, Host header and body size checks before anything else runs."""

    def __init__(self, app, *, token: str | None, host: str, max_body: int) -> None:
        self.app, self.token, self.host, self.max_body = app, token, host, max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if not self.token and not _host_ok(headers.get("host", ""), self.host):
            await _reply(send, 403, f"Host {headers.get('host', '')!r} is not this app's address; open it as "
                                    f"http://127.0.0.1 or http://localhost")
            return
        set_cookie = False
        if self.token:
            given = _given_token(headers, query)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _reply(send, 401, f"this app needs its token ({TOKEN_ENV}): send 'Authorization: Bearer "
                                        "TOKEN' or open a page once with ?token=TOKEN")
                return
            set_cookie = "token" in query
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, f"request body over {self.max_body} bytes; send a shorter prompt or question")
            return

        async def send_with_cookie(message) -> None:
            if set_cookie and message["type"] == "http.response.start":
                cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _given_token(headers: dict[str, str], query: dict[str, list[str]]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "x-scalelab-token" in headers:
        return headers["x-scalelab-token"]
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no token, not a crash
        cookie = SimpleCookie()
    if COOKIE in cookie:
        return cookie[COOKIE].value
    return query.get("token", [None])[0]


async def _reply(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
