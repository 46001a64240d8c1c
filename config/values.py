"""The value types a setting can have, and how each one is read from text.

A YAML file hands us typed scalars (``true``, ``3000``), the environment and the command line hand
us strings; every parser here accepts both and either returns the value or raises ``ValueError``
with what was *expected* (``"an integer string in wei"``). The loader adds the setting's path and,
unless the setting is a secret, the offending value.

The small ``str`` and ``int`` subclasses (``Wei``, ``EthAddress``, ``HostPort`` ...) are plain
values at run time; their class tells the loader which parser to use, and the reader what they
hold.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import string
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

#: Reads one raw value (from YAML, the environment or a flag) or raises ``ValueError(expected)``.
Parser = Callable[[object], object]

UINT256_LIMIT = 2**256
#: Order of the secp256k1 group: a wallet key is an integer in [1, n-1].
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class Secret:
    """A secret string (a private key). Its ``repr`` and ``str`` never show the value.

    Call ``reveal()`` at the single place that needs the secret itself.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))


class Wei(int):
    """A non-negative amount in wei (10^-18 credit) that fits a ``uint256``."""


class EthAddress(str):
    """A 20-byte account address, kept in its EIP-55 checksum spelling."""


class HostPort(str):
    """``host:port`` (``[v6]:port`` for IPv6 literals), port in 1..65535."""

    @property
    def host(self) -> str:
        return split_host_port(self)[0]

    @property
    def port(self) -> int:
        return split_host_port(self)[1]


class ListenAddress(HostPort):
    """An address to listen on: ``host:port``; ``:3000`` means every interface; port 0 picks one."""


class SshAddress(HostPort):
    """The SSH server of the SLURM login node: ``host`` or ``host:port`` (port 22 if omitted)."""


class HttpUrl(str):
    """An ``http://`` or ``https://`` URL."""


class WsUrl(str):
    """A ``ws://`` or ``wss://`` URL."""


class GasLimit(str):
    """A transaction's gas limit: ``estimate`` (the simulation's estimate plus a margin) or a
    fixed whole number of gas (``"20000000"``, as the Go supervisor sends)."""

    @property
    def fixed(self) -> int | None:
        """The fixed limit, or None for ``estimate``."""
        return None if self == GAS_ESTIMATE else int(self)


GAS_ESTIMATE = "estimate"
#: The least gas any transaction burns (a plain transfer).
MIN_GAS_LIMIT = 21_000


# --------------------------------------------------------------------------- scalar parsers


