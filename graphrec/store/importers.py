"""Parsers for the files graphrec imports: edge lists, user profiles, labels.

Parsing is separate from writing: each reader validates a whole file into an in-memory batch
(numpy arrays, no database access) and raises :class:`~graphrec.errors.InputError` naming the
file, the line and the problem. The store then writes a batch in one transaction
(:mod:`graphrec.store.loader`), so a bad file never leaves anything half-written.

Formats
-------
* **Edges**: SNAP style (whitespace separated ``u v``; ``#`` starts a comment; extra columns are
  ignored) or CSV with a header (``--source-column``/``--target-column``, default the first two).
  Friendships are undirected: ``u v`` and ``v u`` are the same friendship.
* **Users**: CSV with an id column (default ``id``). Numeric columns become the feature vector,
  other columns profile attributes; an optional ``is_synthetic`` column (true/false/1/0) flags
  synthetic users. This is exactly what ``graphrec export users`` writes.
* **Labels**: CSV ``id,label`` and optionally ``source`` (default source: ``import``).

Files are UTF-8 (a leading byte-order mark is accepted) without NUL bytes; a CSV row with fewer
fields than the header is an error, as are column names over :data:`MAX_COLUMN_NAME_LENGTH` and
fields over :data:`MAX_FIELD_LENGTH` characters; ``delimiter`` is one character. In SNAP input
an id is an integer token: ``1.0`` or ``1e3`` is an invalid id, as on the CSV path.

Ids: ``id_type="int"`` (default) requires integer ids and stores their canonical decimal form;
``id_type="str"`` accepts any non-empty text up to 255 characters (integer ids are limited to 255
characters too: longer ones are invalid ids, skipped and counted with ``skip_invalid``).

Invalid rows are errors: a file is checked as a whole and its first problems (up to
:data:`SHOWN_PROBLEMS`, with their lines) are reported in one :class:`InputError` with the count
of every problem found, so a file with many problems is not fixed one line per run. With ``skip_invalid=True`` the edge reader instead drops self-loops,
duplicates and rows with missing or malformed ids, and counts each kind in ``skipped``.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from graphrec.errors import InputError

IdType = Literal["int", "str"]
EdgeFormat = Literal["auto", "snap", "csv"]
MAX_ID_LENGTH = 255
MAX_LABEL_LENGTH = 64
#: Longest column name a header may have (feature column names are stored as VARCHAR(255)).
MAX_COLUMN_NAME_LENGTH = 255
#: Longest field (characters) any CSV or SNAP cell may have.
MAX_FIELD_LENGTH = 131_072
_INT_RE = re.compile(r"^[+-]?\d+$")
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}


# ---------------------------------------------------------------------------------------------
# batches


@dataclass
class EdgeBatch:
    """Validated undirected edges: ``ids[src[k]] -- ids[dst[k]]``; ``line_of(k)`` is the file line."""

    source: str
    ids: list[str]
    src: np.ndarray
    dst: np.ndarray
    rows_read: int
    skipped: dict[str, int] = field(default_factory=dict)
    line_of: Callable[[int], int | None] = lambda k: None

    def first_row_of_id(self, code: int) -> int:
        hit = np.flatnonzero((self.src == code) | (self.dst == code))
        return int(hit[0]) if hit.size else 0


@dataclass
class UserBatch:
    """Validated users: ids, feature matrix over ``feature_names``, text attributes, synthetic flags."""

    source: str
    external_ids: list[str]
    feature_names: list[str]
    features: np.ndarray
    attributes: list[dict[str, str]]
    attribute_names: list[str]
    is_synthetic: np.ndarray | None
    line_of: Callable[[int], int | None] = lambda k: None


@dataclass
class LabelBatch:
    """Validated labels: ``labels[k]`` for ``external_ids[k]`` from ``sources[k]``."""

    source: str
    external_ids: list[str]
    labels: list[str]
    sources: list[str]
    line_of: Callable[[int], int | None] = lambda k: None


@dataclass
class BatchExtension:
    """More rows written in the same transaction as a dataset import (for example a demo region
    derived from the dataset): users first, then their friendships (``edges.ids`` may name the
    dataset's users and the new ones), then labels."""

    users: UserBatch
    edges: EdgeBatch
    labels: LabelBatch | None = None


# ---------------------------------------------------------------------------------------------
# helpers

#: How many problems of one file an import error lists (the error also gives the total count).
SHOWN_PROBLEMS = 5


class Problems:
    """The problems found in one input file, collected so that one error reports the first
    :data:`SHOWN_PROBLEMS` (by line) and how many there are in all."""

    def __init__(self, path: Path, line_of: Callable[[int], int | None]) -> None:
        self.path = path
        self.line_of = line_of
        self.items: list[tuple[int | None, str]] = []
        self.total = 0

    def add(self, rows: np.ndarray | Iterable[int], problem: Callable[[int], str]) -> None:
        """Record a problem for each of ``rows`` (0-based data rows, as ``line_of`` takes them);
        ``problem(k)`` describes row ``k`` (called for the first few only)."""
        idx = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64)
        self.record(int(idx.size), ((self.line_of(k), problem(k)) for k in idx[:SHOWN_PROBLEMS].tolist()))

    def record(self, count: int, items: Iterable[tuple[int | None, str]]) -> None:
        """Count ``count`` problems, of which ``items`` (line, problem) are the first few."""
        self.total += count
        self.items.extend(list(items)[:SHOWN_PROBLEMS])

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        """Raise one :class:`InputError` listing the first problems by line, with the total."""
        if self.total:
            items = sorted(self.items, key=lambda p: (p[0] is None, p[0] or 0))[:SHOWN_PROBLEMS]
            raise InputError.several(items, source=self.path, total=self.total)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file", source=path)
    if not path.is_file():
        raise InputError("not a regular file", source=path)


