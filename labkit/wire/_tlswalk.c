/* The per-record loops of reading a running TLS tunnel in bulk, compiled: the record walk of
 * labkit.wire.tlswalk, and the CBC arithmetic of labkit.wire.tlscrypt.peek (cbc_peek, at the
 * end: a record's first bytes and length from its decrypted first and last blocks, which in
 * numpy took some twenty passes over the records' arrays), and the CSTP header in each record
 * (cstp_heads: another dozen passes).
 *
 * The walk. Each record's offset is the previous offset plus the previous record's length, so the walk
 * over a decrypted session's records cannot be vectorized; in Python it costs about a
 * microsecond a record, as much as the whole analysis of a packet. This file does the same walk
 * with the same stopping rules (labkit/wire/tlswalk.py holds the Python twin and the contract;
 * tests run both on the same bytes). It reads record headers and copies the few 16-byte blocks
 * of each record a decryptor asks for into one plane per block: the decryption is
 * cryptography's, one ECB call over the planes.
 *
 * The walk is bound by memory latency, not by its work: a chunk has left the cache when its
 * records are walked, and the next header's place is known only once this one is read, so
 * each record would wait for its own cache miss (about 200 ns, four times the work). Records
 * of a running tunnel mostly have the length of the one before, so the places a few records
 * ahead are guessed from it and fetched early (__builtin_prefetch); a wrong guess costs a
 * wasted fetch, never a wrong answer. The interpreter lock is released during the walk, so
 * the capture's read-ahead thread runs beside it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HEADER 5
#define MAX_RECORD (16384 + 2048)
#define BLOCK 16
#define FIELDS 4 /* per record: start, content type, length, segment of its last byte */
#define MAX_CUTS 8
#define AHEAD 8 /* records ahead whose guessed place is fetched early */
#define LINE 64

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

typedef struct {
    const unsigned char **p;
    const int64_t *len;
    const int64_t *cum; /* cum[i]: stream offset of segment i; cum[m]: stream length */
    Py_ssize_t m;
} Stream;

/* The segment holding stream byte `off`, searching forward from segment `i`. */
static inline Py_ssize_t
seek(const Stream *s, Py_ssize_t i, int64_t off)
{
    while (i + 1 < s->m && s->cum[i + 1] <= off)
        i++;
    return i;
}

/* Stream bytes [off, off + n) into dst, searching from segment i. */
static inline void
copy(const Stream *s, Py_ssize_t i, int64_t off, unsigned char *dst, int64_t n)
{
    i = seek(s, i, off);
    while (n > 0 && i < s->m) {
        int64_t in = off - s->cum[i];
        int64_t take = s->len[i] - in < n ? s->len[i] - in : n;
        memcpy(dst, s->p[i] + in, (size_t)take);
        dst += take;
        off += take;
        n -= take;
        i++;
    }
}

/* The 16 bytes at `from` in a fragment of `length` bytes starting at stream offset `frag`;
 * zeros where they fall outside the fragment. */
static inline void
block(const Stream *s, Py_ssize_t i, int64_t frag, int64_t length, int64_t from,
      unsigned char *dst)
{
    if (from >= 0 && from + BLOCK <= length) { /* the usual case: one segment, no zeros */
        int64_t at = frag + from;
        i = seek(s, i, at);
        if (at + BLOCK <= s->cum[i + 1]) {
            memcpy(dst, s->p[i] + (at - s->cum[i]), BLOCK);
            return;
        }
    }
    int64_t a = from < 0 ? 0 : from, b = from + BLOCK > length ? length : from + BLOCK;
    if (a >= b) {
        memset(dst, 0, BLOCK);
        return;
    }
    if (a > from)
        memset(dst, 0, (size_t)(a - from));
    if (b < from + BLOCK)
        memset(dst + (b - from), 0, (size_t)(from + BLOCK - b));
    copy(s, i, frag + a, dst + (a - from), b - a);
}

