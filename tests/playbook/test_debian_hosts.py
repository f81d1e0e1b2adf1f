"""ansible's modules on real Debian 12 hosts (systemd as PID 1, sshd; podman containers built
by tests/playbook/_debian.py): ansible-playbook and fleetkit play run the same playbook, each on
fresh hosts from the same image, and must give the same per-host results, the same result
fields, the same output (timings and addresses masked) and the same files on the hosts after.

One session fixture builds (or takes from the cache) the root file system and removes every
container, image and network it made. Where podman cannot run systemd here, the tests skip with
podman's own message (fail under CI=true)."""

from __future__ import annotations

import difflib
import functools
import hashlib
import http.server
import io
import json
import re
import shutil
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers import in_ci, require, require_root
from tests.playbook._debian import SUDO_PASSWORD, SUDO_USER, DebianLab, debian_lab
from tests.playbook._harness import parse, run_ansible, run_fleetkit

pytestmark = pytest.mark.interop

NAMES = ["node0", "node1"]
VOLATILE_KEYS = {
    "delta",
    "start",
    "end",
    "atime",
    "mtime",
    "ctime",
    "invocation",
    "_ansible_no_log",
}
TIMINGS = re.compile(
    r'"(date|delta|start|end|elapsed|atime|mtime|ctime|dev|inode|cache_update_time)": '
    r'("[^"]*"|[\d.]+)|'
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?"
)


@pytest.fixture(scope="session")
def lab() -> Iterator[DebianLab]:
    require_root("podman containers with systemd")
    podman = require("podman", "apt-get install -y podman runc")
    mmdebstrap = require("mmdebstrap", "apt-get install -y mmdebstrap")
    require("dpkg-deb", "apt-get install -y dpkg")
    try:
        with debian_lab(podman, mmdebstrap) as made:
            yield made
    except AssertionError as exc:
        if in_ci():
            raise
        pytest.skip(f"no Debian container hosts here: {exc}")


@dataclass
class Run:
    """One tool's run on its own fresh hosts."""

    rc: int
    stdout: str
    stderr: str
    files: dict[str, str]


HEADER = re.compile(r"^(PLAY|TASK|RUNNING HANDLER) \[|^PLAY RECAP")
HOST_LINE = re.compile(r"^(ok|changed|skipping|fatal|failed): \[([^\]]+)\]")


def _mask(text: str, lab: DebianLab) -> str:
    """Timings, addresses and temporary paths out; each task's host results in name order."""
    text = TIMINGS.sub("", text)
    text = re.sub(rf"10\.{lab.subnet}\.\d+\.\d+", "ADDR", text)
    text = re.sub(
        r"after: /\S*/(ansible-local-|fleetkit-local-)[^/]*(/tmp[^/]*)?/", "after: TMP/", text
    )
    text = re.sub(r"/ansible-tmp-[^/\s\"]+/(tmp\w+)?", "/ansible-tmp-X/", text)
    # a file copied for a become user: ansible stages it in the login user's remote tmp,
    # fleetkit's agent (already that user) in the become user's (a known difference)
    text = re.sub(r"/(root|home/\w+)/\.ansible/tmp/ansible-tmp-X/", "~/.ansible/tmp/X/", text)
    out: list[str] = []
    chunks: list[tuple[str, int, list[str]]] = []
    pending: list[str] = []

    notes: list[str] = []
    in_note = False

    def flush() -> None:
        nonlocal pending
        # several hosts' messages come in any order: one block per message, in text order
        blocks: list[list[str]] = []
        for line in notes:
            if line.startswith(("[ERROR]", "[WARNING]")) or not blocks:
                blocks.append([])
            blocks[-1].append(line)
        out.extend(line for b in sorted(blocks) for line in b)
        notes.clear()
        chunks.extend([("~", len(chunks), pending)] if pending else [])
        out.extend(line for _h, _i, c in sorted(chunks, key=lambda x: x[:2]) for line in c)
        chunks.clear()
        pending = []

    for line in text.splitlines():
        if line.startswith("FAILED - RETRYING: "):
            continue  # how often `until` polled depends on timing, in both tools
        if line.startswith("included: ") and " for " in line:
            # the hosts of an include, in the order their results arrived
            head, _, hosts = line.rpartition(" for ")
            line = f"{head} for {', '.join(sorted(hosts.split(', ')))}"
        if HEADER.match(line):
            flush()
            in_note = False
            out.append(line)
            continue
        if not pending and line.startswith(("[ERROR]", "[WARNING]")):
            # a message ansible prints once for several hosts: not any one host's
            notes.append(line)
            in_note = True
            continue
        if in_note and not HOST_LINE.match(line):
            notes.append(line)
            continue
        in_note = False
        if not pending and chunks and line.startswith((" ", "}", "]")):
            chunks[-1][2].append(line)  # the rest of a multi-line result (debug, -v dicts)
            continue
        pending.append(line)
        m = HOST_LINE.match(line)
        if m:
            chunks.append((m.group(2), len(chunks), pending))
            pending = []
        elif line.strip() == "...ignoring" and chunks:
            chunks[-1][2].extend(pending)
            pending = []
    flush()
    return "\n".join(out)


