"""Host patterns as ``ansible.inventory.manager`` evaluates them.

``a:b`` / ``a,b`` union, ``a:&b`` intersection, ``a:!b`` / ``!a`` exclusion, shell wildcards,
``~regex``, subscripts ``group[0]``, ``group[1:]``, ``group[-1]``; the five ``order`` values.
"""

from __future__ import annotations

import fnmatch
import random
import re

from fleetkit.playbook.errors import PlaybookError
from fleetkit.playbook.inventory import Inventory

__all__ = ["split_pattern", "match_hosts", "apply_order", "select_play_hosts", "ORDERS"]

ORDERS = ("inventory", "reverse_inventory", "sorted", "reverse_sorted", "shuffle")
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|(-?[0-9]*):(-?[0-9]*))\]$")


def split_pattern(pattern: str | list[str]) -> list[str]:
    if isinstance(pattern, list):
        out: list[str] = []
        for p in pattern:
            out.extend(split_pattern(str(p)))
        return out
    pattern = pattern.strip()
    if "," in pattern:
        return [p.strip() for p in pattern.split(",") if p.strip()]
    terms: list[str] = []
    buf = ""
    depth = 0
    for ch in pattern:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if ch == ":" and depth == 0:
            if buf.strip():
                terms.append(buf.strip())
            buf = ""
        else:
            buf += ch
    if buf.strip():
        terms.append(buf.strip())
    return terms


def _order_terms(terms: list[str]) -> list[str]:
    regular = [t for t in terms if not t.startswith(("!", "&"))]
    inter = [t for t in terms if t.startswith("&")]
    excl = [t for t in terms if t.startswith("!")]
    if not regular:
        regular = ["all"]
    return regular + inter + excl


def _match_names(names: list[str], pat: str) -> list[str]:
    if pat.startswith("~"):
        try:
            rx = re.compile(pat[1:])
        except re.error as exc:
            raise PlaybookError(f"Invalid host list pattern: {pat}: {exc}") from None
        return [n for n in names if rx.match(n)]
    if any(c in pat for c in "*?["):
        rx = re.compile(fnmatch.translate(pat))
        return [n for n in names if rx.match(n)]
    return [n for n in names if n == pat]


def _enumerate(inv: Inventory, pat: str) -> list[str]:
    if pat in ("all", "*"):
        return list(inv.hosts_of("all"))
    results: list[str] = []
    groups = _match_names(list(inv.groups), pat)
    for g in groups:
        results.extend(inv.hosts_of(g))
    if not groups or pat.startswith("~") or any(c in pat for c in ".?*["):
        results.extend(
            h for h in _match_names(list(inv.hosts), pat) if not inv.hosts[h].implicit or h == pat
        )
    if not results and pat in ("localhost", "127.0.0.1", "::1"):
        if inv.get_host(pat) is not None:
            results.append(pat)
    return _dedup(results)


def _dedup(hosts: list[str]) -> list[str]:
    return list(dict.fromkeys(hosts))


def _subscript(hosts: list[str], start: str | None, a: str | None, b: str | None) -> list[str]:
    if start is not None:
        i = int(start)
        if -len(hosts) <= i < len(hosts):
            return [hosts[i]]
        return []
    lo = int(a) if a else 0
    hi = int(b) if b else len(hosts) - 1
    if lo < 0:
        lo += len(hosts)
    if hi < 0:
        hi += len(hosts)
    return hosts[lo : hi + 1]


def _eval_term(inv: Inventory, term: str) -> list[str]:
    m = _SUBSCRIPT.match(term) if not term.startswith("~") else None
    if m and not any(c in m.group(1) for c in "*?"):
        hosts = _enumerate(inv, m.group(1))
        return _subscript(hosts, m.group(2), m.group(3), m.group(4))
    return _enumerate(inv, term)


def match_hosts(inv: Inventory, pattern: str | list[str]) -> list[str]:
    """Hosts matching ``pattern`` in inventory order (before ``order`` is applied)."""
    terms = _order_terms(split_pattern(pattern))
    result: list[str] = []
    for term in terms:
        if term.startswith("!"):
            drop = set(_eval_term(inv, term[1:]))
            result = [h for h in result if h not in drop]
        elif term.startswith("&"):
            keep = set(_eval_term(inv, term[1:]))
            result = [h for h in result if h in keep]
        else:
            seen = set(result)
            result.extend(h for h in _eval_term(inv, term) if h not in seen)
    return _dedup(result)


def apply_order(hosts: list[str], order: str, seed: int | None = None) -> list[str]:
    if order == "inventory":
        return list(hosts)
    if order == "reverse_inventory":
        return list(reversed(hosts))
    if order == "sorted":
        return sorted(hosts)
    if order == "reverse_sorted":
        return sorted(hosts, reverse=True)
    if order == "shuffle":
        out = list(hosts)
        random.Random(seed).shuffle(out)
        return out
    raise PlaybookError(f"Invalid 'order' specified for the play: {order}")


def select_play_hosts(
    inv: Inventory,
    pattern: str | list[str],
    limit: str | list[str] | None,
    order: str,
    seed: int | None = None,
) -> list[str]:
    """The hosts a play runs on, in run order: the ONE place for the run, --list-hosts and
    --syntax-check (``limit`` already read from ``@file`` into a list)."""
    hosts = match_hosts(inv, pattern)
    if limit:
        allowed = set(match_hosts(inv, limit))
        hosts = [h for h in hosts if h in allowed]
    return apply_order(hosts, order, seed)