/* Fetch the stream's bytes [lo, hi) early (a hint: nothing is read); none before segment i. */
static inline void
fetch(const Stream *s, Py_ssize_t i, int64_t lo, int64_t hi)
{
    if (lo < s->cum[i])
        lo = s->cum[i];
    if (hi > s->cum[s->m])
        hi = s->cum[s->m];
    if (lo >= hi)
        return;
    /* Every cache line of the range holds one of lo, lo + LINE, ... or hi - 1. */
    for (int64_t off = lo; off < hi + LINE - 1; off += LINE) {
        int64_t at = off < hi ? off : hi - 1;
        i = seek(s, i, at);
        PREFETCH(s->p[i] + (at - s->cum[i]));
        if (at == hi - 1)
            break;
    }
}

PyDoc_STRVAR(records_doc,
"records(head, buf, offs, lens, pos, rec, blocks, cuts, row) -> (rows, next_pos, status)\n\n"
"Walk the TLS records of the stream head + buf[offs[i]:offs[i]+lens[i]]... from stream\n"
"offset pos, filling rows row.. of rec and blocks; see labkit.wire.tlswalk.py_records.");

static PyObject *
records(PyObject *self, PyObject *args)
{
    Py_buffer head, buf, offs, lens, rec, blocks, cuts;
    Py_ssize_t pos, row;

    if (!PyArg_ParseTuple(args, "y*y*y*y*nw*w*y*n", &head, &buf, &offs, &lens, &pos, &rec,
                          &blocks, &cuts, &row))
        return NULL;
    Py_ssize_t nseg = offs.len / 8, cap = rec.len / (8 * FIELDS), k = cuts.len / 8;
    const int64_t *off = offs.buf, *ln = lens.buf, *cut = cuts.buf;
    PyObject *result = NULL;
    int ok = lens.len == offs.len && k <= MAX_CUTS && blocks.len >= k * cap * BLOCK &&
             row >= 0 && row <= cap && pos >= 0;
    for (Py_ssize_t i = 0; ok && i < nseg; i++)
        ok = off[i] >= 0 && ln[i] >= 0 && off[i] + ln[i] <= buf.len;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError,
                        "records: segments outside the buffer, or outputs too small");
        goto done;
    }
    /* The bytes around a header that the blocks asked for lie in: before it (blocks counted
     * from a fragment's end belong to the record before), and after it. */
    int64_t before = 0, after = HEADER;
    for (Py_ssize_t j = 0; j < k; j++) {
        if (cut[j] < 0 && -cut[j] > before)
            before = -cut[j];
        if (cut[j] >= 0 && HEADER + cut[j] + BLOCK > after)
            after = HEADER + cut[j] + BLOCK;
    }
    Py_ssize_t m = nseg + 1;
    const unsigned char **p = PyMem_Malloc(sizeof(*p) * m);
    int64_t *len = PyMem_Malloc(sizeof(*len) * m), *cum = PyMem_Malloc(sizeof(*cum) * (m + 1));
    if (!p || !len || !cum) {
        PyMem_Free(p);
        PyMem_Free(len);
        PyMem_Free(cum);
        PyErr_NoMemory();
        goto done;
    }
    p[0] = head.buf;
    len[0] = head.len;
    for (Py_ssize_t i = 0; i < nseg; i++) {
        p[i + 1] = (const unsigned char *)buf.buf + off[i];
        len[i + 1] = ln[i];
    }
    cum[0] = 0;
    for (Py_ssize_t i = 0; i < m; i++)
        cum[i + 1] = cum[i] + len[i];
    Stream s = {p, len, cum, m};
    int64_t *r = rec.buf;
    unsigned char *out = blocks.buf;
    Py_ssize_t n = row, cur = 0;
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    while (n < cap && pos + HEADER <= cum[m]) {
        unsigned char copied[HEADER];
        const unsigned char *hdr = copied;
        cur = seek(&s, cur, pos);
        if (pos + HEADER <= cum[cur + 1])
            hdr = p[cur] + (pos - cum[cur]);
        else
            copy(&s, cur, pos, copied, HEADER);
        int64_t length = (hdr[3] << 8) | hdr[4];
        if (hdr[0] < 20 || hdr[0] > 24 || hdr[1] != 3) {
            status = 1;
            break;
        }
        if (length > MAX_RECORD) {
            status = 2;
            break;
        }
        int64_t end = pos + HEADER + length;
        if (end > cum[m])
            break;
        int64_t guess = pos + AHEAD * (HEADER + length);
        fetch(&s, cur, guess - before, guess + after);
        for (Py_ssize_t j = 0; j < k; j++)
            block(&s, cur, pos + HEADER, length, cut[j] < 0 ? length + cut[j] : cut[j],
                  out + (j * cap + n) * BLOCK);
        r[n * FIELDS] = pos;
        r[n * FIELDS + 1] = hdr[0];
        r[n * FIELDS + 2] = length;
        r[n * FIELDS + 3] = (int64_t)seek(&s, cur, end - 1) - 1;
        n++;
        pos = end;
    }
    /* A walk that ends before the arrays are full packs the planes: plane j's rows follow
     * plane j - 1's, so the planes a decryptor reads are one contiguous buffer. */
    if (n < cap)
        for (Py_ssize_t j = 1; j < k; j++)
            memmove(out + j * n * BLOCK, out + j * cap * BLOCK, (size_t)(n * BLOCK));
    Py_END_ALLOW_THREADS
    PyMem_Free(p);
    PyMem_Free(len);
    PyMem_Free(cum);
    result = Py_BuildValue("nni", n, pos, status);
