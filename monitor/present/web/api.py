"""The JSON API: ``/api/v1/communes`` (filterable list) and ``/api/v1/communes/PROV/COMMUNE``.

Every view is computed from the inventory *as the caller's scope sees it*: a commune outside
the scope is not filtered out afterwards, it was never in the data, so no filter, search or
detail URL can reach it (it answers 404, exactly like a commune that does not exist).
The static part of each row (names, operator, circuit, search key) is built once per
inventory and scope; a request only adds the live state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from inventory.model import Commune, Host, Inventory, Milestone
from inventory.official import fold, province_code
from monitor.common.log import OnceLog
from monitor.decide import readiness
from monitor.decide.status import (
    CommuneState,
    CommuneStatus,
    HostState,
    MonitorState,
    TargetState,
    carrying_line,
    host_word,
    line_echo,
)
from monitor.decide.verdicts import ip_config_ok, upstream_of
from monitor.present.rtt_history import RttHistory
from monitor.present.web.auth import Scope
from probes.result import TargetDetail

STATUS_NAMES = {s: s.name.lower() for s in CommuneStatus}
#: A commune whose live data fails to render is left out of the list (its detail answers
#: 500) and logged once with its traceback, so one commune's bad data never breaks the API
#: for the others nor fills the log at every refresh.
RENDER_FAILURES = OnceLog("api_commune_render_failed")


@dataclass(slots=True)
class ScopedView:
    """One scope's inventory and the static half of its list rows."""

    inventory: Inventory
    rows: list[dict[str, Any]] = field(default_factory=list)
    search: list[str] = field(default_factory=list)  # folded text per row, same order

    def __post_init__(self) -> None:
        for province in self.inventory.provinces:
            for c in province.communes:
                self.rows.append(_static_row(c, province.name))
                self.search.append(fold(" ".join(
                    (c.name, c.code, c.circuit or "", province.name, c.isp))))


def _static_row(c: Commune, province_name: str) -> dict[str, Any]:
    return {
        "province": c.province,
        "province_name": province_name,
        "commune": c.code,
        "name": c.name,
        "isp": c.isp,
        "circuit": c.circuit,
        "hosts_total": len(c.hosts),
    }


class ScopedViews:
    """Views per scope, rebuilt when the inventory object changes (a reload)."""

    def __init__(self, inventory: Callable[[], Inventory]) -> None:
        self._inventory = inventory
        self._base: Inventory | None = None
        self._views: dict[Scope, ScopedView] = {}

    def get(self, scope: Scope) -> ScopedView:
        current = self._inventory()
        if current is not self._base:
            self._base, self._views = current, {}
        view = self._views.get(scope)
        if view is None:
            view = self._views[scope] = ScopedView(scope.restrict(current))
        return view


# --- the list -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListFilter:
    province: str | None = None
    isp: str | None = None
    statuses: frozenset[CommuneStatus] | None = None
    query: str | None = None  # folded

    @classmethod
    def from_query(cls, query: Any) -> ListFilter:
        """From ``?province=75&isp=VNPT&status=down,degraded&q=bien hoa``; ValueError if bad."""
        province = query.get("province") or None
        statuses = query.get("status") or None
        text = query.get("q") or None
        isp = query.get("isp") or None
        return cls(
            province_code(province) if province else None,
            isp.strip().casefold() if isp else None,
            frozenset(_status(s) for s in statuses.split(",")) if statuses else None,
            fold(text) if text else None,
        )

    def keeps(self, row: dict[str, Any], search: str, status: CommuneStatus) -> bool:
        return (
            (self.province is None or row["province"] == self.province)
            and (self.isp is None or row["isp"].casefold() == self.isp)
            and (self.statuses is None or status in self.statuses)
            and (self.query is None or self.query in search)
        )


def _status(text: str) -> CommuneStatus:
    text = text.strip().lower()
    for status, name in STATUS_NAMES.items():
        if text in (name, str(int(status))):
            return status
    raise ValueError(f"unknown status {text!r}: expected ok, degraded, down or unknown")


def commune_list(view: ScopedView, state: MonitorState, flt: ListFilter) -> dict[str, Any]:
    """The visible communes that pass the filter; ``updated`` is the latest observation."""
    communes = []
    updated = None
    for row, search in zip(view.rows, view.search, strict=True):
        key = f"{row['province']}/{row['commune']}"
        live = state.communes.get(key)
        try:
            status = live.status if live else CommuneStatus.UNKNOWN
            if not flt.keeps(row, search, status):
                continue
            fields = _live_fields(live, status)
            if live and live.last_seen and (updated is None or live.last_seen > updated):
                updated = float(live.last_seen)
        except Exception:
            RENDER_FAILURES.failed(key, view="list")  # the others are still listed
            continue
        communes.append({**row, **fields})
    return {"count": len(communes), "updated": updated, "communes": communes}


