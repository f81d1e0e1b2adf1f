"""``reboot``: reboot the target over its connection, wait for a new boot id, test it.

Refused on a ``local`` connection, as ansible refuses ("Running reboot with local
connection would reboot the control node.")."""

from __future__ import annotations

import time
from typing import Any

from fleetkit.playbook.connection import Unreachable
from fleetkit.playbook.modules import Module, ModuleContext, Param

__all__ = ["MODULES"]

_SPEC = {
    "reboot_timeout": Param("int", 600),
    "connect_timeout": Param("int"),
    "pre_reboot_delay": Param("int", 0),
    "post_reboot_delay": Param("int", 0),
    "test_command": Param("str", "whoami"),
    "msg": Param("str", "Reboot initiated by Ansible"),
    "reboot_command": Param("str"),
    "boot_time_command": Param("str", "cat /proc/sys/kernel/random/boot_id"),
    "search_paths": Param("list"),
}


def _boot_id(ctx: ModuleContext, command: str) -> str:
    res = ctx.conn.run(command, become=ctx.become, timeout_s=30)
    if res.rc != 0:
        raise RuntimeError(
            f"failed to get boot time: {res.stderr.decode(errors='replace').strip()}"
        )
    return res.stdout.decode(errors="replace").strip()


def run_reboot(ctx: ModuleContext, args: dict[str, Any]) -> dict[str, Any]:
    if ctx.conn.local:
        return {
            "failed": True,
            "changed": False,
            "rebooted": False,
            "elapsed": 0,
            "msg": "Running reboot with local connection would reboot the control node.",
        }
    if ctx.check:
        return {"changed": True, "rebooted": True, "elapsed": 0}
    start = time.monotonic()
    timeout = int(args.get("reboot_timeout") or 600)
    try:
        before = _boot_id(ctx, str(args["boot_time_command"]))
    except RuntimeError as exc:
        return {"failed": True, "changed": False, "rebooted": False, "elapsed": 0, "msg": str(exc)}
    pre = int(args.get("pre_reboot_delay") or 0)
    command = args.get("reboot_command")
    if not command:
        minutes = pre // 60
        command = f'/sbin/shutdown -r +{minutes} "{args.get("msg")}"'
    elif pre:
        time.sleep(pre)
    try:
        res = ctx.conn.run(str(command), become=ctx.become, timeout_s=30)
        if res.rc not in (0, -1, 255):
            return {
                "failed": True,
                "changed": False,
                "rebooted": False,
                "elapsed": int(time.monotonic() - start),
                "msg": "Reboot command failed. Error was: "
                f"'{res.stderr.decode(errors='replace').strip()}'",
            }
    except Unreachable:
        pass  # the connection dropped because the host is going down
    reset = getattr(ctx.conn, "reset", None)
    deadline = start + timeout
    last_err = ""
    while time.monotonic() < deadline:
        if reset is not None:
            reset()
        try:
            after = _boot_id(ctx, str(args["boot_time_command"]))
            if after and after != before:
                break
            last_err = "boot time has not changed"
        except (Unreachable, RuntimeError) as exc:
            last_err = str(exc)
        time.sleep(1)
    else:
        return {
            "failed": True,
            "changed": True,
            "rebooted": True,
            "elapsed": int(time.monotonic() - start),
            "msg": f"Timed out waiting for last boot time check (timeout={timeout}): {last_err}",
        }
    post = int(args.get("post_reboot_delay") or 0)
    if post:
        time.sleep(post)
    while True:
        try:
            res = ctx.conn.run(
                str(args.get("test_command") or "whoami"), become=ctx.become, timeout_s=30
            )
            if res.rc == 0:
                break
            last_err = res.stderr.decode(errors="replace").strip()
        except Unreachable as exc:
            last_err = str(exc)
        if time.monotonic() >= deadline:
            return {
                "failed": True,
                "changed": True,
                "rebooted": True,
                "elapsed": int(time.monotonic() - start),
                "msg": f"Timed out waiting for post-reboot test command (timeout={timeout})"
                f": {last_err}",
            }
        time.sleep(1)
    return {"changed": True, "rebooted": True, "elapsed": int(time.monotonic() - start)}


MODULES = (Module("reboot", run_reboot, _SPEC),)
