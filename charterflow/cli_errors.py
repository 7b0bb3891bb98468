"""How every `charterflow` command reports an expected failure: one line, never a traceback;
and the ledger the commands read and write (migrated, or a one-line error)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from connectors.errors import CharterflowError


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def scrub(message: str) -> str:
    """``message`` without the ledger database password (the ledger redacts already; this is
    belt and braces for messages that quote a URL some other way)."""
    # lazy: start-up: SQLAlchemy and pydantic-settings, only once a command failed
    from sqlalchemy.engine import make_url

    # lazy: start-up: as above
    from charterflow.settings import get_settings

    url = get_settings().database_url
    if url is not None:
        try:
            password = make_url(url.get_secret_value()).password
        except Exception:  # noqa: BLE001 - an unparsable URL has been reported as such already
            password = None
        if password:
            message = message.replace(str(password), "***")
    return message


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn every expected failure (ours, a bad charter file, bad input, a file that cannot be
    read) into one ``error:`` line and exit code 2."""
    from rules import CharterFileError  # lazy: start-up: rules (pydantic), for the commands that use it

    try:
        yield
    except (CharterflowError, CharterFileError, ValueError) as exc:
        text = scrub(str(exc))
        fail(text.splitlines()[0] if text else type(exc).__name__)
    except OSError as exc:
        fail(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": "))


def migrated_ledger() -> Any:
    """The ledger of this process (``flows.platforms.current_ledger``: from settings), checked
    to be at the current schema (``ledger.migrate.require_current``)."""
    # lazy: start-up: Prefect and SQLAlchemy, for the commands that use the ledger
    from flows.platforms import current_ledger
    from ledger.migrate import require_current

    ledger = current_ledger()
    require_current(ledger)
    return ledger
