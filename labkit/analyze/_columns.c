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
    C_DST4, C_TCP_FWD, C_TCP_REV, NCOLS
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

static inline int is_vlan(unsigned et) { return et == 0x8100 || et == 0x88A8 || et == 0x9100; }

static inline int
is_v6_ext(int64_t nh)
{
    return nh == 0 || nh == 43 || nh == 60 || nh == 51 || nh == 44;
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

static void
decode_one(const Packet *p, int64_t caplen, int32_t linktype, int64_t *col, Py_ssize_t n,
           Py_ssize_t i)
{
#define SET(c, v) (col[(Py_ssize_t)(c) * n + i] = (int64_t)(v))
    const unsigned char *w = p->win;
    int64_t rel3 = 0, et = 0;
    int known = 1;

    switch (linktype) {
    case LT_RAW: case LT_RAW_12: case LT_RAW_14: case LT_IPV4: case LT_IPV6: {
        int v = w[0] >> 4;
        et = (caplen > 0 && v == 4) ? 0x0800 : (caplen > 0 && v == 6) ? 0x86DD : 0;
        break;
    }
    case LT_ETHERNET:
        et = be16(w + 12);
        rel3 = 14;
        if (is_vlan((unsigned)et)) {  /* 802.1Q / 802.1ad, up to two tags */
            et = be16(w + 16);
            rel3 = 18;
            if (is_vlan((unsigned)et)) {
                et = be16(w + 20);
                rel3 = 22;
            }
        }
        if (et == 0x8864) {  /* PPPoE session */
            unsigned ppp = be16(at(p, rel3 + 6, 2));
            et = ppp == 0x21 ? 0x0800 : ppp == 0x57 ? 0x86DD : 0;
            rel3 += 8;
        }
        break;
    case LT_NULL: case LT_LOOP: {
        int fam = linktype == LT_LOOP ? w[3] : (w[0] != 0 ? w[0] : w[3]);
        et = fam == 2 ? 0x0800 : (fam == 10 || fam == 24 || fam == 28 || fam == 30) ? 0x86DD : 0;
        rel3 = 4;
        break;
    }
    case LT_SLL:
        et = be16(w + 14);
        rel3 = 16;
        break;
    case LT_SLL2:
        et = be16(w);
        rel3 = 20;
        break;
    default:
        known = 0;
    }
    int ver = !known ? 0 : et == 0x0800 ? 4 : et == 0x86DD ? 6 : 0;
    if (known && !(rel3 < caplen))
        ver = 0;

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
