"""Who may act on what through the API: silence a commune's alerts, set a maintenance
window. Each rule is written once here, as a pure function of the caller's scope and the
inventory; the handlers only call them.

Seeing comes first: a commune outside the caller's scope is answered 404 (it does not exist
for the caller) by the handlers before these rules are asked.
"""

from __future__ import annotations

from inventory.model import Commune, Inventory
from monitor.present.web.auth import Scope

NOT_OPERATOR = ("Chỉ quản trị hoặc nhà mạng của đường truyền này được tắt cảnh báo / only an "
                "admin or the line's operator may silence it")
NOT_COVERED = ("Cửa sổ bảo trì vượt ngoài phạm vi của mã truy cập / the maintenance window "
               "covers communes outside this token's scope")


def may_silence(scope: Scope, commune: Commune) -> str | None:
    """None when ``scope`` may silence the commune's alerts, else why not: an admin, or an
    operator's token (alone or combined, e.g. with its province) for its own line. A token
    for a province only watches; it does not acknowledge for the operator."""
    if scope.sees_all:
        return None
    if scope.operator is not None and scope.allows(commune):
        return None
    return NOT_OPERATOR


def covered(inventory: Inventory, province: str, commune: str | None) -> list[Commune]:
    """The communes a maintenance scope ``PROV[/COMMUNE]`` covers."""
    prov = inventory.province(province)
    if prov is None:
        return []
    return [c for c in prov.communes if commune is None or c.code == commune]


def may_maintain(scope: Scope, inventory: Inventory, province: str,
                 commune: str | None) -> str | None:
    """None when ``scope`` may set (or end) a maintenance window over ``PROV[/COMMUNE]``,
    else why not: the scope must see every commune the window covers (an admin anything,
    a province its province, an operator its own communes)."""
    if scope.sees_all:
        return None
    communes = covered(inventory, province, commune)
    if communes and all(scope.allows(c) for c in communes):
        return None
    return NOT_COVERED
