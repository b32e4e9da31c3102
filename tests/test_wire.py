"""One spelling of a DTLS version on every command, the old ones still accepted.

``mtu`` took ``0x0100``/``1.0``/``1.2`` while ``craft`` and ``probe`` took ``dtls1.0``/``dtls1.2``:
now each takes any of them (and the wire code, ``0xfefd``), and what they print and build is
the same whatever the spelling. tshark judges the crafted versions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import mtu
from labkit.commands.probe import _dtls_hello
from labkit.errors import UsageError
from labkit.wire import (
    DTLS1_2_VERSION,
    DTLS1_3_VERSION,
    DTLS1_BAD_VER,
    DTLS1_VERSION,
    DTLS_VERSION_NAMES,
    parse_dtls_version,
)
from tests.helpers.cli import labkit
from tests.helpers.tshark import requires_tshark, tshark_fields

SPELLINGS = {
    DTLS1_BAD_VER: ("0x0100", "dtls0x0100"),
    DTLS1_VERSION: ("1.0", "dtls1.0", "DTLS1.0", "0xfeff", "0xFEFF", " 1.0 "),
    DTLS1_2_VERSION: ("1.2", "dtls1.2", "DTLS 1.2", "0xfefd"),
    DTLS1_3_VERSION: ("1.3", "dtls1.3", "0xfefc"),
}


@pytest.mark.parametrize(("code", "text"), [(c, t) for c, ts in SPELLINGS.items() for t in ts])
def test_every_spelling_names_its_version(code: int, text: str) -> None:
    assert parse_dtls_version(text) == code


@pytest.mark.parametrize("text", ["", "1.1", "2.0", "dtls", "0xfefe", "256", "1", "tls1.2"])
def test_other_text_names_no_version(text: str) -> None:
    assert parse_dtls_version(text) is None


def test_the_printed_spelling_reads_back_and_is_the_models() -> None:
    assert {parse_dtls_version(name): name for name in DTLS_VERSION_NAMES.values()} == dict(
        DTLS_VERSION_NAMES
    )
    assert set(mtu.DTLS_VERSIONS) <= set(DTLS_VERSION_NAMES.values())


@pytest.mark.parametrize("old", ["dtls1.2", "0xfefd"])
def test_mtu_takes_the_old_spellings_and_prints_one(old: str) -> None:
    docs = []
    for spelling in ("1.2", old):
        proc = labkit("mtu", "--format", "json", "--dtls-version", spelling)
        docs.append(json.loads(proc.stdout))
        # Exit 1 when the prediction is a mismatch, as for every command that finds a problem.
        assert proc.returncode == (1 if docs[-1]["mismatch"] else 0), proc.stderr
    assert docs[0] == docs[1]
    assert docs[1]["config"]["dtls_version"] == "1.2"


def test_mtu_refuses_an_unknown_version_with_the_list() -> None:
    proc = labkit("mtu", "--dtls-version", "dtls1.1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "'0x0100', '1.0', '1.2'" in proc.stderr


@requires_tshark
@pytest.mark.parametrize("spellings", [("1.0", "dtls1.0", "0xfeff"), ("1.2", "dtls1.2", "0xFEFD")])
def test_craft_builds_the_same_hello_whatever_the_spelling(
    tmp_path: Path, spellings: tuple[str, ...]
) -> None:
    files = []
    for i, spelling in enumerate(spellings):
        out = tmp_path / f"hello-{i}.pcap"
        proc = labkit("craft", "dtls-hello", "--version", spelling, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        files.append(out.read_bytes())
    assert files[1:] == files[:-1]
    code = parse_dtls_version(spellings[0])
    rows = tshark_fields(
        tmp_path / "hello-0.pcap",
        "dtls",
        "dtls.handshake.version",
        extra=("-d", "udp.port==443,dtls"),
    )
    assert rows == [[f"0x{code:04x}"]]


def test_craft_and_probe_refuse_a_version_they_cannot_build() -> None:
    proc = labkit("craft", "dtls-hello", "--version", "1.3")
    assert proc.returncode == 2
    assert "DTLS version '1.3': expected one of 0x0100, 1.0, 1.2" in proc.stderr
    with pytest.raises(UsageError, match="expected one of 0x0100, 1.0, 1.2"):
        _dtls_hello("dtls1.3", None)


@pytest.mark.parametrize("spellings", [("0x0100",), ("1.2", "dtls1.2", "0xfefd")])
def test_probe_hello_has_the_version_whatever_the_spelling(spellings: tuple[str, ...]) -> None:
    """The probe's hello (built before any packet is sent) carries the named version in its
    record and ClientHello headers (bytes 1-2 and 25-26 of the UDP payload), and only the
    legacy hello resumes a session (a 32-byte session id)."""
    code = parse_dtls_version(spellings[0])
    for spelling in spellings:
        hello = _dtls_hello(spelling, None)
        assert int.from_bytes(hello[1:3], "big") == code
        assert int.from_bytes(hello[25:27], "big") == code
        assert hello[59] == (32 if code == DTLS1_BAD_VER else 0)  # session id length
