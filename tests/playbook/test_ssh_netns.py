"""SSH for real: network namespaces + veth, Debian's sshd with key auth in each; the same
playbook run by ansible-playbook and fleetkit gives the same per-host results and recap."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import require, require_root
from tests.playbook._harness import parse, run_ansible, run_fleetkit
from tests.playbook._netns import ssh_fleet, wait_port

N_HOSTS = 3


@pytest.fixture
def ssh_hosts(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    require_root("network namespaces")
    require("ip", "apt-get install -y iproute2")
    sshd = require("sshd", "apt-get install -y openssh-server")
    keygen = require("ssh-keygen", "apt-get install -y openssh-client")
    with ssh_fleet(tmp_path, N_HOSTS, sshd, keygen) as fleet:
        yield fleet


PLAYBOOK = """- name: over ssh
  hosts: nodes
  gather_facts: false
  tasks:
    - name: run a command
      command: /bin/true
    - name: shell with output
      shell: echo hi-{{ inventory_hostname }}
      register: out
      changed_when: false
    - name: check it
      assert:
        that: out.stdout == 'hi-' ~ inventory_hostname
    - name: fail on node1
      command: /bin/sh -c "exit {{ 1 if inventory_hostname == 'node1' else 0 }}"
"""


# the `port` keyword (play and task level) picks the port ssh connects to
PORT_PLAY = """- name: port keyword
  hosts: node0
  gather_facts: false
  port: 22
  tasks:
    - name: through the play's port
      command: /bin/true
    - name: a port nothing listens on
      command: /bin/true
      port: 1
      ignore_unreachable: true
"""


def test_ssh_same_results_as_ansible(ssh_hosts: tuple[Path, list[subprocess.Popen[bytes]]]) -> None:
    d, _ = ssh_hosts
    (d / "pb.yml").write_text(PLAYBOOK + PORT_PLAY)
    args = ["-i", "inventory.ini", "pb.yml", "-f", "1"]
    want = run_ansible(args, d)
    got = run_fleetkit(["play", *args], d, env={"ANSIBLE_HOST_KEY_CHECKING": "False"})
    assert want.returncode == got.returncode == 2, got.stdout + got.stderr
    assert parse(got.stdout) == parse(want.stdout)
    assert "port 1: Connection refused" in got.stdout


def test_ssh_host_key_checking_refuses_unknown_host(
    ssh_hosts: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    d, _ = ssh_hosts
    (d / "pb.yml").write_text(PLAYBOOK)
    got = run_fleetkit(
        ["play", "-i", "inventory.ini", "pb.yml"],
        d,
        env={"ANSIBLE_HOST_KEY_CHECKING": "True", "HOME": str(d)},
    )
    assert got.returncode == 4
    assert "UNREACHABLE!" in got.stdout and "Host key verification failed" in got.stdout


def test_sshd_stopped_mid_run_is_unreachable(
    ssh_hosts: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    d, procs = ssh_hosts
    ns0 = (d / "namespaces").read_text().split()[0]
    stop = d / "stopped"
    (d / "pb.yml").write_text(
        "- hosts: nodes\n  gather_facts: false\n  serial: 1\n  tasks:\n"
        "    - name: first\n      command: /bin/true\n"
        "    - name: stop node0's sshd\n      delegate_to: localhost\n"
        f"      shell: ip netns pids {ns0} | xargs -r kill; touch {stop}\n"
        "      when: inventory_hostname == 'node0'\n"
        "    - name: after\n      command: /bin/true\n"
    )
    got = run_fleetkit(
        ["play", "-i", "inventory.ini", "pb.yml"], d, env={"ANSIBLE_HOST_KEY_CHECKING": "False"}
    )
    assert stop.exists()
    events, recap = parse(got.stdout)
    assert ("unreachable", "after", "node0") in [e[:3] for e in events], got.stdout
    # the only host of the batch is unreachable: the rollout stops, node1 is never touched
    assert got.returncode == 4
    assert "node1" not in recap
    assert recap["node0"][2] == 1


REBOOT_SCRIPT = r"""#!/bin/sh
# test stand-in for a reboot: this host's sshd goes down and comes back, and only once the new
# sshd has written its pid file does the boot id change (so "new boot id" implies "sshd is up")
bootfile=$1; cfg=$2; pidfile=$3; sshd=$4
setsid sh -c "sleep 1; old=\$(cat $pidfile); kill \$old; \
  for i in \$(seq 50); do grep -qs '^State:[[:space:]]*[^Z]' /proc/\$old/status || break; \
    sleep 0.1; done; rm -f $pidfile; \
  for i in 1 2 3 4 5 6 7 8 9 10; do $sshd -f $cfg -E $bootfile.log && break; sleep 0.3; done; \
  for i in \$(seq 100); do [ -s $pidfile ] && break; sleep 0.1; done; \
  cat /proc/sys/kernel/random/uuid > $bootfile.new && mv $bootfile.new $bootfile" \
  </dev/null >$bootfile.out 2>&1 &
