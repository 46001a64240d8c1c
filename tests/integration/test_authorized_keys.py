"""``grid-supervisor authorized-keys`` as sshd's AuthorizedKeysCommand, end to end.

A private sshd (own port, own config and host key; the testbed's sshd is not touched) is set up
the way a login node would be: ``AuthorizedKeysFile none`` (no user's authorized_keys file is
read at all), and ``AuthorizedKeysCommand`` pointing at a root-owned wrapper under
``/usr/local/libexec`` that runs the BUILT binary's ``authorized-keys`` against a real
CallbackServerActor over TLS (its own CA). A customer UNIX user of the testbed then logs in with
the key the callback server serves, and cannot with any other key, nor once the server is gone.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio_asyncio

from actors.callbacks import CallbackServerActor
from cli import authorized_keys as akc
from runtime import ChildSpec, Supervisor
from runtime.store import open_store
from testbed.env import TestbedEnv
from testbed.tls import TlsFiles, ensure_tls
from tests.integration.binary import built_binary

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def public_fields(key: Path) -> list[str]:
    """``[type, base64]`` of the public half of ``key`` (its ``.pub`` file, comment left out)."""
    return Path(f"{key}.pub").read_text().split()[:2]


class Callbacks:
    def __init__(self, actor: CallbackServerActor, root: Supervisor) -> None:
        self.actor = actor
        self.root = root


@asynccontextmanager
async def serve_callbacks(folder: Path, key: bytes, tls: TlsFiles) -> AsyncIterator[Callbacks]:
    async with open_store(folder / "state") as store:

        def server() -> CallbackServerActor:
            return CallbackServerActor(
                listen_host=HOST,
                listen_port=0,
                ssh_private_key=key,
                store=store,
                tls_cert_file=tls.server_cert,
                tls_key_file=tls.server_key,
            )

        root = Supervisor("root", [ChildSpec("callbacks", server)])
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            actor = root.registry.whereis("callbacks")
            assert isinstance(actor, CallbackServerActor)
            try:
                yield Callbacks(actor, root)
            finally:
                root.request_stop()


class Sshd:
    """A private sshd whose only way to accept a key is the AuthorizedKeysCommand wrapper."""

    def __init__(self, folder: Path, binary: Path, tls: TlsFiles, callback_port: int) -> None:
        self.port = free_port()
        self.libexec = Path("/usr/local/libexec") / f"grid-supervisor-test-{uuid.uuid4().hex[:8]}"
        self.libexec.mkdir(mode=0o755, parents=True)
        os.chmod(self.libexec.parent, 0o755)
        ca = self.libexec / "ca.pem"
        shutil.copyfile(tls.ca_cert, ca)
        ca.chmod(0o644)
        wrapper = self.libexec / "authorized-keys"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"exec {binary} authorized-keys --supervisor.endpoint {HOST}:{callback_port} "
            f'--supervisor.tls.ca {ca} --retries 2 --retry-delay 0.2 "$@"\n'
        )
        wrapper.chmod(0o755)
        host_key = keygen(folder / "host_ed25519")
        self.log = folder / "sshd.log"
        config = folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {HOST}\n"
            f"HostKey {host_key}\n"
            "PidFile none\n"
            "AuthorizedKeysFile none\n"
            f"AuthorizedKeysCommand {wrapper} %u %f %t\n"
            "AuthorizedKeysCommandUser nobody\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes yes\n"
            "LogLevel VERBOSE\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        subprocess.run(["/usr/sbin/sshd", "-t", "-f", str(config)], check=True)
        self.process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(self.log)]
        )

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.libexec, ignore_errors=True)


async def login(port: int, user: str, key: Path) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            f"{user}@{HOST}",
            "id -un",
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def wait_listening(port: int) -> None:
    with trio.fail_after(10):
        while True:
            try:
                stream = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


@pytest.fixture
def customer(testbed_env: TestbedEnv) -> str:
    return testbed_env.customer(0).unix_user


@pytest.fixture(scope="module")
def binary() -> Path:
    return built_binary()


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return ensure_tls(tmp_path / "tls")


@pytest.fixture
def sshd_factory(tmp_path: Path) -> Iterator[list[Sshd]]:
    started: list[Sshd] = []
    yield started
    for server in started:
        server.close()


async def test_login_as_a_customer_with_the_key_the_supervisor_serves(
    tmp_path: Path,
    binary: Path,
    tls: TlsFiles,
    customer: str,
    sshd_factory: list[Sshd],
    asyncio_loop: trio_asyncio.TrioEventLoop,
) -> None:
    supervisor_key = keygen(tmp_path / "supervisor_ed25519")
    stranger_key = keygen(tmp_path / "stranger_ed25519")
    async with serve_callbacks(tmp_path, supervisor_key.read_bytes(), tls) as callbacks:
        sshd = Sshd(tmp_path, binary, tls, callbacks.actor.port)
        sshd_factory.append(sshd)
        await wait_listening(sshd.port)

        accepted = await login(sshd.port, customer, supervisor_key)
        assert accepted.returncode == 0, (accepted.stderr, sshd.log.read_text()[-2000:])
        assert accepted.stdout.decode().strip() == customer

        refused = await login(sshd.port, customer, stranger_key)
        assert refused.returncode == 255
        assert b"Permission denied" in refused.stderr

    # No supervisor answering: the command fails (exit 1), sshd accepts no key at all.
    gone = await login(sshd.port, customer, supervisor_key)
    assert gone.returncode == 255
    assert "AuthorizedKeysCommand" in sshd.log.read_text()


async def test_the_command_prints_the_line_and_checks_tls(
    tmp_path: Path,
    binary: Path,
    tls: TlsFiles,
    asyncio_loop: trio_asyncio.TrioEventLoop,
) -> None:
    supervisor_key = keygen(tmp_path / "supervisor_ed25519")
    public = public_fields(supervisor_key)
    async with serve_callbacks(tmp_path, supervisor_key.read_bytes(), tls) as callbacks:
        endpoint = f"{HOST}:{callbacks.actor.port}"
        ok = await trio.run_process(
            [binary, "authorized-keys", "--supervisor.endpoint", endpoint,
             "--supervisor.tls.ca", str(tls.ca_cert), "someuser"],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.decode().split() == public  # exactly one line, the public key

        # Without the CA the certificate cannot be verified ...
        untrusted = await trio.run_process(
            [binary, "authorized-keys", "--supervisor.endpoint", endpoint, "--retries", "1"],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert untrusted.returncode == 1 and untrusted.stdout == b""
        # ... unless told to skip the check (the Go tool's --supervisor.tls.insecure), from the
        # environment this time, as the Go tool's variables.
        insecure = await trio.run_process(
            [binary, "authorized-keys"],
            env=dict(
                os.environ, SUPERVISOR_ENDPOINT=endpoint, SUPERVISOR_TLS_INSECURE="true"
            ),
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert insecure.returncode == 0, insecure.stderr
        assert insecure.stdout.decode().split() == public
        # The certificate names 127.0.0.1 and localhost: another expected name fails.
        wrong_name = await trio.run_process(
            [binary, "authorized-keys", "--supervisor.endpoint", endpoint,
             "--supervisor.tls.ca", str(tls.ca_cert),
             "--supervisor.tls.server-host-override", "supervisor.example.com",
             "--retries", "1"],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert wrong_name.returncode == 1
        matching_name = await trio.run_process(
            [binary, "authorized-keys", "--supervisor.endpoint", endpoint,
             "--supervisor.tls.ca", str(tls.ca_cert),
             "--supervisor.tls.server-host-override", "localhost"],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
        assert matching_name.returncode == 0, matching_name.stderr

    # Nobody listens: retries, then exit 1 with a message on stderr only.
    options = akc.KeyOptions(endpoint=endpoint, tls=False, retries=3, retry_delay=0.1, timeout=1)
    began = trio.current_time()
    with pytest.raises(akc.KeysUnavailable, match="after 3 attempts"):
        await trio_asyncio.aio_as_trio(akc.fetch_authorized_keys)(options)
    assert trio.current_time() - began >= 0.3  # 0.1 + 0.2 of linear backoff
