"""File uploads on the interaction webhooks, as Discord takes them (``reference/uploading-files``).

A message with files is sent as ``multipart/form-data``: a ``payload_json`` part (the JSON
body, whose ``attachments`` name each file by ``id`` and ``filename``) and one ``files[n]``
part per file. The simulator checks that shape — every ``files[n]`` is named in
``attachments`` and the other way round, at most 10 files of at most 10 MiB — and keeps each
accepted file in :attr:`DiscordSimulator.uploads` for assertions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any, Final

from dfj_sandbox.discord_sim.errors import INVALID_JSON, Reply, error_reply, form_error
from dfj_sandbox.discord_sim.openapi import FieldError

if TYPE_CHECKING:
    from dfj_sandbox.discord_sim.routes import Route

__all__ = ["Upload", "read_multipart"]

#: Where uploads are accepted: the interaction webhook's message routes.
_UPLOAD_ROUTES: Final = frozenset(
    {
        "/webhooks/{webhook_id}/{webhook_token}",
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
    }
)
_FILE_PART: Final = re.compile(r"^files\[(\d{1,2})\]$")
_ATTACHMENT_ID: Final = re.compile(r"^\d{1,2}$")  # a snowflake string (or number) naming files[n]
_MAX_FILES: Final = 10
_MAX_FILE: Final = 10 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """One file the app attached: where to, its name, media type and bytes."""

    template: str
    filename: str
    content_type: str
    data: bytes = field(repr=False)


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__("refused")
        self.reply = reply


def _invalid(message: str) -> _Refused:
    error = FieldError(path=("attachments",), code="ATTACHMENT_INVALID", message=message)
    return _Refused(form_error([error]))


def read_multipart(raw: bytes, content_type: str, route: Route) -> tuple[Any, list[Upload]] | Reply:
    """The JSON body and the files of a multipart request, or the error Discord answers."""
    try:
        body, files = _parts(raw, content_type)
        if len(files) > _MAX_FILES:
            raise _invalid(f"At most {_MAX_FILES} files.")
        named = {
            int(a["id"]): a.get("filename")
            for a in body.get("attachments", [])
            if isinstance(a, dict) and _ATTACHMENT_ID.match(str(a.get("id")))
        }
        if set(named) != set(files):
            raise _invalid("Every file must be named in attachments, and every attachment sent.")
    except _Refused as refused:
        return refused.reply
    uploads = [
        Upload(
            template=route.template,
            filename=str(named[i] or name),
            content_type=kind,
            data=data,
        )
        for i, (name, kind, data) in sorted(files.items())
    ]
    return body, uploads


_Files = dict[int, tuple[str, str, bytes]]


def _parts(raw: bytes, content_type: str) -> tuple[dict[str, Any], _Files]:
    parsed = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not isinstance(parsed, EmailMessage) or not parsed.is_multipart():
        raise _invalid("The body is not multipart/form-data.")
    body: Any = None
    files: _Files = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "payload_json":
            try:
                body = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise _Refused(error_reply(400, INVALID_JSON)) from None
            continue
        match = _FILE_PART.match(name) if isinstance(name, str) else None
        filename = part.get_filename()
        if match is None or not filename:
            raise _invalid(f"Unexpected part {name!r}.")
        if len(data) > _MAX_FILE:
            raise _invalid(f"{filename} is larger than 10 MiB.")
        files[int(match.group(1))] = (filename, part.get_content_type(), data)
    if not isinstance(body, dict):
        raise _invalid("payload_json is missing.")
    return body, files
