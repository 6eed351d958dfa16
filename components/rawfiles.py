"""Reading raw text tables with one-line errors that name the file and the line.

Before a file is parsed it is checked as bytes: an empty file, a file with no data rows, bytes that are not
valid in the expected encoding (a file that mixes encodings), and a last line cut short (fewer fields and no
line end: a truncated copy) are refused with ``DataFormatError`` -- ``path:line: what is wrong; what to do``
-- never a pandas or zip traceback. Parser errors that remain (a line with too many fields) get the path in
front of pandas' own message, which names the line.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pandas as pd


class DataFormatError(ValueError):
    """A raw data file cannot be read as its format says; the message names the file (and line)."""


def decode_checked(data: bytes, where: str, encoding: str = "utf-8") -> str:
    """``data`` decoded; an empty file or an undecodable byte is a DataFormatError naming line and column."""
    if not data.strip():
        raise DataFormatError(f"{where}: the file is empty")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataFormatError(
            f"{where}:{line}: byte 0x{data[exc.start]:02x} at column {column} is not valid {encoding} "
            f"(mixed encodings?); re-save the file as {encoding}"
        ) from None


def _fields(line: str, sep: str) -> int:
    if len(sep) == 1:
        return len(next(csv.reader([line], delimiter=sep), []))
    return len(line.split(sep))


def check_last_line(text: str, where: str, sep: str, expected_fields: int) -> None:
    """A last line without a line end and with fewer fields than expected: the file was cut short."""
    if text.endswith(("\n", "\r")):
        return
    lines = text.splitlines()
    last = lines[-1] if lines else ""
    got = _fields(last, sep)
    if got < expected_fields:
        raise DataFormatError(
            f"{where}:{len(lines)}: the last line has {got} of {expected_fields} fields and no line end: "
            "the file looks truncated; copy it again"
        )


def read_table(
    path: str | Path,
    *,
    sep: str,
    names: list[str] | None = None,
    encoding: str = "utf-8",
    data: bytes | None = None,
    where: str | None = None,
    usecols: list[int] | list[str] | None = None,
) -> pd.DataFrame:
    """A delimited text file as strings (``names``: no header line, these columns; else the first line is
    the header). ``data``/``where``: bytes read elsewhere (a zip member) and the name to report."""
    where = where or str(path)
    raw = Path(path).read_bytes() if data is None else data
    text = decode_checked(raw, where, encoding)
    lines = text.splitlines()
    expected = len(names) if names else _fields(lines[0], sep)
    if not names and len([line for line in lines[1:] if line.strip()]) == 0:
        raise DataFormatError(f"{where}: no data rows, only the header line")
    check_last_line(text, where, sep, expected)
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None if names else "infer",
            names=names,
            dtype=str,
            usecols=usecols,
            keep_default_na=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataFormatError(f"{where}: {message}") from None


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """Lines of a text file (checked as ``decode_checked`` does)."""
    return decode_checked(Path(path).read_bytes(), str(path), encoding).splitlines()


def zip_member(path: str | Path, name: str) -> tuple[bytes, str]:
    """The bytes of the member of a zip archive ending in ``/name`` (or named ``name``), and its display
    name ``archive!member``; a damaged archive or a missing member is a DataFormatError."""
    try:
        with zipfile.ZipFile(path) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/" + name) or n == name), None)
            if member is None:
                raise DataFormatError(f"{path}: the archive has no {name}")
            return zf.read(member), f"{path}!{member}"
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataFormatError(f"{path}: not a readable zip archive (truncated or damaged?): {exc}") from None


def read_parquet(path: str | Path) -> pd.DataFrame:
    """A Parquet table; an unreadable or empty one is a DataFormatError naming the file."""
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; the message says which
        raise DataFormatError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    if df.empty:
        raise DataFormatError(f"{path}: the table has no rows")
    return df


__all__ = ["DataFormatError", "decode_checked", "read_lines", "read_parquet", "read_table", "zip_member"]
