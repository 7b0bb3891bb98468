"""The fixed-column text tables the list commands print (`charterflow ideas list`,
`charterflow budget list`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = ["fixed_columns"]


def fixed_columns(columns: Sequence[tuple[str, int]], rows: Iterable[Mapping[str, str]]) -> list[str]:
    """A header line of the column names, then one line per row: each cell padded to its
    column's width (0: not padded, for the last column), two blanks apart, trailing blanks
    dropped."""

    def line(cells: Mapping[str, str]) -> str:
        return "  ".join(cells[name].ljust(width) if width else cells[name] for name, width in columns).rstrip()

    return [line({name: name for name, _ in columns}), *(line(cells) for cells in rows)]
