"""The call actions of a flow (hang up, transfer, voicemail) through the GoTo API.

:class:`GoToCallActions` is the :class:`~worker.flows.driver.CallActions` a
node hands to the driver for one call::

    actions = GoToCallActions(client, call_id, voicemail_number=settings_voicemail_number)

- ``hangup()``: ``DELETE /calls/{callId}``;
- ``transfer(number)``: ``POST /calls/{callId}/blind-transfer``;
- ``voicemail(number)``: GoTo documents voicemail only as ``reject`` with
  ``SEND_TO_VOICEMAIL``, which is for a call still ringing; a flow runs on an
  answered call, and the sandbox refuses that reject with a 409 (what GoTo
  itself does is not documented). So voicemail is a blind transfer to the
  voicemail number: the step's ``number:``, else ``voicemail_number`` given
  here. With neither, the reject is tried, and if GoTo refuses it the step
  fails and the flow goes to its ``fallback``.

Errors are the client's :class:`~worker.goto.errors.GoToError` s; the driver
turns them into ``ActionFailed`` events.
"""

from __future__ import annotations

import logging

from worker.goto.client import GoToClient

logger = logging.getLogger(__name__)


class GoToCallActions:
    """Hang up, transfer and voicemail for one call, with a :class:`GoToClient`."""

    def __init__(
        self, client: GoToClient, call_id: str, *, voicemail_number: str | None = None
    ) -> None:
        self.client = client
        self.call_id = call_id
        self.voicemail_number = voicemail_number or None

    def __repr__(self) -> str:
        return f"GoToCallActions(call_id={self.call_id!r})"

    async def hangup(self) -> None:
        await self.client.hangup(self.call_id)

    async def transfer(self, number: str) -> None:
        logger.info("call %s: blind transfer to %s", self.call_id, number)
        await self.client.blind_transfer(self.call_id, number)

    async def voicemail(self, number: str | None) -> None:
        target = number or self.voicemail_number
        if target:
            logger.info("call %s: to voicemail at %s (blind transfer)", self.call_id, target)
            await self.client.blind_transfer(self.call_id, target)
            return
        logger.info("call %s: to voicemail (reject SEND_TO_VOICEMAIL)", self.call_id)
        await self.client.send_to_voicemail(self.call_id)


__all__ = ["GoToCallActions"]
