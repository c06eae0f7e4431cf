"""``qmtl world serve --ssl-certfile/--ssl-keyfile`` serves HTTPS: a self-signed certificate
made here, the real command in a subprocess, and real HTTPS requests whose client verifies
the server against that certificate (and refuses it without). And behind a proxy,
``--forwarded-allow-ips`` decides whose ``X-Forwarded-For`` the audit log believes."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from qmtl.cli import app as cli_app
from tests import procs
from tests.world_api.conftest import free_port
from world_api.service.auth import create_token
from world_api.service.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qmtl test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stdout.read() if proc.stdout else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("serve did not listen in time")


@contextlib.contextmanager
def qmtl_serve(db: str, *options: str) -> Iterator[int]:
    """``qmtl world serve --store db *options`` in a subprocess; yields its port."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FORWARDED_ALLOW_IPS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qmtl.cli", "world", "serve", "--port", str(port), "--store", db,
         *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def https_world(tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    db = str(tmp_path / "world.db")
    store = open_store(db)
    token = create_token(store, "operator", "ops")
    store.close()
    with qmtl_serve(db, "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)) as port:
        yield f"https://127.0.0.1:{port}", token, certfile


def test_serve_speaks_https_that_verifies_against_its_certificate(https_world, tmp_path):
    url, token, certfile = https_world
    trusted = ssl.create_default_context(cafile=str(certfile))
    with httpx.Client(base_url=url, verify=trusted) as c:
        assert c.get("/worlds").status_code == 401  # TLS up, tokens still needed
        r = c.post("/worlds", json={"id": "demo"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201
        assert c.get("/openapi.json").status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/worlds")  # the system's CAs do not know a self-signed certificate
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the HTTPS port gets no HTTP answer
        httpx.get(url.replace("https", "http") + "/worlds")
    # the CLI's client trusts it through SSL_CERT_FILE
    out = procs.run(
        [sys.executable, "-m", "qmtl.cli", "world", "status", "demo", "--url", url,
         "--token", token],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SSL_CERT_FILE": str(certfile),
             "COLUMNS": "200"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "world demo" in out.stdout


def test_a_bad_certificate_or_a_lone_key_is_a_clear_error(tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    other_key = tmp_path / "other.pem"
    other_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    db = str(tmp_path / "w.db")

    def serve(*args: str):
        return CliRunner().invoke(cli_app, ["world", "serve", "--store", db, *args])

    lone = serve("--ssl-keyfile", str(keyfile))
    assert lone.exit_code == 1 and "--ssl-keyfile needs --ssl-certfile" in lone.output
    missing = serve("--ssl-certfile", str(tmp_path / "nope.pem"))
    assert missing.exit_code == 1 and "cannot use the certificate" in missing.output
    mismatch = serve("--ssl-certfile", str(certfile), "--ssl-keyfile", str(other_key))
    assert mismatch.exit_code == 1 and "with the key" in mismatch.output


@pytest.mark.parametrize(("trusted", "source"), [("127.0.0.1", "203.0.113.9"),
                                                  ("10.9.9.9", "127.0.0.1")])
def test_the_audit_believes_x_forwarded_for_only_from_a_trusted_proxy(tmp_path, trusted,
                                                                      source):
    db = str(tmp_path / "world.db")
    open_store(db).close()
    with qmtl_serve(db, "--forwarded-allow-ips", trusted) as port:
        r = httpx.get(f"http://127.0.0.1:{port}/worlds",
                      headers={"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer x"})
        assert r.status_code == 401
    store = open_store(db)
    try:
        rows = store.audit_log(None, 10)
        assert [(r["action"], r["detail"]["source"]) for r in rows] == [("auth_failed", source)]
    finally:
        store.close()
