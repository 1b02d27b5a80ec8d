"""The sandboxed executor: limits, isolation, result validation, clean-up.

Every run here starts a real child (Python + torch, ~1.5-2 s); limits are kept at a few
seconds. Isolation tests need a working bubblewrap and are skipped only without one.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runners import sandbox, seccomp
from runners.child import NPROC_MARGIN, descendants, proc_stat
from runners.result import Result
from runners.sandbox import PNG_SIGNATURE, Limits, Outcome, execute, sandbox_info

PROBE = "tests.runners.sandbox_probes"
ROOT = Path(__file__).resolve().parents[2]
SECRET_VAR = "RA_SANDBOX_TEST_SECRET"
ALLOWED_ENV = {
    "PATH",
    "HOME",
    "TMPDIR",
    "MPLCONFIGDIR",
    "MPLBACKEND",
    "PYTHONPATH",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONHASHSEED",
    "LANG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "HF_HUB_OFFLINE",
    "PWD",  # set by bwrap --chdir
}
# Every successful run below also shows that Python + torch + matplotlib fit in 768 MB.
FAST = Limits(wall_s=20, cpu_s=20, memory_mb=768)

HAS_BWRAP = sandbox_info()["isolation"] == "bubblewrap"
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap cannot run here")
BOTH_MODES = pytest.mark.parametrize(
    "isolation",
    [pytest.param("bubblewrap", marks=needs_bwrap), "rlimits-only"],
)


def run_probe(
    params: dict[str, Any], limits: Limits = FAST, isolation: str = "bubblewrap"
) -> Outcome:
    if isolation == "bubblewrap" and not HAS_BWRAP:
        pytest.skip("bubblewrap cannot run here")
    return execute(PROBE, params, 7, limits, isolation=isolation)  # type: ignore[arg-type]


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def left_running(before: set[int], wait_s: float = 10.0) -> dict[int, str]:
    """New processes of this test's own making still alive: pid -> command line.

    Children that earlier tests' servers (a gunicorn master, a browser) start meanwhile
    descend from a pid in ``before`` and are not the run's; a killed tree can take a
    moment to be reaped on a busy machine, hence the wait.
    """
    deadline = time.monotonic() + wait_s
    while True:
        found = {}
        for pid in set(descendants(os.getpid())) - before:
            if before & set(ancestors(pid)):
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            found[pid] = cmd.decode("utf-8", "replace")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def ancestors(pid: int) -> list[int]:
    chain = []
    while (fields := proc_stat(pid)) is not None and int(fields[1]) > 1:
        pid = int(fields[1])
        chain.append(pid)
    return chain


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """A TCP server on the host's loopback; returns its port."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture(scope="module")
def inspected(
    listener: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Outcome, dict[str, Any]]]:
    """One sandboxed run that tries the network, writes, reads and reads its env."""
    if not HAS_BWRAP:
        pytest.skip("bubblewrap cannot run here")
    host_secret = tmp_path_factory.mktemp("host") / "secret.txt"
    host_secret.write_text("top secret")
    targets = {
        "write": [
            str(ROOT / "runners" / "sandbox-pwned.txt"),
            str(ROOT / "sandbox-pwned.txt"),
            "/root/sandbox-pwned.txt",
            "/etc/sandbox-pwned.txt",
            str(host_secret),
            "in-workdir.txt",
            "/tmp/in-tmpfs.txt",
        ],
        "read": [str(host_secret), "/etc/shadow", str(ROOT / "pyproject.toml"), __file__],
    }
    params = {
        "mode": "inspect",
        "port": listener,
        "write_paths": targets["write"],
        "read_paths": targets["read"],
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET_VAR, "hunter2")
        outcome = execute(PROBE, params, 0, FAST, isolation="bubblewrap")
    yield outcome, targets
    for path in targets["write"][:4]:  # never leave litter if the sandbox leaked
        Path(path).unlink(missing_ok=True)


