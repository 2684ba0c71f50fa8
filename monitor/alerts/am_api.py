"""Reading and writing Alertmanager's API v2 for acknowledgement (a commune's alerts, its
silences; a silence created or expired), from the first configured Alertmanager that answers.

The Alertmanagers of a cluster share their silences by gossip, so one that answers is
enough. Errors name the Alertmanager by :func:`~monitor.common.log.safe_url` and the failure
by its kind only: a URL's ``user:password@`` never reaches a log or an error body.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from monitor.common.config import Config
from monitor.common.log import safe_url

log = structlog.get_logger("alertmanager.api")

#: A silence lasts at least this long and at most this long (seconds).
MIN_SILENCE = 5 * 60
MAX_SILENCE = 7 * 24 * 3600
#: Longest comment kept (Alertmanager has no limit; the page shows it whole).
MAX_COMMENT = 500


class AlertmanagerError(Exception):
    """Alertmanager could not do it (the message is safe to show and log)."""


class UnavailableError(AlertmanagerError):
    """No configured Alertmanager answered."""


class RefusedError(AlertmanagerError):
    """An Alertmanager answered with a 4xx (a silence expired meanwhile, say)."""


@dataclass(frozen=True, slots=True)
class Silence:
    """A silence of a commune as the page shows it."""

    id: str
    starts: str
    ends: str
    created_by: str
    comment: str
    state: str  # active | pending

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "from": self.starts, "until": self.ends, "by": self.created_by,
                "comment": self.comment, "state": self.state}


def commune_matchers(province: str, commune: str) -> list[dict[str, Any]]:
    """The matchers of a commune's silence: every alert labelled with the commune."""
    return [{"name": "province", "value": province, "isRegex": False, "isEqual": True},
            {"name": "commune", "value": commune, "isRegex": False, "isEqual": True}]


def is_commune_silence(silence: dict[str, Any], province: str, commune: str) -> bool:
    """Whether an Alertmanager silence is exactly a commune's (as :func:`commune_matchers`),
    still in force or yet to start."""
    matchers = sorted((m.get("name"), m.get("value"), bool(m.get("isRegex")),
                       m.get("isEqual", True)) for m in silence.get("matchers") or [])
    wanted = sorted((m["name"], m["value"], False, True)
                    for m in commune_matchers(province, commune))
    state = (silence.get("status") or {}).get("state")
    return matchers == wanted and state in ("active", "pending")


def silence_span(minutes: object, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Start and end of a silence of ``minutes``; ValueError outside 5 minutes..7 days."""
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise ValueError("minutes must be a number")
    seconds = float(minutes) * 60
    if not MIN_SILENCE <= seconds <= MAX_SILENCE:
        raise ValueError(f"minutes must be between {MIN_SILENCE // 60} and {MAX_SILENCE // 60}")
    return now, now + dt.timedelta(seconds=seconds)


def _label_filter(name: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


class AlertmanagerApi:
    """Alertmanager's API v2 through the first of ``urls`` that answers."""

    def __init__(self, urls: Sequence[str], timeout: float = 5.0) -> None:
        if not urls:
            raise ValueError("at least one Alertmanager URL is needed")
        self.urls = [url.rstrip("/") for url in urls]
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer of the first Alertmanager that answers (a 4xx is an
        answer: RefusedError); UnavailableError when none does."""
        failures = []
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            for url in self.urls:
                try:
                    async with session.request(method, url + path, **kwargs) as response:
                        if response.status >= 500:
                            failures.append(f"{safe_url(url)}: HTTP {response.status}")
                            continue
                        if response.status >= 400:
                            raise RefusedError(f"Alertmanager {safe_url(url)} refused "
                                               f"{method} {path.split('?')[0]}: "
                                               f"HTTP {response.status}")
                        text = await response.text()
                        return await response.json(content_type=None) if text else None
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures.append(f"{safe_url(url)}: {type(exc).__name__}")
        log.warning("alertmanager_api_unavailable", tried=failures)
        raise UnavailableError("Không Alertmanager nào trả lời / no Alertmanager answered: "
                               + "; ".join(failures))

    async def commune_alerts(self, province: str, commune: str) -> list[dict[str, Any]]:
        """The commune's alerts Alertmanager holds (silenced and inhibited ones too)."""
        params = [("filter", _label_filter("province", province)),
                  ("filter", _label_filter("commune", commune))]
        return list(await self._call("GET", "/api/v2/alerts", params=params) or [])

    async def commune_silences(self, province: str, commune: str) -> list[Silence]:
        """The commune's own silences in force or pending, soonest end first."""
        found = [
            Silence(s["id"], s.get("startsAt", ""), s.get("endsAt", ""), s.get("createdBy", ""),
                    s.get("comment", ""), s["status"]["state"])
            for s in await self._call("GET", "/api/v2/silences") or []
            if is_commune_silence(s, province, commune)
        ]
        return sorted(found, key=lambda s: s.ends)

    async def silence(self, province: str, commune: str, start: dt.datetime, end: dt.datetime,
                      created_by: str, comment: str) -> str:
        """Create the commune's silence; its id."""
        body = {"matchers": commune_matchers(province, commune),
                "startsAt": start.isoformat(), "endsAt": end.isoformat(),
                "createdBy": created_by, "comment": comment}
        answer = await self._call("POST", "/api/v2/silences", json=body)
        return str(answer["silenceID"])

    async def expire(self, silence_id: str) -> None:
        await self._call("DELETE", f"/api/v2/silence/{silence_id}")


def from_config(config: Config) -> AlertmanagerApi | None:
    """The API client for ``alerts.alertmanagers``; None when none is configured."""
    urls = [am.url for am in config.alertmanagers]
    return AlertmanagerApi(urls) if urls else None
