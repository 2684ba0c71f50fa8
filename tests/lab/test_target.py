"""Election-system probe against real HTTP(S) servers on loopback and from a namespace."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inventory.model import Target
from probes import target
from tests.support.lab import netns
from tests.support.lab.probe_runner import probe_in


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path

    def not_after(self, cert: Path) -> float:
        out = subprocess.run(
            ["openssl", "x509", "-enddate", "-noout", "-in", str(cert)],
            capture_output=True, text=True, check=True,
        ).stdout
        return float(ssl.cert_time_to_seconds(out.strip().removeprefix("notAfter=")))


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=True, timeout=30)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA (valid past 2049: GeneralizedTime) and a localhost certificate it signed."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "9500",
            "-subj", "/CN=tslcd test CA", cwd=d)
    openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "srv.pem", "-days", "7", "-extfile", "ext.cnf", cwd=d)
    return Pki(d / "ca.pem", d / "srv.pem", d / "srv.key")


@dataclass
class Server:
    """A one-line HTTP server: answers every request with ``status`` (or never answers)."""

    status: int = 200
    silent: bool = False
    requests: list[bytes] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)  # client addresses
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[0])
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
            if self.silent:
                await reader.read()  # until the client gives up and closes
            location = "Location: http://198.18.0.1/elsewhere\r\n" if self.status < 400 else ""
            writer.write(
                f"HTTP/1.1 {self.status} X\r\n{location}Content-Length: 2\r\n"
                "Connection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator:
    servers: list[asyncio.Server] = []

    async def start(server: Server, tls: ssl.SSLContext | None = None) -> Server:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
        servers.append(listening)
        server.port = listening.sockets[0].getsockname()[1]
        return server

    yield start
    for listening in servers:
        listening.close()


@pytest.fixture
def server_tls(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    return context


async def test_https_with_the_network_ca_is_ok(serve, server_tls, pki: Pki) -> None:
    server = await serve(Server(), server_tls)
    tgt = Target("congtaidaibieu", f"https://localhost:{server.port}/status?x=1",
                 ca_file=str(pki.ca))
    result = await target.probe(tgt, timeout=5)
    d = result.detail
    assert result.ok and result.error is None and d.failed_phase is None
    assert result.kind == "target" and result.subject == "congtaidaibieu"
    assert d.http_status == 200 and "127.0.0.1" in d.resolved and d.addresses_ok is None
    assert d.tls_not_after == pki.not_after(pki.cert)
    assert None not in (d.dns_seconds, d.connect_seconds, d.tls_seconds, d.http_seconds)
    request = server.requests[0].decode()
    assert request.startswith("GET /status?x=1 HTTP/1.1\r\n")
    assert f"Host: localhost:{server.port}\r\n" in request and "Connection: close" in request


async def test_unknown_ca_fails_the_tls_phase(serve, server_tls) -> None:
    server = await serve(Server(), server_tls)
    result = await target.probe(Target("t", f"https://localhost:{server.port}/"), timeout=5)
    d = result.detail
    assert not result.ok and d.failed_phase == "tls"
    assert "certificate" in result.error and d.http_status is None
    assert d.connect_seconds is not None and server.requests == []


async def test_verification_off_only_when_asked_still_reads_expiry(
    serve, server_tls, pki: Pki
) -> None:
    server = await serve(Server(), server_tls)
    tgt = Target("t", f"https://127.0.0.1:{server.port}/", verify_tls=False)
    result = await target.probe(tgt, timeout=5)
    assert result.ok and result.detail.http_status == 200
    assert result.detail.tls_not_after == pki.not_after(pki.cert)


async def test_http_error_status_is_recorded_and_not_ok(serve) -> None:
    server = await serve(Server(status=503))
    result = await target.probe(Target("t", f"http://127.0.0.1:{server.port}/"), timeout=5)
    d = result.detail
    assert not result.ok and d.http_status == 503 and d.failed_phase == "http"
    assert d.tls_seconds is None and d.tls_not_after is None
    assert result.error == "http: HTTP 503"


async def test_redirect_is_recorded_not_followed(serve) -> None:
    server = await serve(Server(status=302))
    result = await target.probe(Target("t", f"http://127.0.0.1:{server.port}/"), timeout=5)
    assert result.ok and result.detail.http_status == 302
    assert len(server.requests) == 1


async def test_resolution_to_unexpected_addresses_is_not_ok(serve, server_tls, pki) -> None:
    server = await serve(Server(), server_tls)
    url = f"https://localhost:{server.port}/"
    wrong = Target("t", url, (ipaddress.ip_address("198.18.0.10"),), ca_file=str(pki.ca))
    result = await target.probe(wrong, timeout=5)
    assert result.detail.addresses_ok is False and not result.ok
    assert result.detail.failed_phase == "dns" and "198.18.0.10" in result.error
    assert result.detail.http_status == 200  # the other phases still ran
    right = Target("t", url, (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")),
                   ca_file=str(pki.ca))
    assert (await target.probe(right, timeout=5)).detail.addresses_ok is True


async def test_closed_port_fails_the_connect_phase(free_port: int) -> None:
    result = await target.probe(Target("t", f"http://127.0.0.1:{free_port}/"), timeout=5)
    assert not result.ok and result.detail.failed_phase == "connect"
    assert result.detail.resolved == ("127.0.0.1",) and result.detail.http_seconds is None


async def test_source_address_is_used_and_must_match_the_family(serve) -> None:
    server = await serve(Server())
    tgt = Target("t", f"http://127.0.0.1:{server.port}/")
    assert (await target.probe(tgt, timeout=5, source="127.0.0.2")).ok
    assert server.peers == ["127.0.0.2"]
    mismatch = await target.probe(tgt, timeout=5, source="::1")
    assert not mismatch.ok and mismatch.detail.failed_phase == "connect"


async def test_silent_server_times_out_in_the_http_phase(serve) -> None:
    server = await serve(Server(silent=True))
    result = await target.probe(Target("t", f"http://127.0.0.1:{server.port}/"), timeout=0.5)
    assert not result.ok and result.detail.failed_phase == "http"
    assert result.error == "http: timed out"


async def test_not_an_http_url_is_a_failed_result_not_an_exception() -> None:
    result = await target.probe(Target("t", "ftp://127.0.0.1/"), timeout=1)
    assert not result.ok and result.detail.failed_phase is None and "ftp" in result.error


def test_der_not_after_reads_utctime_and_generalizedtime(pki: Pki) -> None:
    for cert in (pki.cert, pki.ca):  # leaf: UTCTime; CA beyond 2049: GeneralizedTime
        der = ssl.PEM_cert_to_DER_cert(cert.read_text())
        assert target.der_not_after(der) == pki.not_after(cert)
        with pytest.raises(ValueError):
            target.der_not_after(der[:40])


def test_unreachable_and_unresolvable_from_a_namespace(lab: netns.Lab) -> None:
    client = lab.node("client")
    client.add_route("198.18.0.0/15", kind="blackhole")
    client.isolate_dns()
    result = probe_in(client, {"url": "http://198.18.5.5/"}, timeout=2)
    assert not result.ok and result.detail.failed_phase == "connect"
    assert result.detail.resolved == ("198.18.5.5",)
    unresolvable = probe_in(client, {"url": "https://tslcd-nowhere.invalid/"}, timeout=2)
    assert not unresolvable.ok and unresolvable.detail.failed_phase == "dns"
    assert unresolvable.detail.connect_seconds is None