# --- configuration ---------------------------------------------------------------------


def test_sandbox_info_shape() -> None:
    info = sandbox_info()
    assert info["isolation"] in {"bubblewrap", "rlimits-only"}
    assert (info["reason"] is None) == (info["isolation"] == "bubblewrap")


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="wall_s"):
        Limits(wall_s=0)
    with pytest.raises(ValueError, match="cpu_s"):
        Limits(cpu_s=float("inf"))
    assert Limits(max_figures=0).max_figures == 0
    budget = Limits.for_budget(40, memory_mb=512)
    assert budget.wall_s == budget.cpu_s == 70 and budget.memory_mb == 512


def test_bad_requests_fail_without_a_child() -> None:
    with pytest.raises(ValueError):
        execute("runners.child; rm -rf /", {}, 0)
    outcome = execute(PROBE, {"mode": float("nan")}, 0)
    assert (outcome.status, outcome.error_code) == ("failed", "invalid_request")
    outcome = execute(PROBE, {"blob": "x" * 100_000}, 0)
    assert (outcome.status, outcome.error_code) == ("failed", "invalid_request")


# --- a good run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_runs() -> dict[str, Outcome]:
    """The same well-behaved run in each isolation mode available here."""
    modes = ["bubblewrap", "rlimits-only"] if HAS_BWRAP else ["rlimits-only"]
    return {m: execute(PROBE, {"mode": "ok", "n_figures": 2}, 7, FAST, isolation=m) for m in modes}


@BOTH_MODES
def test_well_behaved_probe_succeeds(isolation: str, good_runs: dict[str, Outcome]) -> None:
    outcome = good_runs[isolation]
    assert outcome.status == "succeeded", outcome
    assert outcome.error is None and outcome.error_code is None
    assert outcome.isolation == isolation
    result = outcome.result
    assert isinstance(result, Result)
    assert set(result.metrics) == {"mean", "std", "n", "small_mean"}
    assert result.metrics["n"] == 1000 and result.metrics["small_mean"] is True
    assert len(result.series["first"]) == 10
    assert result.finding["en"].startswith("The sample mean is")
    assert result.finding["ja"].startswith("標本平均は")
    assert len(result.figures) == 2
    assert all(f.startswith(PNG_SIGNATURE) for f in result.figures)
    assert 0 < outcome.duration_s < FAST.wall_s
    assert 0.1 < outcome.cpu_s < FAST.cpu_s  # includes importing torch
    assert outcome.peak_rss_mb is not None and 50 < outcome.peak_rss_mb < FAST.memory_mb


@needs_bwrap
def test_same_seed_same_result_in_both_modes(good_runs: dict[str, Outcome]) -> None:
    a, b = good_runs["rlimits-only"].result, good_runs["bubblewrap"].result
    assert a is not None and b is not None
    assert a.metrics == b.metrics and a.series == b.series


def test_peak_rss_is_the_childs_not_the_workers() -> None:
    # ru_maxrss of a forked child starts at the parent's RSS; make the parent big.
    ballast = bytearray(b"\x01") * (700 * 1024 * 1024)
    outcome = run_probe({"mode": "ok", "n_figures": 0}, isolation="rlimits-only")
    assert ballast[-1] == 1
    assert outcome.status == "succeeded"
    assert outcome.peak_rss_mb is not None and outcome.peak_rss_mb < 600


def test_private_directory_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    outcome = run_probe({"mode": "ok", "n_figures": 1}, isolation="rlimits-only")
    assert outcome.status == "succeeded"
    assert list(tmp_path.iterdir()) == []


# --- isolation ---------------------------------------------------------------------------------


@needs_bwrap
def test_inspect_run_succeeded(inspected: tuple[Outcome, dict[str, Any]]) -> None:
    outcome, _ = inspected
    assert outcome.status == "succeeded", outcome
    assert outcome.isolation == "bubblewrap"


