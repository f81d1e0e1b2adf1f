"""``fleetkit play``'s command line: ansible-playbook's flags, groups, precedence and exit codes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fleetkit.cli.play import _join_ssh_values, _play_parser, run_options
from fleetkit.playbook.config import load_config
from tests.playbook._harness import ansible_env, ansible_tool, run_ansible, run_fleetkit

PLAY = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
# flags of ansible-playbook that fleetkit does not offer at all
NOT_OFFERED = {"--version", "--connection-password-file", "--conn-pass-file"}


def _long_flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text))


def test_help_has_ansibles_groups_and_flags() -> None:
    theirs = subprocess.run(
        [ansible_tool("ansible-playbook"), "--help"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
        check=False,
    ).stdout
    ours = run_fleetkit(["play", "--help"], Path.cwd()).stdout
    for title in ("Connection Options:", "Privilege Escalation Options:"):
        assert title in theirs and title in ours
    missing = _long_flags(theirs) - _long_flags(ours) - NOT_OFFERED
    assert not missing, missing
    assert ours.rstrip().splitlines()[-1].strip().startswith("fleetkit play ")


def _opts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg: str, argv: list[str]) -> object:
    (tmp_path / "ansible.cfg").write_text(cfg)
    monkeypatch.chdir(tmp_path)
    args = _play_parser().parse_args(_join_ssh_values([*argv, "p.yml"]))
    env = {"HOME": str(tmp_path)}
    return run_options(args, load_config(env), args.forks or 5, None, [], [])


CFG = """[defaults]
remote_user = cfguser
private_key_file = k
timeout = 20
force_handlers = true
library = lib1:lib2
transport = paramiko
[privilege_escalation]
become = true
become_user = cfgroot
become_method = su
"""


def test_config_fills_run_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = _opts(tmp_path, monkeypatch, CFG, [])
    o = opts.__dict__
    assert o["remote_user"] == "cfguser"
    assert o["private_key_file"] == str(tmp_path / "k")
    assert o["timeout_s"] == 20
    assert o["force_handlers"] is True
    assert o["become"] is True and o["become_user"] == "cfgroot" and o["become_method"] == "su"
    assert o["module_paths"] == [str(tmp_path / "lib1"), str(tmp_path / "lib2")]
    assert o["connection"] == "paramiko"
    assert o["config"]["roles_path"][0].endswith("/.ansible/roles")


def test_flags_win_over_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [
        "-u", "me", "--key-file", "/k2", "-T", "3", "-b", "--become-user", "bob",
        "--become-method", "sudo", "-c", "local", "-M", "m1:m2", "-D", "-C", "--step",
        "--start-at-task", "named", "--flush-cache", "--ssh-common-args", "-o A=1",
        "--ssh-extra-args", "-o B=2", "-vvvvv",
    ]  # fmt: skip
    o = _opts(tmp_path, monkeypatch, CFG, argv).__dict__
    assert o["remote_user"] == "me" and o["private_key_file"] == "/k2" and o["timeout_s"] == 3
    assert o["become_user"] == "bob" and o["become_method"] == "sudo" and o["connection"] == "local"
    assert o["module_paths"][:2] == ["m1", "m2"]
    assert o["diff"] and o["check"] and o["step"] and o["flush_cache"]
    assert o["start_at_task"] == "named"
    assert o["ssh_common_args"] == "-o A=1" and o["ssh_extra_args"] == "-o B=2"
    assert o["verbosity"] == 5


def test_become_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bp").write_text("sekret\n")
    o = _opts(tmp_path, monkeypatch, "", ["--become-password-file", str(tmp_path / "bp")])
    assert o.__dict__["become_password"] == "sekret"


@pytest.mark.parametrize(
    "flags,word",
    [
        (["--scp-extra-args", "-l 10"], "--scp-extra-args"),
        (["--sftp-extra-args", "-f"], "--sftp-extra-args"),
        (["-k"], "-k/--ask-pass"),
    ],
)
def test_unhonoured_flags_are_refused(tmp_path: Path, flags: list[str], word: str) -> None:
    (tmp_path / "p.yml").write_text(PLAY)
    proc = run_fleetkit(["play", "-i", "localhost,", *flags, "p.yml"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and word in proc.stderr and "hint:" in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus", "p.yml"],
        ["nope.yml"],
        ["bad.yml"],
        ["--syntax-check", "p.yml", "p.yml"],
        ["-e", "@nope.yml", "p.yml"],
    ],
)
def test_exit_codes_match_ansible(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "p.yml").write_text(PLAY)
    (tmp_path / "bad.yml").write_text("- hosts: all\n  tasks: [\n")
    args = ["-i", "localhost,", *argv]
    theirs = run_ansible(args, tmp_path)
    ours = run_fleetkit(["play", *args], tmp_path)
    assert ours.returncode == theirs.returncode, (theirs.stderr, ours.stderr)
    if "--syntax-check" in argv:
        assert ours.stdout == theirs.stdout


def test_dev_null_inventory_is_empty_with_ansibles_warning(tmp_path: Path) -> None:
    # ansible's default inventory is /dev/null: parsed as an empty INI file, implicit localhost;
    # the warning follows ANSIBLE_LOCALHOST_WARNING in both tools
    (tmp_path / "pb.yml").write_text(PLAY)
    warn = "[WARNING]: provided hosts list is empty, only localhost is available."
    for on in ("True", "False"):
        env = dict(ansible_env(), ANSIBLE_LOCALHOST_WARNING=on)
        args = ["-i", "/dev/null", "pb.yml"]
        a = subprocess.run(
            [ansible_tool("ansible-playbook"), *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        f = run_fleetkit(["play", *args], tmp_path, env=env)
        assert (warn in a.stderr) == (warn in f.stderr) == (on == "True")
        assert f.stdout == a.stdout
        assert f.returncode == a.returncode == 0
