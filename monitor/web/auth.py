"""Bearer tokens and their scopes for the page, the API, the reports and ``/metrics``.

The tokens file (YAML) holds only SHA-256 hashes of the tokens, never the tokens::

    tokens:
      - name: vnpt-dongnai
        token_sha256: 5e88...        # python -m monitor.web.auth hash  (token on stdin)
        scope: isp:VNPT              # admin | isp:OPERATOR | province:CODE | metrics
        expires: 2026-12-31T00:00:00+07:00   # optional

A scoped token sees only the communes of its operator or province; ``metrics`` may only
scrape ``/metrics``. Tokens are random and long, so a plain SHA-256 is enough (no
password stretching); comparisons are constant-time and tokens are never logged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import re
import secrets
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from inventory.model import Commune, Inventory, Province
from monitor.reports import VIETNAM

ScopeKind = Literal["admin", "isp", "province", "metrics"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class TokenFileError(Exception):
    """The tokens file is unreadable or malformed (message names the file and entry)."""


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    value: str = ""  # compared folded ("vnpt"); ``label`` keeps the file's spelling to show
    label: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``admin``, ``metrics``, ``isp:VNPT`` or ``province:75``; raises ValueError."""
        kind, _, value = str(text).strip().partition(":")
        value = value.strip()
        if kind in ("admin", "metrics") and not value:
            return cls(kind)  # type: ignore[arg-type]
        if kind == "isp" and value:
            return cls("isp", _fold_isp(value), f"isp:{value}")
        if kind == "province" and value:
            from inventory.official import province_code

            return cls("province", province_code(value))
        raise ValueError(f"scope {text!r}: expected admin, metrics, isp:NAME or province:CODE")

    def __str__(self) -> str:
        return self.label or (f"{self.kind}:{self.value}" if self.value else self.kind)

    @property
    def sees_all(self) -> bool:
        return self.kind == "admin"

    def allows(self, commune: Commune) -> bool:
        if self.kind == "admin":
            return True
        if self.kind == "isp":
            return _fold_isp(commune.isp) == self.value
        if self.kind == "province":
            return commune.province == self.value
        return False  # metrics: no commune at all

    def restrict(self, inventory: Inventory) -> Inventory:
        """The inventory as this scope may see it (provinces with no visible commune dropped)."""
        if self.sees_all:
            return inventory
        provinces = []
        for p in inventory.provinces:
            communes = tuple(c for c in p.communes if self.allows(c))
            if communes:
                provinces.append(Province(p.code, p.name, communes, p.line))
        return Inventory(
            inventory.version,
            inventory.defaults,
            tuple(provinces),
            inventory.targets,
            inventory.milestones,
            (),  # maintenance windows may name communes outside the scope
            inventory.source,
        )


OPEN = Scope("admin")  # what everyone gets when no tokens file is configured


def _fold_isp(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip().casefold()


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    digest: bytes  # SHA-256 of the token
    scope: Scope
    expires: dt.datetime | None = None

    def expired(self, now: dt.datetime) -> bool:
        return self.expires is not None and now >= self.expires


def hash_token(token: str) -> str:
    """The hex SHA-256 to put in the tokens file for ``token``."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        self.entries = tuple(entries)

    @classmethod
    def load(cls, path: str | Path) -> TokenStore:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise TokenFileError(f"{path}: cannot read tokens: {exc}") from exc
        items = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise TokenFileError(f"{path}: expected a mapping with a list 'tokens'")
        return cls([_entry(path, i, item) for i, item in enumerate(items, 1)])

    def authenticate(self, token: str | None, now: dt.datetime | None = None) -> TokenEntry | None:
        """The entry whose hash matches ``token`` and has not expired, else None.

        Every entry is compared (constant-time), so timing tells nothing about which
        entry came close.
        """
        if not token:
            return None
        digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
        found = None
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        if found is None or found.expired(now or dt.datetime.now(dt.UTC)):
            return None
        return found


def _entry(path: Path, index: int, item: Any) -> TokenEntry:
    where = f"{path}: tokens[{index}]"
    if not isinstance(item, dict):
        raise TokenFileError(f"{where}: expected a mapping")
    if "token" in item:
        raise TokenFileError(f"{where}: store token_sha256 (the hash), never the token itself")
    unknown = set(item) - {"name", "token_sha256", "scope", "expires"}
    if unknown:
        raise TokenFileError(f"{where}: unknown keys {sorted(unknown)}")
    digest = str(item.get("token_sha256", "")).strip().lower()
    if not _HEX64.match(digest):
        raise TokenFileError(f"{where}: token_sha256 must be 64 hex digits")
    try:
        scope = Scope.parse(str(item.get("scope", "")))
        expires = _expiry(item.get("expires"))
    except ValueError as exc:
        raise TokenFileError(f"{where}: {exc}") from exc
    return TokenEntry(str(item.get("name") or f"token-{index}"), bytes.fromhex(digest), scope,
                      expires)


def _expiry(value: Any) -> dt.datetime | None:
    """A timestamp; a date means the end of that day, and no offset means Vietnam time."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value + dt.timedelta(days=1), dt.time())
    else:
        moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.web.auth",
                                     description="tokens for the web/API of tslcd-monitor")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hash", help="print the SHA-256 of a token read from stdin")
    new = sub.add_parser("new", help="make a random token; print it and its tokens-file entry")
    new.add_argument("--name", required=True)
    new.add_argument("--scope", required=True, help="admin | isp:NAME | province:CODE | metrics")
    args = parser.parse_args(argv)
    if args.command == "hash":
        token = sys.stdin.readline().strip()
        if not token:
            print("no token on stdin", file=sys.stderr)
            return 2
        print(hash_token(token))
        return 0
    Scope.parse(args.scope)
    token = secrets.token_urlsafe(32)
    print(f"token (give it to its holder; it is not stored anywhere): {token}", file=sys.stderr)
    entry = {"name": args.name, "token_sha256": hash_token(token), "scope": args.scope}
    print(yaml.safe_dump([entry], allow_unicode=True, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
