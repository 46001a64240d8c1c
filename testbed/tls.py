"""The testbed's own certificate authority and the server certificate of its TLS services.

The sbatch service (and anything else on the testbed that speaks TLS) presents a certificate for
``127.0.0.1`` and ``localhost`` signed by a throw-away CA; clients trust only that CA file, the way
the supervisor trusts ``SBATCH_CA``. ``ensure_tls`` makes the files once and reuses them after::

    tls = ensure_tls(testbed_dir / "tls")
    ssl_context.load_verify_locations(tls.ca_cert)

Keys are EC P-256, written with mode 0600. Nothing here is a secret worth protecting beyond the
testbed, but keys still never reach a log.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
SERVER_HOSTNAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1",)
VALIDITY = dt.timedelta(days=3650)


class TlsFiles(msgspec.Struct, frozen=True):
    """Paths of the PEM files: trust ``ca_cert``; serve with ``server_cert`` + ``server_key``."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def tls_files(directory: Path) -> TlsFiles:
    """Where ``ensure_tls`` keeps its files inside ``directory`` (nothing is created)."""
    return TlsFiles(
        ca_cert=directory / CA_CERT,
        ca_key=directory / CA_KEY,
        server_cert=directory / SERVER_CERT,
        server_key=directory / SERVER_KEY,
    )


def ensure_tls(directory: Path) -> TlsFiles:
    """Make the CA and the server certificate in ``directory`` unless all four files exist."""
    files = tls_files(directory)
    paths = (files.ca_cert, files.ca_key, files.server_cert, files.server_key)
    if all(path.is_file() for path in paths):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, now)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _server_certificate(server_key, ca_key, ca_cert, now)
    _write_private(files.ca_key, _private_pem(ca_key))
    _write_private(files.server_key, _private_pem(server_key))
    _write_public(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_public(files.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    return files


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "grid testbed CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: dt.datetime,
) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in SERVER_HOSTNAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in SERVER_ADDRESSES]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, content: bytes) -> None:
    """Write a key file readable by its owner only (created 0600, never wider)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(path, 0o600)


def _write_public(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    os.chmod(path, 0o644)