@needs_bwrap
def test_no_network(inspected: tuple[Outcome, dict[str, Any]], listener: int) -> None:
    with socket.create_connection(("127.0.0.1", listener), timeout=1):
        pass  # the server is reachable from the host...
    outcome, _ = inspected
    assert outcome.result is not None
    assert outcome.result.metrics["local_connect"] is False  # ...but not from the sandbox
    assert outcome.result.metrics["remote_connect"] is False


@needs_bwrap
def test_writes_only_inside_its_directory(inspected: tuple[Outcome, dict[str, Any]]) -> None:
    outcome, targets = inspected
    assert outcome.result is not None
    wrote = [outcome.result.metrics[f"write_{i}"] for i in range(len(targets["write"]))]
    # project package, project root, /root, /etc, a host file: no; workdir, /tmp: yes
    assert wrote == [False, False, False, False, False, True, True]
    for path in targets["write"][:4]:
        assert not Path(path).exists()
    assert Path(targets["write"][4]).read_text() == "top secret"


@needs_bwrap
def test_host_files_are_invisible(inspected: tuple[Outcome, dict[str, Any]]) -> None:
    outcome, targets = inspected
    assert outcome.result is not None
    read = [outcome.result.metrics[f"read_{i}"] for i in range(len(targets["read"]))]
    # host temp file, /etc/shadow, project files outside the bound packages: no;
    # the probe's own package (bound read-only so it can be imported): yes
    assert read == [False, False, False, True]
    assert outcome.result.metrics["uid"] == 65534
    assert outcome.result.finding["ja"] == sandbox.SANDBOX_DIR  # its working directory


@needs_bwrap
def test_environment_is_scrubbed(inspected: tuple[Outcome, dict[str, Any]]) -> None:
    outcome, _ = inspected
    assert outcome.result is not None
    names = set(outcome.result.finding["en"].split(","))
    assert SECRET_VAR not in names
    assert names <= ALLOWED_ENV
    assert {"HOME", "TMPDIR", "PYTHONPATH", "HF_HUB_OFFLINE"} <= names


def test_environment_is_scrubbed_without_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_VAR, "hunter2")
    outcome = run_probe({"mode": "inspect"}, isolation="rlimits-only")
    assert outcome.status == "succeeded" and outcome.result is not None
    names = set(outcome.result.finding["en"].split(","))
    assert SECRET_VAR not in names and names <= ALLOWED_ENV


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "isolation"),
    [
        ("spin", "bubblewrap"),
        ("spin", "rlimits-only"),
        ("spin_ignoring_sigxcpu", "bubblewrap"),  # the hard limit's SIGKILL still stops it
    ],
)
def test_cpu_hog_is_stopped_at_its_cpu_limit(mode: str, isolation: str) -> None:
    limits = Limits(wall_s=15, cpu_s=3, memory_mb=1024)
    before = set(descendants(os.getpid()))  # other tests' servers may still be running
    outcome = run_probe({"mode": mode}, limits, isolation)
    assert (outcome.status, outcome.error_code) == ("timed_out", "cpu_limit"), outcome
    assert "CPU-time limit of 3 s" in (outcome.error or "")
    assert 3 <= outcome.cpu_s < 5.5
    assert outcome.duration_s < limits.wall_s  # stopped by the CPU limit, not the clock
    assert left_running(before) == {}


@BOTH_MODES
def test_wall_timeout_kills_the_whole_tree(isolation: str) -> None:
    """A sleeping run with a grandchild in its own session: both die at the deadline."""
    marker = f"ra-probe-{uuid.uuid4().hex}"
    # Long enough for the probe to start its grandchild on a busy machine (at 3.5 s it
    # sometimes had not, with the old code as with the new).
    limits = Limits(wall_s=8.0, cpu_s=30, memory_mb=1024)
    before = set(descendants(os.getpid()))  # other tests' servers may still be running
    seen = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if processes_with(marker):
                seen.set()
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcome = run_probe({"mode": "grandchild", "marker": marker}, limits, isolation)
    finally:
        done.set()
        watcher.join()
    assert seen.is_set(), "the probe's grandchild never started"
    assert (outcome.status, outcome.error_code) == ("timed_out", "wall_timeout"), outcome
    assert limits.wall_s <= outcome.duration_s < limits.wall_s + 3
    assert processes_with(marker) == []
    assert left_running(before) == {}


@pytest.mark.parametrize(
    ("mode", "isolation"),
    [
        ("alloc", "bubblewrap"),
        ("alloc_torch", "bubblewrap"),
        ("alloc", "rlimits-only"),
    ],
)
def test_allocation_beyond_the_memory_limit(mode: str, isolation: str) -> None:
    limits = Limits(wall_s=20, cpu_s=20, memory_mb=768)
    outcome = run_probe({"mode": mode, "size_mb": 1024}, limits, isolation)
    assert (outcome.status, outcome.error_code) == ("killed_memory", "memory_limit"), outcome
    assert "memory limit of 768 MB exceeded" in (outcome.error or "")
    assert outcome.peak_rss_mb is not None and outcome.peak_rss_mb < 768


def test_file_size_limit() -> None:
    limits = Limits(wall_s=20, cpu_s=20, file_size_mb=2)
    outcome = run_probe({"mode": "big_file", "size_mb": 5}, limits)
    assert (outcome.status, outcome.error_code) == ("failed", "file_size_limit"), outcome


# --- disk quota ----------------------------------------------------------------------------

DISK = Limits(wall_s=20, cpu_s=20, memory_mb=768, file_size_mb=16, disk_mb=40)


@pytest.mark.parametrize(
    ("params", "isolation", "reason"),
    [
        # five 10 MB files: each under the 16 MB file limit, 50 MB together
        ({"mode": "fill_disk", "count": 5, "size_mb": 10}, "bubblewrap", "files take"),
        ({"mode": "fill_disk", "count": 5, "size_mb": 10}, "rlimits-only", "files take"),
        ({"mode": "fill_disk_and_wait", "count": 5, "size_mb": 10}, "bubblewrap", "files take"),
        ({"mode": "fill_disk_and_wait", "count": 5, "size_mb": 10}, "rlimits-only", "files take"),
        # deleted files it keeps open still take space
        ({"mode": "unlinked_files", "count": 5, "size_mb": 10}, "bubblewrap", "files take"),
        ({"mode": "many_files", "count": 12_000}, "rlimits-only", "over 10000 files"),
    ],
)
def test_disk_quota_of_the_run_directory(
    params: dict[str, Any],
    isolation: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = set(descendants(os.getpid()))
    outcome = run_probe(params, DISK, isolation)
    assert (outcome.status, outcome.error_code) == ("failed", "disk_limit"), outcome
    assert "disk quota of 40 MB" in (outcome.error or "") and reason in (outcome.error or "")
    assert outcome.duration_s < DISK.wall_s / 2  # killed by the quota, not the clock
    assert list(tmp_path.iterdir()) == []  # and its directory is gone
    # Nothing is left running (a killed pid namespace can take a moment on a busy machine).
    assert left_running(before) == {}


def test_sparse_files_count_as_the_space_they_use() -> None:
    # ten 15 MB files with nothing written: 150 MB apparent size, a few KB on disk
    outcome = run_probe({"mode": "sparse_files", "count": 10, "size_mb": 15}, DISK)
    assert outcome.status == "succeeded", outcome


def test_disk_measurement(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"\1" * (4 * 1024 * 1024))
    run = tmp_path / "run"
    (run / "a" / "b").mkdir(parents=True)
    (run / "a" / "b" / "one.bin").write_bytes(b"\1" * (1024 * 1024))
    os.link(run / "a" / "b" / "one.bin", run / "a" / "same.bin")  # counted once
    (run / "link").symlink_to(outside)  # never followed
    (run / "file-link").symlink_to(outside / "big.bin")
    with open(run / "sparse.bin", "wb") as fh:
        fh.truncate(100 * 1024 * 1024)
    use = sandbox._measure_disk(run)
    assert use.problem is None and use.over(2 * 1024 * 1024) is None
    assert 1024 * 1024 <= use.bytes < 1.5 * 1024 * 1024
    assert "files take" in (use.over(512 * 1024) or "")


def test_disk_measurement_refuses_what_it_cannot_walk(tmp_path: Path) -> None:
    deep = tmp_path / "run"
    deep.joinpath(*["d"] * (sandbox.MAX_DISK_DEPTH + 2)).mkdir(parents=True)
    assert "nest over" in (sandbox._measure_disk(deep).over(1 << 40) or "")
    wide = tmp_path / "wide"
    wide.mkdir()
    for i in range(sandbox.MAX_DISK_ENTRIES + 1):
        (wide / str(i)).touch()
    assert "over 10000 files" in (sandbox._measure_disk(wide).over(1 << 40) or "")
    assert sandbox._measure_disk(tmp_path / "gone").bytes == 0


# --- processes -------------------------------------------------------------------------------

RLIMIT_NPROC_ENFORCED = os.geteuid() != 0  # the kernel exempts root (see runners.child)


@pytest.fixture(scope="module")
def fork_runs() -> dict[str, Outcome]:
    """A run that tries to start 300 sleeping processes, in each mode available here."""
    modes = ["bubblewrap", "rlimits-only"] if HAS_BWRAP else ["rlimits-only"]
    params = {"mode": "fork_many", "count": 300}
    before = set(descendants(os.getpid()))
    runs = {m: execute(PROBE, params, 0, FAST, isolation=m) for m in modes}  # type: ignore[arg-type]
    assert left_running(before) == {}  # none is left running
    return runs


@BOTH_MODES
def test_the_child_gets_a_process_limit(isolation: str, fork_runs: dict[str, Outcome]) -> None:
    outcome = fork_runs[isolation]
    assert outcome.status == "succeeded", outcome
    assert outcome.result is not None
    metrics = outcome.result.metrics
    limit, tasks = metrics["nproc_limit"], metrics["tasks"]
    assert limit != resource.RLIM_INFINITY and limit > NPROC_MARGIN
    # The user's tasks when the child started plus the margin; without bubblewrap other
    # processes of the same user (other tests) may come and go meanwhile.
    slack = 8 if isolation == "bubblewrap" else 200
    assert limit <= tasks + NPROC_MARGIN + slack, metrics
    if isolation == "bubblewrap":  # its own user namespace: only the sandbox's tasks count
        assert tasks < 16


@pytest.mark.skipif(not RLIMIT_NPROC_ENFORCED, reason="RLIMIT_NPROC is not enforced for root")
@BOTH_MODES
def test_a_fork_bomb_is_bounded(isolation: str, fork_runs: dict[str, Outcome]) -> None:
    outcome = fork_runs[isolation]
    assert outcome.status == "succeeded", outcome
    assert outcome.result is not None
    forked = outcome.result.metrics["forked"]
    # Without bubblewrap other processes of the same user may end meanwhile: some slack.
    assert 0 < forked <= NPROC_MARGIN + (0 if isolation == "bubblewrap" else 32), forked


# --- seccomp ---------------------------------------------------------------------------------


@needs_bwrap
@pytest.mark.skipif(seccomp.machine_arch() is None, reason="no seccomp table for this arch")
def test_seccomp_refuses_calls_experiments_never_need() -> None:
    outcome = run_probe({"mode": "seccomp", "n_figures": 1})
    assert outcome.status == "succeeded", outcome  # normal work (torch, a figure) still runs
    assert outcome.result is not None and len(outcome.result.figures) == 1
    metrics = outcome.result.metrics
    assert metrics["seccomp_mode"] == 2  # "Seccomp:\t2" in /proc/self/status: a filter
    eperm = metrics["eperm"]
    # Allowed, these would succeed (unshare(0)) or fail otherwise (EBADF, ESRCH).
    assert (metrics["unshare_errno"], metrics["setns_errno"], metrics["ptrace_errno"]) == (
        eperm,
        eperm,
        eperm,
    )
    assert metrics["getpid_errno"] == 0
    if seccomp.machine_arch() == "x86_64":
        assert metrics["x32_errno"] == eperm  # the x32 ABI is refused


def test_runs_without_bubblewrap_get_no_seccomp_filter() -> None:
    outcome = run_probe({"mode": "seccomp", "n_figures": 0}, isolation="rlimits-only")
    assert outcome.status == "succeeded" and outcome.result is not None
    assert outcome.result.metrics["unshare_errno"] == 0  # what the filter changes, above


@needs_bwrap
def test_a_broken_seccomp_filter_shows_in_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_bwrap", sandbox._BwrapState())
    monkeypatch.setattr(sandbox.seccomp, "filter_for_this_machine", lambda: b"\0" * 7)
    info = sandbox_info()
    assert info["isolation"] == "rlimits-only" and "seccomp" in info["reason"].lower()


# --- directories a killed worker left behind ---------------------------------------------------


def _old_dir(path: Path, age_s: float = 3600) -> Path:
    path.mkdir()
    (path / "work").mkdir()
    (path / "work" / "data.bin").write_bytes(b"x" * 1000)
    (path / "work" / "locked").mkdir(mode=0)  # unreadable: removed all the same
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def test_remove_stale_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = [_old_dir(tmp_path / f"{p}old") for p in sandbox.RUN_DIR_PREFIXES]
    fresh = _old_dir(tmp_path / "ra-run-fresh", age_s=10)
    other = _old_dir(tmp_path / "other-old")
    target = _old_dir(tmp_path / "target")
    link = tmp_path / "ra-run-link"
    link.symlink_to(target)
    when = time.time() - 3600
    os.utime(link, (when, when), follow_symlinks=False)
    kept = [fresh, other, target, link]
    if os.geteuid() == 0:  # another user's directory is not ours to remove
        foreign = _old_dir(tmp_path / "ra-run-foreign")
        os.chown(foreign, 65534, 65534)
        os.utime(foreign, (when, when))
        kept.append(foreign)

    assert sandbox.remove_stale_dirs(600) == len(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert link.is_symlink() and (target / "work" / "data.bin").exists()  # not followed


def test_unreadable_directories_a_run_left_are_removed(tmp_path: Path) -> None:
    run = _old_dir(tmp_path / "ra-run-x")
    (run / "work" / "no-write").mkdir(mode=0o500)
    (run / "work" / "no-list").mkdir(mode=0o300)
    (run / "work" / "no-list" / "f").touch()
    sandbox._rmtree(run)
    assert not run.exists()


def test_removing_a_symlinked_run_dir_leaves_the_temp_dir_alone(tmp_path: Path) -> None:
    target = _old_dir(tmp_path / "target")
    tmp_path.chmod(0o755)
    link = tmp_path / "ra-run-link"
    link.symlink_to(target)
    sandbox._rmtree(link)
    assert tmp_path.stat().st_mode & 0o777 == 0o755
    assert (target / "work" / "data.bin").exists()


# --- failures and result validation -----------------------------------------------------------


def test_invalid_params_are_reported() -> None:
    outcome = run_probe({"mode": "explode", "n_figures": 99})
    assert (outcome.status, outcome.error_code) == ("failed", "invalid_params"), outcome
    assert "mode" in (outcome.error or "") and "n_figures" in (outcome.error or "")


def test_experiment_exception_is_reported() -> None:
    outcome = run_probe({"mode": "raise"})
    assert (outcome.status, outcome.error_code) == ("failed", "experiment_error")
    assert "ValueError: probe failure 42" in (outcome.error or "")


@pytest.mark.parametrize(
    ("params", "limits", "reason"),
    [
        ({"mode": "bad_png"}, FAST, "fig-0.png is not a complete PNG"),
        ({"mode": "ok"}, Limits(max_figure_bytes=1000), "fig-0.png is"),
        ({"mode": "ok", "n_figures": 3}, Limits(max_figures=2), "3 figures, over the limit"),
        ({"mode": "bad_finding"}, FAST, 'exactly the keys "en" and "ja"'),
        ({"mode": "not_result"}, FAST, "run() returned dict, not Result"),
        ({"mode": "symlink_result"}, FAST, "result.json cannot be opened"),
        ({"mode": "no_result"}, FAST, "result.json is missing"),
    ],
)
def test_bad_results_are_rejected(params: dict[str, Any], limits: Limits, reason: str) -> None:
    outcome = run_probe(params, limits)
    assert (outcome.status, outcome.error_code) == ("failed", "invalid_result"), outcome
    assert outcome.result is None
    assert reason in (outcome.error or "")


def test_a_diverged_run_is_a_finding_not_an_error() -> None:
    outcome = run_probe({"mode": "nan"})
    assert outcome.status == "succeeded", outcome
    assert outcome.result is not None
    assert outcome.result.metrics["diverged"] is True and "mean" not in outcome.result.metrics
    assert outcome.result.supports_claim is None
    assert "diverged" in outcome.result.finding["en"] and "mean" in outcome.result.finding["en"]
    assert "発散" in outcome.result.finding["ja"]


def _result_dir(tmp_path: Path, doc: Any, figures: tuple[bytes, ...] = ()) -> Path:
    (tmp_path / "result.json").write_text(json.dumps(doc))
    for i, png in enumerate(figures):
        (tmp_path / f"fig-{i}.png").write_bytes(png)
    return tmp_path


GOOD_DOC = {
    "metrics": {"a": 1.5, "b": True, "c": 3},
    "series": {"s": [1, 2.5]},
    "finding": {"en": "A is 1.5.", "ja": "A は 1.5。"},
    "supports_claim": False,
    "figure_count": 0,
    "figure_langs": [],
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"metrics": {"a": "1.5"}}, "metric 'a'"),
        ({"metrics": {"a": float("nan")}}, "metric 'a' is not a finite number"),
        ({"metrics": {"a": [1]}}, "metric 'a'"),
        ({"metrics": {"": 1}}, "invalid name"),
        ({"series": {"s": [True]}}, "series 's'"),
        ({"series": {"s": "12"}}, "series 's' is not a list"),
        ({"finding": {"en": " ", "ja": "x"}}, "non-empty"),
        ({"finding": {"en": "x" * 2000, "ja": "x"}}, "over 1000 characters"),
        ({"supports_claim": 1}, "supports_claim"),
        ({"figure_count": 1}, "fig-0.png is missing"),
        ({"figure_langs": ["fr"]}, "figure_langs must list some of"),
        ({"figure_langs": "en"}, "figure_langs must list some of"),
        ({"extra": 1}, "exactly the keys"),
        ({"series": {"s": [0.5] * 50}}, "50 points, over the limit of 20"),
    ],
)
def test_result_schema(tmp_path: Path, change: dict[str, Any], reason: str) -> None:
    work = _result_dir(tmp_path, GOOD_DOC | change)
    with pytest.raises(sandbox._InvalidResult, match=reason.replace("(", r"\(")):
        sandbox._load_result(work, Limits(max_series_len=20))


