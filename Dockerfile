# redtick HTTP API: `redtick serve` (FastAPI + uvicorn) in front of Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Metadata first, so the dependency layer is rebuilt only when they change.
COPY pyproject.toml README.md ./
COPY redtick ./redtick
RUN pip install ".[api]"

# Never run the server as root.
RUN useradd --create-home --uid 10001 redtick
USER redtick

# Where Redis is; docker-compose.yml names its service "redis". REDTICK_ADMIN_TOKEN is passed
# at run time (never baked into the image); without it the maintenance endpoints refuse.
ENV REDIS_HOST=redis \
    REDIS_PORT=6379 \
    REDIS_DB=0

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/v1/cache/health', timeout=4).status != 200)"

CMD ["redtick", "serve", "--host", "0.0.0.0", "--port", "8000"]
