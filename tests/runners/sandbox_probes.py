"""A fake experiment for the sandbox tests: ``mode`` picks a behaviour.

Shaped like a registered experiment (``Params`` + ``run(params, seed) -> Result``) so the
child treats it exactly like one. Runs inside the sandbox; reports what it could do
through ordinary metrics (booleans) and the English finding.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from runners.result import Result, figure_png

NAME = "sandbox_probes"
TITLE = {"en": "Sandbox probe", "ja": "サンドボックス検査"}
CLAIM = {"en": "The sandbox behaves.", "ja": "サンドボックスは正しく動く。"}
TIME_BUDGET_S = 5.0
MIB = 1024 * 1024

Mode = Literal[
    "ok",
    "inspect",
    "spin",
    "spin_ignoring_sigxcpu",
    "grandchild",
    "alloc",
    "alloc_torch",
    "big_file",
    "raise",
    "bad_png",
    "nan",
    "bad_finding",
    "not_result",
    "symlink_result",
    "no_result",
    "fill_disk",
    "fill_disk_and_wait",
    "sparse_files",
    "many_files",
    "unlinked_files",
    "fork_many",
    "seccomp",
]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode = "ok"
    n_figures: int = Field(1, ge=0, le=20)
    size_mb: int = Field(1, ge=0, le=65536)
    port: int = Field(0, ge=0, le=65535)
    write_paths: list[str] = Field(default_factory=list, max_length=10)
    read_paths: list[str] = Field(default_factory=list, max_length=10)
    marker: str = Field("", max_length=64)
    count: int = Field(0, ge=0, le=20_000)  # files to write, processes to fork


def _ok(params: Params, seed: int) -> Result:
    import matplotlib.pyplot as plt
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1000, generator=gen)
    mean, std = x.mean().item(), x.std().item()
    figures = []
    for i in range(params.n_figures):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.hist(x.numpy(), bins=20)
        ax.set_title(f"probe {i}")
        figures.append(figure_png(fig))
    return Result(
        metrics={"mean": mean, "std": std, "n": 1000, "small_mean": abs(mean) < 0.2},
        series={"first": x[:10].tolist()},
        figures=figures,
        finding={"en": f"The sample mean is {mean:.3f}.", "ja": f"標本平均は {mean:.3f}。"},
        supports_claim=abs(mean) < 0.2,
    )


def _try_write(path: str) -> bool:
    try:
        with open(path, "w") as fh:
            fh.write("probe")
        return True
    except OSError:
        return False


def _try_read(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False


def _try_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _inspect(params: Params) -> Result:
    metrics: dict[str, int | float | bool] = {
        f"write_{i}": _try_write(p) for i, p in enumerate(params.write_paths)
    }
    metrics |= {f"read_{i}": _try_read(p) for i, p in enumerate(params.read_paths)}
    metrics["local_connect"] = _try_connect("127.0.0.1", params.port)
    metrics["remote_connect"] = _try_connect("1.1.1.1", 53)
    metrics["uid"] = os.getuid()
    return Result(
        metrics=metrics,
        figures=[],
        # The environment's variable names, so the test can check nothing leaked.
        finding={"en": ",".join(sorted(os.environ)), "ja": os.getcwd()},
        supports_claim=True,
    )


def _forever() -> None:
    while True:
        time.sleep(1)


def _write_files(count: int, size_mb: int) -> list[str]:
    """``count`` files of ``size_mb`` MB each, every one under the per-file limit."""
    names = [f"fill-{i}.bin" for i in range(count)]
    for name in names:
        with open(name, "wb") as fh:
            for _ in range(size_mb):
                fh.write(b"\1" * MIB)
    return names


def _sparse_files(count: int, size_mb: int) -> None:
    for i in range(count):
        with open(f"sparse-{i}.bin", "wb") as fh:
            fh.truncate(size_mb * MIB)


def _unlinked_files(count: int, size_mb: int) -> None:
    """Files that take space but have no name left: only their open descriptors."""
    kept = []
    for i in range(count):
        fh = open(f"gone-{i}.bin", "wb")  # noqa: SIM115 (kept open on purpose)
        os.unlink(fh.name)
        for _ in range(size_mb):
            fh.write(b"\1" * MIB)
        fh.flush()
        kept.append(fh)
    _forever()


def _tasks_of_my_uid() -> int:
    count = 0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines())
        if int(fields["Uid"].split()[0]) == os.getuid():
            count += int(fields["Threads"])
    return count


def _fork_many(count: int) -> Result:
    """Try ``count`` sleeping child processes; report how many started, the process
    limit, and how many tasks this user had before."""
    tasks = _tasks_of_my_uid()
    forked = 0
    for _ in range(count):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)  # the sandbox kills them when the run ends
            os._exit(0)
        forked += 1
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    return Result(
        metrics={"forked": forked, "nproc_limit": soft, "tasks": tasks, "uid": os.getuid()},
        figures=[],
        finding={"en": f"{forked} processes started.", "ja": f"{forked} 個のプロセス。"},
        supports_claim=True,
    )


def _errno_of(*args: int) -> int:
    """errno of the raw system call ``args`` (0 when it succeeded)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ctypes.set_errno(0)
    return 0 if libc.syscall(*(ctypes.c_long(a) for a in args)) >= 0 else ctypes.get_errno()


