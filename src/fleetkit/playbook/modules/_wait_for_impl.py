"""Self-contained (stdlib only) ``wait_for``; in-process for local hosts, shipped over SSH."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import sys
import time
from typing import Any


def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=max(0.1, timeout)):
            return True
    except OSError:
        return False


def main(p: dict[str, Any]) -> dict[str, Any]:
    host = p.get("host") or "127.0.0.1"
    port = p.get("port")
    path = p.get("path")
    state = p.get("state") or "started"
    delay = float(p.get("delay") or 0)
    timeout = float(p["timeout"]) if p.get("timeout") is not None else 300.0
    sleep = float(p.get("sleep") or 1)
    connect_timeout = float(p.get("connect_timeout") or 5)
    regex = p.get("search_regex")
    msg = p.get("msg")
    start = datetime.datetime.now(datetime.UTC)
    if port is not None and path is not None:
        return {
            "failed": True,
            "changed": False,
            "msg": "port and path parameter can not both be passed to wait_for",
        }
    if delay:
        time.sleep(delay)
    deadline = time.monotonic() + timeout
    result: dict[str, Any] = {"changed": False, "state": state}
    while True:
        done = False
        groups: tuple[Any, ...] = ()
        gdict: dict[str, Any] = {}
        if path is not None:
            exists = os.path.exists(path)
            if state in ("present", "started"):
                if exists:
                    if regex:
                        try:
                            with open(path, errors="replace") as fh:
                                m = re.search(regex, fh.read(), re.M)
                        except OSError:
                            m = None
                        if m:
                            done, groups, gdict = True, m.groups(), m.groupdict()
                    else:
                        done = True
            elif state == "absent":
                done = not exists
        elif port is not None:
            is_open = _port_open(
                host, int(port), min(connect_timeout, max(0.1, deadline - time.monotonic()))
            )
            if state in ("started", "present"):
                done = is_open
            elif state in ("stopped", "absent", "drained"):
                done = not is_open
        else:
            done = True
        if done:
            break
        if time.monotonic() >= deadline:
            elapsed = (datetime.datetime.now(datetime.UTC) - start).seconds
            if msg:
                text = msg
            elif path is not None:
                text = (
                    f"Timeout when waiting for {path}"
                    if state != "absent"
                    else f"Timeout when waiting for {path} to be absent."
                )
            elif state in ("stopped", "absent", "drained"):
                text = f"Timeout when waiting for {host}:{port} to stop."
            else:
                text = f"Timeout when waiting for {host}:{port}"
            return {"failed": True, "changed": False, "elapsed": elapsed, "msg": text}
        time.sleep(min(sleep, max(0.0, deadline - time.monotonic())))
    elapsed = (datetime.datetime.now(datetime.UTC) - start).seconds
    result["elapsed"] = elapsed
    if path is not None:
        result["path"] = path
        if regex:
            result["match_groups"] = list(groups)
            result["match_groupdict"] = gdict
    if port is not None:
        result["port"] = int(port)
        result["search_regex"] = regex
        result["match_groups"] = []
        result["match_groupdict"] = {}
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.stdin.read()))))
