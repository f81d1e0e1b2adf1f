"""Inventory sources (scripts, directories, plugin selection) vs the real ansible-inventory."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from fleetkit.playbook import vault
from tests.playbook._harness import ansible_env, ansible_tool, run_fleetkit

SCRIPT_META = """#!/bin/sh
if [ "$1" = "--list" ]; then
cat <<'EOF'
{"web": {"hosts": ["w1", "w2"], "vars": {"tier": "front"}, "children": ["edge"]},
 "edge": ["e1"],
 "db": {"hosts": ["d1"]},
 "_meta": {"hostvars": {"w1": {"port": 8080, "tags": ["a", "b"]}, "d1": {"x": null}}}}
EOF
else
  echo '{}'
fi
"""

SCRIPT_HOST = """#!/bin/sh
case "$1" in
  --list) echo '{"all": {"hosts": ["h1", "h2"], "vars": {"v": 1}}}' ;;
  --host) echo "{\\"who\\": \\"$2\\"}" ;;
esac
"""

YAML_INV = """all:
  children:
    app:
      hosts:
        a1: {ansible_host: 10.0.0.1}
"""


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _both(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    theirs = subprocess.run(
        [ansible_tool("ansible-inventory"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**ansible_env(), **(env or {})},
        timeout=120,
        check=False,
    )
    ours = run_fleetkit(["inventory", *args], cwd, env=env)
    return theirs, ours


@pytest.mark.parametrize("mode", [["--list"], ["--list", "--yaml"], ["--graph", "--vars"]])
@pytest.mark.parametrize("script", [SCRIPT_META, SCRIPT_HOST], ids=["meta", "per-host"])
def test_script_inventory(tmp_path: Path, script: str, mode: list[str]) -> None:
    _exe(tmp_path / "inv.sh", script)
    theirs, ours = _both(["-i", "inv.sh", *mode], tmp_path)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert ours.stdout == theirs.stdout


def test_directory_of_sources(tmp_path: Path) -> None:
    d = tmp_path / "inventory"
    d.mkdir()
    (d / "01-hosts.ini").write_text("[web]\nw1\n[db]\nd1 role=primary\n")
    (d / "02-more.yml").write_text(YAML_INV)
    _exe(d / "03-dyn.sh", SCRIPT_META)
    (d / "README.md").write_text("not an inventory\n")
    (d / "old.retry").write_text("w9\n")
    (d / ".hidden").write_text("[hidden]\nh9\n")
    (d / "notes.txt").write_text("junk = = =\n")
    sub = d / "sub"
    sub.mkdir()
    (sub / "extra.ini").write_text("[extra]\nx1\n")
    (d / "group_vars").mkdir()
    (d / "group_vars" / "web.yml").write_text("from_group_vars: 1\n")
    (d / "host_vars").mkdir()
    (d / "host_vars" / "d1.yml").write_text("from_host_vars: 2\n")
    for mode in (["--list"], ["--graph", "--vars"], ["--list", "--yaml", "--export"]):
        theirs, ours = _both(["-i", "inventory", *mode], tmp_path)
        assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
        assert ours.stdout == theirs.stdout, mode


def test_executable_ini_falls_back_to_ini(tmp_path: Path) -> None:
    _exe(tmp_path / "hosts", "[web]\nw1 a=1\n")
    theirs, ours = _both(["-i", "hosts", "--list"], tmp_path)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert ours.stdout == theirs.stdout


def test_ignore_patterns_from_config(tmp_path: Path) -> None:
    d = tmp_path / "inv"
    d.mkdir()
    (d / "a.ini").write_text("[a]\na1\n")
    (d / "skip-me.ini").write_text("[b]\nb1\n")
    env = {"ANSIBLE_INVENTORY_IGNORE_REGEX": "^skip-"}
    theirs, ours = _both(["-i", "inv", "--list"], tmp_path, env)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert ours.stdout == theirs.stdout
    assert "b1" not in ours.stdout


def test_enable_plugins_restricts_parsers(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(YAML_INV)
    ok = run_fleetkit(["inventory", "-i", "inv.yml", "--list"], tmp_path)
    assert ok.returncode == 0 and "a1" in ok.stdout
    theirs, ours = _both(
        ["-i", "inv.yml", "--list"], tmp_path, env={"ANSIBLE_INVENTORY_ENABLED": "ini"}
    )
    # the ini parser does not take a YAML document: as ansible, a warning per failed plugin,
    # then the source is left out (only the implicit localhost remains)
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert "a1" not in ours.stdout
    assert "[WARNING]: Failed to parse inventory with 'ini' plugin: " in ours.stderr
    assert f"[WARNING]: Unable to parse {tmp_path / 'inv.yml'} as an inventory source" in (
        ours.stderr
    )


def test_unknown_plugin_config_is_refused_with_ansibles_words(tmp_path: Path) -> None:
    (tmp_path / "cloud.yml").write_text("plugin: amazon.aws.aws_ec2\nregions: [x]\n")
    ours = run_fleetkit(["inventory", "-i", "cloud.yml", "--list"], tmp_path)
    assert ours.returncode == 2
    assert f"inventory config '{tmp_path / 'cloud.yml'}' specifies unknown plugin" in ours.stderr
    assert "hint:" in ours.stderr


def test_vaulted_host_vars_print_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "hosts.ini").write_text("[web]\nw1\n")
    (tmp_path / "host_vars").mkdir()
    enc = vault.encrypt("topsecret", b"pw")
    inline = "".join(f"  {line}\n" for line in enc.splitlines())
    (tmp_path / "host_vars" / "w1.yml").write_text(f"plain: 1\nsecret: !vault |\n{inline}")
    whole = vault.encrypt("whole: 2\n", b"pw")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text(whole)
    args = ["-i", "hosts.ini", "--vault-password-file", "pw"]
    for mode in (["--list"], ["--host", "w1"], ["--list", "--yaml"]):
        theirs, ours = _both([*args, *mode], tmp_path)
        assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
        assert ours.stdout == theirs.stdout, mode
        assert "topsecret" not in ours.stdout
    wrong = run_fleetkit(["inventory", "-i", "hosts.ini", "--list"], tmp_path)
    assert wrong.returncode == 1
    assert "Attempting to decrypt but no vault secrets found" in wrong.stderr


def test_inventory_help_groups() -> None:
    proc = run_fleetkit(["inventory", "--help"], Path(os.getcwd()))
    assert "Actions:" in proc.stdout and "Output Options:" in proc.stdout


@pytest.mark.parametrize("name,text", [("hosts", "[web]\nw1 a=1\n"), ("inv.yml", YAML_INV)])
def test_vaulted_inventory_file(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / name).write_text(vault.encrypt(text, b"pw"))
    theirs, ours = _both(["-i", name, "--list", "--vault-password-file", "pw"], tmp_path)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert ours.stdout == theirs.stdout


@pytest.mark.parametrize("mode", [["--host", "nope"], ["--graph", "nope"]])
def test_bad_host_or_group_is_ansibles_option_error(tmp_path: Path, mode: list[str]) -> None:
    (tmp_path / "hosts").write_text("[web]\nw1\n")
    theirs, ours = _both(["-i", "hosts", *mode], tmp_path)
    assert theirs.returncode == ours.returncode == 5
    assert theirs.stderr.splitlines()[-1].removeprefix("[ERROR]: ") in ours.stderr
