"""Progress display of the long commands: a tqdm bar on an interactive terminal,
plain lines otherwise (logs and CI keep one line per finished item)."""

from __future__ import annotations

import sys


class _Bar:
    """``(i, n, row) -> None`` progress callback drawing one tqdm bar."""

    def __init__(self, desc: str):
        self.desc = desc
        self.bar = None

    def __call__(self, i: int, n: int, row) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=n, desc=self.desc, unit="check", file=sys.stderr)
        self.bar.set_postfix_str(
            f"{row.claim_id} {row.part}: {row.result.status.value}", refresh=False
        )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_bar(desc: str, stream=None) -> _Bar | None:
    """A tqdm progress callback when ``stream`` (default stderr) is a terminal, else
    None (the caller then prints plain lines)."""
    stream = sys.stderr if stream is None else stream
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return _Bar(desc)
