"""htpasswd users in distribution's format: ``user:bcrypt-hash`` lines (``$2y$``/``$2a$``/``$2b$``)."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time

import bcrypt

from fleetkit.errors import RegistryError, UsageError

__all__ = ["Htpasswd", "add_user", "remove_user", "list_users", "HtpasswdError"]

_CACHE_TTL_S = 60.0

log = logging.getLogger("fleetkit.registry")


class HtpasswdError(UsageError):
    """An htpasswd file that cannot be read or has a malformed line (exit 2)."""


def _parse(path: str) -> dict[str, bytes]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise HtpasswdError(
            f"cannot read htpasswd file {path}: {why}",
            hint="create one with: fleetkit registry htpasswd add USER --file " + path,
        ) from None
    users: dict[str, bytes] = {}
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed.startswith(("$2y$", "$2a$", "$2b$")):
            raise HtpasswdError(
                "expected user:bcrypt-hash (only bcrypt is supported, as in distribution)",
                hint="regenerate the entry with: fleetkit registry htpasswd add USER",
                source=f"{path}:{lineno}",
            )
        users[user] = hashed.encode()
    return users


def _file_id(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _cost(hashed: bytes) -> int:
    try:
        return min(max(int(hashed[4:6]), 4), 31)
    except ValueError:
        return 10


class Htpasswd:
    """Users from an htpasswd file; successful checks are cached briefly (bcrypt is slow).

    The file is read again when it changes (checked on every lookup), so removing a user or
    changing a password takes effect at once: for Basic auth, for token grants and for refresh
    tokens (whose generation is the user's entry, see :meth:`generation`). An unknown user costs
    a bcrypt check all the same, so response times do not tell which users exist.
    """

    def __init__(self, users: dict[str, bytes], path: str | None = None) -> None:
        self.users = users
        self.path = path
        self._ok: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._file_id = _file_id(path) if path else None
        self._dummy: bytes | None = None

    @classmethod
    def load(cls, path: str) -> Htpasswd:
        return cls(_parse(path), path)

    def _refresh(self) -> None:
        if self.path is None:
            return
        current = _file_id(self.path)
        if current == self._file_id:
            return
        with self._lock:
            if current == self._file_id:
                return
            try:
                users = _parse(self.path) if current is not None else {}
            except HtpasswdError as exc:
                # keep serving the last good file rather than locking everyone out
                log.error("htpasswd file changed but cannot be used: %s", exc.message)
                self._file_id = current
                return
            if current is None:
                log.error("htpasswd file %s is gone: no user can log in", self.path)
            self.users = users
            self._file_id = current
            self._ok.clear()
            self._dummy = None

    def generation(self, user: str) -> str | None:
        """A short fingerprint of ``user``'s entry (None when the user does not exist)."""
        self._refresh()
        hashed = self.users.get(user)
        if hashed is None:
            return None
        return hashlib.sha256(b"fleetkit-user\0" + hashed).hexdigest()[:16]

    def _dummy_hash(self) -> bytes:
        dummy = self._dummy
        if dummy is None:
            cost = max((_cost(h) for h in self.users.values()), default=10)
            dummy = self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        return dummy

    def check(self, user: str, password: str) -> bool:
        self._refresh()
        hashed = self.users.get(user)
        secret = password.encode()
        if hashed is None or len(secret) > 72:  # bcrypt reads 72 bytes; longer never matches
            # as slow as a real check: timing does not reveal whether the user exists
            bcrypt.checkpw(secret[:72], self._dummy_hash())
            return False
        key = hashlib.sha256(user.encode() + b"\0" + secret + b"\0" + hashed).digest()
        now = time.monotonic()
        with self._lock:
            until = self._ok.get(key)
            if until is not None and until > now:
                return True
        try:
            ok = bcrypt.checkpw(secret, hashed)
        except ValueError:  # a malformed hash in the file
            return False
        if ok:
            with self._lock:
                if len(self._ok) > 10000:
                    self._ok.clear()
                self._ok[key] = now + _CACHE_TTL_S
        return ok


def hash_password(password: str, cost: int = 10) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()
    # htpasswd -B writes $2y$; every bcrypt implementation reads it
    return "$2y$" + hashed[4:]


def add_user(path: str, user: str, password: str, cost: int = 10) -> bool:
    """Add or replace ``user`` in ``path`` (created when missing); True when it replaced."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise UsageError(f"invalid user name {user!r}", hint="no ':' and no whitespace")
    if not 4 <= cost <= 31:
        raise UsageError(f"invalid bcrypt cost {cost}", hint="use 4..31 (default 10)")
    if len(password.encode()) > 72:
        # bcrypt reads only 72 bytes: refuse rather than store a hash of a truncated password
        raise UsageError(
            "password is longer than 72 bytes",
            hint="bcrypt uses at most 72 bytes; choose a shorter one",
        )
    lines = _read_lines(path) if os.path.exists(path) else []
    entry = f"{user}:{hash_password(password, cost)}"
    replaced = False
    out = []
    for line in lines:
        if line.partition(":")[0] == user and not line.startswith("#"):
            if not replaced:
                out.append(entry)
            replaced = True
        else:
            out.append(line)
    if not replaced:
        out.append(entry)
    _write_lines(path, out)
    return replaced


def remove_user(path: str, user: str) -> bool:
    """Remove ``user``'s line(s) from ``path``; False when the user was not there."""
    if not os.path.exists(path):
        raise HtpasswdError(f"no htpasswd file {path}", hint="pass --file of an htpasswd file")
    lines = _read_lines(path)
    kept = [
        line for line in lines if line.startswith("#") or line.partition(":")[0].strip() != user
    ]
    if len(kept) == len(lines):
        return False
    _write_lines(path, kept)
    return True


def list_users(path: str) -> list[str]:
    """The user names in ``path``, in file order (the file is validated as the server would)."""
    _parse(path)
    names: list[str] = []
    for line in _read_lines(path):
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.partition(":")[0])
    return names


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(
            f"cannot read {path}: not UTF-8 text",
            hint="--file must be an htpasswd file (user:bcrypt-hash lines)",
        ) from None


def _write_lines(path: str, lines: list[str]) -> None:
    """Replace ``path`` atomically (temp file, fsync, rename), mode 0600."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise RegistryError(f"cannot write {path}: {exc.strerror}") from None
