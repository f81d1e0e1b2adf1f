"""``--inventory``: play's connection variables as the ssh command line ``fleetkit ns`` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit.errors import UsageError
from fleetkit.netns.remote import remote_from_host_vars
from fleetkit.playbook.inventory import load_inventory


def test_host_vars_become_the_ssh_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        "[workers]\nnode1 ansible_host=192.0.2.7 ansible_port=2222\n"
        "[workers:vars]\nansible_user=ops\nansible_ssh_private_key_file=~/k\n"
        "ansible_ssh_common_args='-o ProxyJump=bastion -o UserKnownHostsFile=/dev/null'\n"
        "ansible_python_interpreter=/usr/bin/python3.11\n"
    )
    inventory = load_inventory([str(inv)], unparsed_is_failed=True)
    remote = remote_from_host_vars("node1", inventory.host_vars("node1"))
    argv = remote.ssh("true")
    assert argv[:5] == ["ssh", "-o", "ProxyJump=bastion", "-o", "UserKnownHostsFile=/dev/null"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == str(Path("~/k").expanduser())
    assert "IdentitiesOnly=yes" in argv and "LogLevel=ERROR" in argv
    assert "StrictHostKeyChecking=no" not in argv  # host key checking is on by default
    assert argv[-2:] == ["ops@192.0.2.7", "true"]
    assert remote.python == "/usr/bin/python3.11"


def test_host_key_checking_off_unless_the_users_args_say(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    assert "StrictHostKeyChecking=no" in remote_from_host_vars("n", {}).ssh("x")
    own = {"ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new"}
    assert "StrictHostKeyChecking=no" not in remote_from_host_vars("n", own).ssh("x")
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING")
    off = {"ansible_host_key_checking": False, "ansible_python_interpreter": "auto_silent"}
    remote = remote_from_host_vars("n", off)
    assert "StrictHostKeyChecking=no" in remote.ssh("x") and remote.python == "python3"
    assert remote.destination == "n"  # no ansible_host, no user: ssh's own defaults


@pytest.mark.parametrize(
    ("hv", "message"),
    [
        ({"ansible_host": "{{ lookup('env', 'H') }}"}, "ansible_host is a template"),
        ({"ansible_connection": "local"}, "ansible_connection=local is not supported"),
        ({"ansible_port": "ssh"}, "ansible_port='ssh' is not a port"),
        ({"ansible_user": ["a"]}, "ansible_user is a list, not a plain value"),
    ],
)
def test_unsupported_values_are_refused(hv: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        remote_from_host_vars("n", hv)


def _ns(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetkit", "ns", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ip", "--ssh", "r@h", "--inventory", "x"], "--ssh names the node"),
        (["ip", "--pod", "a", "--all-namespaces", "-t", "1"], "--all-namespaces needs --selector"),
        (["ip", "--node", "n1"], "--node needs --inventory or --kubeconfig"),
        (["ip", "--inventory", "/nonexistent/inv"], "No inventory was parsed"),
        (["ps", "--ssh", "r@h", "--pod", "a"], "ns ps lists a node's pods"),
    ],
)
def test_remote_flag_mistakes(args: list[str], message: str) -> None:
    out = _ns(*args)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert "\nhint: " in out.stderr or "No inventory" in out.stderr
