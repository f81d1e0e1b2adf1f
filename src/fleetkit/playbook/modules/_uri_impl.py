"""Self-contained (stdlib only) implementation of ``uri``; runs in-process for local hosts
and is shipped as a script to ``python3`` on SSH hosts. Keys and messages follow ansible's."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        if self.mode in ("none", "no", "false"):
            return None
        if self.mode == "safe" and req.get_method() not in ("GET", "HEAD"):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def main(p: dict[str, Any]) -> dict[str, Any]:
    url = p["url"]
    method = (p.get("method") or "GET").upper()
    body = p.get("body")
    body_format = p.get("body_format") or "raw"
    headers = {str(k): str(v) for k, v in (p.get("headers") or {}).items()}
    status_code = [int(s) for s in (p.get("status_code") or [200])]
    return_content = bool(p.get("return_content"))
    timeout = float(p.get("timeout") or 30)
    data: bytes | None = None
    if body is not None:
        if body_format == "json":
            data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
            headers.setdefault("Content-Type", "application/json")
        elif body_format == "form-urlencoded":
            if isinstance(body, dict):
                data = urllib.parse.urlencode(body).encode()
            else:
                data = str(body).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        else:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    user, password = p.get("url_username"), p.get("url_password")
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        headers.setdefault("Authorization", f"Basic {token}")
    headers.setdefault("User-Agent", "ansible-httpget")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    ctx = ssl.create_default_context()
    if not p.get("validate_certs", True):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ctx),
        _NoRedirect(str(p.get("follow_redirects") or "safe")),
    )
    start = datetime.datetime.now(datetime.UTC)
    info: dict[str, Any] = {"url": url}
    content: bytes | None = None
    resp_headers: dict[str, str] = {}
    try:
        with opener.open(req, timeout=timeout) as r:
            status = r.status
            resp_headers = {k: v for k, v in r.headers.items()}
            content = r.read()
            info["url"] = r.geturl()
            length = r.headers.get("Content-Length")
            info["msg"] = f"OK ({length if length is not None else 'unknown'} bytes)"
    except urllib.error.HTTPError as e:
        status = e.code
        resp_headers = {k: v for k, v in (e.headers or {}).items()}
        try:
            content = e.read()
        except OSError:
            content = b""
        info["msg"] = f"HTTP Error {e.code}: {e.reason}"
    except (TimeoutError, urllib.error.URLError, OSError, ValueError) as e:
        status = -1
        reason = e if not isinstance(e, urllib.error.URLError) else e
        info["msg"] = (
            f"Request failed: {reason}"
            if isinstance(e, urllib.error.URLError)
            else f"Request failed: <urlopen error {e}>"
        )
    elapsed = (datetime.datetime.now(datetime.UTC) - start).seconds
    out: dict[str, Any] = {}
    for k, v in resp_headers.items():
        out[k.replace("-", "_").lower()] = v
    out["redirected"] = info["url"] != url
    out["url"] = info["url"]
    out["msg"] = info["msg"]
    out["elapsed"] = elapsed
    out["status"] = int(status)
    out["changed"] = False
    if status in status_code:
        out.setdefault("cookies", {})
        out.setdefault("cookies_string", "")
    ctype = resp_headers.get("Content-Type", resp_headers.get("content-type", ""))
    text = None
    if content is not None:
        charset = "utf-8"
        if "charset=" in ctype:
            charset = ctype.split("charset=")[-1].split(";")[0].strip() or "utf-8"
        text = content.decode(charset, errors="replace")
        sub = ctype.split(";")[0].strip().lower().partition("/")[2]
        if "+" in sub:
            sub = sub.partition("+")[2]
        if sub in ("json", "javascript"):
            try:
                out["json"] = json.loads(text)
            except ValueError:
                pass
    if out["status"] not in status_code:
        out["msg"] = f"Status code was {out['status']} and not {status_code}: {out['msg']}"
        out["failed"] = True
        if return_content:
            out["content"] = text if text is not None else ""
        return out
    if return_content:
        out["content"] = text if text is not None else ""
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.stdin.read()))))
