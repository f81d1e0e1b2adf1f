"""The only ctypes code in fleetkit: setns(2), unshare(2) and libpcap's filter compiler.

Everything here is loaded lazily, because ``fleetkit nsenter`` is on a start-up budget: importing
this module imports nothing but ``os``. ``os.setns``/``os.unshare`` (Python 3.12+) are used where
they exist; on 3.11 setns and unshare are called through ``_ctypes`` (the C half of ctypes, already
built into the interpreter: ~0.3 ms to import where ``ctypes`` costs ~2 ms) with libc opened once,
falling back to ``ctypes`` proper if that ever fails. libpcap is loaded to compile a filter, to
filter a capture file's records, and for ``capture -w`` on one interface (:class:`PcapLive`).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
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
    "PcapLive",
    "PcapLiveError",
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

# name -> libc function taking and returning C ints (errno kept for get_errno)
_CALLS: dict[str, Callable[..., int]] = {}
_GET_ERRNO: list[Callable[[], int]] = []
_LIBPCAP: list[Any] = []


def _libc_call(name: str) -> Callable[..., int]:
    """libc's ``int name(int...)``, errno-preserving, loaded once."""
    call = _CALLS.get(name)
    if call is not None:
        return call
    try:
        call = _raw_call(name)
    except (ImportError, OSError, AttributeError, TypeError):
        call = _ctypes_call(name)
    _CALLS[name] = call
    return call


def _raw_call(name: str) -> Callable[..., int]:
    """Through ``_ctypes`` directly: what ``ctypes.CDLL(...)[name]`` builds, minus ctypes."""
    import _ctypes

    class _CInt(_ctypes._SimpleCData):  # type: ignore[type-arg]
        _type_ = "i"  # ctypes.c_int: results come back as Python ints

    class _Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = _CInt

    class _Library:
        _handle = _ctypes.dlopen("libc.so.6", os.RTLD_NOW | os.RTLD_LOCAL)

    library: Any = _Library()
    function: Any = _Function((name, library))
    function.argtypes = None  # plain Python ints are passed as C ints
    if not _GET_ERRNO:
        _GET_ERRNO.append(_ctypes.get_errno)

    def call(*args: int) -> int:
        result: int = function(*args)
        return result

    return call


def _ctypes_call(name: str) -> Callable[..., int]:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        libc = ctypes.CDLL(find_library("c"), use_errno=True)
    function = libc[name]
    function.restype = ctypes.c_int
    if not _GET_ERRNO:
        _GET_ERRNO.append(ctypes.get_errno)

    def call(*args: int) -> int:
        result: int = function(*args)
        return result

    return call


def _check(rc: int) -> None:
    if rc != 0:
        errno = _GET_ERRNO[0]()
        raise OSError(errno, os.strerror(errno))


