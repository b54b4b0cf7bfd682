"""Channel routes the discord-worker uses: messages, channels, threads and DMs.

- ``POST /channels/{channel_id}/messages``: needs VIEW_CHANNEL and SEND_MESSAGES (in a thread,
  SEND_MESSAGES_IN_THREADS); a DM to a user who closed DMs or shares no guild with the bot is
  403 (50007). With ``nonce`` and ``enforce_nonce: true``, a nonce this author used in the
  channel within the nonce window returns the message made then, and nothing new is posted.
- ``PATCH /channels/{channel_id}/messages/{message_id}``: only the bot's own messages (50005).
- ``GET /channels/{channel_id}``: any channel the bot can view.
- ``POST /channels/{channel_id}/messages/{message_id}/threads``: a public thread whose id is
  the message's (one per message, 160004), needs CREATE_PUBLIC_THREADS.
- ``POST /channels/{channel_id}/threads``: a thread without a message; ``type`` defaults to
  a *private* thread (12), which needs CREATE_PRIVATE_THREADS.
- ``POST /users/@me/channels``: the DM channel with ``recipient_id`` (opened once).
"""

from __future__ import annotations

from typing import Final

from dfj_sandbox.discord_sim.errors import (
    CANNOT_DM,
    CANNOT_EDIT_OTHERS,
    EMPTY_MESSAGE,
    INVALID_RECIPIENTS,
    THREAD_ALREADY_CREATED,
    UNKNOWN_MESSAGE,
    Reply,
)
from dfj_sandbox.discord_sim.limits import is_empty_message
from dfj_sandbox.discord_sim.messages import (
    CREATE_FLAGS,
    EDIT_FLAGS,
    HAS_THREAD,
    edit_message,
    edited,
    is_empty,
    new_message,
)
from dfj_sandbox.discord_sim.model import (
    ANNOUNCEMENT,
    DM,
    GUILD_TEXT,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    Channel,
)
from dfj_sandbox.discord_sim.permissions import (
    CREATE_PRIVATE_THREADS,
    CREATE_PUBLIC_THREADS,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
)
from dfj_sandbox.discord_sim.render import channel_json, message_json
from dfj_sandbox.discord_sim.rest import RestRequest, bot_channel, refuse

__all__ = [
    "create_dm",
    "create_message",
    "edit_channel_message",
    "get_channel",
    "get_channel_message",
    "start_thread",
    "start_thread_from_message",
]

WRONG_CHANNEL_TYPE: Final = 50024
ANNOUNCEMENT_THREAD: Final = 10


def _message_reply(req: RestRequest, message_id: str, status: int = 200) -> Reply:
    world = req.world
    message = world.message(message_id)
    assert message is not None
    thread = world.channels.get(message.thread_id) if message.thread_id else None
    author = world.users[message.author_id]
    return Reply(status=status, body=message_json(message, author=author, thread=thread))


def channel_reply(
    req: RestRequest, channel: Channel, *, status: int = 200, member: bool = False
) -> Reply:
    """A channel as Discord answers it."""
    world = req.world
    bot_id = world.application.id
    recipients = [world.users[u] for u in channel.recipients if u != bot_id]
    body = channel_json(channel, recipients=recipients, member_of=bot_id if member else None)
    return Reply(status=status, body=body)


def create_message(req: RestRequest) -> Reply:
    """Create Message."""
    world = req.world
    channel_id = req.param("channel_id")
    probe = world.channels.get(channel_id)
    send = SEND_MESSAGES_IN_THREADS if probe is not None and probe.is_thread else SEND_MESSAGES
    channel = bot_channel(req, channel_id, send)
    body = req.json
    if is_empty_message(body):
        raise refuse(400, EMPTY_MESSAGE)
    if channel.type == DM:
        others = [u for u in channel.recipients if u != world.application.id]
        user = world.users.get(others[0]) if others else None
        if user is None or not user.accepts_dms or not world.shares_guild_with_bot(user.id):
            raise refuse(403, CANNOT_DM)
    bot_id = world.application.id
    nonce = body.get("nonce")
    enforce = bool(body.get("enforce_nonce")) and nonce is not None
    if enforce:
        assert nonce is not None
        earlier = world.nonce_hit(channel.id, bot_id, nonce, window=req.options.nonce_window)
        if earlier is not None:
            return _message_reply(req, earlier.id)
    message = world.add_message(
        new_message(
            world, body, channel_id=channel.id, author_id=bot_id, flags_allowed=CREATE_FLAGS
        )
    )
    if enforce:
        world.remember_nonce(message)
    return _message_reply(req, message.id)