def _check_utf8(path: Path, chunk: int = 1 << 22) -> None:
    """Reject files that are not UTF-8, naming the line of the first bad byte (streams the file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    lines = 1
    with path.open("rb") as fh:
        while True:
            data = fh.read(chunk)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                bad = exc.start  # relative to the undecoded tail the decoder holds plus ``data``
                pending = len(exc.object) - len(data)
                pos_in_data = max(bad - pending, 0)
                line = lines + data[:pos_in_data].count(b"\n")
                raise InputError(
                    f"not valid UTF-8 (byte 0x{exc.object[bad]:02x} at offset {offset + pos_in_data})", source=path, line=line
                ) from None
            nul = data.find(b"\x00")
            if nul >= 0:
                raise InputError(
                    f"NUL byte at offset {offset + nul} (text values and ids cannot contain NUL)",
                    source=path, line=lines + data[:nul].count(b"\n"),
                )
            if not data:
                return
            lines += data.count(b"\n")
            offset += len(data)


def _snap_line_map(path: Path) -> Callable[[int], int | None]:
    """Map a data-row index of a SNAP file to its physical line (comments and blanks skipped)."""
    cache: list[int] = []

    def line_of(row: int) -> int | None:
        if not cache:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.split("#", 1)[0].strip():
                        cache.append(lineno)
        return cache[row] if 0 <= row < len(cache) else None

    return line_of


def _csv_line_map(path: Path, delimiter: str) -> Callable[[int], int | None]:
    """Map a data-row index of a CSV file (after the header) to the line where the row starts."""
    cache: list[int] = []

    def line_of(row: int) -> int | None:
        if not cache:
            with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
                reader = csv.reader(fh, delimiter=delimiter)
                start = 1
                first = True
                try:
                    for rec in reader:
                        if rec and not (len(rec) == 1 and rec[0] == ""):
                            if first:
                                first = False
                            else:
                                cache.append(start)
                        start = reader.line_num + 1
                except csv.Error:  # a field over the csv module's limit: it starts the last row known
                    cache.append(start)
        return cache[row] if 0 <= row < len(cache) else None

    return line_of


def _parser_error(path: Path, exc: Exception) -> InputError:
    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    match = re.search(r"line (\d+)", msg)
    line = int(match.group(1)) if match else None
    fields = re.search(r"Expected (\d+) fields in line \d+, saw (\d+)", msg)
    if fields:
        msg = f"expected {fields.group(1)} fields, found {fields.group(2)}"
    return InputError(msg, source=path, line=line)


def _check_delimiter(delimiter: str | None, path: Path) -> None:
    """A delimiter is one character other than a quote, a line break or NUL."""
    if delimiter is None:
        return
    if len(delimiter) != 1 or delimiter in ('"', "\r", "\n", "\x00"):
        raise InputError(f"--delimiter must be a single character other than a quote or line break, got {delimiter!r}",
                         source=path)


def _read_csv_header(path: Path, delimiter: str) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:  # -sig: accept a byte-order mark
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            for rec in reader:
                if rec and not (len(rec) == 1 and rec[0] == ""):
                    header = [h.strip() for h in rec]
                    break
            else:
                raise InputError("empty file: a header row is required", source=path, line=1)
        except csv.Error:
            raise InputError(f"header field longer than {MAX_FIELD_LENGTH} characters", source=path,
                             line=reader.line_num or 1) from None
    for i, name in enumerate(header):
        if not name:
            raise InputError(f"empty column name in header (column {i + 1})", source=path, line=1)
        if len(name) > MAX_COLUMN_NAME_LENGTH:
            raise InputError(f"column name longer than {MAX_COLUMN_NAME_LENGTH} characters in header (column {i + 1})",
                             source=path, line=1)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InputError(f"duplicate column {name!r} in header", source=path, line=1)
        seen.add(name)
    return header


def _read_csv_frame(path: Path, delimiter: str) -> pd.DataFrame:
    header = _read_csv_header(path, delimiter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                sep=delimiter,
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
                engine="c",
                index_col=False,
            )
    except pd.errors.ParserWarning:
        raise InputError(f"rows have more fields than the {len(header)} header columns", source=path, line=2) from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc) from None
    except pd.errors.EmptyDataError:
        raise InputError("empty file: a header row is required", source=path, line=1) from None
    frame.columns = header[: len(frame.columns)]
    problems = Problems(path, _csv_line_map(path, delimiter))
    _check_field_lengths(frame, problems)
    problems.raise_if_any()
    # pandas fills the missing trailing fields of a short row with "": count them with the csv module
    problems.add(_short_rows(path, delimiter, len(header)),
                 lambda k: f"row has fewer fields than the {len(header)} header columns")
    problems.raise_if_any()
    return frame


def _short_rows(path: Path, delimiter: str, width: int) -> list[int]:
    """The data rows (0-based, after the header) with fewer than ``width`` fields."""
    short: list[int] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        row = -1
        for rec in csv.reader(fh, delimiter=delimiter):
            if not rec or (len(rec) == 1 and rec[0] == ""):
                continue
            if row >= 0 and len(rec) < width:
                short.append(row)
            row += 1
    return short


def _check_field_lengths(frame: pd.DataFrame, problems: Problems) -> None:
    for name in frame.columns:
        lengths = frame[name].str.len().to_numpy()
        message = f"field of column {str(name)!r} longer than {MAX_FIELD_LENGTH} characters"

        def too_long(k: int, message: str = message) -> str:
            return message

        problems.add(np.flatnonzero(lengths > MAX_FIELD_LENGTH), too_long)


def _require_column(path: Path, frame: pd.DataFrame, name: str, role: str) -> None:
    if name not in frame.columns:
        cols = ", ".join(map(str, frame.columns))
        raise InputError(f"no {role} column {name!r} in header (columns: {cols})", source=path, line=1)


def _canonical_ids(
    values: np.ndarray, id_type: IdType, path: Path, line_of: Callable[[int], int | None], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate id strings; return (canonical ids as object array, mask of valid rows)."""
    out = np.empty(values.size, dtype=object)
    valid = np.ones(values.size, dtype=bool)
    for i, raw in enumerate(values.tolist()):
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            text_value = ""
        else:
            text_value = str(raw).strip()
        if not text_value:
            valid[i] = False
            continue
        if len(text_value) > MAX_ID_LENGTH:  # before int(): 5,000 digits exceed Python's int parsing limit
            valid[i] = False
            continue
        if id_type == "int":
            if not _INT_RE.match(text_value):
                valid[i] = False
                continue
            text_value = str(int(text_value))
        elif len(text_value) > MAX_ID_LENGTH:
            valid[i] = False
            continue
        out[i] = text_value
    return out, valid


