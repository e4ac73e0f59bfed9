"""Reading the text files users hand to lgrn (annotation lists, scheme and graph files): UTF-8, a BOM
tolerated, and a byte that is not UTF-8 reported with the file, the line and the byte instead of a bare
codec error."""
from __future__ import annotations

from pathlib import Path

__all__ = ["read_text_file"]


def read_text_file(path: Path) -> str:
    """The UTF-8 text of an annotation file (a BOM tolerated); a byte that is not UTF-8 is a ValueError
    naming the file, the line and the byte."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{path.name}:{line}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}: "
                         f"{exc.reason})") from None
