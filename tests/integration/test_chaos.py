"""The small version of `make chaos`: killed senders never duplicate or lose a message.
A minute of killing and restarting: `make test-slow` (run by .ci/run), not `make test`."""

from __future__ import annotations

import pytest

from tests.tools.chaos import run_outbox, run_sendgrid

pytestmark = pytest.mark.slow


def test_sendgrid_sender_killed_at_random_under_faults_sends_each_message_once():
    outcome = run_sendgrid(messages=3000, kills=4, seed=7)
    assert (outcome.duplicates, outcome.lost) == (0, 0), outcome.line()


def test_outbox_sender_killed_at_random_writes_each_message_once():
    outcome = run_outbox(messages=3000, kills=4, seed=7)
    assert (outcome.duplicates, outcome.lost) == (0, 0), outcome.line()
