"""Several records in one datagram, several messages in one record: a chain, not padding.

DTLS puts several records in one datagram and several handshake messages in one record
(RFC 6347 4.1.1, 4.2.3); CSTP puts several packets in one TLS record. Scapy's
``extract_padding`` trims a layer to its length field and would turn the bytes after it
into ``Padding``; :class:`Chained` dissects them as the next record instead and chains it
as a payload after the body, so ``pkt[DTLSRecord:2]`` is the second record. The length
fields (:class:`BodyLenField`, :class:`BodyLen3Field`) count only the body, never the
records chained after it.

The chain is bounded: each chained layer is a nested payload (and a nested call while it is
dissected), so a 64 KiB datagram of 5000 empty DTLS records, or a TLS record of empty CSTP
headers, would exceed Python's recursion limit. After :data:`MAX_CHAIN` layers, or when the
next layer does not dissect, the rest stays ``Raw``, as Scapy's own ``do_dissect_payload``
leaves a payload it cannot parse.
"""

from __future__ import annotations

from scapy.config import conf
from scapy.fields import LenField, ThreeBytesField
from scapy.packet import Packet

#: Chained layers in one datagram or record, at most (real AnyConnect datagrams carry 1-4).
MAX_CHAIN = 64


def body_length(pkt: Packet) -> int:
    """Bytes of ``pkt``'s payload up to the first chained layer that ends its body."""
    total = len(pkt.payload)
    layer = pkt.payload
    boundaries = pkt.chain_boundaries()
    while layer:
        if isinstance(layer, boundaries):
            return total - len(layer)
        layer = layer.payload
    return total


class BodyLenField(LenField):
    """A 16-bit length of this layer's body; layers chained after it are not counted."""

    def i2m(self, pkt: Packet | None, x: int | None) -> int:
        if x is None:
            return 0 if pkt is None else body_length(pkt)
        return x


class BodyLen3Field(ThreeBytesField):
    """A 24-bit body length (a DTLS handshake's ``length`` and ``fragment_length``).

    None (the default) is computed from the body when the packet is built, as Scapy's own
    length fields do; Scapy annotates a ThreeBytesField's default as int only.
    """

    def __init__(self, name: str, default: int | None) -> None:
        super().__init__(name, default)  # type: ignore[arg-type]

    def i2m(self, pkt: Packet | None, x: int | None) -> int:
        if x is None:
            return 0 if pkt is None else body_length(pkt)
        return x


class Chained(Packet):
    """A layer that may be followed, in the same datagram or record, by more of its kind.

    Subclasses say which layers end their body (:meth:`chain_boundaries`) and which class
    the leftover bytes dissect as (:meth:`next_class`). ``dissect`` is Scapy's
    ``Packet.dissect`` except for what happens to those leftover bytes.
    """

    def chain_boundaries(self) -> tuple[type[Packet], ...]:
        return (type(self),)

    def next_class(self, rest: bytes) -> type[Packet]:
        return type(self)

    def dissect(self, s: bytes) -> None:
        s = self.post_dissect(self.do_dissect(self.pre_dissect(s)))
        body, rest = self.extract_padding(s)
        self.do_dissect_payload(body)
        if rest:
            self.add_payload(self._next(rest))

    def _next(self, rest: bytes) -> Packet:
        """The layer after this one's body: the next of the chain, or Raw (see module doc)."""
        depth = 0
        layer: Packet | None = self
        while layer is not None:
            depth += isinstance(layer, Chained)
            layer = layer.underlayer
        if depth < MAX_CHAIN:
            try:
                return self.next_class(rest)(rest, _internal=1, _underlayer=self)
            except Exception:
                if conf.debug_dissector:
                    raise
        return conf.raw_layer(rest, _internal=1, _underlayer=self)
