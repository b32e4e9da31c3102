/* labkit.analyze.decode.columns, compiled: every record's link, IP and transport fields in one
 * pass over its packet window.
 *
 * The numpy version in decode.py (py_columns) is the reference and the fallback: ~40 whole-
 * column operations a chunk, ~0.25 us a packet, a quarter of the analyzer's budget (issue 8).
 * This is the same arithmetic per packet, ~0.02 us. Tests decode every capture of the test
 * suite both ways and require identical columns, so the two cannot drift apart. Column order:
 * decode.COLUMN_NAMES.
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

#define B(i) ((int64_t)byte_at(p, p->data + (i)))
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

static Located
locate(const Packet *p, int64_t n, int32_t linktype)
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
    Located where = locate(p, caplen, linktype);
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

static PyMethodDef methods[] = {
    {"columns", columns, METH_VARARGS, columns_doc},
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
