"""One table formatter for everything people read: the evaluation table, the demo report, the leaderboard."""
from __future__ import annotations

from typing import List, Optional, Sequence


def fmt(value, digits: int = 3) -> str:
    """``-`` for a missing value, floats with ``digits`` decimals, anything else as ``str``."""
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def format_rows(rows: Sequence[dict], cols: Optional[List[str]] = None, digits: int = 3,
                style: str = 'markdown') -> str:
    """Rows of dicts as a table; ``cols`` defaults to every key in first-seen order.

    Args:
        style: ``'markdown'`` (``| a | b |`` with a separator line) or ``'text'`` (fixed-width columns, the first
            left-aligned, for terminals and logs).
    """
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))
    # A key a row lacks is a blank cell; a key whose value is None is '-'.
    cells = [[row[c] if isinstance(row.get(c), str) else fmt(row[c], digits) if c in row else '' for c in cols]
             for row in rows]
    if style == 'markdown':
        lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
        return '\n'.join(lines + ['| ' + ' | '.join(r) + ' |' for r in cells])
    if style != 'text':
        raise ValueError(f"style must be 'markdown' or 'text', got {style!r}")
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]

    def line(vals):
        return '  '.join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return '\n'.join([line(cols), line(['-' * w for w in widths])] + [line(r) for r in cells])
