"""docker-compose.yml and the Dockerfile, checked against the application's real settings.

No Docker engine runs here, so the files are parsed: every service, role, command,
variable, URL and health check must match what the code actually reads and registers.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from flask import Flask
from sqlalchemy.engine import make_url

from knowledge.db import make_engine
from knowledge.settings import Settings
from runners import registry
from runners.jobs import make_huey
from service import create_app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
APP_SERVICES = ("migrate", "web", "worker")
CODE_DIRS = ("service", "knowledge", "runners", "migrations")
# Values for ${VAR...} references, as an operator's .env would give them.
DOTENV = {"POSTGRES_PASSWORD": "pw", "SECRET_KEY": "k" * 64}
# Variables read by a library or the interpreter, not by our code: name -> package that
# must mention it in its source (None: CPython, checked with `python --help-env`).
THIRD_PARTY: dict[str, str | None] = {
    "MPLCONFIGDIR": "matplotlib",
    "PYTHONUNBUFFERED": None,
    "PYTHONDONTWRITEBYTECODE": None,
}
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


# --- the files ---------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def interpolate(value: str) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with DOTENV as the .env."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        if name in DOTENV:
            return DOTENV[name]
        if op and op.endswith("-"):
            return arg
        raise AssertionError(f"${{{name}}} has no value and no default")

    return INTERPOLATION.sub(sub, value)


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instruction(name: str) -> list[str]:
    return [rest for word, rest in dockerfile() if word == name]


@cache
def roles() -> dict[str, list[list[str]]]:
    """Entrypoint role -> the command lines it runs ("$@" dropped)."""
    found = {}
    for line in ENTRYPOINT.read_text().splitlines():
        m = re.match(r"^\s*([\w-]+)\)\s*(.+?)\s*;;\s*$", line)
        if m:
            commands = []
            for part in m.group(2).split("&&"):
                argv = [a for a in shlex.split(part) if a != "$@"]
                commands.append(argv[1:] if argv[:1] == ["exec"] else argv)
            found[m.group(1)] = commands
    return found


# --- what the application reads ------------------------------------------------------------


def _python_files() -> Iterator[Path]:
    for top in CODE_DIRS:
        yield from (ROOT / top).rglob("*.py")


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def environ_uses() -> dict[str, set[str]]:
    """File -> how it touches ``os.environ`` directly (the method, or "[]")."""
    uses: dict[str, set[str]] = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Subscript) and _is_environ(node.value):
                use = "[]"
            elif isinstance(node, ast.Attribute) and _is_environ(node.value):
                use = node.attr
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getenv":
                use = "getenv"
            else:
                continue
            uses.setdefault(str(path.relative_to(ROOT)), set()).add(use)
    return uses


# What the application reads: its settings object, and Flask settings as RA_<NAME>.
READ = frozenset(Settings.model_fields)
PREFIXES = ("RA_",)


def unread(names: set[str]) -> set[str]:
    """The names in ``names`` that neither our code nor a known library reads."""
    return {
        n for n in names if n not in READ and n not in THIRD_PARTY and not n.startswith(PREFIXES)
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    db = tmp_path_factory.mktemp("compose") / "app.db"
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{db}"})
    yield app
    app.extensions["core"].engine.dispose()


# --- tests ---------------------------------------------------------------------------------


def test_services_and_their_roles() -> None:
    assert set(compose()["services"]) == {*APP_SERVICES, "postgres", "redis"}
    images = {service(name)["image"] for name in APP_SERVICES}
    assert len(images) == 1, "web, worker and migrate run the same image"
    for name in APP_SERVICES:
        assert service(name)["build"] == "."
        role = service(name)["command"][0]
        assert role == name and role in roles(), f"{name}: no entrypoint role {role!r}"
    assert service("postgres")["image"] == "postgres:15"
    assert service("redis")["image"].split(":")[0] == "redis"
    declared = set(compose()["volumes"])
    for name, svc in compose()["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"{name}: volume {source} is not declared"


def _resolve_flask(app: Flask, argv: list[str]) -> click.Command:
    """Follow ``flask --app service <group> <command> args`` through the app's real CLI
    and parse the arguments (a wrong option or argument raises a UsageError)."""
    assert argv[:3] == ["flask", "--app", "service"], argv
    args = argv[3:]
    command: click.Command = app.cli
    ctx = click.Context(command, info_name="flask")
    while isinstance(command, click.Group):
        name = args.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`flask {' '.join(argv[3:])}`: no command {name!r}"
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    command.make_context(command.name or "", list(args), parent=ctx.parent)
    return command


def test_every_role_runs_a_real_command(app: Flask) -> None:
    used = {service(name)["command"][0] for name in APP_SERVICES}
    cmd = shlex.split(instruction("CMD")[-1].replace("[", "").replace("]", "").replace(",", " "))
    used |= set(cmd[:1])
    assert used <= set(roles()), f"roles missing from the entrypoint: {used - set(roles())}"
    for role in used:
        for argv in roles()[role]:
            if argv[0] == "gunicorn":
                config = argv[argv.index("--config") + 1]
                assert (ROOT / config).is_file(), config
                module, _, attr = argv[-1].partition(":")
                assert importlib.util.find_spec(module) is not None, module
                tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
                assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
                assert attr in assigned, f"{module} defines no {attr}"
            else:
                _resolve_flask(app, argv)
    worker = _resolve_flask(app, roles()["worker"][0] + service("worker")["command"][1:])
    assert worker.name == "worker"
    migrate = [" ".join(argv[3:5]) for argv in roles()["migrate"]]
    assert migrate == ["db upgrade", "kb import"]
    assert "--retries" in roles()["migrate"][0] and (ROOT / roles()["migrate"][1][-1]).is_dir()


def test_the_web_role_passes_gunicorn_check_config(tmp_path: Path) -> None:
    """The entrypoint's web role, run for real: gunicorn loads its config and the WSGI app."""
    env = {
        **os.environ,
        **environment("web"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), "web", "--check-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_variable_set_is_one_the_app_reads() -> None:
    for name in APP_SERVICES:
        env = environment(name)
        assert {"DATABASE_URL", "QUEUE_URL", "RATELIMIT_STORAGE_URI", "SECRET_KEY"} <= set(env)
        assert not unread(set(env)), f"{name} sets variables nobody reads"
    assert environment("web")["WEB_WORKERS"] == "2"
    assert environment("web")["SECRET_KEY"] == DOTENV["SECRET_KEY"], "from .env, never inline"


def test_the_check_catches_a_variable_nobody_reads() -> None:
    assert unread({"DATABSE_URL", "QUEUE_URL", "WEB_WORKERS", "RA_TESTING"}) == {"DATABSE_URL"}


def test_the_environment_is_read_only_by_the_settings_object() -> None:
    # gunicorn's config only sets a default (EMBED_THREADS=1) before the settings are read.
    assert environ_uses() == {"service/gunicorn_conf.py": {"setdefault"}}


def test_urls_point_at_the_compose_services() -> None:
    postgres = service("postgres")["environment"]
    for name in APP_SERVICES:
        env = environment(name)
        db = make_url(env["DATABASE_URL"])
        assert db.drivername == "postgresql+psycopg"
        assert (db.host, db.port) == ("postgres", 5432)
        assert (db.username, db.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
        assert db.password == interpolate(postgres["POSTGRES_PASSWORD"])
        make_engine(env["DATABASE_URL"]).dispose()  # the driver is installed; no connection
        queue, limits = urlsplit(env["QUEUE_URL"]), urlsplit(env["RATELIMIT_STORAGE_URI"])
        for url in (queue, limits):
            assert (url.scheme, url.hostname, url.port) == ("redis", "redis", 6379)
        assert queue.path != limits.path, "the queue and the rate limits use separate databases"
        assert type(make_huey(env["QUEUE_URL"])).__name__ == "RedisHuey"


def test_health_checks_use_real_routes_and_ports(app: Flask) -> None:
    web = service("web")
    probe = " ".join(web["healthcheck"]["test"])
    url = urlsplit(re.search(r"http://[^'\" ]+", probe).group(0))  # type: ignore[union-attr]
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert url.path in routes and url.path == "/healthz"
    bind_port = int(environment("web")["WEB_BIND"].rsplit(":", 1)[1])
    assert url.port == bind_port
    assert any(interpolate(p).endswith(f":{bind_port}") for p in web["ports"])
    assert {"CMD", "python"} <= set(web["healthcheck"]["test"])  # the slim image has no curl
    assert "pg_isready" in " ".join(service("postgres")["healthcheck"]["test"])
    assert service("redis")["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    needs = {
        "migrate": {"postgres": "service_healthy"},
        "web": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
        "worker": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
    }
    for name, wanted in needs.items():
        got = {k: v["condition"] for k, v in service(name)["depends_on"].items()}
        assert got == wanted, name


def test_worker_sandbox_settings() -> None:
    worker = service("worker")
    opts = set(worker["security_opt"])
    assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= opts
    assert "no-new-privileges:true" in opts
    assert not worker.get("privileged") and not worker.get("cap_add")
    assert worker["cap_drop"] == ["ALL"] and worker["read_only"] is True
    assert any(t.split(":")[0] == "/tmp" for t in worker["tmpfs"])
    assert worker["stop_signal"] == "SIGINT"
    longest = max(registry.spec(name).TIME_BUDGET_S for name in registry.names())
    assert int(worker["stop_grace_period"].rstrip("s")) > longest
    for name in ("web", "migrate"):  # only the worker relaxes confinement
        assert set(service(name)["security_opt"]) == {"no-new-privileges:true"}
        assert service(name)["read_only"] is True


def test_dockerfile() -> None:
    assert instruction("FROM") == ["python:3.11-slim-bookworm"]
    runs = " ".join(instruction("RUN"))
    assert re.search(r"apt-get install [^&]*\bbubblewrap\b", runs)
    assert re.search(r"pip install [^&]*-e \.", runs)
    assert not re.search(r"https?://", DOCKERFILE.read_text()), "no registry hosts in the image"
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")
    assert instruction("ENTRYPOINT") == ['["/app/docker/entrypoint.sh"]']
    assert os.access(ENTRYPOINT, os.X_OK)
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [src for copy in instruction("COPY") for src in copy.split()[:-1]]
    sources += re.findall(r"--mount=type=bind,source=([^, ]+)", runs)
    for source in sources:
        assert (ROOT / source).exists(), f"{source}: no such file in the build context"
        top = source.rstrip("/").split("/")[0]
        assert not any(fnmatch.fnmatch(top, pattern) for pattern in ignored), source
    assert all(name.startswith("PIP_") for name in (a.split("=")[0] for a in instruction("ARG")))
    names = set()
    for env in instruction("ENV"):
        names |= {pair.split("=", 1)[0] for pair in shlex.split(env)}
    assert not unread(names), "the image sets variables nobody reads"
    help_env = subprocess.run(
        [sys.executable, "--help-env"], capture_output=True, text=True, check=True
    ).stdout
    for name in names & set(THIRD_PARTY):
        package = THIRD_PARTY[name]
        if package is None:
            assert name in help_env, name
            continue
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, package
        # Python sources, or the compiled extension for a library written in Rust or C.
        sources = [p for p in Path(spec.origin).parent.rglob("*") if p.suffix in (".py", ".so")]
        assert any(name.encode() in path.read_bytes() for path in sources), name
