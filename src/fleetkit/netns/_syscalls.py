"""The only ctypes code in fleetkit: setns(2), unshare(2) and libpcap's filter compiler.

Everything here is loaded lazily: importing this module costs one ``ctypes`` import; libc and
libpcap are opened on first use. ``os.setns`` (Python 3.12+) is used when it exists.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWTIME",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "PcapCompileError",
    "compile_bpf",
    "default_signals",
    "setns",
    "unshare",
]

# <linux/sched.h>
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000


_LIBC: list[ctypes.CDLL] = []
_LIBPCAP: list[Any] = []


def _libc() -> ctypes.CDLL:
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL("libc.so.6", use_errno=True))
        except OSError:
            from ctypes.util import find_library

            _LIBC.append(ctypes.CDLL(find_library("c"), use_errno=True))
    return _LIBC[0]


def default_signals(*signums: int) -> None:
    """Reset ``signums`` to SIG_DFL behind Python's back, just before exec or self-kill.

    Python ignores SIGPIPE and SIGXFSZ; an exec'd program would inherit the ignore.
    """
    libc = _libc()
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    for signum in signums:
        libc.signal(signum, None)


def setns(fd: int, nstype: int) -> None:
    """Reassociate the calling thread with the namespace ``fd`` refers to; OSError on failure."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, nstype)
        return
    if _libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def unshare(flags: int) -> None:
    """Move the calling thread (or process) into new namespaces; OSError on failure."""
    native = getattr(os, "unshare", None)
    if native is not None:
        native(flags)
        return
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


# --- libpcap: compile a filter expression to classic BPF exactly as tcpdump does -------------

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


class PcapCompileError(Exception):
    """libpcap rejected the filter expression (message from pcap_geterr)."""


def _libpcap() -> Any:
    if _LIBPCAP:
        return _LIBPCAP[0]

    def candidates() -> Iterator[str]:
        yield from ("libpcap.so.0.8", "libpcap.so.1", "libpcap.so")
        from ctypes.util import find_library

        name = find_library("pcap")
        if name:
            yield name

    last: OSError | None = None
    for candidate in candidates():
        try:
            lib = ctypes.CDLL(candidate)
        except OSError as exc:
            last = exc
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _LIBPCAP.append(lib)
        return lib
    raise OSError(f"libpcap not found ({last})")


def compile_bpf(
    expression: str,
    linktype: int = 1,
    snaplen: int = 262144,
    optimize: bool = True,
    netmask: int = PCAP_NETMASK_UNKNOWN,
) -> list[tuple[int, int, int, int]]:
    """Compile a pcap-filter(7) expression with libpcap; returns (code, jt, jf, k) tuples.

    Raises OSError when libpcap cannot be loaded, PcapCompileError on a bad expression.
    """
    lib = _libpcap()
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise OSError("pcap_open_dead failed")
    try:
        program = _BpfProgram()
        rc = lib.pcap_compile(
            handle, ctypes.byref(program), expression.encode(), int(optimize), netmask
        )
        if rc != 0:
            raise PcapCompileError(lib.pcap_geterr(handle).decode(errors="replace"))
        try:
            return [
                (
                    program.bf_insns[i].code,
                    program.bf_insns[i].jt,
                    program.bf_insns[i].jf,
                    program.bf_insns[i].k,
                )
                for i in range(program.bf_len)
            ]
        finally:
            lib.pcap_freecode(ctypes.byref(program))
    finally:
        lib.pcap_close(handle)


def sock_fprog(program: list[tuple[int, int, int, int]]) -> tuple[bytes, Any]:
    """Pack ``program`` as ``struct sock_fprog`` for SO_ATTACH_FILTER.

    Returns the bytes to pass to setsockopt and the instruction array, which must stay alive
    until setsockopt returns (the struct holds a pointer to it).
    """

    class _SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_BpfInsn))]

    insns = (_BpfInsn * len(program))(*[_BpfInsn(c, jt, jf, k) for c, jt, jf, k in program])
    fprog = _SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(_BpfInsn)))
    return bytes(fprog), insns