def parse_str(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    raise ValueError("expected a string")


def parse_nonempty_str(raw: object) -> str:
    text = parse_str(raw)
    if not text.strip():
        raise ValueError("expected a non-empty string")
    return text


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError("expected true or false")


MAX_INT_DIGITS = 30
"""No integer setting needs more digits (prices, in wei, have their own parser)."""


def parse_int(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"-?[0-9]+", raw.strip()):
        if len(raw.strip().lstrip("-")) > MAX_INT_DIGITS:
            raise ValueError(f"expected an integer of at most {MAX_INT_DIGITS} digits")
        value = int(raw.strip())
    else:
        raise ValueError("expected an integer")
    if abs(value) >= 10**MAX_INT_DIGITS:
        raise ValueError(f"expected an integer of at most {MAX_INT_DIGITS} digits")
    return value


def parse_wei(raw: object) -> Wei:
    """A price: a decimal integer (quoted in YAML, though a bare YAML integer is accepted too)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"[0-9]{1,78}", raw.strip()):  # 2**256 has 78
        value = int(raw.strip())
    else:
        raise ValueError("expected an integer string in wei")
    if not 0 <= value < UINT256_LIMIT:
        raise ValueError("expected an integer string in wei between 0 and 2**256-1")
    return Wei(value)


def parse_gas_limit(raw: object) -> GasLimit:
    """``estimate``, or a whole number of gas of at least 21000 (a YAML integer or digits)."""
    expected = f"expected {GAS_ESTIMATE} or a whole number of gas of at least {MIN_GAS_LIMIT}"
    if isinstance(raw, str) and raw.strip().lower() == GAS_ESTIMATE:
        return GasLimit(GAS_ESTIMATE)
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"[0-9]{1,19}", raw.strip().replace("_", "")):
        value = int(raw.strip().replace("_", ""))
    else:
        raise ValueError(expected)
    if not MIN_GAS_LIMIT <= value < 2**63:
        raise ValueError(expected)
    return GasLimit(str(value))


MAX_PATH_BYTES = 4095  # PATH_MAX, less the NUL
MAX_NAME_BYTES = 255  # NAME_MAX: one folder or file name


def parse_path(raw: object) -> Path:
    """A path: text the system can take (no NUL, no lone surrogate, names of at most 255
    bytes), ``~`` and ``~user`` expanded (an unknown user is an error, not a crash)."""
    text = parse_nonempty_str(raw)
    if "\0" in text:
        raise ValueError("expected a path without NUL bytes")
    if any("\ud800" <= char <= "\udfff" for char in text):
        raise ValueError("expected a path of UTF-8 text (it holds a lone surrogate)")
    if text.startswith("~"):
        user = text[1:].split("/", 1)[0]
        try:
            path = Path(text).expanduser()
        except RuntimeError:
            who = f"user {user!r}" if user else "the home folder"
            raise ValueError(f"expected a path whose ~ can be expanded (no {who})") from None
    else:
        path = Path(text)
    encoded = os.fsencode(path)
    if len(encoded) > MAX_PATH_BYTES:
        raise ValueError(f"expected a path of at most {MAX_PATH_BYTES} bytes")
    if any(len(name) > MAX_NAME_BYTES for name in encoded.split(b"/")):
        raise ValueError(f"expected folder and file names of at most {MAX_NAME_BYTES} bytes")
    return path


def parse_secret(raw: object) -> Secret:
    if isinstance(raw, str) and raw.strip():
        return Secret(raw.strip())
    raise ValueError("expected a non-empty string")


REDACTED = "<redacted>"
"""How a secret that is set shows."""


def plain_value(value: object) -> object:
    """A value as YAML/JSON holds it: prices as strings, durations as ``24h``, paths as text,
    lists for tuples; a secret as ``<redacted>``."""
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Wei):
        return str(int(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path | str):
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain_value(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [plain_value(item) for item in value]
    raise TypeError(f"cannot show a {type(value).__name__}")


# --------------------------------------------------------------------------- addresses


def split_host_port(text: str) -> tuple[str, int]:
    """``"[::1]:22"`` -> ``("::1", 22)``; ``"login:22"`` -> ``("login", 22)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port):
        raise ValueError("expected host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _check_host(host: str, *, allow_empty: bool) -> None:
    if not host and allow_empty:
        return
    if ":" in host:  # an IPv6 literal; it came between brackets
        if not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise ValueError("expected an IPv6 literal between brackets")
        return
    if not _HOST.fullmatch(host):
        raise ValueError("expected a host name or IP address before the port")


def _format_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_port(raw: object, *, expected: str, min_port: int) -> tuple[str, int]:
    text = parse_str(raw).strip()
    try:
        host, port = split_host_port(text)
    except ValueError:
        raise ValueError(f"expected {expected}") from None
    if text.startswith("[") != (":" in host):
        raise ValueError(f"expected {expected} (an IPv6 host goes between brackets)")
    _check_host(host, allow_empty=min_port == 0)
    if not min_port <= port <= 65535:
        raise ValueError(f"expected {expected} with a port in {min_port}..65535")
    return host, port


def parse_host_port(raw: object) -> HostPort:
    host, port = _host_port(raw, expected="host:port", min_port=1)
    return HostPort(_format_host_port(host, port))


def parse_listen_address(raw: object) -> ListenAddress:
    """``":3000"`` listens on every interface and is spelt ``0.0.0.0:3000``."""
    host, port = _host_port(raw, expected="host:port to listen on", min_port=0)
    return ListenAddress(_format_host_port(host or "0.0.0.0", port))


def parse_ssh_address(raw: object) -> SshAddress:
    text = parse_str(raw).strip()
    bare_v6 = text.startswith("[") and text.endswith("]")
    if bare_v6 or (":" not in text):
        text = f"{text}:22"
    host, port = _host_port(text, expected="host or host:port", min_port=1)
    return SshAddress(_format_host_port(host, port))


def _keccak256(data: bytes) -> bytes:
    from eth_hash.auto import keccak  # a small import, and only when an address is mixed-case

    digest: bytes = keccak(data)
    return digest


def to_checksum_address(hex40: str) -> str:
    """EIP-55: uppercase the hex letters whose keccak nibble of the lowercase address is >= 8."""
    lower = hex40.lower()
    digest = _keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if int(digest[i], 16) >= 8 else char for i, char in enumerate(lower)
    )