def _id_problem(raw: object, id_type: IdType, what: str) -> str:
    text_value = "" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else str(raw).strip()
    if not text_value:
        return f"missing {what}"
    if len(text_value) > MAX_ID_LENGTH:
        return f"{what} longer than {MAX_ID_LENGTH} characters"
    if id_type == "int":
        return f"non-numeric {what} {text_value!r} (use --id-type str for text ids)"
    return f"{what} longer than {MAX_ID_LENGTH} characters"


# ---------------------------------------------------------------------------------------------
# edges


def read_edges(
    path: str | Path,
    *,
    fmt: EdgeFormat = "auto",
    source_column: str | None = None,
    target_column: str | None = None,
    delimiter: str | None = None,
    id_type: IdType = "int",
    skip_invalid: bool = False,
    directed: bool = False,
) -> EdgeBatch:
    """Read and validate an edge list (see module docstring for formats and policy).

    ``directed`` keeps each row's order (``src[k]`` is the row's first id: blocks are
    ``blocker blocked``) and only an identical ordered pair is a duplicate; otherwise ``u v``
    and ``v u`` are the same undirected friendship."""
    path = Path(path)
    _check_path(path)
    _check_delimiter(delimiter, path)
    _check_utf8(path)
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() in (".csv", ".tsv") else "snap"
    if fmt == "csv":
        delim = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
        frame = _read_csv_frame(path, delim)
        if frame.shape[1] < 2 and (source_column is None or target_column is None):
            raise InputError("an edge CSV needs two id columns", source=path, line=1)
        scol = source_column or str(frame.columns[0])
        tcol = target_column or str(frame.columns[1])
        _require_column(path, frame, scol, "source")
        _require_column(path, frame, tcol, "target")
        line_of = _csv_line_map(path, delim)
        if id_type == "int":
            a_int = pd.to_numeric(frame[scol], errors="coerce", downcast=None)
            b_int = pd.to_numeric(frame[tcol], errors="coerce", downcast=None)
            if (
                a_int.dtype.kind == "i"
                and b_int.dtype.kind == "i"
                and not frame[scol].str.contains(r"[^0-9+-]", regex=True).any()
                and not frame[tcol].str.contains(r"[^0-9+-]", regex=True).any()
            ):
                return _finish_int_edges(path, a_int.to_numpy(np.int64), b_int.to_numpy(np.int64), line_of, skip_invalid,
                                         directed)
        a_raw = frame[scol].to_numpy(dtype=object)
        b_raw = frame[tcol].to_numpy(dtype=object)
    elif fmt == "snap":
        if source_column or target_column:
            raise InputError("--source-column/--target-column need a CSV edge file (use --format csv)", source=path)
        a_raw, b_raw, fast = _read_snap(path, id_type, delimiter)
        line_of = _snap_line_map(path)
        if fast is not None:
            return _finish_int_edges(path, fast[0], fast[1], line_of, skip_invalid, directed)
    else:
        raise InputError(f"unknown edge format {fmt!r} (snap or csv)", source=path)

    skipped: dict[str, int] = {}
    problems = Problems(path, line_of)
    a_ids, a_ok = _canonical_ids(a_raw, id_type, path, line_of, "source id")
    b_ids, b_ok = _canonical_ids(b_raw, id_type, path, line_of, "target id")
    bad = ~(a_ok & b_ok)
    if bad.any():
        if not skip_invalid:
            def id_problem(k: int) -> str:
                raw, what = (a_raw[k], "source id") if not a_ok[k] else (b_raw[k], "target id")
                return _id_problem(raw, id_type, what)

            problems.add(np.flatnonzero(bad), id_problem)
        else:
            skipped["invalid_id"] = int(bad.sum())
    keep = np.flatnonzero(~bad)
    codes, uniques = pd.factorize(np.concatenate([a_ids[keep], b_ids[keep]]))
    m = keep.size
    return validate_pairs(path, list(map(str, uniques)), codes[:m], codes[m:], keep, line_of, skip_invalid, skipped, a_raw.size,
                          problems=problems, directed=directed)


