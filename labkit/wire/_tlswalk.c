/* The TLS record walk of labkit.wire.tlswalk, compiled.
 *
 * Each record's offset is the previous offset plus the previous record's length, so the walk
 * over a decrypted session's records cannot be vectorized; in Python it costs about a
 * microsecond a record, as much as the whole analysis of a packet. This file does the same walk
 * with the same stopping rules (labkit/wire/tlswalk.py holds the Python twin and the contract;
 * tests run both on the same bytes). It reads record headers and copies each record's first
 * and last bytes: the decryption is numpy and cryptography's, in batches.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HEADER 5
#define MAX_RECORD (16384 + 2048)
#define EDGE 80 /* bytes copied from each record's start (after the header) and end */
#define FIELDS 4 /* per record: start, content type, length, segment of its last byte */

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

static void
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

PyDoc_STRVAR(records_doc,
"records(head, buf, offs, lens, pos, rec, heads, tails) -> (n, next_pos, status)\n\n"
"Walk the TLS records of the stream head + buf[offs[i]:offs[i]+lens[i]]... from stream\n"
"offset pos; see labkit.wire.tlswalk.py_records for the contract.");

static PyObject *
records(PyObject *self, PyObject *args)
{
    Py_buffer head, buf, offs, lens, rec, heads, tails;
    Py_ssize_t pos;

    if (!PyArg_ParseTuple(args, "y*y*y*y*nw*w*w*", &head, &buf, &offs, &lens, &pos, &rec,
                          &heads, &tails))
        return NULL;
    Py_ssize_t nseg = offs.len / 8, cap = rec.len / (8 * FIELDS);
    const int64_t *off = offs.buf, *ln = lens.buf;
    PyObject *result = NULL;
    int ok = lens.len == offs.len && heads.len >= cap * EDGE && tails.len >= cap * EDGE;
    for (Py_ssize_t i = 0; ok && i < nseg; i++)
        ok = off[i] >= 0 && ln[i] >= 0 && off[i] + ln[i] <= buf.len;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "records: segments outside the buffer or outputs too small");
        goto done;
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
    unsigned char *h = heads.buf, *t = tails.buf;
    Py_ssize_t n = 0, cur = 0;
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    while (n < cap && pos + HEADER <= cum[m]) {
        unsigned char hdr[HEADER];
        cur = seek(&s, cur, pos);
        copy(&s, cur, pos, hdr, HEADER);
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
        int64_t edge = length < EDGE ? length : EDGE;
        unsigned char *hh = h + n * EDGE, *tt = t + n * EDGE;
        memset(hh, 0, EDGE);
        memset(tt, 0, EDGE);
        copy(&s, cur, pos + HEADER, hh, edge);
        copy(&s, cur, end - edge, tt + EDGE - edge, edge);
        r[n * FIELDS] = pos;
        r[n * FIELDS + 1] = hdr[0];
        r[n * FIELDS + 2] = length;
        r[n * FIELDS + 3] = (int64_t)seek(&s, cur, end - 1) - 1;
        n++;
        pos = end;
    }
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
    PyBuffer_Release(&heads);
    PyBuffer_Release(&tails);
    return result;
}

static PyMethodDef methods[] = {
    {"records", records, METH_VARARGS, records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tlswalk",
    "Compiled TLS record walk for labkit.wire.tlswalk.", -1, methods,
};

PyMODINIT_FUNC
PyInit__tlswalk(void)
{
    return PyModule_Create(&module);
}
