"""The customer's log and lastError: sanitised (no secret, no operator path or address), bounded,
and ending with what to do (actors.customer_log); the grid logger's URL forms."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.customer_log import (
    ADVICE,
    HIDDEN_HOST,
    HIDDEN_PATH,
    MAX_LAST_ERROR,
    MAX_LINE,
    MAX_LINES,
    REDACTED,
    Failure,
    bounded,
    last_error,
    log_lines,
    sanitise,
)
from actors.grid_logger import logger_endpoint

JOB = "0x" + "5a" * 32
KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"[:64]
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"signing with {KEY} failed", KEY),
        (f"key {KEY[2:]} refused", KEY[2:]),
        (f"loaded {PEM} ok", "b3BlbnNzaC1rZXktdjEAAAAA"),
        ("dial https://admin:hunter2@rpc.example.org/x", "hunter2"),
        ("SLURM_PASSWORD=hunter2 set", "hunter2"),
        ("eth_private_key: 'abc def'", "abc def"),
        ("api-token=Zm9vYmFy", "Zm9vYmFy"),
        ("blob " + "QUJD" * 20, "QUJD" * 20),
    ],
)
def test_secrets_never_reach_the_customer(text: str, secret: str) -> None:
    cleaned = sanitise(text, keep=(JOB,))
    assert secret not in cleaned and REDACTED in cleaned
    assert secret not in last_error(text, Failure.SUBMISSION, keep=(JOB,))
    assert all(secret not in line for line in log_lines(text, keep=(JOB,)))


@pytest.mark.parametrize(
    ("text", "hidden", "marker"),
    [
        ("sbatch: error: cannot open /home/slurm/.ssh/id_ed25519", "/home/slurm", HIDDEN_PATH),
        ("chdir to ~/jobs/x failed", "~/jobs", HIDDEN_PATH),
        ("sbatch service 10.1.2.3:443 unreachable", "10.1.2.3", HIDDEN_HOST),
        ("dial [fd00::1]:8080 refused", "fd00::1", HIDDEN_HOST),
    ],
)
def test_operator_paths_and_addresses_are_hidden(text: str, hidden: str, marker: str) -> None:
    cleaned = sanitise(text)
    assert hidden not in cleaned and marker in cleaned


def test_what_the_customer_wrote_and_the_job_id_stay() -> None:
    text = f"sbatch service refused job {JOB} (script '../../etc/passwd'): INVALID_ARGUMENT"
    assert sanitise(text, keep=(JOB,)) == text
    assert sanitise(text.upper(), keep=(JOB,)) == text.upper()  # the id in any case
    assert JOB not in sanitise(text)  # not kept: 64 hex digits look like a key


def test_control_characters_are_escaped_and_lines_split() -> None:
    assert sanitise("a\x1b[31mb\rc\x00") == "a\\x1b[31mb\\x0dc\\x00"
    assert log_lines("one\r\n\n  \ttwo\t\n") == ("one", "   two")  # a tab is a space


def test_last_error_is_one_line_with_what_to_do() -> None:
    error = last_error(
        "sbatch: error: Batch job submission failed\nInvalid account", Failure.SUBMISSION
    )
    assert error == (
        "sbatch: error: Batch job submission failed | Invalid account; "
        + ADVICE[Failure.SUBMISSION]
    )
    assert last_error("", Failure.DEFINITION) == f"no reason given; {ADVICE[Failure.DEFINITION]}"


def test_every_failure_has_advice() -> None:
    assert set(ADVICE) == set(Failure)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=5000), st.sampled_from(list(Failure)))
def test_last_error_is_bounded_and_keeps_its_advice(reason: str, failure: Failure) -> None:
    error = last_error(reason, failure, keep=(JOB,))
    assert len(error.encode("utf-8")) <= MAX_LAST_ERROR
    assert error.endswith(ADVICE[failure]) and "\n" not in error
    assert all(char.isprintable() for char in error)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000) | st.lists(st.text(max_size=2000), max_size=80).map("\n".join))
def test_log_lines_are_bounded(message: str) -> None:
    lines = log_lines(message, keep=(JOB,))
    assert len(lines) <= MAX_LINES
    for line in lines:
        assert 0 < len(line.encode("utf-8")) <= MAX_LINE and line.strip()
        assert "\n" not in line and all(char.isprintable() for char in line)


def test_many_lines_say_how_many_were_left_out() -> None:
    lines = log_lines("\n".join(f"line {n}" for n in range(100)))
    assert len(lines) == MAX_LINES
    assert lines[-1] == f"... {100 - MAX_LINES + 1} more lines left out"


def test_bounded_never_cuts_a_character() -> None:
    assert bounded("é" * 10, 7) == "éé..."
    assert bounded("short", 7) == "short"


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("grid-logger.deepsquare.run:443", ("grid-logger.deepsquare.run", 443)),
        ("https://grid-logger.deepsquare.run:443/", ("grid-logger.deepsquare.run", 443)),
        ("dns:///127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_logger_endpoint(url: str, endpoint: tuple[str, int]) -> None:
    assert logger_endpoint(url) == endpoint


@pytest.mark.parametrize("url", ["", "grid-logger", "host:0", "host:99999", "https://"])
def test_a_logger_url_naming_no_endpoint_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        logger_endpoint(url)
