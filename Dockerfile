# One image for every environment: `docker run -p 8080:8080 -v llmhub:/data llmhub`.

FROM node:20-bookworm-slim AS ui
WORKDIR /src/ui
COPY ui/package.json ui/package-lock.json ui/.npmrc ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
# vite writes the build to ../static, i.e. /src/static
RUN npm run build

FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md config.example.toml ./
COPY llmhub/ llmhub/
COPY providers/ providers/
COPY sql/ sql/
COPY --from=ui /src/static/ static/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN groupadd --gid 10001 llmhub \
    && useradd --create-home --uid 10001 --gid 10001 llmhub \
    && mkdir /data \
    && chown llmhub:llmhub /data
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels
USER 10001:10001
ENV LLMHUB_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
CMD ["llmhub", "serve", "--host", "0.0.0.0"]
