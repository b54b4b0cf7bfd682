"""Posting ``discord.message.post`` messages: packed when a channel is busy, exactly once.

For each post the handler

1. reads the post and refuses (dead-letters) one that breaks Discord's limits;
2. looks it up in the delivery log: ``sent`` → nothing to do (a completion was lost); it went
   out in another message's pack that was sent → nothing to do either;
3. gathers the posts right behind it for the same target (the bus hands out runs of one
   channel's session, see ``session_batch``) and packs them with it when the channel's bucket
   or its share of the bot's global budget could not take them one by one now
   (:mod:`.pack`) — or, on a redelivery of a pack that may have been posted, exactly as many
   as that pack had;
4. records the members as ``posting`` (head and size), posts with a ``nonce`` derived from the
   head's message id and ``enforce_nonce`` — so a redelivery after a lost answer or a killed
   worker gets Discord's existing message back instead of a second one —, and records them
   ``sent`` with the Discord message id; only then are the messages completed on the bus;
5. for a post into an issue's thread: the first one goes into the channel and starts a thread
   on that message (Discord code 160004, already started, means the thread has the message's
   id); the mapping is stored and later posts go into the thread; a thread that is gone is
   forgotten and started again. A DM goes through the user's DM channel.

Discord's refusals propagate as ``DiscordError`` (dead-letter with Discord's code and message);
where the person who set up the channel's subscription can fix it (Missing Access …) they are
told by DM first, at most once per channel and code in :attr:`Poster.notice_every`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import structlog

from dfj_common.clock import Clock
from dfj_common.envelope import Envelope
from dfj_common.runtime import HandlerContext
from dfj_common.storage import Delivery, Repositories
from dfj_discord_worker.delivery import limits
from dfj_discord_worker.delivery.outbox import (
    MESSAGE_POST,
    BadOutboxMessage,
    Post,
    read_post,
)
from dfj_discord_worker.delivery.pack import pack
from dfj_discord_worker.discord import DiscordClient, DiscordError, DiscordNotFound, routes

__all__ = ["POSTING", "SENT", "Poster", "nonce_for"]

_log: Final = structlog.get_logger("dfj.discord_worker.delivery")

POSTING: Final = "posting"
SENT: Final = "sent"
NOTICE: Final = "notice"
THREAD_ALREADY_CREATED: Final = 160004
UNKNOWN_CHANNEL: Final = 10003
_DM_CACHE: Final = 10_000
_ADMINS_TOLD: Final = 3


def nonce_for(message_id: str) -> str:
    """A 24-character nonce (Discord allows 25) fixed by the outbox message id."""
    digest = hashlib.sha256(message_id.encode()).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class _Member:
    envelope: Envelope
    post: Post


class Poster:
    """The ``discord.message.post`` handler (see the module docstring)."""

    def __init__(
        self,
        *,
        discord: DiscordClient,
        repos: Repositories,
        clock: Clock,
        notice_every: timedelta = timedelta(hours=6),
        coalesce: bool = True,
    ) -> None:
        self._discord = discord
        self._repos = repos
        self._clock = clock
        self.notice_every = notice_every
        self._coalesce = coalesce
        self._dm_channels: dict[str, str] = {}
        self._busy: dict[str, int] = {}  # targets being posted to now, and by how many

    async def __call__(self, envelope: Envelope, context: HandlerContext) -> None:
        post = read_post(envelope)
        found = limits.problems(post.message)
        if found:
            raise BadOutboxMessage("the message breaks Discord's limits: " + "; ".join(found))
        candidates = self._candidates(post, context)
        # One read for this message and the candidates to pack with it.
        records = await self._repos.delivery_log.get_many(
            [envelope.id, *(m.envelope.id for m in candidates)]
        )
        record = records.get(envelope.id)
        if await self._done_already(envelope.id, record):
            return
        recorded_size = (
            record.pack_size
            if record is not None and record.status == POSTING and record.pack_head == envelope.id
            else None
        )
        followers: list[_Member] = []
        if recorded_size != 1:
            for member in candidates:
                seen = records.get(member.envelope.id)
                if seen is not None and seen.pack_head != envelope.id:
                    break  # tried before in another post: let it go its own way
                followers.append(member)
        channel_id, thread_id = await self._channel(post)
        target = thread_id or channel_id
        self._busy[target] = self._busy.get(target, 0) + 1
        try:
            await self._post(
                envelope,
                post,
                followers,
                recorded_size,
                where=(channel_id, thread_id),
                context=context,
            )
        finally:
            if self._busy[target] <= 1:
                del self._busy[target]
            else:
                self._busy[target] -= 1

    async def _post(
        self,
        envelope: Envelope,
        post: Post,
        followers: list[_Member],
        recorded_size: int | None,
        *,
        where: tuple[str, str | None],
        context: HandlerContext,
    ) -> None:
        """Steps 4 and 5: pack what may go together, post it once, record it sent."""
        channel_id, thread_id = where
        members = [_Member(envelope, post), *followers]
        if recorded_size is not None:
            most = recorded_size
        elif followers and self._should_pack(thread_id or channel_id, len(members)):
            most = len(members)
        else:
            most = 1
        packed = pack([m.post.message for m in members], most=most)
        ids = [m.envelope.id for m in members[: packed.size]]
        await self._repos.delivery_log.record_pack(
            ids,
            channel_id=thread_id or channel_id,
            status=POSTING,
            pack_head=envelope.id,
            pack_size=packed.size,
        )
        body = {**packed.body, "nonce": nonce_for(envelope.id), "enforce_nonce": True}
        try:
            message_id, posted_in = await self._send(post, channel_id, thread_id, body)
        except DiscordError as exc:
            if exc.tell_admin:
                await self._tell_admin(post, exc)
            raise
        await self._repos.delivery_log.record_pack(
            ids,
            channel_id=posted_in,
            status=SENT,
            pack_head=envelope.id,
            pack_size=packed.size,
            discord_message_id=message_id,
        )
        if packed.size > 1 and context.run is not None:
            context.run.take(packed.size - 1)
        _log.info(
            "posted",
            channel_id=posted_in,
            discord_message_id=message_id,
            packed=packed.size,
            thread=post.thread is not None,
        )

    # -- steps -------------------------------------------------------------------------------

    async def _done_already(self, message_id: str, record: Delivery | None) -> bool:
        if record is None:
            return False
        if record.status == SENT:
            _log.info("already sent", discord_message_id=record.discord_message_id)
            return True
        if record.status == POSTING and record.pack_head not in (None, message_id):
            assert record.pack_head is not None
            head = await self._repos.delivery_log.get(record.pack_head)
            if head is not None and head.status == SENT:
                await self._repos.delivery_log.record(
                    message_id,
                    channel_id=head.channel_id,
                    status=SENT,
                    discord_message_id=head.discord_message_id,
                )
                _log.info("sent in an earlier pack", discord_message_id=head.discord_message_id)
                return True
        return False

    def _candidates(self, post: Post, context: HandlerContext) -> list[_Member]:
        """The posts right behind this one, in its run, for the same target."""
        if not self._coalesce or context.run is None:
            return []
        out: list[_Member] = []
        for envelope in context.run.following[: limits.EMBEDS - 1]:
            if envelope.type != MESSAGE_POST:
                break
            try:
                follower = read_post(envelope)
            except BadOutboxMessage:
                break
            if follower.target != post.target or limits.problems(follower.message):
                break
            out.append(_Member(envelope, follower))
        return out

    def _should_pack(self, channel_id: str, waiting: int) -> bool:
        """Pack when the channel's bucket, or its share of the bot's global budget (50
        requests/s, split between the channels being posted to now), cannot take every
        waiting post right now."""
        route = routes.CREATE_MESSAGE.compile(channel_id=channel_id)
        limiter = self._discord.limiter
        headroom = limiter.headroom(route)
        # The global budget is shared: this channel's fair part of it is what it may spend.
        share = limiter.global_headroom() // max(len(self._busy), 1)
        return headroom is None or min(headroom, share) < waiting

    async def _channel(self, post: Post) -> tuple[str, str | None]:
        """Where the post goes: (channel, the issue's thread in it if known)."""
        if post.dm_user_id is not None:
            return await self._dm_channel(post.dm_user_id), None
        assert post.channel_id is not None
        if post.thread is None:
            return post.channel_id, None
        known = await self._repos.issue_threads.get(post.channel_id, post.thread.key)
        return post.channel_id, (known.thread_id if known is not None else None)

    async def _dm_channel(self, user_id: str) -> str:
        channel = self._dm_channels.get(user_id)
        if channel is None:
            answer = await self._discord.create_dm(user_id)
            channel = str(answer["id"])
            if len(self._dm_channels) >= _DM_CACHE:
                self._dm_channels.clear()
            self._dm_channels[user_id] = channel
        return channel

    async def _send(
        self, post: Post, channel_id: str, thread_id: str | None, body: dict[str, Any]
    ) -> tuple[str, str]:
        """Post; the Discord message id and the channel (or thread) it is in."""
        if thread_id is not None:
            try:
                answer = await self._discord.create_message(thread_id, body)
                return str(answer["id"]), thread_id
            except DiscordNotFound as exc:
                if exc.code != UNKNOWN_CHANNEL or post.thread is None:
                    raise
                _log.info("the issue's thread is gone; starting another", thread_id=thread_id)
                await self._repos.issue_threads.forget(channel_id, post.thread.key)
        answer = await self._discord.create_message(channel_id, body)
        message_id = str(answer["id"])
        if post.thread is not None:
            await self._start_thread(post, channel_id, message_id)
        return message_id, channel_id

    async def _start_thread(self, post: Post, channel_id: str, message_id: str) -> None:
        assert post.thread is not None
        try:
            thread = await self._discord.start_thread_from_message(
                channel_id, message_id, post.thread.name
            )
            thread_id = str(thread["id"])
        except DiscordError as exc:
            if exc.code != THREAD_ALREADY_CREATED:
                # The notification is in the channel; later ones try to start the thread again.
                _log.warning("starting the issue's thread failed", reason=exc.reason)
                if exc.tell_admin:
                    await self._tell_admin(post, exc)
                return
            thread_id = message_id  # a thread started on a message has the message's id
        await self._repos.issue_threads.put(
            channel_id, post.thread.key, client_key=post.client_key, thread_id=thread_id
        )

    async def _tell_admin(self, post: Post, error: DiscordError) -> None:
        """DM whoever set up this channel's subscriptions what Discord refused, now and then."""
        if post.guild_id is None or post.channel_id is None:
            return
        key = f"notice:{post.channel_id}:{error.code}"
        try:
            last = await self._repos.delivery_log.get(key)
            now = self._clock.now()
            if (
                last is not None
                and now - last.recorded_at.timestamp() < self.notice_every.total_seconds()
            ):
                return
            await self._repos.delivery_log.record(key, channel_id=post.channel_id, status=NOTICE)
            subscriptions = await self._repos.subscriptions.list_for_channel(
                post.guild_id, post.channel_id
            )
            admins = sorted({s.created_by for s in subscriptions})[:_ADMINS_TOLD]
            for admin in admins:
                channel = await self._dm_channel(admin)
                await self._discord.create_message(channel, _notice(post.channel_id, error))
            _log.info("told the admins", channel_id=post.channel_id, admins=len(admins))
        except Exception as exc:  # telling is a courtesy: never hide the refusal itself
            _log.warning("telling the admins failed", error=type(exc).__name__)


def _notice(channel_id: str, error: DiscordError) -> dict[str, Any]:
    what = error.discord_message or f"HTTP {error.status}"
    return {
        "embeds": [
            {
                "title": "Jira notifications cannot reach a channel",
                "description": (
                    f"Discord refused my post in <#{channel_id}>: {what} ({error.code}).\n"
                    "Give me View Channel, Send Messages and Embed Links there (and Create "
                    "Public Threads and Send Messages in Threads for one thread per issue), "
                    "or stop the subscription there with `/jira unsubscribe`."
                ),
                "color": 0xE5493A,
            }
        ],
        "allowed_mentions": {"parse": []},
    }
