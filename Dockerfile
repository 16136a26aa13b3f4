# The project image: the Prefect server, the MLflow tracking server and the Prefect worker of docker-compose.yml
# all run from it, so every service uses exactly the versions of requirements.lock.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# git: lineage tags (tracking.git_sha) when a .git folder is mounted; tini: signals reach the Python processes.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first (a layer that changes only with the lock). torch==2.13.0+cpu lives on the PyTorch CPU index.
COPY requirements.lock ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock

COPY . .
RUN pip install --no-deps --no-build-isolation -e . \
    && pip check \
    && useradd --create-home --uid 10001 stairways \
    && mkdir -p /app/.stairways /mlartifacts \
    && chown -R stairways /app/.stairways /mlartifacts

# The commit the image was built from (docker build --build-arg GIT_SHA=$(git rev-parse HEAD) .).
ARG GIT_SHA=unknown
# STAIRWAYS_HOME is set on the worker service only: `prefect deploy` must run without it (see prefect.yaml).
ENV STAIRWAYS_GIT_SHA=${GIT_SHA} \
    PREFECT_HOME=/home/stairways/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

USER stairways
ENTRYPOINT ["tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "stairways-local", "--type", "process", "--install-policy", "never"]