def _read_snap_int(path: Path, common: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path: the whole file as int64 pairs, or None when some id is not an integer."""
    if not _plain_integer_file(path):
        return None  # pandas would read 1.0 or 1e3 as an int64: the exact text path decides
    try:
        frame = pd.read_csv(path, dtype=np.int64, **common)
    except (ValueError, OverflowError, TypeError):
        return None
    except pd.errors.EmptyDataError:
        e = np.empty(0, dtype=np.int64)
        return e, e
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc) from None
    return frame[0].to_numpy(dtype=np.int64), frame[1].to_numpy(dtype=np.int64)


_NOT_INTEGER_TEXT = re.compile(rb"[^0-9\s+-]")
_COMMENT = re.compile(rb"#[^\n]*")


def _plain_integer_file(path: Path, chunk: int = 1 << 22) -> bool:
    """Whether every byte outside ``#`` comments is a digit, a sign or whitespace (streams the file)."""
    tail = b""
    with path.open("rb") as fh:
        while True:
            data = fh.read(chunk)
            block = tail + data
            if data:
                cut = block.rfind(b"\n") + 1
                block, tail = block[:cut], block[cut:]
            if _NOT_INTEGER_TEXT.search(_COMMENT.sub(b"", block)):
                return False
            if not data:
                return True


def _read_snap(
    path: Path, id_type: IdType, delimiter: str | None
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    sep = delimiter or r"\s+"
    common = dict(sep=sep, header=None, comment="#", encoding="utf-8", engine="c", usecols=[0, 1])
    if id_type == "int":
        fast = _read_snap_int(path, common)
        if fast is not None:
            return fast[0], fast[1], fast
        # Not all integers: the text parser below locates the offending row.
    try:
        frame = pd.read_csv(path, dtype=object, keep_default_na=False, **common)
    except pd.errors.EmptyDataError:
        e = np.empty(0, dtype=object)
        return e, e, None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc) from None
    except ValueError as exc:  # usecols out of range: a file with one column
        raise InputError(f"expected two ids per line ({exc})", source=path) from None
    return frame[0].to_numpy(dtype=object), frame[1].to_numpy(dtype=object), None


def _finish_int_edges(
    path: Path, a: np.ndarray, b: np.ndarray, line_of: Callable[[int], int | None], skip_invalid: bool,
    directed: bool = False,
) -> EdgeBatch:
    uniques, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    m = a.size
    ids = uniques.astype(str).tolist()
    keep = np.arange(m)
    return validate_pairs(path, ids, inverse[:m], inverse[m:], keep, line_of, skip_invalid, {}, m, directed=directed)


def validate_pairs(
    path: Path,
    ids: list[str],
    src: np.ndarray,
    dst: np.ndarray,
    rows: np.ndarray,
    line_of: Callable[[int], int | None],
    skip_invalid: bool,
    skipped: dict[str, int],
    rows_read: int,
    problems: Problems | None = None,
    directed: bool = False,
) -> EdgeBatch:
    """Reject (or, with ``skip_invalid``, drop and count) self-loops and duplicate friendships.

    ``ids[src[k]]``/``ids[dst[k]]`` are the endpoints of row ``rows[k]`` of the file; duplicates
    are unordered (``u v`` repeats ``v u``). Without ``skip_invalid`` every problem is collected
    (with those already in ``problems``) and the first few are raised in one :class:`InputError`."""
    if problems is None:
        problems = Problems(path, line_of)
    src = src.astype(np.int64)
    dst = dst.astype(np.int64)
    loops = src == dst
    if loops.any():
        if not skip_invalid:
            problems.record(int(loops.sum()), [
                (line_of(int(rows[k])), f"self-loop: user {ids[src[k]]!r} {'blocks' if directed else 'befriends'} itself")
                for k in np.flatnonzero(loops)[:SHOWN_PROBLEMS].tolist()
            ])
        else:
            skipped["self_loop"] = int(loops.sum())
        keep = ~loops
        src, dst, rows = src[keep], dst[keep], rows[keep]
    lo, hi = (src, dst) if directed else (np.minimum(src, dst), np.maximum(src, dst))
    key = lo * max(len(ids), 1) + hi
    kind = "block" if directed else "friendship"
    dup = pd.Series(key).duplicated().to_numpy()
    if dup.any():
        if not skip_invalid:
            def duplicate(k: int) -> tuple[int | None, str]:
                first_line = line_of(int(rows[int(np.flatnonzero(key == key[k])[0])]))
                return line_of(int(rows[k])), f"duplicate {kind} {ids[src[k]]!r} -- {ids[dst[k]]!r} (first on line {first_line})"

            dups = np.flatnonzero(dup)
            problems.record(int(dups.size), [duplicate(k) for k in dups[:SHOWN_PROBLEMS].tolist()])
        else:
            skipped["duplicate"] = int(dup.sum())
        keep = ~dup
        lo, hi, rows = lo[keep], hi[keep], rows[keep]
    problems.raise_if_any()
    row_lines = rows

    def edge_line(k: int) -> int | None:
        return line_of(int(row_lines[k]))

    return EdgeBatch(
        source=str(path), ids=ids, src=lo, dst=hi, rows_read=int(rows_read), skipped=skipped, line_of=edge_line
    )


# ---------------------------------------------------------------------------------------------
# users


def _parse_bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return None


def read_users(
    path: str | Path,
    *,
    id_column: str = "id",
    id_type: IdType = "int",
    delimiter: str = ",",
    text_columns: Iterable[str] = (),
    feature_columns: Iterable[str] = (),
) -> UserBatch:
    """Read and validate a users CSV.

    A column is a feature when it is named in ``feature_columns`` or when every non-empty cell
    parses as a number and none has a leading zero (``01234`` reads as text, so a zip code
    exported and read back stays ``01234``); otherwise it is a text attribute (``text_columns``
    forces that). Feature cells must be finite numbers: empty, NaN and infinite values are errors.
    """
    path = Path(path)
    _check_path(path)
    _check_delimiter(delimiter, path)
    _check_utf8(path)
    frame = _read_csv_frame(path, delimiter)
    line_of = _csv_line_map(path, delimiter)
    _require_column(path, frame, id_column, "id")
    forced_text = set(text_columns)
    forced_numeric = set(feature_columns)
    for name in forced_text | forced_numeric:
        _require_column(path, frame, name, "named")
    both = forced_text & forced_numeric
    if both:
        raise InputError(f"column {sorted(both)[0]!r} is named both as text and as feature", source=path)

    problems = Problems(path, line_of)
    raw_ids = frame[id_column].to_numpy(dtype=object)
    ids, ok = _canonical_ids(raw_ids, id_type, path, line_of, "user id")
    problems.add(np.flatnonzero(~ok), lambda k: _id_problem(raw_ids[k], id_type, "user id"))
    dup = pd.Series(ids).duplicated().to_numpy() & ok
    problems.add(np.flatnonzero(dup), lambda k: f"duplicate user id {ids[k]!r}")

    is_synthetic = None
    if "is_synthetic" in frame.columns:
        flag_values = frame["is_synthetic"].tolist()
        flags = [_parse_bool(v) for v in flag_values]
        problems.add([i for i, f in enumerate(flags) if f is None],
                     lambda k: f"is_synthetic must be true/false/1/0, got {flag_values[k]!r}")
        is_synthetic = np.array([bool(f) for f in flags], dtype=bool)

    feature_names: list[str] = []
    columns: list[np.ndarray] = []
    attribute_names: list[str] = []
    for name in frame.columns:
        if name in (id_column, "is_synthetic"):
            continue
        values = frame[name].to_numpy(dtype=object)
        stripped = np.array([v.strip() for v in values.tolist()], dtype=object)
        nonempty = stripped != ""
        numbers = pd.to_numeric(pd.Series(stripped), errors="coerce").to_numpy(dtype=np.float64)
        parses = ~np.isnan(numbers) | np.isin(np.char.lower(stripped.astype(str)), ["nan", "+nan", "-nan"])
        # a leading zero ("01234": zip codes, phone numbers) marks text a number would lose
        leading_zero = pd.Series(stripped).str.match(r"^[+-]?0\d").to_numpy(dtype=bool)
        is_feature = name in forced_numeric or (
            name not in forced_text and nonempty.any() and bool(parses[nonempty].all()) and not leading_zero.any()
        )
        if not is_feature:
            attribute_names.append(name)
            continue
        with np.errstate(over="ignore"):
            as32 = numbers.astype(np.float32)
        finite = np.isfinite(numbers)
        checks = (  # disjoint, so each bad cell is one problem
            (~nonempty, lambda k, name=name: f"empty value in feature column {name!r}"),
            (nonempty & ~parses, lambda k, name=name, values=values: f"non-numeric value {values[k]!r} in feature column {name!r}"),
            (parses & ~finite, lambda k, name=name, values=values: f"{values[k].strip()} in feature column {name!r} (features must be finite)"),
            (finite & ~np.isfinite(as32), lambda k, name=name, values=values: f"value {values[k]!r} in column {name!r} overflows float32"),
        )
        for bad, problem in checks:
            problems.add(np.flatnonzero(bad), problem)
        feature_names.append(name)
        columns.append(as32)
    problems.raise_if_any()
    features = np.stack(columns, axis=1) if columns else np.zeros((len(ids), 0), dtype=np.float32)
    attr_frame = frame[attribute_names] if attribute_names else None
    attributes: list[dict[str, str]] = []
    if attr_frame is not None:
        for rec in attr_frame.itertuples(index=False, name=None):
            attributes.append({k: v for k, v in zip(attribute_names, rec) if v != ""})
    else:
        attributes = [{} for _ in range(len(ids))]
    return UserBatch(
        source=str(path),
        external_ids=[str(x) for x in ids.tolist()],
        feature_names=feature_names,
        features=features,
        attributes=attributes,
        attribute_names=attribute_names,
        is_synthetic=is_synthetic,
        line_of=line_of,
    )


# ---------------------------------------------------------------------------------------------
# labels


def read_labels(
    path: str | Path,
    *,
    id_column: str = "id",
    label_column: str = "label",
    source_column: str = "source",
    default_source: str = "import",
    id_type: IdType = "int",
    delimiter: str = ",",
) -> LabelBatch:
    """Read and validate a labels CSV: one label per user and source."""
    path = Path(path)
    _check_path(path)
    _check_delimiter(delimiter, path)
    _check_utf8(path)
    frame = _read_csv_frame(path, delimiter)
    line_of = _csv_line_map(path, delimiter)
    _require_column(path, frame, id_column, "id")
    _require_column(path, frame, label_column, "label")
    problems = Problems(path, line_of)
    raw_ids = frame[id_column].to_numpy(dtype=object)
    ids, ok = _canonical_ids(raw_ids, id_type, path, line_of, "user id")
    problems.add(np.flatnonzero(~ok), lambda k: _id_problem(raw_ids[k], id_type, "user id"))
    labels = [str(v).strip() for v in frame[label_column].tolist()]
    has_source = source_column in frame.columns
    sources = [str(v).strip() or default_source for v in frame[source_column].tolist()] if has_source else [default_source] * len(labels)
    problems.add([k for k, lab in enumerate(labels) if not lab], lambda k: f"empty label for user {ids[k]!r}")
    problems.add([k for k, lab in enumerate(labels) if len(lab) > MAX_LABEL_LENGTH],
                 lambda k: f"label longer than {MAX_LABEL_LENGTH} characters")
    problems.add([k for k, src in enumerate(sources) if len(src) > MAX_LABEL_LENGTH],
                 lambda k: f"source longer than {MAX_LABEL_LENGTH} characters")
    keys = pd.Series([f"{i}\x1f{s}" for i, s in zip(ids.tolist(), sources)])
    dup = keys.duplicated().to_numpy() & ok
    problems.add(np.flatnonzero(dup), lambda k: f"duplicate label for user {ids[k]!r} (source {sources[k]!r})")
    problems.raise_if_any()
    return LabelBatch(
        source=str(path),
        external_ids=[str(x) for x in ids.tolist()],
        labels=labels,
        sources=sources,
        line_of=line_of,
    )
