"""ansible.cfg + ANSIBLE_*: found, typed and refused as ansible-core 2.19 does."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fleetkit.playbook.config import ConfigError, check_supported, find_config_file, load_config
from tests.playbook._harness import ansible_tool, run_fleetkit

CFG = """[defaults]
inventory = hosts.ini, other
forks = 7
roles_path = roles:~/more
host_key_checking = no
timeout = 33
remote_user = deploy
private_key_file = keys/id
vault_identity_list = a@x, b@y
gathering = explicit
[privilege_escalation]
become = yes
become_user = admin
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=no
control_path_dir = cp
[inventory]
enable_plugins = ini, ansible.builtin.yaml
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(extra)
    return env


def test_file_values_are_typed_as_ansible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ansible.cfg").write_text(CFG)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_env(HOME=str(tmp_path)))
    assert cfg.path == str(tmp_path / "ansible.cfg")
    assert cfg["inventory"] == [str(tmp_path / "hosts.ini"), str(tmp_path / "other")]
    assert cfg["forks"] == 7
    assert cfg["timeout"] == 33
    assert cfg["host_key_checking"] is False
    assert cfg["become"] is True and cfg["become_user"] == "admin"
    assert cfg["pipelining"] is True
    assert cfg["roles_path"] == [str(tmp_path / "roles"), os.path.expanduser("~/more")]
    assert cfg["private_key_file"] == str(tmp_path / "keys" / "id")
    assert cfg["control_path_dir"] == str(tmp_path / "cp")
    assert cfg["vault_identity_list"] == ["a@x", "b@y"]
    assert cfg["enable_plugins"] == ["ini", "ansible.builtin.yaml"]
    assert cfg.origins["forks"] == str(tmp_path / "ansible.cfg")
    assert cfg.is_default("stdout_callback")


def test_env_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ansible.cfg").write_text(CFG)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_env(ANSIBLE_FORKS="3", ANSIBLE_BECOME="0", ANSIBLE_SSH_PIPELINING="off"))
    assert cfg["forks"] == 3
    assert cfg["become"] is False
    assert cfg["pipelining"] is False
    assert cfg.origins["forks"] == "env: ANSIBLE_FORKS"


def test_ansible_config_env_and_world_writable_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o777)
    (public / "ansible.cfg").write_text("[defaults]\nforks = 9\n")
    monkeypatch.chdir(public)
    warnings: list[str] = []
    assert find_config_file(_env(HOME=str(tmp_path)), warnings) in (
        None,
        "/etc/ansible/ansible.cfg",
    )
    assert warnings and "world writable directory" in warnings[0]
    other = tmp_path / "conf"
    other.mkdir()
    (other / "ansible.cfg").write_text("[defaults]\nforks = 4\n")
    assert load_config(_env(ANSIBLE_CONFIG=str(other)))["forks"] == 4


def test_invalid_value_is_ansibles_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match="Config 'DEFAULT_FORKS' from 'env: ANSIBLE_FORKS' has an"
    ):
        load_config(_env(ANSIBLE_FORKS="abc"))


@pytest.mark.parametrize(
    "var,value,word",
    [
        ("ANSIBLE_HASH_BEHAVIOUR", "merge", "hash_behaviour"),
        ("ANSIBLE_RETRY_FILES_ENABLED", "true", "retry_files_enabled"),
        ("ANSIBLE_INVENTORY_ENABLED", "amazon.aws.aws_ec2", "enable_plugins"),
    ],
)
def test_unhonoured_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, word: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=word):
        check_supported(load_config(_env(**{var: value})))


def test_defaults_and_env_host_key_checking_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    check_supported(
        load_config(_env(ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_GATHERING="implicit"))
    )
    (tmp_path / "ansible.cfg").write_text("[defaults]\nhost_key_checking = False\n")
    with pytest.raises(ConfigError, match="host_key_checking"):
        check_supported(load_config(_env()))


def test_config_matches_ansible_config_dump(tmp_path: Path) -> None:
    """The values ansible-config reports for the same file and environment are ours."""
    (tmp_path / "ansible.cfg").write_text(CFG)
    env = _env(HOME=str(tmp_path), ANSIBLE_TIMEOUT="12", PATH=os.environ["PATH"])
    proc = subprocess.run(
        [ansible_tool("ansible-config"), "dump", "--only-changed", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    theirs = {e["name"]: e["value"] for e in json.loads(proc.stdout) if "name" in e}
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        ours = load_config(env)
    finally:
        os.chdir(cwd)
    pairs = {
        "DEFAULT_HOST_LIST": "inventory",
        "DEFAULT_FORKS": "forks",
        "DEFAULT_TIMEOUT": "timeout",
        "HOST_KEY_CHECKING": "host_key_checking",
        "DEFAULT_REMOTE_USER": "remote_user",
        "DEFAULT_PRIVATE_KEY_FILE": "private_key_file",
        "DEFAULT_VAULT_IDENTITY_LIST": "vault_identity_list",
        "DEFAULT_GATHERING": "gathering",
        "DEFAULT_BECOME": "become",
        "DEFAULT_BECOME_USER": "become_user",
        "INVENTORY_ENABLED": "enable_plugins",
    }
    for name, key in pairs.items():
        assert theirs[name] == ours[key], name


def test_cli_flags_win_over_config(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text("[defaults]\nforks = 0\n")
    (tmp_path / "p.yml").write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
    bad = run_fleetkit(["play", "-i", "localhost,", "p.yml"], tmp_path)
    assert bad.returncode == 2 and "forks must be at least 1" in bad.stderr
    ok = run_fleetkit(["play", "-i", "localhost,", "-f", "2", "p.yml"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    refused = run_fleetkit(
        ["play", "-i", "localhost,", "-f", "2", "p.yml"],
        tmp_path,
        env={"ANSIBLE_HASH_BEHAVIOUR": "merge"},
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: hash_behaviour='merge'")
    assert "hint:" in refused.stderr


def test_bad_config_value_exits_5_as_ansible(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
    env = {"ANSIBLE_FORKS": "abc"}
    ours = run_fleetkit(["play", "-i", "localhost,", "p.yml"], tmp_path, env=env)
    theirs = subprocess.run(
        [ansible_tool("ansible-playbook"), "-i", "localhost,", "p.yml"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ours.returncode == theirs.returncode == 5
    assert "Config 'DEFAULT_FORKS' from 'env: ANSIBLE_FORKS' has an invalid value" in ours.stderr


def test_inventory_command_ignores_run_only_settings(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("[web]\nw1\n")
    env = {"ANSIBLE_GATHERING": "explicit", "ANSIBLE_STDOUT_CALLBACK": "yaml"}
    inv = run_fleetkit(["inventory", "-i", "hosts", "--list"], tmp_path, env=env)
    assert inv.returncode == 0, inv.stderr
    bad = run_fleetkit(
        ["inventory", "-i", "hosts", "--list"], tmp_path, env={"ANSIBLE_INVENTORY_ENABLED": "x"}
    )
    assert bad.returncode == 1 and "enable_plugins" in bad.stderr
