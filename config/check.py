"""Offline checks of a loaded configuration: the files it names and the keys they hold.

Nothing here opens a connection. ``verify_offline`` reads every referenced file, parses the wallet
key, the SSH key (as asyncssh would), the known-hosts file, the CA and the server certificate and
key, and returns the problems found. Like every message of this package, none contains a secret.
"""

from __future__ import annotations

import ssl

from config.errors import ConfigError
from config.schema import Config

#: The shortest reporter secret accepted, in bytes.
MIN_REPORTER_SECRET = 16


def provider_address(wallet_key: bytes) -> str:
    """The checksummed 0x address of the provider that ``wallet_key`` signs for."""
    from eth_keys.datatypes import PrivateKey

    address: str = PrivateKey(wallet_key).public_key.to_checksum_address()
    return address


def _ssh_key_problems(config: Config) -> list[str]:
    import asyncssh

    ssh = config.slurm.ssh
    key = "slurm.ssh.privateKeyFile" if ssh.private_key_file else "slurm.ssh.privateKeyBase64"
    try:
        data = ssh.read_private_key()
    except ConfigError as error:
        return list(error.problems)
    try:
        asyncssh.import_private_key(data)
    except (asyncssh.KeyImportError, ValueError, TypeError):
        # asyncssh's own message is not repeated: it may quote part of what it could not parse.
        return [
            f"{key}: expected an unencrypted OpenSSH or PEM private key "
            "(generate one with: ssh-keygen -t ed25519 -N '' -C supervisor)"
        ]
    problems = []
    known_hosts = ssh.known_hosts_file
    if known_hosts is not None:
        try:
            asyncssh.read_known_hosts(str(known_hosts))
        except OSError as error:
            problems.append(
                f"slurm.ssh.knownHostsFile: cannot read {str(known_hosts)!r}: {error.strerror}"
            )
        except (ValueError, asyncssh.Error):
            problems.append(
                f"slurm.ssh.knownHostsFile: {str(known_hosts)!r} is not a known-hosts file"
            )
    return problems


def _tls_problems(config: Config) -> list[str]:
    problems = []
    ca_file = config.sbatch.tls.ca_file
    if ca_file is not None:
        try:
            ssl.create_default_context(cafile=str(ca_file))
        except OSError as error:
            problems.append(f"sbatch.tls.caFile: cannot read {str(ca_file)!r}: {error.strerror}")
        except ssl.SSLError:
            problems.append(f"sbatch.tls.caFile: {str(ca_file)!r} holds no PEM certificate")
    tls = config.grpc.tls
    if tls.cert_file is not None and tls.key_file is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except OSError as error:
            problems.append(
                "grpc.tls: cannot load the certificate and key "
                f"({str(tls.cert_file)!r}, {str(tls.key_file)!r}): {error.strerror or 'bad PEM'}"
            )
    return problems


def verify_offline(config: Config) -> list[str]:
    """Every problem with the files and keys the configuration names; empty when all is well."""
    problems: list[str] = []
    try:
        config.wallet.read_private_key()
    except ConfigError as error:
        problems.extend(error.problems)
    problems.extend(_ssh_key_problems(config))
    problems.extend(_tls_problems(config))
    try:
        secret = config.grpc.reporter_auth.read_secret()
    except ConfigError as error:
        problems.extend(error.problems)
    else:
        if secret is not None and len(secret) < MIN_REPORTER_SECRET:
            problems.append(
                f"grpc.reporterAuth.secretFile: expected at least {MIN_REPORTER_SECRET} bytes"
            )
    folder = config.state.folder
    try:
        if folder.exists() and not folder.is_dir():
            problems.append(f"state.folder: {str(folder)!r} exists and is not a folder")
    except OSError as error:
        problems.append(f"state.folder: cannot look at {str(folder)!r}: {error.strerror}")
    return problems


def summary(config: Config) -> str:
    """One line that says who this supervisor is and what it connects to (no secrets)."""
    try:
        provider = provider_address(config.wallet.read_private_key())
    except ConfigError:
        provider = "<unreadable key>"
    ssh = config.slurm.ssh
    sbatch_tls = "tls" if config.sbatch.tls.enable else "plaintext"
    chain_id = f" chain id {config.chain.chain_id}" if config.chain.chain_id is not None else ""
    return (
        f"provider {provider} on {config.chain.rpc_endpoint}{chain_id} "
        f"(meta-scheduler {config.chain.metascheduler_address}); "
        f"SLURM {ssh.admin_user}@{ssh.address} partition {config.slurm.partition}; "
        f"sbatch {config.sbatch.endpoint} ({sbatch_tls}); "
        f"reporters dial {config.grpc.public_address}, listening on {config.grpc.listen_address}"
    )
