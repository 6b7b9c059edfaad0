# wan-gateway image: `docker compose up` uses it for the api, worker and migrate services (docker-compose.yml).
# Two stages: the builder resolves the dependencies into a virtualenv; the runtime stage copies that venv and
# the source, and runs as an unprivileged user. No secret is needed to build, and none is baked in: every
# credential comes from the environment at run time (see README, "Deploy").

# ---- builder: /opt/venv with the dependencies and the gateway ------------------------------------------------
FROM python:3.11.13-slim-bookworm AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /app

# Dependencies first, so this layer is rebuilt only when pyproject.toml changes: a stub package is enough for
# pip to resolve and install them. Every dependency ships manylinux wheels (PyAV bundles FFmpeg), so the
# builder needs no compiler.
#
# The gateway is installed in editable mode on purpose: `wan-gateway migrate` finds migrations/ beside the
# `app` package (app/db/migrate.py; a wheel carries them inside instead), so the source tree stays in /app, in the same
# place in both stages, and the venv points at it. With the `sandbox` extra (numpy): without
# DASHSCOPE_API_KEY every container runs the built-in DashScope sandbox (docker-compose.yml), so that
# `docker compose up` works out of the box.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && pip install --no-cache-dir --editable ".[sandbox]"

COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
RUN python -m compileall -q app migrations

# ---- runtime ----------------------------------------------------------------------------------------------
FROM python:3.11.13-slim-bookworm AS runtime

# Writable state lives under /data (mount volumes there): the SQLite default database, local output and
# staging files, the sandbox's task file and clip cache. /app (the code) and /opt/venv stay root-owned.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DATABASE_URL=sqlite+aiosqlite:////data/gateway.db \
    OUTPUT_DIR=/data/output \
    SANDBOX_CLIP_CACHE_DIR=/data/cache/sandbox-clips

RUN groupadd --system --gid 10001 wan \
    && useradd --system --uid 10001 --gid wan --home-dir /data --no-create-home --shell /usr/sbin/nologin wan \
    && mkdir -p /data/output /data/cache /data/sandbox \
    && chown -R wan:wan /data

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

WORKDIR /data
USER 10001:10001

EXPOSE 8000

# Liveness of the API without curl in the image. The worker answers on its own health port, so
# docker-compose.yml gives it its own healthcheck (the same one-liner, another URL).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)", "http://127.0.0.1:8000/healthz"]

# Migrations are a separate one-shot step (`wan-gateway migrate`; the migrate service in docker-compose.yml),
# so replicas never race to apply them. Other roles: `wan-gateway worker`, `wan-gateway migrate`.
CMD ["wan-gateway", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
