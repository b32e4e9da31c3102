"""ASA syslog and DART parsers on literal lines and on the seed's sample logs (tests/data)."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from labkit.logs.dart import DartParser, classify, parse_dart
from labkit.logs.syslog import LargePacket, PmtudPacket, SessionEvent, SyslogParser, parse_syslog
from labkit.logs.timestamps import iso_epoch

DATA = Path(__file__).parent / "data"
SEED_DAY = calendar.timegm((2022, 11, 16, 0, 0, 0))
WHO = "Group <ac_users_group> User <vpn> IP <10.1.75.111>"


def _at(hms: str) -> float:
    h, m, s = (int(x) for x in hms.split(":"))
    return SEED_DAY + h * 3600 + m * 60 + s


# ---------------------------------------------------------------------- syslog


def test_the_tech_notes_722036_line_verbatim():
    e = SyslogParser().feed(
        f"%ASA-6-722036: {WHO} Transmitting large packet 1418 (threshold 1347)."
    )
    assert isinstance(e, LargePacket)
    assert (e.size, e.threshold, e.direction, e.group, e.user, e.ip) == (
        1418,
        1347,
        "to-client",
        "ac_users_group",
        "vpn",
        "10.1.75.111",
    )
    assert e.time is None  # no timestamp on the line


def test_guide_template_without_angle_brackets_and_722035():
    e = SyslogParser().feed(
        "%ASA-3-722035: Group g User u IP 1.2.3.4 Received large packet 1500 (threshold 1406)."
    )
    assert isinstance(e, LargePacket) and (e.direction, e.size, e.threshold, e.group) == (
        "from-client",
        1500,
        1406,
        "g",
    )


def test_602101_fields():
    e = SyslogParser().feed(
        "Nov 16 2022 01:28:50: %ASA-6-602101: PMTU-D packet 1418 bytes greater than "
        "effective mtu 1347, dest_addr=192.168.100.10, src_addr=192.168.10.20, prot=TCP"
    )
    assert isinstance(e, PmtudPacket)
    assert (e.size, e.mtu, e.dst, e.src, e.protocol) == (
        1418,
        1347,
        "192.168.100.10",
        "192.168.10.20",
        "TCP",
    )
    assert e.time == _at("01:28:50")


@pytest.mark.parametrize(
    "prefix, expected",
    [
        ("", None),
        ("Nov 16 2022 01:28:50: ", _at("01:28:50")),  # ASA `logging timestamp`
        ("Nov 16 2022 01:28:50.125 asa : ", _at("01:28:50") + 0.125),
        (
            "<166>Nov 16 01:28:49 10.1.1.2 Nov 16 2022 01:28:50 asa : ",
            _at("01:28:50"),
        ),  # ASA clock wins
        ("<166>1 2022-11-16T01:28:50.500Z asa - - - - ", _at("01:28:50") + 0.5),  # RFC 5424
        ("<166>1 2022-11-16T02:28:50+01:00 asa - - - - ", _at("01:28:50")),
        ("<166>Nov 16 01:28:50 10.1.1.2 ", None),  # BSD syslog: no year, none given
    ],
)
def test_timestamps_with_and_without_prefixes(prefix, expected):
    e = SyslogParser().feed(
        prefix + f"%ASA-6-722036: {WHO} Transmitting large packet 1418 (threshold 1347)."
    )
    assert e is not None and e.time == expected


def test_year_dates_bsd_timestamps():
    e = SyslogParser(year=2022).feed(
        f"<166>Nov 16 01:28:50 10.1.1.2 %ASA-6-722036: {WHO} "
        "Transmitting large packet 1418 (threshold 1347)."
    )
    assert e is not None and e.time == _at("01:28:50")


@pytest.mark.parametrize(
    "body, kind, transport, detail",
    [
        (
            f"%ASA-6-722022: {WHO} UDP SVC connection established without compression",
            "tunnel-up",
            "UDP",
            None,
        ),
        (
            f"%ASA-6-722023: {WHO} TCP SVC connection terminated with compression",
            "tunnel-down",
            "TCP",
            None,
        ),
        (f"%ASA-5-722028: {WHO} Stale SVC connection closed.", "stale-closed", None, None),
        (
            f"%ASA-5-722032: {WHO} New UDP SVC connection replacing old connection.",
            "tunnel-replaced",
            "UDP",
            None,
        ),
        (
            f"%ASA-5-722034: {WHO} New TCP SVC connection, no existing connection.",
            "tunnel-reconnect",
            "TCP",
            None,
        ),
        (
            f"%ASA-4-722037: {WHO} SVC closing connection: DPD failure.",
            "tunnel-closing",
            None,
            "DPD failure",
        ),
        (
            f"%ASA-6-722051: {WHO} IPv4 Address <192.168.100.10> IPv6 address <::> assigned to session",
            "address-assigned",
            None,
            "IPv4 Address <192.168.100.10> IPv6 address <::>",
        ),
        (
            f"%ASA-6-113039: {WHO} AnyConnect parent session started.",
            "parent-session-started",
            None,
            None,
        ),
        (
            f"%ASA-6-716059: {WHO} AnyConnect session resumed connection from IP <10.1.75.112>.",
            "session-resumed",
            None,
            "10.1.75.112",
        ),
        (
            f"%ASA-5-722011: {WHO} SVC Message: 17/WARNING: Reconnecting the VPN tunnel..",
            "client-message",
            None,
            "17/WARNING: Reconnecting the VPN tunnel.",
        ),
        (
            "%ASA-4-113019: Group = ac_users_group, Username = vpn, IP = 10.1.75.111, Session disconnected. "
            "Session Type: SSL, Duration: 0h:01m:00s, Bytes xmt: 54735230, Bytes rcv: 27473152, Reason: Idle Timeout",
            "session-disconnected",
            None,
            "Idle Timeout (session type SSL, duration 0h:01m:00s)",
        ),
        (
            "%ASA-4-722041: TunnelGroup <TG> GroupPolicy <ac_users_group> User <vpn> IP <10.1.75.111> "
            "No IPv6 address available for SVC connection",
            "no-ipv6-address",
            None,
            None,
        ),
    ],
)
def test_session_messages(body, kind, transport, detail):
    e = SyslogParser().feed(body)
    assert isinstance(e, SessionEvent)
    assert (e.kind, e.transport, e.detail, e.group, e.user, e.ip) == (
        kind,
        transport,
        detail,
        "ac_users_group",
        "vpn",
        "10.1.75.111",
    )


def test_bad_and_foreign_lines_are_counted_not_fatal():
    r = parse_syslog(
        [
            "not a syslog line",
            f"%ASA-6-722036: {WHO} Transmitting large packet big (threshold 1347).",
            "%ASA-6-302013: Built inbound TCP connection 1 for a:1.1.1.1/1 (1.1.1.1/1) to b:2.2.2.2/2 (2.2.2.2/2)",
            "",
            "x" * 20000 + " %ASA-6-722036:",
            f"%ASA-6-722036: {WHO} Transmitting large packet 1418 (threshold 1347).",
        ]
    )
    assert r.lines == 6 and r.other == 1 and r.malformed == 3
    assert [m.line for m in r.examples] == [1, 2, 5]
    assert "template" in r.examples[1].reason
    assert [type(e) for e in r.events] == [LargePacket]


def test_seed_log_with_syslog_server_prefix():
    r = parse_syslog((DATA / "asa-seed.log").read_text().splitlines())
    large = [e for e in r.events if isinstance(e, LargePacket)]
    pmtud = [e for e in r.events if isinstance(e, PmtudPacket)]
    assert len(large) == len(pmtud) == 6
    assert {(e.size, e.threshold) for e in large} == {(1418, 1347)}
    assert {(e.size, e.mtu, e.dst) for e in pmtud} == {(1418, 1347, "192.168.100.10")}
    assert large[0].time == _at("01:27:53")
    assert r.malformed == 1 and r.examples[0].line == 18  # the line cut short
    assert r.other == 2 and r.untimed == 0
    kinds = [e.kind for e in r.events if isinstance(e, SessionEvent)]
    assert kinds == [
        "parent-session-started",
        "address-assigned",
        "tunnel-up",
        "first-tunnel",
        "tunnel-closing",
        "tunnel-down",
        "tunnel-reconnect",
        "tunnel-up",
    ]


def test_rfc5424_copy_gives_the_same_events():
    a = parse_syslog((DATA / "asa-seed.log").read_text().splitlines())
    b = parse_syslog((DATA / "asa-seed-rfc5424.log").read_text().splitlines())
    assert [(e.message_id, e.time) for e in a.events] == [(e.message_id, e.time) for e in b.events]
    assert b.malformed == 0


def test_iso_epoch_rejects_non_dates():
    assert iso_epoch("2022-13-40T00:00:00Z") is None
    assert iso_epoch("2022-11-16T01:28:50Z") == _at("01:28:50")


# ---------------------------------------------------------------------- DART


def test_seed_dart_blocks():
    r = parse_dart((DATA / "dart-seed.txt").read_text().splitlines())
    assert r.malformed == 0
    assert [(e.kind, e.source, e.type) for e in r.events] == [
        ("mtu-reconfigure", "acvpnagent", "Warning"),
        ("reconfigure", "acvpnagent", "Information"),
        ("reconnecting", "acvpnui", "Information"),
        ("new-mtu", "acvpnagent", "Warning"),
    ]
    first, _, reconnect, new_mtu = r.events
    assert first.reason_code == 16 and first.time == _at("01:28:50") and first.line == 2
    assert first.description == "Reconfigure reason code 16: New MTU configuration."
    assert reconnect.host == "10.1.1.2" and reconnect.time == _at("01:28:51")
    assert new_mtu.description.startswith(
        "A new MTU needs to be applied to the VPN network interface. "
        "Disabling and re-enabling the Virtual Adapter."
    )


def test_dart_malformed_blocks_and_a_missing_final_separator():
    text = [
        "garbage before the first block",
        "*" * 42,
        "Date        : 13/45/2022",
        "Time        : 01:28:50",
        "Description : unreadable date",
        "*" * 42,
        "Date        : 2022-11-16",
        "Time        : 1:28:50 PM",
        "Type        : Information",
        "Source      : acvpnui",
        "Description : Connected to vpn.example.com.",
    ]
    r = parse_dart(text)
    assert r.malformed == 2 and [b.line for b in r.examples] == [1, 3]
    (e,) = r.events
    assert e.time == _at("13:28:50") and e.kind == "connected" and e.host == "vpn.example.com"


def test_dart_other_reason_codes_are_not_the_mtu_reconnect():
    assert classify("Reconfigure reason code 16: New MTU configuration.")[:2] == (
        "mtu-reconfigure",
        16,
    )
    assert classify("Reconfigure reason code 3: something else.")[:2] == ("reconfigure", 3)
    assert classify("Function: CVpnMgr::foo")[0] == "other"


def test_dart_block_size_is_bounded():
    p = DartParser()
    p.feed("*" * 42)
    p.feed("Date : 11/16/2022")
    p.feed("Time : 01:28:50")
    p.feed("Description : long")
    for _ in range(3000):
        p.feed("more text")
    assert p.malformed == 1
