"""The README's rolling update (docs/examples/rolling/: a playbook with roles) runs unchanged
under ansible-playbook and fleetkit play, on local hosts whose kubelet healthz is a tiny HTTP
server on 127.0.0.1; one stays 503 and stops the rollout. Same stdout (timings masked), same
exit code."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.playbook._harness import parse, run_ansible, run_fleetkit

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "rolling"
PLAYBOOK = EXAMPLE / "rolling.yml"
# inventory order differs from the sorted order the play asks for
NODES = {"node4": 200, "node2": 200, "node1": 200, "node3": 503}
TIMINGS = re.compile(
    r'"(date|delta|start|end|elapsed)": ("[^"]*"|\d+)|'
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?|\b\d+\.\d+ ?s\b"
)


class _Healthz(http.server.ThreadingHTTPServer):
    """A kubelet healthz stand-in answering every GET with one status; counts the GETs."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.hits = 0
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Healthz

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits += 1
        body = b"ok" if self.server.status == 200 else b"unhealthy"
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def kubelets() -> Iterator[dict[str, _Healthz]]:
    servers = {name: _Healthz(status) for name, status in NODES.items()}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for t in threads:
        t.start()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()
        for t in threads:
            t.join(timeout=10)


def _inventory(d: Path, servers: dict[str, _Healthz]) -> Path:
    lines = ["[kubelets]"]
    for name, srv in servers.items():
        port = srv.server_address[1]
        lines.append(
            f"{name} ansible_connection=local kubelet_health_url=http://127.0.0.1:{port}/healthz"
        )
    # the role defaults that keep the hosts' packages (and the machine) as they are
    lines += [
        "",
        "[kubelets:vars]",
        "os_update_enabled=false",
        "os_update_reboot=false",
        "kubelet_health_retries=2",
        "kubelet_health_delay=0",
    ]
    inv = d / "inventory.ini"
    inv.write_text("\n".join(lines) + "\n")
    return inv


def test_rolling_example_runs_unchanged_with_the_same_output_as_ansible(
    tmp_path: Path, kubelets: dict[str, _Healthz]
) -> None:
    inv = _inventory(tmp_path, kubelets)
    args = ["-i", str(inv), str(PLAYBOOK)]
    want = run_ansible(args, tmp_path)
    hits = {name: s.hits for name, s in kubelets.items()}
    got = run_fleetkit(["play", *args], tmp_path)
    assert want.returncode == 2, want.stdout + want.stderr
    assert got.returncode == want.returncode, got.stdout + got.stderr
    assert TIMINGS.sub("", got.stdout) == TIMINGS.sub("", want.stdout)
    # one node at a time, sorted: node3 stays 503 (1 try + 2 retries), node4 is never touched
    assert hits == {"node4": 0, "node2": 1, "node1": 1, "node3": 3}
    assert {name: s.hits for name, s in kubelets.items()} == {
        name: 2 * n for name, n in hits.items()
    }
    banners = [ln for ln in got.stdout.splitlines() if ln.startswith("TASK [")]
    assert "TASK [os_update : Reboot now if the upgrade changed something] " in "\n".join(banners)
    assert "node4" not in got.stdout
    assert "FAILED - RETRYING: [node3]: Wait for the kubelet healthz (1 retries left)." in (
        got.stdout
    )


