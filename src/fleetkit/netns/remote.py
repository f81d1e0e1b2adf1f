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
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetkit.netns.errors import HelperError

__all__ = ["Remote", "build_zipapp", "run_remote"]

_MAIN = b"import sys\nfrom fleetkit.cli import main\nsys.exit(main())\n"


@dataclass(frozen=True, slots=True)
class Remote:
    """Where and how to reach the node: ``user@host`` and extra ssh options."""

    destination: str
    key: str | None = None
    options: tuple[str, ...] = ()
    cache_dir: str = "$HOME/.cache/fleetkit"  # on the node; shell-expanded there

    def ssh(self, command: str) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-T"]
        if self.key:
            argv += ["-i", self.key]
        for option in self.options:
            argv += ["-o", option]
        return [*argv, "--", self.destination, command]


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


def _ship(remote: Remote, app: bytes) -> str:
    """Put the zip application on the node unless it is there; its path there."""
    digest = hashlib.sha256(app).hexdigest()[:16]
    path = f"{remote.cache_dir}/fleetkit-{digest}.pyz"
    for _attempt in range(2):  # one retry: sshd drops early connections under MaxStartups
        check = subprocess.run(
            remote.ssh(f'test -f "{path}"'), stdin=subprocess.DEVNULL, capture_output=True
        )
        if check.returncode != 255 or b"Connection reset" not in check.stderr:
            break
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
    return path


def run_remote(remote: Remote, argv: Sequence[str], write_path: str | None = None) -> int:
    """Run ``fleetkit ARGV`` on the node; stream its output here; its exit status.

    ``write_path``: ARGV already says ``-w -``; the pcap it streams is written to this file.
    """
    path = _ship(remote, build_zipapp())
    command = f'exec python3 "{path}" ' + " ".join(shlex.quote(a) for a in argv)
    sys.stdout.flush()
    if write_path is None:
        try:
            return subprocess.run(remote.ssh(command), stdin=subprocess.DEVNULL).returncode
        except KeyboardInterrupt:  # ssh got the Ctrl-C too and closed the session
            return 130
    directory = os.path.dirname(os.path.abspath(write_path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(write_path)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                code = subprocess.run(remote.ssh(command), stdin=subprocess.DEVNULL, stdout=out)
                status = code.returncode
            except KeyboardInterrupt:  # what arrived is a complete pcap up to its last record
                status = 130
        os.replace(tmp, write_path)
    except BaseException:
        if os.path.exists(tmp):
            os.replace(tmp, write_path)
        raise
    return status
