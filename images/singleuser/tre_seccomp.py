"""Run a command under one more seccomp filter: no process of the workspace may trace another.

Docker's default profile allows ptrace, and the workspace's processes all run as the researcher,
so without this their code could attach to the Jupyter server (or to pid 1) and rewrite it, for
instance to switch the download locks off. Seccomp filters stack and are inherited: installed
here, just before the server starts, the filter covers the server, its kernels and terminals.
Debuggers that need ptrace (gdb, py-spy) do not work in workspaces; that is the price.

    python3 -m tre_seccomp COMMAND [ARGS...]
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

# Linux's classic BPF and seccomp constants (linux/filter.h, linux/seccomp.h, linux/audit.h)
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x45, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
X32_SYSCALL_BIT = 0x40000000

# architecture: (audit arch, {syscall: number})
DENIED = {
    "x86_64": (0xC000003E, {"ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311}),
    "aarch64": (0xC00000B7, {"ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271}),
}


class SockFilterProgram(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def program(audit_arch: int, numbers: list[int]) -> bytes:
    """BPF: other ABIs (i386, x32) refused, the listed syscalls refused with EPERM, the rest allowed."""
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    n = len(numbers)
    ops = [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 1, 0, audit_arch),  # our ABI: go on; else fall to the deny below
        (BPF_RET_K, 0, 0, deny),
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (BPF_JSET_K, n + 1, 0, X32_SYSCALL_BIT),  # x32 numbers: deny
    ]
    ops += [(BPF_JEQ_K, n - i, 0, number) for i, number in enumerate(numbers)]  # jump to the deny
    ops += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, deny)]
    return b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in ops)


def install() -> None:
    machine = platform.machine()
    if machine not in DENIED:
        raise SystemExit(f"tre_seccomp: no syscall table for {machine}; refusing to start unprotected")
    audit_arch, numbers = DENIED[machine]
    code = program(audit_arch, list(numbers.values()))
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = SockFilterProgram(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise SystemExit(f"tre_seccomp: the filter could not be installed ({os.strerror(ctypes.get_errno())})")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    install()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
