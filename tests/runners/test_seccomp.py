"""The seccomp filter's program, run by a small classic-BPF interpreter (no kernel needed);
the kernel applying it is tested in test_sandbox.py."""

from __future__ import annotations

import logging
import re
import struct
from pathlib import Path

import pytest

from runners import seccomp
from runners.seccomp import (
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_X86_64,
    DENIED,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    build_filter,
)

EPERM = SECCOMP_RET_ERRNO | 1
AUDIT = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}
# Calls every Python run makes: read, write, openat, close, mmap, clone, execve, futex,
# exit_group (x86_64; aarch64).
EVERYDAY = {
    "x86_64": [0, 1, 257, 3, 9, 56, 59, 202, 231],
    "aarch64": [63, 64, 56, 57, 222, 220, 221, 98, 94],
}
HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


def run_bpf(program: bytes, nr: int, arch: int) -> int:
    """What the kernel would return for a call ``nr`` of ``arch`` (only the opcodes the
    filter uses are implemented; anything else fails the test)."""
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    data = struct.pack("<iI", nr, arch) + bytes(56)  # struct seccomp_data
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x15:  # jeq #k
            pc += jt if acc == k else jf
        elif code == 0x35:  # jge #k
            pc += jt if acc >= k else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_denied_calls_get_eperm_and_the_rest_is_allowed(arch: str) -> None:
    program = build_filter(arch)
    assert len(program) % 8 == 0 and len(program) // 8 < 4096
    column = 0 if arch == "x86_64" else 1
    denied = {name: nrs[column] for name, nrs in DENIED.items() if nrs[column] is not None}
    for name, nr in denied.items():
        assert run_bpf(program, nr, AUDIT[arch]) == EPERM, name
    for nr in EVERYDAY[arch]:
        assert nr not in denied.values()
        assert run_bpf(program, nr, AUDIT[arch]) == SECCOMP_RET_ALLOW, nr


def test_x86_64_refuses_the_x32_abi_and_other_architectures() -> None:
    program = build_filter("x86_64")
    assert run_bpf(program, 0x40000000 | 39, AUDIT_ARCH_X86_64) == EPERM  # x32 getpid
    assert run_bpf(program, 39, 0x40000003) == SECCOMP_RET_KILL_PROCESS  # i386 (int 0x80)
    assert run_bpf(build_filter("aarch64"), 172, AUDIT_ARCH_X86_64) == SECCOMP_RET_KILL_PROCESS


def test_every_jump_fits_and_lands_inside_the_program() -> None:
    for arch in seccomp.ARCHES:
        program = build_filter(arch)
        count = len(program) // 8
        for i in range(count):
            code, jt, jf, _ = struct.unpack_from("<HBBI", program, 8 * i)
            if code in (0x15, 0x35):
                assert i + 1 + max(jt, jf) < count


def test_the_deny_list_is_the_agreed_one() -> None:
    both = (
        "ptrace mount umount2 pivot_root chroot swapon swapoff reboot kexec_load "
        "kexec_file_load init_module finit_module delete_module bpf perf_event_open "
        "userfaultfd keyctl add_key request_key unshare setns process_vm_readv "
        "process_vm_writev open_by_handle_at name_to_handle_at io_uring_setup io_uring_enter "
        "io_uring_register open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr "
        "acct settimeofday clock_settime quotactl syslog sethostname setdomainname vhangup "
        "lookup_dcookie"
    ).split()
    x86_only = "iopl ioperm uselib create_module get_kernel_syms query_module nfsservctl _sysctl"
    assert set(DENIED) == set(both) | set(x86_only.split())
    assert all(DENIED[n][1] is not None for n in both)
    assert all(DENIED[n][1] is None for n in x86_only.split())


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_numbers_match_the_kernel_headers(arch: str) -> None:
    header = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} is not installed")
    text = header.read_text()
    numbers = {
        name: int(nr) for name, nr in re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", text)
    }
    column = 0 if arch == "x86_64" else 1
    for name, nrs in DENIED.items():
        if nrs[column] is not None:
            assert numbers[name] == nrs[column], name


def test_other_architectures_get_no_filter_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(seccomp.platform, "machine", lambda: "riscv64")
    seccomp.filter_for_this_machine.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="runners.seccomp"):
            assert seccomp.filter_for_this_machine() is None
            assert seccomp.filter_for_this_machine() is None
    finally:
        seccomp.filter_for_this_machine.cache_clear()
    assert caplog.text.count("no seccomp filter for architecture riscv64") == 1