def parse_eth_address(raw: object) -> EthAddress:
    """A 0x address: all lowercase (or uppercase), or mixed case with a valid EIP-55 checksum."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", text):
        raise ValueError("expected a 0x-prefixed 20-byte hex address")
    digits = text[2:]
    checksummed = to_checksum_address(digits)
    if digits not in (digits.lower(), digits.upper()) and text != checksummed:
        raise ValueError("expected a valid EIP-55 checksum address (or write it all lowercase)")
    return EthAddress(checksummed)


def _url(raw: object, schemes: tuple[str, ...]) -> str:
    expected = "expected a " + " or ".join(f"{scheme}://" for scheme in schemes) + " URL"
    text = parse_str(raw).strip()
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(expected)
    return text


def parse_http_url(raw: object) -> HttpUrl:
    return HttpUrl(_url(raw, ("http", "https")))


def parse_ws_url(raw: object) -> WsUrl:
    if isinstance(raw, str) and urlsplit(raw.strip()).scheme in ("http", "https"):
        raise ValueError("expected a ws:// or wss:// URL (write wss:// where you wrote https://)")
    return WsUrl(_url(raw, ("ws", "wss")))


# --------------------------------------------------------------------------- durations

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"([0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(ns|us|µs|ms|s|m|h|d)")
MAX_DURATION = timedelta(days=100 * 365)
"""A century: longer durations are typing mistakes (and overflow ``timedelta``)."""


def parse_duration(raw: object) -> timedelta:
    """A Go-style duration: ``24h``, ``1h30m``, ``90s``, ``1.5h`` (plus ``d`` for days); ``0``;
    at most :data:`MAX_DURATION`."""
    expected = "expected a duration such as 24h, 1h30m or 90s"
    text = raw.strip() if isinstance(raw, str) else ""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw == 0:
        text = "0"
    if text == "0":
        return timedelta(0)
    if not text:
        raise ValueError(expected)
    position, seconds = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ValueError(expected)
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"expected a duration of at most {MAX_DURATION.days}d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest Go-style spelling: ``timedelta(hours=24)`` -> ``"24h"``, 90 s -> ``"1m30s"``."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    whole = int(total)
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = total - whole
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or fraction:
        parts.append(f"{seconds + fraction:g}s")
    return "".join(parts)


# --------------------------------------------------------------------------- key material


def parse_wallet_key(text: str) -> bytes:
    """A wallet private key: 32 bytes as 64 hex digits, ``0x`` optional, a valid secp256k1 scalar.

    The ``ValueError`` it raises never contains the text.
    """
    digits = text.strip()
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    if not re.fullmatch(r"[0-9a-fA-F]{64}", digits):
        raise ValueError("expected 32 bytes written as 64 hex digits (0x optional)")
    key = bytes.fromhex(digits)
    if not 0 < int.from_bytes(key, "big") < SECP256K1_ORDER:
        raise ValueError("expected a private key in the secp256k1 range")
    return key


def decode_base64(text: str) -> bytes:
    """Standard base64 (padding and line breaks tolerated); the error never repeats the text."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected base64 text") from None


