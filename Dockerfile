# One image for web (gunicorn), the Celery worker and Celery beat; docker-compose.yml picks
# the command. Production settings: SECRET_KEY and ALLOWED_HOSTS must be set at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

RUN useradd --create-home --uid 1000 app
WORKDIR /app

# Copy only the project's own files, so a local .venv or var/ (the embedded database)
# never lands in the image.
COPY pyproject.toml README.md manage.py ./
COPY requirements/base.txt ./requirements/
COPY config ./config
COPY orders ./orders
COPY inventory ./inventory
COPY history ./history
COPY templates ./templates

# Editable, so BASE_DIR stays /app and templates/ and staticfiles/ are found there.
RUN pip install --require-hashes -r requirements/base.txt \
    && pip install --no-deps -e . \
    && SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost \
       DATABASE_URL=postgres://build/unused REDIS_URL=redis://build/0 \
       CELERY_BROKER_URL=amqp://build// EVENT_BUS_URL=amqp://build// \
       python manage.py collectstatic --noinput \
    && mkdir -p var \
    && chown -R app:app var

USER app
EXPOSE 8000
# config/gunicorn.py: gthread workers, timeouts, the metrics hooks (see the file).
ENV GUNICORN_ACCESSLOG=-
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
