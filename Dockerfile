# whopfunnel on Debian's Python image (bookworm, slim). Build: docker build -t whopfunnel .
# Not built on the machine this was written on (no Docker engine there): linted with
# hadolint only. See README "Deploying" and docs/deploying.md.
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 whopfunnel \
    && useradd --system --uid 10001 --gid whopfunnel --home-dir /app --shell /usr/sbin/nologin whopfunnel

WORKDIR /app
# The package first (a layer that changes only with the code), then the configuration.
COPY setup.cfg pyproject.toml README.md ./
COPY whopfunnel_plugin ./whopfunnel_plugin
# The project itself, from this folder: its dependencies carry the version ranges of setup.cfg.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[postgres,mysql]'
COPY plugin.yaml ./
COPY funnels ./funnels

USER 10001:10001
EXPOSE 8080
# /readyz: the database answers, its schema is current, funnels are loaded.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
STOPSIGNAL SIGTERM
# plugin.yaml listens on 127.0.0.1; in a container the port must be reachable from outside.
CMD ["whopfunnel", "serve", "--host", "0.0.0.0", "--log-format", "json"]