done:
    PyBuffer_Release(&head);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&lens);
    PyBuffer_Release(&rec);
    PyBuffer_Release(&blocks);
    PyBuffer_Release(&cuts);
    return result;
}

PyDoc_STRVAR(cbc_peek_doc,
"cbc_peek(clear, masks, cipher, mac, plain, length)\n\n"
"The CBC arithmetic of labkit.wire.tlscrypt.peek over n records, in one pass: clear and\n"
"masks are two planes of n blocks each (the decrypted first and last cipher blocks; the IV\n"
"and the block before the last), cipher the int64 bytes of IV and cipher blocks, mac the\n"
"MAC bytes inside the encryption. Fills plain (n x 8 bytes) and length (int64, -1 where\n"
"the record cannot be this cipher's); labkit.wire.tlscrypt.py_cbc_peek is the reference.");

static PyObject *
cbc_peek(PyObject *self, PyObject *args)
{
    Py_buffer clear, masks, cipher, plain, length;
    Py_ssize_t mac;

    if (!PyArg_ParseTuple(args, "y*y*y*nw*w*", &clear, &masks, &cipher, &mac, &plain, &length))
        return NULL;
    Py_ssize_t n = cipher.len / 8;
    PyObject *result = NULL;
    if (clear.len < 2 * n * BLOCK || masks.len < 2 * n * BLOCK || plain.len < n * 8 ||
        length.len < n * 8 || mac < 0) {
        PyErr_SetString(PyExc_ValueError, "cbc_peek: arrays of different lengths");
        goto done;
    }
    const unsigned char *c0 = clear.buf, *c1 = c0 + n * BLOCK, *m0 = masks.buf,
                        *m1 = m0 + n * BLOCK;
    const int64_t *ci = cipher.buf;
    unsigned char *pl = plain.buf;
    int64_t *len = length.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char last[BLOCK];
        for (int b = 0; b < 8; b++)
            pl[i * 8 + b] = c0[i * BLOCK + b] ^ m0[i * BLOCK + b];
        for (int b = 0; b < BLOCK; b++)
            last[b] = c1[i * BLOCK + b] ^ m1[i * BLOCK + b];
        /* every padding byte equals the padding length (RFC 5246 6.2.3.2): the ones in the
         * last block are checked */
        int pad = last[BLOCK - 1], good = 1;
        for (int b = BLOCK - 1 - (pad < BLOCK - 1 ? pad : BLOCK - 1); b < BLOCK; b++)
            good &= last[b] == pad;
        int64_t c = ci[i], l = c - BLOCK - pad - 1 - mac;
        len[i] = c >= 2 * BLOCK && c % BLOCK == 0 && good && l >= 0 ? l : -1;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&clear);
    PyBuffer_Release(&masks);
    PyBuffer_Release(&cipher);
    PyBuffer_Release(&plain);
    PyBuffer_Release(&length);
    return result;
}

