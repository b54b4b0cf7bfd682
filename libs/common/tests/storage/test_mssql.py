"""Unit tests of the pure SQL Server helpers: connection strings, token packing, error classes."""

from __future__ import annotations

import sqlite3
import struct

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from dfj_common.storage import mssql
from dfj_common.storage.database import is_transient_db_error
from dfj_common.storage.errors import classify_integrity_error


class FakePyodbcError(Exception):
    """Stands in for pyodbc.Error: ``args == (SQLSTATE, message)``."""


DRIVER = "[Microsoft][ODBC Driver 18 for SQL Server]"


def odbc_error(state: str, message: str, code: int, function: str = "SQLExecDirectW") -> Exception:
    """An error shaped like pyodbc's, native code in parentheses."""
    return FakePyodbcError(state, f"[{state}] {DRIVER}{message} ({code}) ({function})")


# --- connection strings --------------------------------------------------------------------


def test_connection_string_defaults_to_encrypted_tcp() -> None:
    """A bare host becomes tcp:<host>,1433 with Encrypt=yes and certificate checks on."""
    got = mssql.build_odbc_connection_string("dfj.database.windows.net", "dfj")
    assert got == (
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:dfj.database.windows.net,1433;"
        "Database=dfj;Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30"
    )


def test_connection_string_for_user_assigned_managed_identity() -> None:
    """ActiveDirectoryMsi with a client id adds Authentication and UID, nothing else."""
    got = mssql.build_odbc_connection_string(
        "dfj.database.windows.net",
        "dfj",
        authentication="ActiveDirectoryMsi",
        client_id="11111111-2222-3333-4444-555555555555",
        timeout=15,
    )
    pairs = dict(mssql.parse_odbc_connection_string(got))
    assert pairs["Authentication"] == "ActiveDirectoryMsi"
    assert pairs["UID"] == "11111111-2222-3333-4444-555555555555"
    assert pairs["Connection Timeout"] == "15"
    assert "PWD" not in pairs


def test_connection_string_for_a_local_container() -> None:
    """An explicit host,port is kept and TrustServerCertificate can be turned on."""
    got = mssql.build_odbc_connection_string("localhost,1433", "dfj", trust_server_certificate=True)
    pairs = dict(mssql.parse_odbc_connection_string(got))
    assert pairs["Server"] == "localhost,1433"
    assert pairs["TrustServerCertificate"] == "yes"
    assert pairs["Encrypt"] == "yes"


def test_connection_string_refuses_active_directory_default() -> None:
    """ActiveDirectoryDefault is rejected up front, since the ODBC driver rejects it at connect."""
    with pytest.raises(ValueError, match="ActiveDirectoryDefault"):
        mssql.build_odbc_connection_string("s", "d", authentication="ActiveDirectoryDefault")  # type: ignore[arg-type]


def test_connection_string_refuses_client_id_without_msi() -> None:
    """A client id only makes sense for a managed identity."""
    with pytest.raises(ValueError, match="ActiveDirectoryMsi"):
        mssql.build_odbc_connection_string("s", "d", client_id="abc")


def test_connection_string_values_with_separators_are_brace_quoted() -> None:
    """Values containing ';' or '}' are quoted so they cannot inject keywords, and parse back."""
    got = mssql.build_odbc_connection_string("srv,1433", "db;UID=evil}x")
    assert "Database={db;UID=evil}}x}" in got
    pairs = mssql.parse_odbc_connection_string(got)
    assert dict(pairs)["Database"] == "db;UID=evil}x"
    assert [k for k, _ in pairs].count("UID") == 0


def test_parse_handles_case_and_stray_separators() -> None:
    """Keys keep their spelling, empty segments are ignored, unterminated braces are refused."""
    assert mssql.parse_odbc_connection_string("DRIVER={A B};;server=x;") == [
        ("DRIVER", "A B"),
        ("server", "x"),
    ]
    with pytest.raises(ValueError, match="unterminated"):
        mssql.parse_odbc_connection_string("Driver={oops")


def test_odbc_connect_url_round_trips() -> None:
    """The SQLAlchemy URL carries the connection string intact in odbc_connect."""
    conn_str = mssql.build_odbc_connection_string("srv.database.windows.net", "dfj")
    url = make_url(mssql.odbc_connect_url(conn_str))
    assert url.drivername == "mssql+pyodbc"
    assert url.query["odbc_connect"] == conn_str


