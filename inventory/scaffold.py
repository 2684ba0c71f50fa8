"""A skeleton inventory for one province: every commune of the official list, IPs to fill in."""

from __future__ import annotations

from inventory import official
from inventory.loader import DEFAULT_TCP_PORTS, dump
from inventory.model import Commune, Defaults, Inventory, Province

HEADER = """\
# Danh sách giám sát (inventory) tỉnh {name} (mã {code}): {count} xã, phường theo danh mục
# đơn vị hành chính chính thức. Mã và tên đã điền sẵn, xin đừng sửa.
#
# Với mỗi xã, phường, khi đường truyền số liệu chuyên dùng đã lắp đặt, hãy điền:
#   isp:     nhà mạng cung cấp đường truyền (VNPT, Viettel, ...)
#   circuit: mã đường truyền / mã kênh của nhà mạng (không bắt buộc)
#   subnet:  dải IP được cấp cho xã, ví dụ 198.18.1.0/29 (phải là địa chỉ mạng)
#   gateway: địa chỉ IP của thiết bị đầu cuối (router) của đường truyền, trong dải IP
#   hosts:   các máy tính cập nhật dữ liệu (ít nhất hai máy), mỗi máy một dòng, ví dụ
#              - {{name: may-01, ip: 198.18.1.2, mac: "02:00:00:00:01:02"}}
# Không bắt buộc:
#   backup_gateway, backup_isp, backup_circuit: đường truyền dự phòng (router, nhà mạng, mã)
#   contacts: người liên hệ, ví dụ
#              - {{name: "Nguyễn Văn A", role: "cán bộ CNTT xã", phone: "0912 345 678"}}
#   inspection của từng máy: {{stamp: SỐ-TEM, date: 2026-01-15}} (tem kiểm định)
# Xã chưa có địa chỉ IP để trống (null, hosts: []): chỉ là cảnh báo khi kiểm tra.
# Kiểm tra tệp: tslcd-monitor inventory validate TỆP.yaml
"""


def scaffold(province_code: object) -> str:
    """Inventory YAML listing every commune of the province, with ISP, subnet and hosts empty."""
    code = official.province_code(province_code)
    unit = official.provinces().get(code)
    if unit is None:
        known = ", ".join(sorted(official.provinces()))
        raise ValueError(
            f"unknown province code {province_code!r} / mã tỉnh không có trong danh mục "
            f"(official codes: {known})"
        )
    communes = tuple(
        Commune(code, c.code, c.name, "", None, None, ()) for c in sorted(
            unit.communes.values(), key=lambda c: c.code)
    )
    inventory = Inventory(
        version=1,
        defaults=Defaults(tcp_ports=DEFAULT_TCP_PORTS),
        provinces=(Province(code, unit.name, communes),),
    )
    header = HEADER.format(name=unit.name, code=code, count=len(communes))
    return header + dump(inventory)
