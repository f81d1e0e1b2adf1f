"""A sweep of ansible-core's and the collections' modules that run on the controller machine
without changing it outside a temporary directory (files, archives, facts, lookups of the
system), each one task, run with --diff by ansible-playbook and by fleetkit play: the same
output line for line (times masked) and the same files."""

from __future__ import annotations

import re
from pathlib import Path

from tests.playbook._harness import run_ansible, run_fleetkit

SWEEP = r"""
- hosts: all
  gather_facts: false
  vars:
    o: "{{ out }}"
  tasks:
    - file: {path: "{{ o }}/d", state: directory, mode: "0750"}
    - copy: {content: "a=1\n", dest: "{{ o }}/d/c.txt"}
    - copy: {src: "{{ o }}/d/c.txt", dest: "{{ o }}/d/c2.txt", remote_src: true}
    - lineinfile: {path: "{{ o }}/d/c.txt", line: "b=2"}
    - blockinfile: {path: "{{ o }}/d/c.txt", block: "x\ny"}
    - replace: {path: "{{ o }}/d/c.txt", regexp: "a=1", replace: "a=9"}
    - stat: {path: "{{ o }}/d/c.txt", get_checksum: true}
      register: st
    - debug: {msg: "{{ st.stat.checksum }} {{ st.stat.size }} {{ st.stat.mode }}"}
    - slurp: {src: "{{ o }}/d/c.txt"}
      register: sl
    - debug: {msg: "{{ sl.content | b64decode }}"}
    - find: {paths: "{{ o }}/d", patterns: "*.txt"}
      register: fd
    - debug: {msg: "{{ fd.matched }} {{ fd.files | map(attribute='path') | map('basename') | sort }}"}
    - tempfile: {state: file, path: "{{ o }}", suffix: .tmp}
      register: tf
    - debug: {msg: "{{ tf.path is match(o) }}"}
    - assemble: {src: "{{ o }}/d", dest: "{{ o }}/all.txt"}
    - fetch: {src: "{{ o }}/d/c.txt", dest: "{{ o }}/fetched/", flat: true}
    - community.general.archive: {path: "{{ o }}/d", dest: "{{ o }}/d.tgz"}
    - file: {path: "{{ o }}/x", state: directory}
    - unarchive: {src: "{{ o }}/d.tgz", dest: "{{ o }}/x", remote_src: true}
    - community.general.ini_file: {path: "{{ o }}/t.ini", section: s, option: k, value: v}
    - getent: {database: passwd, key: root}
    - debug: {msg: "{{ getent_passwd.root[4] }}"}
    - wait_for: {path: "{{ o }}/d/c.txt", search_regex: "b=2", timeout: 5}
    - known_hosts: {path: "{{ o }}/kh", name: example.org, key: "example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN3DiOpmBC/aij0PcLAVXoBA0bJ7hE183zF1vxmJv/PZ"}
    - ping:
    - set_stats: {data: {x: 1}}
    - validate_argument_spec:
        argument_spec: {n: {type: int, required: true}}
        provided_arguments: {n: 3}
    - file: {path: "{{ o }}/link", src: "{{ o }}/d/c.txt", state: link}
    - file: {path: "{{ o }}/d/c2.txt", state: absent}
    - file: {path: "{{ o }}/touched", state: touch, mode: "0600"}
    - command: {cmd: "cat c.txt", chdir: "{{ o }}/d"}
      register: c
    - debug: {var: c.stdout_lines}
    - shell: "echo $((1+2)) && exit 3"
      register: sh
      failed_when: sh.rc != 3
    - copy: {content: '{"b": 2}', dest: "{{ o }}/j.json"}
    - mount_facts:
      register: mf
    - debug: {msg: "{{ mf.ansible_facts.mount_points is mapping }}"}
    - package_facts: {manager: apt}
    - debug: {msg: "{{ 'bash' in ansible_facts.packages }}"}
    - service_facts:
      ignore_errors: true
    - community.general.filesize: {path: "{{ o }}/big", size: 10KB}
    - debconf: {name: tzdata}
      register: dc
    - debug: {msg: "{{ dc.current is mapping }}"}
    - community.general.read_csv: {path: "{{ o }}/d/c.txt", fieldnames: [a]}
      register: csv
    - debug: {msg: "{{ csv.list | length }}"}
"""

_TIMES = re.compile(r'"(atime|mtime)": [0-9.]+')


def _tree(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith(".tmp") and p.suffix != ".tgz":
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def test_modules_print_and_leave_what_ansible_does(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(SWEEP)
    (tmp_path / "inventory.ini").write_text("localhost ansible_connection=local\n")
    outs = []
    for who in ("ansible", "fleetkit"):
        d = tmp_path / who
        d.mkdir()
        args = ["-i", "inventory.ini", "pb.yml", "--diff", "-e", f"out={d}"]
        p = (
            run_ansible(args, tmp_path)
            if who == "ansible"
            else run_fleetkit(["play", *args], tmp_path, timeout=300)
        )
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        outs.append(_TIMES.sub(r'"\1": T', p.stdout.replace(str(d), "OUT")))
    assert "TASK [community.general.ini_file]" in outs[1]
    assert outs[1] == outs[0]
    assert _tree(tmp_path / "fleetkit") == _tree(tmp_path / "ansible")