def test_rolling_example_lists_the_same_tasks_as_ansible(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.ini"
    inv.write_text("[kubelets]\nnode1\nnode2\n")
    args = ["-i", str(inv), str(PLAYBOOK), "--list-tasks"]
    want = run_ansible(args, tmp_path)
    got = run_fleetkit(["play", *args], tmp_path)
    assert want.returncode == got.returncode == 0, got.stdout + got.stderr
    assert got.stdout == want.stdout


ROLE_TASKS = """- meta: flush_handlers
- name: "meta {{ 'not templated' }}"
  meta: noop
- name: retry {{ inventory_hostname }}
  command: /bin/false
  register: r
  until: r.rc == 0
  retries: 1
  delay: 0
  ignore_errors: true
- command: /bin/false
  register: r
  until: r.rc == 0
  retries: 1
  delay: 0
  ignore_errors: true
"""

ROLE_PLAY = """- hosts: localhost
  gather_facts: false
  roles: [r]
  tasks:
    - meta: flush_handlers
    - name: named meta
      meta: noop
"""


def test_role_meta_banner_and_retry_line_names_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text(ROLE_TASKS)
    (tmp_path / "pb.yml").write_text(ROLE_PLAY)
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    want = run_ansible(args, tmp_path)
    got = run_fleetkit(["play", *args], tmp_path)
    assert got.returncode == want.returncode == 0, got.stdout + got.stderr
    assert TIMINGS.sub("", got.stdout) == TIMINGS.sub("", want.stdout)
    # a meta task's banner keeps the role prefix and its name untemplated; a retry line shows
    # the task's own templated name, the role prefix only for an unnamed task
    assert "TASK [r : meta {{ 'not templated' }}]" in got.stdout
    assert "FAILED - RETRYING: [localhost]: retry localhost (1 retries left)." in got.stdout
    assert "FAILED - RETRYING: [localhost]: r : command (1 retries left)." in got.stdout


# -- behaviours the roles benchmark shape (benchmarks/play.py, ssh_roles_10) needed -------------

NEWLINES = """- hosts: all
  gather_facts: false
  vars:
    l: [1, 2]
  tasks:
    - copy:
        content: "{{ item }}\\n"
        dest: "{{ playbook_dir }}/out-{{ inventory_hostname }}-{{ item }}"
      loop: [a]
    - debug: {msg: " {{ l }} "}
    - debug: {msg: "{{ l }}\\n"}
    - debug: {msg: "\\n{{ 3 }}"}
    - debug: {msg: "{{ 3 }} "}
    - debug: {msg: "{{ l }}\\n\\n"}
    - debug: {msg: "{{ 'a' }}\\n\\n"}
    - debug: {msg: "{{ 'a\\n' }}\\n"}
    - set_fact: {a: " {{ 3 }}", b: "{{ l }} "}
    - debug: {msg: "{{ a | type_debug }} {{ b | type_debug }}"}
"""


def test_one_expression_with_text_around_it_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(NEWLINES)
    args = ["-i", "x,", "-c", "local", "pb.yml"]
    want = run_ansible(args, tmp_path)
    written = (tmp_path / "out-x-a").read_bytes()
    (tmp_path / "out-x-a").unlink()
    got = run_fleetkit(["play", *args], tmp_path)
    assert want.returncode == got.returncode == 0, got.stdout + got.stderr
    # "{{ item }}\n" keeps its newline; " {{ l }} " is a string, "{{ l }}\n" still a list
    assert (tmp_path / "out-x-a").read_bytes() == written == b"a\n"
    assert TIMINGS.sub("", got.stdout) == TIMINGS.sub("", want.stdout)
    assert '"msg": "str str"' in got.stdout


def test_filter_plugins_load_once_under_concurrent_forks(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - set_fact:\n"
        "        s: \"{{ {'a': 1} | combine({'h': inventory_hostname}) | to_json }}\"\n"
        "    - debug: {var: s}\n"
    )
    (tmp_path / "inv.ini").write_text(
        "[all]\n" + "".join(f"n{i} ansible_connection=local\n" for i in range(8))
    )
    args = ["-i", "inv.ini", "pb.yml", "-f", "8"]
    want = run_ansible(args, tmp_path)
    got = run_fleetkit(["play", *args], tmp_path)
    assert want.returncode == got.returncode == 0, got.stdout + got.stderr
    assert "Skipping plugin" not in got.stderr
    want_events, want_recap = parse(want.stdout)
    got_events, got_recap = parse(got.stdout)
    assert got_recap == want_recap
    assert sorted(got_events) == sorted(want_events)
