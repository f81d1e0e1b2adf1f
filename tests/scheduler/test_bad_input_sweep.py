"""Bad input to ``fleetkit schedule``: one ``error:`` line, exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.cli import main

NODE = """apiVersion: v1
kind: Node
metadata: {name: n1, labels: {zone: a}}
status: {allocatable: {cpu: "4", memory: 8Gi, pods: "110"}}
"""

FILES: dict[str, bytes] = {
    "binary.yaml": b"\x00\xff\xfe garbage \x89PNG\r\n",
    "metadata-number.yaml": b"apiVersion: v1\nkind: Pod\nmetadata: 5\n"
    b"spec: {containers: [{name: c, image: x}]}\n",
    "list-items-number.yaml": b"apiVersion: v1\nkind: List\nitems: 5\n",
    "bad.yaml": b"a: [1,\n  b: {\n",
    "cpu.yaml": b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
    b'spec: {containers: [{name: c, image: x, resources: {requests: {cpu: "1.5.5"}}}]}\n',
    "kubeconfig-list.yaml": b"- 1\n- 2\n",
    "kubeconfig-contexts.yaml": b"current-context: c\ncontexts: 5\n",
    "kubeconfig-ca.yaml": b"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
    b'clusters: [{name: k, cluster: {server: "https://127.0.0.1:1",'
    b' certificate-authority-data: "!!!"}}]\n',
}

CASES = [
    ("binary manifest", ["-f", "binary.yaml"], "not UTF-8"),
    ("metadata is a number", ["-f", "metadata-number.yaml"], "error: "),
    ("List.items is a number", ["-f", "list-items-number.yaml"], "List.items must be a list"),
    ("malformed YAML has file:line", ["-f", "bad.yaml"], "bad.yaml:3"),
    ("bad quantity", ["-f", "cpu.yaml"], "error: "),
    ("binary config", ["--config", "binary.yaml"], "not UTF-8"),
    ("apply a binary file", ["--then", "apply -f binary.yaml"], "not UTF-8"),
    ("bad -l selector", ["--then", "delete nodes -l !!!"], "unable to parse requirement"),
    ("binary kubeconfig", ["--kubeconfig", "binary.yaml"], "not UTF-8"),
    ("kubeconfig YAML error", ["--kubeconfig", "bad.yaml"], "bad.yaml:3"),
    ("kubeconfig not a mapping", ["--kubeconfig", "kubeconfig-list.yaml"], "must be a mapping"),
    ("kubeconfig contexts not a list", ["--kubeconfig", "kubeconfig-contexts.yaml"], "a list"),
    ("kubeconfig CA not base64", ["--kubeconfig", "kubeconfig-ca.yaml"], "TLS material"),
    ("seed not a number", ["--seed", "abc"], "error: "),
]


@pytest.mark.parametrize(("what", "args", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    what: str,
    args: list[str],
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yaml").write_text(NODE)
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    base = [] if args[0] == "--kubeconfig" else ["-f", "node.yaml"]
    rc = main(["schedule", *base, *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: "), err
    assert expect in err.splitlines()[0]
    assert rc == 2