def _results(stdout: str) -> list[tuple[str, str, str, object]]:
    """(status, task, host, result without volatile keys) from -v output."""
    out: list[tuple[str, str, str, object]] = []
    for ev in parse(stdout)[0]:
        if len(ev) < 4:
            continue
        status, task, host, rest = ev
        data: object = rest.strip()
        if rest.startswith(" => "):
            try:
                data = _strip(json.loads(rest[4:]))
            except ValueError:
                data = rest[4:]
        out.append((status, task, host, data))
    return out


def _strip(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@dataclass(frozen=True)
class Hosts:
    """How the fresh hosts of one run look: names, inventory group, user, setup commands."""

    names: tuple[str, ...] = tuple(NAMES)
    group: str = "nodes"
    user: str = "root"
    host_vars: tuple[tuple[str, str], ...] = ()
    prep: tuple[tuple[str, ...], ...] = ()
    runs: int = 1


def _one(lab: DebianLab, tool: str, d: Path, paths: list[str], args: list[str], h: Hosts) -> Run:
    inv, cnames = lab.start(list(h.names), h.user, h.group, dict(h.host_vars))
    try:
        for cmd in h.prep:
            for c in cnames.values():
                done = lab.exec(c, *cmd)
                assert done.returncode == 0, done.stderr
        argv = ["-i", str(inv), "pb.yml", *args]
        rcs, outs, errs = [], [], []
        for _ in range(h.runs):
            if tool == "ansible":
                res = run_ansible(argv, d, timeout=600)
            else:
                res = run_fleetkit(["play", *argv], d, timeout=600)
            rcs.append(res.returncode)
            outs.append(_mask(res.stdout, lab))
            errs.append(res.stderr)
        files = {n: lab.snapshot(c, paths) for n, c in cnames.items()} if paths else {}
        return Run(max(rcs), "\n".join(outs), "\n".join(errs), files)
    finally:
        lab.remove(list(cnames.values()))


def differential(
    lab: DebianLab,
    d: Path,
    playbook: str,
    paths: list[str],
    args: list[str] | None = None,
    hosts: Hosts = Hosts(),
    verbose: bool = True,
) -> tuple[Run, Run]:
    """Run ``playbook`` with both tools on fresh hosts; assert the same results and files."""
    (d / "pb.yml").write_text(playbook)
    args = [*(args or []), *(["-v"] if verbose else [])]
    # both tools at once, each on its own fresh hosts (the suite's wall time is ansible's)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(_one, lab, t, d, paths, args, hosts) for t in ("ansible", "fleetkit")]
        want, got = (r.result() for r in runs)
    diff = difflib.unified_diff(
        want.stdout.splitlines(), got.stdout.splitlines(), "ansible", "fleetkit", lineterm=""
    )
    detail = "\n" + "\n".join(diff) + "\n" + got.stderr[-3000:]
    assert got.rc == want.rc, detail
    assert _results(got.stdout) == _results(want.stdout), detail
    assert parse(got.stdout)[1] == parse(want.stdout)[1], detail
    for host, files in want.files.items():
        assert got.files[host].splitlines() == files.splitlines(), detail
    assert _sections(got.stdout) == _sections(want.stdout), detail
    return want, got


_HOST_LINE = re.compile(r"^\w+: \[([^\]]+)\]")


def _sections(stdout: str) -> list[object]:
    """The output by task, comparable across runs of ansible itself.

    A task whose loop runs on several hosts at once has its item lines (and their --diff blocks)
    interleaved in the order ansible's workers happen to report them, which changes from run to
    run. Such a section is compared by its lines as a multiset plus each host's own sequence of
    result lines; every other section exactly.
    """
    out: list[object] = []
    for block in re.split(r"(?m)^(?=TASK \[|RUNNING HANDLER \[|PLAY \[|PLAY RECAP)", stdout):
        lines = block.splitlines()
        hosts = {m.group(1) for ln in lines if "(item=" in ln and (m := _HOST_LINE.match(ln))}
        if len(hosts) < 2:
            out.append(block)
            continue
        per_host = {
            h: [ln for ln in lines if (m := _HOST_LINE.match(ln)) and m.group(1) == h]
            for h in sorted(hosts)
        }
        out.append((lines[0], sorted(lines[1:]), per_host))
    return out


FILES_PLAY = """- hosts: nodes
  gather_facts: false
  vars:
    motd_lines: [alpha, beta]
  tasks:
    - name: template
      template:
        src: app.conf.j2
        dest: /etc/fk-app.conf
        owner: root
        group: root
        mode: "0640"
    - name: template again (no change)
      template:
        src: app.conf.j2
        dest: /etc/fk-app.conf
        mode: "0640"
    - name: file directory
      file:
        path: /srv/fk/sub
        state: directory
        mode: "0750"
    - name: file touch
      file:
        path: /srv/fk/sub/marker
        state: touch
        mode: "0600"
        modification_time: preserve
        access_time: preserve
    - name: file link
      file:
        src: /etc/fk-app.conf
        dest: /srv/fk/app.conf
        state: link
    - name: file absent
      file:
        path: /etc/issue.net
        state: absent
    - name: lineinfile
      lineinfile:
        path: /etc/ssh/sshd_config
        regexp: '^#?MaxAuthTries'
        line: MaxAuthTries 4
    - name: lineinfile insertafter, create
      lineinfile:
        path: /srv/fk/list.txt
        line: "{{ item }}"
        create: true
        mode: "0644"
      loop: "{{ motd_lines }}"
    - name: lineinfile absent
      lineinfile:
        path: /srv/fk/list.txt
        line: alpha
        state: absent
    - name: replace
      replace:
        path: /etc/fk-app.conf
        regexp: 'port = (\\d+)'
        replace: 'port = 9\\1'
        backup: false
    - name: blockinfile
      blockinfile:
        path: /etc/fk-app.conf
        block: |
          extra = yes
          more = {{ inventory_hostname }}
        marker: "# {mark} fleetkit block"
    - name: blockinfile again (no change)
      blockinfile:
        path: /etc/fk-app.conf
        block: |
          extra = yes
          more = {{ inventory_hostname }}
        marker: "# {mark} fleetkit block"
    - name: stat
      stat:
        path: /etc/fk-app.conf
        get_checksum: true
      register: st
    - name: stat result
      debug:
        msg: "{{ st.stat.mode }} {{ st.stat.size }} {{ st.stat.checksum }} {{ st.stat.pw_name }}"
    - name: stat of a missing file
      stat:
        path: /nonexistent
    - name: file on a missing path fails
      file:
        path: /nonexistent/x
        state: file
      ignore_errors: true
"""
APP_TEMPLATE = """# {{ ansible_managed }}
[app]
name = {{ inventory_hostname }}
port = 80
{% for l in motd_lines %}
line = {{ l }}
{% endfor %}
"""


def test_file_modules(lab: DebianLab, tmp_path: Path) -> None:
    (tmp_path / "app.conf.j2").write_text(APP_TEMPLATE)
    differential(
        lab,
        tmp_path,
        FILES_PLAY,
        ["/etc/fk-app.conf", "/srv/fk", "/etc/ssh/sshd_config", "/etc/issue.net"],
        ["--diff"],
    )


SERVICES_PLAY = """- hosts: nodes
  gather_facts: false
  tasks:
    - name: a unit file
      copy:
        dest: /etc/systemd/system/fk-echo.service
        content: |
          [Unit]
          Description=fleetkit echo service
          [Service]
          ExecStart=/usr/bin/python3 -m http.server 8081 --directory /srv
          [Install]
          WantedBy=multi-user.target
        mode: "0644"
    - name: systemd daemon_reload, start and enable
      systemd:
        name: fk-echo
        state: started
        enabled: true
        daemon_reload: true
      register: r1
    - name: systemd again (no change)
      systemd:
        name: fk-echo.service
        state: started
        enabled: true
      register: r2
    - name: service stop cron
      service:
        name: cron
        state: stopped
      register: r3
    - name: service start cron, disabled
      service:
        name: cron
        state: started
        enabled: false
      register: r4
    - name: systemd restarted
      systemd:
        name: fk-healthz
        state: restarted
      register: r5
    - name: systemd masked
      systemd:
        name: e2scrub_reap.service
        masked: true
      register: r6
    - name: the fields that matter
      debug:
        msg: >-
          {{ [r1, r2, r3, r4, r5, r6] | map(attribute='changed') | list }}
          {{ [r1, r2, r3, r4, r5] | map(attribute='state') | list }}
          {{ r1.enabled }} {{ r4.enabled }} {{ r1.name }} {{ r3.name }}
          {{ r1.status.ActiveState }} {{ r1.status.UnitFileState }}
          {{ r5.status.ActiveState }} {{ r6.status.UnitFileState | default('') }}
    - name: what systemd says afterwards
      shell: >-
        systemctl is-active fk-echo cron fk-healthz;
        systemctl is-enabled fk-echo cron e2scrub_reap.service || true
      changed_when: false
    - name: a unit that does not exist
      systemd:
        name: fk-missing
        state: started
      ignore_errors: true
    - name: service on a unit that does not exist
      service:
        name: fk-missing
        state: stopped
      ignore_errors: true
"""


def test_service_and_systemd(lab: DebianLab, tmp_path: Path) -> None:
    want, _ = differential(
        lab,
        tmp_path,
        SERVICES_PLAY,
        ["/etc/systemd/system"],
        verbose=False,
    )
    assert "active\nactive" not in want.stdout or "fk-echo" in want.stdout


PACKAGES_PLAY = """- hosts: nodes
  gather_facts: false
  tasks:
    - name: apt_repository, a file repository
      apt_repository:
        repo: deb [trusted=yes] file:/srv/fkrepo ./
        filename: fkrepo
        update_cache: true
    - name: apt_repository again (no change)
      apt_repository:
        repo: deb [trusted=yes] file:/srv/fkrepo ./
        filename: fkrepo
    - name: apt install from it
      apt:
        name: fk-hello
        state: present
    - name: apt install again (no change)
      apt:
        name: fk-hello=1.0
    - name: apt a .deb on the host
      apt:
        deb: /srv/fkrepo/fk-extra_2.0_all.deb
    - name: apt remove
      apt:
        name: fk-extra
        state: absent
        purge: true
    - name: apt a package nobody has
      apt:
        name: fk-nowhere
      ignore_errors: true
    - name: what dpkg says
      command: dpkg-query -W -f '${Package} ${Version} ${Status}\\n' fk-hello fk-extra
      changed_when: false
      failed_when: false
    - name: apt_repository absent
      apt_repository:
        repo: deb [trusted=yes] file:/srv/fkrepo ./
        filename: fkrepo
        state: absent
        update_cache: false
"""


def test_apt_and_apt_repository(lab: DebianLab, tmp_path: Path) -> None:
    differential(
        lab,
        tmp_path,
        PACKAGES_PLAY,
        ["/etc/apt/sources.list.d", "/usr/share/fk-hello", "/usr/share/fk-extra"],
    )


SYSTEM_PLAY = """- hosts: nodes
  gather_facts: false
  tasks:
    - name: group
      group:
        name: fkops
        gid: 2345
    - name: group system
      group:
        name: fksys
        system: true
    - name: user
      user:
        name: fkuser
        uid: 2345
        group: fkops
        groups: [fksys]
        shell: /bin/bash
        comment: fleetkit test user
        create_home: true
    - name: user again (no change)
      user:
        name: fkuser
        uid: 2345
        group: fkops
        groups: [fksys]
        shell: /bin/bash
        comment: fleetkit test user
    - name: user removed
      user:
        name: fkgone
        state: absent
    - name: cron
      cron:
        name: fleetkit backup
        minute: "5"
        hour: "2"
        job: /usr/bin/true backup
        user: fkuser
    - name: cron file
      cron:
        name: fleetkit cleanup
        special_time: daily
        job: /usr/bin/true cleanup
        cron_file: fleetkit
        user: root
    - name: cron env
      cron:
        name: PATH
        env: true
        job: /usr/bin:/bin
        user: fkuser
    - name: sysctl (the container's own network namespace)
      sysctl:
        name: net.ipv4.ip_forward
        value: "1"
        sysctl_set: true
        sysctl_file: /etc/sysctl.d/90-fleetkit.conf
    - name: sysctl again (no change)
      sysctl:
        name: net.ipv4.ip_forward
        value: "1"
        sysctl_set: true
        sysctl_file: /etc/sysctl.d/90-fleetkit.conf
    - name: mount a loop file
      ansible.posix.mount:
        path: /mnt/fkdisk
        src: /srv/fkdisk.img
        fstype: ext4
        opts: loop,noatime
        state: mounted
    - name: what is mounted
      shell: findmnt -n -o TARGET,FSTYPE /mnt/fkdisk; sysctl -n net.ipv4.ip_forward
      changed_when: false
    - name: mounted again (no change)
      ansible.posix.mount:
        path: /mnt/fkdisk
        src: /srv/fkdisk.img
        fstype: ext4
        opts: loop,noatime
        state: mounted
    - name: an fstab entry only
      ansible.posix.mount:
        path: /mnt/later
        src: /srv/later.img
        fstype: ext4
        opts: loop,noauto
        state: present
    - name: the crontabs without their install-time header
      shell: crontab -l -u fkuser; cat /etc/cron.d/fleetkit
      changed_when: false
"""
# (umount inside these containers cannot free the loop device through /sys: the mount stays
# until the container goes, which frees it)


def test_user_group_cron_sysctl_mount(lab: DebianLab, tmp_path: Path) -> None:
    differential(
        lab,
        tmp_path,
        SYSTEM_PLAY,
        [
            "/etc/passwd",
            "/etc/group",
            "/etc/shadow",
            "/home/fkuser",
            "/etc/cron.d",
            "/etc/sysctl.d",
            "/etc/fstab",
            "/mnt",
        ],
        hosts=Hosts(
            prep=(("sh", "-c", "truncate -s 16M /srv/fkdisk.img && mkfs.ext4 -q /srv/fkdisk.img"),)
        ),
    )


@pytest.fixture
def http_files(lab: DebianLab, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on the lab network's gateway address, serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        # both tools' hosts fetch at once; in one CI run ansible's get_url timed out (10 s)
        # here: a deeper backlog than the default 5, so no SYN of a burst waits on retransmits
        request_queue_size = 128
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass

    handler = functools.partial(Handler, directory=str(www))
    srv = Quiet((f"10.{lab.subnet}.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://10.{lab.subnet}.0.1:{srv.server_address[1]}", www
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


GET_URL_PLAY = """- hosts: nodes
  gather_facts: false
  tasks:
    - name: get_url
      get_url:
        url: "{{ base }}/bundle.tar.gz"
        dest: /srv/bundle.tar.gz
        mode: "0644"
        checksum: "sha256:{{ sha }}"
    - name: get_url again (no change)
      get_url:
        url: "{{ base }}/bundle.tar.gz"
        dest: /srv/bundle.tar.gz
        checksum: "sha256:{{ sha }}"
    - name: get_url a missing file
      get_url:
        url: "{{ base }}/missing.txt"
        dest: /srv/missing.txt
      ignore_errors: true
    - name: get_url a wrong checksum
      get_url:
        url: "{{ base }}/bundle.tar.gz"
        dest: /srv/other.tar.gz
        checksum: "sha256:{{ '0' * 64 }}"
      ignore_errors: true
    - name: unarchive what was downloaded
      unarchive:
        src: /srv/bundle.tar.gz
        dest: /opt
        remote_src: true
        creates: /opt/bundle/VERSION
    - name: unarchive from the controller
      unarchive:
        src: local.tar.gz
        dest: /srv
        owner: root
        group: root
    - name: unarchive from the controller again (no change)
      unarchive:
        src: local.tar.gz
        dest: /srv
        owner: root
        group: root
"""


def _tarball(path: Path, top: str, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))


def test_get_url_and_unarchive(
    lab: DebianLab, tmp_path: Path, http_files: tuple[str, Path]
) -> None:
    base, www = http_files
    _tarball(www / "bundle.tar.gz", "bundle", {"VERSION": "1.2.3\n", "bin/run": "#!/bin/sh\n"})
    _tarball(tmp_path / "local.tar.gz", "local", {"a.txt": "a\n", "sub/b.txt": "b\n"})
    sha = hashlib.sha256((www / "bundle.tar.gz").read_bytes()).hexdigest()
    differential(
        lab,
        tmp_path,
        GET_URL_PLAY,
        ["/srv/bundle.tar.gz", "/opt/bundle", "/srv/local", "/srv/other.tar.gz"],
        ["-e", f"base={base}", "-e", f"sha={sha}"],
    )


FACTS_PLAY = """- hosts: nodes
  gather_facts: true
  tasks:
    - name: the fact names
      debug:
        msg: "{{ ansible_facts.keys() | sort }}"
    - name: the facts that do not depend on the run
      debug:
        msg:
          - "{{ ansible_os_family }} {{ ansible_distribution }} {{ ansible_distribution_release }}"
          - "{{ ansible_distribution_major_version }} {{ ansible_pkg_mgr }}"
          - "{{ ansible_service_mgr }} {{ ansible_hostname }} {{ ansible_system }}"
          - "{{ ansible_architecture }} {{ ansible_python.version.major }}"
          - "{{ ansible_user_id }} {{ ansible_env.HOME }} {{ ansible_default_ipv4 }}"
          - "{{ ansible_facts.lsb.codename | default('no lsb') }} {{ ansible_virtualization_role }}"
          - "{{ ansible_date_time.keys() | sort }}"
          - "{{ ansible_interfaces | sort }} {{ ansible_fqdn }} {{ ansible_domain }}"
          - "{{ ansible_selinux }} {{ ansible_apparmor }} {{ ansible_fips }}"
    - name: setup with a subset and a filter
      setup:
        gather_subset: ['!all', 'min']
        filter: ['ansible_distribution*', 'ansible_os_family']
      register: sub
    - name: its keys
      debug:
        msg: "{{ sub.ansible_facts.keys() | sort }}"
"""


def test_setup_facts(lab: DebianLab, tmp_path: Path) -> None:
    differential(lab, tmp_path, FACTS_PLAY, [], verbose=False)


ROLE_FILES = {
    "roles/fk_common/defaults/main.yml": "fk_common_packages: [fk-hello]\n",
    "roles/fk_common/tasks/main.yml": """---
- name: Add the local package repository
  ansible.builtin.apt_repository:
    repo: deb [trusted=yes] file:/srv/fkrepo ./
    filename: fkrepo
    update_cache: true
  when: ansible_os_family == 'Debian'

- name: Install the common packages
  ansible.builtin.apt:
    name: "{{ fk_common_packages }}"
    state: present
  when: ansible_os_family == 'Debian'
""",
    "roles/fk_common/meta/main.yml": """---
galaxy_info:
  role_name: fk_common
  author: fleetkit
  description: Common packages.
  license: MIT
  min_ansible_version: "2.15"
  platforms:
    - name: Debian
      versions: [bookworm]
dependencies: []
""",
    "roles/fk_web/defaults/main.yml": """---
fk_web_port: 8090
fk_web_root: /srv/www
fk_web_greeting: hello from {{ inventory_hostname }}
fk_web_user: fkweb
""",
    "roles/fk_web/meta/main.yml": """---
galaxy_info:
  role_name: fk_web
  author: fleetkit
  description: A small web service, the way public roles are written.
  license: MIT
  min_ansible_version: "2.15"
  platforms:
    - name: Debian
      versions: [bookworm]
dependencies:
  - role: fk_common
""",
    "roles/fk_web/handlers/main.yml": """---
- name: restart fk-web
  ansible.builtin.systemd:
    name: fk-web
    state: restarted
    daemon_reload: true
""",
    "roles/fk_web/templates/fk-web.service.j2": """# {{ ansible_managed }}
[Unit]
Description=fleetkit test web service
After=network.target

[Service]
User={{ fk_web_user }}
EnvironmentFile=-/etc/default/fk-web
ExecStart=/usr/bin/python3 -m http.server {{ fk_web_port }} --directory {{ fk_web_root }}

[Install]
WantedBy=multi-user.target
""",
    "roles/fk_web/templates/index.html.j2": """<h1>{{ fk_web_greeting }}</h1>
<p>{{ ansible_distribution }} {{ ansible_distribution_version }} ({{ ansible_hostname }})</p>
""",
    "roles/fk_web/tasks/main.yml": """---
- name: Include the OS-specific tasks
  ansible.builtin.include_tasks: setup-Debian.yml
  when: ansible_os_family == 'Debian'

- name: Ensure the service is started and enabled
  ansible.builtin.service:
    name: fk-web
    state: started
    enabled: true
""",
    "roles/fk_web/tasks/setup-Debian.yml": """---
- name: Create the service user
  ansible.builtin.user:
    name: "{{ fk_web_user }}"
    system: true
    shell: /usr/sbin/nologin
    create_home: false

- name: Create the document root
  ansible.builtin.file:
    path: "{{ fk_web_root }}"
    state: directory
    owner: "{{ fk_web_user }}"
    mode: "0755"

- name: Write the index page
  ansible.builtin.template:
    src: index.html.j2
    dest: "{{ fk_web_root }}/index.html"
    mode: "0644"

- name: Install the unit file
  ansible.builtin.template:
    src: fk-web.service.j2
    dest: /etc/systemd/system/fk-web.service
    mode: "0644"
  notify: restart fk-web

- name: Configure the service defaults
  ansible.builtin.lineinfile:
    path: /etc/default/fk-web
    regexp: '^FK_WEB_PORT='
    line: "FK_WEB_PORT={{ fk_web_port }}"
    create: true
    mode: "0644"
  notify: restart fk-web
""",
}
ROLE_PLAY = """- name: web servers
  hosts: nodes
  become: true
  roles:
    - role: fk_web
  post_tasks:
    - name: The service answers
      ansible.builtin.uri:
        url: "http://127.0.0.1:{{ fk_web_port }}/index.html"
        return_content: true
      register: page
      until: page.status == 200
      retries: 20
      delay: 1
    - name: Show the page
      ansible.builtin.debug:
        msg: "{{ page.content | trim }}"
"""


def test_role_applied_twice(lab: DebianLab, tmp_path: Path) -> None:
    for rel, text in ROLE_FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    want, _ = differential(
        lab,
        tmp_path,
        ROLE_PLAY,
        ["/srv/www", "/etc/systemd/system", "/etc/default/fk-web", "/etc/apt/sources.list.d"],
        hosts=Hosts(runs=2),
        verbose=False,
    )
    first, second = want.stdout.split("PLAY RECAP")[1:3]
    assert re.search(r"changed=[1-9]", first)
    assert "RUNNING HANDLER [fk_web : restart fk-web]" in want.stdout
    recap2 = want.stdout.split("PLAY RECAP")[-1]
    assert re.findall(r"changed=(\d+)", recap2) == ["0", "0"], want.stdout


ROLLING = Path(__file__).resolve().parents[2] / "docs" / "examples" / "rolling"
UPDATES = "deb [trusted=yes] file:/srv/fkrepo/updates ./"


def test_readme_rolling_update_with_apt(lab: DebianLab, tmp_path: Path) -> None:
    shutil.copytree(ROLLING / "roles", tmp_path / "roles")
    playbook = (ROLLING / "rolling.yml").read_text()
    hosts = Hosts(
        names=("node1", "node2", "node3"),
        group="kubelets",
        host_vars=(
            ("node1", "kubelet_health_url=http://127.0.0.1:10248/healthz"),
            # node2's kubelet never answers: the rollout stops there, node3 is never touched
            ("node2", "kubelet_health_url=http://127.0.0.1:10249/healthz"),
            ("node3", "kubelet_health_url=http://127.0.0.1:10248/healthz"),
        ),
        prep=(
            ("dpkg", "-i", "/srv/fkrepo/fk-hello_1.0_all.deb"),
            ("sh", "-c", f"echo '{UPDATES}' > /etc/apt/sources.list.d/updates.list"),
            # an old apt cache (the image may be younger than the role's cache_valid_time)
            ("touch", "-d", "@1", "/var/lib/apt/lists"),
        ),
    )
    want, _ = differential(
        lab,
        tmp_path,
        playbook,
        ["/usr/share/fk-hello"],
        [
            "-e",
            "os_update_reboot=false kubelet_health_retries=1 kubelet_health_delay=0",
        ],
        hosts=hosts,
        verbose=False,
    )
    assert want.rc == 2, want.stdout
    # node1 upgraded, node3 untouched
    assert want.files["node1"] != want.files["node3"], want.stdout


MISSING_PM_PLAY = """- hosts: nodes
  gather_facts: true
  tasks:
    - name: yum on a host without yum
      ansible.builtin.yum:
        name: "*"
        state: latest
      ignore_errors: true
    - name: dnf on a host without dnf
      ansible.builtin.dnf:
        name: "*"
        state: latest
      ignore_errors: true
    - name: package where apt-get is gone
      ansible.builtin.package:
        name: fk-hello
        state: latest
      ignore_errors: true
    - name: apt where apt-get is gone
      ansible.builtin.apt:
        upgrade: dist
"""


def test_missing_package_manager_fails_as_ansible(lab: DebianLab, tmp_path: Path) -> None:
    want, _ = differential(
        lab,
        tmp_path,
        MISSING_PM_PLAY,
        [],
        hosts=Hosts(prep=(("rm", "-f", "/usr/bin/apt-get"),)),
    )
    assert want.rc == 2 and "ok: [node0] =>" not in want.stdout.split("yum on")[1][:200]


BECOME_PLAY = """- hosts: nodes
  gather_facts: false
  become: true
  tasks:
    - name: who am I (a command)
      command: id -un
    - name: a root-only file (a module on the agent)
      copy:
        content: "secret\\n"
        dest: /etc/fk-become.txt
        mode: "0600"
    - name: read it back
      command: cat /etc/fk-become.txt
      changed_when: false
    - name: stdin still reaches the command
      shell: cat
      args:
        stdin: from stdin
      changed_when: false
    - name: without become
      command: id -un
      become: false
      changed_when: false
"""


def test_become_with_a_sudo_password(lab: DebianLab, tmp_path: Path) -> None:
    (tmp_path / "become-pass").write_text(SUDO_PASSWORD + "\n")
    want, _ = differential(
        lab,
        tmp_path,
        BECOME_PLAY,
        ["/etc/fk-become.txt"],
        ["--become-password-file", str(tmp_path / "become-pass")],
        hosts=Hosts(user=SUDO_USER),
    )
    assert want.rc == 0 and '"stdout": "root"' in want.stdout
    assert f'"stdout": "{SUDO_USER}"' in want.stdout


_STDIN_TASK = "    - name: stdin still reaches the command\n      shell: cat\n      args:\n        stdin: from stdin\n      changed_when: false\n"


def test_become_password_wrong_or_missing(lab: DebianLab, tmp_path: Path) -> None:
    assert _STDIN_TASK in BECOME_PLAY
    want, _ = differential(
        lab,
        tmp_path,
        # without the stdin task: after a wrong password there ansible-playbook (the peer)
        # sometimes waits out its prompt timeout (UNREACHABLE) and sometimes says "Incorrect
        # sudo password", even with 30 s and an idle machine; the other become tests cover stdin
        BECOME_PLAY.replace("  tasks:\n", "  ignore_errors: true\n  tasks:\n", 1).replace(
            _STDIN_TASK, ""
        ),
        ["/etc/fk-become.txt"],
        hosts=Hosts(
            user=SUDO_USER,
            host_vars=(("node0", "ansible_become_password=not-the-password"),),
        ),
    )
    assert "Incorrect sudo password" in want.stdout and "Missing sudo password" in want.stdout


# su asks the target user's password on a terminal: root gets one in these tests
SU_PASSWORD = "root-su-pass"
SU_PLAY = """- hosts: nodes
  gather_facts: false
  become: true
  become_method: su
  tasks:
    - name: an absent become method's binary
      command: id -un
      become_method: community.general.doas
      ignore_errors: true
    - name: who am I (a command)
      command: id -un
    - name: a root-only file (a module on the agent)
      copy:
        content: "secret\\n"
        dest: /etc/fk-su.txt
        mode: "0600"
    - name: read it back
      command: cat /etc/fk-su.txt
      changed_when: false
"""


def test_become_su_right_wrong_and_missing_password(lab: DebianLab, tmp_path: Path) -> None:
    want, _ = differential(
        lab,
        tmp_path,
        SU_PLAY,
        ["/etc/fk-su.txt"],
        hosts=Hosts(
            names=("node0", "node1", "node2"),
            user=SUDO_USER,
            host_vars=(
                ("node0", f"ansible_become_password={SU_PASSWORD}"),
                ("node1", "ansible_become_password=not-the-password"),
            ),
            prep=(("sh", "-c", f"echo root:{SU_PASSWORD} | chpasswd"),),
        ),
    )
    assert want.rc != 0 and '"stdout": "root"' in want.stdout
    assert "Incorrect su password" in want.stdout
    assert "Timeout (12s) waiting for privilege escalation prompt" in want.stdout


# become_user an unprivileged user from an unprivileged login: ansible has to share its
# temporary files with that user (setfacl, chown, chmod +a, common_remote_group,
# world-readable files) or fails the task
UNPRIVILEGED_PLAY = """- hosts: nodes
  gather_facts: false
  become: true
  become_user: fkuser
  tasks:
    - name: who am I (a command)
      command: id -un
      ignore_errors: true
    - name: a module
      ping:
      ignore_errors: true
    - name: raw needs no temporary files
      raw: id -un
      register: r
      no_log: true
    - name: raw's lines (ansible's raw runs on a terminal, after sudo's prompt line)
      debug:
        msg: "{{ r.stdout_lines | select | list }}"
"""
UNPRIVILEGED_PREP = (
    ("useradd", "-m", "-s", "/bin/bash", "fkuser"),
    ("groupadd", "fkshare"),
    ("usermod", "-aG", "fkshare", "fkuser"),
    ("usermod", "-aG", "fkshare", SUDO_USER),
    # node3 keeps the acl package (setfacl), the others lose it
    ("sh", "-c", '[ "$(hostname)" = node3 ] || dpkg --purge acl >/dev/null'),
)


def test_become_unprivileged_user_temporary_files(lab: DebianLab, tmp_path: Path) -> None:
    (tmp_path / "become-pass").write_text(SUDO_PASSWORD + "\n")
    want, _ = differential(
        lab,
        tmp_path,
        UNPRIVILEGED_PLAY,
        [],
        ["--become-password-file", str(tmp_path / "become-pass")],
        hosts=Hosts(
            names=("node0", "node1", "node2", "node3"),
            user=SUDO_USER,
            host_vars=(
                ("node1", "ansible_shell_allow_world_readable_temp=true"),
                ("node2", "ansible_common_remote_group=fkshare"),
            ),
            prep=UNPRIVILEGED_PREP,
        ),
    )
    assert "Failed to set permissions on the temporary files" in want.stdout
    assert "Using world-readable permissions" in want.stdout + want.stderr
    assert want.stdout.count('"stdout": "fkuser"') == 3