def _live_fields(live: CommuneState | None, status: CommuneStatus) -> dict[str, Any]:
    if live is None:
        return {"status": STATUS_NAMES[status], "status_code": int(status), "since": None,
                "last_seen": None, "hosts_up": 0, "hosts_off": 0, "on_backup": False,
                "line": None}
    return {
        "status": STATUS_NAMES[status],
        "status_code": int(status),
        "since": _ms(live.since),
        "last_seen": _ms(live.last_seen),
        "hosts_up": sum(1 for h in live.hosts.values() if h.up),
        "hosts_off": sum(1 for h in live.hosts.values() if host_word(h) == "off"),
        "on_backup": live.on_backup,
        "line": carrying_line(live),
    }


def _ms(unix: float | None) -> float | None:
    return None if unix is None else round(unix, 3)


# --- one commune ----------------------------------------------------------------------------


def commune_detail(
    commune: Commune,
    province_name: str,
    milestones: tuple[Milestone, ...],
    state: MonitorState,
    samples: RttHistory,
    history: list[dict[str, Any]],
    now: float,
    evidence: readiness.CommuneEvidence | None = None,
) -> dict[str, Any]:
    """The commune's page data; ``evidence`` for its milestones (the running monitor's, with
    first observations and attestations; default: what ``state`` holds by itself)."""
    live = state.communes.get(commune.key)
    if evidence is None:
        evidence = readiness.of_state(commune, live, True)
    status = live.status if live else CommuneStatus.UNKNOWN
    first_passed = dict(live.first_passed) if live else {}
    return {
        **_static_row(commune, province_name),
        **_live_fields(live, status),
        "subnet": str(commune.subnet) if commune.subnet is not None else None,
        "gateway": _str(commune.gateway),
        "backup_gateway": _str(commune.backup_gateway),
        "gateway_up": live.gateway_up if live else None,
        "backup_gateway_up": live.backup_gateway_up if live else None,
        "backup_isp": commune.backup_isp,
        "backup_circuit": commune.backup_circuit,
        "lines": _lines(commune, live),
        "vantage": live.vantage if live else None,
        "hosts": [
            _host(commune, h, live.hosts.get(h.name) if live else None, samples)
            for h in commune.hosts
        ],
        "unknown_devices": None
        if live is None or live.unknown_devices is None
        else [{"ip": d.ip, "mac": d.mac} for d in live.unknown_devices],
        "targets": [_target(t) for t in _visible_targets(state, commune)],
        "vantages": _vantages(commune, live, state),
        "milestones": _milestones(milestones, evidence, now),
        "first_passed": first_passed,
        "history": history,
    }


def _str(value: object | None) -> str | None:
    return None if value is None else str(value)


def _lines(commune: Commune, live: CommuneState | None) -> list[dict[str, Any]]:
    """Both lines side by side (contract §3 ``tslcd_line_up``): each router's address, its
    operator and circuit (the backup's own, else the primary's operator), whether it
    answers and its echo's RTT and loss, whichever line carries the commune."""
    lines = [("primary", "gateway", commune.gateway, commune.isp, commune.circuit,
              live.gateway_up if live else None)]
    if commune.backup_gateway is not None:
        lines.append(("backup", "backup_gateway", commune.backup_gateway,
                      commune.backup_isp or commune.isp, commune.backup_circuit,
                      live.backup_gateway_up if live else None))
    out = []
    for name, kind, gateway, isp, circuit, up in lines:
        echo = line_echo(live, kind) if live else None
        out.append({"line": name, "gateway": _str(gateway), "isp": isp, "circuit": circuit,
                    "up": up, "rtt": echo.rtt_mean if echo and echo.rtts else None,
                    "loss": echo.loss_ratio if echo and echo.sent else None})
    return out


def _host(commune: Commune, host: Host, live: HostState | None,
          samples: RttHistory) -> dict[str, Any]:
    last = live.last if live else None
    icmp = last.icmp if last else None
    arp = last.arp if last else None
    return {
        "name": host.name,
        "ip": str(host.ip),
        "mac": host.mac,
        "up": live.up if live else None,
        "state": host_word(live),  # up, down, off (outside working hours), unknown
        "expected": live.expected if live else True,
        "since": live.since if live else None,
        "flapping": live.flapping if live else False,
        "alive_by": last.method if last else None,
        "rtt": icmp.rtt_mean if icmp else None,
        "loss": icmp.loss_ratio if icmp and icmp.sent else None,
        "arp": None if arp is None else {
            "macs": list(arp.macs),
            "expected_mac": arp.expected_mac,
            "conflict": arp.conflict,
            "mac_ok": ip_config_ok(arp, host.mac),
        },
        "ip_config_ok": ip_config_ok(arp, host.mac),
        "inspection": None if host.inspection is None else {
            "stamp": host.inspection.stamp, "date": host.inspection.date.isoformat()},
        "samples": samples.samples(commune.province, commune.code, host.name),
    }


