"""Run a ``fleetkit ns`` helper on another node over SSH (``--ssh user@host``).

The node needs Python 3 and nothing else: fleetkit is shipped once as a zip application
(``python3 fleetkit-HASH.pyz ...``), named by the hash of its contents under
``~/.cache/fleetkit`` on the node, so a changed fleetkit is shipped again and an unchanged one
never is. The helper then runs there with the same arguments and its output streams back
unchanged (lines as tcpdump prints them, dig's answer, ...). ``capture -w FILE`` is run as
``-w -`` on the node and the pcap lands in FILE here (a temporary name renamed into place).

The connection is the system's OpenSSH client (``ssh -o BatchMode=yes``): its configuration,
agent, known_hosts checking and ControlMaster apply; ``--ssh-key`` and ``--ssh-option`` add
``-i`` and ``-o`` options.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetkit.errors import UsageError
from fleetkit.netns.errors import HelperError

__all__ = ["Remote", "build_zipapp", "remote_command", "remote_from_host_vars", "run_remote"]

DEFAULT_CACHE = "$HOME/.cache/fleetkit"
_MAIN = b"import sys\nfrom fleetkit.cli import main\nsys.exit(main())\n"


@dataclass(frozen=True, slots=True)
class Remote:
    """Where and how to reach the node: ``user@host`` and extra ssh options."""

    destination: str
    key: str | None = None
    options: tuple[str, ...] = ()
    cache_dir: str = DEFAULT_CACHE  # on the node; shell-expanded there
    port: int | None = None
    args: tuple[str, ...] = ()  # the user's own ssh arguments, first (ssh keeps the first value)
    python: str = "python3"

    def ssh(self, command: str) -> list[str]:
        argv = ["ssh", *self.args, "-o", "BatchMode=yes", "-T"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        if self.key:
            argv += ["-i", os.path.expanduser(self.key)]
        for option in self.options:
            argv += ["-o", option]
        return [*argv, "--", self.destination, command]


_TEMPLATED = ("{{", "{%")


def _host_var(name: str, hv: Mapping[str, Any], *keys: str) -> str | None:
    """The first of KEYS set in HV, as a string; templated or non-scalar values are refused."""
    for key in keys:
        value = hv.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            return "true" if value else "false"
        if type(value) not in (str, int):  # vaulted strings, lists, mappings
            raise UsageError(
                f"inventory host {name}: {key} is a {type(value).__name__}, not a plain value",
                hint="fleetkit ns reads plain inventory values (not vaulted, not structured)",
            )
        text = str(value)
        if any(mark in text for mark in _TEMPLATED):
            raise UsageError(
                f"inventory host {name}: {key} is a template ({text!r})",
                hint="fleetkit ns does not render Jinja2 in inventory variables; "
                "give the value itself",
            )
        return text
    return None


def remote_from_host_vars(name: str, hv: Mapping[str, Any], cache_dir: str | None = None) -> Remote:
    """An inventory host's connection, from the variables ``fleetkit play``'s ssh connection uses.

    ansible_host (else the name), ansible_user, ansible_port, ansible_ssh_private_key_file (or
    ansible_private_key_file), ansible_ssh_common_args + ansible_ssh_extra_args (first on ssh's
    command line: they win), ansible_host_key_checking / ANSIBLE_HOST_KEY_CHECKING (false:
    StrictHostKeyChecking=no unless the user's arguments say otherwise), ansible_ssh_timeout,
    ansible_python_interpreter (the node's Python). ansible_connection must be ssh.
    """
    connection = _host_var(name, hv, "ansible_connection") or "ssh"
    if connection not in ("ssh", "smart", "ansible.builtin.ssh", "paramiko", "paramiko_ssh"):
        raise UsageError(
            f"inventory host {name}: ansible_connection={connection} is not supported by "
            "fleetkit ns",
            hint="fleetkit ns reaches nodes over ssh",
        )
    host = _host_var(name, hv, "ansible_host", "ansible_ssh_host") or name
    user = _host_var(name, hv, "ansible_user", "ansible_ssh_user")
    port_text = _host_var(name, hv, "ansible_port", "ansible_ssh_port")
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise UsageError(f"inventory host {name}: ansible_port={port_text!r} is not a port")
    key = _host_var(name, hv, "ansible_ssh_private_key_file", "ansible_private_key_file")
    args = [
        *shlex.split(_host_var(name, hv, "ansible_ssh_common_args") or ""),
        *shlex.split(_host_var(name, hv, "ansible_ssh_extra_args") or ""),
    ]
    given = {
        a.split("=", 1)[0].strip().lower()
        for a in [*args, *(x[2:] for x in args if x.startswith("-o"))]
    }
    checking = _host_var(name, hv, "ansible_ssh_host_key_checking", "ansible_host_key_checking")
    if checking is None:
        checking = os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "true")
    options = ["LogLevel=ERROR"] if "loglevel" not in given else []  # as play's connection
    if checking.strip().lower() in ("0", "false", "no", "off", "n", "f"):
        if "stricthostkeychecking" not in given:
            options.append("StrictHostKeyChecking=no")
    timeout = _host_var(name, hv, "ansible_ssh_timeout", "ansible_timeout")
    if timeout is not None and timeout.isdigit():
        options.append(f"ConnectTimeout={timeout}")
    if key:
        options.append("IdentitiesOnly=yes")
    python = _host_var(name, hv, "ansible_python_interpreter") or "python3"
    if python.startswith("auto"):
        python = "python3"  # auto, auto_silent, auto_legacy: the node's python3
    destination = f"{user}@{host}" if user else host
    return Remote(
        destination,
        key,
        tuple(options),
        cache_dir or DEFAULT_CACHE,
        None if port_text is None else int(port_text),
        tuple(args),
        python,
    )


def build_zipapp() -> bytes:
    """fleetkit's own Python files as a zip application (deterministic: same files, same hash)."""
    import fleetkit

    root = Path(fleetkit.__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("__main__.py", (1980, 1, 1, 0, 0, 0)), _MAIN)
        for path in sorted(root.rglob("*.py")):
            name = "fleetkit/" + path.relative_to(root).as_posix()
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), path.read_bytes())
    return buf.getvalue()


