"""Alert events (contract section 4): one JSON shape on every sink, Vietnamese by default.

An alert's ``id`` is a hash of what fired, where, and when the condition began, so the same
firing always carries the same id: retries and restarts (the id is stored with the open
alert) never make a second alert, and the resolution repeats the id of what it resolves.
``since`` is when the event's state began: the start of the condition for a firing, the
moment of recovery for a resolution.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from monitor.common.clock import VIETNAM_TZ, iso

#: Vietnam's zone, defined once (:mod:`monitor.common.clock`); kept under this name for callers.
VN_TZ = VIETNAM_TZ

AlertState = Literal["firing", "resolved"]
Language = Literal["vi", "en"]

SEVERITY: dict[str, str] = {
    "commune_down": "critical",
    "unknown_device": "critical",
    "ip_conflict": "critical",
    "commune_degraded": "warning",
    "host_down": "warning",
    "host_flapping": "warning",
    "wrong_mac": "warning",
    "target_unreachable": "warning",
    "agent_silent": "warning",
    "deadline": "warning",
    "uninspected_host": "warning",
    "escalation": "critical",
    "vantage_isolated": "critical",
    "backup_line_down": "warning",
    "snmp_unreachable": "warning",
}

#: Events raised by the calendar (:mod:`monitor.decide.operations`), not by the state engine;
#: both keep them in the one alert book (:mod:`monitor.decide.book`).
OPERATIONS_EVENTS = frozenset({"deadline", "uninspected_host", "escalation"})
#: Events for the escalation sinks only (a supervisor's topic), never the alert outbox.
ESCALATION_EVENTS = frozenset({"escalation"})

#: Message bodies per event and state, (Vietnamese, English); fields filled by ``format``.
_MESSAGES: dict[str, tuple[str, str]] = {
    "commune_down.firing": (
        "mất kết nối: {reason_vi}",
        "connection lost: {reason_en}",
    ),
    "commune_down.resolved": ("đã kết nối trở lại", "connection restored"),
    "commune_degraded.firing": ("kết nối không đầy đủ: {reason_vi}", "degraded: {reason_en}"),
    "commune_degraded.resolved": ("kết nối đã đầy đủ trở lại", "fully connected again"),
    "host_down.firing": ("máy {host} ({ip}) mất kết nối", "computer {host} ({ip}) unreachable"),
    "host_down.resolved": (
        "máy {host} ({ip}) đã kết nối trở lại",
        "computer {host} ({ip}) reachable again",
    ),
    "host_flapping.firing": (
        "máy {host} ({ip}) kết nối chập chờn ({changes} lần đổi trạng thái trong {minutes} phút)",
        "computer {host} ({ip}) flapping ({changes} state changes in {minutes} min)",
    ),
    "host_flapping.resolved": (
        "máy {host} ({ip}) đã kết nối ổn định",
        "computer {host} ({ip}) stable again",
    ),
    "ip_conflict.firing": (
        "xung đột địa chỉ IP {ip} của máy {host}: các MAC {macs} cùng trả lời",
        "IP address conflict on {ip} of computer {host}: MACs {macs} all answer",
    ),
    "ip_conflict.resolved": (
        "hết xung đột địa chỉ IP {ip} của máy {host}",
        "IP address conflict on {ip} of computer {host} cleared",
    ),
    "wrong_mac.firing": (
        "máy {host} ({ip}) trả lời bằng MAC {mac}, khác MAC đăng ký {expected}",
        "computer {host} ({ip}) answers with MAC {mac}, not the registered {expected}",
    ),
    "wrong_mac.resolved": (
        "máy {host} ({ip}) đã trả lời đúng MAC đăng ký",
        "computer {host} ({ip}) answers with its registered MAC again",
    ),
    "unknown_device.firing": (
        "phát hiện thiết bị lạ {ip} (MAC {mac}) trong mạng của xã",
        "unknown device {ip} (MAC {mac}) on the commune's network",
    ),
    "unknown_device.resolved": (
        "thiết bị lạ {ip} (MAC {mac}) không còn trong mạng",
        "unknown device {ip} (MAC {mac}) gone from the network",
    ),
    "target_unreachable.firing": (
        "không truy cập được hệ thống {target} từ {vantage}",
        "election system {target} unreachable from {vantage}",
    ),
    "target_unreachable.resolved": (
        "đã truy cập lại được hệ thống {target} từ {vantage}",
        "election system {target} reachable again from {vantage}",
    ),
    "agent_silent.firing": (
        "không nhận được dữ liệu giám sát (agent im lặng)",
        "no monitoring data received (agent silent)",
    ),
    "agent_silent.resolved": ("đã nhận lại dữ liệu giám sát", "monitoring data received again"),
    "backup_line_down.firing": (
        "đường truyền dự phòng ({line}) không phản hồi (router {backup_gateway}) trong khi "
        "đường chính vẫn hoạt động: nếu đường chính mất, xã sẽ mất kết nối",
        "backup line ({line}) not answering (router {backup_gateway}) while the primary "
        "works: should the primary fail, the commune is cut off",
    ),
    "backup_line_down.resolved": (
        "đường truyền dự phòng ({line}) đã phản hồi trở lại (router {backup_gateway})",
        "backup line ({line}) answers again (router {backup_gateway})",
    ),
    "vantage_isolated.firing": (
        "mất kết nối lên mạng cấp trên: kết quả thăm dò từ trung tâm tạm không được tính, "
        "cảnh báo các xã từ trung tâm tạm dừng",
        "upstream lost: the central probes do not count and the communes' alerts from the "
        "centre are held",
    ),
    "vantage_isolated.resolved": (
        "đã kết nối lại mạng cấp trên: thăm dò từ trung tâm được tính trở lại",
        "upstream back: the central probes count again",
    ),
    "snmp_unreachable.firing": (
        "không đọc được bảng ARP của router đường truyền ({router}) qua SNMP: {reason_vi}; "
        "mạng nội bộ của xã tạm không được giám sát qua router (đường truyền vẫn được giám sát)",
        "cannot read the line router's ARP table ({router}) over SNMP: {reason_en}; the "
        "commune's LAN is not watched through the router meanwhile (the line still is)",
    ),
    "snmp_unreachable.resolved": (
        "đã đọc lại được bảng ARP của router đường truyền ({router}) qua SNMP",
        "the line router's ARP table ({router}) is read over SNMP again",
    ),
}

#: The calendar's wording (:mod:`monitor.decide.operations`), by event and phase.
_MESSAGES.update({
    "deadline.warning": (
        "còn {days} ngày đến hạn mốc «{title}» (hạn {due}): {count}/{total} xã, phường chưa đạt: "
        "{names}",
        "{days} day(s) left for milestone \"{title}\" (due {due}): {count}/{total} communes "
        "have not met it: {names}",
    ),
    "deadline.warning_met": (
        "mốc «{title}» (hạn {due}): tất cả xã, phường đã đạt",
        "milestone \"{title}\" (due {due}): every commune has met it",
    ),
    "deadline.warning_due": (
        "mốc «{title}» đã đến hạn ({due})",
        "milestone \"{title}\" is due ({due})",
    ),
    "deadline.late": (
        "quá hạn mốc «{title}» (hạn {due}): {count}/{total} xã, phường chưa đạt: {names}",
        "milestone \"{title}\" overdue (due {due}): {count}/{total} communes have not met it: "
        "{names}",
    ),
    "deadline.late_met": (
        "mốc «{title}» (hạn {due}): các xã, phường trễ hạn nay đã đạt",
        "milestone \"{title}\" (due {due}): the late communes have now met it",
    ),
    "deadline.and_more": ("và {n} xã, phường khác", "and {n} more"),
    "uninspected_host.firing": (
        "máy {host} ({ip}) đang kết nối nhưng chưa có kết quả quét, dán tem kiểm định an toàn "
        "thông tin",
        "computer {host} ({ip}) is connected without a security scan and inspection stamp",
    ),
    "uninspected_host.resolved": (
        "máy {host} ({ip}) đã có tem kiểm định {stamp} ({date})",
        "computer {host} ({ip}) now has inspection stamp {stamp} ({date})",
    ),
    "uninspected_host.gone": ("máy {host} không còn trong danh sách", "computer {host} removed"),
    "escalation.firing": (
        "mất kết nối đã {minutes} phút (quá {limit} phút trong {period}): cần xử lý ngay",
        "down for {minutes} min (over the {limit} min allowed during {period}): act now",
    ),
    "escalation.resolved": ("đã hết mất kết nối", "no longer down"),
})

#: Reasons named inside messages, (Vietnamese, English).
REASONS: dict[str, tuple[str, str]] = {
    "gateway": ("đường truyền không phản hồi (gateway {gateway})", "line down (gateway {gateway})"),
    "hosts": ("không máy nào phản hồi", "no computer answers"),
    "backup": (
        "đường truyền chính mất, đang chạy trên đường dự phòng",
        "primary line down, running on the backup line",
    ),
    # an SNMP read of the line's router that failed, by probes.snmp's error kind
    "snmp_timeout": (
        "router không trả lời (không tới được, chưa bật SNMP, sai community hoặc sai khóa mã "
        "hóa v3)",
        "the router does not answer (unreachable, SNMP off, a wrong community or a wrong v3 "
        "privacy key)",
    ),
    "snmp_auth": ("sai tên người dùng hoặc khóa xác thực SNMPv3",
                  "wrong SNMPv3 user name or authentication key"),
    "snmp_no_such_object": (
        "router không cho đọc bảng ARP (ipNetToPhysicalTable, ipNetToMediaTable): cần sửa view "
        "SNMP",
        "the router does not expose its ARP table (ipNetToPhysicalTable, ipNetToMediaTable): "
        "the SNMP view needs fixing",
    ),
    "snmp_empty": ("bảng ARP của router trống", "the router's ARP table is empty"),
    "snmp_error": ("router trả lời lỗi: {detail}", "the router answered an error: {detail}"),
    "snmp_credentials": ("không đọc được tệp khóa SNMPv3 trên máy giám sát",
                         "the SNMPv3 key files cannot be read on the monitor"),
}


@dataclass(frozen=True, slots=True)
class AlertEvent:
    id: str
    event: str
    state: AlertState
    severity: str
    province: str | None
    commune: str | None
    host: str | None
    since: str  # ISO 8601 in +07:00
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AlertEvent:
        data = json.loads(text)
        return cls(**{name: data.get(name) for name in cls.__slots__})


#: Unix time as ISO 8601 at +07:00 (the one helper, :func:`monitor.common.clock.iso`).
iso_vn = iso


def alert_id(event: str, scope: str, subject: str, since: float) -> str:
    """Stable id of one firing: same inputs, same id, in any process."""
    raw = f"{event}|{scope}|{subject}|{since:.3f}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]


def place_label(name: str, isp: str | None = None, circuit: str | None = None) -> str:
    """``Phường Trấn Biên (VNPT, DNI-0001)``: how operators recognise a commune's line."""
    extra = ", ".join(part for part in (isp, circuit) if part)
    return f"{name} ({extra})" if extra else name


