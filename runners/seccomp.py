"""The seccomp filter of experiment runs: a classic-BPF program that bubblewrap loads
(``bwrap --seccomp FD``) just before it starts the child.

It allows every system call except a deny list of calls experiments never need (kernel
modules, mounts and namespaces, tracing, BPF, io_uring, keyrings, clocks, ...), which
fail with EPERM. A system call of a foreign architecture (e.g. i386 via ``int 0x80`` on
x86_64) kills the process; on x86_64 the x32 ABI is refused (EPERM). Architectures
without a table here get no filter (logged once).
"""

from __future__ import annotations

import logging
import platform
import struct
import sys
from dataclasses import dataclass
from functools import cache

__all__ = ["DENIED", "build_filter", "filter_for_this_machine", "machine_arch"]

log = logging.getLogger(__name__)

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000
EPERM = 1

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# Classic BPF opcodes (linux/filter.h) and offsets into struct seccomp_data.
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
OFFSET_NR = 0
OFFSET_ARCH = 4
SOCK_FILTER = struct.Struct("<HBBI")  # struct sock_filter: code, jt, jf, k
MAX_JUMP = 255  # jt and jf are u8

# name: (x86_64 number from asm/unistd_64.h, aarch64 number from asm-generic/unistd.h);
# None: the call does not exist there.
DENIED: dict[str, tuple[int | None, int | None]] = {
    "ptrace": (101, 117),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "unshare": (272, 97),
    "setns": (308, 268),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "acct": (163, 89),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "quotactl": (179, 60),
    "syslog": (103, 116),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "vhangup": (153, 58),
    "lookup_dcookie": (212, 18),
    "iopl": (172, None),
    "ioperm": (173, None),
    "uselib": (134, None),
    "create_module": (174, None),
    "get_kernel_syms": (177, None),
    "query_module": (178, None),
    "nfsservctl": (180, None),
    "_sysctl": (156, None),
}


@dataclass(frozen=True)
class Arch:
    audit: int  # AUDIT_ARCH_* as seen in seccomp_data.arch
    column: int  # index into the DENIED tuples
    refuse_x32: bool


ARCHES: dict[str, Arch] = {
    "x86_64": Arch(AUDIT_ARCH_X86_64, 0, refuse_x32=True),
    "aarch64": Arch(AUDIT_ARCH_AARCH64, 1, refuse_x32=False),
}


def denied_numbers(arch: str) -> list[int]:
    """The denied system call numbers on ``arch``, in table order."""
    column = ARCHES[arch].column
    return [nr for nrs in DENIED.values() if (nr := nrs[column]) is not None]


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    if not (0 <= jt <= MAX_JUMP and 0 <= jf <= MAX_JUMP):
        raise ValueError(f"a BPF jump of {max(jt, jf)} does not fit in a u8")
    return SOCK_FILTER.pack(code, jt, jf, k)


def build_filter(arch: str) -> bytes:
    """The compiled filter for ``arch`` ("x86_64" or "aarch64"): struct sock_filter
    records, as ``bwrap --seccomp`` reads them. Raises KeyError for another arch."""
    spec = ARCHES[arch]
    numbers = denied_numbers(arch)
    # 0 load arch, 1 foreign arch -> KILL, 2 load nr, then one check per refused number
    # (x32 first), then the three returns.
    allow_at = 3 + int(spec.refuse_x32) + len(numbers)
    errno_at, kill_at = allow_at + 1, allow_at + 2

    def to(target: int, here: int) -> int:  # a jump's offset counts from the next insn
        return target - here - 1

    program = [
        _insn(BPF_LD_W_ABS, OFFSET_ARCH),
        _insn(BPF_JEQ_K, spec.audit, jf=to(kill_at, 1)),
        _insn(BPF_LD_W_ABS, OFFSET_NR),
    ]
    if spec.refuse_x32:
        program.append(_insn(BPF_JGE_K, X32_SYSCALL_BIT, jt=to(errno_at, len(program))))
    for nr in numbers:
        program.append(_insn(BPF_JEQ_K, nr, jt=to(errno_at, len(program))))
    program += [
        _insn(BPF_RET_K, SECCOMP_RET_ALLOW),
        _insn(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM),
        _insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    ]
    assert len(program) == kill_at + 1
    return b"".join(program)


def machine_arch() -> str | None:
    """This interpreter's system call architecture if it has a table here, else None."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    # A 32-bit interpreter on a 64-bit kernel makes 32-bit system calls.
    if machine not in ARCHES or sys.maxsize <= 2**32:
        return None
    return machine


@cache
def filter_for_this_machine() -> bytes | None:
    """The filter for this machine, or None (logged once) when its architecture has no
    table here."""
    arch = machine_arch()
    if arch is None:
        log.warning(
            "runner sandbox: no seccomp filter for architecture %s; runs get none",
            platform.machine() or "unknown",
        )
        return None
    return build_filter(arch)
