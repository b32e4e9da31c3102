/* labkit.analyze.decode.columns, compiled: every record's link, IP and transport fields in one
 * pass over its packet window; and decode.decode_rows, compiled: the summaries of the rare
 * packets (SYNs, TLS/DTLS handshakes, ICMP errors), at the end of this file.
 *
 * The numpy version in decode.py (py_columns) is the reference and the fallback: ~40 whole-
 * column operations a chunk, ~0.25 us a packet, a quarter of the analyzer's budget for a
 * million packets a second. This is the same arithmetic per packet, ~0.02 us. Tests decode
 * every capture of the test suite both ways and require identical columns, so the two cannot
 * drift apart. Column order: decode.COLUMN_NAMES.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    C_IPVER, C_L3, C_IPLEN, C_DF, C_PROTO, C_FIRST, C_L4, C_SPORT, C_DPORT, C_FLAGS, C_SEQ,
    C_ACK, C_PAY, C_PAYLEN, C_PCAP, C_P0, C_P1, C_P2, C_P5, C_P13, C_SRC_H, C_DST_H, C_SRC4,
    C_DST4, C_TCP_FWD, C_TCP_REV, C_WHY, NCOLS
};

/* Link types (decode.py). */
#define LT_NULL 0
#define LT_ETHERNET 1
#define LT_RAW_12 12
#define LT_RAW_14 14
#define LT_RAW 101
#define LT_LOOP 108
#define LT_SLL 113
#define LT_IPV4 228
#define LT_IPV6 229
#define LT_SLL2 276
#define LT_FDDI 10
#define LT_PPP 9
#define LT_PPP_HDLC 50
#define LT_C_HDLC 104
#define LT_IEEE802_11 105
#define LT_RADIOTAP 127
#define LT_ARCNET_LINUX 129
#define LT_NFLOG 239

static inline unsigned be16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }

static inline uint32_t
be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be64(const unsigned char *p) { return ((uint64_t)be32(p) << 32) | be32(p + 4); }

static inline uint64_t
mix64(uint64_t x)  /* splitmix64's finalizer, as decode.mix64 */
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* decode.directed: a directed flow's hash from its address hashes and ports. */
static inline uint64_t
directed(uint64_t src_h, uint64_t dst_h, unsigned sport, unsigned dport)
{
    return mix64(src_h ^ mix64(dst_h ^ (((uint64_t)sport << 16) | dport)));
}

static inline int
is_vlan(unsigned et)
{
    return et == 0x8100 || et == 0x88A8 || et == 0x9100 || et == 0x9200;
}


/* The bytes decode._at/rows_at read: `width` bytes at `rel` into the packet, from the window
 * when they fit in it, else from the buffer at the clipped offset (the buffer has slack). */
typedef struct {
    const unsigned char *buf;
    Py_ssize_t buflen;
    const unsigned char *win;
    Py_ssize_t winlen;
    int64_t data;
} Packet;

static inline const unsigned char *
at(const Packet *p, int64_t rel, Py_ssize_t width)
{
    if (rel >= 0 && rel + width <= p->winlen)
        return p->win + rel;
    int64_t off = p->data + rel;
    if (off > p->buflen - width)
        off = p->buflen - width;
    if (off < 0)
        off = 0;
    return p->buf + off;
}

static inline int64_t
byte_at(const Packet *p, int64_t off)  /* numpy take(mode="clip") on the buffer */
{
    if (off < 0)
        off = 0;
    if (off >= p->buflen)
        off = p->buflen - 1;
    return p->buf[off];
}

/* decode.locate, line for line: the innermost IP header of one frame through encapsulations
 * (VLAN/MPLS/PPPoE/LLC-SNAP/MACsec/NSH/VN-Tag/E-Tag/PBB, IP-in-IP, GRE with ERSPAN, VXLAN,
 * VXLAN-GPE, Geneve, GTP-U, CAPWAP data, L2TPv2), and why a frame's content was not reached.
 * Reads go through B(), bounded by the captured length n. */
enum { W_ETHERTYPE = 1, W_LINKTYPE, W_PPP, W_GRE, W_CUT, W_DEPTH, W_MPLS, W_LLC, W_MACSEC,
       W_NSH, W_INNER, W_FAMILY, W_WLAN, W_ARCNET, W_NFLOG };
enum { S_ETH, S_ET, S_IP, S_MPLS, S_PPP, S_GRE, S_GTP_INNER, S_WLAN, S_WLAN_SWAPPED };
#define MAX_LAYERS 16
#define WHY(kind, value) (((int64_t)(kind) << 32) | (int64_t)(value))

typedef struct {
    int64_t off;
    int ver;
    int64_t why;
} Located;

static inline int
is_v6_ext(int64_t nh)
{
    return nh == 0 || nh == 43 || nh == 60 || nh == 51 || nh == 44;
}

static inline int
next_proto(int code, int *st, int64_t *et)  /* decode._next_proto */
{
    switch (code) {
    case 1: *st = S_ET; *et = 0x0800; return 1;
    case 2: *st = S_ET; *et = 0x86DD; return 1;
    case 3: *st = S_ETH; *et = 0; return 1;
    case 4: *st = S_ET; *et = 0x894F; return 1;
    case 5: *st = S_MPLS; *et = 0; return 1;
    }
    *st = -1;
    *et = 0;
    return 0;
}

/* Byte `rel` of the packet: from its window (a copy of the buffer at the same place, gathered
 * in order with the record headers, so it is in cache) when it is there, else from the buffer,
 * whose reads land a record apart and each miss the cache. */
static inline int64_t
rel_byte(const Packet *p, int64_t rel)
{
    if (rel >= 0 && rel < p->winlen)
        return p->win[rel];
    return byte_at(p, p->data + rel);
}

#define B(i) rel_byte(p, (i))
#define B16(i) ((B(i) << 8) | B((i) + 1))

/* decode._ip_fields: 1 when a valid IP header is at q (its protocol, L4 offset, first). */
static int
ip_fields(const Packet *p, int64_t n, int64_t q, int ver, int64_t *proto, int64_t *l4,
          int *first)
{
    if (q >= n)
        return 0;
    if (ver == 4) {
        if (q + 20 > n || (B(q) >> 4) != 4 || (B(q) & 15) < 5)
            return 0;
        *proto = B(q + 9);
        *l4 = q + (B(q) & 15) * 4;
        *first = (B16(q + 6) & 0x1FFF) == 0;
        return 1;
    }
    if (q + 40 > n || (B(q) >> 4) != 6)
        return 0;
    int64_t nh = B(q + 6), r = q + 40;
    int fr = 1;
    for (int step = 0; step < 4; step++) {
        if (!is_v6_ext(nh) || r + 8 > n)
            break;
        if (nh == 44) {
            fr = fr && (B16(r + 2) & 0xFFF8) == 0;
            nh = B(r);
            r += 8;
        } else if (nh == 51) {
            int64_t hl = (B(r + 1) + 2) * 4;
            nh = B(r);
            r += hl;
        } else {
            int64_t hl = (B(r + 1) + 1) * 8;
            nh = B(r);
            r += hl;
        }
    }
    *proto = nh;
    *l4 = r;
    *first = fr && !is_v6_ext(nh);
    return 1;
}

