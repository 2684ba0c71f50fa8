"""The retained commune status (contract §4): republished only when what it says changes."""

from __future__ import annotations

import json

from monitor.present.status_mqtt import StatusBoard
from tests.support.engine_sim import STEP, Sim, observe

AGENT = "75/26041"


def publish(board: StatusBoard, sim: Sim) -> list[dict[str, object]]:
    """What the board would send now, recorded as acknowledged."""
    changes = board.changes(sim.inventory, sim.engine.state)
    board.published(changes, sim.inventory)
    return [json.loads(payload) for _, payload in changes]


def both(sim: Sim, hosts: dict[str, bool] | bool = True) -> None:
    """One cycle: the centre speaks, then the commune's agent a second later."""
    sim.engine.apply(observe(sim.now, hosts=hosts))
    sim.engine.apply(observe(sim.now + 1, vantage=AGENT))
    sim.now += STEP


def test_two_vantages_taking_turns_do_not_republish() -> None:
    """``run --mqtt``: the centre and the commune's agent speak in turn each cycle; the
    status says the same thing throughout, so it goes out once, judged from the centre."""
    sim, board = Sim(), StatusBoard()
    both(sim)
    [first] = publish(board, sim)
    assert (first["status"], first["vantage"], first["hosts_up"]) == ("ok", "central", 3)
    for _ in range(5):
        sim.engine.apply(observe(sim.now))
        assert publish(board, sim) == []  # the centre spoke last
        sim.engine.apply(observe(sim.now + 1, vantage=AGENT))
        assert publish(board, sim) == []  # the agent spoke last
        sim.now += STEP


def test_a_real_change_is_republished_once() -> None:
    """A host that stops answering from every vantage: one message when it is confirmed
    down (3 cycles), none before nor after."""
    sim, board = Sim(), StatusBoard()
    both(sim)
    publish(board, sim)
    sent = []
    for _ in range(6):
        sim.engine.apply(observe(sim.now, hosts={"may-01": False}))
        sim.engine.apply(observe(sim.now + 1, vantage=AGENT, hosts={"may-01": False}))
        sim.now += STEP
        sent += publish(board, sim)
    assert [(s["status"], s["hosts_up"], s["vantage"]) for s in sent] == [
        ("degraded", 2, "central")]


def test_the_agent_judges_where_no_upstream_vantage_speaks() -> None:
    """Only the commune's agent observing (``collector``): its view judges the line."""
    sim, board = Sim(), StatusBoard()
    sim.engine.apply(observe(sim.now, vantage=AGENT))
    [status] = publish(board, sim)
    assert (status["status"], status["vantage"]) == ("ok", AGENT)