def _own_message(req: RestRequest, channel: Channel) -> str:
    message = req.world.message(req.param("message_id"))
    if message is None or message.channel_id != channel.id:
        raise refuse(404, UNKNOWN_MESSAGE)
    return message.id


def edit_channel_message(req: RestRequest) -> Reply:
    """Edit Message (the bot's own)."""
    world = req.world
    channel = bot_channel(req, req.param("channel_id"))
    message = world.message(_own_message(req, channel))
    assert message is not None
    if message.author_id != world.application.id:
        raise refuse(403, CANNOT_EDIT_OTHERS)
    if is_empty(edited(world, message, req.json, flags_allowed=EDIT_FLAGS)):
        raise refuse(400, EMPTY_MESSAGE)
    return _message_reply(req, edit_message(world, message, req.json, flags_allowed=EDIT_FLAGS).id)


def get_channel_message(req: RestRequest) -> Reply:
    """Get Channel Message."""
    channel = bot_channel(req, req.param("channel_id"))
    return _message_reply(req, _own_message(req, channel))


def get_channel(req: RestRequest) -> Reply:
    """Get Channel."""
    return channel_reply(req, bot_channel(req, req.param("channel_id")))


def _thread(req: RestRequest, parent: Channel, *, thread_id: str, kind: int, name: str) -> Channel:
    world = req.world
    body = req.json
    bot_id = world.application.id
    thread = Channel(
        id=thread_id,
        type=kind,
        name=name,
        guild_id=parent.guild_id,
        parent_id=parent.id,
        owner_id=bot_id,
        created_at=world.clock.now(),
        auto_archive_duration=int(body.get("auto_archive_duration") or 4320),
        invitable=bool(body.get("invitable", True)) if kind == PRIVATE_THREAD else True,
        thread_members=(bot_id,),
    )
    world.store_channel(thread)
    guild = world.guild_of(parent)
    if guild is not None:
        guild.channel_ids.append(thread.id)
    return thread


def start_thread_from_message(req: RestRequest) -> Reply:
    """Start Thread from Message."""
    world = req.world
    parent = bot_channel(req, req.param("channel_id"), CREATE_PUBLIC_THREADS)
    if parent.type not in (GUILD_TEXT, ANNOUNCEMENT):
        raise refuse(400, WRONG_CHANNEL_TYPE, "Cannot execute action on this channel type")
    message = world.message(_own_message(req, parent))
    assert message is not None
    if message.thread_id is not None:
        raise refuse(400, THREAD_ALREADY_CREATED)
    kind = ANNOUNCEMENT_THREAD if parent.type == ANNOUNCEMENT else PUBLIC_THREAD
    thread = _thread(req, parent, thread_id=message.id, kind=kind, name=str(req.json["name"]))
    world.replace_message(message, thread_id=thread.id, flags=message.flags | HAS_THREAD)
    return channel_reply(req, thread, status=201)


def start_thread(req: RestRequest) -> Reply:
    """Start Thread without Message."""
    world = req.world
    kind = int(req.json.get("type") or PRIVATE_THREAD)
    need = CREATE_PRIVATE_THREADS if kind == PRIVATE_THREAD else CREATE_PUBLIC_THREADS
    parent = bot_channel(req, req.param("channel_id"), need)
    if parent.type != GUILD_TEXT and not (parent.type == ANNOUNCEMENT and kind != PRIVATE_THREAD):
        raise refuse(400, WRONG_CHANNEL_TYPE, "Cannot execute action on this channel type")
    thread = _thread(req, parent, thread_id=world.ids.next(), kind=kind, name=str(req.json["name"]))
    return channel_reply(req, thread, status=201, member=True)


def create_dm(req: RestRequest) -> Reply:
    """Create DM."""
    world = req.world
    recipient = req.json.get("recipient_id")
    user = world.users.get(str(recipient)) if recipient is not None else None
    if user is None or user.id == world.application.id:
        raise refuse(400, INVALID_RECIPIENTS)
    return channel_reply(req, world.open_dm(user))
