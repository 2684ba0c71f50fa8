"""Broker URLs (contract section 4): ``mqtt://`` or ``mqtts://[user[:password]@]host[:port]``.

Shared by the alert sink, agents and the collector, so every part accepts the same URLs and
none of them ever prints a password.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
#: aiomqtt's logger for every client of the monitor: it warns at every publish beyond ten in
#: flight, which a spool being drained or a burst of batches always is; errors still show.
MQTT_LOG = logging.getLogger("tslcd.mqtt")
MQTT_LOG.setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class MqttUrl:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def redacted(self) -> str:
        """The URL without credentials: safe for logs and error messages."""
        scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def client_kwargs(self, ca_file: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``aiomqtt.Client``, the one builder of every client (agent,
        collector, alert sink, status): with ``mqtts://`` the broker's certificate is
        verified against ``ca_file`` (the network's own CA) when given, else the system's."""
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "logger": MQTT_LOG,
        }
        if self.tls:
            kwargs["tls_context"] = ssl.create_default_context(cafile=ca_file)
        return kwargs


def parse_mqtt_url(url: str) -> MqttUrl:
    """Parse a broker URL; raises ``ValueError`` (without echoing any password)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"broker URL must be mqtt:// or mqtts://, not {scheme or 'none'!r}")
    if not parts.hostname:
        raise ValueError("broker URL has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("broker URL takes no path, query or fragment")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:  # port out of range or not a number
        raise ValueError("broker URL has an invalid port") from exc
    return MqttUrl(
        host=parts.hostname,
        port=port,
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