static inline int
tunnel_port(int64_t port)
{
    return port == 4789 || port == 4790 || port == 6081 || port == 2152 || port == 5247
           || port == 1701 || port == 4754 || port == 5072 || port == 3544 || port == 6635;
}

/* decode._teredo: the state after Teredo's optional headers at q (IPv6 next), -1 or -2. */
static int
teredo(const Packet *p, int64_t n, int64_t q, int64_t *off, int64_t *et)
{
    if (B(q) == 0 && B(q + 1) == 1) {
        q += 4 + B(q + 2) + B(q + 3) + 8 + 1;
        if (q + 2 > n)
            return -2;
    }
    if (B(q) == 0 && B(q + 1) == 0)
        q += 8;
    if (q + 1 > n)
        return -2;
    if ((B(q) >> 4) != 6)
        return -1;
    *off = q;
    *et = 0x86DD;
    return S_ET;
}

/* decode._udp_tunnel: the state after a UDP tunnel header at q; -1 plain UDP, -2 cut. */
static int
udp_tunnel(const Packet *p, int64_t n, int64_t q, int64_t sport, int64_t dport, int64_t *off,
           int64_t *et)
{
    int64_t port = tunnel_port(dport) ? dport : tunnel_port(sport) ? sport : 0;
    *et = 0;
    if (!port)
        return -1;
    if (q + 8 > n)
        return -2;
    int64_t f = B(q);
    if (port == 4789) {
        *off = q + 8;
        return (f & 0x08) ? S_ETH : -1;
    }
    if (port == 4790) {
        int st;
        if (!(f & 0x04) || !next_proto((int)B(q + 3), &st, et))
            return -1;
        *off = q + 8;
        return st;
    }
    if (port == 6081) {
        if (f >> 6)
            return -1;
        *off = q + 8 + (f & 0x3F) * 4;
        *et = B16(q + 2);
        return S_ET;
    }
    if (port == 2152) {
        if ((f >> 5) != 1 || !(f & 0x10) || B(q + 1) != 0xFF)
            return -1;
        int64_t r = q + 8;
        if (f & 7) {
            if (r + 4 > n)
                return -2;
            int64_t nxt = (f & 4) ? B(q + 11) : 0;
            r += 4;
            for (int step = 0; step < MAX_LAYERS; step++) {
                if (!nxt)
                    break;
                if (r + 1 > n || B(r) == 0 || r + B(r) * 4 > n)
                    return -2;
                int64_t len = B(r) * 4;
                nxt = B(r + len - 1);
                r += len;
            }
        }
        *off = r;
        return S_GTP_INNER;
    }
    if (port == 5247) {
        if (f != 0 || (B(q + 3) & 0x80))
            return -1;
        int64_t native = B(q + 2) & 1;
        if (native && ((B(q + 2) >> 1) & 0x1F) != 1)
            return -1;
        *off = q + (B(q + 1) >> 3) * 4;
        return native ? S_WLAN_SWAPPED : S_ETH;
    }
    if (port == 4754) {
        *off = q;
        return S_GRE;
    }
    if (port == 6635) {
        *off = q;
        return S_MPLS;
    }
    if (port == 3544)
        return teredo(p, n, q, off, et);
    if (port == 5072) {
        if ((B(q + 2) & 15) != 1 || (B(q + 3) != 4 && B(q + 3) != 41))
            return -1;
        *et = B(q + 3) == 4 ? 0x0800 : 0x86DD;
        *off = q + 8 + ((int64_t)1 << (f >> 4)) + (B(q + 1) >> 4) * 4;
        return S_ET;
    }
    if ((f & 0x80) || (B(q + 1) & 15) != 2)
        return -1;
    int64_t r = q + 2 + ((f & 0x40) ? 2 : 0) + 4 + ((f & 0x08) ? 4 : 0);
    if (f & 0x02) {
        if (r + 2 > n)
            return -2;
        r += 2 + B16(r);
    }
    *off = r;
    return S_PPP;
}

/* decode._nflog_payload: the packet's offset in an NFLOG record, or -1 (family in *et). */
static int64_t
nflog_payload(const Packet *p, int64_t n, int64_t *et)
{
    *et = 0;
    if (n < 4)
        return -1;
    int64_t fam = B(0);
    if (fam != 2 && fam != 10) {
        *et = fam;
        return -1;
    }
    int64_t q = 4;
    for (int step = 0; step < 32; step++) {
        if (q + 4 > n)
            break;
        int64_t length = B(q) | (B(q + 1) << 8), kind = B(q + 2) | (B(q + 3) << 8);
        if (length < 4)
            break;
        if (kind == 9) {
            *et = fam == 2 ? 0x0800 : 0x86DD;
            return q + 4;
        }
        q += (length + 3) & ~(int64_t)3;
    }
    *et = fam;
    return -1;
}

/* passed: when not NULL, counts the valid IP headers passed, [0] IPv4 and [1] IPv6 (decode.locate's
 * `passed`: Wireshark's layer index of a header is its place among the frame's headers of its
 * version). */
