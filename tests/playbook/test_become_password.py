"""become with a password: sudo's askpass helper gets it from stdin's first line, never argv."""

from __future__ import annotations

import os
import shutil

import pytest

from fleetkit.playbook.connection import Become, BecomeFailed
from fleetkit.playbook.connection.local import (
    LocalConnection,
    become_failure,
    become_prefix,
    become_stdin,
)


def test_password_never_in_argv_and_no_non_interactive_flag() -> None:
    b = Become(user="root", password="s3cret-pass")
    argv = become_prefix(b, "python3")
    assert not any("s3cret-pass" in a for a in argv)
    assert "-n" not in argv and "-A" in argv and argv[argv.index("-u") + 1] == "root"
    assert become_stdin(b, b"data") == b"s3cret-pass\ndata"
    assert "s3cret-pass" not in repr(b)
    # no password: sudo as before, non-interactive
    assert become_prefix(Become(), "python3")[:4] == ["sudo", "-H", "-S", "-n"]
    assert become_stdin(Become(), b"data") == b"data"


def test_sudo_refusals_get_ansible_messages() -> None:
    b = Become(password="x")
    assert become_failure(b, 1, b"sudo: a password is required\n") == "Missing sudo password"
    wrong = b"Sorry, try again.\nSorry, try again.\nsudo: 3 incorrect password attempts\n"
    assert become_failure(b, 1, wrong) == "Incorrect sudo password"
    assert become_failure(b, 1, b"cat: x: No such file or directory\n") is None
    assert become_failure(b, 0, b"Sorry, try again.\n") is None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("sudo") is None, reason="root and sudo")
def test_local_become_with_a_password_keeps_the_commands_stdin() -> None:
    # root's sudo asks no password: the bootstrap still takes its line and leaves the rest
    conn = LocalConnection()
    res = conn.run(["cat"], stdin=b"to the command\n", become=Become("nobody", password="pw"))
    assert (res.rc, res.stdout) == (0, b"to the command\n")
    who = conn.run(["id", "-un"], become=Become("nobody", password="pw"))
    assert who.stdout == b"nobody\n"


def test_become_failed_is_an_exception_with_the_message() -> None:
    assert str(BecomeFailed("Missing sudo password")) == "Missing sudo password"
