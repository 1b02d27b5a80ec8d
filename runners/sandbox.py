"""Run one registered experiment in a sandboxed child process.

``execute(module, params, seed, limits)`` starts ``python -m runners.child`` in a fresh
private directory, under rlimits (CPU time, memory, file size, open files, processes), a
disk quota on that directory and a wall-clock deadline, with a scrubbed environment, and -
when bubblewrap works - in its own user, mount, pid, network, IPC and UTS namespaces with
a read-only view of only what Python needs and a seccomp filter (``runners.seccomp``).
It then validates what the child left behind and returns an ``Outcome``. ``module`` is
trusted (the worker takes it from ``runners.registry.EXPERIMENTS``); ``params`` come from
users and are validated by the child against ``module.Params``.

Isolation levels (``sandbox_info()["isolation"]``):

- ``"bubblewrap"``: namespaces as above, no network (a fresh network namespace),
  nothing writable but the private directory and small tmpfs mounts, no capabilities,
  system calls experiments never need refused with EPERM.
- ``"rlimits-only"``: ``bwrap`` is missing or cannot create namespaces here; the run
  still gets rlimits, a private directory, a scrubbed environment and process-tree
  cleanup, but can reach the network and the file system the worker can.
  ``execute(..., isolation="bubblewrap")`` refuses to run like that.

The disk quota is sampled with CPU and memory: between samples a run can write past it,
by at most what the disk takes in ``SAMPLE_EVERY_S`` (each file stays under the per-file
limit). ``remove_stale_dirs`` removes the directories of runs whose worker was killed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runners import seccomp
from runners.child import descendants, peak_rss_kb, proc_stat
from runners.result import FIGURE_LANGS, Result

__all__ = [
    "Limits",
    "Outcome",
    "execute",
    "keep_warm_children",
    "remove_stale_dirs",
    "sandbox_info",
    "start_warm_child",
]

log = logging.getLogger(__name__)

Status = Literal["succeeded", "failed", "timed_out", "killed_memory"]
Isolation = Literal["bubblewrap", "rlimits-only"]
IsolationRequest = Literal["auto", "bubblewrap", "rlimits-only"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DIR = "/sandbox"  # where the private directory appears inside bubblewrap
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"
MIB = 1024 * 1024
# Rough cost of starting Python and importing torch in the child (see Limits.for_budget).
STARTUP_S = 10.0
# A request must fit in an empty pipe so writing it can never block on a stuck child.
MAX_REQUEST_BYTES = 60_000
MAX_ERROR_FILE_BYTES = 64_000
MAX_LOG_TAIL = 4000
SAMPLE_EVERY_S = 0.5  # how often the parent samples the child's CPU, RSS and disk use
# A run's directory with more entries than this, or nested deeper, is over its quota.
MAX_DISK_ENTRIES = 10_000
MAX_DISK_DEPTH = 32
# Directories in the temp dir that a run, the font-cache warm-up or the probe makes.
RUN_DIR_PREFIXES = ("ra-run-", "ra-warmup-", "ra-probe-")
MAX_METRICS = 200
MAX_SERIES = 50
MAX_KEY_CHARS = 100
MAX_FINDING_CHARS = 1000
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/fonts",
)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_CHILD_ERROR_CODES = {
    "invalid_request",
    "invalid_params",
    "experiment_error",
    "invalid_result",
    "memory_limit",
    "file_size_limit",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. ``wall_s`` and ``cpu_s`` include child start-up
    (~1-2 s: Python plus ``import torch``); ``memory_mb`` bounds private writable
    memory (RLIMIT_DATA), which tracks RSS closely for PyTorch code; ``file_size_mb``
    bounds each file, ``disk_mb`` all of the run's directory together."""

    wall_s: float = 120.0
    cpu_s: float = 120.0
    memory_mb: int = 2048
    file_size_mb: int = 16
    disk_mb: int = 64
    open_files: int = 256
    max_figures: int = 8
    max_figure_bytes: int = 2 * MIB
    max_result_bytes: int = 1 * MIB
    max_series_len: int = 10_000

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            number = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
            zero_ok = name == "max_figures"  # a run that may not draw is fine
            if not number or not (value > 0 or (zero_ok and value == 0)):
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")

    @classmethod
    def for_budget(cls, time_budget_s: float, **overrides: Any) -> Limits:
        """Limits for an experiment whose ``TIME_BUDGET_S`` is ``time_budget_s``."""
        seconds = 1.5 * time_budget_s + STARTUP_S
        return cls(**{"wall_s": seconds, "cpu_s": seconds, **overrides})


@dataclass
class Outcome:
    """How one run ended. ``result`` is set only when ``status == "succeeded"``.

    ``error_code`` is one of: invalid_request, invalid_params, experiment_error,
    invalid_result, memory_limit, file_size_limit, disk_limit, cpu_limit, wall_timeout,
    crashed, sandbox_error.
    """

    status: Status
    result: Result | None = None
    error: str | None = None
    error_code: str | None = None
    duration_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float | None = None  # None: unknown (killed before it reported)
    isolation: Isolation = "rlimits-only"
    exit_code: int | None = None  # negative: killed by that signal
    log_tail: str = field(default="", repr=False)  # end of the child's stdout/stderr
    warm_start: bool = False  # the child was started ahead of the run (``keep_warm_children``)


