"""A module from a library/ directory beside the playbook is refused by name, not misreported."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import run_fleetkit


def test_library_module_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "mymod.py").write_text("# a module\n")
    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - mymod:\n"
    )
    p = run_fleetkit(["play", "pb.yml"], tmp_path)
    assert p.returncode == 4
    assert f"the module 'mymod' ({tmp_path / 'library' / 'mymod.py'}) comes from a library/" in (
        p.stderr
    )
    assert "hint:" in p.stderr
