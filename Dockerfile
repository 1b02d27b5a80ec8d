# Runnable Answers: one image, three roles (docker/entrypoint.sh): web, worker, migrate.
#   docker compose build && docker compose up -d        (see docker-compose.yml)
#
# torch==2.13.0 must be installed as its CPU build (the default Linux wheels pull in GPU
# libraries worth gigabytes). pip takes it from wherever it is told to look:
#   - put the CPU wheel (torch-2.13.0+cpu-cp311-...whl) into wheels/ before building
#     (wheels/ is searched by default: PIP_FIND_LINKS=/wheels), or
#   - docker compose build --build-arg PIP_EXTRA_INDEX_URL=<an index with CPU torch wheels>
# The "+cpu" build satisfies the torch==2.13.0 pin and sorts above the plain one.
FROM python:3.11-slim-bookworm

# pip reads these from the environment of the RUN steps below (unset unless given).
ARG PIP_FIND_LINKS=/wheels
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL

# Runtime environment: unbuffered logs, no .pyc writes (the root filesystem is read-only
# in compose), matplotlib's cache in the /tmp tmpfs, and the web role listening on every
# interface of the container.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    MODEL_CACHE_DIR=/app/models \
    WEB_BIND=0.0.0.0:8000

# bubblewrap isolates each experiment run (user, pid, net, mount namespaces; no network).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The pinned dependencies first, in their own layer: code changes do not reinstall torch.
# wheels/ is mounted for this step only, so its wheels do not end up in the image.
COPY pyproject.toml ./
RUN --mount=type=bind,source=wheels,target=/wheels \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Editable install on purpose: migrations/ and the seed knowledge are found next to the
# packages, and the worker's sandbox binds /app/runners into each run read-only.
COPY service/ service/
COPY knowledge/ knowledge/
COPY runners/ runners/
COPY migrations/ migrations/
COPY docker/entrypoint.sh docker/entrypoint.sh
# The int8 multilingual-e5-small graph is built at build time: the containers' root is
# read-only.
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps -e . \
    && python -m compileall -q service knowledge runners migrations \
    && python -m knowledge.onnx_e5

# An unprivileged user: the code stays root-owned and read-only to it. bubblewrap needs no
# privileges of its own here (it creates a user namespace; see the worker in compose).
RUN useradd --system --uid 10001 --user-group --home-dir /tmp --shell /usr/sbin/nologin app \
    && install -d -o app -g app /var/lib/ra-index  # index snapshots (a volume in compose)
USER app

EXPOSE 8000
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