class _BwrapDidNotStart(Exception):
    """bubblewrap exited before starting the child (no namespaces here, bad option...)."""


class _InvalidResult(Exception):
    pass


# --- bubblewrap detection ------------------------------------------------------------


@dataclass
class _BwrapState:
    checked: bool = False
    path: str | None = None
    works: bool = False
    reason: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_bwrap = _BwrapState()


def _bwrap_usable() -> bool:
    """Whether bubblewrap can start a sandbox here; checked once per process by
    actually starting one (a bwrap binary is no proof that namespaces are allowed)."""
    state = _bwrap
    with state.lock:
        if state.checked:
            return state.works
        state.checked = True
        state.path = shutil.which("bwrap")
        if state.path is None:
            state.reason = "bwrap is not on PATH"
            log.warning("runner sandbox: %s; runs get rlimits only", state.reason)
            return False
        # The same command line as a run's, seccomp filter included, so that a broken
        # option or filter shows up here and not at the first run.
        with tempfile.TemporaryDirectory(prefix="ra-probe-") as tmp, _seccomp_fd(True) as sfd:
            argv = _bwrap_argv(Path(tmp), "runners", Limits(), status_fd=None, seccomp_fd=sfd)
            argv += ["--", sys.executable, "-P", "-s", "-c", "import runners.result"]
            try:
                probe = subprocess.run(
                    argv,
                    env=_child_env(SANDBOX_DIR),
                    capture_output=True,
                    timeout=30,
                    pass_fds=() if sfd is None else (sfd,),
                )
                ok, detail = probe.returncode == 0, probe.stderr.decode("utf-8", "replace")
            except (OSError, subprocess.TimeoutExpired) as exc:
                ok, detail = False, str(exc)
        state.works = ok
        if not ok:
            state.reason = f"bwrap failed to start a sandbox: {detail.strip()[:500]}"
            log.warning("runner sandbox: %s; runs get rlimits only", state.reason)
        return ok


def _mark_bwrap_broken(reason: str) -> None:
    with _bwrap.lock:
        _bwrap.works = False
        _bwrap.reason = reason
    log.warning("runner sandbox: %s; falling back to rlimits only", reason)


def sandbox_info() -> dict[str, Any]:
    """What isolation runs get here, for /healthz: ``{"isolation", "bwrap", "reason"}``."""
    works = _bwrap_usable()
    return {
        "isolation": "bubblewrap" if works else "rlimits-only",
        "bwrap": _bwrap.path,
        "reason": None if works else _bwrap.reason,
    }


# --- command line and environment -------------------------------------------------------