# --------------------------------------------------------------------------- mappings


def parse_mapping(raw: object) -> dict[str, str]:
    """``{k: v}`` from YAML, ``"k=v,k2=v2"`` from the environment, ``["k=v", ...]`` from flags."""
    if isinstance(raw, dict):
        result: dict[str, str] = {}
        for key, value in raw.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise ValueError("expected a mapping of text keys to text values")  # noqa: TRY004
            result[str(key)] = _scalar_text(value)
        return result
    if isinstance(raw, str):
        items = [item for item in raw.split(",") if item.strip()]
    elif isinstance(raw, list):
        items = [parse_str(item) for item in raw]
    else:
        raise ValueError("expected a mapping of keys to values")  # noqa: TRY004
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError("expected key=value entries")
        result[key.strip()] = value.strip()
    return result


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 256:
        raise ValueError("expected a mapping of keys to text values (not a huge number)")
    if isinstance(value, str | int | float):
        return str(value)
    if value is None:
        return ""
    raise ValueError("expected a mapping of keys to text values")


_LABEL_PART = re.compile(r"[a-zA-Z0-9._]([-a-zA-Z0-9._]*[a-zA-Z0-9._])?")


def normalise_label(text: str) -> str:
    """The grid's label spelling: lowercase, runs of other characters become one ``-``.

    ``"my_invalid-label123!"`` -> ``"my_invalid-label123"``; ``".a@b#c"`` -> ``".a-b-c"``.
    """
    return "-".join(match.group(0) for match in _LABEL_PART.finditer(text)).lower()


def normalise_labels(labels: object) -> dict[str, str]:
    """Apply ``normalise_label`` to every key and value; a key that normalises to nothing is bad."""
    assert isinstance(labels, dict)
    result: dict[str, str] = {}
    for key, value in labels.items():
        clean_key = normalise_label(key)
        if not clean_key:
            raise ValueError(f"expected label keys made of [a-z0-9._-], got {key!r}")
        result[clean_key] = normalise_label(value)
    return result


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_env_names(env: object) -> dict[str, str]:
    assert isinstance(env, dict)
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(
                f"expected environment variable names ([A-Za-z_][A-Za-z0-9_]*), got {name!r}"
            )
    return env


_UNIX_USER = re.compile(r"[a-z0-9_][a-z0-9_.-]*\$?")


_PARTITION = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def check_partition(raw: object) -> object:
    """A SLURM partition name as the SLURM adapter can put it on a command line."""
    if not isinstance(raw, str) or not _PARTITION.fullmatch(raw):
        raise ValueError("expected a SLURM partition name ([A-Za-z0-9_.-]+)")
    return raw


def check_unix_user(raw: object) -> object:
    if not isinstance(raw, str) or not _UNIX_USER.fullmatch(raw):
        raise ValueError("expected a UNIX user name ([a-z0-9_][a-z0-9_.-]*)")
    return raw


def normalise_user_map(users: object) -> dict[str, str]:
    """``{customer address: UNIX user}``, keyed by the lowercase 0x address."""
    assert isinstance(users, dict)
    result: dict[str, str] = {}
    for address, user in users.items():
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", address.strip()):
            raise ValueError(f"expected 0x addresses as keys, got {address!r}")
        if not _UNIX_USER.fullmatch(user):
            raise ValueError(f"expected UNIX user names as values, got {user!r}")
        result[address.strip().lower()] = user
    return result


#: The placeholders a customer-user template may use.
USER_TEMPLATE_FIELDS = ("address", "hex")


def _template_parts(template: str) -> list[tuple[str, str | None]]:
    """``(literal text, placeholder or None)`` pairs of a customer-user template; ValueError for
    anything but plain ``{address}`` and ``{hex}`` (no ``.attribute``, ``[index]``, ``!r`` or
    ``:format``: those reach into Python objects or cut the address short)."""
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if field is not None and (field not in USER_TEMPLATE_FIELDS or spec or conversion):
            raise ValueError(f"{{{field}}} is not a placeholder")
        parts.append((literal, field))
    return parts


