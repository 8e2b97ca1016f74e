"""The embedded PostgreSQL of `make run` (config/embedded_postgres.py), really started in a
temporary directory through its command line, and the settings refusing a DATABASE_URL that is
not PostgreSQL."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from config import embedded_postgres

BASE_DIR = Path(embedded_postgres.__file__).resolve().parent.parent


def cli(command: str, data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "config.embedded_postgres", command, "--data-dir", str(data_dir)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def connect(data_dir: Path, user: str = embedded_postgres.USER) -> psycopg.Connection:
    database = embedded_postgres.database_settings(data_dir)
    return psycopg.connect(
        host=database["HOST"], dbname=database["NAME"], user=user, autocommit=True
    )


@pytest.fixture
def data_dir():
    """A data directory in a fresh temporary directory; whatever happens in the test, the
    server is stopped (killed if it will not stop) and the directory removed."""
    parent = Path(tempfile.mkdtemp(prefix="ordertrack-embedded-pg-"))
    data = parent / "postgres"
    try:
        yield data
    finally:
        try:
            embedded_postgres.stop(data)
        except (embedded_postgres.EmbeddedPostgresError, OSError, subprocess.SubprocessError):
            pid = embedded_postgres.running_pid(data)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(parent, ignore_errors=True)


def test_a_stopped_server_starts_again_on_the_same_data(data_dir):
    # given: a server started on an empty directory, with a row written to its database
    first = cli("start", data_dir)
    assert first.returncode == 0, first.stderr
    assert "embedded PostgreSQL 18." in first.stdout
    assert f"data in {data_dir.resolve()}" in first.stdout
    assert "(new data)" in first.stdout
    assert cli("status", data_dir).returncode == 0
    with connect(data_dir) as connection:
        connection.execute("CREATE TABLE kept (note text)")
        connection.execute("INSERT INTO kept VALUES ('written before the stop')")

    # when: it is stopped, then started again
    stopped = cli("stop", data_dir)
    status_after_stop = cli("status", data_dir)
    second = cli("start", data_dir)

    # then: the status said it was down, and the second start reused the data
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert status_after_stop.returncode == 1
    assert "not running" in status_after_stop.stdout
    assert second.returncode == 0, second.stderr
    assert "(existing data)" in second.stdout
    with connect(data_dir) as connection:
        rows = connection.execute("SELECT note FROM kept").fetchall()
    assert rows == [("written before the stop",)]
    # and the application's own role can log in, owning nothing
    with connect(data_dir, user=embedded_postgres.RUNTIME_ROLE) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("ordertrack_app",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT note FROM kept")


def test_a_second_start_while_running_keeps_the_same_server(data_dir):
    # given
    assert cli("start", data_dir).returncode == 0
    pid = embedded_postgres.running_pid(data_dir)

    # when
    again = cli("start", data_dir)

    # then
    assert again.returncode == 0, again.stderr
    assert "(already running)" in again.stdout
    assert embedded_postgres.running_pid(data_dir) == pid


def test_stop_and_status_without_a_server_say_so_without_a_traceback(data_dir):
    # when: nothing was ever started there
    stopped = cli("stop", data_dir)
    status = cli("status", data_dir)

    # then: stop has nothing to do, status exits 1
    assert stopped.returncode == 0
    assert "not running" in stopped.stdout
    assert status.returncode == 1
    assert "not running" in status.stdout
    assert "Traceback" not in stopped.stderr + status.stderr


def test_database_settings_point_at_the_data_directory_while_the_server_is_down(data_dir):
    # when: no server, no postmaster.pid
    database = embedded_postgres.database_settings(data_dir)

    # then: usable settings; only connecting would fail
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "ordertrack"
    assert database["USER"] == embedded_postgres.RUNTIME_ROLE
    assert database["HOST"] == str(data_dir)


def test_migrations_may_connect_as_the_owner(data_dir, monkeypatch):
    monkeypatch.setenv("EMBEDDED_POSTGRES_USER", embedded_postgres.USER)

    assert embedded_postgres.database_settings(data_dir)["USER"] == "postgres"


def settings_in_a_subprocess(database_url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
    }
    script = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "print(settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['HOST'])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("url", ["sqlite:///x.db", "mysql://root@127.0.0.1/ordertrack"])
def test_a_database_url_that_is_not_postgresql_is_refused(url):
    # when
    out = settings_in_a_subprocess(url)

    # then
    assert out.returncode != 0
    assert "ImproperlyConfigured" in out.stderr
    assert "runs on PostgreSQL only" in out.stderr
    assert "unset DATABASE_URL" in out.stderr
    assert "embedded PostgreSQL" in out.stderr


def test_without_a_database_url_the_settings_use_the_embedded_server():
    # when: DATABASE_URL empty (an empty value in the environment wins over .env)
    out = settings_in_a_subprocess("")

    # then
    assert out.returncode == 0, out.stderr
    engine, host = out.stdout.split()
    assert engine == "django.db.backends.postgresql"
    assert host == str(embedded_postgres.socket_dir())
