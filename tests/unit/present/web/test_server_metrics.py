"""/metrics' content coding: gzip only for a client whose Accept-Encoding takes it (RFC 9110
§12.5.3, q values included), and the plain text made from the one gzipped copy."""

from __future__ import annotations

import pytest

from monitor.present.web.server import accepts_gzip


@pytest.mark.parametrize(("header", "gzip"), [
    (None, False), ("", False), ("identity", False), ("br, deflate", False),
    ("gzip", True), ("GZip", True), ("x-gzip", True), ("gzip, deflate, br", True),
    ("deflate;q=0.5 , gzip ; q=0.1", True), ("gzip;Q=1.000", True), ("*", True),
    ("gzip;q=0", False), ("gzip;q=0.000", False), ("gzip; q=0, identity", False),
    ("GZIP;Q=0", False), ("*;q=0", False), ("gzip;q=0, *", False), ("gzip, *;q=0", True),
    ("*;q=0.001", True), ("identity, *;q=0", False),
    ("gzip;q=2", False), ("gzip;q=abc", False), ("gzip;q=0.0001", False), ("gzip;q=", False),
    ("gzipped", False), ("notgzip, identity", False), (" , ,gzip", True),
])
def test_gzip_is_taken_only_with_a_weight_above_zero(header: str | None, gzip: bool) -> None:
    """``gzip`` (or ``x-gzip``) decides, else ``*``; a weight of 0 refuses, a malformed one
    counts as 0 (plain text is always safe); names and ``q`` in any case, spaces anywhere."""
    assert accepts_gzip(header) is gzip
