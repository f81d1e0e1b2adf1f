"""ansible's own modules on fleetkit's module agent, differential against ansible-playbook on
the same playbook: per-host results, registered results and the files left on the host.

Until the loader accepts every resolvable module name (``modules.resolve``), fleetkit runs here
through a small driver that lets the loader ask ``resolve`` (see ``_any_module_driver``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import _missing, require, require_root
from tests.playbook._harness import parse, run_ansible
from tests.playbook._netns import ssh_fleet

_DRIVER = """
import sys
from fleetkit.playbook import playbook
from fleetkit.playbook.modules import resolve


class _Resolvable(frozenset):
    def __contains__(self, name):
        return frozenset.__contains__(self, name) or resolve(str(name)) is not None


playbook.MODULE_NAMES = _Resolvable(playbook.MODULE_NAMES)
from fleetkit.cli import main

sys.exit(main(sys.argv[1:]))
"""


def run_fk(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """fleetkit play with every resolvable module name accepted by the loader."""
    return subprocess.run(
        [sys.executable, "-c", _DRIVER, "play", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, NO_COLOR="1", **(env or {})),
        check=False,
    )


def _tree(root: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        mode = oct(p.lstat().st_mode & 0o7777)
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p).replace(str(root), "OUT"))
        elif p.is_dir():
            out[rel] = ("dir", mode)
        else:
            out[rel] = (mode, p.read_text(errors="replace"))
    return out


def _both(
    tmp_path: Path, playbook: str, *extra: str, files: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str], Path, Path]:
    """Run the playbook with each tool in its own directory (``out`` = that tool's target)."""
    dirs = []
    for name in ("ansible", "fleetkit"):
        d = tmp_path / name
        (d / "out").mkdir(parents=True)
        (d / "pb.yml").write_text(playbook.replace("@OUT@", str(d / "out")))
        (d / "hosts").write_text("localhost ansible_connection=local\n")
        for rel, text in (files or {}).items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
        dirs.append(d)
    args = ["-i", "hosts", "pb.yml", *extra]
    want = run_ansible(args, dirs[0])
    got = run_fk(args, dirs[1])
    return want, got, dirs[0] / "out", dirs[1] / "out"


def _norm(text: str, a: Path, b: Path) -> list[tuple[str, ...]]:
    events, recap = parse(text.replace(str(a), "OUT").replace(str(b), "OUT"))
    return events + [("recap", json.dumps(recap))]


FILES_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: dir
      file: {path: "@OUT@/d", state: directory, mode: "0750"}
    - name: touch
      file: {path: "@OUT@/d/t", state: touch, mode: "0600"}
    - name: link
      file: {path: "@OUT@/l", src: "@OUT@/d/t", state: link}
    - name: bad file arg
      file: {path: "@OUT@/d/t", statex: 1}
      ignore_errors: true
    - name: content
      copy: {content: "a\\nb\\n", dest: "@OUT@/c.txt", mode: "0640"}
    - name: content again
      copy: {content: "a\\nb\\n", dest: "@OUT@/c.txt", mode: "0640"}
    - name: tree
      copy: {src: tree, dest: "@OUT@/"}
    - name: tree contents
      copy: {src: tree/, dest: "@OUT@/flat"}
    - name: remote src
      copy: {src: "@OUT@/c.txt", dest: "@OUT@/c2.txt", remote_src: true}
    - name: line
      lineinfile: {path: "@OUT@/c.txt", line: "c", insertafter: "^a"}
    - name: line again
      lineinfile: {path: "@OUT@/c.txt", line: "c", insertafter: "^a"}
    - name: replace
      replace: {path: "@OUT@/c.txt", regexp: "^b$", replace: "B"}
    - name: block
      blockinfile: {path: "@OUT@/c.txt", block: "x\\ny"}
    - name: template
      template: {src: t.j2, dest: "@OUT@/t.txt"}
    - name: template lstrip
      template: {src: t.j2, dest: "@OUT@/t2.txt", lstrip_blocks: true, mode: "0600"}
    - name: template again
      template: {src: t.j2, dest: "@OUT@/t.txt"}
    - name: stat
      stat: {path: "@OUT@/c.txt"}
      register: st
    - name: show stat
      debug: {msg: "{{ [st.stat.exists, st.stat.size, st.stat.mode, st.stat.checksum] }}"}
    - name: slurp
      slurp: {src: "@OUT@/t.txt"}
      register: sl
    - name: show slurp
      debug: {msg: "{{ sl.content | b64decode }}"}
    - name: fetch
      fetch: {src: "@OUT@/c.txt", dest: "@OUT@/fetched/", flat: true}
"""
FILES = {
    "templates/t.j2": (
        "host={{ inventory_hostname }}\n{% if true %}\n  x={{ 1 + 1 }}\n{% endif %}\n"
        "# {{ ansible_managed }} {{ template_path | basename }}\n"
    ),
    "files/tree/a": "hi\n",
    "files/tree/sub/b": "yo\n",
}


@pytest.mark.interop
def test_file_modules_same_results_and_files_as_ansible(tmp_path: Path) -> None:
    want, got, a, b = _both(tmp_path, FILES_PLAYBOOK, files=FILES)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.returncode == 0, got.stdout + got.stderr
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert _tree(b) == _tree(a)
    assert "changed: [localhost]" in got.stdout and "ok: [localhost]" in got.stdout


CHECK_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: seed
      copy: {content: "one\\n", dest: "@OUT@/f"}
      check_mode: false
    - name: line
      lineinfile: {path: "@OUT@/f", line: "two"}
      diff: true
      register: li
    - name: copy
      copy: {content: "new\\n", dest: "@OUT@/f"}
      diff: true
      register: cp
    - name: new file
      file: {path: "@OUT@/g", state: touch}
      diff: true
      register: fi
    - name: template
      template: {src: t.j2, dest: "@OUT@/f"}
      diff: true
      register: tp
    - name: show
      debug:
        msg: "{{ [li.changed, li.diff, cp.changed, cp.diff, fi.changed, tp.diff] }}"
    - name: secret
      copy: {content: "s3cret\\n", dest: "@OUT@/s"}
      no_log: true
    - name: missing module arg
      stat: {}
      ignore_errors: true
"""


@pytest.mark.interop
def test_check_mode_diff_and_no_log_same_as_ansible(tmp_path: Path) -> None:
    want, got, a, b = _both(tmp_path, CHECK_PLAYBOOK, "--check", files=FILES)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.returncode == 0, got.stdout + got.stderr
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert _tree(b) == _tree(a) == {"f": ("0o644", "one\n")}

    # the diffs ansible's callback prints for diff-mode tasks, line for line
    def diffs(text: str) -> list[str]:
        text = text.replace(str(a), "OUT").replace(str(b), "OUT")
        text = re.sub(r"/[^\s\"]*/t\.j2", "TMP/t.j2", text)  # ansible's local tmp file
        return [x for x in text.splitlines() if x[:1] in ("-", "+", "@", " ") or x == ""]

    assert diffs(got.stdout) == diffs(want.stdout)
    assert "+++ after: OUT/f" in "\n".join(diffs(got.stdout))
    secret = next(e for e in parse(got.stdout)[0] if e[:2] == ("changed", "secret"))
    assert secret == ("changed", "secret", "localhost", "")


FACTS_PLAYBOOK = """- hosts: localhost
  gather_facts: true
  tasks:
    - name: keys
      debug: {msg: "{{ ansible_facts.keys() | sort }}"}
    - name: injected
      debug:
        msg: "{{ [ansible_hostname == ansible_facts.hostname, ansible_os_family,
                  ansible_default_ipv4 is defined, ansible_date_time is defined] }}"
    - name: subset
      setup: {gather_subset: ["!all", "!min", "pkg_mgr"], filter: ["ansible_pkg_mgr"]}
      register: sub
    - name: subset keys
      debug: {msg: "{{ sub.ansible_facts.keys() | sort }}"}
"""


@pytest.mark.interop
def test_setup_facts_same_keys_as_ansible(tmp_path: Path) -> None:
    want, got, a, b = _both(tmp_path, FACTS_PLAYBOOK)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.returncode == 0, got.stdout + got.stderr
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert "ansible_default_ipv4" in got.stdout or "default_ipv4" in got.stdout


PACKAGE_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: unknown manager
      package: {name: foo, use: fleetkit_no_such_manager}
      ignore_errors: true
    - name: yum where there is none
      yum: {name: foo, state: latest}
      ignore_errors: true
    - name: apt missing package
      apt: {name: fleetkit-no-such-package}
      check_mode: true
      ignore_errors: true
"""


@pytest.mark.interop
def test_package_actions_fail_as_ansible(tmp_path: Path) -> None:
    want, got, a, b = _both(tmp_path, PACKAGE_PLAYBOOK)
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert "Nothing to do" not in got.stdout
    assert got.stdout.count("...ignoring") == 3


COLLECTION_MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fktest.demo.plugins.module_utils.shout import shout


def main():
    m = AnsibleModule(argument_spec=dict(word=dict(required=True), n=dict(type="int", default=1)),
                      supports_check_mode=True)
    m.exit_json(changed=not m.check_mode, said=shout(m.params["word"]) * m.params["n"])


if __name__ == "__main__":
    main()
"""

COLLECTION_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: fqcn
      fktest.demo.speak: {word: hi, n: 2}
      register: r
    - name: redirected
      fktest.demo.talk: {word: yo}
      register: t
    - name: show
      debug: {msg: "{{ [r.said, t.said, r.changed] }}"}
    - name: bad type
      fktest.demo.speak: {word: hi, n: many}
      ignore_errors: true
"""


@pytest.mark.interop
def test_collection_module_results_same_as_ansible(tmp_path: Path) -> None:
    coll = tmp_path / "colls" / "ansible_collections" / "fktest" / "demo"
    (coll / "plugins" / "modules").mkdir(parents=True)
    (coll / "plugins" / "module_utils").mkdir(parents=True)
    (coll / "meta").mkdir()
    (coll / "meta" / "runtime.yml").write_text(
        "plugin_routing:\n  modules:\n    talk:\n      redirect: fktest.demo.speak\n"
    )
    (coll / "plugins" / "modules" / "speak.py").write_text(COLLECTION_MODULE)
    (coll / "plugins" / "module_utils" / "shout.py").write_text(
        "def shout(word):\n    return word.upper() + '!'\n"
    )
    pb = COLLECTION_PLAYBOOK
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path / "colls")
    try:
        want, got, a, b = _both(tmp_path, pb)
    finally:
        os.environ.pop("ANSIBLE_COLLECTIONS_PATH", None)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.returncode == 0, got.stdout + got.stderr
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert "HI!HI!" in got.stdout


def test_resolve_and_unknown_module_message() -> None:
    from fleetkit.playbook.errors import ModuleError
    from fleetkit.playbook.modules import get_module, resolve

    assert resolve("file") == "ansible.builtin.file"
    assert resolve("ansible.builtin.lineinfile") == "ansible.builtin.lineinfile"
    assert resolve("ansible.legacy.stat") == "ansible.builtin.stat"
    assert resolve("template") == "ansible.builtin.template"
    assert resolve("command") == "ansible.builtin.command"
    assert resolve("fleetkit_no_such_module") is None
    with pytest.raises(ModuleError) as exc:
        get_module("fleetkit_no_such_module")
    assert str(exc.value) == (
        "couldn't resolve module/action 'fleetkit_no_such_module'. This often indicates a "
        "misspelling, missing collection, or incorrect module path."
    )
    assert get_module("command").params is not None  # native
    assert get_module("stat").params is None  # ansible's own module validates its arguments


def test_local_hosts_share_one_agent_and_modules_run_outside_the_controller() -> None:
    from fleetkit.playbook.connection.local import LocalConnection
    from fleetkit.playbook.modules import ModuleContext
    from fleetkit.playbook.modules.upstream import agent_for, run_module

    ctxs = [ModuleContext(host=f"h{i}", conn=LocalConnection(f"h{i}")) for i in range(3)]
    agents = {id(agent_for(c)) for c in ctxs}
    assert len(agents) == 1
    res = run_module(ctxs[0], "ansible.builtin.ping", {"data": "x"})
    assert res["ping"] == "x" and res["invocation"] == {"module_args": {"data": "x"}}
    pid = agent_for(ctxs[0]).hello["pid"]
    assert pid != os.getpid()
    # a module's failure is its result, the agent keeps serving
    bad = run_module(ctxs[1], "ansible.builtin.stat", {"path": "/", "nope": 1})
    assert bad["failed"] is True and bad["msg"].startswith(
        "Unsupported parameters for (ansible.builtin.stat) module: nope."
    )
    assert agent_for(ctxs[2]).hello["pid"] == pid


@pytest.mark.interop
def test_community_general_module_same_as_ansible(tmp_path: Path) -> None:
    # looked up on disk: importing ansible_collections here, before ansible's collection
    # finder is installed, would hide the collections' plugins from later in-process tests
    if not any(
        os.path.isdir(os.path.join(p, "ansible_collections", "community", "general"))
        for p in sys.path
        if p
    ):
        _missing("community.general (the ansible package)", "pip install 'ansible>=12,<13'")
    pb = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: ini
      community.general.ini_file: {path: "@OUT@/x.ini", section: s, option: k, value: v}
    - name: ini again
      community.general.ini_file: {path: "@OUT@/x.ini", section: s, option: k, value: v}
"""
    want, got, a, b = _both(tmp_path, pb)
    assert got.returncode == want.returncode == 0, got.stdout + got.stderr
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert _tree(b) == _tree(a)


@pytest.fixture
def ssh_hosts(tmp_path: Path) -> Iterator[Path]:
    require_root("network namespaces")
    require("ip", "apt-get install -y iproute2")
    sshd = require("sshd", "apt-get install -y openssh-server")
    keygen = require("ssh-keygen", "apt-get install -y openssh-client")
    with ssh_fleet(tmp_path, 2, sshd, keygen) as (d, _procs):
        yield d


SSH_PLAYBOOK = """- hosts: nodes
  gather_facts: true
  tasks:
    - name: facts keys
      debug: {msg: "{{ (ansible_facts.keys() | sort | length) > 50 }}"}
    - name: dir
      file: {path: "@OUT@/{{ inventory_hostname }}", state: directory}
    - name: template
      template: {src: t.j2, dest: "@OUT@/{{ inventory_hostname }}/t.txt"}
    - name: line
      lineinfile: {path: "@OUT@/{{ inventory_hostname }}/t.txt", line: "end"}
    - name: become
      stat: {path: /root}
      become: true
      register: st
    - name: show
      debug: {msg: "{{ st.stat.isdir }}"}
    - name: the interpreter ANSIBLE_PYTHON_INTERPRETER names runs the modules
      debug: {msg: "{{ ansible_facts.python.executable }}"}
"""


@pytest.mark.interop
def test_modules_over_ssh_same_as_ansible(ssh_hosts: Path) -> None:
    d = ssh_hosts
    results = {}
    for name in ("ansible", "fleetkit"):
        out = d / name
        out.mkdir()
        (d / "templates").mkdir(exist_ok=True)
        (d / "templates" / "t.j2").write_text(FILES["templates/t.j2"])
        (d / "pb.yml").write_text(SSH_PLAYBOOK.replace("@OUT@", str(out)))
        args = ["-i", "inventory.ini", "pb.yml", "-f", "2"]
        if name == "ansible":
            results[name] = run_ansible(args, d)
        else:
            env = {
                "ANSIBLE_HOST_KEY_CHECKING": "False",
                "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            }
            results[name] = run_fk(args, d, env=env)
        assert results[name].returncode == 0, results[name].stdout + results[name].stderr
    a, b = d / "ansible", d / "fleetkit"
    # two forks: hosts finish in either order, so compare the sets of per-host results
    want = sorted(_norm(results["ansible"].stdout, a, b))
    assert sorted(_norm(results["fleetkit"].stdout, a, b)) == want
    assert f'"msg": "{sys.executable}"' in results["fleetkit"].stdout
    assert _tree(b) == _tree(a)


WANT_JSON_MODULE = """#!/usr/bin/python
# WANT_JSON
import json, sys
args = json.load(open(sys.argv[1]))
print(json.dumps({"changed": False, "got": args.get("x"), "name": args.get("_ansible_module_name")}))
"""
OLD_STYLE_MODULE = """#!/bin/sh
. "$1"
echo "{\\"changed\\": true, \\"x\\": \\"$x\\"}"
"""


@pytest.mark.interop
def test_library_modules_that_need_their_own_interpreter(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "wj.py").write_text(WANT_JSON_MODULE)
    (lib / "oldstyle.sh").write_text(OLD_STYLE_MODULE)
    pb = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: want json
      wj: {x: 1}
      register: w
    - name: old style
      oldstyle: {x: hello}
      register: o
    - name: show
      debug: {msg: "{{ [w.got, w.name, o.x, o.changed] }}"}
"""
    os.environ["ANSIBLE_LIBRARY"] = str(lib)
    try:
        want, got, a, b = _both(tmp_path, pb)
    finally:
        os.environ.pop("ANSIBLE_LIBRARY", None)
    assert want.returncode == 0, want.stdout + want.stderr
    assert got.returncode == 0, got.stdout + got.stderr
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert '"wj"' in got.stdout and '"hello"' in got.stdout


ACTIONS_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: service
      service: {name: fleetkit-no-such-service, state: started}
      ignore_errors: true
    - name: uri
      uri: {url: "http://127.0.0.1:1/", bogus: 1}
      ignore_errors: true
    - name: uri refused
      uri: {url: "http://127.0.0.1:1/", timeout: 2}
      ignore_errors: true
    - name: unarchive dest missing
      unarchive: {src: tree.tgz, dest: "@OUT@/nowhere"}
      ignore_errors: true
"""


@pytest.mark.interop
def test_service_uri_unarchive_actions_same_as_ansible(tmp_path: Path) -> None:
    want, got, a, b = _both(tmp_path, ACTIONS_PLAYBOOK, files={"files/tree.tgz": "x"})
    assert _norm(got.stdout, a, b) == _norm(want.stdout, a, b)
    assert "Unsupported parameters for (ansible.legacy.uri) module: bogus" in got.stdout
    assert got.stdout.count("...ignoring") == 4


def test_resolve_follows_collections_keyword_and_redirects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetkit.playbook.modules import _finder, resolve

    coll = tmp_path / "ansible_collections" / "fktest" / "demo"
    (coll / "plugins" / "modules").mkdir(parents=True)
    (coll / "meta").mkdir()
    (coll / "meta" / "runtime.yml").write_text(
        "plugin_routing:\n  modules:\n    talk:\n      redirect: fktest.demo.speak\n"
    )
    (coll / "plugins" / "modules" / "speak.py").write_text(COLLECTION_MODULE)
    (coll / "plugins" / "modules" / "copy.py").write_text(COLLECTION_MODULE)
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path))
    _finder.reset_caches()
    try:
        assert resolve("fktest.demo.speak") == "fktest.demo.speak"
        assert resolve("fktest.demo.talk") == "fktest.demo.speak"
        assert resolve("speak") is None
        assert resolve("speak", ["fktest.demo"]) == "fktest.demo.speak"
        # the collections list is searched in order, ansible.builtin where it is listed
        assert resolve("copy", ["fktest.demo"]) == "fktest.demo.copy"
        assert resolve("copy", ["ansible.builtin", "fktest.demo"]) == "ansible.builtin.copy"
        assert resolve("fktest.demo.nothere") is None
        src = _finder.find("fktest.demo.talk")
        assert (
            src is not None
            and src.pyname == "ansible_collections.fktest.demo.plugins.modules.speak"
        )
        assert "ansible_collections/fktest/demo/plugins/module_utils/shout.py" not in dict(
            src.files
        )
    finally:
        monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH")
        _finder.reset_caches()


@pytest.mark.timeout(120)
def test_fast_separate_interpreter_modules_never_hang(tmp_path: Path) -> None:
    # a module run as its own process that exits at once used to be reaped by the collected
    # Popen object before the agent's waitpid(-1): the run never answered (gathering_facts)
    lib = tmp_path / "library"
    lib.mkdir()
    (lib / "quick").write_text(
        '#!/bin/sh\necho \'{"changed": false, "ansible_facts": {"q": 1}}\'\n'
    )
    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - quick:\n      loop: '{{ range(60) | list }}'\n"
        "    - assert: {that: q == 1}\n"
    )
    got = run_fk(["-i", "localhost,", "-c", "local", "pb.yml"], tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.count("ok: [localhost] => (item=") == 60
