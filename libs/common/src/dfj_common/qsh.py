"""The Connect query string hash (``qsh``): what binds a Jira JWT to one HTTP request.

**Why it exists.** A Connect JWT is signed with the installation's shared secret, but a bare
signature would let anyone who saw one token (in a log, a referrer, a browser history) replay
it against any route of the app. So Atlassian puts a hash of the *request* in the token: the
method, the path and the query string, in a canonical form both sides compute independently.
The JSON body is **not** covered, only method, path and query.

**The canonical request** (``com.atlassian.jwt.JwtConstants.Claims`` Javadoc, settled in detail
by atlassian-connect-spring-boot ``HttpRequestCanonicalizer``; reference §2)::

    qsh = lowercase_hex(SHA-256(UTF-8(METHOD "&" canonical-path "&" canonical-query)))

- *method*: upper case.
- *path*: the path still percent-encoded as received, relative to the app's ``baseUrl`` (the
  path part of ``DFJ_PUBLIC_URL`` is cut off, so a reverse proxy that mounts the gateway under a
  prefix does not break the hash); one trailing ``/`` removed; empty → ``/``; a leading ``/``
  added if missing; every ``&`` replaced by ``%26`` (the separator must stay unambiguous). No
  other decoding or encoding of the path.
- *query*: names and values are first *decoded* (``+`` and ``%20`` both mean a space), the
  ``jwt`` parameter is dropped, each parameter's values are sorted by their decoded string (Java
  ``String.compareTo``: UTF-16 code units, which is why we sort by the UTF-16-BE bytes), then
  every name and value is percent-encoded the RFC 3986 way (unreserved ``A-Z a-z 0-9 - . _ ~``
  literal, every other UTF-8 byte ``%XX`` with upper-case hex, so a space is ``%20``, ``*`` is
  ``%2A``). A repeated parameter is emitted once as ``name=v1,v2`` (literal comma; a comma
  *inside* a value is ``%2C``). Parameters are sorted by ``encoded-name + " " + encoded-values``
  (the space sorts before every character of an encoded string) and joined with ``&``. No
  parameters → empty string, so ``GET&/test&`` still ends in ``&``. A name without a value
  (``?a``) is ``a=``.

Context JWTs (``AP.context.getToken()``) are not bound to a URL at all: their qsh is the fixed
string :data:`CONTEXT_QSH`, accepted only on routes that say so (see ``routes.py``).

This module is pure (stdlib only) and reproduces every case of Atlassian's interoperability
vectors (``shared/vectors/atlassian-qsh-interop.json``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = [
    "CONTEXT_QSH",
    "canonical_path",
    "canonical_query",
    "canonical_request",
    "canonical_request_for_url",
    "percent_encode",
    "qsh",
    "qsh_for_url",
]

CONTEXT_QSH: Final = "context-qsh"
JWT_PARAM: Final = "jwt"
_UNRESERVED: Final = "-._~"  # with ASCII letters and digits, which quote() never encodes


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of ``value``'s UTF-8 bytes: unreserved kept, the rest ``%XX``."""
    return quote(value, safe=_UNRESERVED)


def canonical_path(raw_path: str, base_path: str = "") -> str:
    """The path part of the canonical request (``raw_path`` still percent-encoded)."""
    path = raw_path
    base = base_path.rstrip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :]
    if path.endswith("/"):
        path = path[:-1]
    if not path:
        path = "/"
    if not path.startswith("/"):
        path = "/" + path
    return path.replace("&", "%26")


def _java_order(value: str) -> bytes:
    # Java's String.compareTo orders by UTF-16 code unit; big-endian UTF-16 bytes sort the same.
    return value.encode("utf-16-be", "surrogatepass")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """The query part from *decoded* ``(name, value)`` pairs, repeated names allowed."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        if name == JWT_PARAM:
            continue
        grouped.setdefault(name, []).append(value)
    entries: list[tuple[str, str]] = []
    for name, values in grouped.items():
        ordered = sorted(values, key=_java_order)
        encoded_name = percent_encode(name)
        encoded_values = ",".join(percent_encode(v) for v in ordered)
        sort_key = encoded_name + " " + percent_encode(",".join(ordered))
        entries.append((sort_key, f"{encoded_name}={encoded_values}"))
    entries.sort(key=lambda entry: entry[0])
    return "&".join(text for _, text in entries)


def canonical_request(
    method: str, raw_path: str, params: Iterable[tuple[str, str]], base_path: str = ""
) -> str:
    """``METHOD&path&query`` for a request whose query is given decoded."""
    return f"{method.upper()}&{canonical_path(raw_path, base_path)}&{canonical_query(params)}"


def qsh(method: str, raw_path: str, params: Iterable[tuple[str, str]], base_path: str = "") -> str:
    """The lowercase hex SHA-256 of :func:`canonical_request`."""
    text = canonical_request(method, raw_path, params, base_path)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_request_for_url(method: str, url: str, base_path: str = "") -> str:
    """The canonical request of a URL string (absolute or path + query, still encoded)."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    return canonical_request(method, parts.path, params, base_path)


def qsh_for_url(method: str, url: str, base_path: str = "") -> str:
    """The qsh of a URL string (see :func:`canonical_request_for_url`)."""
    text = canonical_request_for_url(method, url, base_path)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