# --- access tokens -------------------------------------------------------------------------


def test_pack_access_token_is_byte_exact() -> None:
    """Length as little-endian uint32, then the UTF-16-LE bytes."""
    assert mssql.pack_access_token("ab") == b"\x04\x00\x00\x00a\x00b\x00"


def test_pack_access_token_matches_the_interleaved_ascii_form() -> None:
    """For an ASCII JWT, the bytes equal the 'each byte followed by NUL' construction."""
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2RhdGFiYXNlIn0.sig-_"
    expanded = b"".join(bytes((b, 0)) for b in token.encode("ascii"))
    packed = mssql.pack_access_token(token)
    assert packed[:4] == struct.pack("<I", 2 * len(token))
    assert packed[4:] == expanded
    assert len(packed) == 4 + 2 * len(token)


def test_pack_access_token_counts_bytes_not_characters() -> None:
    """A non-BMP character takes four UTF-16 bytes, and the prefix counts them."""
    packed = mssql.pack_access_token("a\U0001f680")
    assert packed[:4] == b"\x06\x00\x00\x00"
    assert packed[4:] == "a\U0001f680".encode("utf-16-le")


def test_pack_access_token_refuses_empty() -> None:
    """An empty token is a bug, not something to send."""
    with pytest.raises(ValueError, match="empty"):
        mssql.pack_access_token("")


# --- errors --------------------------------------------------------------------------------

SQLITE_NO_TABLE = FakePyodbcError(
    "HY000", "[HY000] [SQLite]no such table: nope (1) (1) (SQLExecDirectW)"
)
PAUSED = odbc_error(
    "42000",
    "[SQL Server]Database 'dfj' on server 'srv' is not currently available. "
    "Please retry the connection later.",
    40613,
    "SQLDriverConnect",
)
RESET = odbc_error("08S01", "TCP Provider: An existing connection was forcibly closed.", 10054)
THROTTLED = odbc_error("42000", "[SQL Server]The service is currently busy.", 40501)
DEADLOCK = odbc_error("40001", "[SQL Server]Transaction was deadlocked ... victim.", 1205)
LOCK_TIMEOUT = odbc_error("HY000", "[SQL Server]Lock request time out period exceeded.", 1222)
LOGIN_TIMEOUT = FakePyodbcError(
    "HYT00", f"[HYT00] {DRIVER}Login timeout expired (0) (SQLDriverConnect)"
)
CANNOT_CONNECT = odbc_error("08001", "TCP Provider: Error code 0x2749", 10057, "SQLDriverConnect")
DUPLICATE = odbc_error(
    "23000",
    "[SQL Server]Violation of PRIMARY KEY constraint 'pk_installations'. Cannot insert duplicate "
    "key in object 'dbo.installations'. The duplicate key value is (x).",
    2627,
)
FK_CONFLICT = odbc_error(
    "23000",
    '[SQL Server]The INSERT statement conflicted with the FOREIGN KEY constraint "fk_x". The '
    'conflict occurred in database "dfj", table "dbo.installations", column \'client_key\'.',
    547,
)
CHECK_CONFLICT = odbc_error(
    "23000",
    '[SQL Server]The INSERT statement conflicted with the CHECK constraint "ck_installations_kind"'
    '. The conflict occurred in database "dfj", table "dbo.installations", column \'kind\'.',
    547,
)
NO_OBJECT = odbc_error("42S02", "[SQL Server]Invalid object name 'nope'.", 208)
LOGIN_FAILED = odbc_error(
    "28000",
    "[SQL Server]Login failed for user '<token-identified principal>'.",
    18456,
    "SQLDriverConnect",
)


def test_native_error_codes_from_pyodbc_args() -> None:
    """Every parenthesised number in the message is a native code, in order."""
    assert mssql.native_error_codes(SQLITE_NO_TABLE) == [1, 1]
    assert mssql.native_error_codes(PAUSED) == [40613]
    assert mssql.native_error_codes(ValueError("plain")) == []


