"""Where graphrec keeps its data: the database URL and the home folder for models and indexes.

Resolution order for each setting: explicit argument (CLI option or library call) >
environment variable > default.

* ``GRAPHREC_DATABASE_URL``: any SQLAlchemy URL. Default ``sqlite:///graphrec.db`` in the
  current working directory (the embedded store). PostgreSQL: ``postgresql+psycopg://user@host/db``
  (``postgresql://`` is accepted and mapped to the psycopg 3 driver).
* ``GRAPHREC_HOME``: folder for trained models, indexes and other artifacts. Default: a
  ``graphrec-home`` folder beside the SQLite file, or ``./graphrec-home`` for a server database.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from graphrec.errors import InputError

DATABASE_URL_ENV = "GRAPHREC_DATABASE_URL"
HOME_ENV = "GRAPHREC_HOME"
DEFAULT_SQLITE_FILE = "graphrec.db"
HOME_DIRNAME = "graphrec-home"
#: The database backends graphrec supports (SQLAlchemy backend names).
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_URL_HINT = "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB"


def parse_database_url(url: str) -> URL:
    """Parse ``url`` and check that it names a supported backend (SQLite or PostgreSQL).

    A malformed URL (``notaurl``) or another backend (``mysql://x``) is an
    :class:`~graphrec.errors.InputError` (one line, exit code 2) naming the URL without its
    password, instead of SQLAlchemy's traceback when the engine is first used."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy.exc.ArgumentError, or ValueError for a bad port
        shown = re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)  # never print a password
        raise InputError(f"malformed database URL {shown!r}: {_URL_HINT}") from None
    backend = "postgresql" if parsed.drivername.split("+")[0] == "postgres" else parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        shown = parsed.render_as_string(hide_password=True)
        raise InputError(f"unsupported database URL {shown!r}: graphrec supports SQLite and PostgreSQL ({_URL_HINT})")
    return parsed


def normalise_database_url(url: str) -> str:
    """Check ``url`` (:func:`parse_database_url`) and map driverless PostgreSQL URLs to
    psycopg 3, the driver graphrec ships with."""
    parsed = parse_database_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :meth:`Settings.resolve`."""

    database_url: str
    home: Path

    @classmethod
    def resolve(cls, database_url: str | None = None, home: str | os.PathLike[str] | None = None) -> "Settings":
        """Resolve settings from arguments, then the environment, then defaults."""
        url = database_url or os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{DEFAULT_SQLITE_FILE}"
        url = normalise_database_url(url)
        home_value = home or os.environ.get(HOME_ENV)
        if home_value:
            home_path = Path(home_value)
        else:
            home_path = default_home(url)
        return cls(database_url=url, home=home_path.expanduser())

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql`` (or whatever SQLAlchemy backend the URL names)."""
        return make_url(self.database_url).get_backend_name()


def default_home(database_url: str) -> Path:
    """The home folder beside a SQLite file, else ``./graphrec-home``."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).expanduser().resolve().parent / HOME_DIRNAME
    return Path.cwd() / HOME_DIRNAME
