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


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
CONTAINER = "{name: c, image: x}"
CONFIG = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"

# (id, manifest or config text, the API server's decoding message the first line must carry)
WRONG_TYPES = [
    ("spec null", POD + "spec: null\n", 'Pod "p" is invalid: spec.containers: Required value'),
    (
        "spec a list",
        POD + "spec: []\n",
        "json: cannot unmarshal array into Go struct field Pod.spec of type PodSpec",
    ),
    (
        "containers a number",
        POD + "spec: {containers: 5}\n",
        "unmarshal number into Go struct field PodSpec.spec.containers of type []Container",
    ),
    (
        "container a number",
        POD + "spec: {containers: [5]}\n",
        "unmarshal number into Go struct field PodSpec.spec.containers of type Container",
    ),
    (
        "resources a list",
        POD + "spec: {containers: [{name: c, resources: []}]}\n",
        "unmarshal array into Go struct field Container.spec.containers.resources of type "
        "ResourceRequirements",
    ),
    (
        "bad cpu quantity",
        POD + "spec: {containers: [{name: c, resources: {requests: {cpu: 1.5.5}}}]}\n",
        'requests[cpu]: Invalid value: "1.5.5": quantities must match the regular expression',
    ),
    (
        "priority not an integer",
        POD + f"spec: {{containers: [{CONTAINER}], priority: x}}\n",
        "unmarshal string into Go struct field PodSpec.spec.priority of type int32",
    ),
    (
        "toleration a number",
        POD + f"spec: {{containers: [{CONTAINER}], tolerations: [5]}}\n",
        "unmarshal number into Go struct field PodSpec.spec.tolerations of type Toleration",
    ),
    (
        "affinity weight not an integer",
        POD + f"spec: {{containers: [{CONTAINER}], affinity: {{nodeAffinity: "
        "{preferredDuringSchedulingIgnoredDuringExecution: [{weight: w, preference: {}}]}}}\n",
        "PreferredSchedulingTerm.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnored"
        "DuringExecution.weight of type int32",
    ),
    (
        "node taint a number",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n2}\nspec: {taints: [5]}\n",
        'Node in version "v1" cannot be handled as a Node: json: cannot unmarshal number into '
        "Go struct field NodeSpec.spec.taints of type Taint",
    ),
    (
        "deployment replicas not an integer",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: x}\n",
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32",
    ),
    (
        "priorityclass value not an integer",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: h}\nvalue: x\n",
        "unmarshal string into Go struct field PriorityClass.value of type int32",
    ),
]

CONFIG_WRONG_TYPES = [
    (
        "score weight not an integer",
        CONFIG + "profiles:\n- plugins:\n    score:\n      enabled:\n      - name: NodeAffinity\n"
        "      - {name: TaintToleration, weight: x}\n",
        "KubeSchedulerConfiguration: profiles[0].plugins.score.enabled[1].weight: "
        'Invalid value: "x": must be an integer',
    ),
    ("profile a number", CONFIG + "profiles: [5]\n", "profiles[0]: Invalid value: 5: "),
    ("profiles a mapping", CONFIG + "profiles: {a: 1}\n", "profiles: "),
    (
        "extension point a number",
        CONFIG + "profiles: [{plugins: {score: 5}}]\n",
        "profiles[0].plugins.score: Invalid value: 5: must be an object",
    ),
    (
        "plugin args a number",
        CONFIG + "profiles: [{pluginConfig: [{name: NodeResourcesFit, args: 5}]}]\n",
        "profiles[0].pluginConfig[0].args: ",
    ),
    (
        "percentage not an integer",
        CONFIG + "percentageOfNodesToScore: x\n",
        'percentageOfNodesToScore: Invalid value: "x": must be an integer',
    ),
]

PY_ERRORS = ("AttributeError", "ValueError", "TypeError", "KeyError", "IndexError")


