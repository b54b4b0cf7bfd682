# syntax=docker/dockerfile:1.7
#
# One image per service, from the repository root (libs/common must be in the context):
#
#   docker build --build-arg SERVICE=gateway -t dfj-gateway .
#   docker build --build-arg SERVICE=jira-worker -t dfj-jira-worker .
#   docker build --build-arg SERVICE=discord-worker -t dfj-discord-worker .
#   docker build --build-arg SERVICE=linker -t dfj-linker .
#   docker build --build-arg SERVICE=sandbox -t dfj-sandbox .     (simulators + all services)
#
# Stages: `runtime` (Debian slim + Python 3.11 + Microsoft ODBC Driver 18 and unixODBC, non-root
# user) → `builder` (uv installs the locked dependencies first, then the workspace packages,
# --no-editable, into /app/.venv) → `svc-<SERVICE>` (the venv only, and the service's port,
# health check and entry point). BuildKit builds only the stages the chosen one needs.

ARG SERVICE=gateway
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

# --- runtime: what every service needs at run time -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# msodbcsql18 (its name in a connection string is exactly "ODBC Driver 18 for SQL Server"),
# unixODBC (pyodbc's wheel links libodbc.so.2) and libgssapi-krb5-2 (slim images lack it; the
# driver then loads but fails at connect). ACCEPT_EULA=Y, or the install waits for an answer.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
    curl -fsSL https://packages.microsoft.com/keys/microsoft.asc \
      | gpg --dearmor -o /usr/share/keyrings/microsoft-prod.gpg; \
    echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/microsoft-prod.gpg] https://packages.microsoft.com/debian/12/prod bookworm main" \
      > /etc/apt/sources.list.d/mssql-release.list; \
    apt-get update; \
    ACCEPT_EULA=Y apt-get install -y --no-install-recommends msodbcsql18 unixodbc libgssapi-krb5-2; \
    apt-get purge -y --auto-remove curl gnupg; \
    rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 dfj \
 && useradd --system --uid 10001 --gid dfj --home-dir /app --no-create-home --shell /usr/sbin/nologin dfj \
 && mkdir -p /app/var && chown -R dfj:dfj /app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DFJ_BIND_HOST=0.0.0.0 \
    DFJ_LOG_FORMAT=json \
    DFJ_DRAIN_GRACE_SECONDS=25
WORKDIR /app

# --- builder: uv, dependencies first (cached until uv.lock changes), then the packages -------
FROM runtime AS builder
ARG SERVICE
ARG UV_VERSION
USER root
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/pyproject.toml
COPY libs/sandbox/pyproject.toml libs/sandbox/pyproject.toml
COPY services/gateway/pyproject.toml services/gateway/pyproject.toml
COPY services/jira-worker/pyproject.toml services/jira-worker/pyproject.toml
COPY services/discord-worker/pyproject.toml services/discord-worker/pyproject.toml
COPY services/linker/pyproject.toml services/linker/pyproject.toml
# "sandbox" runs the simulators and starts the four services itself: it needs every package.
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ "${SERVICE}" = "sandbox" ]; then packages="--all-packages"; else packages="--package dfj-${SERVICE}"; fi; \
    uv sync --frozen --no-dev --no-editable --no-install-workspace ${packages}
COPY libs/ libs/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ "${SERVICE}" = "sandbox" ]; then packages="--all-packages"; else packages="--package dfj-${SERVICE}"; fi; \
    uv sync --frozen --no-dev --no-editable ${packages}
# The driver is registered and pyodbc can load it, or the build fails here, not at the first connect.
RUN /app/.venv/bin/python -c "import pyodbc, sys; d = pyodbc.drivers(); print(d); sys.exit('ODBC Driver 18 for SQL Server' not in d)"

# --- the service images: the venv only, non-root -----------------------------------------------
FROM runtime AS service
COPY --from=builder --chown=dfj:dfj /app/.venv /app/.venv
USER dfj
# The services drain on SIGTERM for DFJ_DRAIN_GRACE_SECONDS (25 s): give them at least 30 s
# before SIGKILL (compose: stop_grace_period: 30s; Container Apps: terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM

FROM service AS svc-gateway
ENV DFJ_GATEWAY_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('DFJ_GATEWAY_PORT', '8080'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "dfj_gateway"]

FROM service AS svc-jira-worker
ENV DFJ_JIRA_WORKER_PORT=8081
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('DFJ_JIRA_WORKER_PORT', '8081'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "dfj_jira_worker"]

FROM service AS svc-discord-worker
ENV DFJ_DISCORD_WORKER_PORT=8082
EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('DFJ_DISCORD_WORKER_PORT', '8082'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "dfj_discord_worker"]

FROM service AS svc-linker
ENV DFJ_LINKER_PORT=8083
EXPOSE 8083
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('DFJ_LINKER_PORT', '8083'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "dfj_linker"]

# The simulators and the four services in one container (local bus, SQLite): make run's
# sandbox. Its page listens on loopback only, so compose puts a forwarder in front of it.
FROM service AS svc-sandbox
EXPOSE 8090
ENTRYPOINT ["python", "-m", "dfj_sandbox.stack.demo"]

FROM svc-${SERVICE} AS final