static Located
locate(const Packet *p, int64_t n, int32_t linktype, int64_t *passed)
{
    Located out = {0, 0, 0};
    int64_t ip_off = 0, et = 0, q = 0;
    int ip_ver = 0, st;
#define STOP(w) do { out.off = ip_off; out.ver = ip_ver; out.why = (w); return out; } while (0)
    switch (linktype) {
    case LT_ETHERNET:
        st = S_ETH;
        break;
    case LT_NULL: case LT_LOOP: {
        if (n < 4)
            STOP(WHY(W_CUT, 0));
        int64_t fam = linktype == LT_LOOP ? B(3) : (B(0) != 0 ? B(0) : B(3));
        if (fam != 2 && fam != 10 && fam != 24 && fam != 28 && fam != 30)
            STOP(WHY(W_FAMILY, fam));
        st = S_ET;
        q = 4;
        et = fam == 2 ? 0x0800 : 0x86DD;
        break;
    }
    case LT_SLL:
        if (n < 16)
            STOP(WHY(W_CUT, 0));
        st = S_ET;
        q = 16;
        et = B16(14);
        break;
    case LT_SLL2:
        if (n < 20)
            STOP(WHY(W_CUT, 0));
        st = S_ET;
        q = 20;
        et = B16(0);
        break;
    case LT_RAW: case LT_RAW_12: case LT_RAW_14: case LT_IPV4: case LT_IPV6: {
        if (n < 1)
            STOP(WHY(W_CUT, 0));
        int64_t v = B(0) >> 4;
        if (v != 4 && v != 6)
            STOP(WHY(W_FAMILY, v));
        st = S_ET;
        et = v == 4 ? 0x0800 : 0x86DD;
        break;
    }
    case LT_FDDI:
        st = S_ET;
        q = 13;
        et = 0;
        break;
    case LT_PPP: case LT_PPP_HDLC:
        st = S_PPP;
        break;
    case LT_C_HDLC:
        if (n < 4)
            STOP(WHY(W_CUT, 0));
        st = S_ET;
        q = 4;
        et = B16(2);
        break;
    case LT_IEEE802_11:
        st = S_WLAN;
        break;
    case LT_RADIOTAP:
        if (n < 4)
            STOP(WHY(W_CUT, 0));
        st = S_WLAN;
        q = B(2) | (B(3) << 8);
        break;
    case LT_ARCNET_LINUX:
        if (n < 6)
            STOP(WHY(W_CUT, 0));
        if (B(4) == 0xD4) {
            st = S_ET;
            q = B(5) == 0xFF ? 12 : 8;
            et = 0x0800;
        } else if (B(4) == 0xF0) {
            st = S_ET;
            q = 5;
            et = 0x0800;
        } else {
            STOP(WHY(W_ARCNET, B(4)));
        }
        break;
    case LT_NFLOG:
        q = nflog_payload(p, n, &et);
        if (q < 0)
            STOP(WHY(W_NFLOG, et));
        st = S_ET;
        break;
    default:
        STOP(WHY(W_LINKTYPE, (uint32_t)linktype));
    }

    for (int layer = 0; layer < MAX_LAYERS; layer++) {
        switch (st) {
        case S_ETH:
            if (q + 14 > n)
                STOP(WHY(W_CUT, 0));
            et = B16(q + 12);
            q += 14;
            st = S_ET;
            break;
        case S_ET:
            if (et == 0x0800 || et == 0x86DD) {
                st = S_IP;
            } else if (is_vlan((unsigned)et)) {
                if (q + 4 > n)
                    STOP(WHY(W_CUT, 0));
                et = B16(q + 2);
                q += 4;
            } else if (et <= 1500) {
                if (q + 8 > n)
                    STOP(WHY(W_CUT, 0));
                if (B(q) != 0xAA || B(q + 1) != 0xAA || B(q + 2) != 3)
                    STOP(WHY(W_LLC, B16(q)));
                et = B16(q + 6);
                q += 8;
            } else if (et == 0x8847 || et == 0x8848) {
                st = S_MPLS;
            } else if (et == 0x8864) {
                st = S_PPP;
                q += 6;
            } else if (et == 0x88E5) {
                if (q + 2 > n)
                    STOP(WHY(W_CUT, 0));
                if (B(q) & 0x0C)
                    STOP(WHY(W_MACSEC, 0));
                q += (B(q) & 0x20) ? 14 : 6;
                if (q + 2 > n)
                    STOP(WHY(W_CUT, 0));
                et = B16(q);
                q += 2;
            } else if (et == 0x894F) {
                if (q + 4 > n)
                    STOP(WHY(W_CUT, 0));
                int64_t hlen = (B(q + 1) & 0x3F) * 4, code = B(q + 3);
                if (!next_proto((int)code, &st, &et) || hlen < 8)
                    STOP(WHY(W_NSH, code));
                q += hlen;
            } else if (et == 0x8926 || et == 0x893F) {
                int64_t k = et == 0x8926 ? 4 : 6;
                if (q + k + 2 > n)
                    STOP(WHY(W_CUT, 0));
                et = B16(q + k);
                q += k + 2;
            } else if (et == 0x88E7) {
                st = S_ETH;
                q += 4;
            } else if (et == 0x6558) {
                st = S_ETH;
            } else {
                STOP(WHY(W_ETHERTYPE, et));
            }
            break;
        case S_MPLS: {
            if (q + 5 > n)
                STOP(WHY(W_CUT, 0));
            int64_t bos = B(q + 2) & 1;
            q += 4;
            if (bos) {
                int64_t nib = B(q) >> 4;
                if (nib == 4 || nib == 6) {
                    st = S_ET;
                    et = nib == 4 ? 0x0800 : 0x86DD;
                } else if (nib == 0) {  /* Ethernet pseudowire: control word unless plain */
                    int64_t pet = q + 14 <= n ? B16(q + 12) : -1;
                    int plain = pet == 0x0800 || pet == 0x86DD || pet == 0x8100 || pet == 0x88A8
                                || pet == 0x0806;
                    st = S_ETH;
                    q += plain ? 0 : 4;
                } else {
                    STOP(WHY(W_MPLS, nib));
                }
            }
            break;
        }
        case S_PPP: {
            if (q + 2 > n)
                STOP(WHY(W_CUT, 0));
            if (B(q) == 0xFF && B(q + 1) == 0x03) {
                q += 2;
                if (q + 2 > n)
                    STOP(WHY(W_CUT, 0));
            }
            int64_t proto;
            if (B(q) & 1) {
                proto = B(q);
                q += 1;
            } else {
                proto = B16(q);
                q += 2;
            }
            if (proto == 0x0281) {
                st = S_MPLS;
                break;
            }
            et = proto == 0x21 ? 0x0800 : proto == 0x57 ? 0x86DD : 0;
            if (!et)
                STOP(WHY(W_PPP, proto));
            st = S_ET;
            break;
        }
        case S_IP: {
            int ver = et == 0x0800 ? 4 : 6;
            int64_t proto, l4;
            int first;
            if (!ip_fields(p, n, q, ver, &proto, &l4, &first)) {
                if (ip_ver)
                    STOP(WHY(W_INNER, ver));
                out.off = q;
                out.ver = ver;
                return out;
            }
            ip_off = q;
            ip_ver = ver;
            if (passed != NULL)
                passed[ver == 6]++;
            if (!first)
                STOP(0);
            if (proto == 4 || proto == 41) {
                st = S_ET;
                q = l4;
                et = proto == 4 ? 0x0800 : 0x86DD;
            } else if (proto == 47) {
                st = S_GRE;
                q = l4;
            } else if (proto == 51 && ver == 4 && l4 + 2 <= n && (B(l4) == 4 || B(l4) == 41)) {
                st = S_ET;
                et = B(l4) == 4 ? 0x0800 : 0x86DD;
                q = l4 + (B(l4 + 1) + 2) * 4;
            } else if (proto == 17 && l4 + 8 <= n) {
                st = udp_tunnel(p, n, l4 + 8, B16(l4), B16(l4 + 2), &q, &et);
                if (st < 0)
                    STOP(st == -1 ? 0 : WHY(W_CUT, 0));
            } else {
                STOP(0);
            }
            break;
        }
        case S_GRE: {
            if (q + 4 > n)
                STOP(WHY(W_CUT, 0));
            int64_t flags = B16(q), ptype = B16(q + 2), gv = flags & 7;
            if (gv > 1 || (flags & 0x4000))
                STOP(WHY(W_GRE, ptype));
            int seq = (flags & 0x1000) != 0;
            q += 4 + 4 * (((flags & 0x8000) != 0) + ((flags & 0x2000) != 0) + seq);
            if (gv == 1)
                q += (flags & 0x0080) ? 4 : 0;
            if (ptype == 0x88BE) {
                st = S_ETH;
                q += seq ? 8 : 0;
            } else if (ptype == 0x22EB) {
                if (q + 12 > n)
                    STOP(WHY(W_CUT, 0));
                st = S_ETH;
                q += (B(q + 11) & 1) ? 20 : 12;
            } else if (ptype == 0x880B) {
                st = S_PPP;
            } else if (ptype == 0x8200) {
                st = S_WLAN;
            } else {
                st = S_ET;
                et = ptype;
            }
            break;
        }
        case S_GTP_INNER: {
            if (q >= n)
                STOP(WHY(W_CUT, 0));
            int64_t nib = B(q) >> 4;
            if (nib != 4 && nib != 6)
                STOP(WHY(W_INNER, nib));
            st = S_ET;
            et = nib == 4 ? 0x0800 : 0x86DD;
            break;
        }
        case S_WLAN: case S_WLAN_SWAPPED: {
            if (q + 24 > n)
                STOP(WHY(W_CUT, 0));
            int64_t fc0 = st == S_WLAN ? B(q) : B(q + 1), fc1 = st == S_WLAN ? B(q + 1) : B(q);
            if (((fc0 >> 2) & 3) != 2 || (fc0 & 0x40) || (fc1 & 0x40))
                STOP(WHY(W_WLAN, (fc0 << 8) | fc1));
            q += 24 + ((fc1 & 3) == 3 ? 6 : 0);
            if (fc0 & 0x80)
                q += 2 + ((fc1 & 0x80) ? 4 : 0);
            st = S_ET;
            et = 0;
            break;
        }
        }
    }
    STOP(WHY(W_DEPTH, 0));
#undef STOP
}
#undef B
#undef B16