_SHIPPED: set[tuple[Remote, str]] = set()  # (node, zip hash) known to be there, this process
_DROPPED = (b"Connection reset", b"Connection closed", b"kex_exchange_identification")


def _ship(remote: Remote, app: bytes) -> str:
    """Put the zip application on the node unless it is there; its path there."""
    digest = hashlib.sha256(app).hexdigest()[:16]
    path = f"{remote.cache_dir}/fleetkit-{digest}.pyz"
    if (remote, digest) in _SHIPPED:
        return path
    for attempt in range(4):  # sshd drops early connections beyond MaxStartups: retry those
        check = subprocess.run(
            remote.ssh(f'test -f "{path}"'), stdin=subprocess.DEVNULL, capture_output=True
        )
        if check.returncode != 255 or not any(m in check.stderr for m in _DROPPED):
            break
        time.sleep(0.2 * (attempt + 1))
    if check.returncode == 255:
        raise HelperError(
            f"ssh {remote.destination}: {check.stderr.decode(errors='replace').strip()}",
            hint="check the host, the user and the key (fleetkit runs ssh -o BatchMode=yes)",
        )
    if check.returncode != 0:
        put = (
            f'umask 077 && mkdir -p "{remote.cache_dir}" && '
            f't=$(mktemp "{path}.XXXXXX") && cat > "$t" && mv "$t" "{path}"'
        )
        sent = subprocess.run(remote.ssh(put), input=app, capture_output=True)
        if sent.returncode != 0:
            raise HelperError(
                f"cannot copy fleetkit to {remote.destination}: "
                f"{sent.stderr.decode(errors='replace').strip()}",
                hint="the node needs a writable home directory and Python 3",
            )
    _SHIPPED.add((remote, digest))
    return path


def remote_command(remote: Remote, argv: Sequence[str], app: bytes | None = None) -> list[str]:
    """Ship fleetkit to the node if needed; the ssh command line that runs ``fleetkit ARGV``."""
    path = _ship(remote, build_zipapp() if app is None else app)
    python = shlex.quote(remote.python)
    return remote.ssh(f'exec {python} "{path}" ' + " ".join(shlex.quote(a) for a in argv))


def run_remote(remote: Remote, argv: Sequence[str], write_path: str | None = None) -> int:
    """Run ``fleetkit ARGV`` on the node; stream its output here; its exit status.

    ``write_path``: ARGV already says ``-w -``; the pcap it streams is written to this file.
    """
    ssh = remote_command(remote, argv)
    sys.stdout.flush()
    if write_path is None:
        try:
            return subprocess.run(ssh, stdin=subprocess.DEVNULL).returncode
        except KeyboardInterrupt:  # ssh got the Ctrl-C too and closed the session
            return 130
    directory = os.path.dirname(os.path.abspath(write_path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(write_path)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                code = subprocess.run(ssh, stdin=subprocess.DEVNULL, stdout=out)
                status = code.returncode
            except KeyboardInterrupt:  # what arrived is a complete pcap up to its last record
                status = 130
        os.replace(tmp, write_path)
    except BaseException:
        if os.path.exists(tmp):
            os.replace(tmp, write_path)
        raise
    return status