def _child_env(workdir: str) -> dict[str, str]:
    """The whole environment of the child: nothing is inherited from the worker."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "MPLCONFIGDIR": f"{workdir}/.matplotlib",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }


def _python_dirs() -> list[str]:
    """Directories the interpreter and its site-packages live in."""
    dirs = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        str(Path(os.path.realpath(sys.executable)).parent.parent),
    }
    keep: list[str] = []
    for d in sorted(os.path.realpath(d) for d in dirs):
        # /usr is bound anyway; a nested prefix is covered by its parent's bind.
        if d in ("/", "/usr") or d.startswith("/usr/"):
            continue
        if not any(d.startswith(k + "/") or d == k for k in keep):
            keep.append(d)
    return keep


def _bwrap_argv(
    work: Path, module: str, limits: Limits, status_fd: int | None, seccomp_fd: int | None = None
) -> list[str]:
    argv = [
        _bwrap.path or "bwrap",
        "--unshare-all",  # user, pid, net, ipc, uts, cgroup namespaces
        "--unshare-user",  # explicit, so --disable-userns is allowed
        "--disable-userns",  # no nested namespaces from inside
        "--cap-drop",
        "ALL",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into a controlling terminal
    ]
    # Only what Python needs is visible, read-only; the root itself is an empty tmpfs.
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for f in _ETC_FILES:
        argv += ["--ro-bind-try", f, f]
    tmpfs_bytes = str(limits.file_size_mb * MIB)
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        tmpfs_bytes,
        "--tmpfs",
        "/dev/shm",
        "--size",
        tmpfs_bytes,
        "--tmpfs",
        "/tmp",
    ]
    # The project directory gets its own tmpfs, made read-only below: under /tmp it would
    # otherwise be a writable directory of the private /tmp (harmless to the host, but
    # the experiment should see no writable place besides its own directory).
    argv += ["--size", "4096", "--tmpfs", str(PROJECT_ROOT)]
    # Bound after the tmpfs mounts, so a project or virtualenv under /tmp stays visible.
    for d in _python_dirs():
        argv += ["--ro-bind", d, d]
    # Of the project, only the runners package and the experiment's own top package:
    # no service/, knowledge/ or instance/ (database, secrets).
    for top in dict.fromkeys(["runners", module.split(".")[0]]):
        for candidate in (PROJECT_ROOT / top, PROJECT_ROOT / f"{top}.py"):
            if candidate.exists():
                argv += ["--ro-bind", str(candidate), str(candidate)]
    argv += [
        "--bind",
        str(work),
        SANDBOX_DIR,
        "--remount-ro",
        str(PROJECT_ROOT),
        "--remount-ro",
        "/",
        "--chdir",
        SANDBOX_DIR,
    ]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    if status_fd is not None:
        argv += ["--json-status-fd", str(status_fd)]
    return argv


@contextlib.contextmanager
def _seccomp_fd(enabled: bool) -> Iterator[int | None]:
    """The read end of a pipe holding the compiled seccomp filter, for ``bwrap --seccomp``
    (which reads it to the end); None when not ``enabled`` or there is no filter here."""
    program = seccomp.filter_for_this_machine() if enabled else None
    if program is None:
        yield None
        return
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, program)  # under 4 KiB: fits the pipe's buffer in one write
    finally:
        os.close(write_fd)
    try:
        yield read_fd
    finally:
        os.close(read_fd)


def _dies_with_worker(argv: list[str]) -> list[str]:
    """``argv`` under ``setpriv --pdeathsig KILL`` (util-linux) when it is installed: if
    the worker is killed, its run (bubblewrap's monitor, or the child itself) is killed
    too instead of running on as an orphan. (The signal follows the thread that started
    the run, which waits for it to end.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


# --- matplotlib font cache -----------------------------------------------------------------

_fontlist: dict[str, Any] = {"done": False, "name": None, "data": None}
_fontlist_lock = threading.Lock()


def _seed_font_cache(mpl_dir: Path, use_bwrap: bool) -> None:
    """Give each run a prebuilt matplotlib font list (saves ~0.4 s and a ``fc-list``).

    Built once per process by a child that runs only our code, never an experiment's,
    so one run cannot poison the cache of the next.
    """
    with _fontlist_lock:
        if not _fontlist["done"]:
            _fontlist["done"] = True
            try:
                _build_font_cache(use_bwrap)
            except Exception:  # an optimisation only; never fail a run because of it
                log.debug("runner sandbox: no matplotlib font cache", exc_info=True)
        name, data = _fontlist["name"], _fontlist["data"]
    if name and data:
        (mpl_dir / name).write_bytes(data)


def _build_font_cache(use_bwrap: bool) -> None:
    request = {"warmup": True, "limits": _child_limits(Limits(wall_s=60, cpu_s=60))}
    rundir = Path(tempfile.mkdtemp(prefix="ra-warmup-"))
    try:
        outcome, work = _spawn(
            "runners.child", json.dumps(request), Limits(wall_s=60, cpu_s=60), use_bwrap, rundir
        )
        if outcome.exit_code != 0:
            return
        for path in (work / ".matplotlib").glob("fontlist-*.json"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 4 * MIB:
                _fontlist["name"], _fontlist["data"] = path.name, path.read_bytes()
    finally:
        _rmtree(rundir)


# --- directories left behind ------------------------------------------------------------


def remove_stale_dirs(max_age_s: float) -> int:
    """Remove the run, warm-up and probe directories in the temp dir that this user owns
    and that were last modified over ``max_age_s`` ago: those of a worker that was killed.
    Symlinks are never followed (nor removed). Returns how many were removed."""
    tmp = tempfile.gettempdir()
    now, me = time.time(), os.geteuid()
    removed = 0
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(RUN_DIR_PREFIXES):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == me and now - st.st_mtime > max_age_s:
            path = Path(tmp, entry.name)
            _rmtree(path)
            removed += not os.path.lexists(path)
    return removed


# --- running -------------------------------------------------------------------------------


def _child_limits(limits: Limits) -> dict[str, Any]:
    return {
        "cpu_s": limits.cpu_s,
        "memory_mb": limits.memory_mb,
        "file_size_mb": limits.file_size_mb,
        "open_files": limits.open_files,
    }


def execute(
    module: str,
    params: dict[str, Any],
    seed: int,
    limits: Limits | None = None,
    *,
    isolation: IsolationRequest = "auto",
) -> Outcome:
    """Run ``module.run(Params(**params), seed)`` in a sandboxed child and return how it went.

    ``isolation="auto"`` uses bubblewrap when it works and otherwise rlimits only
    (logged); ``"bubblewrap"`` refuses to run without it; ``"rlimits-only"`` never uses it.
    Never raises for anything the child does; raises ``ValueError`` for a malformed
    ``module`` path (a programming error: it comes from the registry).
    """
    limits = limits or Limits()
    if not _MODULE_RE.fullmatch(module):
        raise ValueError(f"not a dotted module path: {module!r}")
    try:
        request = json.dumps(
            {
                "module": module,
                "params": params,
                "seed": seed,
                "limits": _child_limits(limits),
            },
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        return Outcome("failed", error=f"params are not JSON: {exc}", error_code="invalid_request")
    if len(request.encode()) > MAX_REQUEST_BYTES:
        return Outcome("failed", error="params are too large", error_code="invalid_request")

    use_bwrap = isolation != "rlimits-only" and _bwrap_usable()
    if isolation == "bubblewrap" and not use_bwrap:
        return Outcome(
            "failed",
            error=f"bubblewrap isolation is required but unavailable: {_bwrap.reason}",
            error_code="sandbox_error",
        )
    try:
        return _execute_once(module, request, limits, use_bwrap)
    except _BwrapDidNotStart as exc:
        _mark_bwrap_broken(f"bwrap did not start: {exc}")
        if isolation == "bubblewrap":
            return Outcome("failed", error=str(exc), error_code="sandbox_error")
        return _execute_once(module, request, limits, use_bwrap=False)


def _execute_once(module: str, request: str, limits: Limits, use_bwrap: bool) -> Outcome:
    started = _take_spare(module, limits, use_bwrap)
    if started is None:
        rundir = _new_rundir(use_bwrap)
        try:
            started = _start(module, limits, use_bwrap, rundir, preload=False)
        except OSError as exc:  # without bwrap (bwrap's own failure is raised above)
            _rmtree(rundir)
            return Outcome(
                "failed", error=f"cannot start the child: {exc}", error_code="sandbox_error"
            )
    try:
        outcome, work = _complete(started, request, limits)
        _finish(outcome, work, limits)
        return outcome
    finally:
        _rmtree(started.rundir)
        if _warm.enabled:
            _keep_spare(module, limits, use_bwrap)


def _new_rundir(use_bwrap: bool) -> Path:
    rundir = Path(tempfile.mkdtemp(prefix="ra-run-"))
    mpl_dir = rundir / "work" / ".matplotlib"
    mpl_dir.mkdir(parents=True)
    _seed_font_cache(mpl_dir, use_bwrap)
    return rundir


# --- a warm child ----------------------------------------------------------------------
#
# Starting the child costs 1.5-2.5 s, most of it ``import torch``. With warm children on
# (the worker turns them on), each thread that ran a run starts the child of its next run
# right away: a new process in a new sandbox and a new private directory, exactly as a
# cold start, which imports torch and matplotlib and then waits for its request. Nothing
# of one run reaches the next; only the start moves ahead. (A forked pre-imported parent
# would share one interpreter's state between runs, so it is not used.) The spare is
# per thread because ``setpriv --pdeathsig`` follows the thread that started it.


@dataclass
class _Started:
    """A child that was started and has not been given its request yet."""

    proc: subprocess.Popen[bytes]
    rundir: Path
    use_bwrap: bool
    status_r: int | None
    key: tuple[Any, ...] = ()
    warm: bool = False

    @property
    def work(self) -> Path:
        return self.rundir / "work"

    @property
    def log_path(self) -> Path:
        return self.rundir / "child.log"

    def discard(self) -> None:
        """End a child that will not get its request, and remove its directory."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.proc.wait(timeout=5)
        if self.status_r is not None:
            os.close(self.status_r)
        _rmtree(self.rundir)


class _Warm(threading.local):
    enabled = False  # class attributes: the switch is process-wide
    spare: _Started | None = None


_warm = _Warm()


def keep_warm_children(on: bool) -> None:
    """Start each thread's next child ahead of its next run (see above). Off by default;
    turning it off ends the calling thread's spare."""
    _Warm.enabled = on
    if not on and _warm.spare is not None:
        _warm.spare.discard()
        _warm.spare = None


def _spare_key(module: str, limits: Limits, use_bwrap: bool) -> tuple[Any, ...]:
    # What the child's command line depends on (the request brings everything else).
    return (module.split(".")[0], limits.file_size_mb, use_bwrap)


def _keep_spare(module: str, limits: Limits, use_bwrap: bool) -> None:
    key = _spare_key(module, limits, use_bwrap)
    if _warm.spare is not None and _warm.spare.key == key:
        return
    if _warm.spare is not None:
        _warm.spare.discard()
        _warm.spare = None
    rundir = _new_rundir(use_bwrap)
    try:
        spare = _start(module, limits, use_bwrap, rundir, preload=True)
    except (OSError, _BwrapDidNotStart):
        _rmtree(rundir)
        log.debug("runner sandbox: no warm child", exc_info=True)
        return
    spare.key, spare.warm = key, True
    _warm.spare = spare


def _take_spare(module: str, limits: Limits, use_bwrap: bool) -> _Started | None:
    spare, _warm.spare = _warm.spare, None
    if spare is None:
        return None
    if spare.key != _spare_key(module, limits, use_bwrap) or spare.proc.poll() is not None:
        spare.discard()
        return None
    return spare


def start_warm_child(module: str, limits: Limits, *, isolation: IsolationRequest = "auto") -> bool:
    """Start the calling thread's next child now (a worker thread coming online), for runs
    of ``module`` under ``limits``. Returns whether one is ready."""
    use_bwrap = isolation != "rlimits-only" and _bwrap_usable()
    if isolation == "bubblewrap" and not use_bwrap:
        return False
    _keep_spare(module, limits, use_bwrap)
    return warm_child_ready()


def warm_child_ready() -> bool:
    """Whether the calling thread holds a started child for its next run."""
    return _warm.spare is not None and _warm.spare.proc.poll() is None


def _spawn(
    module: str, request: str, limits: Limits, use_bwrap: bool, rundir: Path
) -> tuple[Outcome, Path]:
    """Start a child in ``rundir``, feed it the request, wait for it (see ``_complete``)."""
    return _complete(_start(module, limits, use_bwrap, rundir, preload=False), request, limits)


def _start(
    module: str, limits: Limits, use_bwrap: bool, rundir: Path, *, preload: bool
) -> _Started:
    """Start the child (without its request). ``preload``: it imports torch and
    matplotlib before it reads the request."""
    work = rundir / "work"
    work.mkdir(mode=0o700, exist_ok=True)
    inner = SANDBOX_DIR if use_bwrap else str(work)
    argv = [sys.executable, "-P", "-s", "-m", "runners.child", *(["--preload"] * preload)]
    with _seccomp_fd(use_bwrap) as seccomp_fd:
        status_r = status_w = None
        if use_bwrap:
            status_r, status_w = os.pipe()
            argv = _bwrap_argv(work, module, limits, status_w, seccomp_fd) + ["--", *argv]
        argv = _dies_with_worker(argv)
        try:
            with open(rundir / "child.log", "wb") as log_file:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=_child_env(inner),
                    cwd=work,
                    start_new_session=True,  # its own process group, killed as a whole
                    pass_fds=tuple(fd for fd in (status_w, seccomp_fd) if fd is not None),
                )
        except OSError as exc:
            for fd in (status_r, status_w):
                if fd is not None:
                    os.close(fd)
            if use_bwrap:
                raise _BwrapDidNotStart(str(exc)) from exc
            raise
    if status_w is not None:
        os.close(status_w)
    return _Started(proc, rundir, use_bwrap, status_r)


def _complete(child: _Started, request: str, limits: Limits) -> tuple[Outcome, Path]:
    """Feed a started child its request, wait (or kill it), measure. Returns the raw
    outcome (status not yet decided unless it timed out) and the working directory.
    The wall-clock limit and ``duration_s`` count from the request."""
    proc, work, rundir, status_r = child.proc, child.work, child.rundir, child.status_r
    log_path = child.log_path
    use_bwrap = child.use_bwrap
    started = time.monotonic()
    try:
        assert proc.stdin is not None
        # The request fits in the pipe buffer, so this cannot block; a child that died
        # early shows up as a broken pipe, reported below from its exit status.
        with contextlib.suppress(OSError):
            proc.stdin.write(request.encode())
        with contextlib.suppress(OSError):
            proc.stdin.close()
        wait_status, rusage, usage = _wait(proc, limits, rundir)
        duration = time.monotonic() - started
        _reap_group(proc.pid, usage.killed)
        bwrap_status = _read_bwrap_status(status_r) if status_r is not None else {}
    finally:
        if proc.returncode is None:  # only if _wait itself failed; it killed the child
            proc.returncode = -signal.SIGKILL
        if status_r is not None:
            os.close(status_r)
            child.status_r = None

    if use_bwrap and not usage.timed_out and "child-pid" not in bwrap_status:
        raise _BwrapDidNotStart(_tail(log_path, 500).strip() or "no output")

    if "exit-code" in bwrap_status:  # the sandboxed command's status, not bwrap's
        code = int(bwrap_status["exit-code"])
        exit_code = -(code - 128) if code > 128 else code
    elif os.WIFSIGNALED(wait_status):
        exit_code = -os.WTERMSIG(wait_status)
    else:
        exit_code = os.WEXITSTATUS(wait_status)

    # Three partial views of the tree's usage; take the largest. (ru_maxrss is never
    # used: a forked child inherits the worker's RSS high-water mark.)
    cpu = max(rusage.ru_utime + rusage.ru_stime, usage.cpu_s)
    peak_kb = usage.peak_kb
    stats = _read_json_file(work, "child-stats.json", 1000)
    if isinstance(stats, dict):
        if _finite(stats.get("cpu_s"), allow_bool=False):
            cpu = max(cpu, float(stats["cpu_s"]))
        if isinstance(stats.get("peak_rss_kb"), int):
            peak_kb = max(peak_kb, stats["peak_rss_kb"])
    outcome = Outcome(
        status="failed",
        duration_s=round(duration, 3),
        cpu_s=round(cpu, 3),
        isolation="bubblewrap" if use_bwrap else "rlimits-only",
        exit_code=exit_code,
        log_tail=_tail(log_path, MAX_LOG_TAIL),
        warm_start=child.warm,
    )
    outcome.peak_rss_mb = round(peak_kb / 1024, 1) if peak_kb else None
    if usage.timed_out:
        outcome.status = "timed_out"
        outcome.error_code = "wall_timeout"
        outcome.error = f"the run exceeded its wall-clock limit of {limits.wall_s:g} s"
        return outcome, work
    # Once more after the exit: a run may have filled its quota between two samples.
    over_disk = usage.over_disk or _measure_disk(rundir).over(limits.disk_mb * MIB)
    if over_disk:
        outcome.error_code = "disk_limit"
        outcome.error = f"the run exceeded its disk quota of {limits.disk_mb} MB: {over_disk}"
    return outcome, work


@dataclass
class _TreeUsage:
    """CPU time and peak RSS of the child's process tree as seen in /proc.

    Lower bounds (sampled), but they survive kills, unlike wait4's rusage (empty under
    bwrap, whose monitor exits without reaping the sandbox's init) and the child's own
    report (never written when it is killed).
    """

    cpu_s: float = 0.0
    peak_kb: int = 0
    timed_out: bool = False
    over_disk: str | None = None  # why the run's directory is over its disk quota
    killed: list[int] = field(default_factory=list)

    def sample(self, pid: int) -> list[int]:
        tree = [pid, *descendants(pid)]
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = 0.0
        for p in tree:
            fields = proc_stat(p)
            if fields and len(fields) > 14:
                # utime, stime, cutime, cstime: the last two hold reaped grandchildren.
                cpu += sum(int(x) for x in fields[11:15]) / ticks
            self.peak_kb = max(self.peak_kb, peak_rss_kb(p))
        self.cpu_s = max(self.cpu_s, cpu)
        return tree


def _wait(
    proc: subprocess.Popen[bytes], limits: Limits, rundir: Path
) -> tuple[int, Any, _TreeUsage]:
    """Wait for the child up to ``limits.wall_s`` seconds, sampling its usage, and kill its
    whole tree at the deadline or when ``rundir`` goes over ``limits.disk_mb``. Returns
    the wait status, wait4's rusage and the sampled usage."""
    deadline = time.monotonic() + limits.wall_s
    usage = _TreeUsage()
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                usage.timed_out = True
                usage.killed = _kill_tree(proc.pid, usage)
                break
            if _exited(proc.pid, pidfd, min(remaining, SAMPLE_EVERY_S)):
                break
            tree = usage.sample(proc.pid)
            usage.over_disk = _measure_disk(rundir, tree).over(limits.disk_mb * MIB)
            if usage.over_disk:
                usage.killed = _kill_tree(proc.pid, usage)
                break
    except BaseException:  # e.g. KeyboardInterrupt in the worker: never leave it running
        _kill_tree(proc.pid, usage)
        os.waitpid(proc.pid, 0)
        proc.returncode = -signal.SIGKILL
        raise
    finally:
        if pidfd is not None:
            os.close(pidfd)
    # wait4, not Popen.wait: it also returns resource usage (complete without bwrap).
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status, rusage, usage


class _Unmeasurable(Exception):
    """The run's directory cannot be measured (too many entries, too deep, unreadable)."""


@dataclass
class _DiskUse:
    """Space a run's files take: allocated blocks (``st_blocks * 512``, so a sparse file
    counts as what it uses), each inode once, deleted files its processes keep open
    included."""

    bytes: int = 0
    entries: int = 0
    problem: str | None = None  # set when the directory could not be measured
    seen: set[tuple[int, int]] = field(default_factory=set)

    def add(self, st: os.stat_result) -> None:
        if (st.st_dev, st.st_ino) not in self.seen:
            self.seen.add((st.st_dev, st.st_ino))
            self.bytes += st.st_blocks * 512

    def over(self, quota_bytes: int) -> str | None:
        """Why this is over the quota, or None."""
        if self.problem:
            return self.problem
        if self.bytes > quota_bytes:
            return f"its files take {self.bytes / MIB:.1f} MB"
        return None


def _measure_disk(rundir: Path, pids: list[int] | None = None) -> _DiskUse:
    """What ``rundir`` takes on disk, plus deleted files on its file system that the
    processes ``pids`` still hold open. Walked through directory file descriptors, never
    following a symlink (the child controls every name below ``rundir``)."""
    use = _DiskUse()
    try:
        root_fd = os.open(rundir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return use
    except OSError as exc:
        use.problem = f"its directory cannot be opened ({exc.strerror})"
        return use
    try:
        st = os.fstat(root_fd)
        use.add(st)
        _walk_disk(root_fd, 0, use)
        _add_open_deleted_files(pids or [], st.st_dev, use)
    except _Unmeasurable as exc:
        use.problem = str(exc)
    finally:
        os.close(root_fd)
    return use


def _walk_disk(dir_fd: int, depth: int, use: _DiskUse) -> None:
    subdirs = []
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                use.entries += 1
                if use.entries > MAX_DISK_ENTRIES:
                    raise _Unmeasurable(f"it holds over {MAX_DISK_ENTRIES} files")
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat(follow_symlinks=False)
                    use.add(st)
                    if stat.S_ISDIR(st.st_mode):
                        subdirs.append(entry.name)
    except OSError as exc:
        raise _Unmeasurable(f"a directory cannot be read ({exc.strerror})") from None
    if subdirs and depth >= MAX_DISK_DEPTH:
        raise _Unmeasurable(f"its directories nest over {MAX_DISK_DEPTH} deep")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for name in subdirs:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed or replaced since it was listed (a symlink: ELOOP below)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                continue
            raise _Unmeasurable(f"a directory cannot be opened ({exc.strerror})") from None
        try:
            _walk_disk(fd, depth + 1, use)
        finally:
            os.close(fd)


def _add_open_deleted_files(pids: list[int], dev: int, use: _DiskUse) -> None:
    """Regular files on ``dev`` with no name left that one of ``pids`` keeps open: they
    still take space in the run's directory's file system."""
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")  # stat only: never opens the file
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 0 and st.st_dev == dev:
                use.add(st)


def _exited(pid: int, pidfd: int | None, timeout: float) -> bool:
    """Whether the child has exited, waiting up to ``timeout`` s (it is not reaped)."""
    if pidfd is not None:  # readable once the process has exited
        return bool(select.select([pidfd], [], [], timeout)[0])
    deadline = time.monotonic() + timeout
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _kill_tree(pid: int, usage: _TreeUsage) -> list[int]:
    """SIGKILL the child's process group and every descendant (including ones that left
    the group with setsid), after a last usage sample; returns the pids."""
    tree = usage.sample(pid)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    for p in tree:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    return tree


def _reap_group(pgid: int, killed: list[int]) -> None:
    """Kill whatever is left in the child's process group (its background jobs) and
    wait until it and the ``killed`` pids are really gone, so that a returned run
    leaves nothing running. (The pgid cannot have been reused: a pid stays reserved
    while a process group uses it.)"""
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
            alive = True
        except OSError:
            alive = any(_running(p) for p in killed)
        if not alive:
            return
        time.sleep(0.01)
    log.warning("runner sandbox: processes of a killed run are still alive after 2 s")


def _running(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _read_bwrap_status(fd: int) -> dict[str, Any]:
    """Merge the JSON lines bubblewrap wrote: ``child-pid`` once the sandbox is up,
    ``exit-code`` when the sandboxed command ended."""
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    merged: dict[str, Any] = {}
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            merged.update(doc)
    return merged


# --- deciding the status and validating the result ----------------------------------------


def _finish(outcome: Outcome, work: Path, limits: Limits) -> None:
    """Decide status and error from the exit code, error.json and result files."""
    if outcome.status == "timed_out" or outcome.error_code == "disk_limit":
        return
    code = outcome.exit_code
    cpu_limit = float(math.ceil(limits.cpu_s))  # rlimits are whole seconds
    # SIGXCPU at the soft limit; SIGKILL at the hard one if SIGXCPU was ignored.
    if code == -signal.SIGXCPU or (code == -signal.SIGKILL and outcome.cpu_s >= cpu_limit):
        outcome.status, outcome.error_code = "timed_out", "cpu_limit"
        # The kernel sends SIGXCPU exactly when the soft limit is reached.
        outcome.cpu_s = max(outcome.cpu_s, cpu_limit)
        outcome.error = f"the run exceeded its CPU-time limit of {limits.cpu_s:g} s"
        return
    if code == -signal.SIGXFSZ:
        outcome.error_code = "file_size_limit"
        outcome.error = f"the run wrote a file over {limits.file_size_mb} MB"
        return

    error = _read_json_file(work, "error.json", MAX_ERROR_FILE_BYTES)
    if code != 0 and isinstance(error, dict):
        err_code = error.get("code")
        message = error.get("message")
        outcome.error_code = err_code if err_code in _CHILD_ERROR_CODES else "experiment_error"
        outcome.error = (message if isinstance(message, str) else "the experiment failed")[:2000]
        if outcome.error_code == "memory_limit":
            outcome.status = "killed_memory"
            outcome.error = f"memory limit of {limits.memory_mb} MB exceeded: {outcome.error}"
        return
    if code != 0:
        text = outcome.log_tail.lower()
        if "memoryerror" in text or any(m in text for m in ("bad_alloc", "cannot allocate")):
            outcome.status, outcome.error_code = "killed_memory", "memory_limit"
            outcome.error = f"memory limit of {limits.memory_mb} MB exceeded"
        else:
            outcome.error_code = "crashed"
            outcome.error = f"the child ended with {_describe_exit(code)} and no error report"
        return

    try:
        outcome.result = _load_result(work, limits)
    except _InvalidResult as exc:
        outcome.error_code = "invalid_result"
        outcome.error = f"invalid result: {exc}"
        return
    outcome.status = "succeeded"


def _describe_exit(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if name == "SIGKILL":
        name += " (not from the sandbox: possibly the host's OOM killer)"
    return name


def _open_regular(work: Path, name: str, cap: int) -> bytes:
    """Read ``work/name`` if it is a plain file of at most ``cap`` bytes.

    The child controls the directory: refuse symlinks (they would be followed on the
    host), FIFOs (a read would block) and hard links (a way to alias host files when
    running without bubblewrap).
    """
    dir_fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            raise _InvalidResult(f"{name} is missing") from None
        except OSError as exc:
            raise _InvalidResult(f"{name} cannot be opened (symlink?): {exc.strerror}") from None
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _InvalidResult(f"{name} is not a regular file")
        if st.st_nlink != 1:
            raise _InvalidResult(f"{name} has other hard links")
        if st.st_size > cap:
            raise _InvalidResult(f"{name} is {st.st_size} bytes, over the limit of {cap}")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise _InvalidResult(f"{name} is over the limit of {cap} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_json_file(work: Path, name: str, cap: int) -> Any:
    """Best-effort read of a small JSON file the child wrote; None if absent or bad."""
    try:
        return json.loads(_open_regular(work, name, cap))
    except (_InvalidResult, ValueError, RecursionError, OSError):
        return None


def _load_result(work: Path, limits: Limits) -> Result:
    raw = _open_regular(work, "result.json", limits.max_result_bytes)
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _InvalidResult(f"result.json is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _InvalidResult("result.json must hold an object")
    expected = {"metrics", "series", "finding", "supports_claim", "figure_count", "figure_langs"}
    if set(doc) != expected:
        raise _InvalidResult(f"result.json must have exactly the keys {sorted(expected)}")

    metrics = doc["metrics"]
    _check_mapping(metrics, "metrics", MAX_METRICS)
    for key, value in metrics.items():
        if not _finite(value, allow_bool=True):
            raise _InvalidResult(f"metric {key!r} is not a finite number or boolean")

    series = doc["series"]
    _check_mapping(series, "series", MAX_SERIES)
    for key, values in series.items():
        if not isinstance(values, list):
            raise _InvalidResult(f"series {key!r} is not a list")
        if len(values) > limits.max_series_len:
            raise _InvalidResult(
                f"series {key!r} has {len(values)} points, over the limit of "
                f"{limits.max_series_len}"
            )
        if not all(_finite(v, allow_bool=False) for v in values):
            raise _InvalidResult(f"series {key!r} holds a value that is not a finite number")

    finding = doc["finding"]
    if not isinstance(finding, dict) or set(finding) != {"en", "ja"}:
        raise _InvalidResult('finding must have exactly the keys "en" and "ja"')
    for lang, text in finding.items():
        if not isinstance(text, str) or not text.strip():
            raise _InvalidResult(f"finding[{lang!r}] must be a non-empty string")
        if len(text) > MAX_FINDING_CHARS:
            raise _InvalidResult(f"finding[{lang!r}] is over {MAX_FINDING_CHARS} characters")

    if doc["supports_claim"] is not None and not isinstance(doc["supports_claim"], bool):
        raise _InvalidResult("supports_claim must be a boolean or null")

    count = doc["figure_count"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise _InvalidResult("figure_count must be a non-negative integer")
    if count > limits.max_figures:
        raise _InvalidResult(f"{count} figures, over the limit of {limits.max_figures}")
    figures = []
    for i in range(count):
        png = _open_regular(work, f"fig-{i}.png", limits.max_figure_bytes)
        if not (png.startswith(PNG_SIGNATURE) and png[12:16] == b"IHDR" and png.endswith(PNG_END)):
            raise _InvalidResult(f"fig-{i}.png is not a complete PNG image")
        figures.append(png)
    langs = doc["figure_langs"]
    if not isinstance(langs, list) or not set(langs) <= set(FIGURE_LANGS):
        raise _InvalidResult(f"figure_langs must list some of {list(FIGURE_LANGS)}")
    if len(set(langs)) != len(langs) or (langs and count % len(langs)):
        raise _InvalidResult("figure_langs must be distinct and divide the figures evenly")

    return Result(
        metrics=metrics,
        figures=figures,
        finding={"en": finding["en"], "ja": finding["ja"]},
        supports_claim=doc["supports_claim"],
        series={k: [float(v) for v in vs] for k, vs in series.items()},
        figure_langs=tuple(langs),
    )


def _check_mapping(value: Any, what: str, max_items: int) -> None:
    if not isinstance(value, dict):
        raise _InvalidResult(f"{what} must be an object")
    if len(value) > max_items:
        raise _InvalidResult(f"{what} has {len(value)} entries, over the limit of {max_items}")
    for key in value:
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise _InvalidResult(f"{what} has an invalid name {key[:MAX_KEY_CHARS]!r}")


def _finite(value: Any, *, allow_bool: bool) -> bool:
    if isinstance(value, bool):
        return allow_bool
    if isinstance(value, int):
        return abs(value) < 2**63
    return isinstance(value, float) and math.isfinite(value)


# --- small helpers -------------------------------------------------------------------------


def _tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _rmtree(path: Path) -> None:
    """Remove the run directory even if the child left unreadable subdirectories."""
    root = str(path)
    retried: set[str] = set()

    def make_writable_and_retry(func: Any, target: str, _exc: Any) -> None:
        if target in retried:
            return
        retried.add(target)
        try:
            parent = os.path.dirname(target)
            if parent == root or parent.startswith(root + os.sep):  # never the temp dir
                os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, stat.S_IRWXU)
                if func in (os.open, os.scandir):  # rmtree could not enter it: now it can
                    shutil.rmtree(target, onerror=make_writable_and_retry)
                    return
            if func in (os.rmdir, os.unlink):
                func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable_and_retry)
    if path.exists():
        log.warning("runner sandbox: could not remove %s", path)
