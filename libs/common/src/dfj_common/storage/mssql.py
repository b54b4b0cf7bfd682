"""Azure SQL / SQL Server through pyodbc and ODBC Driver 18: connection strings, tokens, errors.

Pure helpers: nothing here imports pyodbc, so the embedded SQLite default works on machines
without unixODBC (``import pyodbc`` fails there, since its wheel links ``libodbc.so.2``).

Theory, in brief (reference/azure.md §4):

- The driver takes either ``Authentication=ActiveDirectoryMsi`` (plus ``UID=<client id>`` for a
  user-assigned identity) in the connection string, or an Entra access token handed over before
  login as connection attribute ``SQL_COPT_SS_ACCESS_TOKEN`` (1256): the token's UTF-16-LE bytes
  prefixed by their length as a little-endian 32-bit integer. With a token the connection string
  must carry none of ``UID``, ``PWD``, ``Authentication``, ``Trusted_Connection`` (error FA005).
  ``ActiveDirectoryDefault`` is rejected by the ODBC driver, so it is refused here too.
- pyodbc errors have ``args == (SQLSTATE, message)``; the message carries the native error number
  in parentheses, e.g. ``'... (40613) (SQLDriverConnect)'``. Azure SQL documents a set of those
  numbers as transient (fail-over, throttling, a serverless database resuming, deadlocks); together
  with SQLSTATE class ``08`` (connection exceptions) and the ``HYT00``/``HYT01`` time-outs, they are
  what :func:`is_transient` retries.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from typing import Final, Literal, get_args

from sqlalchemy.engine import URL

__all__ = [
    "ACCESS_TOKEN_SCOPE",
    "DRIVER_NAME",
    "SQL_COPT_SS_ACCESS_TOKEN",
    "TOKEN_FORBIDDEN_KEYWORDS",
    "TRANSIENT_ERROR_CODES",
    "Authentication",
    "build_odbc_connection_string",
    "format_odbc_connection_string",
    "is_transient",
    "native_error_codes",
    "odbc_connect_url",
    "pack_access_token",
    "parse_odbc_connection_string",
    "sqlstate",
]

DRIVER_NAME: Final = "ODBC Driver 18 for SQL Server"
SQL_COPT_SS_ACCESS_TOKEN: Final = 1256  # msodbcsql.h
ACCESS_TOKEN_SCOPE: Final = "https://database.windows.net/.default"  # noqa: S105 (a scope)

#: Keywords that must not appear in the connection string when an access token is used.
TOKEN_FORBIDDEN_KEYWORDS: Final = frozenset({"uid", "pwd", "authentication", "trusted_connection"})

#: Native error numbers worth retrying (Azure SQL troubleshooting guide, EF6's
#: ``SqlAzureExecutionStrategy``, SqlClient's deadlock / lock time-out list).
TRANSIENT_ERROR_CODES: Final = frozenset(
    {
        # Azure SQL: database unavailable, fail-over, throttling, paused serverless database.
        926,
        4060,
        40197,
        40501,
        40613,
        49918,
        49919,
        49920,
        4221,
        615,
        # Connection-level errors and resource limits.
        10053,
        10054,
        10060,
        10928,
        10929,
        40143,
        40540,
        233,
        64,
        20,
        # Deadlock victim, lock request time-out, out of lock memory.
        1205,
        1222,
        1204,
    }
)

_TRANSIENT_SQLSTATES: Final = frozenset({"HYT00", "HYT01"})  # query / login time-out expired
_NATIVE_CODE: Final = re.compile(r"\((\d+)\)")
_SQLSTATE: Final = re.compile(r"[0-9A-Z]{5}")

Authentication = Literal[
    "SqlPassword",
    "ActiveDirectoryIntegrated",
    "ActiveDirectoryInteractive",
    "ActiveDirectoryMsi",
    "ActiveDirectoryServicePrincipal",
    "ActiveDirectoryPassword",
]
_AUTHENTICATIONS: Final = frozenset(get_args(Authentication))


def build_odbc_connection_string(
    server: str,
    database: str,
    *,
    authentication: Authentication | None = None,
    client_id: str | None = None,
    encrypt: bool = True,
    trust_server_certificate: bool = False,
    timeout: int = 30,
) -> str:
    """An ODBC Driver 18 connection string; a bare host name becomes ``tcp:<host>,1433``.

    Leave ``authentication`` unset when an access token is injected at connect time (see
    :func:`pack_access_token`); ``client_id`` selects a user-assigned managed identity.
    """
    if not server or not database:
        raise ValueError("server and database are required")
    if authentication is not None and authentication not in _AUTHENTICATIONS:
        # Settings arrive as plain strings, so check at run time too.
        given: str = authentication
        hint = (
            " (the ODBC driver rejects ActiveDirectoryDefault; inject a token instead)"
            if given == "ActiveDirectoryDefault"
            else ""
        )
        raise ValueError(f"unsupported Authentication value {given!r}{hint}")
    if client_id is not None and authentication != "ActiveDirectoryMsi":
        raise ValueError("client_id selects a user-assigned identity: it needs ActiveDirectoryMsi")
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    if not any(sep in server for sep in (",", "\\", ":")):
        server = f"tcp:{server},1433"
    pairs: list[tuple[str, str]] = [
        ("Driver", DRIVER_NAME),
        ("Server", server),
        ("Database", database),
        ("Encrypt", "yes" if encrypt else "no"),
        ("TrustServerCertificate", "yes" if trust_server_certificate else "no"),
        ("Connection Timeout", str(timeout)),
    ]
    if authentication is not None:
        pairs.append(("Authentication", authentication))
    if client_id is not None:
        pairs.append(("UID", client_id))
    return format_odbc_connection_string(pairs)


def odbc_connect_url(connection_string: str) -> str:
    """The SQLAlchemy URL (``mssql+pyodbc:///?odbc_connect=…``) for an ODBC connection string."""
    url = URL.create("mssql+pyodbc", query={"odbc_connect": connection_string})
    return url.render_as_string(hide_password=False)


def pack_access_token(token: str) -> bytes:
    """The ``SQL_COPT_SS_ACCESS_TOKEN`` value: length-prefixed (``<I``) UTF-16-LE token bytes."""
    if not token:
        raise ValueError("empty access token")
    raw = token.encode("utf-16-le")
    return struct.pack(f"<I{len(raw)}s", len(raw), raw)


def parse_odbc_connection_string(connection_string: str) -> list[tuple[str, str]]:
    """Split ``key=value;…`` into pairs, honouring ``{…}`` quoting (``}}`` is a literal ``}``)."""
    pairs: list[tuple[str, str]] = []
    text, i, n = connection_string, 0, len(connection_string)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            if text[i:].strip(" ;"):
                raise ValueError("malformed ODBC connection string: a key without a value")
            break
        key = text[i:eq].strip().lstrip(";").strip()
        i = eq + 1
        if i < n and text[i] == "{":
            value_chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise ValueError("malformed ODBC connection string: unterminated '{'")
                if text[i] == "}":
                    if i + 1 < n and text[i + 1] == "}":
                        value_chars.append("}")
                        i += 2
                        continue
                    i += 1
                    break
                value_chars.append(text[i])
                i += 1
            value = "".join(value_chars)
            semi = text.find(";", i)
            i = n if semi < 0 else semi + 1
        else:
            semi = text.find(";", i)
            end = n if semi < 0 else semi
            value = text[i:end].strip()
            i = end + 1
        if key:
            pairs.append((key, value))
    return pairs


def format_odbc_connection_string(pairs: Iterable[tuple[str, str]]) -> str:
    """Join pairs into a connection string, brace-quoting values that need it."""
    return ";".join(f"{key}={_quote(value)}" for key, value in pairs)


def _quote(value: str) -> str:
    # Braces are valid around any value; use them whenever a character could be misread.
    if any(c in value for c in ";{}=") or any(c.isspace() for c in value):
        return "{" + value.replace("}", "}}") + "}"
    return value


def native_error_codes(exc: BaseException) -> list[int]:
    """Native error numbers in a pyodbc error's ``args`` (SQLAlchemy wrappers are unwrapped)."""
    exc = _unwrap(exc)
    codes: list[int] = []
    for arg in exc.args:
        if isinstance(arg, str):
            codes.extend(int(m) for m in _NATIVE_CODE.findall(arg))
    return codes


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE pyodbc puts first in ``args``, if there is one."""
    exc = _unwrap(exc)
    if exc.args and isinstance(exc.args[0], str) and _SQLSTATE.fullmatch(exc.args[0]):
        return exc.args[0]
    return None


def is_transient(exc: BaseException) -> bool:
    """True when a driver error is worth retrying: a transient native code, 08xxx or a time-out."""
    state = sqlstate(exc)
    if state is not None and (state.startswith("08") or state in _TRANSIENT_SQLSTATES):
        return True
    return any(code in TRANSIENT_ERROR_CODES for code in native_error_codes(exc))


def _unwrap(exc: BaseException) -> BaseException:
    # sqlalchemy.exc.DBAPIError keeps the driver's exception in ``orig``.
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc
