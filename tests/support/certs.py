"""Throwaway TLS material (a CA, a server and a client certificate) and a TLS-only redis-server."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.redis_server import RedisServer, free_port

Issued = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one throwaway PKI: the CA, the server's and a client's cert and key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_options(self) -> dict[str, str]:
        """The ``ssl_*`` options of ``pn.connect`` / ``RedisSettings`` for mutual TLS."""
        return {"ssl_ca_certs": str(self.ca_cert), "ssl_certfile": str(self.client_cert),
                "ssl_keyfile": str(self.client_key)}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "phantom_notebook tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "phantom test CA") -> Issued:
    """A self-signed CA valid for one day."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(ca: Issued, common_name: str, *, server: bool) -> Issued:
    """A leaf certificate signed by ``ca``: a server cert (SAN 127.0.0.1, localhost) or a
    client cert."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def write_pem(directory: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    """Write ``<stem>.crt`` and ``<stem>.key`` (mode 0600) into ``directory``."""
    key, cert = issued
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def write_tls_files(directory: Path, ca_name: str = "phantom test CA") -> TlsFiles:
    """Generate a CA, a server cert and a client cert under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(ca_name)
    ca_cert, _ = write_pem(directory, "ca", ca)
    server_cert, server_key = write_pem(directory, "server", issue(ca, "localhost", server=True))
    client_cert, client_key = write_pem(directory, "client", issue(ca, "analyst", server=False))
    return TlsFiles(ca_cert, server_cert, server_key, client_cert, client_key)


class TlsRedisServer(RedisServer):
    """A redis-server that only speaks TLS (``--port 0``) and requires client certificates."""

    def __init__(self, files: TlsFiles, *extra: str) -> None:
        self.files = files
        self.tls_port = free_port()
        super().__init__(
            "--port", "0", "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(files.server_cert), "--tls-key-file", str(files.server_key),
            "--tls-ca-cert-file", str(files.ca_cert), "--tls-auth-clients", "yes", *extra)

    @property
    def url(self) -> str:
        """The rediss:// URL of this server."""
        return f"rediss://127.0.0.1:{self.tls_port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        """A redis-py client presenting the test client certificate."""
        options: dict[str, object] = {"ssl": True, **self.files.client_options(), **kwargs}
        return redis.Redis(host="127.0.0.1", port=self.tls_port, **options)  # type: ignore[arg-type]