static void
decode_one(const Packet *p, int64_t caplen, int32_t linktype, int64_t *col, Py_ssize_t n,
           Py_ssize_t i)
{
#define SET(c, v) (col[(Py_ssize_t)(c) * n + i] = (int64_t)(v))
    Located where = locate(p, caplen, linktype, NULL);
    int64_t rel3 = where.off;
    int ver = where.ver;

    const unsigned char *h = at(p, rel3, 40);
    unsigned b0 = h[0];
    int v4 = ver == 4 && (b0 >> 4) == 4 && (b0 & 15) >= 5 && rel3 + 20 <= caplen;
    int v6 = ver == 6 && (b0 >> 4) == 6 && rel3 + 40 <= caplen;
    unsigned frag = be16(h + 6);
    int64_t iplen = be16(h + 2);
    int df = v4 && (frag & 0x4000);
    int first = v4 && (frag & 0x1FFF) == 0;
    int64_t proto = h[9];
    int64_t rel4 = rel3 + (int64_t)(b0 & 15) * 4;
    uint64_t src_h = mix64(be32(h + 12)), dst_h = mix64(be32(h + 16));
    int64_t l3 = p->data + rel3;
    if (v6) {
        const uint64_t k = 0x9E3779B97F4A7C15ULL;
        iplen = 40 + (int64_t)be16(h + 4);
        df = 1;
        src_h = mix64(mix64(be64(h + 8)) * k + be64(h + 16));
        dst_h = mix64(mix64(be64(h + 24)) * k + be64(h + 32));
        /* Extension headers: a bounded chain, read from the buffer. */
        int64_t nh = h[6], q = l3 + 40, end = p->data + caplen;
        int fr = 1;
        for (int step = 0; step < 4; step++) {
            if (!(is_v6_ext(nh) && q + 8 <= end))
                break;
            int64_t hl = nh == 44 ? 8 : nh == 51 ? (byte_at(p, q + 1) + 2) * 4
                                                 : (byte_at(p, q + 1) + 1) * 8;
            if (nh == 44 && (((byte_at(p, q + 2) << 8) | byte_at(p, q + 3)) & 0xFFF8) != 0)
                fr = 0;
            nh = byte_at(p, q);
            q += hl;
        }
        proto = nh;
        rel4 = q - p->data;
        first = fr && !is_v6_ext(nh);
    }
    int ip = v4 || v6;
    const unsigned char *t = at(p, rel4, 20);
    int tcp = first && proto == 6 && rel4 + 20 <= caplen;
    int udp = first && proto == 17 && rel4 + 8 <= caplen;
    int ports = tcp || udp;
    int64_t doff = tcp ? (int64_t)(t[12] >> 4) * 4 : udp ? 8 : 0;
    int64_t relp = rel4 + doff;
    int64_t paylen = 0;
    if (ports && rel3 + iplen - relp > 0)
        paylen = rel3 + iplen - relp;
    int64_t pcap = paylen < caplen - relp ? paylen : caplen - relp;
    if (pcap < 0)
        pcap = 0;
    /* The payload's first bytes, as decode.py's probe: from the window unless the payload
     * starts too deep for 14 bytes of it. */
    int64_t relp_c = ports ? relp : 0;
    const unsigned char *pb = p->win + relp_c;
    if (relp_c + 14 > p->winlen) {
        int64_t off = p->data + relp_c;
        if (off > p->buflen - 14)
            off = p->buflen - 14;
        pb = p->buf + (off < 0 ? 0 : off);
    }

    SET(C_IPVER, v4 ? 4 : v6 ? 6 : 0);
    SET(C_L3, l3);
    SET(C_IPLEN, ip ? iplen : 0);
    SET(C_DF, df);
    SET(C_PROTO, ip ? proto : -1);
    SET(C_FIRST, first && ip);
    SET(C_L4, p->data + rel4);
    SET(C_SPORT, ports ? (int64_t)be16(t) : -1);
    SET(C_DPORT, ports ? (int64_t)be16(t + 2) : -1);
    SET(C_FLAGS, tcp ? t[13] : 0);
    SET(C_SEQ, tcp ? (int64_t)be32(t + 4) : 0);
    SET(C_ACK, tcp ? (int64_t)be32(t + 8) : 0);
    SET(C_PAY, p->data + relp);
    SET(C_PAYLEN, paylen);
    SET(C_PCAP, pcap);
    SET(C_P0, pcap > 0 ? pb[0] : 0);
    SET(C_P1, pcap > 1 ? pb[1] : 0);
    SET(C_P2, pcap > 2 ? pb[2] : 0);
    SET(C_P5, pcap > 5 ? pb[5] : 0);
    SET(C_P13, pcap > 13 ? pb[13] : 0);
    SET(C_SRC_H, src_h);
    SET(C_DST_H, dst_h);
    SET(C_SRC4, v4 ? be32(h + 12) : 0);
    SET(C_DST4, v4 ? be32(h + 16) : 0);
    if (tcp) {
        unsigned sp = be16(t), dp = be16(t + 2);
        SET(C_TCP_FWD, directed(src_h, dst_h, sp, dp));
        SET(C_TCP_REV, directed(dst_h, src_h, dp, sp));
    } else {
        SET(C_TCP_FWD, 0);
        SET(C_TCP_REV, 0);
    }
    SET(C_WHY, where.why);
#undef SET
}

PyDoc_STRVAR(columns_doc,
"columns(buf, win, data, caplen, linktype, out)\n\n"
"Decode n records into out, an (NCOLS, n) int64 array: buf the chunk's buffer, win the\n"
"(n, width) packet windows (rows may be strided), data/caplen int64 and linktype int32\n"
"columns of n.");

