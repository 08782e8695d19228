# One image for every environment (docs/deployment.md).
#
#   docker build -t llmhub .
#   docker run -p 8080:8080 -e LLMHUB_DATABASE_URL=postgresql://... llmhub     # the intended use
#   docker run -p 8080:8080 -v llmhub:/data llmhub                              # a quick try
#
# Without LLMHUB_DATABASE_URL the hub starts a private embedded PostgreSQL under /data.
# static/ is the committed UI build (CI checks it is exactly what ui/ builds to), so no
# Node.js stage is needed. Base images are pinned by exact tag and digest (both stages use the
# same one, so the venv's interpreter path is identical).

FROM python:3.11.16-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# A venv without pip or setuptools: the final image carries only what llmhub imports.
RUN python -m venv --without-pip /opt/llmhub
COPY pyproject.toml README.md config.example.toml ./
COPY llmhub/ llmhub/
COPY providers/ providers/
COPY sql/ sql/
COPY static/ static/
# Every dependency ships manylinux wheels, so nothing is compiled. pip byte-compiles as it
# installs: the running user cannot write __pycache__ under /opt, and a cold start stays fast.
RUN pip --python /opt/llmhub/bin/python install .

FROM python:3.11.16-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
RUN groupadd --system --gid 10001 llmhub \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin llmhub \
    && mkdir -p /data /etc/llmhub \
    && chown 10001:10001 /data
COPY --from=build /opt/llmhub /opt/llmhub
ENV PATH=/opt/llmhub/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    LLMHUB_HOST=0.0.0.0 \
    LLMHUB_DATA_DIR=/data
# ./llmhub.toml is read when present: mount one at /etc/llmhub/llmhub.toml.
WORKDIR /etc/llmhub
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# llmhub drains on SIGTERM: running answers get shutdown_timeout (30 s) to finish, then are
# stored as interrupted. Give `docker stop` at least that long (docker stop -t 45).
STOPSIGNAL SIGTERM
# Readiness: 503 only while the database is unreachable (a provider being down is "degraded").
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('LLMHUB_PORT', '8080'), timeout=4)"]
CMD ["llmhub", "serve"]
