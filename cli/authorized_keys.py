"""``grid-supervisor authorized-keys``: the supervisor's SSH public key, for sshd on the login node.

The supervisor reaches SLURM over SSH as each customer's UNIX user, with one key. Rather than
writing that key into every user's ``authorized_keys``, sshd asks for it at each login through
``AuthorizedKeysCommand``: this command fetches it from the supervisor
(``supervisor.v1alpha1.SshAPI/FetchAuthorizedKeys``) and prints it, one ``authorized_keys`` line.
It replaces the Go ``provider-ssh-authorized-keys`` and takes the same settings::

    flag                                      environment                       default
    --supervisor.endpoint HOST:PORT           SUPERVISOR_ENDPOINT               (required)
    --supervisor.tls [BOOL]                   SUPERVISOR_TLS_ENABLE             true
    --supervisor.tls.insecure [BOOL]          SUPERVISOR_TLS_INSECURE           false
    --supervisor.tls.ca FILE                  SUPERVISOR_CA                     the system's CAs
    --supervisor.tls.server-host-override N   SUPERVISOR_SERVER_HOST_OVERRIDE   the endpoint's host
    --retries N                               SUPERVISOR_RETRIES                3 attempts
    --retry-delay SECONDS                     SUPERVISOR_RETRY_DELAY            1 (linear backoff)
    --timeout SECONDS                         SUPERVISOR_TIMEOUT                5 per attempt

sshd runs it as ``AuthorizedKeysCommandUser`` with an empty environment and the arguments of
``AuthorizedKeysCommand`` (``%u`` and so on), which are accepted and ignored: the key is the same
for every user. The command must be root-owned, as must every folder above it (sshd refuses it
otherwise), so install a small wrapper, e.g. ``/usr/local/libexec/grid-supervisor/authorized-keys``
(mode 0755, root)::

    #!/bin/sh
    exec /usr/local/bin/grid-supervisor authorized-keys \\
        --supervisor.endpoint supervisor.example.com:443 "$@"

and in ``sshd_config``::

    AuthorizedKeysCommand /usr/local/libexec/grid-supervisor/authorized-keys %u
    AuthorizedKeysCommandUser nobody

Safety: only well-formed public key lines (``<type> <base64>`` with an optional comment, no
``authorized_keys`` options such as ``command=``) are printed; anything else is refused, so even a
spoofed answer cannot smuggle options or extra lines into sshd. Nothing else ever goes to stdout.

Exit status: 0 when a key was printed; 1 when no key could be fetched (sshd then falls back to
the other ways of authenticating); 2 for bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

if TYPE_CHECKING:
    import ssl

__all__ = [
    "KeyOptions",
    "KeysUnavailable",
    "fetch_authorized_keys",
    "options_from",
    "register",
    "run",
    "safe_key_lines",
]

#: Public key types sshd accepts in authorized_keys (certificates included).
_KEY_LINE = re.compile(
    r"(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|"
    r"sk-ecdsa-sha2-nistp256@openssh\.com|[a-z0-9-]+-cert-v01@openssh\.com) "
    r"[A-Za-z0-9+/]+={0,3}(?: [\x20-\x7e]{0,200})?"
)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class KeysUnavailable(Exception):
    """No key could be fetched (the message says why, for sshd's log)."""


class KeyOptions(msgspec.Struct, frozen=True):
    endpoint: str
    tls: bool = True
    insecure: bool = False
    ca_file: Path | None = None
    server_host_override: str | None = None
    retries: int = 3
    retry_delay: float = 1.0
    timeout: float = 5.0

    @property
    def host(self) -> str:
        return self.endpoint.rpartition(":")[0].removeprefix("[").removesuffix("]")

    @property
    def port(self) -> int:
        return int(self.endpoint.rpartition(":")[2])


# --- pure parts --------------------------------------------------------------------------------


def _flag(value: str | None, name: str, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}: expected true or false, got {value[:40]!r}")


def options_from(args: argparse.Namespace, env: Mapping[str, str]) -> KeyOptions:
    """Flags first, then the environment (the Go tool's names), then the defaults.

    Raises ValueError with a message naming the setting."""

    def pick(flag: object, name: str) -> str | None:
        if flag is not None:
            return str(flag)
        value = env.get(name, "")
        return value if value.strip() else None

    endpoint = pick(args.endpoint, "SUPERVISOR_ENDPOINT")
    if endpoint is None:
        raise ValueError("--supervisor.endpoint (or SUPERVISOR_ENDPOINT) is required")
    host, _, port = endpoint.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--supervisor.endpoint: expected host:port, got {endpoint[:80]!r}")
    ca = pick(args.ca_file, "SUPERVISOR_CA")
    try:
        retries = int(pick(args.retries, "SUPERVISOR_RETRIES") or 3)
        delay = float(pick(args.retry_delay, "SUPERVISOR_RETRY_DELAY") or 1.0)
        timeout = float(pick(args.timeout, "SUPERVISOR_TIMEOUT") or 5.0)
    except ValueError:
        raise ValueError("--retries, --retry-delay and --timeout take numbers") from None
    return KeyOptions(
        endpoint=endpoint.strip(),
        tls=_flag(pick(args.tls, "SUPERVISOR_TLS_ENABLE"), "--supervisor.tls", True),
        insecure=_flag(
            pick(args.insecure, "SUPERVISOR_TLS_INSECURE"), "--supervisor.tls.insecure", False
        ),
        ca_file=Path(ca) if ca else None,
        server_host_override=pick(args.server_host_override, "SUPERVISOR_SERVER_HOST_OVERRIDE"),
        retries=max(1, retries),
        retry_delay=max(0.0, delay),
        timeout=max(0.1, timeout),
    )


def safe_key_lines(text: str) -> list[str]:
    """The well-formed public key lines of an answer; KeysUnavailable if any line is not one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise KeysUnavailable("the supervisor sent no key")
    for line in lines:
        if not _KEY_LINE.fullmatch(line):
            raise KeysUnavailable("the supervisor sent something that is not a public key line")
    return lines


# --- fetching ----------------------------------------------------------------------------------


def _ssl_context(options: KeyOptions) -> ssl.SSLContext:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if options.ca_file is not None:
        try:
            context.load_verify_locations(str(options.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise KeysUnavailable(f"cannot read the CA file {options.ca_file}: {exc}") from None
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    return context


async def _fetch_once(options: KeyOptions, context: ssl.SSLContext | None) -> str:
    from grpclib.client import Channel
    from grpclib.config import Configuration

    from protos.supervisor.v1alpha1 import ssh_grpc, ssh_pb2

    config = Configuration(ssl_target_name_override=options.server_host_override)
    channel = Channel(options.host, options.port, ssl=context, config=config)
    try:
        reply = await ssh_grpc.SshAPIStub(channel).FetchAuthorizedKeys(
            ssh_pb2.FetchAuthorizedKeysRequest(), timeout=options.timeout
        )
    finally:
        channel.close()
    return str(reply.authorized_keys)


async def fetch_authorized_keys(options: KeyOptions) -> list[str]:
    """The supervisor's key lines, trying ``retries`` times ``retry_delay * attempt`` apart."""
    import h2.exceptions
    from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

    context = _ssl_context(options) if options.tls else None
    last = "no attempt"
    for attempt in range(1, options.retries + 1):
        try:
            return safe_key_lines(await _fetch_once(options, context))
        except GRPCError as exc:
            last = f"{exc.status.name}: {exc.message or ''}".rstrip(": ")
        except (
            OSError,  # refused, reset, timed out, TLS failures
            EOFError,
            ProtocolError,
            StreamTerminatedError,
            h2.exceptions.H2Error,
        ) as exc:
            last = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if attempt < options.retries:
            await asyncio.sleep(options.retry_delay * attempt)
    raise KeysUnavailable(f"{options.endpoint}: {last} (after {options.retries} attempts)")


# --- the command -------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``authorized-keys`` to the ``grid-supervisor`` command line."""
    parser = subparsers.add_parser(
        "authorized-keys",
        help="print the supervisor's SSH public key (for sshd's AuthorizedKeysCommand)",
        description="Fetch the supervisor's SSH public key over gRPC (SshAPI) and print it as an "
        "authorized_keys line: the AuthorizedKeysCommand of the SLURM login node's sshd.",
    )
    parser.add_argument("--supervisor.endpoint", dest="endpoint", metavar="HOST:PORT")
    parser.add_argument(
        "--supervisor.tls", dest="tls", nargs="?", const="true", metavar="BOOL", help="TLS (true)"
    )
    parser.add_argument(
        "--supervisor.tls.insecure",
        dest="insecure",
        nargs="?",
        const="true",
        metavar="BOOL",
        help="do not verify the supervisor's certificate (testing only)",
    )
    parser.add_argument("--supervisor.tls.ca", dest="ca_file", metavar="FILE", help="CA file")
    parser.add_argument(
        "--supervisor.tls.server-host-override",
        dest="server_host_override",
        metavar="NAME",
        help="the name to expect in the supervisor's certificate (default: the endpoint's host)",
    )
    parser.add_argument("--retries", metavar="N", help="attempts before giving up (3)")
    parser.add_argument("--retry-delay", metavar="SECONDS", help="backoff step (1 s)")
    parser.add_argument("--timeout", metavar="SECONDS", help="per attempt (5 s)")
    parser.add_argument("sshd_args", nargs="*", metavar="ARG", help="from sshd (%%u ...): ignored")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``authorized-keys`` handler."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        options = options_from(args, os.environ)
    except ValueError as exc:
        print(f"grid-supervisor authorized-keys: {exc}", file=err)
        return 2
    try:
        lines = asyncio.run(fetch_authorized_keys(options))
    except KeysUnavailable as exc:
        print(f"grid-supervisor authorized-keys: {exc}", file=err)
        return 1
    out.write("".join(f"{line}\n" for line in lines))
    out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cli.authorized_keys``: the same command alone."""
    parser = argparse.ArgumentParser(prog="grid-supervisor authorized-keys")
    register(parser.add_subparsers(dest="command"))
    args: Any = parser.parse_args(["authorized-keys", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
