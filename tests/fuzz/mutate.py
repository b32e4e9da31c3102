"""Mutation operators: captures (container, packets, gzip) and text (logs, configs, YAML).

Every operator takes a ``random.Random`` and returns new bytes plus a short name of what it
did; the campaign records the names, so a crash report says which kind of damage caused it.
All randomness comes from the generator passed in: a campaign is reproducible from its seed.

Capture damage, as the issue lists it: bit flips; truncation at every block boundary (and a
few bytes either side); length fields set to 0 or huge; pcapng blocks whose two length
copies disagree or are not multiples of 4; gzip streams cut short or corrupted; DTLS records
whose length runs past the packet; ICMP quotes shorter than 28 bytes (see
:mod:`tests.fuzz.packet`). Plus growth (records repeated thousands of times) so that a
quadratic path shows up as a slow input per byte.
"""

from __future__ import annotations

import random
import re
import struct
from dataclasses import replace

from labkit.scenario.loader import TOP_KEYS
from tests.fuzz import capture as cf
from tests.fuzz.packet import PACKET_MUTATIONS, dtls_datagram, locate

HUGE_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF, 262145, 16 << 20, (16 << 20) + 4)


def _set_field(raw: bytearray, f: cf.Field, value: int) -> None:
    value &= (1 << (8 * f.width)) - 1
    raw[f.offset : f.offset + f.width] = value.to_bytes(
        f.width, "little" if f.order == "<" else "big"
    )


# --- container --------------------------------------------------------------------------------


