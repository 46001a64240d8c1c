"""The pure parts of the testbed's sbatch service and its protos (no process, no network)."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from grpclib.const import Cardinality

from protos import generate
from protos.sbatchapi.v1alpha1 import sbatch_grpc, sbatch_pb2
from protos.supervisor.v1alpha1 import job_grpc, job_pb2, ssh_grpc, ssh_pb2
from testbed import sbatch_service, scripts
from testbed.sbatch_service import (
    InvalidRequest,
    NonceBook,
    Unauthenticated,
    address_hex,
    challenge_bytes,
    challenge_nonce,
    decode_job_parties,
    job_id_bytes,
    recover_signer,
    same_address,
)
from testbed.tls import ensure_tls

# --- challenge ---------------------------------------------------------------------------------


def test_challenge_is_the_reference_compact_json() -> None:
    nonce = sbatch_service.new_nonce()
    challenge = challenge_bytes(nonce)
    assert challenge == b'{"message":"login","nonce":"' + nonce.encode() + b'"}'
    assert len(base64.b64decode(nonce, validate=True)) == 16
    assert challenge_nonce(challenge) == nonce


def test_nonces_are_random() -> None:
    assert len({sbatch_service.new_nonce() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "challenge",
    [b"", b"login", b'{"message":"logout","nonce":"abc"}', b'{"message":"login","nonce":""}'],
)
def test_foreign_challenges_are_refused(challenge: bytes) -> None:
    with pytest.raises(Unauthenticated):
        challenge_nonce(challenge)


# --- nonce book --------------------------------------------------------------------------------


def test_nonce_redeems_once() -> None:
    book = NonceBook(lifetime=600.0)
    nonce = book.issue(now=100.0)
    assert book.redeem(nonce, now=100.5)
    assert not book.redeem(nonce, now=100.6)


def test_nonce_expires_after_its_lifetime() -> None:
    book = NonceBook(lifetime=600.0)
    nonce = book.issue(now=100.0)
    assert not book.redeem(nonce, now=700.0)
    fresh = book.issue(now=100.0)
    assert book.redeem(fresh, now=699.9)


def test_unknown_nonce_is_refused() -> None:
    assert not NonceBook().redeem("bm9wZQ==", now=0.0)


def test_expired_nonces_are_forgotten() -> None:
    book = NonceBook(lifetime=10.0)
    issued = [book.issue(now=float(at)) for at in range(5)]
    assert len(book) == 5
    book.purge(now=12.5)  # those issued at 0, 1, 2 expired at 10, 11, 12
    assert len(book) == 2
    assert not book.redeem(issued[2], now=12.5)
    assert book.redeem(issued[3], now=12.5)


# --- signatures --------------------------------------------------------------------------------


def _sign(key: bytes, message: bytes, v_offset: int) -> bytes:
    """Sign an EIP-191 personal message; v is 27/28 minus ``v_offset`` (27 gives Go's 0/1)."""
    signed = Account.sign_message(encode_defunct(primitive=message), private_key=key)
    signature = bytes(signed.signature)
    assert signature[64] in (27, 28)
    return signature[:64] + bytes([signature[64] - v_offset])


@pytest.mark.parametrize("v_offset", [0, 27], ids=["v27/28", "v0/1"])
def test_signer_is_recovered_with_either_v_convention(v_offset: int) -> None:
    for _ in range(4):  # both recovery ids come up with overwhelming probability
        account = Account.create()
        challenge = challenge_bytes(sbatch_service.new_nonce())
        signature = _sign(account.key, challenge, v_offset)
        assert signature[64] in ((27, 28) if v_offset == 0 else (0, 1))
        assert recover_signer(challenge, signature) == account.address.lower()


def test_signature_of_another_message_recovers_someone_else() -> None:
    account = Account.create()
    signature = _sign(account.key, challenge_bytes("a"), 0)
    assert recover_signer(challenge_bytes("b"), signature) != account.address.lower()


def test_raw_unhashed_signature_is_not_the_signer() -> None:
    """Signing the raw challenge (the reference's old "forgot to hash" bug) does not pass."""
    account = Account.create()
    challenge = challenge_bytes("nonce")
    raw = Account.unsafe_sign_hash(challenge.ljust(32, b"\0")[:32], account.key)
    assert recover_signer(challenge, bytes(raw.signature)) != account.address.lower()


@pytest.mark.parametrize("v", [2, 26, 29, 37])
def test_invalid_recovery_id_is_refused(v: int) -> None:
    signature = _sign(Account.create().key, b"x", 0)
    with pytest.raises(Unauthenticated):
        recover_signer(b"x", signature[:64] + bytes([v]))


@pytest.mark.parametrize("signature", [b"", b"\x01" * 64, b"\x01" * 66, b"\x00" * 65])
def test_malformed_signature_is_refused(signature: bytes) -> None:
    with pytest.raises(Unauthenticated):
        recover_signer(b"x", signature)


# --- addresses and job ids ---------------------------------------------------------------------


def test_address_comparison_ignores_case() -> None:
    account = Account.create()
    raw = bytes.fromhex(account.address[2:])
    assert same_address(account.address, raw)  # checksummed
    assert same_address(account.address.lower(), raw)
    assert same_address("0x" + account.address[2:].upper(), raw)
    assert not same_address(Account.create().address, raw)
    assert not same_address(account.address, raw[:19])
    assert address_hex(raw) == account.address.lower()


@pytest.mark.parametrize("raw", [b"", b"\x01" * 19, b"\x01" * 21, b"\x01" * 32])
def test_address_must_be_20_bytes(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        address_hex(raw)


def test_job_id_is_0x_and_64_hex() -> None:
    assert job_id_bytes("0x" + "aB" * 32) == bytes([0xAB]) * 32
    for bad in ("", "0x", "ab" * 32, "0x" + "ab" * 31, "0x" + "zz" * 32, "0x" + "ab" * 33):
        with pytest.raises(InvalidRequest):
            job_id_bytes(bad)


def test_job_tuple_decodes_customer_and_provider() -> None:
    customer, provider = Account.create().address, Account.create().address
    definition = (1, 1024, 2, 3, "hash", 0, [("os", "linux")], [(("arch", "x86"), b"=\0")])
    job = (
        b"\x11" * 32,
        1,
        customer,
        provider,
        definition,
        (10**18, 0, 0, False),
        (1, 2, 3, 4, 5, 6),
        b"name".ljust(32, b"\0"),
        False,
        "",
        -1,
    )
    parties = decode_job_parties(abi_encode([sbatch_service.JOB_ABI], [job]))
    assert parties == sbatch_service.JobParties(customer.lower(), provider.lower())


def test_selectors_match_the_abi() -> None:
    assert sbatch_service.JOBS_SELECTOR.hex() == "7c8fce23"
    assert sbatch_service.GET_JOB_SELECTOR.hex() == "8eaa6ac0"


# --- scripts -----------------------------------------------------------------------------------


def test_script_round_trip_and_expiry(tmp_path: Path) -> None:
    location_hash = scripts.put_script(tmp_path, b"#!/bin/bash\nhostname\n")
    assert re.fullmatch(r"[2-9A-HJ-NP-Za-km-z]{22}", location_hash)
    stored_at = (tmp_path / location_hash).stat().st_mtime
    load = scripts.load_script
    assert load(tmp_path, location_hash, now=stored_at + 1, ttl=60) == b"#!/bin/bash\nhostname\n"
    assert load(tmp_path, location_hash, now=stored_at + 60, ttl=60) is None
    os.utime(tmp_path / location_hash, (stored_at - 120, stored_at - 120))
    assert load(tmp_path, location_hash, now=stored_at, ttl=60) is None


def test_location_hashes_are_fresh(tmp_path: Path) -> None:
    hashes = {scripts.put_script(tmp_path, b"x") for _ in range(50)}
    assert len(hashes) == 50
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(hashes)


def test_expiry_boundary() -> None:
    assert not scripts.is_expired(stored_at=100.0, now=159.9, ttl=60.0)
    assert scripts.is_expired(stored_at=100.0, now=160.0, ttl=60.0)


@pytest.mark.parametrize(
    "location_hash", ["", "..", "../etc/passwd", "a/b", ".incoming-x", "a" * 65]
)
def test_malformed_location_hash_is_never_read(tmp_path: Path, location_hash: str) -> None:
    assert not scripts.is_valid_location_hash(location_hash)
    assert scripts.load_script(tmp_path, location_hash, now=0.0, ttl=60.0) is None


def test_unknown_script_is_none(tmp_path: Path) -> None:
    assert scripts.load_script(tmp_path, "NoSuchScript", now=0.0, ttl=60.0) is None


# --- TLS files ---------------------------------------------------------------------------------


def test_tls_files_are_made_once_with_private_keys(tmp_path: Path) -> None:
    from cryptography import x509

    files = ensure_tls(tmp_path / "tls")
    for key in (files.ca_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = files.server_cert.read_bytes()
    assert ensure_tls(tmp_path / "tls") == files
    assert files.server_cert.read_bytes() == first
    cert = x509.load_pem_x509_certificate(first)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)


# --- protos ------------------------------------------------------------------------------------


def _methods(base: type) -> dict[str, tuple[type, type]]:
    abstract: frozenset[str] = base.__abstractmethods__  # type: ignore[attr-defined]
    stubs = {name: lambda self, stream: None for name in abstract}
    mapping = type("Service", (base,), stubs)().__mapping__()
    out: dict[str, tuple[type, type]] = {}
    for name, handler in mapping.items():
        assert handler.cardinality is Cardinality.UNARY_UNARY
        out[name] = (handler.request_type, handler.reply_type)
    return out


def test_full_method_names() -> None:
    assert _methods(sbatch_grpc.AuthAPIBase) == {
        "/sbatchapi.v1alpha1.AuthAPI/Challenge": (
            sbatch_pb2.ChallengeRequest,
            sbatch_pb2.ChallengeResponse,
        )
    }
    assert _methods(sbatch_grpc.SBatchAPIBase) == {
        "/sbatchapi.v1alpha1.SBatchAPI/GetSBatch": (
            sbatch_pb2.GetSBatchRequest,
            sbatch_pb2.GetSBatchResponse,
        )
    }
    assert _methods(job_grpc.JobAPIBase) == {
        "/supervisor.v1alpha1.JobAPI/SetJobStatus": (
            job_pb2.SetJobStatusRequest,
            job_pb2.SetJobStatusResponse,
        )
    }
    assert _methods(ssh_grpc.SshAPIBase) == {
        "/supervisor.v1alpha1.SshAPI/FetchAuthorizedKeys": (
            ssh_pb2.FetchAuthorizedKeysRequest,
            ssh_pb2.FetchAuthorizedKeysResponse,
        )
    }


def _fields(message: type) -> dict[str, tuple[int, str]]:
    descriptor = message.DESCRIPTOR  # type: ignore[attr-defined]
    return {field.name: (field.number, _type_name(field)) for field in descriptor.fields}


def _type_name(field: object) -> str:
    from google.protobuf.descriptor import FieldDescriptor

    assert isinstance(field, FieldDescriptor)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_name: str = field.enum_type.full_name
        return enum_name
    names = {
        FieldDescriptor.TYPE_STRING: "string",
        FieldDescriptor.TYPE_BYTES: "bytes",
        FieldDescriptor.TYPE_UINT64: "uint64",
        FieldDescriptor.TYPE_INT64: "int64",
    }
    return names[field.type]


def test_sbatch_fields_match_the_wire_document() -> None:
    assert _fields(sbatch_pb2.ChallengeRequest) == {}
    assert _fields(sbatch_pb2.ChallengeResponse) == {"challenge": (1, "bytes")}
    assert _fields(sbatch_pb2.GetSBatchRequest) == {
        "batch_location_hash": (1, "string"),
        "signed_challenge": (2, "bytes"),
        "challenge": (3, "bytes"),
        "provider_address": (4, "bytes"),
        "customer_address": (5, "bytes"),
        "job_id": (6, "string"),
    }
    assert _fields(sbatch_pb2.GetSBatchResponse) == {
        "sbatch": (1, "string"),
        "grid_logger_url": (2, "string"),
    }


def test_supervisor_fields_match_the_wire_document() -> None:
    assert _fields(job_pb2.SetJobStatusRequest) == {
        "name": (1, "string"),
        "id": (2, "uint64"),
        "duration": (3, "uint64"),
        "status": (4, "supervisor.v1alpha1.JobStatus"),
        "exit_code": (5, "int64"),
    }
    assert _fields(job_pb2.SetJobStatusResponse) == {}
    assert _fields(ssh_pb2.FetchAuthorizedKeysRequest) == {}
    assert _fields(ssh_pb2.FetchAuthorizedKeysResponse) == {"authorized_keys": (1, "string")}


def test_job_status_enum_matches_the_wire_document() -> None:
    expected = [
        "UNSPECIFIED",
        "PENDING",
        "META_SCHEDULED",
        "SCHEDULED",
        "RUNNING",
        "CANCELLING",
        "CANCELLED",
        "FINISHED",
        "FAILED",
        "OUT_OF_CREDITS",
        "PANICKED",
    ]
    assert dict(job_pb2.JobStatus.items()) == {
        f"JOB_STATUS_{name}": value for value, name in enumerate(expected)
    }
    assert job_pb2.JOB_STATUS_RUNNING == 4


def test_messages_round_trip_on_the_wire() -> None:
    request = sbatch_pb2.GetSBatchRequest(
        batch_location_hash="h", signed_challenge=b"s", provider_address=b"\x01" * 20, job_id="j"
    )
    # field 1 (string, tag 0x0a) comes first: the wire layout is the documented one
    assert request.SerializeToString().startswith(b"\x0a\x01h\x12\x01s")
    assert sbatch_pb2.GetSBatchRequest.FromString(request.SerializeToString()) == request
    status = job_pb2.SetJobStatusRequest(name="0x", status=job_pb2.JOB_STATUS_FINISHED)
    assert status.SerializeToString() == b"\x0a\x020x\x20\x07"


def test_generate_reproduces_the_committed_files() -> None:
    files = generate.render()
    assert {path.as_posix() for path in files} >= {
        "sbatchapi/v1alpha1/sbatch_pb2.py",
        "sbatchapi/v1alpha1/sbatch_grpc.py",
        "supervisor/v1alpha1/job_pb2.py",
        "supervisor/v1alpha1/job_grpc.py",
        "supervisor/v1alpha1/ssh_pb2.py",
        "supervisor/v1alpha1/ssh_grpc.py",
        "supervisor/v1alpha1/__init__.py",
    }
    assert generate.stale_files(files) == []
    for relative, content in files.items():
        assert (generate.PROTOS_DIR / relative).read_bytes() == content


def test_generated_imports_are_package_qualified() -> None:
    text = (generate.PROTOS_DIR / "supervisor/v1alpha1/job_grpc.py").read_text()
    assert "import protos.supervisor.v1alpha1.job_pb2" in text
    assert "'/supervisor.v1alpha1.JobAPI/SetJobStatus'" in text
    assert generate.qualify_modules("import a.b.c_pb2 # '/a.b.S/M'", {"a"}, "p") == (
        "import p.a.b.c_pb2 # '/a.b.S/M'"
    )
