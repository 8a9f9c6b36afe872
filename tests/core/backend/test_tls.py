"""Mutual TLS: publish and consume over rediss://, and what a misconfigured client sees."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import phantom_notebook as pn
from tests.support.certs import TlsFiles, TlsRedisServer, write_tls_files
from tests.support.collect import Collector, eventually


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The deployment's CA, server certificate and an analyst's client certificate."""
    return write_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A second, unrelated CA with its own client certificate."""
    return write_tls_files(tmp_path_factory.mktemp("foreign-pki"), ca_name="someone else's CA")


@pytest.fixture(scope="module")
def server(pki: TlsFiles) -> Iterator[TlsRedisServer]:
    """redis-server with ``--port 0`` (no plaintext) and ``--tls-auth-clients yes``."""
    srv = TlsRedisServer(pki).start()
    yield srv
    srv.close()


def connect(server: TlsRedisServer, prefix: str, **tls: Any) -> pn.MessageQueue:
    return pn.connect(server.url, key_prefix=prefix, settings=pn.Settings(), **tls)


def cause_of(error: BaseException) -> BaseException | None:
    """The ssl exception at the root of ``error``'s chain (ours -> redis-py's -> ssl's)."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    return cause


def server_log_mentions(server: TlsRedisServer, text: str) -> bool:
    return text in (server.dir / "redis.log").read_text(errors="replace")


def test_publish_and_consume_over_mutual_tls(server: TlsRedisServer, pki: TlsFiles,
                                             prefix: str) -> None:
    mq = connect(server, prefix, **pki.client_options())
    assert mq.settings.redis.ssl_certfile == str(pki.client_cert)
    mq.declare("ioc-feed", kind="fifo")
    mq.publish_batch("ioc-feed", [("ioc.ip", f"198.51.100.{i}") for i in range(20)])
    got = Collector()
    mq.subscribe("ioc-feed", "*", got)
    with mq.worker():
        assert got.wait_for(20)
    assert got.payloads == [f"198.51.100.{i}" for i in range(20)]
    assert mq.stats(["ioc-feed"])[0].depth == 0
    mq.client.close()


def test_the_tls_port_does_not_speak_plaintext(server: TlsRedisServer) -> None:
    plain = redis.Redis(host="127.0.0.1", port=server.tls_port, socket_timeout=2,
                        retry_on_error=[])
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    plain.close()


def test_a_wrong_ca_fails_with_a_certificate_verification_error(
        server: TlsRedisServer, pki: TlsFiles, foreign_pki: TlsFiles, prefix: str) -> None:
    with pytest.raises(pn.ConfigError, match=r"redis.ssl_ca_certs.*not trusted by .*"
                       r"CERTIFICATE_VERIFY_FAILED\] certificate verify failed") as err:
        connect(server, prefix, **{**pki.client_options(),
                                   "ssl_ca_certs": str(foreign_pki.ca_cert)})
    assert isinstance(cause_of(err.value), ssl.SSLCertVerificationError)


def test_a_client_without_a_certificate_is_refused(server: TlsRedisServer, pki: TlsFiles,
                                                   prefix: str) -> None:
    with pytest.raises(pn.ConnectionLostError, match="requires a client certificate") as err:
        connect(server, prefix, ssl_ca_certs=str(pki.ca_cert))
    # the client sees either the server's "certificate required" alert or, when it writes
    # before reading that alert, a bare "EOF occurred in violation of protocol"
    assert isinstance(cause_of(err.value), ssl.SSLError)
    assert eventually(lambda: server_log_mentions(server, "peer did not return a certificate"))


def test_a_client_certificate_from_another_ca_is_refused(
        server: TlsRedisServer, pki: TlsFiles, foreign_pki: TlsFiles, prefix: str) -> None:
    with pytest.raises(pn.ConnectionLostError, match="closed the TLS handshake") as err:
        connect(server, prefix, ssl_ca_certs=str(pki.ca_cert),
                ssl_certfile=str(foreign_pki.client_cert),
                ssl_keyfile=str(foreign_pki.client_key))
    assert isinstance(cause_of(err.value), ssl.SSLError)
    assert eventually(lambda: server_log_mentions(
        server, "Error accepting a client connection: error:0A000086:SSL routines::"
                "certificate verify failed"))


def test_generated_material_is_a_usable_chain(pki: TlsFiles) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    assert oct(pki.client_key.stat().st_mode & 0o777) == "0o600"
