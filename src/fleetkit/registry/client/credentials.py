"""Registry credentials as docker keeps them: ``$DOCKER_CONFIG/config.json`` (default ``~/.docker``).

Lookup order for a registry, as the docker CLI does: ``credHelpers[registry]`` (the program
``docker-credential-<helper>``), else ``credsStore`` (falling back to the file when the store has
nothing), else ``auths[registry].auth`` (base64 ``user:password``) and ``identitytoken``.
Docker Hub is keyed ``https://index.docker.io/v1/``; other keys are matched by host, ignoring
a scheme or path written by older tools.

:func:`store` writes as ``docker login`` does (to the helper when one is configured, else
``auths``), :func:`erase` as ``docker logout``. Files are replaced atomically with mode 0600.
Secrets never appear in ``repr`` or in error messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetkit.registry.client.errors import CredentialsError
from fleetkit.registry.reference import DEFAULT_REGISTRY

__all__ = [
    "Credential",
    "HUB_CONFIG_KEY",
    "config_path",
    "config_key",
    "load_config",
    "resolve",
    "store",
    "erase",
]

HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_HELPER_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Credential:
    """What a registry accepts: a username and password, or an OAuth2 identity (refresh) token."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        secret = "[redacted]" if (self.password or self.identity_token) else "''"
        return f"Credential(username={self.username!r}, secret={secret})"

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit is not None:
        return Path(explicit)
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".docker" / "config.json"


def config_key(registry: str) -> str:
    """The key docker uses in ``auths`` and ``credHelpers`` for ``registry``."""
    return HUB_CONFIG_KEY if registry in _HUB_HOSTS else registry


def _host_of_key(key: str) -> str:
    host = key
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    return DEFAULT_REGISTRY if host in _HUB_HOSTS else host


def load_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CredentialsError(
            f"{path}: invalid JSON ({exc})", hint="fix or remove the file, then run fleetkit login"
        ) from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{path}: expected a JSON object")
    return doc


def _write_config(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent="\t")
                fh.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CredentialsError(f"cannot write {path}: {exc.strerror}") from None


def _helper_for(doc: dict[str, Any], registry: str) -> str | None:
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _host_of_key(str(key)) == registry and isinstance(helper, str) and helper:
                return helper
    return None


def _run_helper(helper: str, action: str, payload: str) -> str | None:
    """Run ``docker-credential-<helper> <action>``; None when it reports "not found"."""
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [program, action],
            input=payload,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise CredentialsError(
            f"credential helper {program} not found",
            hint=f"install {program} or remove it from config.json",
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"credential helper {program} {action} timed out") from None
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        if action in ("get", "erase") and "not found" in out.lower():
            return None
        raise CredentialsError(f"credential helper {program} {action} failed: {out[:200]}")
    return proc.stdout


def _from_helper(helper: str, registry: str) -> Credential | None:
    out = _run_helper(helper, "get", config_key(registry))
    if out is None:
        return None
    try:
        doc = json.loads(out)
        user = str(doc.get("Username") or "")
        secret = str(doc.get("Secret") or "")
    except (ValueError, AttributeError):
        raise CredentialsError(
            f"credential helper docker-credential-{helper}: bad output"
        ) from None
    if user == "<token>":
        return Credential(identity_token=secret)
    return Credential(username=user, password=secret)


def _from_auths(doc: dict[str, Any], registry: str, path: Path) -> Credential | None:
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _host_of_key(str(key)) != registry or not isinstance(entry, dict):
            continue
        user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, sep, password = (
                    base64.b64decode(encoded, validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                sep = ""
            if not sep:
                raise CredentialsError(
                    f"{path}: auths[{key!r}].auth is not base64 'user:password'",
                    hint=f"run fleetkit login {registry}",
                )
        token = str(entry.get("identitytoken") or "")
        cred = Credential(user, password, token)
        return None if cred.empty else cred
    return None


def resolve(registry: str, path: str | os.PathLike[str] | None = None) -> Credential | None:
    """The stored credential for ``registry`` (a host[:port], ``docker.io`` for Hub), or None."""
    cfg = config_path(path)
    doc = load_config(cfg)
    helper = _helper_for(doc, registry)
    if helper:
        return _from_helper(helper, registry)
    store_name = doc.get("credsStore")
    if isinstance(store_name, str) and store_name:
        found = _from_helper(store_name, registry)
        if found is not None:
            return found
    return _from_auths(doc, registry, cfg)


def store(
    registry: str, credential: Credential, path: str | os.PathLike[str] | None = None
) -> Path:
    """Save ``credential`` as ``docker login`` does; return the config file used."""
    cfg = config_path(path)
    doc = load_config(cfg)
    helper = _helper_for(doc, registry) or doc.get("credsStore")
    key = config_key(registry)
    if isinstance(helper, str) and helper:
        user = "<token>" if credential.identity_token else credential.username
        secret = credential.identity_token or credential.password
        payload = json.dumps({"ServerURL": key, "Username": user, "Secret": secret})
        _run_helper(helper, "store", payload)
        auths = doc.setdefault("auths", {})
        if isinstance(auths, dict):
            auths[key] = {}
            _write_config(cfg, doc)
        return cfg
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = doc["auths"] = {}
    for old in [k for k in auths if _host_of_key(str(k)) == registry]:
        del auths[old]
    entry: dict[str, str] = {}
    if credential.username or credential.password:
        raw = f"{credential.username}:{credential.password}".encode()
        entry["auth"] = base64.b64encode(raw).decode()
    if credential.identity_token:
        entry["identitytoken"] = credential.identity_token
    auths[key] = entry
    _write_config(cfg, doc)
    return cfg


def erase(registry: str, path: str | os.PathLike[str] | None = None) -> bool:
    """Remove the stored credential for ``registry``; False when there was none."""
    cfg = config_path(path)
    doc = load_config(cfg)
    found = False
    helper = _helper_for(doc, registry) or doc.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _run_helper(helper, "erase", config_key(registry)) is not None
    auths = doc.get("auths")
    if isinstance(auths, dict):
        for old in [k for k in auths if _host_of_key(str(k)) == registry]:
            del auths[old]
            found = True
        if found:
            _write_config(cfg, doc)
    return found