exit 0
"""


def test_reboot_with_test_scripts(ssh_hosts: tuple[Path, list[subprocess.Popen[bytes]]]) -> None:
    d, _ = ssh_hosts
    sshd = require("sshd", "apt-get install -y openssh-server")
    script = d / "fake-reboot.sh"
    script.write_text(REBOOT_SCRIPT)
    script.chmod(0o755)
    for i in range(N_HOSTS):
        (d / f"boot-node{i}").write_text(f"boot-{i}-0\n")
    (d / "pb.yml").write_text(
        "- hosts: node0\n  gather_facts: false\n  tasks:\n"
        "    - name: reboot it\n      reboot:\n"
        f"        reboot_command: {script} {d}/boot-{{{{ inventory_hostname }}}} "
        f"{{{{ sshd_config }}}} {{{{ sshd_pidfile }}}} {sshd}\n"
        f"        boot_time_command: cat {d}/boot-{{{{ inventory_hostname }}}}\n"
        "        reboot_timeout: 60\n"
        "      register: r\n"
        "    - name: after reboot\n      command: cat {{ sshd_pidfile }}\n"
        "    - name: show\n      debug:\n        msg: 'rebooted={{ r.rebooted }}'\n"
    )
    got = run_fleetkit(
        ["play", "-i", "inventory.ini", "pb.yml", "-o", "json"],
        d,
        env={"ANSIBLE_HOST_KEY_CHECKING": "False"},
        timeout=120,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    import json

    events = [json.loads(line) for line in got.stdout.splitlines()]
    reboot = next(e for e in events if e.get("task") == "reboot it" and "host" in e)
    assert reboot["ev"] == "changed" and reboot["result"]["rebooted"] is True
    assert (d / "boot-node0").read_text().strip() != "boot-0-0"
    assert any(e.get("task") == "after reboot" and e["ev"] == "changed" for e in events)


def test_reboot_refused_on_local_connection(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: r\n      reboot:\n"
    )
    got = run_fleetkit(["play", "-i", "localhost,", "-c", "local", "pb.yml"], tmp_path)
    assert got.returncode == 2
    assert "Running reboot with local connection would reboot the control node." in got.stdout


HEALTHZ = """import http.server, sys
code = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = b"ok" if code == 200 else b"unhealthy"
        self.send_response(code); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
http.server.HTTPServer((sys.argv[1], 8080), H).serve_forever()
"""

ROLLOUT = """- name: rolling update with a healthz gate
  hosts: nodes
  gather_facts: false
  serial: 1
  tasks:
    - name: upgrade
      command: touch /tmp/{marker}-{{{{ inventory_hostname }}}}
    - name: healthz
      uri:
        url: "http://{{{{ ansible_host }}}}:8080/healthz"
        status_code: 200
      register: result
      until: result.status == 200
      retries: 2
      delay: 0
