"""nftables rulesets the labs and the ICMP benchmark load inside their own namespaces."""

from __future__ import annotations


def drop_echo_ruleset(addresses: list[str]) -> str:
    """An nftables ruleset (load inside a namespace only) dropping echo to these addresses."""
    elements = ", ".join(addresses)
    return (
        "table inet tslcd_drop {\n"
        f"  set down {{ type ipv4_addr; elements = {{ {elements} }} }}\n"
        "  chain input { type filter hook input priority 0;\n"
        "    ip daddr @down icmp type echo-request drop\n  }\n"
        "}\n"
    )