def default_signals(*signums: int) -> None:
    """Reset ``signums`` to SIG_DFL, just before exec or self-kill.

    Python ignores SIGPIPE and SIGXFSZ; an exec'd program would inherit the ignore. ``_signal``
    (built in, imported by every interpreter) rather than ``signal``, whose enums cost ~2 ms.
    """
    _signal: Any = __import__("_signal")
    for signum in signums:
        try:
            _signal.signal(signum, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL/SIGSTOP cannot be changed (and are always SIG_DFL)


def setns(fd: int, nstype: int) -> None:
    """Reassociate the calling thread with the namespace ``fd`` refers to; OSError on failure."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, nstype)
        return
    _check(_libc_call("setns")(fd, nstype))


def unshare(flags: int) -> None:
    """Move the calling thread (or process) into new namespaces; OSError on failure."""
    native = getattr(os, "unshare", None)
    if native is not None:
        native(flags)
        return
    _check(_libc_call("unshare")(flags))


# --- libpcap: compile a filter expression to classic BPF exactly as tcpdump does -------------

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


_TYPES: list[Any] = []


def _bpf_types() -> Any:
    """(ctypes, struct bpf_insn, struct bpf_program, struct sock_fprog), built on first use."""
    if not _TYPES:
        import ctypes

        class BpfInsn(ctypes.Structure):
            _fields_ = [
                ("code", ctypes.c_ushort),
                ("jt", ctypes.c_ubyte),
                ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32),
            ]

        class BpfProgram(ctypes.Structure):
            _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(BpfInsn))]

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(BpfInsn))]

        _TYPES.extend((ctypes, BpfInsn, BpfProgram, SockFprog))
    return _TYPES


class PcapCompileError(Exception):
    """libpcap rejected the filter expression (message from pcap_geterr)."""


def _libpcap() -> Any:
    if _LIBPCAP:
        return _LIBPCAP[0]
    ctypes, _insn, bpf_program, _fprog = _bpf_types()

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
            ctypes.POINTER(bpf_program),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = [ctypes.POINTER(bpf_program)]
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
    ctypes, _insn, bpf_program, _fprog = _bpf_types()
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise OSError("pcap_open_dead failed")
    try:
        program = bpf_program()
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
    ctypes, bpf_insn, _program, sock_fprog_type = _bpf_types()
    insns = (bpf_insn * len(program))(*[bpf_insn(c, jt, jf, k) for c, jt, jf, k in program])
    fprog = sock_fprog_type(len(program), ctypes.cast(insns, ctypes.POINTER(bpf_insn)))
    return bytes(fprog), insns


def offline_filter(program: list[tuple[int, int, int, int]]) -> Callable[[bytes, int], bool]:
    """libpcap's ``bpf_filter`` over a compiled program: does a packet (bytes, wire length) match?

    What ``tcpdump -r FILE EXPRESSION`` runs on each record (the same interpreter the kernel's
    classic BPF follows). An empty program matches everything.
    """
    if not program:
        return lambda data, wirelen: True
    lib = _libpcap()
    ctypes, bpf_insn, _program, _fprog = _bpf_types()
    run = lib.bpf_filter
    run.restype = ctypes.c_uint
    run.argtypes = [ctypes.POINTER(bpf_insn), ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    insns = (bpf_insn * len(program))(*[bpf_insn(c, jt, jf, k) for c, jt, jf, k in program])
    first = ctypes.cast(insns, ctypes.POINTER(bpf_insn))

    def matches(data: bytes, wirelen: int) -> bool:
        return bool(run(first, data, wirelen, len(data)))

    matches.insns = insns  # type: ignore[attr-defined]  # keep the array alive with the closure
    return matches


# --- libpcap live capture to a pcap stream (the ``-w`` path, as tcpdump -w runs it) ----------


class PcapLiveError(Exception):
    """libpcap could not open or run the live capture (its message)."""


_LIVE_READY: list[bool] = []


def _live_prototypes(lib: Any) -> None:
    """argtypes/restype of the live-capture functions, set once."""
    if _LIVE_READY:
        return
    ctypes, _insn, bpf_program, _fprog = _bpf_types()
    p, i, vp = ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
    lib.pcap_create.restype = p
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    for name in ("pcap_set_snaplen", "pcap_set_buffer_size", "pcap_set_timeout"):
        getattr(lib, name).restype = i
        getattr(lib, name).argtypes = [p, i]
    for name in ("pcap_activate", "pcap_datalink", "pcap_get_selectable_fd"):
        getattr(lib, name).restype = i
        getattr(lib, name).argtypes = [p]
    lib.pcap_set_datalink.restype = i
    lib.pcap_set_datalink.argtypes = [p, i]
    lib.pcap_setnonblock.restype = i
    lib.pcap_setnonblock.argtypes = [p, i, ctypes.c_char_p]
    lib.pcap_setfilter.restype = i
    lib.pcap_setfilter.argtypes = [p, ctypes.POINTER(bpf_program)]
    lib.pcap_statustostr.restype = ctypes.c_char_p
    lib.pcap_statustostr.argtypes = [i]
    lib.pcap_dump_fopen.restype = vp
    lib.pcap_dump_fopen.argtypes = [p, vp]
    lib.pcap_dispatch.restype = i
    lib.pcap_dispatch.argtypes = [p, i, vp, vp]
    lib.pcap_dump_flush.restype = i
    lib.pcap_dump_flush.argtypes = [vp]
    lib.pcap_dump_close.restype = None
    lib.pcap_dump_close.argtypes = [vp]
    lib.pcap_stats.restype = i
    lib.pcap_stats.argtypes = [p, ctypes.c_void_p]
    _LIVE_READY.append(True)


class PcapLive:
    """A libpcap live capture on one interface of the current thread's network namespace whose
    packets go straight from libpcap's ring into a pcap stream (``pcap_dump`` called by
    ``pcap_dispatch``, in C: no Python per packet, exactly tcpdump -w's path)."""

    def __init__(
        self,
        interface: str,
        snaplen: int,
        buffer_bytes: int,
        timeout_ms: int,
        program: list[tuple[int, int, int, int]],
        datalink: int | None = None,
    ) -> None:
        lib = _libpcap()
        _live_prototypes(lib)
        ctypes, bpf_insn, bpf_program, _fprog = _bpf_types()
        self._lib = lib
        self._dumper: int | None = None
        errbuf = ctypes.create_string_buffer(512)
        handle = lib.pcap_create(interface.encode(), errbuf)
        if not handle:
            raise PcapLiveError(errbuf.value.decode(errors="replace"))
        self.handle: int | None = handle
        try:
            lib.pcap_set_snaplen(handle, snaplen)
            lib.pcap_set_buffer_size(handle, buffer_bytes)
            lib.pcap_set_timeout(handle, timeout_ms)
            status = lib.pcap_activate(handle)
            if status < 0:
                detail = lib.pcap_geterr(handle).decode(errors="replace")
                text = lib.pcap_statustostr(status).decode(errors="replace")
                raise PcapLiveError(f"{interface}: {detail or text}")
            if datalink is not None and lib.pcap_set_datalink(handle, datalink) < 0:
                raise PcapLiveError(lib.pcap_geterr(handle).decode(errors="replace"))
            self.linktype = lib.pcap_datalink(handle)
            if lib.pcap_setnonblock(handle, 1, errbuf) < 0:
                raise PcapLiveError(errbuf.value.decode(errors="replace"))
            if program:
                insns = (bpf_insn * len(program))(*[bpf_insn(*ins) for ins in program])
                prog = bpf_program(len(program), ctypes.cast(insns, ctypes.POINTER(bpf_insn)))
                if lib.pcap_setfilter(handle, ctypes.byref(prog)) < 0:
                    raise PcapLiveError(lib.pcap_geterr(handle).decode(errors="replace"))
            self.fd = lib.pcap_get_selectable_fd(handle)
        except BaseException:
            self.close()
            raise
        self._dump = ctypes.cast(lib.pcap_dump, ctypes.c_void_p)

    def start_dump(self, fd: int) -> None:
        """Write the pcap file header to ``fd`` (dup'ed: the caller keeps its own)."""
        ctypes = _bpf_types()[0]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fdopen.restype = ctypes.c_void_p
        libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
        copy = os.dup(fd)
        stream = libc.fdopen(copy, b"wb")
        if not stream:
            os.close(copy)
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        dumper = self._lib.pcap_dump_fopen(self.handle, stream)
        if not dumper:
            raise PcapLiveError(self._lib.pcap_geterr(self.handle).decode(errors="replace"))
        self._dumper = dumper
        self.flush()

    def dispatch(self, limit: int) -> int:
        """Dump what the ring holds (at most ``limit`` packets, -1: all); how many packets."""
        n = self._lib.pcap_dispatch(self.handle, limit, self._dump, self._dumper)
        if n < 0:
            raise PcapLiveError(self._lib.pcap_geterr(self.handle).decode(errors="replace"))
        return int(n)

    def flush(self) -> None:
        """Push the dumped records out of stdio's buffer (one write)."""
        if self._dumper is not None and self._lib.pcap_dump_flush(self._dumper) != 0:
            ctypes = _bpf_types()[0]
            raise OSError(ctypes.get_errno() or 5, "cannot write the pcap stream")

    def end_dump(self) -> None:
        """Flush and close the dump stream (the caller's descriptor stays open)."""
        if self._dumper is not None:
            dumper, self._dumper = self._dumper, None
            flushed = self._lib.pcap_dump_flush(dumper)
            self._lib.pcap_dump_close(dumper)
            if flushed != 0:
                raise OSError(5, "cannot write the pcap stream")

    def stats(self) -> tuple[int, int]:
        """libpcap's (received by filter, dropped by kernel), as tcpdump reports them."""
        ctypes = _bpf_types()[0]
        counts = (ctypes.c_uint * 4)()
        if self.handle is None or self._lib.pcap_stats(self.handle, counts) < 0:
            return 0, 0
        return int(counts[0]), int(counts[1])

    def close(self) -> None:
        """Flush and close the dump stream, then the capture."""
        if self._dumper is not None:
            dumper, self._dumper = self._dumper, None
            self._lib.pcap_dump_flush(dumper)
            self._lib.pcap_dump_close(dumper)
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self._lib.pcap_close(handle)
