"""The guide files: ``guides/`` beside the charter file (``CHARTERFLOW_CHARTER_FILE``), or the
shipped DSF OCWG guides (``rules/charters/guides``) when no charter file is set;
``CHARTERFLOW_GUIDES_DIR`` overrides both. Reading is here; checking is ``rules.guides``; which
platforms have a connector installed is :func:`installed_platforms`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.registry import registered_names
from rules.guides import Guide, GuideError, check_guides

__all__ = ["GuidesSettings", "guides_dir", "installed_platforms", "load_guides"]

SHIPPED = Path(__file__).resolve().parents[2] / "rules" / "charters" / "guides"


class GuidesSettings(BaseSettings):
    """``CHARTERFLOW_GUIDES_DIR``, and the charter file the guides sit beside (read under its
    own name, ``CHARTERFLOW_CHARTER_FILE``: flows do not import the shell's settings)."""

    model_config = SettingsConfigDict(env_prefix="CHARTERFLOW_", env_file=".env", extra="ignore")
    guides_dir: Path | None = Field(
        default=None,
        description=(
            "The folder of the community guides (default: guides/ beside the charter file, else the "
            "shipped DSF OCWG guides)."
        ),
    )
    charter_file: Path | None = None


def guides_dir(settings: GuidesSettings | None = None) -> Path:
    """Where the guides are (see the module docstring)."""
    s = settings or GuidesSettings()
    if s.guides_dir is not None:
        return Path(s.guides_dir)
    if s.charter_file is not None:
        return Path(s.charter_file).parent / "guides"
    return SHIPPED


def installed_platforms() -> frozenset[str]:
    """The platforms with a connector installed (the ``charterflow.connectors`` entry points):
    a guide naming another is kept but not published there ("no connector installed")."""
    return registered_names()


def load_guides(directory: Path | None = None) -> tuple[list[Guide], list[GuideError]]:
    """Every ``*.md`` guide of ``directory`` (default :func:`guides_dir`), checked: the good
    ones and the errors of the broken ones (by file name and line). A missing directory has
    no guides; a file that is not UTF-8 is an error naming it."""
    folder = Path(directory) if directory is not None else guides_dir()
    files: dict[str, str] = {}
    errors: list[GuideError] = []
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
        try:
            files[path.name] = path.read_text("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(GuideError(path.name, 0, f"not UTF-8 text ({exc.reason})"))
    guides, broken = check_guides(files)
    return guides, sorted(errors + broken, key=lambda e: e.name)
