"""Whom a report's row is about: the commune's heading, one type for every per-commune report.

The readiness, drill and availability reports each start a row with the same six fields
(province code and name, commune code and name, operator, circuit); their rows extend
:class:`CommuneHeading` with their own figures, and the writers (``monitor.present``) put its
cells first, under one set of headings.
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.model import Commune


@dataclass(frozen=True, slots=True)
class CommuneHeading:
    province: str
    province_name: str
    commune: str
    commune_name: str
    isp: str
    circuit: str | None

    @staticmethod
    def of(commune: Commune, province_name: str) -> tuple[str, str, str, str, str, str | None]:
        """The heading's fields in order, to start a row's constructor:
        ``CommuneDrill(*CommuneHeading.of(commune, province.name), spans)``."""
        return (commune.province, province_name, commune.code, commune.name, commune.isp,
                commune.circuit)

    def heading_json(self) -> dict[str, str | None]:
        return {"province": self.province, "province_name": self.province_name,
                "commune": self.commune, "commune_name": self.commune_name, "isp": self.isp,
                "circuit": self.circuit}
