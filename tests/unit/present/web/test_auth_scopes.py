"""Scopes that combine: a list in the tokens file is the intersection of its scopes
(``isp:VNPT`` and ``province:75`` = VNPT's lines in Đồng Nai), checked FILE:LINE; and the
rules of who may silence or set maintenance over what (monitor/present/web/rights.py)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import yaml

from monitor.present.web import rights
from monitor.present.web.auth import Scope, TokenFileError, TokenStore, hash_token, main
from tests.support import web as ws

INV = ws.inventory(("75", "01"), per_province=4)
BRANCH = Scope.combine([Scope.parse("isp:VNPT"), Scope.parse("province:75")])


def entry(scope: str) -> str:
    return f"  - name: t\n    token_sha256: {'a' * 64}\n    scope: {scope}\n"


def test_a_list_of_scopes_sees_the_intersection() -> None:
    store = TokenStore.loads("tokens:\n" + entry("[isp:VNPT, province:75]"), "tokens.yaml")
    scope = store.entries[0].scope
    assert scope == BRANCH and str(scope) == "isp:VNPT+province:75"
    seen = {c.key for p in scope.restrict(INV).provinces for c in p.communes}
    assert seen == {c.key for c in INV.communes() if c.isp == "VNPT" and c.province == "75"}
    assert seen and (scope.operator, scope.province) == ("vnpt", "75")


def test_admin_adds_nothing_and_repeats_collapse() -> None:
    vnpt = Scope.parse("isp:VNPT")
    assert Scope.combine([Scope.parse("admin"), vnpt]) == vnpt
    assert Scope.combine([vnpt, Scope.parse("isp:vnpt")]) == vnpt
    assert Scope.combine([Scope.parse("admin")]).sees_all


@pytest.mark.parametrize(("scope", "line", "message"), [
    ("[isp:VNPT, isp:Viettel]", 7, "together would see no commune"),
    ("[province:75, province:01]", 7, "together would see no commune"),
    ("[metrics, isp:VNPT]", 7, "metrics cannot be combined"),
    ("[]", 7, "must not be empty"),
    ("\n      - isp:VNPT\n      - province:999", 9, "no province with code '999'"),
    ("\n      - isp:VNPT\n      - [province:75]", 9, "single value"),
    ("\n      - isp:VNPT\n      - nobody", 9, "expected admin, metrics"),
])
def test_a_bad_list_is_reported_at_its_line(scope: str, line: int, message: str) -> None:
    text = "tokens:\n" + entry("admin").replace("a" * 64, "b" * 64) + entry(scope)
    with pytest.raises(TokenFileError) as caught:
        TokenStore.loads(text, "tokens.yaml")
    assert [(p.file, p.line) for p in caught.value.problems] == [("tokens.yaml", line)]
    assert message in caught.value.problems[0].message


def test_new_writes_a_combined_entry_the_file_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["new", "--name", "vnpt-dn", "--scope", "isp:VNPT",
                     "--scope", "province:75"]) == 0
    token = capsys.readouterr().err.rsplit(": ", 1)[1].strip()
    store = TokenStore.loads(yaml.safe_dump({"tokens": yaml.safe_load(out.getvalue())}))
    found = store.authenticate(token)
    assert found is not None and found.scope == BRANCH
    assert store.entries[0].digest.hex() == hash_token(token)
    assert main(["new", "--name", "x", "--scope", "isp:A", "--scope", "isp:B"]) == 2


def test_silencing_is_for_an_admin_or_the_lines_operator() -> None:
    vnpt_75 = next(c for c in INV.communes() if c.isp == "VNPT" and c.province == "75")
    viettel_75 = next(c for c in INV.communes() if c.isp == "Viettel" and c.province == "75")
    vnpt_01 = next(c for c in INV.communes() if c.isp == "VNPT" and c.province == "01")
    assert rights.may_silence(Scope.parse("admin"), viettel_75) is None
    assert rights.may_silence(Scope.parse("isp:VNPT"), vnpt_01) is None
    assert rights.may_silence(Scope.parse("isp:VNPT"), viettel_75) == rights.NOT_OPERATOR
    assert rights.may_silence(BRANCH, vnpt_75) is None
    assert rights.may_silence(BRANCH, vnpt_01) == rights.NOT_OPERATOR
    assert rights.may_silence(Scope.parse("province:75"), vnpt_75) == rights.NOT_OPERATOR


def test_maintenance_is_for_a_scope_that_sees_everything_the_window_covers() -> None:
    vnpt_75 = next(c for c in INV.communes() if c.isp == "VNPT" and c.province == "75")
    province = Scope.parse("province:75")
    assert rights.may_maintain(province, INV, "75", None) is None
    assert rights.may_maintain(province, INV, "01", None) == rights.NOT_COVERED
    assert rights.may_maintain(BRANCH, INV, "75", vnpt_75.code) is None
    assert rights.may_maintain(BRANCH, INV, "75", None) == rights.NOT_COVERED  # Viettel's too
    assert rights.may_maintain(Scope.parse("isp:VNPT"), INV, "75", "99999") == rights.NOT_COVERED
    assert rights.may_maintain(Scope.parse("admin"), INV, "01", None) is None
