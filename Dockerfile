# syntax=docker/dockerfile:1
# Production image of the campsync server. Build: docker build -t campsync .
# Run: docker run -p 8000:8000 -v campsync-data:/data \
#        -e CAMPSYNC_DATABASE_URL=postgresql+psycopg://... campsync

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, from the pins, with placeholder packages: this layer is rebuilt only
# when a pyproject.toml or the pins change, not on every edit of the sources.
COPY constraints.txt pyproject.toml README.md ./
COPY sync/pyproject.toml sync/README.md sync/
RUN mkdir -p api migrations sync/src/campsync_sync \
    && touch api/__init__.py migrations/env.py sync/src/campsync_sync/__init__.py \
    && /opt/venv/bin/pip install -c constraints.txt ./sync . \
    && /opt/venv/bin/pip uninstall --yes campsync campsync-sync \
    && rm -rf api migrations sync/src
COPY sync/ sync/
COPY pyproject.toml README.md ./
COPY api/ api/
COPY migrations/ migrations/
RUN /opt/venv/bin/pip install --no-deps ./sync . \
    && /opt/venv/bin/pip check

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 campsync && useradd --system --uid 10001 --gid 10001 --home-dir /data --create-home campsync
COPY --from=build /opt/venv /opt/venv
COPY scripts/prestart /usr/local/bin/campsync-prestart
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CAMPSYNC_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Migrations run in the prestart step, never at import; then the server replaces the shell.
CMD ["campsync-prestart", "campsync", "serve", "--host", "0.0.0.0", "--port", "8000"]