def _run_clean(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["schedule", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not any(name in err for name in PY_ERRORS), err
    assert err.startswith("error: "), err
    return rc, err.splitlines()[0]


@pytest.mark.parametrize(
    ("text", "expect"), [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES]
)
def test_wrong_field_type_names_file_object_and_path(
    text: str,
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yaml").write_text(NODE)
    # a leading document, so that the file:line must point past line 1
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n" + text
    )
    rc, line = _run_clean(["-f", "node.yaml", "-f", "bad.yaml"], capsys)
    assert rc == 2
    assert expect in line, line
    if "quantities" not in expect:  # API validation errors name the file in the hint
        assert line.startswith("error: bad.yaml:5: "), line


@pytest.mark.parametrize(
    ("text", "expect"), [c[1:] for c in CONFIG_WRONG_TYPES], ids=[c[0] for c in CONFIG_WRONG_TYPES]
)
def test_wrong_config_field_type_names_path(
    text: str,
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yaml").write_text(NODE)
    (tmp_path / "config.yaml").write_text(text)
    rc, line = _run_clean(["-f", "node.yaml", "--config", "config.yaml"], capsys)
    assert rc == 2
    assert line.startswith("error: config.yaml: "), line
    assert expect in line, line


def test_integer_strings_are_refused_as_the_api_server_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13: `replicas: "3"` (a string in an int32 field) fails decoding, as kubectl apply."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yaml").write_text(NODE)
    (tmp_path / "pod.yaml").write_text(
        POD + f'spec: {{containers: [{CONTAINER}], priority: "7"}}\n'
    )
    rc, line = _run_clean(["-f", "node.yaml", "-f", "pod.yaml"], capsys)
    assert rc == 2
    assert (
        "cannot unmarshal string into Go struct field PodSpec.spec.priority of type int32" in line
    )


# -- bounds (issue 11 item 11): int32 fields, alias expansion, pods created, input size ------

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: c, image: x}}]}}
"""

_BOMB_LEVELS = "\n".join(
    f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)
)
ALIAS_BOMB = (
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n"
    '    a: &l0 "lol"\n'
    + "\n".join("    " + line.strip() for line in _BOMB_LEVELS.splitlines())
    + "\n    z: *l9\n"
    "spec: {containers: [{name: c, image: x}]}\n"
)

BOUNDS = [
    (
        "replicas over int32",
        ["-f", "big.yaml"],
        "cannot unmarshal number 2147483648 into Go struct field DeploymentSpec.spec.replicas",
    ),
    (
        "--then replicas over int32",
        ["-f", "small.yaml", "--then", "scale deploy/web --replicas=99999999999"],
        "invalid --replicas",
    ),
    ("alias bomb", ["-f", "bomb.yaml"], "excessive aliasing"),
    (
        "replicas over --max-pods",
        ["-f", "million.yaml", "--max-pods", "1000"],
        "more than 1000 pods",
    ),
    (
        "--then scale over --max-pods",
        ["-f", "small.yaml", "--max-pods", "50", "--then", "scale deploy/web --replicas=51"],
        "more than 50 pods",
    ),
    ("input file too large", ["-f", "huge.yaml"], "larger than"),
    ("deeply nested JSON", ["-f", "deep.json"], "nested too deeply"),
    ("deeply nested YAML", ["-f", "deep.yaml"], "nested too deeply"),
]


@pytest.mark.parametrize(("what", "args", "expect"), BOUNDS, ids=[c[0] for c in BOUNDS])
def test_bounds(
    what: str,
    args: list[str],
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yaml").write_text(NODE)
    (tmp_path / "big.yaml").write_text(DEPLOY.format(replicas=2147483648))
    (tmp_path / "small.yaml").write_text(DEPLOY.format(replicas=2))
    (tmp_path / "million.yaml").write_text(DEPLOY.format(replicas=1000000))
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "deep.yaml").write_text("[" * 100_000 + "]" * 100_000)
    with (tmp_path / "huge.yaml").open("w") as fh:
        fh.write("# padding\n")
        fh.truncate(65 * 1024 * 1024)  # sparse: 65 MiB of NUL bytes, over the 64 MiB limit
    rc = main(["schedule", "-f", "node.yaml", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("error: "), err
    assert expect in err.splitlines()[0], err
    assert rc == 2


def test_int32_limits_still_accept_the_maximum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2147483647 is a valid int32: accepted at decode (then bounded by --max-pods)."""
    (tmp_path / "node.yaml").write_text(NODE)
    (tmp_path / "max.yaml").write_text(DEPLOY.format(replicas=2147483647))
    rc = main(["schedule", "-f", str(tmp_path / "node.yaml"), "-f", str(tmp_path / "max.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "more than 100000 pods" in err and "Invalid value" not in err, err


def test_small_aliases_are_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: &l {app: a}}\n"
        "spec: {containers: [{name: c, image: x}], nodeSelector: *l}\n"
    )
    (tmp_path / "node.yaml").write_text(NODE.replace("zone: a", "zone: a, app: a"))
    (tmp_path / "pod.yaml").write_text(pod)
    rc = main(["schedule", "-f", str(tmp_path / "node.yaml"), "-f", str(tmp_path / "pod.yaml")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "n1" in out
