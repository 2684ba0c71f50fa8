"""Bearer tokens and their scopes for the page, the API, the reports and ``/metrics``.

The tokens file (YAML) holds only SHA-256 hashes of the tokens, never the tokens::

    tokens:
      - name: vnpt-dongnai
        token_sha256: 5e88...        # python -m monitor.present.web.auth hash  (token on stdin)
        scope: isp:VNPT              # admin | isp:OPERATOR | province:CODE | metrics
        expires: 2026-12-31T00:00:00+07:00   # optional
      - name: vnpt-dongnai-branch
        token_sha256: 9f86...
        scope: [isp:VNPT, province:75]      # a list: every one must allow (intersection)

A scoped token sees only the communes of its operator or province; a list of scopes sees
what all of them allow (VNPT's lines in Đồng Nai: an operator's provincial branch);
``metrics`` may only scrape ``/metrics``. Tokens are random and long, so a plain SHA-256
is enough (no password stretching); comparisons are constant-time and tokens are never logged.

The file is validated like the inventory (every problem as ``FILE:LINE: message``) and
re-read without a restart when it changes and on SIGHUP (:class:`TokenWatch`): a revoked
token stops working within seconds; a broken new file leaves the tokens in force.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import re
import secrets
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog
import yaml

from inventory import nodes, official
from inventory.loader import Problem
from inventory.model import Commune, Inventory, Province
from monitor.present.reports import VIETNAM

ScopeKind = Literal["admin", "isp", "province", "metrics"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
log = structlog.get_logger("monitor.present.web.auth")


class TokenFileError(Exception):
    """The tokens file is unreadable or malformed; ``problems`` lists every problem, each
    naming the file and line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    value: str = ""  # compared folded ("vnpt"); ``label`` keeps the file's spelling to show
    label: str = field(default="", compare=False)
    #: further scopes that must allow a commune too (made by :meth:`combine`)
    also: tuple[Scope, ...] = ()

    @classmethod
    def combine(cls, scopes: Sequence[Scope]) -> Scope:
        """The intersection of ``scopes``: ``admin`` adds nothing, ``metrics`` combines with
        nothing, and two different operators (or provinces) would see nothing; raises
        ValueError."""
        if not scopes:
            raise ValueError("a list of scopes must not be empty")
        if any(s.kind == "metrics" for s in scopes) and len(scopes) > 1:
            raise ValueError("metrics cannot be combined with another scope")
        parts: list[Scope] = []
        for scope in scopes:
            if scope.sees_all or scope in parts:
                continue
            clash = next((p for p in parts if p.kind == scope.kind), None)
            if clash is not None:
                raise ValueError(f"{clash} and {scope} together would see no commune")
            parts.append(scope)
        if not parts:
            return cls("admin")
        first, *rest = parts
        return cls(first.kind, first.value, first.label, tuple(rest))

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
        own = self.label or (f"{self.kind}:{self.value}" if self.value else self.kind)
        return "+".join([own, *(str(s) for s in self.also)])

    @property
    def sees_all(self) -> bool:
        return self.kind == "admin"

    @property
    def parts(self) -> tuple[Scope, ...]:
        """The single scopes this one intersects (itself alone when not combined)."""
        return (Scope(self.kind, self.value, self.label), *self.also)

    @property
    def operator(self) -> str | None:
        """The (folded) operator this scope is limited to, if any: whose lines it may
        act on (silence, maintenance) as that operator."""
        return next((p.value for p in self.parts if p.kind == "isp"), None)

    @property
    def province(self) -> str | None:
        """The province this scope is limited to, if any."""
        return next((p.value for p in self.parts if p.kind == "province"), None)

    def allows(self, commune: Commune) -> bool:
        return self.allows_alone(commune) and all(s.allows_alone(commune) for s in self.also)

    def allows_alone(self, commune: Commune) -> bool:
        """This scope's own rule, without the scopes it is combined with."""
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
        """Raises :class:`TokenFileError` listing every problem as ``FILE:LINE: message``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError([Problem(str(path), 1, f"cannot read tokens: {exc}")]) from None
        return cls.loads(text, str(path))

    @classmethod
    def loads(cls, text: str, source: str = "<tokens>") -> TokenStore:
        reader = _TokensReader(source)
        entries = reader.read(text)
        if reader.problems:
            raise TokenFileError(sorted(reader.problems, key=lambda p: p.line))
        return cls(entries)

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


_KEYS = ("name", "token_sha256", "scope", "expires")
_DATE_ONLY = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")


class _TokensReader:
    """Checks the tokens file node by node, so every problem is reported at its line and
    all of them in one run (as the inventory is); a value is never echoed when it may be
    a token."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.seen: dict[bytes, int] = {}  # digest -> line of its first entry

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.source, line, message))

    def read(self, text: str) -> list[TokenEntry]:
        try:
            root = nodes.compose(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            self.error(mark.line + 1 if mark else 1,
                       f"YAML syntax error: {exc.problem or exc.context}")
            return []
        except (yaml.YAMLError, RecursionError) as exc:
            self.error(1, f"YAML error: {type(exc).__name__}")
            return []
        items = self.token_list(root)
        entries = [self.entry(i, item) for i, item in enumerate(items, 1)]
        return [e for e in entries if e is not None]

    def token_list(self, root: nodes.Node | None) -> list[nodes.Node]:
        if not isinstance(root, nodes.Mapping):
            self.error(root.line if root else 1, "expected a mapping with a list 'tokens'")
            return []
        found: list[nodes.Node] = []
        listed = False  # an empty list is valid: every token revoked
        for key, value in root.value:
            if key.value != "tokens":
                self.error(key.line, f"unknown key {str(key.value)[:40]!r}: expected 'tokens'")
            elif not isinstance(value, nodes.Sequence):
                self.error(value.line, "'tokens' must be a list of entries")
            else:
                listed = True
                found.extend(value.value)
        if not listed and not self.problems:
            self.error(root.line, "expected a mapping with a list 'tokens'")
        return found

    def entry(self, index: int, item: nodes.Node) -> TokenEntry | None:
        if not isinstance(item, nodes.Mapping):
            self.error(item.line, f"token entry {index}: expected a mapping")
            return None
        before = len(self.problems)
        fields: dict[str, nodes.Node] = {}
        for key, value in item.value:
            name = key.value if isinstance(key, nodes.Scalar) else None
            if name == "token":
                self.error(key.line, "store token_sha256 (the hash), never the token itself")
            elif name not in _KEYS:
                shown = repr(name) if isinstance(name, str) and len(name) < 40 else "?"
                self.error(key.line, f"unknown key {shown}: expected one of {', '.join(_KEYS)}")
            elif name in fields:
                self.error(key.line, f"duplicate key {name!r}")
            else:
                fields[name] = value
        digest = self.digest(item, fields.get("token_sha256"))
        scope = self.scope(item, fields.get("scope"))
        expires = self.expires(fields.get("expires"))
        name = self.name(fields.get("name"), index)
        if len(self.problems) > before or digest is None or scope is None:
            return None
        return TokenEntry(name, digest, scope, expires)

    def scalar(self, node: nodes.Node, what: str) -> str | None:
        if not isinstance(node, nodes.Scalar):
            self.error(node.line, f"{what} must be a single value, not a list or mapping")
            return None
        return str(node.value).strip()

    def name(self, node: nodes.Node | None, index: int) -> str:
        text = self.scalar(node, "name") if node is not None else None
        return text or f"token-{index}"

    def digest(self, item: nodes.Mapping, node: nodes.Node | None) -> bytes | None:
        if node is None:
            self.error(item.line, "token_sha256 is missing (64 hex digits)")
            return None
        text = self.scalar(node, "token_sha256")
        if text is None:
            return None
        if not _HEX64.match(text.lower()):
            self.error(node.line, "token_sha256 must be 64 hex digits")
            return None
        digest = bytes.fromhex(text)
        first = self.seen.setdefault(digest, node.line)
        if first != node.line:
            self.error(node.line, f"the same token_sha256 as the entry at line {first}")
            return None
        return digest

    def scope(self, item: nodes.Mapping, node: nodes.Node | None) -> Scope | None:
        """One scope, or a list of scopes that intersect (each checked at its own line)."""
        if node is None:
            self.error(item.line, "scope is missing (admin, metrics, isp:NAME or province:CODE)")
            return None
        if not isinstance(node, nodes.Sequence):
            return self.single_scope(node)
        before = len(self.problems)
        found = [self.single_scope(part) for part in node.value]
        if len(self.problems) > before:
            return None
        try:
            return Scope.combine([s for s in found if s is not None])
        except ValueError as exc:
            self.error(node.line, f"scope: {exc}")
            return None

    def single_scope(self, node: nodes.Node) -> Scope | None:
        text = self.scalar(node, "scope")
        if text is None:
            return None
        try:
            scope = Scope.parse(text)
        except ValueError as exc:
            self.error(node.line, str(exc))
            return None
        if scope.kind == "province" and scope.value not in official.provinces():
            self.error(node.line, f"scope {text!r}: no province with code {scope.value!r} "
                                  "in the official list")
            return None
        return scope

    def expires(self, node: nodes.Node | None) -> dt.datetime | None:
        if node is None or (isinstance(node, nodes.Scalar) and node.tag == nodes.TAG + "null"):
            return None
        text = self.scalar(node, "expires")
        if text is None:
            return None
        try:
            return _expiry(text)
        except ValueError as exc:
            self.error(node.line, f"expires {text[:40]!r}: not a date or time ({exc})")
            return None


def _expiry(value: str) -> dt.datetime:
    """A timestamp; a date means the end of that day, and no offset means Vietnam time."""
    if _DATE_ONLY.match(value):
        day = dt.date(*(int(part) for part in value.split("-")))
        moment = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    else:
        moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)


