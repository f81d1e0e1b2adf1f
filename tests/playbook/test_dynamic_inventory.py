"""add_host and group_by: differential runs against ansible-playbook (-f 1, same files)."""

from __future__ import annotations

from pathlib import Path

from tests.playbook._harness import run_ansible, run_fleetkit

INVENTORY = "[web]\nh1\nh2\n[all:vars]\nansible_connection=local\n"


def _both(tmp_path: Path, playbook: str, inventory: str = INVENTORY) -> tuple[str, str]:
    (tmp_path / "inventory.ini").write_text(inventory)
    (tmp_path / "playbook.yml").write_text(playbook)
    args = ["-i", "inventory.ini", "playbook.yml", "-f", "1"]
    ans = run_ansible(args, tmp_path)
    fk = run_fleetkit(["play", *args], tmp_path, timeout=60)
    assert fk.returncode == ans.returncode, fk.stderr
    return ans.stdout, fk.stdout


def test_add_host_runs_once_and_later_plays_see_the_host(tmp_path: Path) -> None:
    ans, fk = _both(
        tmp_path,
        """
- hosts: web
  gather_facts: false
  tasks:
    - add_host:
        name: new1
        groups: [dyn, web]
        ansible_connection: local
        foo: 1
    - add_host: name={{ item }} groups=dyn2 ansible_connection=local
      loop: [a1, a2]
    - name: the same again changes nothing, and registers only on the first host
      add_host: name=new1 groups=dyn
      register: again
    - debug: var=again
    - add_host: name=h9:2222 group=g9 host=zz
    - debug: msg="{{ groups }} {{ hostvars['h9'].ansible_ssh_port }} {{ hostvars['h9'].host }}"
    - debug: msg="{{ hostvars['h9'].inventory_file }} {{ hostvars['h1'].inventory_file }}"
      run_once: true
- hosts: dyn:dyn2
  gather_facts: false
  tasks:
    - debug: msg="{{ group_names }} {{ hostvars['new1'].foo }} {{ ansible_play_hosts_all }}"
""",
    )
    assert "changed: [h1] => (item=a1)" in fk
    assert fk == ans


def test_group_by_per_host_with_parents(tmp_path: Path) -> None:
    ans, fk = _both(
        tmp_path,
        """
- hosts: web
  gather_facts: false
  tasks:
    - group_by: key=g_{{ inventory_hostname }} parents=pp
    - group_by:
        key: "{{ 'odd' if inventory_hostname == 'h1' else 'even' }}"
        parents: [pp, qq]
      register: gb
    - debug: var=gb
    - group_by: key=g_{{ inventory_hostname }} parents=pp
    - debug: msg="{{ groups }} {{ group_names }}"
- hosts: odd:&pp
  gather_facts: false
  tasks:
    - debug: msg="{{ group_names }}"
""",
    )
    assert "changed: [h2]" in fk
    assert fk == ans


def test_inventory_actions_refuse_bad_arguments_as_ansible(tmp_path: Path) -> None:
    ans, fk = _both(
        tmp_path,
        """
- hosts: web
  gather_facts: false
  tasks:
    - group_by: parents=x
      ignore_errors: true
    - group_by: key=a bogus=1
      ignore_errors: true
    - add_host: groups=a
      ignore_errors: true
""",
    )
    assert "name, host or hostname needs to be provided" in fk
    assert fk == ans


def test_changed_and_failed_when_errors_keep_the_result(tmp_path: Path) -> None:
    ans, fk = _both(
        tmp_path,
        """
- hosts: h1
  gather_facts: false
  tasks:
    - set_fact: {x: 1}
      changed_when: boomboomboom
      register: r
      ignore_errors: true
    - debug: var=r.changed_when_result
    - set_fact: {x: 2}
      failed_when: boom2
      register: r2
      ignore_errors: true
    - debug: var=r2.failed_when_result
    - add_host: name=host_{{ item }}
      loop: [1, 2]
      changed_when: item == 2
""",
    )
    assert "Error while evaluating conditional: 'boom2' is undefined" in fk
    assert fk == ans


def test_changed_when_sees_the_inventory_change(tmp_path: Path) -> None:
    ans, fk = _both(
        tmp_path,
        """
- hosts: h1
  gather_facts: false
  tasks:
    - add_host: name=host_3
      changed_when: r is changed
      register: r
    - group_by: key=test_{{ item }}
      loop: [1, 2]
      changed_when: item == 2
      register: gb
    - debug: msg="{{ r is changed }} {{ gb.results | map(attribute='changed') | list }}"
""",
    )
    assert '"msg": "True [False, True]"' in fk
    assert fk == ans


def test_refresh_inventory_keeps_added_hosts_and_groups(tmp_path: Path) -> None:
    ans, fk = _both(
        tmp_path,
        """
- hosts: web
  gather_facts: false
  tasks:
    - add_host: name=dyn1 groups=dg ansible_connection=local
    - group_by: key=gb_{{ inventory_hostname }}
    - meta: refresh_inventory
    - debug: msg="{{ groups }}"
      run_once: true
- hosts: dg
  gather_facts: false
  tasks:
    - debug: msg="{{ group_names }}"
""",
    )
    assert "gb_h2" in fk
    assert fk == ans