def _vantages(commune: Commune, live: CommuneState | None,
              state: MonitorState) -> list[dict[str, Any]]:
    """Each vantage's own view side by side (contract §7): from upstream (central, the
    province's agent) the line's RTT and loss; from the commune's agent the LAN (ARP) and
    the election system from inside. ``line``: this view is one the line's verdict uses."""
    if live is None:
        return []
    out = []
    for vantage, view in sorted(live.views.items(), key=lambda kv: _vantage_order(kv[0])):
        upstream = upstream_of(vantage, commune.province, commune.code)
        out.append({
            "vantage": vantage,
            "place": "upstream" if upstream else "segment",
            "line": vantage in live.line_vantages,
            "last_seen": _ms(view.last_seen),
            "gateway_up": view.gateway.up if view.gateway else None,
            "hosts": [_vantage_host(h, view.hosts.get(h.name)) for h in commune.hosts],
            "targets": [_target(t) for (_, v), t in sorted(state.targets.items())
                        if v == vantage],
        })
    return out


def _vantage_order(vantage: str) -> tuple[int, str]:
    """Central first, then the province's agent, then the commune's."""
    return (0 if vantage == "central" else 1 + vantage.count("/"), vantage)


def _vantage_host(host: Host, tracker: HostState | None) -> dict[str, Any]:
    last = tracker.last if tracker else None
    icmp = last.icmp if last else None
    arp = last.arp if last else None
    return {
        "name": host.name,
        "up": tracker.up if tracker else None,
        "rtt": icmp.rtt_mean if icmp else None,
        "loss": icmp.loss_ratio if icmp and icmp.sent else None,
        "ip_config_ok": ip_config_ok(arp, host.mac),
    }


def _visible_targets(state: MonitorState, commune: Commune) -> list[TargetState]:
    """The election system as seen centrally and from this commune's own vantages only."""
    vantages = {"central", commune.province, commune.key}
    return [t for (_, vantage), t in sorted(state.targets.items()) if vantage in vantages]


def _target(t: TargetState) -> dict[str, Any]:
    detail = t.last.detail if isinstance(t.last.detail, TargetDetail) else None
    return {
        "target": t.target,
        "vantage": t.vantage,
        "up": t.up,
        "checked": t.last.started,
        "error": t.last.error,
        "failed_phase": detail.failed_phase if detail else None,
        "http_status": detail.http_status if detail else None,
        "tls_not_after": detail.tls_not_after if detail else None,
    }


def _milestones(milestones: tuple[Milestone, ...], evidence: readiness.CommuneEvidence,
                now: float) -> list[dict[str, Any]]:
    """Each milestone's state (:func:`monitor.decide.readiness.judge`, from the live state:
    the election system counted as listed, first observations and attestations are the
    readiness report's)."""
    result = []
    for m in milestones:
        judged = readiness.judge(m, evidence, now)
        result.append({"id": m.id, "title": m.title, "due": m.due.isoformat(),
                       "requires": list(m.requires), "state": judged.state.value,
                       "met": judged.met, "met_at": judged.met_at, "late": judged.late,
                       "missing": [{"check": check, "missing": what.value}
                                   for check, what in judged.missing]})
    return result


# --- handlers -------------------------------------------------------------------------------


def json_response(request: web.Request, payload: Any, status: int = 200) -> web.Response:
    """Compact UTF-8 JSON with an ETag, so the page's refresh costs little when nothing moved."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    etag = hashlib.blake2b(body, digest_size=12).hexdigest()
    if status == 200 and request.headers.get("If-None-Match") == f'"{etag}"':
        return web.Response(status=304, headers={"ETag": f'"{etag}"'})
    response = web.Response(body=body, status=status, content_type="application/json",
                            charset="utf-8", headers={"ETag": f'"{etag}"',
                                                      "Cache-Control": "no-cache"})
    if len(body) > 4096:
        response.enable_compression()
    return response


def error(request: web.Request, status: int, message: str) -> web.Response:
    return json_response(request, {"error": message}, status)
