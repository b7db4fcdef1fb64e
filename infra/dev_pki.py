"""Throwaway certificates for demos and tests: a root CA, intermediates, server and client certificates.

One place makes them (EC P-256, SHA-256, valid from five minutes ago for ``valid_days``), so the demo's
HTTPS platform simulator and the test brokers and platforms get certificates built the same way. Never for
production: the keys are written unencrypted. Needs ``cryptography`` (the server install).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issuer:
    """A CA certificate and its key, which sign further certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def common_name(cn: str) -> x509.Name:
    """The distinguished name ``CN=cn``."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue_certificate(subject: str, issuer: Issuer | None, *, ca: bool, extensions: list[x509.ExtensionType],
                      valid_days: float = 2.0) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new key and its certificate ``CN=subject``, self-signed when ``issuer`` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(common_name(subject))
               .issuer_name(issuer.cert.subject if issuer else common_name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=valid_days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return builder.sign(issuer.key if issuer else key, hashes.SHA256()), key


def loopback_server_extensions() -> list[x509.ExtensionType]:
    """What a server certificate for this machine carries: SAN localhost and 127.0.0.1, server auth."""
    return [x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])]


def write_pem(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """Write ``path.crt`` and ``path.key`` (PEM, key unencrypted); returns both paths."""
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
