"""``setup`` / ``gather_facts``: a small fact set gathered with one shell command."""

from __future__ import annotations

import shlex
from typing import Any

from fleetkit.playbook.modules import Module, ModuleContext, Param

__all__ = ["MODULES"]

_SCRIPT = r"""
echo "hostname=$(hostname -s 2>/dev/null || hostname)"
echo "fqdn=$(hostname -f 2>/dev/null || hostname)"
echo "nodename=$(uname -n)"
echo "kernel=$(uname -r)"
echo "machine=$(uname -m)"
echo "system=$(uname -s)"
echo "user_id=$(id -un)"
echo "nproc=$(nproc 2>/dev/null || echo 1)"
echo "memtotal_kb=$(awk '/MemTotal/{print $2}' /proc/meminfo 2>/dev/null)"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
echo "python=$(command -v python3 2>/dev/null)"
echo "pkg=$( (command -v apt-get >/dev/null && echo apt) || (command -v dnf >/dev/null && echo dnf) || (command -v yum >/dev/null && echo yum) || echo unknown)"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_codename=$VERSION_CODENAME"; echo "os_like=$ID_LIKE"; fi
"""

_FAMILY = {
    "debian": "Debian",
    "ubuntu": "Debian",
    "rhel": "RedHat",
    "centos": "RedHat",
    "fedora": "RedHat",
    "rocky": "RedHat",
    "almalinux": "RedHat",
    "alpine": "Alpine",
    "arch": "Archlinux",
    "opensuse": "Suse",
    "sles": "Suse",
}
_DIST = {
    "debian": "Debian",
    "ubuntu": "Ubuntu",
    "rhel": "RedHat",
    "centos": "CentOS",
    "fedora": "Fedora",
    "rocky": "Rocky",
    "almalinux": "AlmaLinux",
    "alpine": "Alpine",
}


def run_setup(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    res = ctx.conn.run(["/bin/sh", "-c", _SCRIPT])
    kv: dict[str, str] = {}
    for line in res.stdout.decode(errors="replace").splitlines():
        k, _, v = line.partition("=")
        kv[k] = v.strip()
    os_id = kv.get("os_id", "")
    facts: dict[str, Any] = {
        "hostname": kv.get("hostname", ""),
        "fqdn": kv.get("fqdn", ""),
        "nodename": kv.get("nodename", ""),
        "kernel": kv.get("kernel", ""),
        "architecture": kv.get("machine", ""),
        "machine": kv.get("machine", ""),
        "system": kv.get("system", ""),
        "user_id": kv.get("user_id", ""),
        "processor_vcpus": int(kv.get("nproc") or 1),
        "memtotal_mb": int(kv.get("memtotal_kb") or 0) // 1024,
        "distribution": _DIST.get(os_id, os_id.capitalize()),
        "distribution_version": kv.get("os_version", ""),
        "distribution_release": kv.get("os_codename", ""),
        "distribution_major_version": kv.get("os_version", "").split(".")[0],
        "os_family": _FAMILY.get(
            os_id, _FAMILY.get(kv.get("os_like", "").split(" ")[0], os_id.capitalize())
        ),
        "pkg_mgr": kv.get("pkg", "unknown"),
        "python": {"executable": kv.get("python", "")},
        "boot_id": kv.get("boot_id", ""),
    }
    ansible_facts = {f"ansible_{k}": v for k, v in facts.items()}
    ansible_facts["discovered_interpreter_python"] = kv.get("python") or "/usr/bin/python3"
    _ = shlex
    return {"ansible_facts": ansible_facts, "changed": False}


MODULES = (
    Module(
        "setup",
        run_setup,
        {
            "gather_subset": Param("list"),
            "filter": Param("list"),
            "gather_timeout": Param("int", 10),
            "fact_path": Param("str"),
        },
    ),
    Module("gather_facts", run_setup, {"parallel": Param("bool")}),
)
