"""The read model of the monitor's state: what metrics, the web, MQTT status and reports show.

:mod:`monitor.decide.engine` keeps these up to date from observations; the sinks only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from monitor.cycle.observation import HostObservation
from probes.result import IcmpDetail, ProbeResult, UnknownDevice


class CommuneStatus(IntEnum):
    """Values of ``tslcd_commune_status`` (contract section 3)."""

    OK = 0
    DEGRADED = 1
    DOWN = 2
    UNKNOWN = 3


@dataclass(slots=True)
class HostState:
    name: str
    ip: str
    up: bool | None = None  # debounced; None until judged (never probed)
    since: float | None = None  # Unix time of the last debounced change
    flapping: bool = False
    consecutive_ok: int = 0
    consecutive_fail: int = 0
    last: HostObservation | None = None  # the latest cycle's observation
    #: working hours expect it to answer now (``verdicts.host_expected``; the fused verdict
    #: of a computer only): when False, a silent computer is "off", not down
    expected: bool = True


@dataclass(slots=True)
class VantageView:
    """One vantage's own debounced view of a commune (contract §7): never overwritten by
    another vantage's results. ``hosts`` and the gateways are that vantage's trackers."""

    vantage: str
    hosts: dict[str, HostState] = field(default_factory=dict)
    gateway: HostState | None = None
    backup_gateway: HostState | None = None
    last_seen: float | None = None  # None: nothing from it since the start (or its silence)


@dataclass(slots=True)
class CommuneState:
    province: str
    commune: str
    status: CommuneStatus = CommuneStatus.UNKNOWN
    since: float | None = None
    hosts: dict[str, HostState] = field(default_factory=dict)  # the fused verdict per host
    gateway_up: bool | None = None
    backup_gateway_up: bool | None = None
    on_backup: bool = False
    unknown_devices: tuple[UnknownDevice, ...] | None = None  # None: never scanned
    last_seen: float | None = None  # Unix time of the latest observation
    vantage: str | None = None  # of the latest observation
    views: dict[str, VantageView] = field(default_factory=dict)  # vantage -> its own view
    line_vantages: tuple[str, ...] = ()  # the views the line's verdict came from
    first_passed: dict[str, float] = field(default_factory=dict)  # check -> Unix time


@dataclass(slots=True)
class TargetState:
    target: str
    vantage: str
    up: bool
    last: ProbeResult


@dataclass(slots=True)
class MonitorState:
    communes: dict[str, CommuneState] = field(default_factory=dict)  # "PROV/COMMUNE" ->
    targets: dict[tuple[str, str], TargetState] = field(default_factory=dict)  # (target, vantage)


def live_vantages(cs: CommuneState) -> list[str]:
    """The vantages observing the commune now (not silent since their last word)."""
    return [v for v, view in list(cs.views.items()) if view.last_seen is not None]


def carrying_line(cs: CommuneState | None) -> str | None:
    """Which line carries the commune: ``primary``, ``backup`` (the primary is down, the
    backup up) or ``none`` (down); None while nothing is known."""
    if cs is None or cs.status == CommuneStatus.UNKNOWN:
        return None
    if cs.on_backup:
        return "backup"
    if cs.gateway_up is False or cs.status == CommuneStatus.DOWN:
        return "none"
    return "primary"


def host_word(hs: HostState | None) -> str:
    """How the page and the API name a computer's state: ``up``, ``down``, ``off`` (silent
    while working hours do not expect it: switched off for the night, not a fault) or
    ``unknown`` (never judged)."""
    if hs is None or hs.up is None:
        return "unknown"
    if hs.up:
        return "up"
    return "down" if hs.expected else "off"


#: ``tslcd_line_up{line}``'s values and the gateway trackers they name.
LINES = (("primary", "gateway"), ("backup", "backup_gateway"))


def line_echo(cs: CommuneState, kind: str) -> IcmpDetail | None:
    """A line router's latest echo (RTT, loss) as the verdict shows it: from the first of
    the views the line's verdict came from that pinged it (``kind``: ``gateway`` or
    ``backup_gateway``); None where none measured it."""
    for vantage in cs.line_vantages:
        view = cs.views.get(vantage)
        tracker = getattr(view, kind, None) if view is not None else None
        if tracker is not None and tracker.last is not None and tracker.last.icmp is not None:
            return tracker.last.icmp
    return None
