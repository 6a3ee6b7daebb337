"""A campaign's batches out through a sender, recorded in the ledger: up to the sender's
`requests_at_once` requests out at once (SendGrid's answer takes a tenth of a second or more:
one at a time, a send of a million messages would wait minutes for them).

Each batch is checked just before it leaves (an address suppressed since the decisions were
made is withdrawn; a batch past its deliver_by stops the send, and so does one whose
deliver_by passes while it waits to be tried again). A batch the provider refuses for an
unnamed reason is sent again in halves, so that one bad message cannot hold back the rest; a
batch refused whatever it holds (a bad API key) stops the campaign: nothing leaves after
that answer, though the other requests already out (at most requests_at_once - 1) are
answered and recorded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from senders.base import BatchOutcome, Message, Sender
from senders.ledger import Ledger, Mark

MAX_UNANSWERED_IN_A_ROW = 3  # then the channel seems down: the rest waits for the next run
# Requests spent halving refused batches, per campaign: a bad message among 1,000 is found in
# about 20; a fault of every request (no field named) stops here instead of 2,000 requests.
MAX_SPLIT_REQUESTS = 100


@dataclass
class SendSummary:
    campaign: str
    business_date: dt.date
    channel: str
    skipped_reason: str | None = None
    cohort_size: int = 0
    # send_decisions' count of members by decision ('send' or the reason not to), with
    # 'send' turned 'already_sent' where another run sent it since.
    decisions: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0  # refused for now: sent again by the next run
    refused: int = 0  # refused for good (an address or a message the provider will not take)
    withdrawn: int = 0  # suppressed after the decisions were made: never sent
    pending: int = 0  # fate unknown: waiting for SendGrid's events
    not_attempted: int = 0  # left planned when the channel stopped answering
    settled_from_earlier_runs: int = 0
    abandoned: int = 0
    errors: list[str] = field(default_factory=list)
    # the first message of tonight's sends per variant ("" without variants), previewed
    samples: dict[str, Message] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.pending or self.not_attempted)


@dataclass
class Delivery:
    """One campaign's send: where it goes, what it records, and its checks before a batch."""

    sender: Sender
    ledger: Ledger
    day: dt.date
    summary: SendSummary
    # send_id -> why, for messages that may no longer go (suppressed since the decisions)
    withheld: Callable[[list[Message]], dict[str, str]]
    # True when every message of an unanswered batch turned out to be settled
    settled: Callable[[list[Message]], bool]
    log: Any = None
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def run(self, planned: list[list[Message]]) -> None:
        queue = deque(planned)
        unanswered_in_a_row = 0
        self._splits_left = MAX_SPLIT_REQUESTS
        self._lone_refusals: list[tuple[Message, str]] = []
        self._accepted_any = False
        self._deferred: list[Mark] = []  # accepted answers, written with the next change
        # Up to `requests_at_once` requests are out at once, marked in flight just before
        # free threads take them. Their answers are read in the order they went, by this
        # thread alone, which alone writes the ledger: more requests leave only once the
        # answers already in are recorded (a batch's halves are its own messages, failed
        # first).
        width = max(1, getattr(self.sender, "requests_at_once", 1))
        out: deque[tuple[list[Message], Future]] = deque()
        stopped: str | None = None  # why nothing more goes, when something stopped the send
        held = 0  # messages of a batch the stop caught before it left
        try:
            with _requests(width) as pool:
                while True:
                    # Every answer already in is recorded before more go out: the batches
                    # then go out together, marked in flight by one statement (a fast
                    # channel waits for the ledger's statements, 10 ms or more each).
                    answered = bool(out) and out[0][1].done()
                    if not (stopped or answered) and (
                        caught := self._put_out(queue, out, width, pool)
                    ):
                        stopped, held = caught[0], held + caught[1]
                    if not out:
                        break
                    batch, answer = out.popleft()
                    try:
                        outcome = answer.result()
                    except BaseException:
                        self._record_the_answers_out(out, queue)
                        raise
                    step, unanswered = self._answered(batch, outcome, queue)
                    if step == "late":
                        held += len(unanswered)
                        stopped = stopped or _quiet_hours(len(unanswered), f": {outcome.error}")
                        continue
                    if stopped:
                        continue  # the rest already out is recorded, nothing more leaves
                    if step == "stop":
                        stopped = "the channel refuses every request"
                        continue
                    if not unanswered or self.settled(unanswered):
                        unanswered_in_a_row = 0
                        continue
                    # Its messages stay in flight until SendGrid's events settle them; the rest of
                    # the campaign goes, unless the channel seems to have stopped answering.
                    unanswered_in_a_row += 1
                    if unanswered_in_a_row >= MAX_UNANSWERED_IN_A_ROW:
                        stopped = "unanswered"
        except BaseException:
            # Whatever stopped the send (a request's error, a look-up of suppressions, an
            # interrupt), the answers already read are written: an accepted batch left
            # in flight could be sent again by the `resend` policy. The stop's own error
            # is the one raised.
            with contextlib.suppress(Exception):
                self._flush()
            raise
        self._flush()
        if stopped:
            # what never left, halves of batches refused meanwhile included
            self.summary.not_attempted = held + sum(len(b) for b in queue)
            if stopped != "unanswered":
                self._error(
                    f"stopped: {stopped}; {self.summary.not_attempted} message(s) not "
                    "attempted, left for the next run"
                )
        self._judge_lone_refusals()

    def _put_out(self, queue: deque, out: deque, width: int, pool: Any) -> tuple[str, int] | None:
        """Batches out while a thread is free, all marked in flight, in one statement, just
        before they go; (why, messages held back) when one reached its quiet hours before it
        could leave (those before it still go, those after it stay queued)."""
        going: list[list[Message]] = []
        while queue and len(out) + len(going) < width:
            if batch := self._withdraw(queue.popleft()):
                going.append(batch)
        # Their quiet hours checked once every look-up of suppressions is done, at one
        # moment for all, right before they are marked and go.
        caught = None
        now = self.now()
        for index, batch in enumerate(going):
            if late := [m for m in batch if m.deliver_by is not None and now >= m.deliver_by]:
                since = min(m.deliver_by for m in late)
                why = f" (a long wait, such as SendGrid's rate limit, since {since:%H:%M} UTC)"
                caught = _quiet_hours(len(late), why), len(batch)
                queue.extendleft(reversed(going[index + 1 :]))
                going = going[:index]
                break
        if going:
            self._flush(*(Mark([m.send_id for m in batch], "in_flight") for batch in going))
            for batch in going:
                out.append((batch, pool.submit(self.sender.send_batch, self.day, batch)))
        return caught

    def _withdraw(self, batch: list[Message]) -> list[Message]:
        """The batch without the messages that may no longer go, those marked withdrawn."""
        reasons = self.withheld(batch) if self.sender.records_sends else {}
        for send_id, reason in reasons.items():
            self._mark([send_id], "withdrawn", error=reason)
        if reasons:
            self.summary.withdrawn += len(reasons)
            self._warn(f"{len(reasons)} message(s) withdrawn: suppressed since the decisions")
        return [m for m in batch if m.send_id not in reasons]

    def _record_the_answers_out(self, out: deque, queue: deque) -> None:
        """A request raised: the answers of the others out are recorded before the error goes
        up (those that raised too stay in flight, settled by SendGrid's events)."""
        for batch, answer in out:
            try:
                outcome = answer.result()
            except BaseException:
                continue
            self._answered(batch, outcome, queue)

    def _answered(
        self, batch: list[Message], outcome: BatchOutcome, queue: deque
    ) -> tuple[str, list[Message]]:
        """A request's answer recorded; returns what to do next and the messages of unknown
        fate (for "late", those that were not sent)."""
        summary = self.summary
        for refused_id, reason in outcome.refused.items():
            self._mark([refused_id], "refused", error=reason)
        self.ledger.suppress(
            [m.to_email for m in batch if m.send_id in outcome.bad_addresses], "refused"
        )
        summary.refused += len(outcome.refused)
        if outcome.refused:
            self._warn(f"{len(outcome.refused)} message(s) refused for good")
        rest = [m for m in batch if m.send_id not in outcome.refused]
        ids = [m.send_id for m in rest]
        if outcome.late:
            # never left (its refused messages were named before the wait): failed, so that
            # the next run sends them, in the day
            self._mark(ids, "failed", error=outcome.error)
            return "late", rest
        if outcome.accepted:
            self._accepted_any = True
            self._mark(ids, "accepted", provider_message_id=outcome.provider_message_id)
            summary.sent += len(ids)
            return "next", []
        if outcome.fate_unknown:
            self._error(f"{len(ids)} message(s): {outcome.error}")
            self.ledger.note(ids, outcome.error)
            summary.pending += len(ids)
            return "next", rest
        self._mark(ids, "failed", error=outcome.error)
        if outcome.splittable and len(rest) > 1 and self._splits_left >= 2:
            # Refused for something in it that SendGrid did not name: each half goes again
            # (failed meanwhile, so a crash leaves them to the next run).
            self._splits_left -= 2
            half = len(rest) // 2
            queue.extendleft([rest[half:], rest[:half]])
            return "next", []
        if outcome.splittable and len(rest) == 1:
            self._lone_refusals.append((rest[0], outcome.error))
            return "next", []
        self._error(f"{len(ids)} message(s): {outcome.error}")
        summary.failed += len(ids)
        return ("stop" if outcome.stop else "next"), []

    def _judge_lone_refusals(self) -> None:
        """A message refused alone is at fault only if others got through: refused for good
        then; if none did, the fault is the request's, and the next run tries them all."""
        for message, error in self._lone_refusals:
            if self._accepted_any:
                self._mark([message.send_id], "refused", error=f"refused alone: {error}")
                self.summary.refused += 1
            else:
                self.summary.failed += 1
                self._error(f"1 message(s): {error}")
        if self._lone_refusals and self._accepted_any:
            self._warn(f"{len(self._lone_refusals)} message(s) refused alone, for good")

    def _mark(self, send_ids: list[str], status: str, **fields: Any) -> None:
        mark = Mark(send_ids, status, **fields)
        if status == "accepted":
            # Recorded with the ledger's next change (the next batch's in-flight mark, as a
            # rule), in one statement: one look among tonight's rows for both instead of two
            # (half the time of a send's ledger marks). Until then they stay in flight, as
            # after a crash between an answer and its record: SendGrid's events settle them.
            self._deferred.append(mark)
            return
        self._flush(mark)

    def _flush(self, *marks: Mark) -> None:
        """The deferred marks and `marks`, recorded in one transaction (the deferred ones kept
        for another try when it fails)."""
        # tonight's messages, planned for this night: found among its rows alone
        self.ledger.mark_all([*self._deferred, *marks], planned_for=self.day)
        self._deferred = []

    def _warn(self, text: str) -> None:
        if self.log:
            self.log.warning(f"{self.summary.campaign}: {text}")

    def _error(self, text: str) -> None:
        self.summary.errors.append(text)
        if self.log:
            self.log.error(f"{self.summary.campaign}: {text}")


def _quiet_hours(count: int, why: str) -> str:
    return f"{count} message(s) reached the quiet hours before they could leave{why}"


class _InTurn:
    """One request at a time, in this thread: what a pool of one would do, without one."""

    def submit(self, call: Callable, *args: Any) -> Future:
        answer: Future = Future()
        try:
            answer.set_result(call(*args))
        except BaseException as error:  # raised again by result(), as a pool's would be
            answer.set_exception(error)
        return answer


@contextmanager
def _requests(width: int) -> Iterator[Any]:
    if width == 1:
        yield _InTurn()
        return
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="nightjar-send") as pool:
        yield pool
