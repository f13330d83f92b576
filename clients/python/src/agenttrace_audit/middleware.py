"""``AuditMiddleware`` for Starlette and FastAPI: one ``api.request`` event
per request, the same shape as the Rust ``AuditLayer``.

It reads the request head only (never bodies): method, path with secret
query values redacted, route template, status, duration, request id
(``X-Request-Id``), client IP (the peer, or ``X-Forwarded-For`` through
``trusted_proxies``), user agent, and who the user is (``user_extractor``,
e.g. :func:`jwt_user_extractor`). Values a client controls are made
storable whatever they are — control characters escaped, cut at the
service's limits with the member named in ``request.truncated`` — so no
request evades the log by its size. 401 and 403 answers are ``critical``.
The event is spooled by the client (``capture_event``): the request does
not wait for the audit service.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import Captures
from .models import Action, ActorType, Severity

log = logging.getLogger("agenttrace_audit")

#: Query parameters whose values are secrets (also any ending in
#: ``_token``, ``secret`` or ``password``), as the Rust layer has them.
SECRET_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "signature",
        "sig",
        "auth",
        "authorization",
        "session",
        "code",
    }
)

#: The service's default limits (bytes).
ID_BYTES = 256
EMAIL_BYTES = 320
TEXT_BYTES = 1024

UserInfo = dict[str, Any]


def fit(name: str, value: str | None, limit: int, cut: list[str]) -> str | None:
    """``value`` made storable: control characters and bidirectional
    overrides as visible ``\\u{…}`` escapes, cut at ``limit`` UTF-8 bytes on
    a character boundary (``name`` then goes into ``cut``)."""
    if value is None:
        return None
    out: list[str] = []
    size = 0
    for c in value:
        code = ord(c)
        piece = c
        if code < 0x20 or 0x7F <= code < 0xA0 or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
            piece = "\\u{%04x}" % code
        n = len(piece.encode("utf-8"))
        if size + n > limit:
            cut.append(name)
            break
        out.append(piece)
        size += n
    text = "".join(out)
    return text or None


def redacted_path(path: str, query: str) -> str:
    """The path, with the values of secret query parameters replaced by
    ``[redacted]`` (names compared percent-decoded, case-insensitively)."""
    if not query:
        return path
    pairs = []
    for pair in query.split("&"):
        name = pair.split("=", 1)[0]
        key = unquote_plus(name).strip().lower()
        if key in SECRET_PARAMS or key.endswith(("_token", "secret", "password")):
            pairs.append(f"{name}=[redacted]")
        else:
            pairs.append(pair)
    return f"{path}?{'&'.join(pairs)}"


def anonymous() -> UserInfo:
    return {"actor_type": ActorType.ANONYMOUS}


def jwt_user_extractor(
    key: str | bytes,
    algorithms: Iterable[str] = ("HS256",),
    *,
    actor_id_claim: str = "sub",
    email_claim: str = "email",
    organization_claim: str = "organization_id",
    session_claim: str = "session_id",
    audience: str | None = None,
) -> Callable[[Request], UserInfo]:
    """A ``user_extractor`` that verifies the bearer JWT (PyJWT) and reads
    the user from its claims; a missing or invalid token is ``anonymous``
    (never trusted: its claims are not used)."""
    import jwt  # optional dependency: pip install 'agenttrace-audit[jwt]'

    algorithms = list(algorithms)

    def extract(request: Request) -> UserInfo:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return anonymous()
        try:
            claims = jwt.decode(header[7:], key, algorithms=algorithms, audience=audience)
        except jwt.PyJWTError:
            return anonymous()
        actor_id = claims.get(actor_id_claim) or claims.get("user_id")
        return {
            "actor_type": ActorType.USER,
            "actor_id": str(actor_id) if actor_id is not None else None,
            "actor_email": claims.get(email_claim),
            "organization_id": claims.get(organization_claim),
            "session_id": claims.get(session_claim),
        }

    return extract


class AuditMiddleware:
    """Pure ASGI middleware (streaming responses pass through untouched)."""

    def __init__(
        self,
        app: ASGIApp,
        audit_service: Captures,
        capture_api_access: bool = True,
        exclude_paths: Iterable[str] = ("/health", "/metrics"),
        user_extractor: Callable[[Request], UserInfo | None] | None = None,
        *,
        organization_id: str | None = None,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.audit_service = audit_service
        self.capture_api_access = capture_api_access
        self.exclude_paths = tuple(exclude_paths)
        self.user_extractor = user_extractor
        self.organization_id = organization_id
        self.trusted_proxies = {ipaddress.ip_address(p) for p in trusted_proxies}

    @staticmethod
    def _header(scope: Scope, name: bytes) -> str | None:
        """A request header as UTF-8 (invalid bytes replaced), as the Rust
        layer reads it (Starlette's own view is Latin-1)."""
        for key, value in scope.get("headers", []):
            if key == name:
                return bytes(value).decode("utf-8", errors="replace")
        return None

    def _excluded(self, path: str) -> bool:
        return any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.exclude_paths)

    def _client_ip(self, scope: Scope, request: Request) -> str | None:
        peer = scope.get("client")
        try:
            ip = ipaddress.ip_address(peer[0]) if peer else None
        except ValueError:
            return None
        if ip is None or ip not in self.trusted_proxies:
            return str(ip) if ip else None
        chain = []
        for value in request.headers.getlist("x-forwarded-for"):
            for part in value.split(","):
                try:
                    chain.append(ipaddress.ip_address(part.strip()))
                except ValueError:
                    continue
        for candidate in reversed(chain):
            if candidate not in self.trusted_proxies:
                return str(candidate)
        return str(ip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.capture_api_access or self._excluded(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request = Request(scope)

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            try:
                await self._capture(scope, request, status, started)
            except Exception as e:  # the app's answer never depends on the audit
                log.error("audit event of %s %s not captured: %s", scope.get("method"), scope.get("path"), e)

    async def _capture(self, scope: Scope, request: Request, status: int, started: float) -> None:
        user: UserInfo = {}
        if self.user_extractor is not None:
            try:
                user = self.user_extractor(request) or {}
            except Exception as e:
                log.warning("user_extractor failed (recorded as anonymous): %s", e)
                user = anonymous()
        cut: list[str] = []
        method = str(scope.get("method", "GET"))
        route = getattr(scope.get("route"), "path", None)
        path = fit("request.path", redacted_path(scope["path"], scope.get("query_string", b"").decode("latin-1")), TEXT_BYTES, cut)
        route = fit("request.route", route, TEXT_BYTES, cut)
        action = {"GET": Action.READ, "HEAD": Action.READ, "OPTIONS": Action.READ, "POST": Action.CREATE,
                  "PUT": Action.UPDATE, "PATCH": Action.UPDATE, "DELETE": Action.DELETE}.get(method, Action.OTHER)
        organization = user.get("organization_id") or self.organization_id
        info: dict[str, Any] = {
            "method": fit("request.method", method, ID_BYTES, cut),
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": fit("request.request_id", self._header(scope, b"x-request-id"), ID_BYTES, cut),
        }
        actor_id = fit("actor_id", user.get("actor_id"), ID_BYTES, cut)
        actor_email = fit("actor_email", user.get("actor_email"), EMAIL_BYTES, cut)
        session_id = fit("session_id", user.get("session_id"), ID_BYTES, cut)
        user_agent = fit("user_agent", self._header(scope, b"user-agent"), TEXT_BYTES, cut)
        if cut:
            info["truncated"] = sorted(set(cut))
        await self.audit_service.capture_event(
            organization_id=organization,
            event_type="api.request",
            action=action,
            actor_type=user.get("actor_type") or ActorType.ANONYMOUS,
            actor_id=actor_id,
            actor_email=actor_email,
            actor_ip=self._client_ip(scope, request),
            user_agent=user_agent,
            session_id=session_id,
            resource_type="http_route" if route else None,
            resource_id=fit("resource_id", route, ID_BYTES, []) if route else None,
            request={k: v for k, v in info.items() if v is not None},
            severity=Severity.CRITICAL if status in (401, 403) else None,
        )
