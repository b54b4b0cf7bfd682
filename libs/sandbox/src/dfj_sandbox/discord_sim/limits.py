"""Discord's documented rules that the OpenAPI document cannot express.

The spec checks each field on its own; Discord also checks the message as a whole
(``resources/message``, ``components/reference``, ``interactions/application-commands``):

- the text of all embeds together (titles, descriptions, field names and values, footer
  texts, author names) is at most 6,000 characters;
- a message must have something in it (content, an embed, components, stickers, a poll or
  files), else 50006 "Cannot send an empty message";
- without ``IS_COMPONENTS_V2`` (``1 << 15``) components are at most 5 Action Rows; an Action
  Row holds up to 5 buttons *or* one select; with the flag there may be 40 components in all
  and no ``content``, ``embeds`` or ``poll``;
- ``custom_id`` is unique within a message; buttons of styles 1-4 need one, link buttons
  (style 5) need a ``url`` and may not have one;
- ``allowed_mentions.parse`` may not name a type whose ids are also listed;
- commands: chat-input names are lower case ``[-_'\\w]{1,32}`` with a description of 1 to 100
  characters, context-menu commands have none; names are unique per type; at most 100
  chat-input, 15 user and 15 message commands; required options come before optional ones.

Each rule yields :class:`~dfj_sandbox.discord_sim.openapi.FieldError` values with Discord's
codes where they are known.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from dfj_sandbox.discord_sim.openapi import FieldError

__all__ = [
    "EMBED_TOTAL_LIMIT",
    "IS_COMPONENTS_V2",
    "command_errors",
    "embed_text_length",
    "is_empty_message",
    "message_errors",
]

EMBED_TOTAL_LIMIT: Final = 6000
IS_COMPONENTS_V2: Final = 1 << 15
_LEGACY_ROWS: Final = 5
_V2_TOTAL: Final = 40
_ROW_WIDTH: Final = 5
_SELECTS: Final = frozenset({3, 5, 6, 7, 8})
_COMMAND_NAME: Final = re.compile(r"^[-_'\w]{1,32}$")
_COMMAND_LIMITS: Final[Mapping[int, int]] = {1: 100, 2: 15, 3: 15}

Path = tuple[str | int, ...]


def _text(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def embed_text_length(embeds: Sequence[Mapping[str, Any]]) -> int:
    """The characters that count towards the 6,000 total."""
    total = 0
    for embed in embeds:
        total += _text(embed.get("title")) + _text(embed.get("description"))
        for item in embed.get("fields") or ():
            if isinstance(item, Mapping):
                total += _text(item.get("name")) + _text(item.get("value"))
        for part in ("footer", "author"):
            holder = embed.get(part)
            if isinstance(holder, Mapping):
                total += _text(holder.get("text" if part == "footer" else "name"))
    return total


def is_empty_message(body: Mapping[str, Any]) -> bool:
    """Whether a create body has nothing to show."""
    return not any(
        body.get(name)
        for name in (
            "content",
            "embeds",
            "components",
            "sticker_ids",
            "poll",
            "attachments",
            "shared_client_theme",
        )
    )


def _walk(nodes: Any, path: Path) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    if not isinstance(nodes, list):
        return
    for index, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            continue
        here = (*path, index)
        yield here, node
        yield from _walk(node.get("components"), (*here, "components"))
        for key in ("accessory", "component"):
            child = node.get(key)
            if isinstance(child, Mapping):
                yield (*here, key), child
                yield from _walk(child.get("components"), (*here, key, "components"))


def message_errors(body: Any, *, flags_allowed: int | None = None) -> list[FieldError]:
    """Every whole-message rule ``body`` breaks (see the module docstring)."""
    if not isinstance(body, Mapping):
        return []
    errors: list[FieldError] = []
    embeds = body.get("embeds") or []
    if (
        isinstance(embeds, list)
        and embed_text_length([e for e in embeds if isinstance(e, Mapping)]) > EMBED_TOTAL_LIMIT
    ):
        errors.append(
            FieldError(
                path=("embeds",),
                code="MAX_EMBED_SIZE_EXCEEDED",
                message=f"Embed size exceeds maximum size of {EMBED_TOTAL_LIMIT}",
            )
        )
    flags = body.get("flags") or 0
    if isinstance(flags, int) and flags_allowed is not None and flags & ~flags_allowed:
        errors.append(
            FieldError(path=("flags",), code="MESSAGE_FLAGS_INVALID", message="Invalid flags.")
        )
    v2 = isinstance(flags, int) and bool(flags & IS_COMPONENTS_V2)
    components = body.get("components") or []
    errors.extend(_component_errors(components, v2=v2))
    if v2:
        for name in ("content", "embeds", "poll"):
            if body.get(name):
                errors.append(
                    FieldError(
                        path=(name,),
                        code="MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                        message="The 'content', 'embeds', 'sticker_ids' and 'poll' fields"
                        " cannot be used when the IS_COMPONENTS_V2 flag is set.",
                    )
                )
    errors.extend(_mention_errors(body.get("allowed_mentions")))
    return errors


def _layout_errors(components: list[Any], *, v2: bool) -> Iterator[FieldError]:
    if v2:
        total = sum(1 for _ in _walk(components, ("components",)))
        if total > _V2_TOTAL:
            yield FieldError(
                path=("components",),
                code="BASE_TYPE_MAX_LENGTH",
                message=f"Must be {_V2_TOTAL} or fewer in length.",
            )
        return
    if len(components) > _LEGACY_ROWS:
        yield FieldError(
            path=("components",),
            code="BASE_TYPE_MAX_LENGTH",
            message=f"Must be {_LEGACY_ROWS} or fewer in length.",
        )
    for index, row in enumerate(components):
        if isinstance(row, Mapping) and row.get("type") != 1:
            yield FieldError(
                path=("components", index, "type"),
                code="BASE_TYPE_CHOICES",
                message="Value must be one of (1).",
            )


def _row_too_wide(children: list[Any]) -> bool:
    selects = sum(1 for c in children if isinstance(c, Mapping) and c.get("type") in _SELECTS)
    return len(children) > _ROW_WIDTH or (selects > 0 and len(children) > 1)


def _component_errors(components: Any, *, v2: bool) -> Iterator[FieldError]:
    if not isinstance(components, list):
        return
    yield from _layout_errors(components, v2=v2)
    seen: set[str] = set()
    for path, node in _walk(components, ("components",)):
        kind = node.get("type")
        children = node.get("components")
        if kind == 1 and isinstance(children, list) and _row_too_wide(children):
            yield FieldError(
                path=(*path, "components"),
                code="COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                message="The specified component exceeds the maximum width",
            )
        custom_id = node.get("custom_id")
        if isinstance(custom_id, str):
            if custom_id in seen:
                yield FieldError(
                    path=(*path, "custom_id"),
                    code="COMPONENT_CUSTOM_ID_DUPLICATED",
                    message="Component custom id cannot be duplicated",
                )
            seen.add(custom_id)
        if kind == 2:
            yield from _button_errors(path, node)


def _button_errors(path: Path, button: Mapping[str, Any]) -> Iterator[FieldError]:
    style = button.get("style")
    if style in (1, 2, 3, 4) and not button.get("custom_id"):
        yield FieldError(
            path=(*path, "custom_id"), code="BASE_TYPE_REQUIRED", message="This field is required"
        )
    if style == 5:
        if not button.get("url"):
            yield FieldError(
                path=(*path, "url"), code="BASE_TYPE_REQUIRED", message="This field is required"
            )
        if button.get("custom_id"):
            yield FieldError(
                path=(*path, "custom_id"),
                code="BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                message="A link button cannot have a custom_id.",
            )


def _mention_errors(mentions: Any) -> Iterator[FieldError]:
    if not isinstance(mentions, Mapping):
        return
    parse = mentions.get("parse") or []
    for kind in ("users", "roles"):
        if kind in parse and mentions.get(kind):
            yield FieldError(
                path=("allowed_mentions", "parse"),
                code="MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                message=f'parse:["{kind}"] and {kind}: [ids] are mutually exclusive.',
            )


def command_errors(commands: Any) -> list[FieldError]:
    """Every documented rule a bulk-overwrite list breaks."""
    if not isinstance(commands, list):
        return []
    errors: list[FieldError] = []
    seen: set[tuple[int, str]] = set()
    counts: dict[int, int] = {}
    for index, command in enumerate(commands):
        if not isinstance(command, Mapping):
            continue
        kind = int(command.get("type") or 1)
        name = str(command.get("name", ""))
        counts[kind] = counts.get(kind, 0) + 1
        if (kind, name) in seen:
            errors.append(
                FieldError(
                    path=(index, "name"),
                    code="APPLICATION_COMMANDS_DUPLICATE_NAME",
                    message=f"Application command names must be unique: {name}",
                )
            )
        seen.add((kind, name))
        description = command.get("description")
        if kind == 1:
            if not _COMMAND_NAME.match(name) or name != name.lower():
                errors.append(
                    FieldError(
                        path=(index, "name"),
                        code="APPLICATION_COMMAND_INVALID_NAME",
                        message="Command name is invalid",
                    )
                )
            if not description:
                errors.append(
                    FieldError(
                        path=(index, "description"),
                        code="BASE_TYPE_REQUIRED",
                        message="This field is required",
                    )
                )
        elif description:
            errors.append(
                FieldError(
                    path=(index, "description"),
                    code="APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                    message="Context menu commands cannot have description",
                )
            )
        errors.extend(_option_errors(command.get("options"), (index, "options")))
    for kind, count in counts.items():
        limit = _COMMAND_LIMITS.get(kind)
        if limit is not None and count > limit:
            errors.append(
                FieldError(
                    path=(),
                    code="APPLICATION_COMMANDS_LIMIT_EXCEEDED",
                    message=f"Maximum number of application commands of type {kind} reached"
                    f" ({limit})",
                )
            )
    return errors


def _option_errors(options: Any, path: Path) -> Iterator[FieldError]:
    if not isinstance(options, list):
        return
    optional_seen = False
    for index, option in enumerate(options):
        if not isinstance(option, Mapping):
            continue
        here = (*path, index)
        name = str(option.get("name", ""))
        if not _COMMAND_NAME.match(name) or name != name.lower():
            yield FieldError(
                path=(*here, "name"),
                code="APPLICATION_COMMAND_INVALID_NAME",
                message="Command name is invalid",
            )
        if option.get("type") in (1, 2):
            yield from _option_errors(option.get("options"), (*here, "options"))
            continue
        if option.get("required"):
            if optional_seen:
                yield FieldError(
                    path=(*here, "required"),
                    code="APPLICATION_COMMAND_OPTIONS_ORDER_INVALID",
                    message="Required options must be placed before non-required options",
                )
        else:
            optional_seen = True
