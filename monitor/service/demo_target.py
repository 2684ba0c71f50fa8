"""The bundled demo's election-system stand-in: HTTPS on loopback with a CA of its own.

``tslcd-monitor run`` without ``--inventory`` runs the bundled demo, whose target stands for
the national election system (``https://congtaidaibieu.quochoi.vn``). So that the demo shows
the product working (the election system reachable, the ``connected`` milestone met, no
deadline alert), this module serves that target where the demo's file says it is:

- the URL and the CA file are those of the demo inventory's target (``url:
  https://127.75.255.254:8443/``, ``ca_file: /tmp/tslcd-demo/ca.pem``): the file
  stays the one source, and the target probe checks the certificate as it would in a real
  deployment (``verify_tls: true``, the network's CA);
- at start a fresh CA and a server certificate for the target's address are made; the
  server's key stays in a private temporary folder removed at stop; the CA's certificate
  (public) is written to ``ca_file``, whose folder must be the user's own and private
  (0700, not a symlink): another local user cannot plant a CA there;
- the address is bound before the CA file is written: when a second demo runs on the same
  machine, the first one's stand-in keeps serving and its CA file is left alone.

Only loopback https URLs are ever served.
"""

from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from inventory.model import Inventory, Target

log = structlog.get_logger("demo")

CERT_DAYS = 365  # the demo's certificates outlive any demo session (no expiry alert)
PAGE = (
    '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
    "<title>Hệ thống bầu cử (mô phỏng)</title></head><body>"
    "<h1>Hệ thống phần mềm quản lý thông tin bầu cử — bản mô phỏng</h1>"
    "<p>Máy chủ giả lập của bản demo tslcd-monitor, chạy trên địa chỉ loopback "
    "(election-system stand-in of the tslcd-monitor demo, on loopback).</p></body></html>"
)


class StandInError(Exception):
    """The stand-in cannot serve the target as written (the message says why)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    ca_file: Path


def endpoint(target: Target) -> Endpoint:
    """Where the stand-in serves ``target``; StandInError unless it is an https URL on a
    loopback address with a ``ca_file``."""
    url = urlsplit(target.url)
    try:
        address = ipaddress.ip_address(url.hostname or "")
    except ValueError:
        address = None
    if url.scheme != "https" or address is None or not address.is_loopback:
        raise StandInError(f"target {target.name}: the stand-in serves only https:// on a "
                           "loopback address")
    if not target.ca_file:
        raise StandInError(f"target {target.name}: no ca_file to write the stand-in's CA to")
    return Endpoint(str(address), url.port or 443, Path(target.ca_file))


@dataclass(frozen=True, slots=True)
class Pem:
    ca_cert: bytes
    cert: bytes
    key: bytes


def make_certificates(host: str, days: int = CERT_DAYS) -> Pem:
    """A CA, and a certificate for IP ``host`` signed by it (EC P-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tslcd-monitor demo CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return Pem(ca.public_bytes(pem), cert.public_bytes(pem),
               key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))


def private_folder(folder: Path) -> None:
    """Create ``folder`` (0700) or accept it only if it is ours, private, not a symlink."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if (stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise StandInError(f"{folder}: not a private folder of this user (0700, not a "
                           "symlink): the demo's CA is not written there")


def _bind(host: str, port: int) -> socket.socket | None:
    """The listening socket; None when the address is already served (another demo)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            return None
        raise StandInError(f"{host}:{port}: cannot listen: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


async def _page(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", charset="utf-8")


class StandIn:
    """The running stand-in; :meth:`stop` ends it and removes its private key."""

    def __init__(self, runner: web.AppRunner, where: Endpoint, secret_dir: Path) -> None:
        self.runner = runner
        self.where = where
        self._secret_dir = secret_dir

    async def stop(self) -> None:
        await self.runner.cleanup()
        shutil.rmtree(self._secret_dir, ignore_errors=True)


async def start(target: Target) -> StandIn | None:
    """Serve ``target``; None when another process already serves its address."""
    where = endpoint(target)
    private_folder(where.ca_file.parent)
    sock = _bind(where.host, where.port)
    if sock is None:
        log.warning("demo_stand_in_busy", address=f"{where.host}:{where.port}",
                    message="Địa chỉ của hệ thống bầu cử mô phỏng đang được dùng (một demo "
                            "khác?): dùng máy chủ đang chạy (already served, e.g. by another "
                            "demo: that one is used)")
        return None
    secret_dir = Path(tempfile.mkdtemp(prefix="tslcd-demo-"))
    try:
        pem = make_certificates(where.host)
        (secret_dir / "server.pem").write_bytes(pem.cert + pem.key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(secret_dir / "server.pem")
        tmp = where.ca_file.with_name(f".{where.ca_file.name}.tmp")
        tmp.write_bytes(pem.ca_cert)
        os.replace(tmp, where.ca_file)
        app = web.Application()
        app.router.add_get("/{tail:.*}", _page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=context).start()
    except BaseException:
        sock.close()
        shutil.rmtree(secret_dir, ignore_errors=True)
        raise
    log.info("demo_stand_in_started", url=target.url, ca_file=str(where.ca_file))
    return StandIn(runner, where, secret_dir)


async def start_for_demo(inventory: Inventory) -> list[StandIn]:
    """A stand-in for each of the demo inventory's targets that it can serve (loopback
    https with a ca_file); the others are left to be probed as written."""
    running = []
    for target in inventory.targets:
        try:
            stand_in = await start(target)
        except StandInError as exc:
            log.warning("demo_stand_in_skipped", target=target.name, reason=str(exc))
            continue
        if stand_in is not None:
            running.append(stand_in)
    return running
