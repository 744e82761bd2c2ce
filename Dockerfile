# unsign-worker: one image for the worker, Flower and (sandbox only) the gateway emulator.
#   docker build -t unsign-worker .
#   docker compose up -d            (see docs/deployment.md)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user: the worker needs no root, and its secrets are readable by it alone.
RUN groupadd --system --gid 10001 unsign \
    && useradd --system --uid 10001 --gid unsign --home-dir /app --shell /usr/sbin/nologin unsign

WORKDIR /app
COPY pyproject.toml celeryconfig.py README.m[d] ./
COPY unsign_worker ./unsign_worker
RUN pip install . && rm -rf /root/.cache
COPY scripts/docker-entrypoint.sh scripts/healthcheck.py /app/scripts/
# The sandbox emulator seeds its data here (a named volume takes this owner on first use).
RUN mkdir -p /sandbox && chown unsign:unsign /sandbox

USER unsign
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["unsign-worker", "worker", "--hostname", "unsign@%h"]
