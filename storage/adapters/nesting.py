"""JSON nesting depth of a byte stream, tracked read by read.

ijson keeps the full prefix of every open level, so its memory grows with the square of the
nesting depth: a small file of nothing but `[` can exhaust memory. `DepthGuard` follows the
stream ahead of the parser and raises `TooDeep` as soon as the depth passes a limit. It
understands strings and backslash escapes, so brackets inside text do not count. The state
(depth, inside a string, a pending backslash run) carries over between reads. One table lookup
per byte finds the few bytes that matter (quotes, backslashes, brackets), and numpy works on
those alone, so there is no Python loop per byte.
"""
from __future__ import annotations

import numpy as np

QUOTE, BACKSLASH, OPEN, CLOSE = 1, 2, 3, 4
KIND = np.zeros(256, dtype=np.uint8)
KIND[ord('"')], KIND[ord("\\")] = QUOTE, BACKSLASH
KIND[[ord("["), ord("{")]], KIND[[ord("]"), ord("}")]] = OPEN, CLOSE


class TooDeep(ValueError):
    """The document nests deeper than the guard's limit."""


class DepthGuard:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.backslashes = 0   # length of the backslash run that ended the previous read

    def feed(self, data: bytes) -> None:
        """Advance over `data`; raise TooDeep when an opening bracket goes past the limit."""
        kinds = KIND[np.frombuffer(data, dtype=np.uint8)]
        pos = np.flatnonzero(kinds)
        if not pos.size:
            self.backslashes = 0 if data else self.backslashes
            return
        kind, i = kinds[pos], np.arange(pos.size)
        is_bs = kind == BACKSLASH
        # Backslash runs: a backslash right after another continues its run; one at byte 0 continues the run
        # that ended the previous read.
        after_bs = np.concatenate(([False], is_bs[:-1] & (pos[:-1] == pos[1:] - 1)))
        run_start = np.maximum.accumulate(np.where(is_bs & ~after_bs, i, 0))
        run = np.where(is_bs, i - run_start + 1, 0) + np.where(is_bs & (pos[run_start] == 0), self.backslashes, 0)
        run_before = np.where(after_bs, np.concatenate(([0], run[:-1])), 0)
        run_before[pos == 0] = self.backslashes
        # Valid JSON has backslashes only inside strings, so an odd run before a quote escapes it; invalid
        # JSON stops the parser at its first bad byte, before it reaches anything this might miscount.
        real_quote = (kind == QUOTE) & (run_before % 2 == 0)
        toggles = np.cumsum(real_quote, dtype=np.int64)
        inside = (self.in_string + toggles - real_quote) % 2 == 1   # inside a string before each byte
        step = np.where(inside, 0, (kind == OPEN).astype(np.int64) - (kind == CLOSE))
        depth = self.depth + np.cumsum(step)
        if depth.max() > self.limit:
            raise TooDeep(f"nested deeper than {self.limit} levels")
        self.depth = int(depth[-1])
        self.in_string = bool((self.in_string + toggles[-1]) % 2)
        self.backslashes = int(run[-1]) if pos[-1] == len(data) - 1 and is_bs[-1] else 0
