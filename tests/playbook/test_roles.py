"""Roles, import_role/include_role, import_playbook, include_vars: fleetkit vs ansible-playbook.

The role tree is tests/fixtures/playbook/roles_pb (our own small roles: dependencies with
params, defaults/vars/handlers, tasks_from/vars_from, an argument spec, include_vars).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetkit.playbook.errors import PlaybookSyntaxError
from fleetkit.playbook.playbook import Block, Node, Task, load_playbook
from tests.playbook._harness import FIXTURES, run_ansible, run_fleetkit

ROLES = FIXTURES / "roles_pb"
# lines ansible prints for a synthetic task that has no file origin (the arg spec task)
_NO_ORIGIN = ("Origin: <unknown>", "{'action': 'ansible.builtin.validate_argument_spec'")


def _same(
    tmp_path: Path, playbook: str, *extra: str, blank: bool = True, src: Path = ROLES
) -> tuple[int, str]:
    work = tmp_path / "pb"
    shutil.copytree(src, work)
    args = ["-i", "inventory.ini", playbook, "-f", "1", *extra]
    a = run_ansible(args, work)
    f = run_fleetkit(["play", *args], work)
    keep = [
        ln
        for ln in a.stdout.splitlines()
        if not ln.startswith(_NO_ORIGIN) and (blank or ln.strip())
    ]
    got = [ln for ln in f.stdout.splitlines() if blank or ln.strip()]
    assert got == keep, f.stderr
    assert f.returncode == a.returncode
    return f.returncode, f.stdout


def _tasks(nodes: list[Node]) -> list[Task]:
    out: list[Task] = []
    for n in nodes:
        if isinstance(n, Task):
            out.append(n)
        elif isinstance(n, Block):
            out += _tasks(n.block) + _tasks(n.rescue) + _tasks(n.always)
    return out


def test_role_tree_runs_as_ansible_runs_it(tmp_path: Path) -> None:
    rc, out = _same(tmp_path, "site.yml")
    assert rc == 0
    assert "TASK [base : base says]" in out
    assert "RUNNING HANDLER [base : restart base]" in out
    assert "PLAY [second play]" in out


@pytest.mark.parametrize("tags", ["web", "second"])
def test_role_and_import_playbook_tags_select_as_ansible(tmp_path: Path, tags: str) -> None:
    _same(tmp_path, "site.yml", "--tags", tags)


def test_argument_spec_failure_as_ansible(tmp_path: Path) -> None:
    rc, out = _same(tmp_path, "checked_fail.yml", blank=False)
    assert rc == 2
    assert "Validating arguments against arg spec 'main' - Check the inputs" in out


def test_role_tasks_carry_their_role() -> None:
    plays = load_playbook(str(ROLES / "site.yml"), roles_path=[])
    tasks = _tasks(plays[0].tasks)
    base = next(t for t in tasks if t.name == "base says")
    assert base.role is not None
    assert base.role.name == "base"
    assert base.role.path == str(ROLES / "roles" / "base")
    assert base.role.defaults == {"base_default": "bd"}
    assert base.role.vars == {"base_msg": "role-vars"}
    # common is a dependency twice with different params, then a play role with the same
    # params as the first: it runs twice, not three times
    assert sum(1 for t in tasks if t.name == "common runs") == 2
    web = next(t for t in tasks if t.name == "web main")
    assert web.role is not None and web.role.params == {"greeting": "param-greeting"}
    assert "web" in web.tags
    assert [h.name for h in plays[0].handlers] == ["restart base"]
    assert plays[1].vars["second_var"] == "from-import"


def test_role_search_uses_roles_path(tmp_path: Path) -> None:
    shutil.copytree(ROLES / "roles" / "web", tmp_path / "elsewhere" / "webx")
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  roles: [webx]\n")
    plays = load_playbook(str(pb), roles_path=[str(tmp_path / "elsewhere")])
    assert _tasks(plays[0].tasks)[0].role is not None


def test_missing_role_is_ansibles_error(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  roles: [nope]\n")
    with pytest.raises(PlaybookSyntaxError, match="the role 'nope' was not found in"):
        load_playbook(str(pb), roles_path=[])
    a = run_ansible(["-i", "localhost,", "pb.yml", "--syntax-check"], tmp_path)
    assert a.returncode == 1 or a.returncode == 4
    assert "the role 'nope' was not found in" in a.stdout + a.stderr


def test_collection_role_and_playbook_as_ansible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coll = tmp_path / "coll" / "ansible_collections" / "acme" / "tools"
    (coll / "roles" / "hello" / "tasks").mkdir(parents=True)
    (coll / "playbooks").mkdir()
    (coll / "roles" / "hello" / "tasks" / "main.yml").write_text(
        '- name: coll role\n  debug: msg="hello {{ role_name }} {{ ansible_role_name }}"\n'
    )
    (coll / "playbooks" / "site.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=from-coll-playbook\n"
    )
    (tmp_path / "second.yml").write_text("- hosts: all\n  tasks:\n    - debug: msg=second\n")
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  roles:\n    - acme.tools.hello\n"
        "  tasks:\n    - include_role:\n        name: acme.tools.hello\n"
        "- import_playbook: acme.tools.site\n"
        "- import_playbook: second.yml\n  when: false\n"
    )
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path / "coll"))
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    assert "TASK [acme.tools.hello : coll role]" in f.stdout
    assert '"msg": "hello hello acme.tools.hello"' in f.stdout


def test_role_precedence_dedup_public_and_handlers_as_ansible(tmp_path: Path) -> None:
    # role defaults < play vars < role vars; set_fact < role params; a role listed twice with
    # the same params runs once; include_role vars are private unless public: true; a
    # notification reaches the last loaded handler of that name, once
    rc, out = _same(tmp_path, "semantics.yml")
    assert rc == 0
    assert out.count("RUNNING HANDLER [prec : prec done]") == 1
    assert '"msg": "gone"' in out


def test_role_file_forms_and_argument_specs_file_as_ansible(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "forms"
    for d in ("tasks", "defaults/main", "meta", "handlers"):
        (role / d).mkdir(parents=True)
    (role / "tasks" / "main.yaml").write_text(
        "- name: forms\n  debug:\n    msg: '{{ a }} {{ b }} {{ count }}'\n"
        "  changed_when: true\n  notify: topic\n"
    )
    (role / "defaults" / "main" / "1.yml").write_text("a: one\nb: one\n")
    (role / "defaults" / "main" / "2.yml").write_text("b: two\n")
    (role / "handlers" / "main.yml").write_text(
        "- name: listener\n  listen: topic\n  debug: msg=heard\n"
    )
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      count:\n        type: int\n"
        "        default: 5\n"
    )
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  roles:\n    - role: forms\n      count: 7\n"
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    assert "TASK [forms : Validating arguments against arg spec 'main'] " in f.stdout
    assert '"msg": "one two 7"' in f.stdout


def test_role_entry_vars_are_block_vars_of_the_role_as_ansible(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "rv"
    (role / "tasks").mkdir(parents=True)
    (role / "vars").mkdir()
    (role / "vars" / "main.yml").write_text("v1: rolevars\n")
    (role / "tasks" / "main.yml").write_text("- debug: msg='{{ v1 }} {{ v2 }} {{ v3 }}'\n")
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  vars:\n    v2: play\n  roles:\n"
        "    - role: rv\n      vars: {v1: entry, v2: entry, v3: entry}\n"
        "  tasks:\n    - debug: msg=\"{{ v1 }} {{ v2 }} {{ v3 | default('none') }}\"\n"
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert '"msg": "entry entry entry"' in f.stdout
    assert '"msg": "rolevars play none"' in f.stdout


def test_static_names_templated_with_play_vars_as_ansible(tmp_path: Path) -> None:
    work = tmp_path / "src"
    shutil.copytree(ROLES, work)
    (work / "dyn.yml").write_text(
        "- name: import a role from an included file\n  import_role:\n    name: web\n"
    )
    (work / "tmpl.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  vars:\n    rname: web\n    which: inc_tasks\n"
        "    from_include: templated\n  roles:\n    - '{{ rname }}'\n"
        "  tasks:\n    - import_tasks: '{{ which }}.yml'\n    - include_tasks: dyn.yml\n"
    )
    rc, out = _same(tmp_path, "tmpl.yml", src=work)
    assert rc == 0
    assert '"msg": "included templated"' in out
    assert out.count("TASK [web : web main]") == 2


def test_role_identity_for_run_once_per_play_as_ansible(tmp_path: Path) -> None:
    # the same role with the same params, when, tags and vars runs once; any difference in
    # those makes another role
    (tmp_path / "roles" / "dd" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "dd" / "tasks" / "main.yml").write_text("- debug: msg=dd\n")
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  roles:\n    - dd\n    - dd\n"
        "    - {role: dd, when: true}\n    - {role: dd, tags: [x]}\n    - {role: dd, tags: [x]}\n"
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.stdout.count("TASK [dd : debug]") == 3


def test_find_file_prefers_the_roles_files_dir(tmp_path: Path) -> None:
    from fleetkit.playbook.playbook import RoleRef
    from fleetkit.playbook.roles import find_file

    role = tmp_path / "roles" / "r"
    (role / "files").mkdir(parents=True)
    (role / "files" / "a.txt").write_text("role\n")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("play\n")
    (tmp_path / "files" / "b.txt").write_text("play\n")
    ref = RoleRef(name="r", path=str(role))
    assert find_file("a.txt", "files", ref, str(tmp_path)) == str(role / "files" / "a.txt")
    assert find_file("b.txt", "files", ref, str(tmp_path)) == str(tmp_path / "files" / "b.txt")
    assert find_file("a.txt", "files", None, str(tmp_path)) == str(tmp_path / "files" / "a.txt")
    assert find_file("c.txt", "files", ref, str(tmp_path)) is None


def test_play_role_names_as_ansible(tmp_path: Path) -> None:
    for r in ("rv", "dd"):
        (tmp_path / "roles" / r / "tasks").mkdir(parents=True)
        (tmp_path / "roles" / r / "tasks" / "main.yml").write_text(f"- debug: msg={r}\n")
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  roles: [rv, dd, dd]\n  tasks:\n"
        "    - debug: var=role_names\n    - import_role: name=dd\n"
        "    - include_role: name=rv\n    - debug: var=ansible_play_role_names\n"
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert '"rv",\n        "dd",\n        "dd",\n        "dd",\n        "rv"' in f.stdout


def test_dependent_role_names_as_ansible(tmp_path: Path) -> None:
    for d in ("roles/a/meta", "roles/a/tasks", "roles/b/tasks"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "roles/a/meta/main.yml").write_text("dependencies: [b]\n")
    (tmp_path / "roles/a/tasks/main.yml").write_text("- debug: msg=a\n")
    (tmp_path / "roles/b/tasks/main.yml").write_text("- debug: msg=b\n")
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  roles: [a]\n  tasks:\n"
        '    - debug: msg="{{ ansible_dependent_role_names }} {{ ansible_role_names | sort }}'
        ' {{ ansible_play_role_names }}"\n'
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert "\"['b'] ['a', 'b'] ['a']\"" in f.stdout


def test_handler_list_order_roles_play_then_import_role_as_ansible(tmp_path: Path) -> None:
    # ansible's handler list: the roles: handlers, the play's own, then import_role'd ones; a
    # notification is resolved at the flush, so a handler an include_role loads later wins
    for r in ("ra", "rb"):
        (tmp_path / "roles" / r / "handlers").mkdir(parents=True)
        (tmp_path / "roles" / r / "tasks").mkdir(parents=True)
        (tmp_path / "roles" / r / "tasks" / "main.yml").write_text(f"- debug: msg={r}\n")
        (tmp_path / "roles" / r / "handlers" / "main.yml").write_text(
            f"- name: h_{r}\n  debug: msg=h_{r}\n- name: same\n  debug: msg=same_{r}\n"
        )
    (tmp_path / "pb.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  roles: [ra]\n  tasks:\n"
        "    - import_role: {name: rb}\n"
        "    - command: 'true'\n      notify: [h_rb, play_h, h_ra, same]\n"
        "    - include_role: {name: rb}\n"
        "  handlers:\n    - name: play_h\n      debug: msg=play\n"
    )
    args = ["-i", "localhost,", "-c", "local", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    order = [ln for ln in f.stdout.splitlines() if ln.startswith("RUNNING HANDLER")]
    assert [o.split("[")[1].split("]")[0] for o in order] == [
        "ra : h_ra",
        "play_h",
        "rb : h_rb",
        "rb : same",
    ]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_dep_chain_params_vars_and_defaults_as_ansible(tmp_path: Path) -> None:
    # a dependency sees the params of the roles it runs inside (nearest wins), their role
    # vars under its own, and its own dependencies' defaults under the chain's
    _write(
        tmp_path,
        {
            "pb.yml": "- hosts: all\n  gather_facts: false\n  vars:\n    p: play\n  roles:\n"
            "    - {role: top, p: top-param}\n",
            "roles/top/meta/main.yml": "dependencies:\n  - {role: mid, p: mid-param}\n",
            "roles/top/vars/main.yml": "tv: top-vars\nshared: top-vars\n",
            "roles/top/defaults/main.yml": "td: top-default\n",
            "roles/top/tasks/main.yml": "- debug: msg='top {{ p }} {{ shared }} {{ ld }}'\n",
            "roles/mid/meta/main.yml": "dependencies: [leaf]\n",
            "roles/mid/vars/main.yml": "shared: mid-vars\n",
            "roles/mid/tasks/main.yml": "- debug: msg='mid {{ p }} {{ shared }} {{ ld }}'\n",
            "roles/leaf/defaults/main.yml": "ld: leaf-default\n",
            "roles/leaf/tasks/main.yml": "- debug:\n    msg: 'leaf {{ p }} {{ shared }}"
            ' {{ tv | default("-") }} {{ td | default("-") }} {{ ld }}\'\n',
        },
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    assert '"msg": "leaf mid-param mid-vars top-vars top-default leaf-default"' in f.stdout


def test_include_params_beat_set_fact_and_role_params_as_ansible(tmp_path: Path) -> None:
    # ansible: extra vars > include params (an include's vars and loop item) > role params >
    # set_fact > include_vars > task vars
    _write(
        tmp_path,
        {
            "pb.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n"
            "    - set_fact: {a: set_fact, b: set_fact, item: set_fact}\n"
            "    - include_tasks: inc.yml\n      vars: {a: include_params}\n"
            "    - include_tasks: inc.yml\n      loop: [loop-item]\n"
            "    - include_role: {name: r}\n      vars: {a: role-include}\n",
            "inc.yml": "- debug: msg='{{ a }} {{ b }} {{ item | default(\"-\") }}'\n"
            "  vars: {a: task, b: task}\n",
            "roles/r/tasks/main.yml": "- debug: msg='{{ a }}'\n  vars: {a: task}\n",
        },
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert '"msg": "include_params set_fact set_fact"' in f.stdout
    assert '"msg": "role-include"' in f.stdout


def test_parent_role_paths_and_names_of_a_dependency_without_tasks_as_ansible(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        {
            "pb.yml": "- hosts: all\n  gather_facts: false\n  roles: [top]\n",
            "roles/top/meta/main.yml": "dependencies: [empty]\n",
            "roles/top/tasks/main.yml": "- debug: msg={{ ansible_role_names | sort }}\n"
            "- debug: msg={{ ansible_dependent_role_names }}\n"
            "- include_role: {name: child}\n",
            "roles/empty/tasks/main.yml": "# nothing\n",
            "roles/child/tasks/main.yml": "- debug:\n    msg: '{{ ansible_parent_role_names }}"
            ' {{ ansible_parent_role_paths | map("basename") | list }}\'\n',
        },
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    assert "\"msg\": \"['top'] ['top']\"" in f.stdout


@pytest.mark.parametrize("how", ["include_role", "import_role"])
def test_allow_duplicates_false_skips_a_completed_role_as_ansible(tmp_path: Path, how: str) -> None:
    # each inclusion is its own role instance: one with allow_duplicates false is skipped for
    # a host that completed an equal role before; the option may be templated
    _write(
        tmp_path,
        {
            "pb.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n"
            f"    - {how}: {{name: dup, allow_duplicates: false}}\n"
            f"    - {how}: {{name: dup}}\n"
            f"    - {how}: {{name: dup, allow_duplicates: '{{{{ False | bool }}}}'}}\n"
            "    - include_role: {name: dup, tasks_from: '{{ omit }}'}\n",
            "roles/dup/meta/main.yml": "allow_duplicates: true\n",
            "roles/dup/tasks/main.yml": "- debug: msg=dup-ran\n",
        },
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    assert f.stdout.count('"msg": "dup-ran"') == 3


def test_import_names_templated_with_the_task_vars_as_ansible(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pb.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n"
            "    - import_tasks: '{{ tv }}'\n      vars: {tv: t.yml}\n"
            "    - import_role: {name: r, tasks_from: '{{ tf }}'}\n      vars: {tf: other.yml}\n"
            "    - include_tasks: nope.yml\n      loop: '{{ undefined_list }}'\n"
            "      when: false\n      register: skipped_inc\n"
            "    - debug: msg={{ skipped_inc is skipped }}\n",
            "t.yml": "- debug: msg=in-t\n",
            "roles/r/tasks/other.yml": "- debug: msg=in-other\n",
        },
    )
    args = ["-i", "localhost,", "pb.yml"]
    a = run_ansible(args, tmp_path)
    f = run_fleetkit(["play", *args], tmp_path)
    assert f.stdout == a.stdout, f.stderr
    assert f.returncode == a.returncode == 0
    assert '"msg": "in-other"' in f.stdout and '"msg": true' in f.stdout
