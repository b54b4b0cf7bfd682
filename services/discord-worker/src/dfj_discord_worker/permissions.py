"""The bot's guild permissions: the smallest set our features need, asked for at install.

The install link (``dfj discord invite-url``) carries :data:`BOT_PERMISSIONS` as its
``permissions`` integer; Discord gives the bot's managed role exactly those bits in the server
(``topics/permissions``, ``topics/oauth2`` "Bot Authorization Flow"). Channel overwrites can
still take them away; the poster tells the subscription's admin when that happens.

What the bot does as *itself* (``Authorization: Bot …``) and so needs permissions for:
notifications posted in a subscribed channel, a thread per issue started on such a post, and
later posts in that thread. Everything else needs none of ours:

- answers to slash commands, buttons and modals go through the interaction's webhook (edit of
  ``@original`` and follow-ups, authenticated by the interaction token), which Discord does not
  check against the bot's role — this includes the ``/jira privacy`` export, which is an
  ephemeral answer to the member who asked, so **Attach Files is not requested**: a personal
  export posted as a bot message in a server channel would show it to everyone there;
- direct messages (the admin notices, DM deliveries) are outside any guild's permissions;
- "Create issue from message" reads the message from the interaction's ``resolved`` data.

**Manage Threads is not requested** either: the bot only starts *public* threads and posts in
them (Send Messages in Threads also un-archives a thread that Discord auto-archived); it never
locks, archives, renames or deletes threads, or joins private ones. A thread a moderator locked
is reported to the admin like any other refusal.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["BOT_PERMISSIONS", "Permission"]


class Permission(enum.IntFlag):
    """Discord's permission bits that this module reasons about (``topics/permissions``)."""

    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38


BOT_PERMISSIONS: Final = (
    # See the subscribed channel at all: without it Discord drops every other bit there
    # (and GET /channels/{id} answers Missing Access).
    Permission.VIEW_CHANNEL
    # Post notifications in the channel (the first post of an issue's thread included).
    | Permission.SEND_MESSAGES
    # Notifications are embeds; without Embed Links Discord strips them from bot messages.
    | Permission.EMBED_LINKS
    # Reading a channel's messages, not only seeing new ones: the thread is started
    # *on* one of our posts, and replies (message_reference) need it (``resources/message``).
    # Discord does not document it for Start Thread from Message; kept so that call never
    # fails on it (the simulator does not check it).
    | Permission.READ_MESSAGE_HISTORY
    # One public thread per issue, started on the first notification.
    | Permission.CREATE_PUBLIC_THREADS
    # Later notifications go into that thread; Send Messages has no effect inside threads.
    | Permission.SEND_MESSAGES_IN_THREADS
)
"""The install link's permission integer (309237730304); see the module docstring."""
