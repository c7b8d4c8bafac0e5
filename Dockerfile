# Switchyard production image: the web (gunicorn + uvicorn workers), worker and beat processes.
# docker-compose.yml runs it on PostgreSQL and Redis; see README.md.
FROM python:3.11-slim

# PYTHONPATH: run the code from /app, not from the copy `pip install .` puts in site-packages,
# because settings find templates/, static/ and var/ relative to the portal package.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PROMETHEUS_MULTIPROC_DIR=/app/var/prometheus \
    LOG_FORMAT=json

RUN groupadd --system switchyard \
    && useradd --system --gid switchyard --home-dir /app --shell /usr/sbin/nologin switchyard

WORKDIR /app

# Install the pinned dependencies from pyproject.toml (setuptools needs the packages it names
# and the README). Templates, static files and manage.py follow in the next layer.
COPY pyproject.toml README.md ./
COPY base/ base/
COPY org/ org/
COPY audit/ audit/
COPY provisioning/ provisioning/
COPY money/ money/
COPY chat/ chat/
COPY approvals/ approvals/
COPY reports/ reports/
COPY portal/ portal/
RUN pip install . \
    && rm -rf build *.egg-info

COPY . .

# Build-only settings: collectstatic needs no database, broker or real secret.
RUN DEBUG=false SECRET_KEY=build-only-not-a-secret AZURE_MODE=azure ALLOWED_HOSTS='*' CELERY_BROKER_URL=memory:// \
    python manage.py collectstatic --noinput \
    && install -d -o switchyard -g switchyard /app/var /app/var/audit-archive /app/var/prometheus /app/var/documents

USER switchyard

EXPOSE 8000

# Prometheus's files of a previous run go before gunicorn's workers count (docker-compose.yml
# empties the shared directory in its `migrate` service instead, before web and worker start).
CMD ["sh", "-c", "rm -f \"$PROMETHEUS_MULTIPROC_DIR\"/*.db && exec gunicorn portal.asgi:application -k uvicorn_worker.UvicornWorker -b 0.0.0.0:8000"]
