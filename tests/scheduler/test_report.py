"""``fleetkit schedule -o json`` writes what ``json.dumps(indent=4)`` writes, byte for byte."""

from __future__ import annotations

import enum
import io
import json
import random
from typing import Any

from fleetkit.scheduler.report import write_dump


class _Color(enum.IntEnum):
    RED = 3


class _Name(str):
    """A str subclass (as some YAML loaders return): written as its text."""


def _value(r: random.Random, depth: int, shared: list[Any]) -> Any:
    roll = r.random()
    if depth > 4 or roll < 0.3:
        return r.choice(
            [
                "plain",
                'ünïcode \u2603 "quoted" \\ \n\t',
                "",
                0,
                -7,
                2**70,
                1.5,
                -0.0,
                1e300,
                float("nan"),
                float("inf"),
                True,
                False,
                None,
                _Color.RED,
                _Name("sub"),
            ]
        )
    if shared and roll < 0.45:
        return r.choice(shared)  # the same object in many places, at different depths
    if roll < 0.75:
        keys: list[Any] = [f"k{i}" for i in range(r.randint(0, 4))]
        if r.random() < 0.1:
            keys += [1, 2.5, True, None, _Name("k0x")]
        return {k: _value(r, depth + 1, shared) for k in keys}
    return [_value(r, depth + 1, shared) for _ in range(r.randint(0, 4))]


def test_indented_json_is_json_dumps_byte_for_byte() -> None:
    for seed in range(200):
        r = random.Random(seed)
        shared: list[Any] = []
        for _ in range(3):
            shared.append(_value(r, 2, shared))
        doc = {"items": [_value(r, 0, shared) for _ in range(r.randint(0, 30))], "t": (1, "x")}
        buf = io.StringIO()
        write_dump(doc, "json", buf)
        assert buf.getvalue() == json.dumps(doc, indent=4) + "\n", seed


def test_many_pods_sharing_a_spec() -> None:
    spec = {"containers": [{"name": "c", "image": "pause", "ports": [{"containerPort": 80}]}]}
    pods = [
        {"metadata": {"name": f"p{i}"}, "spec": {**spec, "nodeName": f"n{i}"}} for i in range(9000)
    ]
    doc = {"apiVersion": "v1", "kind": "List", "items": pods}
    buf = io.StringIO()
    write_dump(doc, "json", buf)
    assert buf.getvalue() == json.dumps(doc, indent=4) + "\n"
