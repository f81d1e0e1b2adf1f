"""Bad input: one-line error + hint, documented exit codes, no tracebacks."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import FIXTURES, run_fleetkit


def _play(tmp_path: Path, text: str, *extra: str) -> tuple[int, str, str]:
    pb = tmp_path / "pb.yml"
    pb.write_text(text)
    p = run_fleetkit(["play", "-i", str(FIXTURES / "inventory.ini"), str(pb), *extra], tmp_path)
    return p.returncode, p.stdout, p.stderr


def test_yaml_error_has_file_line(tmp_path: Path) -> None:
    rc, _, err = _play(tmp_path, "- hosts: all\n  tasks:\n    - name: x\n      debug: {msg: [}\n")
    assert rc == 4  # ansible-playbook's parser-error status
    assert f"{tmp_path / 'pb.yml'}:4" in err
    assert err.startswith("error: ") and "hint:" in err and "Traceback" not in err


def test_unknown_module(tmp_path: Path) -> None:
    rc, _, err = _play(tmp_path, "- hosts: all\n  tasks:\n    - name: x\n      frobnicate: {}\n")
    assert rc == 4
    assert "couldn't resolve module/action 'frobnicate'" in err
    assert f"{tmp_path / 'pb.yml'}:3" in err


def test_unknown_parameter_is_a_host_failure(tmp_path: Path) -> None:
    rc, out, _ = _play(
        tmp_path,
        "- hosts: lone\n  gather_facts: false\n  tasks:\n"
        "    - name: x\n      uri: {url: 'http://127.0.0.1:1/', bogus: 1}\n",
    )
    assert rc == 2
    assert (
        "Unsupported parameters for (ansible.legacy.uri) module: bogus. Supported parameters" in out
    )


def test_undefined_variable(tmp_path: Path) -> None:
    rc, out, _ = _play(
        tmp_path,
        "- hosts: lone\n  gather_facts: false\n  tasks:\n"
        "    - name: x\n      debug: {msg: '{{ nope }}'}\n",
    )
    assert rc == 2
    assert "'nope' is undefined" in out
    assert "fatal: [lone]: FAILED!" in out


def test_no_hosts_matched(tmp_path: Path) -> None:
    rc, out, err = _play(tmp_path, "- hosts: nosuch\n  tasks:\n    - command: /bin/true\n")
    assert rc == 0
    assert "skipping: no hosts matched" in out
    assert "Could not match supplied host pattern" in err


def test_missing_inventory(tmp_path: Path) -> None:
    # as ansible: warnings, then an inventory of the implicit localhost only
    p = run_fleetkit(["inventory", "-i", str(tmp_path / "nope.ini"), "--list"], tmp_path)
    assert p.returncode == 0
    assert f"[WARNING]: Unable to parse {tmp_path / 'nope.ini'} as an inventory source" in (
        p.stderr
    )
    assert "No inventory was parsed, only implicit localhost is available" in p.stderr
    failing = run_fleetkit(
        ["inventory", "-i", str(tmp_path / "nope.ini"), "--list"],
        tmp_path,
        env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
    )
    assert failing.returncode == 2
    assert failing.stderr.startswith("error: No inventory was parsed, please check your")


def test_unreachable_exit_4_and_message(tmp_path: Path) -> None:
    inv = tmp_path / "inv.ini"
    inv.write_text("dead ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1\n")
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - command: /bin/true\n")
    p = run_fleetkit(
        ["play", "-i", str(inv), str(pb)], tmp_path, env={"ANSIBLE_HOST_KEY_CHECKING": "False"}
    )
    assert p.returncode == 4
    assert "fatal: [dead]: UNREACHABLE! =>" in p.stdout
    assert "Connection refused" in p.stdout


def test_json_events(tmp_path: Path) -> None:
    import json

    rc, out, _ = _play(
        tmp_path,
        "- hosts: web\n  gather_facts: false\n  tasks:\n    - name: t\n      command: /bin/true\n",
        "-o",
        "json",
    )
    assert rc == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[1]["ev"] == "play_start"
    changed = [e["host"] for e in events if e["ev"] == "changed"]
    assert changed == ["web01", "web02", "web03", "web10"]
    assert events[-1]["ev"] == "stats" and events[-1]["hosts"]["web01"]["changed"] == 1


def test_check_mode_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    rc, out, _ = _play(
        tmp_path,
        "- hosts: lone\n  gather_facts: false\n  tasks:\n"
        f"    - name: c\n      copy: {{content: hi, dest: '{target}'}}\n",
        "--check",
    )
    assert rc == 0 and "changed: [lone]" in out
    assert not target.exists()


def test_missing_playbook_exits_1(tmp_path: Path) -> None:
    p = run_fleetkit(["play", "-i", str(FIXTURES / "inventory.ini"), "nope.yml"], tmp_path)
    assert p.returncode == 1  # as ansible-playbook
    assert p.stderr.startswith("error: the playbook: nope.yml could not be found")


def test_ctrl_c_exits_99_as_ansible(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: lone\n  gather_facts: false\n  tasks:\n"
        "    - name: long task\n      command: sleep 60\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "play", "-i", str(FIXTURES / "inventory.ini"), str(pb)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # a runner started in the background inherits SIGINT ignored, and Python then installs
        # no KeyboardInterrupt handler: give the child the default disposition, as a terminal does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        seen = ""
        while "TASK [long task]" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "TASK [long task]" in seen
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 99
    assert "[ERROR]: User interrupted execution" in err
    assert "Traceback" not in err


def test_missing_included_role_error_shows_its_origin_as_ansible(tmp_path: Path) -> None:
    from tests.playbook._harness import run_ansible

    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - include_role:\n"
        "        name: does-not-exist\n"
    )
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    env = {"ANSIBLE_ROLES_PATH": str(tmp_path / "roles")}
    a = run_ansible(args, tmp_path, env=env)
    f = run_fleetkit(["play", *args], tmp_path, env=env)
    want = a.stderr[a.stderr.index("[ERROR]") :]
    assert f.stderr[f.stderr.index("[ERROR]") :] == want
    assert f"Origin: {tmp_path / 'pb.yml'}:5:15" in f.stderr
    assert f.stdout == a.stdout and f.returncode == a.returncode == 2
