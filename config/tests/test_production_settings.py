"""The production settings, each loaded in a process of its own as gunicorn would load them:
no silent fallback to the embedded defaults, the security settings on, `check --deploy`
clean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "production-test-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ",
    "ALLOWED_HOSTS": "orders.example.com",
    "METRICS_TOKEN": "prod-token-0123456789",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ordertrack",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
    "EVENT_BUS_URL": "amqp://guest:guest@127.0.0.1:5672//",
    "LEDGER_SIGNING_KEY": Ed25519PrivateKey.generate()
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode(),
    "LEDGER_SIGNING_KEY_FILE": "/nonexistent/ledger-signing-key.pem",
}


def _run(argv: list[str], **changes: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DATABASE_"))}
    env.update(PRODUCTION)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, *argv], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )


def _settings(*names: str, **changes: str | None) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings\n" + "".join(
        f"print(repr(getattr(settings, {name!r}, None)))\n" for name in names
    )
    return _run(["-c", code], **changes)


@pytest.mark.parametrize(
    "missing", ["DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EVENT_BUS_URL"]
)
def test_production_refuses_to_start_without_each_backing_service(missing):
    # when
    unset = _settings("DEBUG", **{missing: None})
    filesystem = _settings("DEBUG", **{missing: "filesystem://localhost//"})

    # then
    for done in (
        (unset, filesystem)
        if (missing.endswith("_URL") and "BUS" in missing) or "CELERY" in missing
        else (unset,)
    ):
        assert done.returncode != 0
        assert f"{missing} must be set with production settings" in done.stderr


def test_hsts_preload_and_the_proxy_header_are_off_unless_configured():
    # when
    default = _settings("SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER")
    configured = _settings(
        "SECURE_HSTS_PRELOAD",
        "SECURE_PROXY_SSL_HEADER",
        SECURE_HSTS_PRELOAD="true",
        TRUST_X_FORWARDED_PROTO="true",
    )

    # then
    assert default.returncode == 0, default.stderr
    assert default.stdout.split("\n")[:2] == ["False", "None"]
    assert configured.stdout.split("\n")[:2] == ["True", "('HTTP_X_FORWARDED_PROTO', 'https')"]


def test_check_deploy_is_clean_under_the_production_settings():
    # when
    done = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])

    # then
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_deploy_fails_without_a_ledger_signing_key():
    # when: production never generates a key of its own
    done = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], LEDGER_SIGNING_KEY=None
    )

    # then
    assert done.returncode != 0
    assert "history.E001" in done.stderr + done.stdout
    assert "LEDGER_SIGNING_KEY" in done.stderr + done.stdout
