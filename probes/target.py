"""The election system, phase by phase: DNS, TCP connect, TLS handshake, HTTP status.

Like blackbox_exporter's http prober, each phase is timed on its own so an operator can
tell a resolver fault from a blocked port, a certificate problem or a failing server. The
certificate's notAfter is read from the DER certificate itself, so it is known even when
verification is switched off. Redirects are never followed: the status is what counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

from inventory.model import Target
from probes.result import ProbeResult, TargetDetail

T = TypeVar("T")
STATUS_LINE_LIMIT = 8192  # bytes: a longer status line is not HTTP
USER_AGENT = "tslcd-monitor"


class _PhaseFailed(Exception):
    def __init__(self, phase: str, message: str) -> None:
        super().__init__(f"{phase}: {message}")
        self.phase = phase


async def probe(target: Target, *, timeout: float = 5.0, source: str | None = None) -> ProbeResult:
    """Check ``target`` from here; the whole probe takes at most about ``timeout`` seconds.

    ``source``: local address to connect from (a multi-homed vantage). ok means every phase
    passed, the HTTP status is below 400 and the name resolved only to expected addresses.
    """
    started = time.time()
    t0 = time.monotonic()
    fields: dict[str, Any] = {"url": target.url}
    error = None
    try:
        await _run_phases(target, _parse_url(target.url), fields, t0 + timeout, source)
    except _PhaseFailed as exc:
        fields["failed_phase"], error = exc.phase, str(exc)
    except ValueError as exc:  # not an http(s) URL: nothing was probed
        error = str(exc)
    if error is None and fields.get("addresses_ok") is False:
        expected = ", ".join(str(a) for a in target.addresses)
        fields["failed_phase"] = "dns"
        error = f"dns: resolved to {', '.join(fields['resolved'])}, expected {expected}"
    detail = TargetDetail(**fields)
    return ProbeResult(
        "target", target.name, error is None, started, time.monotonic() - t0, error, detail
    )


def _parse_url(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    return parts


async def _run_phases(
    target: Target, url: SplitResult, fields: dict[str, Any], deadline: float, source: str | None
) -> None:
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    infos = await _phase(fields, "dns", deadline, _resolve(host, port))
    fields["resolved"] = tuple(dict.fromkeys(info[4][0] for info in infos))
    if target.addresses:
        expected = {str(a) for a in target.addresses}
        fields["addresses_ok"] = set(fields["resolved"]) <= expected
    sock = await _phase(fields, "connect", deadline, _connect(infos, source))
    reader, writer = await asyncio.open_connection(sock=sock, limit=STATUS_LINE_LIMIT)
    try:
        if url.scheme == "https":
            context = _tls_context(target)
            await _phase(fields, "tls", deadline, writer.start_tls(context, server_hostname=host))
            fields["tls_not_after"] = _peer_not_after(writer)
        status = _status(reader, writer, _request(url))
        fields["http_status"] = await _phase(fields, "http", deadline, status)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    if fields["http_status"] >= 400:
        raise _PhaseFailed("http", f"HTTP {fields['http_status']}")


async def _phase(fields: dict[str, Any], name: str, deadline: float, step: Awaitable[T]) -> T:
    """Run one phase within what is left of the deadline; record its duration either way."""
    t0 = time.monotonic()
    try:
        return await asyncio.wait_for(step, max(0.0, deadline - t0))
    except TimeoutError as exc:
        raise _PhaseFailed(name, "timed out") from exc
    except ssl.SSLCertVerificationError as exc:
        raise _PhaseFailed(name, f"certificate: {exc.verify_message}") from exc
    except (OSError, ValueError) as exc:
        raise _PhaseFailed(name, str(exc) or type(exc).__name__) from exc
    finally:
        fields[f"{name}_seconds"] = time.monotonic() - t0


async def _resolve(host: str, port: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)


async def _connect(infos: list[Any], source: str | None) -> socket.socket:
    """Connect to the resolved addresses in order; the first that accepts wins."""
    loop = asyncio.get_running_loop()
    source_family = None if source is None else _family(source)
    last: OSError = OSError(f"no address of family {source_family} to connect to")
    for family, kind, proto, _name, address in infos:
        if source_family is not None and family != source_family:
            continue
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            if source is not None:
                sock.bind((source, 0))
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _tls_context(target: Target) -> ssl.SSLContext:
    """System store or the target's CA bundle; unverified only when explicitly configured."""
    context = ssl.create_default_context(cafile=target.ca_file)
    if target.verify_tls is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _peer_not_after(writer: asyncio.StreamWriter) -> float | None:
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        return None
    try:
        return der_not_after(der)
    except ValueError:
        return None


def _request(url: SplitResult) -> bytes:
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    return (
        f"GET {path} HTTP/1.1\r\nHost: {_host_header(url)}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii", errors="strict")


def _host_header(url: SplitResult) -> str:
    host = url.hostname or ""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


async def _status(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send the request and read just the status line (bounded by the reader's limit)."""
    writer.write(request)
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise ValueError("connection closed before the status line")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {line[:80]!r}")
    return int(parts[1])


# --- certificate notAfter from DER (X.509: Certificate > TBSCertificate > Validity) -------


def der_not_after(der: bytes) -> float:
    """The certificate's notAfter as Unix seconds; raises ``ValueError`` on malformed DER."""
    _tag, cert, _ = _tlv(der, 0)
    _tag, tbs, _ = _tlv(der, cert)
    pos = tbs
    tag, _, pos = _tlv(der, pos)
    if tag == 0xA0:  # explicit version; then the serial number follows
        _tag, _, pos = _tlv(der, pos)
    for _field in ("signature", "issuer"):
        _tag, _, pos = _tlv(der, pos)
    _tag, validity, _ = _tlv(der, pos)
    _tag, _, after = _tlv(der, validity)  # notBefore
    tag, start, end = _tlv(der, after)
    return _asn1_time(tag, der[start:end].decode("ascii"))


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    try:
        tag, length = der[pos], der[pos + 1]
        start = pos + 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(der[start : start + count], "big")
            start += count
    except IndexError as exc:
        raise ValueError("truncated DER") from exc
    if start + length > len(der):
        raise ValueError("truncated DER")
    return tag, start, start + length


def _asn1_time(tag: int, text: str) -> float:
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ, years 1950..2049
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"unexpected time tag {tag:#x}")
    import calendar  # strptime imports it anyway, when a certificate is read

    parsed = time.strptime(text, "%Y%m%d%H%M%SZ")
    return float(calendar.timegm(parsed))