PyDoc_STRVAR(cstp_heads_doc,
"cstp_heads(plain, length, ctype, magic, content_type, header, size, ptype, count, first)\n\n"
"The CSTP header each of n records carries, from its first 8 plaintext bytes (plain, n x 8)\n"
"in one pass: fills size and ptype (int64, the header's length and type), count (256 int64:\n"
"records per type) and first (256 int64, -1 where absent: each type's first record), and\n"
"returns the first record that is not exactly one CSTP packet (-1: none): one is of\n"
"content_type, its plaintext opens with magic (4 bytes, little-endian) and is header +\n"
"size bytes long (length). labkit.wire.tlscrypt.py_cstp_heads is the reference.");

static PyObject *
cstp_heads(PyObject *self, PyObject *args)
{
    Py_buffer plain, length, ctype, size, ptype, count, first;
    unsigned long magic;
    long content_type, header;

    if (!PyArg_ParseTuple(args, "y*y*y*kllw*w*w*w*", &plain, &length, &ctype, &magic,
                          &content_type, &header, &size, &ptype, &count, &first))
        return NULL;
    Py_ssize_t n = length.len / 8, bad = -1;
    PyObject *result = NULL;
    if (plain.len < n * 8 || ctype.len < n * 8 || size.len < n * 8 || ptype.len < n * 8 ||
        count.len < 256 * 8 || first.len < 256 * 8) {
        PyErr_SetString(PyExc_ValueError, "cstp_heads: arrays of different lengths");
        goto done;
    }
    const unsigned char *pl = plain.buf;
    const int64_t *len = length.buf, *ct = ctype.buf;
    int64_t *sz = size.buf, *ty = ptype.buf, *cnt = count.buf, *fst = first.buf;
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < 256; t++) {
        cnt[t] = 0;
        fst[t] = -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *h = pl + i * 8;
        uint32_t word = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                        (uint32_t)h[3] << 24;
        sz[i] = (int64_t)h[4] << 8 | h[5];
        ty[i] = h[6];
        if (bad < 0 && (ct[i] != content_type || word != magic || len[i] != header + sz[i]))
            bad = i;
        if (fst[h[6]] < 0)
            fst[h[6]] = i;
        cnt[h[6]]++;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(bad);
done:
    PyBuffer_Release(&plain);
    PyBuffer_Release(&length);
    PyBuffer_Release(&ctype);
    PyBuffer_Release(&size);
    PyBuffer_Release(&ptype);
    PyBuffer_Release(&count);
    PyBuffer_Release(&first);
    return result;
}

static PyMethodDef methods[] = {
    {"records", records, METH_VARARGS, records_doc},
    {"cbc_peek", cbc_peek, METH_VARARGS, cbc_peek_doc},
    {"cstp_heads", cstp_heads, METH_VARARGS, cstp_heads_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tlswalk",
    "Compiled per-record loops of labkit.wire.tlswalk and labkit.wire.tlscrypt.", -1, methods,
};

PyMODINIT_FUNC
PyInit__tlswalk(void)
{
    return PyModule_Create(&module);
}