def test_native_error_codes_unwrap_sqlalchemy_errors() -> None:
    """A SQLAlchemy DBAPIError is looked through to the driver's exception."""
    wrapped = sa_exc.OperationalError("SELECT 1", None, RESET)
    assert mssql.native_error_codes(wrapped) == [10054]
    assert mssql.sqlstate(wrapped) == "08S01"


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        pytest.param(PAUSED, True, id="40613-paused-serverless"),
        pytest.param(THROTTLED, True, id="40501-throttled"),
        pytest.param(RESET, True, id="10054-connection-reset"),
        pytest.param(DEADLOCK, True, id="1205-deadlock"),
        pytest.param(LOCK_TIMEOUT, True, id="1222-lock-timeout"),
        pytest.param(LOGIN_TIMEOUT, True, id="HYT00-timeout"),
        pytest.param(CANNOT_CONNECT, True, id="08001-connection"),
        pytest.param(DUPLICATE, False, id="2627-duplicate"),
        pytest.param(FK_CONFLICT, False, id="547-foreign-key"),
        pytest.param(NO_OBJECT, False, id="208-no-object"),
        pytest.param(LOGIN_FAILED, False, id="18456-login-failed"),
        pytest.param(SQLITE_NO_TABLE, False, id="sqlite-odbc-no-table"),
        pytest.param(ValueError("(40613) but not from a driver?"), True, id="code-anywhere"),
        pytest.param(ValueError("nothing"), False, id="plain"),
    ],
)
def test_is_transient_classifies_driver_errors(exc: Exception, transient: bool) -> None:
    """Azure SQL's transient codes, 08xxx and time-outs retry; everything else does not."""
    assert mssql.is_transient(exc) is transient


def test_every_listed_code_is_transient() -> None:
    """Each documented transient number is recognised inside a realistic message."""
    for code in sorted(mssql.TRANSIENT_ERROR_CODES):
        assert mssql.is_transient(odbc_error("42000", "[SQL Server]x", code)), code
    documented = {
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
        1205,
        1222,
        1204,
    }
    assert documented <= mssql.TRANSIENT_ERROR_CODES


def test_sqlalchemy_wrapped_errors_are_classified_for_retry() -> None:
    """The Database's classifier retries transient driver errors but never integrity errors."""
    assert is_transient_db_error(sa_exc.OperationalError("x", None, PAUSED))
    assert not is_transient_db_error(sa_exc.ProgrammingError("x", None, NO_OBJECT))
    assert not is_transient_db_error(sa_exc.IntegrityError("x", None, DEADLOCK))
    locked = sqlite3.OperationalError("database is locked")
    assert is_transient_db_error(sa_exc.OperationalError("x", None, locked))
    no_table = sqlite3.OperationalError("no such table: x")
    assert not is_transient_db_error(sa_exc.OperationalError("x", None, no_table))
    assert is_transient_db_error(sa_exc.TimeoutError("QueuePool limit reached"))


@pytest.mark.parametrize(
    ("orig", "kind"),
    [
        pytest.param(DUPLICATE, "unique", id="mssql-2627"),
        pytest.param(
            odbc_error("23000", "[SQL Server]Cannot insert duplicate key row", 2601),
            "unique",
            id="mssql-2601",
        ),
        pytest.param(FK_CONFLICT, "foreign_key", id="mssql-547-fk"),
        pytest.param(CHECK_CONFLICT, "check", id="mssql-547-check"),
        pytest.param(
            odbc_error("23000", "[SQL Server]Cannot insert the value NULL", 515),
            "not_null",
            id="mssql-515",
        ),
        pytest.param(
            sqlite3.IntegrityError("UNIQUE constraint failed: t.a"), "unique", id="sqlite"
        ),
        pytest.param(
            sqlite3.IntegrityError("FOREIGN KEY constraint failed"), "foreign_key", id="sqlite-fk"
        ),
        pytest.param(
            sqlite3.IntegrityError("CHECK constraint failed: kind"), "check", id="sqlite-check"
        ),
        pytest.param(sqlite3.IntegrityError("something new"), "other", id="unknown"),
    ],
)
def test_integrity_errors_are_classified_on_both_backends(orig: Exception, kind: str) -> None:
    """Unique, foreign-key, NOT NULL and CHECK violations are told apart on each backend."""
    assert classify_integrity_error(sa_exc.IntegrityError("INSERT", None, orig)) == kind