def test_result_size_cap(tmp_path: Path) -> None:
    work = _result_dir(tmp_path, GOOD_DOC)
    with pytest.raises(sandbox._InvalidResult, match="result.json is .* over the limit of 100"):
        sandbox._load_result(work, Limits(max_result_bytes=100))


def test_result_schema_accepts_a_good_result(tmp_path: Path) -> None:
    result = sandbox._load_result(_result_dir(tmp_path, GOOD_DOC), Limits())
    assert result.metrics == GOOD_DOC["metrics"]
    assert result.series == {"s": [1.0, 2.5]}


def test_result_files_must_be_plain(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "result.json")  # reading it would block the worker
    with pytest.raises(sandbox._InvalidResult, match="not a regular file"):
        sandbox._load_result(tmp_path, Limits())
    (tmp_path / "result.json").unlink()
    (tmp_path / "elsewhere.json").write_text(json.dumps(GOOD_DOC))
    os.link(tmp_path / "elsewhere.json", tmp_path / "result.json")
    with pytest.raises(sandbox._InvalidResult, match="hard links"):
        sandbox._load_result(tmp_path, Limits())


# --- bubblewrap failing at run time ------------------------------------------------------------


@needs_bwrap
def test_bwrap_start_failure_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = sandbox._bwrap
    monkeypatch.setattr(
        sandbox, "_bwrap", sandbox._BwrapState(checked=True, path=real.path, works=True)
    )
    monkeypatch.setattr(sandbox, "_fontlist", dict(sandbox._fontlist))
    real_argv = sandbox._bwrap_argv
    monkeypatch.setattr(
        sandbox,
        "_bwrap_argv",
        lambda *a, **k: [real_argv(*a, **k)[0], "--no-such-option", *real_argv(*a, **k)[1:]],
    )
    with caplog.at_level(logging.WARNING, logger="runners.sandbox"):
        outcome = run_probe({"mode": "ok", "n_figures": 0}, isolation="auto")
    assert outcome.status == "succeeded"
    assert outcome.isolation == "rlimits-only"  # says so, instead of claiming isolation
    assert "bwrap did not start" in caplog.text
    info = sandbox_info()
    assert info["isolation"] == "rlimits-only" and "no-such-option" in info["reason"]
    # Required isolation refuses to run unsandboxed.
    refused = run_probe({"mode": "ok"}, isolation="bubblewrap")
    assert (refused.status, refused.error_code) == ("failed", "sandbox_error")


