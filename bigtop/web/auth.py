"""Who may use the console: login tokens (one, or one per named user with
a role: ``--users``), signed session cookies, and a CSRF token plus an
Origin check on every request that changes something.

A user's role is ``control`` (everything) or ``read`` (sees everything but
the output of watchers marked ``private``, changes nothing). The single
token of ``--token-file`` is the user ``admin``, with control.

The session cookie is ``ID.USER.EXPIRY.MAC``, signed with a key derived
from the login tokens: it survives a restart of bigtop-web (an open page
reconnects without logging in again), and changing a token logs everybody
out.
Logging out revokes the session's ID for as long as it would have lasted,
kept in a file next to the token file, so a restart forgets none.
The CSRF token is another MAC of the session ID, so it needs no storage.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger("bigtop.web")

COOKIE = "bigtop_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_AGE = 7 * 24 * 3600  # seconds a login lasts
LOGIN_FAILURES = 10  # failed logins allowed per client address per minute
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_REVOKED = 10_000  # revoked sessions kept; past it, those expiring soonest are forgotten


def default_token_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "bigtop", "web-token")


def load_token(path: str) -> tuple[str, bool]:
    """The token kept in path, made (mode 0600) when there is none yet;
    and whether it was just made."""
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
        if token:
            return token, False
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(24)
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


CONTROL, READ = "control", "read"
ADMIN = "admin"  # the user of the single login token
USER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_USERS = 1000
MIN_TOKEN = 16  # characters


@dataclass(frozen=True)
class User:
    name: str
    role: str
    token_hash: bytes  # sha256 of the token: a token is never kept in memory as given

    @property
    def controls(self) -> bool:
        return self.role == CONTROL


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.strip().encode()).digest()


def load_users(path: str) -> dict[str, User]:
    """The users of a ``--users`` file (TOML): a table per user, with its
    ``token`` (or ``token_sha256``, its SHA-256 in hex) and its ``role``
    (``control`` or ``read``, default read). ValueError says what is wrong."""
    import tomllib

    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except OSError as err:
        raise ValueError(f"{path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not TOML: {err}") from None
    users: dict[str, User] = {}
    entries = table.get("users")
    if not isinstance(entries, dict) or set(table) - {"users"}:
        raise ValueError(f"{path}: expected only [users.NAME] tables")
    if len(entries) > MAX_USERS:
        raise ValueError(f"{path}: more than {MAX_USERS} users")
    hashes: set[bytes] = set()
    for name, entry in entries.items():
        where = f"{path}: users.{name}"
        if not USER_NAME.fullmatch(name):
            raise ValueError(f"{where}: a name is 1 to 64 letters, digits, '-' or '_'")
        if not isinstance(entry, dict) or set(entry) - {"token", "token_sha256", "role"}:
            raise ValueError(f"{where}: takes token (or token_sha256) and role")
        role = entry.get("role", READ)
        if role not in (CONTROL, READ):
            raise ValueError(f"{where}: role is {CONTROL!r} or {READ!r}, not {role!r}")
        if "token" in entry and isinstance(entry["token"], str):
            if len(entry["token"].strip()) < MIN_TOKEN:
                raise ValueError(f"{where}: a token has at least {MIN_TOKEN} characters")
            digest = token_hash(entry["token"])
        elif isinstance(entry.get("token_sha256"), str) and re.fullmatch(
                r"[0-9a-fA-F]{64}", entry["token_sha256"]):
            digest = bytes.fromhex(entry["token_sha256"])
        else:
            raise ValueError(f"{where}: needs a token, or token_sha256 (64 hex digits)")
        if digest in hashes:
            raise ValueError(f"{where}: the same token as another user")
        hashes.add(digest)
        users[name] = User(name, role, digest)
    return users


def revoked_file(token_file: str) -> str:
    return token_file + ".revoked"


def load_revoked(path: str) -> dict[str, float]:
    """The revoked sessions kept in path (lines of ``ID EXPIRY``), unexpired."""
    now = time.time()
    revoked: dict[str, float] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                sid, _, expiry = line.strip().partition(" ")
                if sid and expiry.isdigit() and int(expiry) > now:
                    revoked[sid] = float(expiry)
                if len(revoked) >= MAX_REVOKED:
                    break
    except FileNotFoundError:
        pass
    return revoked


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class Auth:
    def __init__(self, token: str | None, allowed_origins: tuple[str, ...] = (),
                 session_age: int = SESSION_AGE, revoked_path: str | None = None,
                 users: dict[str, User] | None = None):
        """``token``: the login token of the user ``admin`` (None with
        ``users``); ``revoked_path``: where logouts are kept across restarts."""
        self.users = dict(users or {})
        if token is not None:
            if not token.strip():
                raise ValueError("the login token is empty")
            if ADMIN in self.users:
                raise ValueError(f"a user is named {ADMIN!r}, the login token's user")
            self.users[ADMIN] = User(ADMIN, CONTROL, token_hash(token))
        if not self.users:
            raise ValueError("no login token and no user")
        secret = b"".join(sorted(user.token_hash for user in self.users.values()))
        self.key = hashlib.sha256(b"bigtop-web session key\0" + secret).digest()
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins}
        self.session_age = session_age
        # The Host names requests may carry; None: any (a console on a public
        # address is reached by names it cannot know, through proxies).
        self.hosts: frozenset[str] | None = None
        self.revoked_path = revoked_path
        # session id -> when it would expire
        self.revoked = load_revoked(revoked_path) if revoked_path else {}
        self.failures: dict[str, deque[float]] = {}

    # -- the token -------------------------------------------------------------------

    def login(self, given: str) -> User | None:
        """The user whose token this is."""
        digest = token_hash(given)
        found = None
        for user in self.users.values():  # every one compared, in constant time
            if hmac.compare_digest(digest, user.token_hash):
                found = user
        return found

    def throttled(self, address: str) -> bool:
        """Too many failed logins from address in the last minute."""
        now = time.monotonic()
        recent = self.failures.get(address)
        while recent and now - recent[0] > 60:
            recent.popleft()
        return recent is not None and len(recent) >= LOGIN_FAILURES

    def failed(self, address: str) -> None:
        self.failures.setdefault(address, deque()).append(time.monotonic())

    # -- sessions ------------------------------------------------------------------

    def _mac(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def new_session(self, user: str = ADMIN) -> str:
        sid = secrets.token_urlsafe(18).replace(".", "_")
        body = f"{sid}.{user}.{int(time.time()) + self.session_age}"
        return f"{body}.{self._mac(body)}"

    def _valid(self, cookie: str | None) -> tuple[str, User] | None:
        if not cookie or cookie.count(".") != 3:
            return None
        sid, name, expiry, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(f"{sid}.{name}.{expiry}")):
            return None
        if not expiry.isdigit() or int(expiry) < time.time() or sid in self.revoked:
            return None
        user = self.users.get(name)
        return (sid, user) if user is not None else None  # a user removed: logged out

    def session(self, cookie: str | None) -> str | None:
        """The session ID in a valid, unexpired, not revoked cookie."""
        found = self._valid(cookie)
        return found[0] if found else None

    def user(self, request: web.Request) -> User | None:
        """The user of the request's session."""
        found = self._valid(request.cookies.get(COOKIE))
        return found[1] if found else None

    def revoke(self, cookie: str | None) -> None:
        sid = self.session(cookie)
        if sid is None or cookie is None:
            return
        now = time.time()
        self.revoked = {s: t for s, t in self.revoked.items() if t > now}
        self.revoked[sid] = float(cookie.split(".")[2])
        if len(self.revoked) > MAX_REVOKED:
            kept = sorted(self.revoked.items(), key=lambda item: item[1])[-MAX_REVOKED:]
            self.revoked = dict(kept)
        if self.revoked_path:
            try:
                self._save_revoked(self.revoked_path)
            except OSError as err:
                log.error("cannot keep the logout in %s (it holds until bigtop-web "
                          "restarts): %s", self.revoked_path, err)

    def _save_revoked(self, path: str) -> None:
        """Written whole to a new file (0600) put in place at once."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        new = f"{path}.{os.getpid()}.new"
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(f"{sid} {int(expiry)}\n" for sid, expiry in self.revoked.items())
        os.replace(new, path)

    def csrf(self, sid: str) -> str:
        return self._mac(f"csrf:{sid}")

    def set_cookie(self, response: web.StreamResponse, request: web.Request, value: str) -> None:
        response.set_cookie(COOKIE, value, max_age=self.session_age, path="/", httponly=True,
                            samesite="Strict", secure=request.secure)

    # -- requests --------------------------------------------------------------

    def request_session(self, request: web.Request) -> str | None:
        return self.session(request.cookies.get(COOKIE))

    def host_ok(self, request: web.Request) -> bool:
        """Whether the request names this server in its Host header: a page
        of another site that DNS rebinding points at 127.0.0.1 does not."""
        if self.hosts is None:
            return True
        try:
            name = urlsplit(f"//{request.host}").hostname
        except ValueError:
            return False
        return name is not None and name.lower() in self.hosts

    def serving(self, address: str) -> None:
        """Served on a loopback address: only the loopback names, and those
        of the allowed origins, are this server."""
        if address in LOOPBACK:
            names = {urlsplit(origin).hostname for origin in self.allowed_origins}
            self.hosts = frozenset(LOOPBACK | {n for n in names if n})

    def same_origin(self, request: web.Request) -> bool:
        """A request a page of this console made: its Origin (or, without
        one, its Referer) is this server, and the browser does not call it
        cross-site. Tools such as curl send neither and pass this check
        (they still need the session cookie and the CSRF token)."""
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("Origin")
        if origin is None:
            referer = request.headers.get("Referer")
            if not referer:
                return True
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        origin = origin.rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        return origin == f"{request.scheme}://{request.host}".lower()

    def csrf_ok(self, request: web.Request, sid: str) -> bool:
        given = request.headers.get(CSRF_HEADER, "")
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf(sid).encode())
