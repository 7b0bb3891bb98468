"""A throwaway PostgreSQL cluster's folder and ``initdb``, shared by the tests' ``postgres_server``
(``tests/support/ledger.py``), the reliability suite's restarted cluster and ``bench/scale.py``
(plain code, no pytest). PostgreSQL refuses to run as root: as root the folder is under /tmp
(a root TMPDIR may be closed to others), owned by ``postgres``, and the server's tools run as
that user."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ClusterDir:
    """Where a cluster lives: ``workdir`` (mode 0700) holds ``data`` and the unix socket;
    ``prefix`` runs a server tool as ``postgres`` when we are root; ``env`` is the tools'."""

    workdir: Path
    prefix: list[str]
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, "LC_ALL": "C"})

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def initdb(self, initdb: str) -> None:
        """``initdb`` into ``data``: trust on loopback, UTF-8, C locale (``CalledProcessError`` on failure)."""
        subprocess.run(
            [
                *self.prefix,
                initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            env=self.env,
            capture_output=True,
            text=True,
        )

    def start_command(self, pg_ctl: str, options: str) -> list[str]:
        """``pg_ctl start`` with the server's ``options`` (``options()``), its log in ``workdir``;
        waits up to 60 s for the server to accept connections."""
        log = str(self.workdir / "server.log")
        return [*self.prefix, pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start"]

    def options(self, port: int, *extra: str) -> str:
        """The server's ``pg_ctl -o`` options: ``port`` on 127.0.0.1, the socket in ``workdir``,
        durability off (a test cluster), and ``extra`` settings (``-c name=value``)."""
        return " ".join(
            [
                f"-p {port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                "-c synchronous_commit=off -c full_page_writes=off",
                *extra,
            ]
        )


def cluster_dir(name: str) -> ClusterDir:
    """A new, empty cluster folder named ``name…``."""
    as_root = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix=name, dir="/tmp" if as_root else None))
    prefix: list[str] = []
    if as_root:
        prefix = ["runuser", "-u", "postgres", "--"]
        pw = pwd.getpwnam("postgres")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
    os.chmod(workdir, 0o700)
    return ClusterDir(workdir=workdir, prefix=prefix)