static PyObject *
columns(PyObject *self, PyObject *args)
{
    PyObject *o_buf, *o_win, *o_data, *o_caplen, *o_lt, *o_out;
    Py_buffer buf = {0}, win = {0}, data = {0}, caplen = {0}, lt = {0}, out = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOOOO", &o_buf, &o_win, &o_data, &o_caplen, &o_lt, &o_out))
        return NULL;
    if (PyObject_GetBuffer(o_buf, &buf, PyBUF_SIMPLE) < 0
        || PyObject_GetBuffer(o_win, &win, PyBUF_STRIDES) < 0
        || PyObject_GetBuffer(o_data, &data, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_caplen, &caplen, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_lt, &lt, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_out, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    Py_ssize_t n = data.len / 8;
    if (win.ndim != 2 || win.shape[0] != n || win.strides[1] != 1 || win.shape[1] < 40
        || caplen.len != n * 8 || lt.len != n * 4 || out.len != (Py_ssize_t)NCOLS * n * 8
        || buf.len < 40) {
        PyErr_SetString(PyExc_ValueError, "columns: inconsistent shapes");
        goto done;
    }
    const int64_t *d = data.buf, *cl = caplen.buf;
    const int32_t *l = lt.buf;
    int64_t *col = out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        Packet p = {buf.buf, buf.len, (const unsigned char *)win.buf + i * win.strides[0],
                    win.shape[1], d[i]};
        decode_one(&p, cl[i], l[i], col, n, i);
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("n", n);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&win);
    PyBuffer_Release(&data);
    PyBuffer_Release(&caplen);
    PyBuffer_Release(&lt);
    PyBuffer_Release(&out);
    return result;
}

/* ---- decode.decode, compiled: the summaries of the rare rows ----------------------------------
 *
 * SYNs, TLS/DTLS handshakes and ICMP errors are summarised one by one into the NamedTuples of
 * decode.py (Packet, TcpInfo, TlsHello, DtlsRecord, Quote, IcmpError). In Python that was half
 * of a scan made only of such packets (~13 us a packet); here it is the same reads, line for
 * line, and the tuples built directly. Tests require == with decode.decode on every row of every
 * capture of the suite and on generated hostile packets. Every read is bounded by the span it
 * is in (the captured bytes of the frame, or a slice of them as the Python slices them). */

enum { T_PACKET, T_TCP, T_TLS, T_DTLS, T_QUOTE, T_ICMP, NTYPES };
/* Fields of each type, in decode.py's order; set_types checks them against _fields. */
static const char *const type_names[NTYPES] = {
    "Packet", "TcpInfo", "TlsHello", "DtlsRecord", "Quote", "IcmpError",
};
static const Py_ssize_t type_fields[NTYPES] = {16, 5, 5, 11, 8, 6};
#define MAX_FIELDS 16
static PyTypeObject *types[NTYPES];
static PyObject *defaults[NTYPES][MAX_FIELDS];  /* _field_defaults, NULL where none */
#define MAX_DTLS_VERSIONS 8
static unsigned dtls_versions[MAX_DTLS_VERSIONS];
static int n_dtls_versions;
static Py_ssize_t max_dtls_records;

enum { PROTO_ICMP = 1, PROTO_TCP = 6, PROTO_UDP = 17, PROTO_ICMPV6 = 58 };
/* RFC 8446 5.1 / RFC 6347 4.1 content types, RFC 8446 4 handshake types. */
enum { CT_CCS = 20, CT_APPDATA = 23, CT_HANDSHAKE = 22 };
enum { HS_CLIENT_HELLO = 1, HS_SERVER_HELLO = 2, HS_HELLO_VERIFY = 3 };
#define TCP_SYN 0x02

/* A NamedTuple of type t from its first `given` values (references stolen; a NULL among them is
 * an error already set), the rest from the type's defaults. Built as tuple.__new__ builds a
 * subclass instance: allocate, then fill. */
static PyObject *
make(int t, Py_ssize_t given, PyObject *const *vals)
{
    Py_ssize_t n = type_fields[t];
    PyObject *o = NULL;
    for (Py_ssize_t i = 0; i < given; i++)
        if (vals[i] == NULL)
            goto fail;
    for (Py_ssize_t i = given; i < n; i++)
        if (defaults[t][i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s: field %zd has no default", type_names[t], i);
            goto fail;
        }
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 tuples cache their hash: let tuple.__new__ initialise what it needs. */
    PyObject *items = PyTuple_New(n);
    if (items == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(items, i, i < given ? vals[i] : Py_NewRef(defaults[t][i]));
    PyObject *args = PyTuple_Pack(1, items);
    Py_DECREF(items);
    if (args == NULL)
        return NULL;
    o = PyTuple_Type.tp_new(types[t], args, NULL);
    Py_DECREF(args);
    return o;
#else
    o = types[t]->tp_alloc(types[t], n);
    if (o == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(o, i, i < given ? vals[i] : Py_NewRef(defaults[t][i]));
    return o;
#endif
fail:
    for (Py_ssize_t i = 0; i < given; i++)
        Py_XDECREF(vals[i]);
    return NULL;
}

static inline PyObject *
int_(int64_t v)
{
    return PyLong_FromLongLong(v);
}

static inline PyObject *
none_or_int(int ok, int64_t v)
{
    return ok ? PyLong_FromLongLong(v) : Py_NewRef(Py_None);
}

static inline PyObject *
bytes_(const unsigned char *d, Py_ssize_t len)
{
    return PyBytes_FromStringAndSize((const char *)d, len);
}

/* Dotted decimal of 4 bytes at t (printf costs more than the rest of a packet's summary). */
static char *
dotted(char *t, const unsigned char *a)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (i)
            *t++ = '.';
        if (v >= 100)
            *t++ = (char)('0' + v / 100);
        if (v >= 10)
            *t++ = (char)('0' + v / 10 % 10);
        *t++ = (char)('0' + v % 10);
    }
    return t;
}

/* The text socket.inet_ntop gives an IPv4 address: dotted decimal. */
static PyObject *
ip4_text(const unsigned char *a)
{
    char s[16];
    return PyUnicode_FromStringAndSize(s, dotted(s, a) - s);
}

/* The text socket.inet_ntop gives an IPv6 address (glibc's inet_ntop6, RFC 5952): lower-case
 * hex words without leading zeros, the first longest run of two or more zero words as "::",
 * and the last 32 bits dotted after a run of six zero words (IPv4-compatible) or of five zero
 * words and ffff (IPv4-mapped). */
static PyObject *
ip6_text(const unsigned char *a)
{
    unsigned w[8];
    for (int i = 0; i < 8; i++)
        w[i] = be16(a + 2 * i);
    int best = -1, best_len = 0, cur = -1, cur_len = 0;
    for (int i = 0; i < 8; i++) {
        if (w[i] == 0) {
            if (cur < 0) {
                cur = i;
                cur_len = 0;
            }
            cur_len++;
        } else if (cur >= 0) {
            if (best < 0 || cur_len > best_len) {
                best = cur;
                best_len = cur_len;
            }
            cur = -1;
        }
    }
    if (cur >= 0 && (best < 0 || cur_len > best_len)) {
        best = cur;
        best_len = cur_len;
    }
    if (best >= 0 && best_len < 2)
        best = -1;
    char s[48], *t = s;
    for (int i = 0; i < 8; i++) {
        if (best >= 0 && i >= best && i < best + best_len) {
            if (i == best)
                *t++ = ':';
            continue;
        }
        if (i != 0)
            *t++ = ':';
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xFFFF))) {
            t = dotted(t, a + 12);
            break;
        }
        int started = 0;  /* hex without leading zeros */
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned x = (w[i] >> shift) & 15;
            if (x || started || shift == 0) {
                *t++ = "0123456789abcdef"[x];
                started = 1;
            }
        }
    }
    if (best >= 0 && best + best_len == 8)
        *t++ = ':';
    return PyUnicode_FromStringAndSize(s, t - s);
}

