"""Rendering shared by ``fleetkit schedule``'s outputs: ``--explain`` records (JSON) and their
table form, and the ``-o json|yaml`` dump writers."""

from __future__ import annotations

import json
from typing import Any

import yaml

from fleetkit.scheduler.framework import CycleResult

__all__ = [
    "explain_entry",
    "render_explain_entries",
    "dump",
    "write_dump",
]

SHORT = {
    "TaintToleration": "Taint",
    "NodeAffinity": "NodeAff",
    "NodeResourcesFit": "Fit",
    "PodTopologySpread": "Spread",
    "InterPodAffinity": "PodAff",
    "NodeResourcesBalancedAllocation": "Balanced",
    "ImageLocality": "Image",
}


def write_dump(obj: Any, fmt: str, stream: Any) -> None:
    """:func:`dump` written to ``stream`` piece by piece (no whole-document string in memory)."""
    if fmt == "yaml":
        yaml.safe_dump(obj, stream, sort_keys=False, default_flow_style=False)
        return
    _IndentWriter(stream).write(obj)


_ESCAPE = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii)
_FLOAT = json.JSONEncoder(allow_nan=True).iterencode  # NaN and Infinity as json.dumps spells them


class _IndentWriter:
    """``json.dumps(obj, indent=4)``, byte for byte, written in pieces. Sub-objects stored once
    and referenced many times (the pods of one template share their spec's parts) are encoded
    once per indentation from their second use on: a small memo by identity, emptied when full."""

    MEMO_MAX = 4096
    FLUSH_AT = 8192
    KEYS_MAX = 4096  # key prefixes kept per level

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.out: list[str] = []
        self.memo: dict[tuple[int, int], tuple[Any, str]] = {}
        self.seen: dict[tuple[int, int], Any] = {}  # met once, not encoded into the memo yet
        # per level: key -> (its text after "{", its text after a value): '\n    "k": '
        self.prefixes: list[dict[Any, tuple[str, str]]] = []

    def write(self, obj: Any) -> None:
        self._value(obj, 0)
        self.out.append("\n")
        self._flush()

    def _flush(self) -> None:
        self.stream.write("".join(self.out))
        self.out.clear()

    def _value(self, o: Any, level: int) -> None:
        out = self.out
        t = type(o)
        if t is str:
            out.append(_ESCAPE(o))
        elif t is dict or t is list:
            self._nested(o, level)
        elif o is None:
            out.append("null")
        elif o is True:
            out.append("true")
        elif o is False:
            out.append("false")
        elif isinstance(o, str):
            out.append(_ESCAPE(o))
        elif isinstance(o, int):
            out.append(int.__repr__(o))
        elif isinstance(o, float):
            out.append("".join(_FLOAT(o)))
        elif isinstance(o, dict | list | tuple):
            self._nested(o, level)
        else:
            raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    def _nested(self, o: Any, level: int) -> None:
        out = self.out
        if not o:
            out.append("{}" if isinstance(o, dict) else "[]")
            return
        if level < 3:  # the document, its lists and their items: seldom shared
            self._container(o, level)
            return
        key = (id(o), level)
        hit = self.memo.get(key)
        if hit is not None and hit[0] is o:
            out.append(hit[1])
            return
        seen = self.seen
        if seen.get(key) is not o:  # the first time: most sub-objects are one pod's own
            if len(seen) >= self.MEMO_MAX:
                seen.clear()
            seen[key] = o
            self._container(o, level)
            return
        mark = len(out)
        self._container(o, level)
        text = "".join(out[mark:])
        del out[mark:]
        out.append(text)
        if len(self.memo) >= self.MEMO_MAX:
            self.memo.clear()
        self.memo[key] = (o, text)

    def _prefix(self, k: Any, level: int) -> tuple[str, str]:
        while len(self.prefixes) <= level:
            self.prefixes.append({})
        inner = "\n" + "    " * (level + 1)
        text = _ESCAPE(_key(k)) + ": "
        pair = (inner + text, "," + inner + text)
        kept = self.prefixes[level]
        if len(kept) >= self.KEYS_MAX:
            kept.clear()
        if type(k) is str:  # 1 and True are equal keys with different texts
            kept[k] = pair
        return pair

    def _container(self, o: Any, level: int) -> None:
        out = self.out
        append = out.append
        nxt = level + 1
        if isinstance(o, dict):
            kept = self.prefixes[level] if level < len(self.prefixes) else {}
            append("{")
            first = True
            for k, v in o.items():
                pair = kept.get(k) if type(k) is str else None
                if pair is None:
                    pair = self._prefix(k, level)
                    kept = self.prefixes[level]
                if first:
                    append(pair[0])
                    first = False
                else:
                    append(pair[1])
                t = type(v)
                if t is str:
                    append(_ESCAPE(v))
                elif t is dict or t is list:
                    self._nested(v, nxt)
                else:
                    self._value(v, nxt)
                if level < 2 and len(out) >= self.FLUSH_AT:
                    self._flush()
            append("\n" + "    " * level + "}")
        else:
            inner = "\n" + "    " * nxt
            sep = "," + inner
            append("[")
            first = True
            for v in o:
                if first:
                    append(inner)
                    first = False
                else:
                    append(sep)
                t = type(v)
                if t is str:
                    append(_ESCAPE(v))
                elif t is dict or t is list:
                    self._nested(v, nxt)
                else:
                    self._value(v, nxt)
                if level < 2 and len(out) >= self.FLUSH_AT:
                    self._flush()
            append("\n" + "    " * level + "]")


