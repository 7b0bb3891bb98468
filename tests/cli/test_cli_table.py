"""The list commands' fixed-column tables (``charterflow.cli_table``)."""

from __future__ import annotations

from charterflow.cli_table import fixed_columns


def test_cells_are_padded_to_their_column_and_the_last_column_is_not():
    lines = fixed_columns(
        (("id", 5), ("who", 12), ("title", 0)),
        [{"id": "#1", "who": "avery_quill", "title": "A forum for meetups"}, {"id": "#22", "who": "", "title": ""}],
    )
    assert lines == [
        "id     who           title",
        "#1     avery_quill   A forum for meetups",
        "#22",
    ]