static inline int
v6_ext(unsigned nh)
{
    return nh == 0 || nh == 43 || nh == 60 || nh == 51 || nh == 44;
}

/* decode._ip: an IP header of version ver at d[off], read within d[0:n]. */
typedef struct {
    const unsigned char *src, *dst;  /* the addresses' bytes */
    int v6;
    int64_t len;                     /* IPv4 total length, IPv6 40 + payload length */
    int df, proto, first;
    int64_t l4;
} Ip;

static int
ip_read(const unsigned char *d, int64_t n, int64_t off, int ver, Ip *ip)
{
    if (ver == 4) {
        if (n < off + 20)
            return 0;
        const unsigned char *h = d + off;
        int64_t ihl = (int64_t)(h[0] & 15) * 4;
        if ((h[0] >> 4) != 4 || ihl < 20)
            return 0;
        unsigned frag = be16(h + 6);
        ip->src = h + 12;
        ip->dst = h + 16;
        ip->v6 = 0;
        ip->len = be16(h + 2);
        ip->df = (frag & 0x4000) != 0;
        ip->proto = h[9];
        ip->l4 = off + ihl;
        ip->first = (frag & 0x1FFF) == 0;
        return 1;
    }
    if (n < off + 40 || (d[off] >> 4) != 6)
        return 0;
    unsigned nh = d[off + 6];
    int64_t q = off + 40;
    int first = 1;
    for (int step = 0; step < 8; step++) {  /* bounded: a chain of extension headers */
        if (!v6_ext(nh) || n < q + 8)
            break;
        if (nh == 44) {
            first = first && (be16(d + q + 2) & 0xFFF8) == 0;
            nh = d[q];
            q += 8;
        } else if (nh == 51) {
            int64_t hl = ((int64_t)d[q + 1] + 2) * 4;
            nh = d[q];
            q += hl;
        } else {
            int64_t hl = ((int64_t)d[q + 1] + 1) * 8;
            nh = d[q];
            q += hl;
        }
    }
    ip->src = d + off + 8;
    ip->dst = d + off + 24;
    ip->v6 = 1;
    ip->len = 40 + (int64_t)be16(d + off + 4);
    ip->df = 1;
    ip->proto = (int)nh;
    ip->l4 = q;
    ip->first = first && !v6_ext(nh);
    return 1;
}

static inline PyObject *
addr_text(const Ip *ip, const unsigned char *a)
{
    return ip->v6 ? ip6_text(a) : ip4_text(a);
}

/* decode._mss: the MSS option among the TCP options in d[p:end] (RFC 9293 3.2). */
static PyObject *
mss_option(const unsigned char *d, int64_t p, int64_t end)
{
    for (int step = 0; step < 40; step++) {
        if (p >= end)
            break;
        unsigned kind = d[p];
        if (kind == 0)
            break;
        if (kind == 1) {
            p += 1;
            continue;
        }
        if (p + 1 >= end)
            break;
        unsigned length = d[p + 1];
        if (kind == 2 && length == 4 && p + 4 <= end)
            return int_(be16(d + p + 2));
        if (length < 2)
            break;
        p += length;
    }
    return Py_NewRef(Py_None);
}

/* decode._sni: server_name (RFC 6066 3) from the cipher suites' offset p; the name itself is
 * read within the captured bytes d[0:n], as the Python slices it. */
static PyObject *
sni(const unsigned char *d, int64_t n, int64_t p, int64_t end)
{
    if (p + 2 > end)
        return Py_NewRef(Py_None);
    p += 2 + be16(d + p);
    if (p + 1 > end)
        return Py_NewRef(Py_None);
    p += 1 + d[p];
    if (p + 2 > end)
        return Py_NewRef(Py_None);
    int64_t ext_end = p + 2 + be16(d + p);
    if (ext_end > end)
        ext_end = end;
    p += 2;
    for (int step = 0; step < 64; step++) {  /* bounded: a hostile hello cannot loop long */
        if (p + 4 > ext_end)
            break;
        unsigned etype = be16(d + p), elen = be16(d + p + 2);
        if (etype == 0 && elen >= 5 && p + 9 <= ext_end) {
            int64_t name_len = be16(d + p + 7);
            if (p + 9 + name_len > n)
                return Py_NewRef(Py_None);
            return PyUnicode_DecodeASCII((const char *)d + p + 9, name_len, "replace");
        }
        p += 4 + elen;
    }
    return Py_NewRef(Py_None);
}

/* decode._tls_hello: a ClientHello/ServerHello at d[p:end] (RFC 8446 4.1, RFC 5246 7.4). */
static PyObject *
tls_hello(const unsigned char *d, int64_t n, int64_t p, int64_t end)
{
    if (end - p < 6 || d[p] != CT_HANDSHAKE || d[p + 1] != 3)
        return Py_NewRef(Py_None);
    unsigned hs_type = d[p + 5];
    if (hs_type != HS_CLIENT_HELLO && hs_type != HS_SERVER_HELLO)
        return Py_NewRef(Py_None);
    int64_t b = p + 9;
    if (end - b < 35) {
        PyObject *v[] = {int_(hs_type), int_(0), bytes_(d, 0)};
        return make(T_TLS, 3, v);
    }
    int64_t sid_end = b + 35 + d[b + 34];
    int64_t q = sid_end;
    if (sid_end > end)
        sid_end = end;
    PyObject *v[] = {int_(hs_type), int_(be16(d + b)), bytes_(d + b + 35, sid_end - (b + 35)),
                     NULL, NULL};
    if (hs_type == HS_SERVER_HELLO) {
        v[3] = Py_NewRef(Py_None);
        v[4] = none_or_int(end >= q + 2, end >= q + 2 ? be16(d + q) : 0);
    } else {
        v[3] = sni(d, n, q, end);
        v[4] = Py_NewRef(Py_None);
    }
    return make(T_TLS, 5, v);
}

static int
known_dtls_version(unsigned v)
{
    for (int i = 0; i < n_dtls_versions; i++)
        if (dtls_versions[i] == v)
            return 1;
    return 0;
}