# x86_64 and aarch64 numbers of the calls the seccomp probe makes.
_NR = {
    "x86_64": {"unshare": 272, "setns": 308, "ptrace": 101, "getpid": 39},
    "aarch64": {"unshare": 97, "setns": 268, "ptrace": 117, "getpid": 172},
}


def _seccomp(params: Params, seed: int) -> Result:
    """Denied calls whose arguments make them harmless no-ops or plain errors when
    allowed: unshare(0) succeeds, setns(-1, 0) is EBADF, PTRACE_PEEKDATA of pid 0 ESRCH.
    Under the filter each is EPERM. Then the usual work, figures included."""
    nr = _NR[platform.machine()]
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    metrics: dict[str, int | float | bool] = {
        "seccomp_mode": int(status["Seccomp"]),
        "unshare_errno": _errno_of(nr["unshare"], 0),
        "setns_errno": _errno_of(nr["setns"], -1, 0),
        "ptrace_errno": _errno_of(nr["ptrace"], 2, 0, 0, 0),  # PTRACE_PEEKDATA, pid 0
        "getpid_errno": _errno_of(nr["getpid"]),
        "eperm": errno.EPERM,
    }
    if platform.machine() == "x86_64":
        metrics["x32_errno"] = _errno_of(0x40000000 | nr["getpid"])
    result = _ok(params, seed)
    result.metrics |= metrics
    return result


def run(params: Params, seed: int) -> Result | dict[str, object]:
    mode = params.mode
    if mode == "ok":
        return _ok(params, seed)
    if mode == "inspect":
        return _inspect(params)
    if mode == "spin_ignoring_sigxcpu":
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        mode = "spin"
    if mode == "spin":
        while True:
            pass
    if mode == "grandchild":
        # A grandchild that tries to escape: own session, so not in our process group.
        code = "import time\nwhile True: time.sleep(1)"
        subprocess.Popen([sys.executable, "-c", code, params.marker], start_new_session=True)
        _forever()
    if mode == "alloc":
        block = bytearray(b"\x01") * (params.size_mb * MIB)
        return _ok(params, len(block))
    if mode == "alloc_torch":
        import torch

        block = torch.ones(params.size_mb * MIB // 4)
        return _ok(params, int(block[0].item()))
    if mode == "big_file":
        with open("big.bin", "wb") as fh:
            for _ in range(params.size_mb):
                fh.write(b"\0" * MIB)
        return _ok(params, seed)
    if mode == "raise":
        raise ValueError("probe failure 42")
    if mode in ("fill_disk", "fill_disk_and_wait"):
        _write_files(params.count, params.size_mb)
        if mode == "fill_disk_and_wait":
            _forever()
        return _ok(params, seed)
    if mode == "sparse_files":
        _sparse_files(params.count, params.size_mb)
        return _ok(params, seed)
    if mode == "many_files":
        for i in range(params.count):
            open(f"empty-{i}", "wb").close()
        _forever()
    if mode == "unlinked_files":
        _unlinked_files(params.count, params.size_mb)
    if mode == "fork_many":
        return _fork_many(params.count)
    if mode == "seccomp":
        return _seccomp(params, seed)
    result = _ok(params, seed)
    if mode == "bad_png":
        result.figures = [b"GIF89a not a png at all"]
    elif mode == "nan":
        result.metrics["mean"] = float("nan")
    elif mode == "bad_finding":
        result.finding = {"en": "only English"}
    elif mode == "not_result":
        return {"metrics": result.metrics}
    elif mode == "symlink_result":
        os.symlink("/etc/passwd", "result.json")
        os._exit(0)
    elif mode == "no_result":
        os._exit(0)
    return result