"""


def test_healthz_503_stops_serial_rollout(
    ssh_hosts: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    d, _ = ssh_hosts
    import sys

    (d / "healthz.py").write_text(HEALTHZ)
    namespaces = (d / "namespaces").read_text().split()
    addresses = (d / "addresses").read_text().split()
    for i, ns in enumerate(namespaces):
        code = "503" if i == 1 else "200"
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                str(d / "healthz.py"),
                addresses[i],
                code,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(ns, addresses[i], 8080)
    marker = f"fkpb-{os.getpid()}"
    (d / "pb.yml").write_text(ROLLOUT.format(marker=marker))
    try:
        args = ["-i", "inventory.ini", "pb.yml", "-f", "1"]
        got = run_fleetkit(["play", *args], d, env={"ANSIBLE_HOST_KEY_CHECKING": "False"})
        assert got.returncode == 2, got.stdout + got.stderr
        assert (
            "Status code was 503 and not [200]: HTTP Error 503: Service Unavailable" in got.stdout
        )
        events, recap = parse(got.stdout)
        assert sorted(recap) == ["node0", "node1"]
        assert not Path(f"/tmp/{marker}-node2").exists()
        for h in ("node0", "node1"):
            Path(f"/tmp/{marker}-{h}").unlink()
        want = run_ansible(args, d)
        assert want.returncode == 2
        assert events == parse(want.stdout)[0]
        assert recap == parse(want.stdout)[1]
    finally:
        for i in range(N_HOSTS):
            Path(f"/tmp/{marker}-node{i}").unlink(missing_ok=True)


# commands before any module (the small command agent) and the same commands after a module
# turned the agent into the module agent in place: one interpreter, the same answers
COMMANDS = """    - name: stdin larger than a pipe's buffer
      command: wc -c
      args: {stdin: "{{ 'x' * 300000 }}"}
    - name: output larger than a pipe's buffer on both streams
      shell: head -c 200000 /dev/zero | tr -c o o; head -c 100000 /dev/zero | tr -c e e >&2
      register: big
    - name: both streams whole
      assert: {that: "big.stdout == 'o' * 200000 and big.stderr == 'e' * 100000"}
    - name: exit code
      shell: echo out; echo err >&2; exit 3
      ignore_errors: true
    - name: program looked up in the task environment's PATH
      command: here-only
      environment: {PATH: "/nonexistent:@BIN@:/usr/bin:/bin"}
    - name: missing program
      command: /nonexistent/prog
      ignore_errors: true
    - name: missing working directory
      command: /bin/true
      args: {chdir: /nonexistent/dir}
      ignore_errors: true
    - name: no descriptor of the agent leaks into a command
      shell: ls /proc/self/fd | wc -l
"""
ONE_AGENT_PLAY = """- hosts: node0
  gather_facts: false
  tasks:
    - name: agent before
      shell: echo $PPID
      register: before
    - name: module run in a fork of the agent
      slurp: {src: /proc/self/stat}
      register: stat
    - name: agent after
      shell: echo $PPID
      register: after
    - name: same agent, one process
      assert:
        that:
          - before.stdout == after.stdout
          - (stat.content | b64decode).split(' ')[3] == before.stdout
"""


def test_one_agent_per_host_serves_commands_and_modules(
    ssh_hosts: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    d, _ = ssh_hosts
    (d / "bin").mkdir()
    (d / "bin" / "here-only").write_text("#!/bin/sh\necho found\n")
    (d / "bin" / "here-only").chmod(0o755)
    commands = COMMANDS.replace("@BIN@", str(d / "bin"))
    (d / "pb.yml").write_text(ONE_AGENT_PLAY + commands)
    (d / "plain.yml").write_text("- hosts: node0\n  gather_facts: false\n  tasks:\n" + commands)
    env = {"ANSIBLE_HOST_KEY_CHECKING": "False"}
    got = run_fleetkit(["play", "-i", "inventory.ini", "pb.yml", "-v"], d, env=env)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr
    plain = run_fleetkit(["play", "-i", "inventory.ini", "plain.yml", "-v"], d, env=env)
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr
    names = set(re.findall(r"- name: (.*)", COMMANDS))
    events = [e for e in parse(got.stdout)[0] if e[1] in names]
    assert events == [e for e in parse(plain.stdout)[0] if e[1] in names]
    assert [e[0] for e in events].count("ignoring") == 3, got.stdout[-3000:]
    shown = "\n".join(e[3] for e in events if len(e) > 3)
    assert '"stdout": "300001"' in shown and '"stdout": "found"' in shown
    # 0, 1, 2 and the directory ls reads
    assert '"stdout": "4"' in shown
    # every ssh process (the master is the agent's own) ended with the run
    addr = (d / "addresses").read_text().split()[0]
    left = subprocess.run(["pgrep", "-f", f"^ssh .* {addr} "], capture_output=True, check=False)
    assert left.returncode == 1, left.stdout