/* decode._dtls_handshake: a plaintext handshake record's body (RFC 6347 4.2.2), len >= 12. */
static PyObject *
dtls_handshake(unsigned ctype, unsigned version, unsigned epoch, unsigned length,
               const unsigned char *body, int64_t blen)
{
    unsigned hs_type = body[0];
    int64_t frag_off = ((int64_t)body[6] << 16) | (body[7] << 8) | body[8];
    const unsigned char *msg = body + 12;
    int64_t mlen = blen - 12;
    PyObject *sid = NULL, *cookie = NULL, *cipher = NULL, *hello_version = NULL;
    if (frag_off == 0
        && (hs_type == HS_CLIENT_HELLO || hs_type == HS_SERVER_HELLO || hs_type == HS_HELLO_VERIFY)
        && mlen >= 2)
        hello_version = int_(be16(msg));
    if (frag_off == 0 && (hs_type == HS_CLIENT_HELLO || hs_type == HS_SERVER_HELLO) && mlen >= 35) {
        int64_t sid_len = msg[34];
        if (mlen >= 35 + sid_len) {
            sid = bytes_(msg + 35, sid_len);
            int64_t p = 35 + sid_len;
            if (hs_type == HS_CLIENT_HELLO && mlen > p)
                cookie = int_(msg[p]);
            else if (hs_type == HS_SERVER_HELLO && mlen >= p + 2)
                cipher = int_(be16(msg + p));
        }
    }
    PyObject *v[] = {
        int_(ctype), int_(version), int_(epoch), int_(length), int_(hs_type),
        int_(be16(body + 4)), int_(frag_off),
        sid ? sid : Py_NewRef(Py_None), cookie ? cookie : Py_NewRef(Py_None),
        cipher ? cipher : Py_NewRef(Py_None), hello_version ? hello_version : Py_NewRef(Py_None),
    };
    return make(T_DTLS, 11, v);
}

/* decode.dtls_records: the DTLS records of one UDP payload d[0:n] (RFC 6347 4.1), a tuple. */
static PyObject *
dtls_records(const unsigned char *d, int64_t n)
{
    PyObject *recs[64];
    Py_ssize_t k = 0;
    int64_t p = 0;
    while (k < max_dtls_records && p + 13 <= n && d[p] >= CT_CCS && d[p] <= CT_APPDATA
           && known_dtls_version(be16(d + p + 1))) {
        unsigned ctype = d[p], version = be16(d + p + 1), epoch = be16(d + p + 3);
        unsigned length = be16(d + p + 11);
        int64_t blen = n - (p + 13) < length ? n - (p + 13) : length;
        PyObject *r;
        if (ctype == CT_HANDSHAKE && epoch == 0 && blen >= 12) {
            r = dtls_handshake(ctype, version, epoch, length, d + p + 13, blen);
        } else {
            PyObject *v[] = {int_(ctype), int_(version), int_(epoch), int_(length)};
            r = make(T_DTLS, 4, v);
        }
        if (r == NULL) {
            while (k > 0)
                Py_DECREF(recs[--k]);
            return NULL;
        }
        recs[k++] = r;
        p += 13 + (int64_t)length;
    }
    PyObject *t = PyTuple_New(k);
    for (Py_ssize_t i = 0; i < k; i++) {
        if (t == NULL)
            Py_DECREF(recs[i]);
        else
            PyTuple_SET_ITEM(t, i, recs[i]);
    }
    return t;
}

/* decode._quote: the original header quoted in an ICMP error, q[0:n]. */
static PyObject *
quote(const unsigned char *q, int64_t n)
{
    if (n <= 0)
        return Py_NewRef(Py_None);
    int ver = q[0] >> 4;
    Ip ip;
    if ((ver != 4 && ver != 6) || !ip_read(q, n, 0, ver, &ip))
        return Py_NewRef(Py_None);
    int ports = ip.first && (ip.proto == PROTO_TCP || ip.proto == PROTO_UDP) && n >= ip.l4 + 4;
    PyObject *v[] = {
        int_(ver), addr_text(&ip, ip.src), addr_text(&ip, ip.dst), int_(ip.len), int_(ip.proto),
        none_or_int(ports, ports ? be16(q + ip.l4) : 0),
        none_or_int(ports, ports ? be16(q + ip.l4 + 2) : 0), PyBool_FromLong(ip.df),
    };
    return make(T_QUOTE, 8, v);
}

/* decode._icmp: an ICMP error that quotes a packet (RFC 792, 1191, 4443), d[l4:end]. */
static PyObject *
icmp_error(const unsigned char *d, int64_t l4, int64_t end, int proto, int64_t quote_layer)
{
    unsigned itype = d[l4], code = d[l4 + 1];
    PyObject *mtu;
    if (proto == PROTO_ICMP) {
        if (itype != 3 && itype != 11 && itype != 12)
            return Py_NewRef(Py_None);
        mtu = none_or_int(itype == 3 && code == 4, be16(d + l4 + 6));
    } else {
        if (itype < 1 || itype > 4)
            return Py_NewRef(Py_None);
        mtu = none_or_int(itype == 2, be32(d + l4 + 4));
    }
    PyObject *v[] = {
        PyBool_FromLong(proto == PROTO_ICMPV6), int_(itype), int_(code), mtu,
        quote(d + l4 + 8, end - (l4 + 8)), int_(quote_layer),
    };
    return make(T_ICMP, 6, v);
}

/* decode.decode of one frame d[0:n] whose innermost IP header (version ver) is at off. */
static PyObject *
summarise(const Packet *pk, const unsigned char *d, int64_t n, int32_t linktype,
          PyObject *const head[3], int64_t off, int ver)
{
    Ip ip;
    if (!ver || !ip_read(d, n, off, ver, &ip)) {
        PyObject *v[] = {Py_NewRef(head[0]), Py_NewRef(head[1]), Py_NewRef(head[2])};
        return make(T_PACKET, 3, v);
    }
    PyObject *v[MAX_FIELDS] = {
        Py_NewRef(head[0]), Py_NewRef(head[1]), Py_NewRef(head[2]), int_(ver),
        addr_text(&ip, ip.src), addr_text(&ip, ip.dst), int_(ip.len), PyBool_FromLong(ip.df),
        int_(ip.proto),
    };
    int64_t ip_end = off + ip.len, l4 = ip.l4;
    int64_t end = ip_end < n ? ip_end : n;
    if (!ip.first)
        return make(T_PACKET, 9, v);
    if (ip.proto == PROTO_TCP && n >= l4 + 20) {
        const unsigned char *t = d + l4;
        int64_t doff = (int64_t)(t[12] >> 4) * 4, flags = t[13];
        int64_t payload_len = ip_end - l4 - doff > 0 ? ip_end - l4 - doff : 0;
        PyObject *tv[] = {
            int_(flags), int_(be32(t + 4)), int_(be32(t + 8)), int_(payload_len),
            (flags & TCP_SYN) ? mss_option(d, l4 + 20, l4 + doff < n ? l4 + doff : n)
                              : Py_NewRef(Py_None),
        };
        v[9] = int_(be16(t));
        v[10] = int_(be16(t + 2));
        v[11] = make(T_TCP, 5, tv);
        v[12] = Py_NewRef(Py_None);
        v[13] = payload_len >= 6 && doff >= 20 ? tls_hello(d, n, l4 + doff, end)
                                               : Py_NewRef(Py_None);
        return make(T_PACKET, 14, v);
    }
    if (ip.proto == PROTO_UDP && n >= l4 + 8) {
        v[9] = int_(be16(d + l4));
        v[10] = int_(be16(d + l4 + 2));
        v[11] = Py_NewRef(Py_None);
        v[12] = int_(ip_end - l4 - 8 > 0 ? ip_end - l4 - 8 : 0);
        v[13] = Py_NewRef(Py_None);
        v[14] = dtls_records(d + l4 + 8, end - (l4 + 8));
        return make(T_PACKET, 15, v);
    }
    if ((ip.proto == PROTO_ICMP || ip.proto == PROTO_ICMPV6) && n >= l4 + 8) {
        /* The quote's layer index: the frame's IP headers of this version, walked again only
         * for ICMP errors (decode._layer_index). */
        int64_t passed[2] = {0, 0};
        locate(pk, n, linktype, passed);
        for (int i = 9; i < 15; i++)
            v[i] = Py_NewRef(defaults[T_PACKET][i]);
        v[15] = icmp_error(d, l4, end, ip.proto, passed[ver == 6] + 1);
        return make(T_PACKET, 16, v);
    }
    return make(T_PACKET, 9, v);
}

