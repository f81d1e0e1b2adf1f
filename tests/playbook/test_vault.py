"""Vault 1.1/1.2: fleetkit and the real ansible-vault read each other's output."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit.playbook import vault
from fleetkit.playbook.trust import UnsafeText
from fleetkit.playbook.yamlsrc import load_yaml_file, load_yaml_text
from tests.playbook._harness import ansible_env, ansible_tool, parse, run_ansible, run_fleetkit


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    vault.set_secrets([])
    yield
    vault.set_secrets([])


def _ansible_vault(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ansible_tool("ansible-vault"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("label", [None, "prod"])
def test_ansible_vault_decrypts_fleetkit(tmp_path: Path, label: str | None) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    text = vault.encrypt("a: 1\nb: [x, y]\n", b"hunter2", vault_id=label)
    head = text.splitlines()[0]
    assert head == ("$ANSIBLE_VAULT;1.2;AES256;prod" if label else "$ANSIBLE_VAULT;1.1;AES256")
    assert all(len(line) <= 80 for line in text.splitlines())
    (tmp_path / "f.yml").write_text(text)
    src = f"{label}@pw" if label else "pw"
    flag = "--vault-id" if label else "--vault-password-file"
    proc = _ansible_vault(["view", flag, src, "f.yml"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a: 1\nb: [x, y]\n"


@pytest.mark.parametrize("label", [None, "dev"])
def test_fleetkit_decrypts_ansible_vault(tmp_path: Path, label: str | None) -> None:
    (tmp_path / "pw").write_text("s3cr3t\n")
    (tmp_path / "f.yml").write_text("k: v\n")
    args = ["encrypt", "f.yml"]
    args += ["--vault-id", f"{label}@pw"] if label else ["--vault-password-file", "pw"]
    proc = _ansible_vault(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    secrets, warnings = vault.load_secrets(
        vault_ids=[f"{label}@{tmp_path / 'pw'}"] if label else [],
        password_files=[] if label else [str(tmp_path / "pw")],
    )
    assert warnings == []
    assert vault.decrypt((tmp_path / "f.yml").read_text(), secrets) == b"k: v\n"
    vault.set_secrets(secrets)
    assert load_yaml_file(str(tmp_path / "f.yml")) == {"k": "v"}


def test_encrypt_string_inline_vault(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw\n")
    proc = _ansible_vault(
        ["encrypt_string", "--vault-password-file", "pw", "--name", "token", "t0ken"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    doc = proc.stdout + 'plain: !unsafe \'{{ lookup("pipe", "id") }}\'\n'
    vault.set_secrets([vault.VaultSecret("default", b"pw")])
    data = load_yaml_text(doc, "vars.yml")
    assert str(data["token"]) == "t0ken"
    assert data["token"] == "t0ken"
    assert data["token"].upper() == "T0KEN"
    assert isinstance(data["plain"], UnsafeText)
    # a wrong password fails when the value is used, with ansible's message
    vault.set_secrets([vault.VaultSecret("default", b"nope")])
    lazy = load_yaml_text(doc, "vars.yml")
    with pytest.raises(
        vault.VaultError, match=r"^Attempt to use undecryptable variable: Decryption failed \(no"
    ):
        str(lazy["token"])


def test_wrong_and_missing_secret_messages() -> None:
    text = vault.encrypt("x", b"right")
    with pytest.raises(vault.VaultError, match="Attempting to decrypt but no vault secrets found"):
        vault.decrypt(text, [])
    with pytest.raises(vault.VaultError, match="no vault secrets were found that could decrypt"):
        vault.decrypt(text, [vault.VaultSecret("default", b"wrong")])
    # the labelled secret is tried first, but any secret that fits decrypts (vault_id_match off)
    labelled = vault.encrypt("y", b"right", vault_id="other")
    secrets = [vault.VaultSecret("a", b"wrong"), vault.VaultSecret("b", b"right")]
    assert vault.decrypt(labelled, secrets) == b"y"


def test_unsafe_wraps_nested_strings() -> None:
    data = load_yaml_text("v: !unsafe\n  a: ['{{ x }}', 1]\n  b: '{% y %}'\n", "u.yml")
    assert isinstance(data["v"]["a"][0], UnsafeText)
    assert data["v"]["a"][1] == 1
    assert isinstance(data["v"]["b"], UnsafeText)


def test_password_script_and_client_script(tmp_path: Path) -> None:
    script = tmp_path / "pass.sh"
    script.write_text("#!/bin/sh\necho fromscript\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    client = tmp_path / "pw-client.sh"
    client.write_text('#!/bin/sh\n[ "$1" = --vault-id ] && echo "pw-$2"\n')
    client.chmod(client.stat().st_mode | stat.S_IXUSR)
    secrets, _ = vault.load_secrets(vault_ids=[f"lab@{client}"], password_files=[str(script)])
    assert secrets == [
        vault.VaultSecret("lab", b"pw-lab"),
        vault.VaultSecret("default", b"fromscript"),
    ]


def test_missing_password_file_is_ansibles_error(tmp_path: Path) -> None:
    missing = os.path.join(tmp_path, "nope")
    with pytest.raises(vault.VaultError, match=f"The vault password file {missing} was not found"):
        vault.load_secrets(password_files=[missing])
    # one good source is enough: the bad one becomes ansible's warning
    (tmp_path / "ok").write_text("pw\n")
    secrets, warnings = vault.load_secrets(password_files=[missing, str(tmp_path / "ok")])
    assert secrets == [vault.VaultSecret("default", b"pw")]
    assert warnings == [
        f"Error getting vault password file (default): The vault password file {missing} "
        "was not found"
    ]


def test_failing_script_is_a_loading_warning(tmp_path: Path) -> None:
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "ok").write_text("pw\n")
    _, warnings = vault.load_secrets(
        vault_ids=[f"x@{script}"], password_files=[str(tmp_path / "ok")]
    )
    assert warnings == [
        f"Error in vault password file loading (x): Vault password script {script} "
        "returned non-zero (3): None"
    ]


def test_prompt_sources() -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "typed"

    secrets, _ = vault.load_secrets(vault_ids=["lab@prompt"], ask_vault_pass=True, prompt=prompt)
    assert asked == ["Vault password (lab): ", "Vault password: "]
    assert [s.vault_id for s in secrets] == ["lab", "default"]


def _vault_project(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw\n")
    enc = vault.encrypt("s3cret", b"pw")
    inline = "".join(f"      {line}\n" for line in enc.splitlines())
    (tmp_path / "p.yml").write_text(
        "- hosts: web\n"
        "  gather_facts: false\n"
        "  vars_files: [vf.yml]\n"
        "  vars:\n"
        "    inline: !vault |\n"
        f"{inline}"
        "  tasks:\n"
        '    - debug: msg="{{ inline }} {{ from_file }} {{ from_extra }} {{ from_gv }}"\n'
        "    - debug: var=inline\n"
        "    - debug: msg=\"{{ inline | upper }} {{ inline | length }} {{ inline == 's3cret' }}\"\n"
    )
    (tmp_path / "vf.yml").write_text(vault.encrypt("from_file: ff\n", b"pw", vault_id="lab"))
    (tmp_path / "ev.yml").write_text(vault.encrypt("from_extra: ee\n", b"pw"))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text(vault.encrypt("from_gv: gg\n", b"pw"))
    (tmp_path / "inv.ini").write_text("[web]\nlocalhost ansible_connection=local\n")


def test_playbook_with_vaulted_files_and_values_matches_ansible(tmp_path: Path) -> None:
    _vault_project(tmp_path)
    args = ["-i", "inv.ini", "p.yml", "--vault-id", "lab@pw", "-e", "@ev.yml"]
    theirs = run_ansible(args, tmp_path)
    ours = run_fleetkit(["play", *args], tmp_path)
    assert theirs.returncode == ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert parse(ours.stdout) == parse(theirs.stdout)
    assert "s3cret ff ee gg" in ours.stdout


@pytest.mark.parametrize(
    "flags,message",
    [
        ([], "Attempting to decrypt but no vault secrets found"),
        (["--vault-password-file", "bad"], "Decryption failed (no vault secrets"),
    ],
)
def test_playbook_vault_errors_match_ansible(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    _vault_project(tmp_path)
    (tmp_path / "bad").write_text("wrong\n")
    args = ["-i", "inv.ini", "p.yml", "-e", "@ev.yml", *flags]
    theirs = run_ansible(args, tmp_path)
    ours = run_fleetkit(["play", *args], tmp_path)
    assert theirs.returncode == ours.returncode == 1, (theirs.stderr, ours.stderr)
    assert message in theirs.stderr
    assert message in ours.stderr


def test_vault_password_file_from_environment(tmp_path: Path) -> None:
    _vault_project(tmp_path)
    args = ["-i", "inv.ini", "p.yml", "-e", "@ev.yml"]
    env = {"ANSIBLE_VAULT_PASSWORD_FILE": str(tmp_path / "pw")}
    ours = run_fleetkit(["play", *args], tmp_path, env=env)
    assert ours.returncode == 0, ours.stderr
    assert "s3cret ff ee gg" in ours.stdout
