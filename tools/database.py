"""Database[sql]: one read-only SELECT against a task-provided SQLite file, as a text table."""

from __future__ import annotations

import math
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Sequence

from core.errors import ConfigError
from tools.base import ToolContext, ToolSpec

DATABASE_SPEC = ToolSpec(
    name="Database",
    description="Runs one read-only SQL query (SELECT or WITH) on the task's SQLite database "
                "and returns the matching rows as a table.",
    usage="Database[sql], e.g. Database[SELECT name, population FROM city WHERE country = "
          "'France' ORDER BY population DESC LIMIT 3]",
)

MAX_VALUE_BYTES = 4 << 20  # the longest string or blob a query may build (SQLITE_LIMIT_LENGTH)

_COMMENT = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:sql)?\s*|\s*```$", re.IGNORECASE)
# Actions a plain query needs; the authorizer denies everything else (writes, ATTACH, PRAGMA...).
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _cell(value: Any, width: int) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, bytes):
        text = f"<{len(value)} bytes>"
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], more: int = 0,
                 cell_chars: int = 60) -> str:
    """`a | b` header, one line per row, and `… N more rows` when rows were left out.

    Lines end in `;` so the table stays readable when the toolbox joins it into one line.
    """
    lines = [" | ".join(columns)]
    lines += [" | ".join(_cell(v, cell_chars) for v in row) for row in rows]
    if more:
        lines.append(f"… {more} more row{'s' if more != 1 else ''}")
    return ";\n".join(lines)


class Database:
    """Opens the file read-only (`mode=ro`, `query_only`, an authorizer) for every query;
    strings and blobs are capped at `max_value_bytes`, queries at `timeout_s`."""

    def __init__(self, path: str | Path, spec: ToolSpec = DATABASE_SPEC, max_rows: int = 20,
                 timeout_s: float = 5.0, cell_chars: int = 60,
                 max_value_bytes: int = MAX_VALUE_BYTES) -> None:
        self.spec = spec
        self.path = Path(path)
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        self.cell_chars = cell_chars
        self.max_value_bytes = max_value_bytes
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: database file not found (tool {spec.name})")
        try:
            with closing(self._connect()) as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as err:
            raise ConfigError(f"{self.path}: not a readable SQLite database: {err}") from err

    def _connect(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s)
        if hasattr(conn, "setlimit"):  # Python >= 3.11; older ones keep SQLite's 1 GB
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def tables(self) -> str:
        """`name(col, col), ...` for every table and view, to help the agent write queries."""
        try:
            with closing(self._connect()) as conn:
                names = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
                parts = []
                for name in names:
                    quoted = '"' + name.replace('"', '""') + '"'
                    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({quoted})")]
                    parts.append(f"{name}({', '.join(cols)})")
        except sqlite3.Error as err:
            return f"(cannot list tables: {err})"
        return ", ".join(parts) or "(no tables)"

    def run(self, argument: str, ctx: ToolContext) -> str:
        sql = _FENCE.sub("", argument.strip()).strip()
        if len(sql) >= 2 and sql[0] == sql[-1] and sql[0] in "\"'":
            sql = sql[1:-1].strip()
        body = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
        if not body:
            return f"Database needs a SQL query. Tables: {self.tables()}."
        if ";" in _strip_strings(body):
            return "Database runs one query at a time; send a single SELECT statement."
        if body.split(None, 1)[0].upper() not in ("SELECT", "WITH"):
            return "Database is read-only: only SELECT (or WITH ... SELECT) queries are allowed."
        try:
            return self._query(body)
        except sqlite3.Error as err:
            message = str(err)
            if "interrupted" in message:
                return (f"SQL error: the query took longer than {self.timeout_s:g} s "
                        "and was stopped.")
            if "not authorized" in message:
                return "SQL error: only reading is allowed."
            if "too big" in message:
                return (f"SQL error: {message} (values are limited to "
                        f"{self.max_value_bytes} bytes).")
            hint = f" Tables: {self.tables()}." if "no such" in message else ""
            return f"SQL error: {message}.{hint}"
        except MemoryError:
            return "SQL error: the query ran out of memory; ask for fewer or smaller values."
        except Exception as err:  # noqa: BLE001 - tools never raise
            return f"SQL error: {type(err).__name__}: {err}."

    def _query(self, sql: str) -> str:
        deadline = time.monotonic() + self.timeout_s
        with closing(self._connect()) as conn, closing(_Printf(self.max_value_bytes)) as printf:
            for name in ("printf", "format"):  # format is printf's other name
                conn.create_function(name, -1, printf, deterministic=True)
            conn.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK
                                if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY)
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            cursor = conn.execute(sql)
            if cursor.description is None:
                return "The statement returned no table."
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchmany(self.max_rows)
            more = sum(1 for _ in cursor)
        if not rows:
            return f"No rows (columns: {', '.join(columns)})."
        return format_table(columns, rows, more, self.cell_chars)


# One printf conversion: flags, width, precision, size, type (SQLite's own grammar).
_PRINTF_SPEC = re.compile(r"%[-+ 0#,!]*(\*|\d*)(?:\.(\*|\d*))?(?:ll|l)?(.?)", re.DOTALL)
_PRINTF_TAKES_ARGUMENT = set("dsgzqQwcouxXfeEGipr")
_LEADING_INTEGER = re.compile(r"\s*[-+]?\d{1,18}")


def _as_count(value: Any) -> int:
    """An argument read as SQLite reads a `*` width or precision: an integer, sign dropped."""
    if isinstance(value, float):
        return 0 if math.isnan(value) else int(min(abs(value), 2.0 ** 63))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        match = _LEADING_INTEGER.match(value)
        return abs(int(match[0])) if match else 0
    return abs(value) if isinstance(value, int) else 0


def _longest_repeat(fmt: str, args: Sequence[Any]) -> int:
    """The most times printf(fmt, *args) repeats one character (`%.Nc` repeats it N times)."""
    position, longest = 0, 0
    for match in _PRINTF_SPEC.finditer(fmt):
        width, precision, conversion = match.groups()
        position += width == "*"
        if precision == "*":
            count = _as_count(args[position]) if position < len(args) else 0
            position += 1
        elif precision and len(precision) > 18:
            count = 2 ** 63
        else:
            count = int(precision or 0)
        if conversion in ("%", "n"):
            continue
        if conversion not in _PRINTF_TAKES_ARGUMENT:
            break  # SQLite stops at an unknown conversion
        if conversion == "c":
            longest = max(longest, count)
        position += 1
    return longest


class _Printf:
    """SQLite's printf (alias format) for a query connection, refusing `%.Nc` with N past
    the length limit up front: SQLite 3.40 still loops N times after giving up on the result
    (12 s for N = 2**31, per row, and no progress handler can stop it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._plain: sqlite3.Connection | None = None

    def __call__(self, *args: Any) -> Any:
        fmt = args[0] if args else None
        if isinstance(fmt, bytes):
            fmt = fmt.decode("utf-8", "replace")
        if isinstance(fmt, str) and _longest_repeat(fmt, args[1:]) > self.limit:
            raise OverflowError  # sqlite3 turns it into "string or blob too big"
        if self._plain is None:
            self._plain = sqlite3.connect(":memory:")
            if hasattr(self._plain, "setlimit"):
                self._plain.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.limit)
        marks = ", ".join("?" * len(args))
        try:
            return self._plain.execute(f"SELECT printf({marks})", args).fetchone()[0]
        except sqlite3.DataError as err:  # newer SQLite reports the too-big result itself
            raise OverflowError(str(err)) from err

    def close(self) -> None:
        if self._plain is not None:
            self._plain.close()


def _strip_strings(sql: str) -> str:
    """The SQL with quoted strings and identifiers blanked, to look for statement separators."""
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "''", sql)