PyDoc_STRVAR(set_types_doc,
"set_types(packet, tcp, tls, dtls, quote, icmp, dtls_versions, max_dtls_records)\n\n"
"The NamedTuple types summarise() builds (decode.Packet, TcpInfo, TlsHello, DtlsRecord,\n"
"Quote, IcmpError), the DTLS versions a record header may carry, and the records read a\n"
"datagram. Called once, by decode.py at import.");

static PyObject *
set_types(PyObject *self, PyObject *args)
{
    PyObject *t[NTYPES], *versions;
    Py_ssize_t max_records;
    if (!PyArg_ParseTuple(args, "OOOOOOOn", &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &versions,
                          &max_records))
        return NULL;
    if (max_records < 0 || max_records > 64) {
        PyErr_SetString(PyExc_ValueError, "set_types: max_dtls_records must be 0-64");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(versions, "set_types: dtls_versions must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t nv = PySequence_Fast_GET_SIZE(seq);
    if (nv > MAX_DTLS_VERSIONS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "set_types: too many DTLS versions");
        return NULL;
    }
    unsigned vers[MAX_DTLS_VERSIONS];
    for (Py_ssize_t i = 0; i < nv; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        vers[i] = (unsigned)v;
    }
    Py_DECREF(seq);
    PyObject *defs[NTYPES][MAX_FIELDS] = {{NULL}};
    for (int k = 0; k < NTYPES; k++) {
        if (!PyType_Check(t[k]) || !PyType_IsSubtype((PyTypeObject *)t[k], &PyTuple_Type)) {
            PyErr_Format(PyExc_TypeError, "set_types: %s must be a NamedTuple", type_names[k]);
            goto fail;
        }
        PyObject *fields = PyObject_GetAttrString(t[k], "_fields");
        PyObject *fd = fields ? PyObject_GetAttrString(t[k], "_field_defaults") : NULL;
        if (fd == NULL || !PyTuple_Check(fields) || !PyDict_Check(fd)
            || PyTuple_GET_SIZE(fields) != type_fields[k]) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "set_types: %s must have %zd fields",
                             type_names[k], type_fields[k]);
            Py_XDECREF(fields);
            Py_XDECREF(fd);
            goto fail;
        }
        for (Py_ssize_t i = 0; i < type_fields[k]; i++) {
            PyObject *d = PyDict_GetItemWithError(fd, PyTuple_GET_ITEM(fields, i));
            defs[k][i] = Py_XNewRef(d);
        }
        Py_DECREF(fields);
        Py_DECREF(fd);
        if (PyErr_Occurred())
            goto fail;
    }
    for (int k = 0; k < NTYPES; k++) {
        Py_XSETREF(types[k], (PyTypeObject *)Py_NewRef(t[k]));
        for (int i = 0; i < MAX_FIELDS; i++)
            Py_XSETREF(defaults[k][i], defs[k][i]);
    }
    memcpy(dtls_versions, vers, sizeof vers);
    n_dtls_versions = (int)nv;
    max_dtls_records = max_records;
    Py_RETURN_NONE;
fail:
    for (int k = 0; k < NTYPES; k++)
        for (int i = 0; i < MAX_FIELDS; i++)
            Py_XDECREF(defs[k][i]);
    return NULL;
}

PyDoc_STRVAR(summarise_doc,
"summarise(buf, data, caplen, linktype, frame, ts, origlen, l3, ipver)\n\n"
"decode.decode of n records, a list of decode.Packet: buf the chunk's buffer; data, caplen,\n"
"frame, origlen, l3, ipver int64, linktype int32 and ts float64 columns of n;\n"
"l3 the absolute offset of each record's innermost IP header of version ipver (0: none).");

#define SUMMARY_AHEAD 2

static PyObject *
summarise_rows(PyObject *self, PyObject *args)
{
    PyObject *o[9];
    Py_buffer b[9];
    int got = 0;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &o[8]))
        return NULL;
    if (types[0] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "summarise: set_types was not called");
        return NULL;
    }
    /* item sizes of data, caplen, linktype, frame, ts, origlen, l3, ipver */
    static const Py_ssize_t item[9] = {1, 8, 8, 4, 8, 8, 8, 8, 8};
    for (; got < 9; got++)
        if (PyObject_GetBuffer(o[got], &b[got], got ? PyBUF_C_CONTIGUOUS : PyBUF_SIMPLE) < 0)
            goto done;
    Py_ssize_t n = b[1].len / 8;
    for (int k = 1; k < 9; k++)
        if (b[k].len != n * item[k] || b[k].itemsize != item[k]) {
            PyErr_SetString(PyExc_ValueError, "summarise: inconsistent columns");
            goto done;
        }
    const unsigned char *buf = b[0].buf;
    const int64_t *data = b[1].buf, *caplen = b[2].buf, *frame = b[4].buf, *orig = b[6].buf;
    const int64_t *l3 = b[7].buf, *ipver = b[8].buf;
    const int32_t *lt = b[3].buf;
    const double *ts = b[5].buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (data[i] < 0 || caplen[i] < 0 || data[i] > b[0].len - caplen[i]
            || (ipver[i] && l3[i] < data[i])) {
            PyErr_SetString(PyExc_ValueError, "summarise: a record outside the buffer");
            goto done;
        }
    result = PyList_New(n);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* The rare rows lie far apart in the buffer, each a cache miss: fetch the next ones'
         * headers while this one is summarised. */
        if (i + SUMMARY_AHEAD < n)
            for (int k = 0; k < 3; k++)
                __builtin_prefetch(buf + data[i + SUMMARY_AHEAD] + 64 * k);
        PyObject *head[3] = {PyLong_FromLongLong(frame[i]), PyFloat_FromDouble(ts[i]),
                             PyLong_FromLongLong(orig[i])};
        PyObject *pkt = NULL;
        if (head[0] && head[1] && head[2]) {
            Packet pk = {buf, b[0].len, NULL, 0, data[i]};
            pkt = summarise(&pk, buf + data[i], caplen[i], lt[i], head, l3[i] - data[i],
                            (int)ipver[i]);
        }
        for (int k = 0; k < 3; k++)
            Py_XDECREF(head[k]);
        if (pkt == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, pkt);
    }
done:
    while (got > 0)
        PyBuffer_Release(&b[--got]);
    return result;
}

static PyMethodDef methods[] = {
    {"columns", columns, METH_VARARGS, columns_doc},
    {"set_types", set_types, METH_VARARGS, set_types_doc},
    {"summarise", summarise_rows, METH_VARARGS, summarise_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_columns", "Compiled column decode for labkit.analyze.decode.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__columns(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "NCOLS", NCOLS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