class TokenWatch:
    """Keeps the tokens in force in step with their file, without a restart: the file is
    checked every ``interval`` seconds (modification time, size, inode) and at once when
    :meth:`request` is called (SIGHUP). A file that fails validation is logged with every
    problem and the tokens in force stay, so a typo never locks everyone out (nor lets a
    revoked token back in)."""

    def __init__(self, path: str | Path, apply: Callable[[TokenStore], None],
                 interval: float = 2.0) -> None:
        self.path = Path(path)
        self.apply = apply
        self.interval = interval
        self.errors: list[str] = []
        self._signature = self._stat()
        self._wake = asyncio.Event()

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)

    def request(self) -> None:
        """Reload at once (from a signal handler in the event loop)."""
        self._wake.set()

    def poll(self, force: bool = False) -> TokenStore | None:
        """The new tokens when the file changed (or ``force``) and is valid, else None."""
        signature = self._stat()
        if not force and signature == self._signature:
            return None
        self._signature = signature
        try:
            store = TokenStore.load(self.path)
        except TokenFileError as exc:
            self.errors = [str(p) for p in exc.problems]
            log.error("tokens_reload_failed", path=str(self.path), problems=self.errors,
                      message="Tệp mã truy cập có lỗi; vẫn dùng các mã cũ / "
                              "tokens file has errors; the tokens in force stay")
            return None
        self.errors = []
        self.apply(store)
        log.info("tokens_reloaded", path=str(self.path), entries=len(store.entries))
        return store

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            forced = self._wake.is_set()
            self._wake.clear()
            self.poll(force=forced)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.present.web.auth",
                                     description="tokens for the web/API of tslcd-monitor")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hash", help="print the SHA-256 of a token read from stdin")
    new = sub.add_parser("new", help="make a random token; print it and its tokens-file entry")
    new.add_argument("--name", required=True)
    new.add_argument("--scope", required=True, action="append",
                     help="admin | isp:NAME | province:CODE | metrics; repeated: all of them "
                          "(isp:VNPT and province:75 = VNPT's lines in the province)")
    args = parser.parse_args(argv)
    if args.command == "hash":
        token = sys.stdin.readline().strip()
        if not token:
            print("no token on stdin", file=sys.stderr)
            return 2
        print(hash_token(token))
        return 0
    try:
        scopes = [Scope.parse(text) for text in args.scope]
        Scope.combine(scopes)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    unknown = [s for s in scopes if s.kind == "province" and s.value not in official.provinces()]
    if unknown:
        print(f"--scope {unknown[0]}: no province with that code in the official list",
              file=sys.stderr)
        return 2
    token = secrets.token_urlsafe(32)
    print(f"token (give it to its holder; it is not stored anywhere): {token}", file=sys.stderr)
    shown = args.scope[0] if len(args.scope) == 1 else list(args.scope)
    entry = {"name": args.name, "token_sha256": hash_token(token), "scope": shown}
    print(yaml.safe_dump([entry], allow_unicode=True, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