def bit_flips(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    b = bytearray(raw)
    n = rng.choice((1, 1, 2, 4, 8, 32))
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"bit-flips:{n}"


def interesting_bytes(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    b = bytearray(raw)
    for _ in range(rng.randrange(1, 8)):
        b[rng.randrange(len(b))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
    return bytes(b), "interesting-bytes"


def truncate_at_boundary(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    cut = rng.choice(lay.boundaries) + rng.choice((0, 0, 0, -1, 1, 4, 8, 12, 15, 16, 20, 27, 28))
    cut = max(0, min(cut, len(raw)))
    return raw[:cut], "truncate-boundary"


def truncate_anywhere(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    return raw[: rng.randrange(len(raw) + 1)], "truncate"


def length_field(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    """A record/block length, captured or original length set to 0, 1 or huge."""
    f = rng.choice(lay.fields)
    b = bytearray(raw)
    if f.what in ("if_tsresol",):
        value = rng.choice((0, 6, 9, 19, 20, 0x7F, 0x80, 0x9F, 0xFF))
    elif f.what == "if_tsoffset":
        value = rng.choice((0, 1 << 62, (1 << 64) - 1, 1 << 40))
    elif f.what == "linktype":
        value = rng.choice(
            (0, 1, 12, 14, 101, 105, 108, 113, 147, 228, 229, 276, 0xFFFF, 0x0FFF0001)
        )
    elif f.what == "byte_order_magic":
        value = rng.choice((0, 0x1A2B3C4D, 0x4D3C2B1A, 0xFFFFFFFF))
    elif f.width == 2:
        value = rng.choice((0, 1, 2, 3, 4, 0xFFFF, 0x8000))
    elif f.width == 8:
        value = rng.choice((0, (1 << 64) - 1, 1 << 63, 10**9))
    else:
        value = rng.choice(
            HUGE_32
            + (
                int.from_bytes(raw[f.offset : f.offset + 4], "big" if f.order == ">" else "little")
                + rng.choice((-4, -1, 1, 3, 4)),
            )
        )
    _set_field(b, f, value)
    return bytes(b), f"length:{f.what}={value:#x}"


def pcapng_block_length(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    """One copy of a block's length wrong: not a multiple of 4, < 12, or disagreeing."""
    fields = [f for f in lay.fields if f.what in ("block_length", "trailing_block_length")]
    if not fields:
        return length_field(rng, raw, lay)
    f = rng.choice(fields)
    b = bytearray(raw)
    cur = int.from_bytes(raw[f.offset : f.offset + 4], "big" if f.order == ">" else "little")
    value = rng.choice((cur + 1, cur + 2, cur - 4, cur + 4, 11, 8, 4, 0, cur * 2, 0xFFFFFFF0))
    _set_field(b, f, value & 0xFFFFFFFF)
    return bytes(b), f"pcapng-block-length:{f.what}"


def splice_garbage(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    at = rng.choice(lay.boundaries)
    junk = rng.choice(
        (
            b"\0" * rng.randrange(1, 64),
            b"\xff" * rng.randrange(1, 64),
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),
        )
    )
    return raw[:at] + junk + raw[at:], "splice-garbage"


def zero_range(rng: random.Random, raw: bytes, lay: cf.Layout) -> tuple[bytes, str]:
    a = rng.randrange(len(raw))
    n = rng.choice((4, 16, 64, 1024))
    return raw[:a] + bytes(min(n, len(raw) - a)) + raw[a + n :], "zero-range"


RAW_MUTATIONS = (
    bit_flips,
    interesting_bytes,
    truncate_at_boundary,
    truncate_anywhere,
    length_field,
    length_field,
    pcapng_block_length,
    splice_garbage,
    zero_range,
)


# --- records (through the model, so the container stays valid) --------------------------------


def mutate_packets(rng: random.Random, cap: cf.Capture) -> tuple[cf.Capture, str]:
    """Hostile headers inside one to a few otherwise valid records."""
    pkts = [(i, p) for i, p in cap.packets if locate(p.data, p.linktype) is not None]
    if not pkts:
        return cap, "packets:none"
    name = rng.choice(sorted(PACKET_MUTATIONS))
    changes = {}
    for i, p in rng.sample(pkts, min(len(pkts), rng.choice((1, 1, 3, 10)))):
        lay = locate(p.data, p.linktype)
        data = PACKET_MUTATIONS[name](rng, p.data, lay)
        orig = None if rng.random() < 0.8 else rng.choice((0, len(data) + 1, 0xFFFFFFFF, 65535))
        changes[i] = replace(p, data=data, origlen=orig)
    return cf.with_packets(cap, changes), f"packet:{name}"


def mutate_records(rng: random.Random, cap: cf.Capture) -> tuple[cf.Capture, str]:
    """Record-level damage: order, timestamps, interfaces, repeats, odd blocks."""
    items = list(cap.items)
    pkts = cap.packets
    what = rng.randrange(7)
    if what == 0 and pkts:  # timestamps out of order, extreme, or beyond their resolution
        for i, p in rng.sample(pkts, min(len(pkts), 5)):
            items[i] = replace(
                p,
                ts_hi=rng.choice((0, 0xFFFFFFFF, p.ts_hi - 1000)),
                ts_lo=rng.choice((0, 999999, 1000000, 0xFFFFFFFF)),
            )
        return replace(cap, items=items), "records:timestamps"
    if what == 1 and pkts:  # grow: one record repeated (a quadratic path shows per byte)
        i, p = rng.choice(pkts)
        items[i + 1 : i + 1] = [p] * rng.choice((100, 1000, 4000))
        return replace(cap, items=items), "records:repeat"
    if what == 2 and cap.kind == "pcapng" and pkts:  # interface ids no IDB declared
        for i, p in rng.sample(pkts, min(len(pkts), 3)):
            items[i] = replace(p, iface=rng.choice((1, 7, 0xFFFFFFFF)))
        return replace(cap, items=items), "records:bad-interface"
    if what == 3 and cap.kind == "pcapng":  # drop IDBs, add SPBs/ISBs/unknown blocks
        choice = rng.randrange(4)
        if choice == 0:
            items = [it for it in items if not (isinstance(it, cf.Block) and it.btype == cf.IDB)]
            return replace(cap, items=items), "records:no-idb"
        at = rng.randrange(len(items) + 1)
        if choice == 1:
            data = pkts[0][1].data if pkts else b""
            blk = cf.Block(
                cf.SPB, struct.pack(cap.order + "I", rng.choice((len(data), 0, 0xFFFFFFFF))) + data
            )
            name = "spb"
        elif choice == 2:  # an Interface Statistics Block claiming 1e9 packets received
            opts = struct.pack(cap.order + "HHQ", 4, 8, 10**9) + struct.pack(cap.order + "HH", 0, 0)
            blk = cf.Block(cf.ISB, struct.pack(cap.order + "III", 0, 0, 0) + opts)
            name = "isb-1e9"
        else:
            blk = cf.Block(
                rng.choice((0x0BAD, 0x40000BAD, 9, 0x80000001, 0xDEAD)),
                bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))),
            )
            name = "unknown-block"
        items.insert(at, blk)
        return replace(cap, items=items), f"records:{name}"
    if what == 4 and pkts:  # a DTLS datagram with lying lengths, grafted onto a UDP record
        udp = [
            (i, p)
            for i, p in pkts
            if (lay := locate(p.data, p.linktype)) is not None and lay.proto == 17
        ]
        if udp:
            i, p = rng.choice(udp)
            lay = locate(p.data, p.linktype)
            payload = dtls_datagram(rng)
            data = bytearray(p.data[: lay.l4 + 8] + payload)
            struct.pack_into("!H", data, lay.l4 + 2, 443)
            items[i] = replace(p, data=bytes(data), origlen=None)
            return replace(cap, items=items), "records:dtls-graft"
    if what == 5 and pkts:  # records of another link type than the header says
        for i, p in rng.sample(pkts, min(len(pkts), 5)):
            items[i] = replace(p, data=p.data[rng.choice((0, 4, 14, 16, 20)) :])
        return replace(cap, items=items), "records:shifted"
    if pkts:  # empty records and records of one byte
        for i, p in rng.sample(pkts, min(len(pkts), 5)):
            items[i] = replace(
                p, data=p.data[: rng.choice((0, 1))], origlen=rng.choice((None, 0, 1500))
            )
        return replace(cap, items=items), "records:tiny"
    return cap, "records:none"


# --- gzip ---------------------------------------------------------------------------------------


def gzip_damage(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    """Compress, then (usually) cut or corrupt the compressed stream."""
    members = rng.choice((1, 1, 1, 2, 3))
    gz = cf.gzip_bytes(raw, level=rng.choice((1, 6, 9)), members=members)
    what = rng.randrange(6)
    if what == 0:
        return gz, f"gzip:{members}-members"
    if what == 1:  # cut short where output was produced, or anywhere
        marks = cf.deflate_boundaries(gz) or [len(gz) // 2]
        cut = rng.choice(marks + [len(gz) - 8, len(gz) - 4, len(gz) - 1, 10, 11])
        return gz[: max(0, cut)], "gzip:cut"
    if what == 2:  # a corrupted byte in the deflate data or the CRC/ISIZE trailer
        b = bytearray(gz)
        i = rng.choice((rng.randrange(10, max(11, len(b) - 8)), len(b) - 8, len(b) - 1))
        b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "gzip:corrupt"
    if what == 3:  # trailing garbage or zero padding after the last member
        return gz + rng.choice(
            (b"\0" * 512, b"garbage after the member", b"\x1f\x8b\x08")
        ), "gzip:trailing"
    if what == 4:  # header flags naming an extra field / file name that run off
        b = bytearray(gz)
        b[3] = rng.choice((0x04, 0x08, 0x10, 0x02, 0xE0))
        return bytes(b), "gzip:header-flags"
    return gz[:10], "gzip:header-only"


# --- text ---------------------------------------------------------------------------------------

HOSTILE_NUMBERS = (
    "0",
    "-1",
    "65536",
    "4294967296",
    "99999999999999999999999999",
    "1e309",
    "١٣٤٧",
    "1²",
    "³",
    "0x547",
    "",
    "13.47",
    "1_347",
    "NaN",
    "00001347",
    "9" * 5000,
)  # int() refuses more than 4300 digits (CVE-2020-10735)
HOSTILE_CHUNKS = (
    "\0",
    "\ufffd",
    "\r",
    "\x1b[31m",
    "<",
    ">",
    "%ASA-6-722036:",
    "Group <",
    "User <",
    "IP <",
    "*" * 40,
    " " * 2000,
    "\t",
    "\u202e",
    "é",
    "\udcff",
)


def text_mutation(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    """Line- and token-level damage to a text file, at the byte level (invalid UTF-8 too)."""
    text = raw.decode("utf-8", "surrogateescape")
    lines = text.splitlines(keepends=True) or [""]
    what = rng.randrange(12)
    if what == 0:  # numbers replaced by hostile ones
        nums = list(re.finditer(r"\d+", text))
        for m in sorted(
            rng.sample(nums, min(len(nums), rng.choice((1, 3, 10)))), key=lambda m: -m.start()
        ):
            text = text[: m.start()] + rng.choice(HOSTILE_NUMBERS) + text[m.end() :]
        name = "text:number"
    elif what == 1:  # lines repeated (growth)
        i = rng.randrange(len(lines))
        lines[i : i + 1] = [lines[i] if lines[i].endswith("\n") else lines[i] + "\n"] * rng.choice(
            (10, 1000, 5000)
        )
        text, name = "".join(lines), "text:repeat-line"
    elif what == 2:  # a very long line, often just under the parsers' line limits (16 KiB)
        i = rng.randrange(len(lines))
        unit = rng.choice(HOSTILE_CHUNKS[4:10] + ("a", " x", "Group <a> ", "1 ", "abc   "))
        size = rng.choice((1000, 8000, 16000, 16300, 17000, 60000))
        lines[i] = lines[i].rstrip("\r\n") + unit * (size // len(unit)) + "\n"
        text, name = "".join(lines), "text:long-line"
    elif what == 3:  # lines cut short
        for _ in range(rng.randrange(1, 5)):
            i = rng.randrange(len(lines))
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
        text, name = "".join(lines), "text:cut-lines"
    elif what == 4:  # hostile characters inserted
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(HOSTILE_CHUNKS) + text[at:]
        name = "text:insert"
    elif what == 5:  # lines shuffled / deleted
        rng.shuffle(lines)
        lines = lines[: rng.randrange(len(lines) + 1)]
        text, name = "".join(lines), "text:shuffle"
    elif what == 6:  # newline styles
        text = text.replace("\n", rng.choice(("\r\n", "\r", "\n\n", "\x85", "\u2028", "")))
        name = "text:newlines"
    elif what == 7:  # indentation changed (configs read modes from it)
        text = "".join(
            (" " * rng.choice((0, 1, 2, 8, 200)) + ln.lstrip()) if rng.random() < 0.3 else ln
            for ln in lines
        )
        name = "text:indent"
    elif what == 8:  # byte-level: flips, invalid UTF-8, NULs
        b = bytearray(text.encode("utf-8", "surrogateescape"))
        for _ in range(rng.randrange(1, 16)):
            if b:
                b[rng.randrange(len(b))] = rng.choice((0, 0xFF, 0xC3, 0x80, rng.randrange(256)))
        return bytes(b), "text:bytes"
    elif what == 10:  # a long run of one character inside a line (backtracking regexes)
        i = rng.randrange(len(lines))
        at = rng.randrange(len(lines[i]) + 1)
        run = rng.choice(".*< >:=,0a-\t") * rng.choice((500, 5000, 15000, 40000))
        lines[i] = lines[i][:at] + run + lines[i][at:]
        text, name = "".join(lines), "text:run-inside"
    elif what == 11:  # a line's own words repeated inside it (templates matched many ways)
        i = rng.randrange(len(lines))
        words = lines[i].split()
        if words:
            a = rng.randrange(len(words))
            piece = " ".join(words[a : a + rng.randrange(1, 6)]) + " "
            at = lines[i].find(words[a])
            lines[i] = lines[i][:at] + piece * rng.choice((50, 500, 2000)) + lines[i][at:]
        text, name = "".join(lines), "text:repeat-words"
    else:  # words swapped between lines (valid tokens in the wrong place)
        words = text.split(" ")
        for _ in range(rng.randrange(1, 8)):
            if len(words) > 1:
                a, c = rng.randrange(len(words)), rng.randrange(len(words))
                words[a], words[c] = words[c], words[a]
        text, name = " ".join(words), "text:swap-words"
    return text.encode("utf-8", "surrogateescape"), name


# --- growth (the scaling check) -----------------------------------------------------------------


def grow_capture(raw: bytes, k: int) -> bytes:
    """The seed's packets repeated ``k`` times (its other blocks once, in front)."""
    cap = cf.parse(raw)
    packets = [it for it in cap.items if isinstance(it, cf.Packet)]
    return cf.serialize(replace(cap, items=list(cap.items) + packets * (k - 1)))[0]


def grow_cstp(raw: bytes, k: int) -> bytes:
    """A cstp-stream input (side, piece size, stream) with its tunnel's packets (or, with no
    CSTP framing in it, the whole stream) repeated ``k`` times, fed 200 bytes at a time."""
    side, body = raw[:1], raw[2:]
    start = body.find(b"STF\x01")
    tail = body[start:] if start >= 0 else body
    return side + bytes([200]) + body + tail * (k - 1)


# A command naming a policy or tunnel group, after any indentation or pasted CLI prompt.
_CONFIG_NAMES = re.compile(
    rb"(?m)^((?:[\w.-]+(?:\([\w-]+\))?[#>])?\s*"
    rb"(?:group-policy|tunnel-group|default-group-policy)\s+)(\S+)"
)


def grow_config(raw: bytes, k: int) -> bytes:
    """An ASA config repeated ``k`` times with its group-policy and tunnel-group names made
    unique per copy: k times the policies (the advisor's work is per policy), not k repeats
    of the same ones."""
    body = raw if raw.endswith(b"\n") else raw + b"\n"
    return b"".join(
        _CONFIG_NAMES.sub(lambda m, i=i: m.group(1) + m.group(2) + b"-%d" % i, body)
        for i in range(k)
    )


def grow_text(raw: bytes, k: int) -> bytes:
    """The text repeated ``k`` times, as if the log went on (or the config were pasted again)."""
    return (raw if raw.endswith(b"\n") else raw + b"\n") * k


# --- YAML (scenarios) -----------------------------------------------------------------------------

# The loader's top-level keys, then keys the shipped scenarios nest below them.
SCENARIO_KEYS = (
    *TOP_KEYS,
    "tcpmss",
    "dtls_port",
    "attempts",
    "segments",
    "at",
)


def yaml_mutation(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    """YAML-shaped damage: nesting, aliases, tags, odd scalars, duplicate keys, several docs."""
    text = raw.decode("utf-8", "surrogateescape")
    lines = text.splitlines(keepends=True) or [""]
    i = rng.randrange(len(lines))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    key = rng.choice(SCENARIO_KEYS)
    what = rng.randrange(8)
    if what == 0:  # nested far deeper than any scenario (PyYAML's composer recurses)
        depth = rng.choice((50, 500, 5000))
        value = rng.choice(("[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth))
        lines.insert(i, f"{indent}{key}: {value}\n")
        name = f"yaml:nesting-{depth}"
    elif what == 1:  # an alias bomb inside a key the loader reads
        bomb = (
            "[&a0 [x,x,x,x,x,x,x,x]"
            + "".join(
                f", &a{k} [" + ",".join([f"*a{k - 1}"] * 8) + "]"
                for k in range(1, rng.choice((4, 9)))
            )
            + "]"
        )
        lines.insert(i, f"{indent}{key}: {bomb}\n")
        name = "yaml:alias-bomb"
    elif what == 2:  # tags: Python objects (SafeLoader refuses), binary, timestamps, sets
        tag = rng.choice(
            (
                "!!python/object/apply:os.system ['true']",
                "!!binary aGVsbG8=",
                "!!timestamp 2001-12-14",
                "!!set {a, b}",
                "!!float .inf",
                "!!float .nan",
                "!!int 0x10",
                "!custom x",
                "!!omap [a: 1]",
            )
        )
        lines.insert(i, f"{indent}{key}: {tag}\n")
        name = "yaml:tag"
    elif what == 3:  # odd scalars
        value = rng.choice(
            (
                "1e309",
                "-.inf",
                ".nan",
                "0b101",
                "0o17",
                "1_000_000",
                "99999999999999999999999999",
                "~",
                "''",
                "yes",
                "0x0100",
                "12:30:00",
                "2024-01-01",
                "'" + "x" * 70000 + "'",
                "-0",
                "+1",
            )
        )
        lines.insert(i, f"{indent}{key}: {value}\n")
        name = "yaml:scalar"
    elif what == 4:  # a duplicate of an existing line (duplicate key)
        lines.insert(i, lines[i] if lines[i].endswith("\n") else lines[i] + "\n")
        name = "yaml:duplicate-line"
    elif what == 5:  # merge keys and anchors
        lines.insert(
            i,
            f"{indent}<<: *nowhere\n" if rng.random() < 0.5 else f"{indent}{key}: &x {{<<: *x}}\n",
        )
        name = "yaml:merge"
    elif what == 6:  # several documents, or a document end in the middle
        lines.insert(
            i,
            rng.choice(
                ("---\n", "...\n", "--- !!str\n", "%YAML 1.1\n---\n", "%TAG ! tag:x,2000:\n")
            ),
        )
        name = "yaml:documents"
    else:  # a list where a mapping belongs and the other way round
        lines.insert(
            i, f"{indent}{key}: {rng.choice(('[1, 2]', '{a: 1}', '- x', '[]', '{}', 'null'))}\n"
        )
        name = "yaml:shape"
    return "".join(lines).encode("utf-8", "surrogateescape"), name
