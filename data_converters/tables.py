"""The one reader of the releases' CSV tables: the header checked for the columns an adapter needs (the message
names the file and each missing column), every cell stripped, each row with its line number."""
from __future__ import annotations

import csv
from typing import Dict, Iterator, Optional, Sequence, Tuple

from .records import ConversionError, ParseLog


def read_table(path: str, required: Sequence[str], *, delimiter: str = ',', log: Optional[ParseLog] = None,
               pad_short: bool = False, encoding_errors: str = 'strict',
               either: Sequence[Sequence[str]] = ()) -> Iterator[Tuple[int, Dict[str, str]]]:
    """(line, {column: stripped cell}) of every row of ``path`` that is not blank.

    Args:
        required: columns the adapter reads.
        log: where a row whose number of cells differs from the header's goes (``log.row``: stop the run, or skip
            it with ``--on-error skip``); None: such a row raises.
        pad_short: a row with fewer cells than the header is padded with empty cells instead (a table saved from a
            spreadsheet drops the empty cells at a row's end); one with more is still a bad row.
        encoding_errors: ``open``'s ``errors`` (INbreast's table, saved from Excel, carries stray bytes).
        either: groups of alternative spellings of one column, of which the file must have one (CBIS-DDSM's
            files write both ``breast_density`` and ``breast density``).

    Raises:
        ConversionError: the file cannot be opened, or lacks a required column (named with the header).
    """
    try:
        fh = open(path, newline='', encoding='utf-8-sig', errors=encoding_errors)
    except OSError as exc:
        raise ConversionError(f'{path}: cannot open ({exc.strerror})') from None
    with fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in required if c not in header]
        missing += [' or '.join(repr(s) for s in group) for group in either if not any(s in header for s in group)]
        if missing:
            raise ConversionError(f'{path}: missing column(s) {", ".join(map(str, missing))}; header is {header}')
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header) and not (pad_short and len(cells) < len(header)):
                msg = f'{path} line {line}: {len(cells)} fields, the header has {len(header)}'
                if log is None:
                    raise ConversionError(msg)
                log.row(msg)
                continue
            yield line, {h: (cells[i].strip() if i < len(cells) else '') for i, h in enumerate(header) if h}
