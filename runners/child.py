"""The sandboxed child: ``python -m runners.child``, started by ``runners.sandbox``.

Protocol. One JSON object on stdin::

    {"module": "runners.experiments.x", "params": {...}, "seed": 0,
     "limits": {"cpu_s": 60, "memory_mb": 2048, "file_size_mb": 16, "open_files": 256}}

or ``{"warmup": true, "limits": {...}}`` (build matplotlib's font cache and stop).
Everything is written to the current directory (the run's private directory):

- success: ``fig-0.png``, ``fig-1.png``, ... then ``result.json`` (``Result.to_json()``);
- failure: ``error.json`` = ``{"code": ..., "message": ...}``;
- always, best effort: ``child-stats.json`` = ``{"peak_rss_kb": ..., "cpu_s": ...}``.

Exit codes: 0 ok, 2 bad request or params, 3 the experiment raised, 4 memory limit,
5 file-size limit, 6 ``run()`` returned something that is not a ``Result``.

The parent treats every file here as untrusted (the experiment runs in this process and
could overwrite them) and validates them itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import faulthandler
import json
import math
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
# RLIMIT_AS is only a backstop (shared mappings escape RLIMIT_DATA); torch and its
# libraries reserve ~0.5 GB of address space that is never private writable memory.
ADDRESS_SPACE_HEADROOM_MB = 4096
MAX_REQUEST_BYTES = 1 << 20
# Processes and threads the run may start beyond those its user already has.
NPROC_MARGIN = 64
MAX_MESSAGE_CHARS = 2000

EXIT_OK = 0
EXIT_BAD_REQUEST = 2
EXIT_EXPERIMENT_ERROR = 3
EXIT_MEMORY = 4
EXIT_FILE_SIZE = 5
EXIT_BAD_RESULT = 6

_MEMORY_MARKERS = ("can't allocate memory", "cannot allocate memory", "bad_alloc", "out of memory")
_PR_SET_CHILD_SUBREAPER = 36


# --- process-tree helpers (also used by the parent) ---------------------------------------


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(b")") + 2 :].decode("ascii", "replace").split()


def descendants(root: int) -> list[int]:
    """Pids of every live descendant of ``root`` (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = proc_stat(int(entry))
        if fields is not None and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found:
                found.append(pid)
                todo.append(pid)
    return found


def peak_rss_kb(pid: int | str = "self") -> int:
    """VmHWM of a process: its own peak RSS since exec (0 if unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


# --- the child itself --------------------------------------------------------------------


def apply_limits(limits: dict[str, Any]) -> None:
    """Lower this process's rlimits; everything it starts afterwards inherits them.

    Done here, not in a ``preexec_fn``, because ``preexec_fn`` is unsafe in a threaded
    parent (the queue worker runs threads) and rlimits set here bind the same code.
    """
    cpu = max(1, math.ceil(float(limits["cpu_s"])))
    # Soft limit sends SIGXCPU; the hard limit one second later is a SIGKILL backstop.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    # RLIMIT_DATA counts private writable memory (heap, anonymous mmaps, since Linux
    # 4.7), so it tracks real use instead of torch's large read-only reservations.
    data = int(limits["memory_mb"]) * MIB
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    space = data + ADDRESS_SPACE_HEADROOM_MB * MIB
    resource.setrlimit(resource.RLIMIT_AS, (space, space))
    fsize = int(limits["file_size_mb"]) * MIB
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = int(limits["open_files"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _limit_processes()


def tasks_of_uid(uid: int) -> int:
    """Threads of every process whose real uid is ``uid``, as far as /proc shows them."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (KeyError, IndexError, ValueError):
            continue
    return count


def _limit_processes() -> None:
    # RLIMIT_NPROC counts the tasks (threads included) of the real uid: under bubblewrap
    # those of the sandbox's user namespace (Linux 5.14+), which its own /proc shows;
    # without it, all of the worker user's. The kernel does not enforce it for root
    # (INIT_USER) nor with CAP_SYS_RESOURCE or CAP_SYS_ADMIN: a worker running as root
    # gets no process limit, even under bubblewrap (the sandbox's uid is root outside).
    current = tasks_of_uid(os.getuid())
    if current == 0:  # /proc shows nothing, not even this process: keep the limit
        return
    nproc = current + NPROC_MARGIN
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        nproc = min(nproc, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _become_subreaper() -> None:
    # Orphaned grandchildren re-parent to us instead of init, so they stay in our tree
    # where the parent (on timeout) and we (on exit) can find and kill them.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _kill_descendants() -> None:
    me = os.getpid()
    for pid in descendants(me):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _write_json(name: str, doc: dict[str, Any]) -> None:
    with open(name, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, allow_nan=True)


def _error(code: str, message: str) -> None:
    try:
        _write_json("error.json", {"code": code, "message": message[:MAX_MESSAGE_CHARS]})
    except OSError:
        print(f"runners.child: could not write error.json ({code}: {message})", file=sys.stderr)


def _describe(exc: BaseException) -> str:
    """``Type: message (at file:line)`` for the innermost frame, without the full trace."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {Path(last.filename).name}:{last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in _MEMORY_MARKERS)


def _jsonable(obj: Any) -> Any:
    # numpy / torch scalars and arrays; the parent still checks every value.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _warmup() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.font_manager  # noqa: F401  (builds the font list in MPLCONFIGDIR)

    return EXIT_OK


def _run(request: dict[str, Any]) -> int:
    import importlib
    import random

    import pydantic
    import torch

    from runners.result import Result, settle_divergence

    # One intra-op thread: runs are single-core jobs, and more threads only add contention.
    torch.set_num_threads(1)
    seed = request["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool):
        _error("invalid_request", "seed must be an integer")
        return EXIT_BAD_REQUEST
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:
        pass

    try:
        module = importlib.import_module(request["module"])
        params = module.Params.model_validate(request["params"])
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        _error("invalid_params", f"invalid parameters: {problems}")
        return EXIT_BAD_REQUEST

    try:
        result = module.run(params, seed)
    except (Exception, SystemExit) as exc:
        if _is_memory_error(exc):
            _error("memory_limit", f"the experiment ran out of memory: {_describe(exc)}")
            return EXIT_MEMORY
        if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
            _error("file_size_limit", f"the experiment wrote too large a file: {_describe(exc)}")
            return EXIT_FILE_SIZE
        _error("experiment_error", f"the experiment failed: {_describe(exc)}")
        return EXIT_EXPERIMENT_ERROR

    if not isinstance(result, Result):
        _error("invalid_result", f"run() returned {type(result).__name__}, not Result")
        return EXIT_BAD_RESULT
    if not isinstance(result.figures, list | tuple) or not all(
        isinstance(f, bytes | bytearray) for f in result.figures
    ):
        _error("invalid_result", "Result.figures must be a list of PNG bytes")
        return EXIT_BAD_RESULT
    try:
        result = settle_divergence(result)
        for i, png in enumerate(result.figures):
            Path(f"fig-{i}.png").write_bytes(png)
        doc = result.to_json()
        text = json.dumps(doc, ensure_ascii=False, allow_nan=True, default=_jsonable)
        Path("result.json").write_text(text, encoding="utf-8")  # last: marks completion
    except (TypeError, ValueError) as exc:
        _error("invalid_result", f"the result is not JSON serialisable: {exc}")
        return EXIT_BAD_RESULT
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            _error("file_size_limit", f"a result file exceeds the file-size limit: {exc}")
            return EXIT_FILE_SIZE
        raise
    return EXIT_OK


def _preload() -> None:
    """Import what every experiment needs before the request comes (a warm child: the
    parent started it ahead of its run). Its own code only, never an experiment's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import pydantic  # noqa: F401
    import torch  # noqa: F401

    import runners.result  # noqa: F401


def main() -> int:
    faulthandler.enable()  # a crash in native code still leaves a trace in the log
    if "--preload" in sys.argv[1:]:
        _preload()
    try:
        request = json.loads(sys.stdin.buffer.read(MAX_REQUEST_BYTES))
        apply_limits(request["limits"])
    except (ValueError, KeyError, TypeError, OSError) as exc:
        _error("invalid_request", f"bad request: {exc}")
        return EXIT_BAD_REQUEST
    _become_subreaper()
    try:
        if request.get("warmup"):
            return _warmup()
        return _run(request)
    except MemoryError as exc:
        _error("memory_limit", f"out of memory: {_describe(exc)}")
        return EXIT_MEMORY
    except Exception as exc:
        if _is_memory_error(exc):
            _error("memory_limit", f"out of memory: {_describe(exc)}")
            return EXIT_MEMORY
        _error("experiment_error", f"the experiment failed: {_describe(exc)}")
        return EXIT_EXPERIMENT_ERROR
    finally:
        _kill_descendants()
        try:
            me = resource.getrusage(resource.RUSAGE_SELF)
            kids = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
            # VmHWM, not ru_maxrss: the latter includes the worker's RSS from the fork.
            peak = max(peak_rss_kb(), kids.ru_maxrss)
            _write_json("child-stats.json", {"peak_rss_kb": peak, "cpu_s": cpu})
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