def render_user_template(template: str, customer: str) -> str:
    """``{address}`` is the lowercase 0x address, ``{hex}`` the same without ``0x``."""
    lower = customer.lower()
    values = {"address": lower, "hex": lower.removeprefix("0x")}
    return "".join(
        literal + (values[field] if field else "") for literal, field in _template_parts(template)
    )


def check_user_template(raw: object) -> object:
    """A template that gives every customer a UNIX user name of its own: only ``{address}`` and
    ``{hex}``, at least one of them (``root`` or ``{address:.2}`` would run every customer's
    jobs as one user)."""
    assert isinstance(raw, str)
    expected = "expected a template using only {address} and {hex}, giving a UNIX user name"
    try:
        parts = _template_parts(raw)
    except ValueError:
        raise ValueError(expected) from None
    if not any(field for _, field in parts):
        raise ValueError(
            "expected a template with {address} or {hex}: without one, every customer's jobs "
            "run as the same UNIX user"
        )
    samples = {render_user_template(raw, "0x" + digit * 40) for digit in "0123456789abcdef"}
    if len(samples) != 16 or not all(_UNIX_USER.fullmatch(sample) for sample in samples):
        raise ValueError(expected)
    return raw


def at_least_one_minute(raw: object) -> object:
    assert isinstance(raw, timedelta)
    if raw < timedelta(minutes=1):
        raise ValueError("expected a duration of at least 1m")
    return raw


def positive_duration(raw: object) -> object:
    assert isinstance(raw, timedelta)
    if raw <= timedelta(0):
        raise ValueError("expected a duration longer than 0, such as 30s or 10m")
    return raw


def int_between(low: int, high: int | None = None) -> Callable[[object], object]:
    """A check for an integer setting: at least ``low`` and, if given, at most ``high``."""
    expected = f"expected an integer of at least {low}"
    if high is not None:
        expected = f"expected an integer from {low} to {high}"

    def check(raw: object) -> object:
        assert isinstance(raw, int)
        if raw < low or (high is not None and raw > high):
            raise ValueError(expected)
        return raw

    return check


def absolute_path(raw: object) -> object:
    """A folder on the SLURM nodes: it must not depend on where a command happens to run."""
    assert isinstance(raw, Path)
    if not raw.is_absolute():
        raise ValueError("expected an absolute path (starting with /)")
    return raw


def check_wallet_key(raw: object) -> object:
    """A ``Secret`` holding a wallet key; the error never repeats it."""
    assert isinstance(raw, Secret)
    parse_wallet_key(raw.reveal())
    return raw


def check_base64_secret(raw: object) -> object:
    assert isinstance(raw, Secret)
    decode_base64(raw.reveal())
    return raw


# --------------------------------------------------------------------------- address lists


def parse_text_list(raw: object) -> tuple[str, ...]:
    """A list of words: a YAML list, or one text of words separated by commas or spaces (from
    the environment or a flag)."""
    if isinstance(raw, str):
        items = raw.replace(",", " ").split()
    elif isinstance(raw, list):
        items = []
        for item in raw:
            if not isinstance(item, str):
                raise ValueError("expected a list of texts")  # noqa: TRY004
            items.append(item.strip())
    else:
        raise ValueError("expected a list")  # noqa: TRY004
    return tuple(item for item in items if item)


def check_cidrs(raw: object) -> object:
    """Every entry an IP address or a CIDR (``10.0.0.0/24``, ``127.0.0.1``, ``::1/128``), written
    back in its canonical form; at least one."""
    import ipaddress

    if not isinstance(raw, tuple) or not raw:
        raise ValueError("expected at least one IP address or CIDR")
    canonical = []
    for item in raw:
        try:
            canonical.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            raise ValueError(
                f"expected IP addresses or CIDRs such as 10.0.0.0/24, not {str(item)[:60]!r}"
            ) from None
    return tuple(canonical)
