"""Inventory texts more than one test reads.

``FULL`` uses every key of contract §2 at once (working hours, holidays, SNMP, upstream,
backup line, contacts, always_on, milestones, drills, periods): the loader's tests check what
each key becomes, the fast-path reader's tests that both readers agree on it. ``SNMP_BLOCK``
is its SNMP settings, which the loader's tests swap for others. ``DONG_NAI_FIRST`` opens
the provinces of the loader's base inventories: Đồng Nai and its first commune.
``WITH_CONTACT`` opens the Alertmanager tests' inventories: commune 26041 and its first
contact, which the alerts quote; each test goes on with its own contacts, hosts and communes.
"""

from __future__ import annotations

DONG_NAI_FIRST = """\
provinces:
  - code: "75"
    name: "Đồng Nai"
    communes:
      - code: "26041"
        name: "Phường Trấn Biên"
        isp: VNPT
"""
WITH_CONTACT = """\
version: 1
provinces:
  - code: "75"
    communes:
      - code: "26041"
        isp: VNPT
        circuit: DNI-0001
        subnet: 198.18.1.0/29
        gateway: 198.18.1.1
        contacts:
          - {name: "Nguyễn Văn A", role: "cán bộ CNTT xã", phone: "0912 345 678"}
"""
SNMP_BLOCK = """\
  snmp:
    version: 3
    user: tslcd
    auth: sha256
    auth_key_file: /etc/tslcd/auth.key
    priv: AES
    priv_key_file: /etc/tslcd/priv.key
"""
FULL = """\
version: 1
defaults:
  retry_interval: 5s
  working_hours:
    days: [mon, tue, wed, thu, fri]
    from: 07:00
    to: "17:30"
  holidays: [2026-02-17, 2026-04-30]
""" + SNMP_BLOCK + """\
  upstream: [198.19.255.1, 198.19.255.2]
milestones:
  - {id: ip_installed, title: "Cài đặt IP", due: 2026-01-29, requires: [link]}
drills:
  - {id: dien-tap.1, title: "Diễn tập", from: 2026-02-06T07:00:00, to: 2026-02-06T12:00:00}
periods:
  - {id: bau-cu_2026, title: "Ngày bầu cử", from: 2026-03-15T06:00:00, to: 2026-03-15T20:00:00}
provinces:
  - code: "75"
    communes:
      - code: "26041"
        isp: VNPT
        subnet: 198.18.1.0/29
        gateway: 198.18.1.1
        backup_gateway: 198.19.200.1
        backup_isp: Viettel
        backup_circuit: VT-DNI-9
        contacts:
          - {name: "Nguyễn Văn A", role: "cán bộ CNTT xã", phone: "0912 345 678"}
          - {name: "Trần Thị B", email: b@example.gov.vn}
        snmp: {address: 198.18.1.6}
        hosts:
          - {name: may-01, ip: 198.18.1.2, always_on: true}
          - {name: may-02, ip: 198.18.1.3}
      - code: "26068"
        isp: Viettel
        subnet: 198.18.1.8/29
        gateway: 198.18.1.9
        snmp: {version: 2c, community: "s3cret-community"}
        hosts:
          - {name: may-01, ip: 198.18.1.10}
          - {name: may-02, ip: 198.18.1.11}
      - code: "25195"
        isp: VNPT
        subnet: 198.18.1.16/29
        gateway: 198.18.1.17
        hosts:
          - {name: may-01, ip: 198.18.1.18}
          - {name: may-02, ip: 198.18.1.19}
"""
