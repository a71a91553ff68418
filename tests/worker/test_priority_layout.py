"""Fair queueing (core/routing.py) names kombu's Redis lists of a queue's priority steps: this fails
when kombu lays them out otherwise, before the metrics or the queue lengths read the wrong lists."""

from __future__ import annotations

from kombu.transport.redis import Channel

from core.routing import PRIORITY_SEPARATOR, PRIORITY_STEPS, broker_lists, fair_priority


def test_the_priority_lists_are_kombus() -> None:
    assert Channel.sep == PRIORITY_SEPARATOR
    assert tuple(Channel.priority_steps) == PRIORITY_STEPS
    channel = Channel.__new__(Channel)  # _q_for_pri reads only the class's layout
    channel.priority_steps, channel.sep = list(PRIORITY_STEPS), Channel.sep
    assert [channel._q_for_pri("atelier", step) for step in PRIORITY_STEPS] == broker_lists("atelier")


def test_a_submitters_later_jobs_step_back() -> None:
    assert [fair_priority(ahead) for ahead in range(6)] == [0, 3, 6, 9, 9, 9]
