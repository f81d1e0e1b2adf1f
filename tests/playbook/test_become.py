"""become through ansible's own become plugins: their command lines, options, prompts and
failures, the local connection's terminal for a method that prompts, and ansible-playbook's
results for the same plays (a stand-in ``su`` as ``become_exe``, so no second user is needed)."""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetkit.playbook.connection import Become, BecomeFailed
from fleetkit.playbook.connection.agent import close_local_agents
from fleetkit.playbook.connection.become import Escalation, resolve_become
from fleetkit.playbook.connection.local import LocalConnection
from tests.playbook._harness import parse, run_ansible, run_fleetkit

# su's interface (su [flags] USER -c CMD), asking for the password on its terminal as
# util-linux su does, and failing with su's PAM message; the command runs as the caller
FAKE_SU = """#!/bin/sh
printf 'Password: '
stty -echo 2>/dev/null
IFS= read -r pw
stty echo 2>/dev/null
echo
if [ "$pw" != "right-pass" ]; then echo 'su: Authentication failure'; exit 1; fi
for a; do last=$a; done
exec /bin/sh -c "$last"
"""


@pytest.fixture()
def fake_su(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "fake-su"
    path.write_text(FAKE_SU)
    path.chmod(0o755)
    yield str(path)
    close_local_agents()


def _none(_name: str) -> tuple[bool, Any]:
    return False, None


def test_plugins_are_ansibles_own_with_their_names_and_defaults() -> None:
    sudo = resolve_become("sudo", {"become_user": "root"}, _none)
    assert (sudo.method, sudo.plugin, sudo.flags, sudo.user) == (
        "sudo",
        "ansible.builtin.sudo",
        "-H -S -n",
        "root",
    )
    doas = resolve_become("doas", {"become_user": "bob"}, _none)
    assert doas.plugin == "community.general.doas" and doas.user == "bob"
    fq = resolve_become("community.general.doas", {}, _none)
    assert fq.plugin == doas.plugin
    with pytest.raises(BecomeFailed, match="Invalid become method specified, could not find"):
        resolve_become("no_such_method", {}, _none)


def test_plugin_variables_and_keywords() -> None:
    values = {"ansible_su_exe": "/opt/su", "ansible_su_flags": "-l", "ansible_su_pass": "pw"}

    def lookup(name: str) -> tuple[bool, Any]:
        return (name in values), values.get(name)

    su = resolve_become("su", {"become_user": "admin"}, lookup)
    assert (su.exe, su.flags, su.password, su.user) == ("/opt/su", "-l", "pw", "admin")
    assert "pw" not in repr(su)
    kw = resolve_become("ansible.builtin.su", {"become_exe": "/bin/su2"}, _none)
    assert kw.exe == "/bin/su2" and kw.user == "root"


def test_command_lines_come_from_the_plugin() -> None:
    su = Escalation(Become(user="root", method="su", flags="", plugin="su", password="x"))
    line = su.command("id -un")
    assert re.match(r"su +root -c '/bin/sh -c '\"'\"'echo BECOME-SUCCESS-[a-z]{32} ; id -un", line)
    assert su.wants_tty and su.escalates
    sudo = Escalation(Become(password="x"))
    line = sudo.command("id")
    # a password: sudo's -n goes, its prompt carries the escalation's key
    assert line.startswith('sudo -H -S -p "[sudo via ansible, key=') and " -n " not in line
    assert "x" not in line.split("-u root")[0].split("key=")[0]
    assert not Escalation(Become()).wants_tty
    runas = Escalation(Become(method="runas", plugin="runas", flags=""))
    assert runas.command("id") == "id" and not runas.escalates


@pytest.mark.skipif(os.geteuid() != 0 and not os.path.exists("/dev/ptmx"), reason="a pty")
def test_local_su_prompts_on_a_terminal(fake_su: str) -> None:
    conn = LocalConnection()
    become = resolve_become(
        "su", {"become_user": "fk-other", "become_exe": fake_su, "become_pass": "right-pass"}, _none
    )
    res = conn.run(["id", "-un"], become=become)
    assert (res.rc, res.stdout.decode()) == (0, getpass.getuser() + "\n")
    # the escalated agent keeps running: the next command reuses it, its stdin intact
    big = b"x" * 200_000 + b"\n"
    echo = conn.run(["cat"], stdin=big, become=become)
    assert echo.stdout == big
    wrong = resolve_become(
        "su", {"become_user": "nobody", "become_exe": fake_su, "become_pass": "nope"}, _none
    )
    with pytest.raises(BecomeFailed) as info:
        conn.run(["id"], become=wrong)
    assert str(info.value).startswith("Premature end of stream waiting for become success.")
    assert "su: Authentication failure" in str(info.value)


def test_local_absent_become_binary(tmp_path: Path) -> None:
    conn = LocalConnection()
    become = resolve_become(
        "su", {"become_user": "fk-other", "become_exe": str(tmp_path / "no-su")}, _none
    )
    with pytest.raises(BecomeFailed, match=r"(?s)Premature end of stream.*Standard Error"):
        conn.run(["id"], become=become)


LOCAL_PLAY = """- hosts: localhost
  gather_facts: false
  become: true
  become_method: su
  become_user: nobody
  become_exe: "{{ playbook_dir }}/fake-su"
  tasks:
    - name: who am I
      command: id -un
    - name: a module as the become user
      copy:
        content: "hi\\n"
        dest: "{{ playbook_dir }}/out-{{ tool }}.txt"
    - name: an absent become binary
      command: id -un
      become_exe: "{{ playbook_dir }}/no-such-su"
      ignore_errors: true
"""


@pytest.mark.interop
@pytest.mark.parametrize("password", ["right-pass", "wrong-pass"])
def test_local_su_same_as_ansible(fake_su: str, tmp_path: Path, password: str) -> None:
    (tmp_path / "pb.yml").write_text(LOCAL_PLAY)
    outs = {}
    for tool in ("ansible", "fleetkit"):
        args = ["-i", "localhost,", "pb.yml", "-v", "-e", f"tool={tool}"]
        args += ["-e", f"ansible_become_password={password}", "-c", "local"]
        if tool == "ansible":
            res = run_ansible(args, tmp_path)
        else:
            res = run_fleetkit(["play", *args], tmp_path)
        text = re.sub(r"tool=\w+|out-\w+\.txt|/tmp/\S+?/", "X", res.stdout)
        text = re.sub(
            r'"(delta|start|end|checksum|md5sum|src|uid|gid|owner|group)": [^,}]+', "", text
        )
        outs[tool] = (res.returncode, parse(text))
    assert outs["fleetkit"] == outs["ansible"]
    if password == "right-pass":
        assert (tmp_path / "out-fleetkit.txt").read_text() == "hi\n"


def test_a_plugin_that_needs_a_terminal_over_ssh_without_one() -> None:
    from fleetkit.playbook.connection.become import tty_refusal
    from fleetkit.playbook.connection.ssh import SSHConnection

    machinectl = resolve_become("machinectl", {}, _none)
    plain = SSHConnection("h", "192.0.2.1")
    assert tty_refusal(machinectl, plain, "-C -o ControlMaster=auto") == (
        "The 'ssh' connection does not provide a TTY which is required for the selected "
        "become plugin: community.general.machinectl."
    )
    assert tty_refusal(machinectl, SSHConnection("h", "192.0.2.1", extra_args="-tt"), "") is None
    assert tty_refusal(machinectl, plain, "-o RequestTTY=force") is None
    assert tty_refusal(machinectl, LocalConnection(), "") is None
    assert tty_refusal(resolve_become("su", {}, _none), plain, "") is None