@BOTH_MODES
def test_a_warm_child_is_a_fresh_sandbox_started_ahead(isolation: str) -> None:
    leftover = {"mode": "inspect", "write_paths": ["leftover.txt"]}
    look = {"mode": "inspect", "read_paths": ["leftover.txt", "/sandbox/leftover.txt"]}
    sandbox.keep_warm_children(True)
    try:
        first = execute(PROBE, leftover, 0, FAST, isolation=isolation)  # type: ignore[arg-type]
        assert first.status == "succeeded" and not first.warm_start
        assert first.result is not None and first.result.metrics["write_0"] is True
        assert sandbox.warm_child_ready()
        second = execute(PROBE, look, 0, FAST, isolation=isolation)  # type: ignore[arg-type]
        assert second.status == "succeeded" and second.warm_start
        assert second.result is not None
        # Its own new directory: nothing the previous run wrote is there.
        assert second.result.metrics["read_0"] is False
        assert second.result.metrics["read_1"] is False
        assert second.isolation == first.isolation
        # Limits that change the sandbox's command line get a child started for them.
        other = Limits(wall_s=20, cpu_s=20, memory_mb=768, file_size_mb=8)
        third = execute(PROBE, {"mode": "ok"}, 0, other, isolation=isolation)  # type: ignore[arg-type]
        assert third.status == "succeeded" and not third.warm_start
    finally:
        spare = sandbox._warm.spare
        sandbox.keep_warm_children(False)
    assert not sandbox.warm_child_ready()
    assert spare is not None and spare.proc.poll() is not None  # turned off: ended
    assert not spare.rundir.exists()


def test_without_warm_children_every_run_starts_cold() -> None:
    first = run_probe({"mode": "ok"}, isolation="rlimits-only")
    second = run_probe({"mode": "ok"}, isolation="rlimits-only")
    assert not first.warm_start and not second.warm_start
    assert not sandbox.warm_child_ready()
