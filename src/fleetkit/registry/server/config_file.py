"""``registry serve --config registry.yaml``: distribution's config keys where they mean the same.

Supported keys (anything else is an error, so a typo is never silently ignored)::

    version: 0.1
    http:
      addr: 127.0.0.1:5000
      secret: <shared by every replica: signs upload state in Location URLs>
      tls: {certificate: FILE, key: FILE}
    storage:
      s3: {bucket, region, regionendpoint, accesskey, secretkey, secure, rootdirectory}
      filesystem: {rootdirectory: DIR}
      inmemory: {}
      delete: {enabled: true}
    auth:
      htpasswd: {realm: ..., path: FILE}
      token: {realm: URL, service: NAME, issuer: NAME, rootcertbundle: FILE}
    proxy:                      # pull-through cache (see registry/proxy.py)
      remoteurl: URL
      username: NAME
      password: SECRET
      ttl: 10m                  # a tag is revalidated upstream (HEAD) this long after it was
      projects:                 # fleetkit's: Harbor-style proxy projects, /v2/<project>/...
        <project>: {remoteurl, username, password, ttl}

The result is a dict of ``registry serve`` flag defaults: flags on the command line win.
"""

from __future__ import annotations

from typing import Any

import yaml

from fleetkit.errors import UsageError
from fleetkit.registry.proxy import ProxyConfig, ProxyUpstream, parse_duration
from fleetkit.registry.reference import REPOSITORY_RE
from fleetkit.registry.storage.s3 import S3Config

__all__ = ["load_config_file"]

_S3_KEYS = {
    "bucket",
    "region",
    "regionendpoint",
    "accesskey",
    "secretkey",
    "secure",
    "rootdirectory",
}


def _section(doc: dict[str, Any], key: str, allowed: set[str], where: str) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}{key}: must be a mapping")
    unknown = set(value) - allowed
    if unknown:
        raise UsageError(
            f"{where}{key}: unsupported key(s) {', '.join(sorted(map(str, unknown)))}",
            hint="see docs/registry.md (S3 and replicas) for the keys fleetkit reads",
        )
    return value


def load_config_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: the top level must be a mapping")
    _section({"": doc}, "", {"version", "http", "storage", "auth", "log", "proxy"}, f"{path}: ")
    out: dict[str, Any] = {}
    http = _section(doc, "http", {"addr", "secret", "tls"}, "")
    if "addr" in http:
        out["listen"] = str(http["addr"])
    if "secret" in http:
        out["http_secret"] = str(http["secret"])
    tls = _section(http, "tls", {"certificate", "key"}, "http.")
    if "certificate" in tls:
        out["tls_cert"] = str(tls["certificate"])
    if "key" in tls:
        out["tls_key"] = str(tls["key"])
    storage = _section(doc, "storage", {"s3", "filesystem", "inmemory", "delete", "cache"}, "")
    drivers = [k for k in ("s3", "filesystem", "inmemory") if k in storage]
    if len(drivers) > 1:
        raise UsageError(f"storage: one driver only, not {' and '.join(drivers)}")
    if "s3" in storage:
        s3 = _section(storage, "s3", _S3_KEYS, "storage.")
        if not s3.get("bucket"):
            raise UsageError("storage.s3.bucket is required")
        cfg = S3Config(bucket=str(s3["bucket"]))
        for key in ("region", "regionendpoint", "accesskey", "secretkey", "rootdirectory"):
            if s3.get(key) is not None:
                setattr(cfg, key, str(s3[key]))
        if "secure" in s3:
            cfg.secure = bool(s3["secure"])
        out["s3"] = cfg
        out["root"] = f"s3://{cfg.bucket}"
    elif "filesystem" in storage:
        fs = _section(storage, "filesystem", {"rootdirectory"}, "storage.")
        out["root"] = str(fs.get("rootdirectory", "./registry-data"))
    elif "inmemory" in storage:
        out["root"] = "memory:"
    delete = _section(storage, "delete", {"enabled"}, "storage.")
    if "enabled" in delete:
        out["disable_delete"] = not bool(delete["enabled"])
    auth = _section(doc, "auth", {"htpasswd", "token"}, "")
    if "htpasswd" in auth:
        ht = _section(auth, "htpasswd", {"realm", "path"}, "auth.")
        out["auth"] = "htpasswd"
        if "path" in ht:
            out["htpasswd"] = str(ht["path"])
    if "token" in auth:
        tok = _section(
            auth, "token", {"realm", "service", "issuer", "rootcertbundle", "autoredirect"}, "auth."
        )
        out["auth"] = "token"
        for key, flag in (
            ("realm", "realm"),
            ("service", "service"),
            ("issuer", "issuer"),
            ("rootcertbundle", "token_rootcert"),
        ):
            if key in tok:
                out[flag] = str(tok[key])
    if "proxy" in doc:
        out["proxy"] = _proxy_config(doc)
    return out


_UPSTREAM_KEYS = {"remoteurl", "username", "password", "ttl"}


def _upstream(section: dict[str, Any], where: str) -> ProxyUpstream:
    if not section.get("remoteurl"):
        raise UsageError(f"{where}remoteurl is required")
    return ProxyUpstream(
        url=str(section["remoteurl"]).rstrip("/"),
        username=str(section.get("username") or ""),
        password=str(section.get("password") or ""),
        ttl_s=parse_duration(str(section["ttl"])) if section.get("ttl") is not None else 0.0,
    )


def _proxy_config(doc: dict[str, Any]) -> ProxyConfig:
    proxy = _section(doc, "proxy", _UPSTREAM_KEYS | {"projects"}, "")
    remote = _upstream(proxy, "proxy.") if set(proxy) & _UPSTREAM_KEYS else None
    names = proxy.get("projects") or {}
    projects_doc = _section(
        proxy, "projects", set(names) if isinstance(names, dict) else set(), "proxy."
    )
    projects: dict[str, ProxyUpstream] = {}
    for name in projects_doc:
        if not isinstance(name, str) or not REPOSITORY_RE.fullmatch(name) or "/" in name:
            raise UsageError(
                f"proxy.projects: invalid project name {name!r}",
                hint="one repository path component: lower-case letters, digits, . _ -",
            )
        projects[name] = _upstream(
            _section(projects_doc, name, _UPSTREAM_KEYS, "proxy.projects."),
            f"proxy.projects.{name}.",
        )
    if remote is None and not projects:
        raise UsageError("proxy: needs remoteurl or projects")
    return ProxyConfig(remote=remote, projects=projects)