def render(event: str, state: AlertState, lang: Language = "vi", **fields: Any) -> str:
    """The body of a message; ``reason`` (a key of REASONS) is expanded in both languages."""
    reason = fields.pop("reason", None)
    if reason is not None:
        vi, en = REASONS[reason]
        fields["reason_vi"] = vi.format(**fields)
        fields["reason_en"] = en.format(**fields)
    return word(f"{event}.{state}", lang, **fields)


def word(key: str, lang: Language = "vi", **fields: Any) -> str:
    """One entry of the wording table (``event.phase``) in the language asked."""
    vi, en = _MESSAGES[key]
    return (vi if lang == "vi" else en).format(**fields)


def resolved_fallback(firing_message: str, lang: Language = "vi") -> str:
    """A resolution worded from its firing (``label: body``) when its own words cannot be
    (the host or device is gone from the inventory)."""
    label, _, body = firing_message.partition(": ")
    done = "đã hết" if lang == "vi" else "resolved"
    return f"{label}: {done}: {body}"


def make_event(
    *,
    event_id: str,
    event: str,
    state: AlertState,
    province: str | None,
    commune: str | None,
    host: str | None,
    since: float,
    message: str,
) -> AlertEvent:
    return AlertEvent(
        id=event_id,
        event=event,
        state=state,
        severity=SEVERITY.get(event, "warning"),
        province=province,
        commune=commune,
        host=host,
        since=iso_vn(since),
        message=message,
    )
