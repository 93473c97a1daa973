# syntax=docker/dockerfile:1
# PondOps container image (docs/operations/containers.md). One image, one process per container:
# the command picks it (web, qcluster, poll_sqs, run_reaper, migrate, manage ARGS...).
#
# Based on Debian bookworm and Debian's own Python 3.11, so that it builds from any registry's
# debian:bookworm-slim and equally from a base image made locally with debootstrap
# (deploy/container/smoke does that: no Docker Hub needed).
ARG BASE_IMAGE=debian:bookworm-slim

# --- base: the Python runtime every stage shares ---------------------------------------------
FROM ${BASE_IMAGE} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# tini is PID 1: it reaps zombies and (with -g) forwards SIGTERM to the whole process group, so
# qcluster's sentinel and workers stop with their master, as systemd's KillMode=control-group.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

# --- builder: compilers, pip, the wheel and the venv -----------------------------------------
FROM base AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11-venv python3.11-dev build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# The CA bundle pip trusts: Debian's. A build behind a TLS-intercepting proxy mounts its own and
# names it here (deploy/container/smoke does); a build argument of this stage only, never in
# the final image.
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
COPY . /src
# The project as a wheel (what a deployment installs), then its pinned dependencies into a
# venv at the path it keeps in the final stage (a venv's scripts name their interpreter).
# Neither pip nor setuptools stays in it: nothing installs at run time.
RUN python3.11 -m venv /opt/pondops/venv \
    && /opt/pondops/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/pondops/venv/bin/pip install /wheels/pondops-*.whl \
    && /opt/pondops/venv/bin/pip uninstall -y -q pip setuptools \
    && find /opt/pondops/venv -name __pycache__ -prune -exec rm -rf {} +

# --- builder-demo: the same venv plus the demo extra (moto's SQS server) ---------------------
FROM builder AS builder-demo
RUN /opt/pondops/venv/bin/python -m ensurepip \
    && /opt/pondops/venv/bin/python -m pip install "$(ls /wheels/pondops-*.whl)[demo]" \
    && /opt/pondops/venv/bin/python -c "import moto.server" \
    && /opt/pondops/venv/bin/python -m pip uninstall -y -q pip setuptools \
    && find /opt/pondops/venv -name __pycache__ -prune -exec rm -rf {} +

# --- runtime: what production runs ------------------------------------------------------------
FROM base AS runtime
ARG PONDOPS_UID=10001
# A fixed uid/gid, so volumes and host directories can be owned by it ahead of time.
RUN groupadd --system --gid "${PONDOPS_UID}" pondops \
    && useradd --system --uid "${PONDOPS_UID}" --gid pondops --home-dir /var/lib/pondops \
        --shell /usr/sbin/nologin pondops \
    && install -d -o pondops -g pondops -m 0750 /var/lib/pondops /run/pondops-metrics
COPY --from=builder /opt/pondops/venv /opt/pondops/venv
COPY deploy/container/entrypoint /usr/local/bin/pondops-entrypoint
ENV PATH=/opt/pondops/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=pondops.settings \
    PONDOPS_VAR_DIR=/var/lib/pondops
# Static files are collected at build time (owned by root, read-only for the app) and served
# by the web itself (whitenoise). Settings need a secret key and a Fernet key outside
# `local`; these are throwaway values of this one RUN, never stored in the image.
RUN PONDOPS_ENVIRONMENT=build \
    DJANGO_SECRET_KEY="$(python3.11 -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    PONDOPS_FERNET_KEYS="$(python3.11 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    django-admin collectstatic --noinput --verbosity 0 \
    && chown -R root:root /var/lib/pondops/static && chmod -R a+rX /var/lib/pondops/static
USER pondops:pondops
WORKDIR /var/lib/pondops
EXPOSE 8000
# Only the web answers HTTP; for the other processes the check passes while the container runs
# (their liveness is their process; their heartbeats show in the web's /healthz).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/pondops-entrypoint", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/pondops-entrypoint"]
CMD ["web"]

# --- demo: runtime plus moto's SQS server and the carrier simulators (compose's demo profile) -
FROM runtime AS demo
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends socat \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=builder-demo /opt/pondops/venv /opt/pondops/venv
USER pondops:pondops

# The last stage is what a plain `docker build .` makes: production's image.
FROM runtime