def _key(k: Any) -> str:
    """A dict key as json.dumps writes it (str, or a scalar turned into its JSON text)."""
    if isinstance(k, str):
        return k
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return int.__repr__(k)
    if isinstance(k, float):
        return "".join(_FLOAT(k))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def dump(obj: Any, fmt: str) -> str:
    if fmt == "yaml":
        return str(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    return json.dumps(obj, indent=4) + "\n"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def explain_entry(
    namespace: str,
    name: str,
    node: str | None,
    message: str | None,
    error: str | None,
    res: CycleResult | None,
) -> dict[str, Any]:
    """One pod's --explain record: every evaluated node's filter status and scores."""
    filt: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    if res is not None:
        feasible = set(res.feasible)
        for n in res.evaluated:
            st = None if n in feasible else res.statuses.get(n, res.absent)
            if st is None:
                filt[n] = {"code": "Success", "plugin": "", "reasons": []}
            else:
                filt[n] = {"code": st.code.value, "plugin": st.plugin, "reasons": list(st.reasons)}
        for n in res.feasible:
            if n in res.scores:
                scores[n] = {"plugins": res.scores[n], "total": res.totals[n]}
    return {
        "namespace": namespace,
        "name": name,
        "node": node or None,
        "message": message,
        "error": error,
        "filter": filt,
        "scores": scores,
    }


def render_explain_entries(entries: list[dict[str, Any]]) -> str:
    """--explain as tables: per pod, every node's filter result, the pods blocking it, scores."""
    out = []
    for e in entries:
        head = f"Pod {e['namespace']}/{e['name']}: "
        if e["node"]:
            head += f"scheduled on {e['node']}"
        elif e["error"]:
            head += f"error: {e['error']}"
        else:
            head += f"Pending: {e['message']}"
        out.append(head)
        plugins: list[str] = []
        for s in e["scores"].values():
            for name in s["plugins"]:
                if name not in plugins:
                    plugins.append(name)
        blocked = any(f.get("blockedBy") for f in e["filter"].values())
        cols = ["NODE", "FILTER", "PLUGIN", "REASONS"] + (["BLOCKED BY"] if blocked else [])
        rows = [cols + [SHORT.get(p, p) for p in plugins] + ["TOTAL"]]
        for node, f in e["filter"].items():
            s = e["scores"].get(node)
            row = [node, f["code"], f["plugin"] or "-", ", ".join(f["reasons"]) or "-"]
            if blocked:
                row.append(", ".join(f.get("blockedBy") or []) or "-")
            if s:
                row += [str(s["plugins"].get(p, 0)) for p in plugins] + [str(s["total"])]
            else:
                row += ["-"] * len(plugins) + ["-"]
            rows.append(row)
        out.append(_table(rows))
    if not out:
        return "no matching pod\n"
    return "\n".join(out)
