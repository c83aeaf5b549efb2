"""Exec a command with ``socket(AF_VSOCK, ...)`` failing (EAFNOSUPPORT), via a seccomp filter.

adbd listens on every TCP interface *and* on AF_VSOCK with no option to turn either off. The tests run it in a
private network namespace (TCP is then private) and through this wrapper, so its vsock listener is never created.
The filter is installed with prctl before exec and is inherited by unshare and adbd. Pure Python (ctypes), so no
compiler or libseccomp headers are needed. x86_64 and aarch64 syscall numbers; other architectures are refused.

Usage: python no_vsock_exec.py COMMAND [ARG ...]
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

AF_VSOCK = 40
EAFNOSUPPORT = 97
# (AUDIT_ARCH value, __NR_socket) per machine.
ARCHES = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}

BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
# struct seccomp_data offsets: nr at 0, arch at 4, args[0] at 16 (low 32 bits on little-endian).
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16


def _stmt(code: int, k: int) -> bytes:
    return struct.pack("HBBI", code, 0, 0, k)


def _jump(k: int, jump_true: int, jump_false: int) -> bytes:
    return struct.pack("HBBI", BPF_JEQ_K, jump_true, jump_false, k)


def install_no_vsock_filter() -> None:
    machine = platform.machine()
    if machine not in ARCHES:
        raise SystemExit(f"no_vsock_exec: unsupported architecture {machine}")
    audit_arch, nr_socket = ARCHES[machine]
    program = b"".join([
        _stmt(BPF_LD_W_ABS, OFF_ARCH),
        _jump(audit_arch, 1, 0),
        _stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),  # a foreign-ABI syscall: refuse rather than guess numbers
        _stmt(BPF_LD_W_ABS, OFF_NR),
        _jump(nr_socket, 0, 3),
        _stmt(BPF_LD_W_ABS, OFF_ARG0),
        _jump(AF_VSOCK, 0, 1),
        _stmt(BPF_RET_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
        _stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ])

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program)
    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SystemExit(f"no_vsock_exec: PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise SystemExit(f"no_vsock_exec: seccomp filter refused: {os.strerror(ctypes.get_errno())}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    install_no_vsock_filter()
    os.execvp(sys.argv[1], sys.argv[1:])
