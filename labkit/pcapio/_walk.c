/* The record-chain walk of labkit.pcapio.walk, compiled.
 *
 * Each record's offset depends on the previous record's length, so the walk cannot be
 * vectorized; in Python it costs ~0.25 us a record, a quarter of the analyzer's 1 M
 * packets/s budget (issue 8). This file does the same walk with the same stopping rules
 * (labkit/analyze/walk.py holds the Python twin and the contract; tests run both on the same
 * bytes). It only reads lengths and writes offsets: every field is still taken out by numpy,
 * from the rows `gather` (below) copies out of the buffer at those offsets.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t
load_u32(const unsigned char *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

/* The walk both formats share: a record needs `head` bytes, its length is the u32 at `field`,
 * the next record starts `base` + that length on; `block`: pcapng's rule that a length is at
 * least 12 and a multiple of 4. Returns (n, next offset). */
static PyObject *
walk(PyObject *src, PyObject *dst, Py_ssize_t pos, Py_ssize_t have, int swapped,
     Py_ssize_t head, Py_ssize_t field, Py_ssize_t base, int block)
{
    Py_buffer in, out;

    if (PyObject_GetBuffer(src, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(dst, &out, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    if (out.len % 8 || pos < 0 || have < 0 || have > in.len || head < 12) {
        PyBuffer_Release(&in);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "walk: out must be int64; pos/have inside the buffer");
        return NULL;
    }
    const unsigned char *b = in.buf;
    int64_t *o = out.buf;
    Py_ssize_t cap = out.len / 8, n = 0;
    Py_BEGIN_ALLOW_THREADS
    while (n < cap && pos + head <= have) {
        uint32_t v = load_u32(b + pos + field, swapped);
        Py_ssize_t next = pos + base + (Py_ssize_t)v;  /* 64-bit: a 4 GiB length cannot wrap */
        if (next > have || (block && (v < 12 || (v & 3))))
            break;
        o[n++] = pos;
        pos = next;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    return Py_BuildValue("nn", n, pos);
}

PyDoc_STRVAR(pcap_doc,
"pcap(buf, out, pos, have, rec_len, swapped) -> (n, next_pos)\n\n"
"Offsets of the complete pcap records in buf[pos:have] into out[:n] (at most len(out)).");

static PyObject *
walk_pcap(PyObject *self, PyObject *args)
{
    PyObject *src, *dst;
    Py_ssize_t pos, have, rec_len;
    int swapped;

    if (!PyArg_ParseTuple(args, "OOnnnp", &src, &dst, &pos, &have, &rec_len, &swapped))
        return NULL;
    return walk(src, dst, pos, have, swapped, rec_len, 8, rec_len, 0);
}

PyDoc_STRVAR(pcapng_doc,
"pcapng(buf, out, pos, have, swapped) -> (n, next_pos)\n\n"
"Offsets of the complete pcapng blocks in buf[pos:have] into out[:n] (at most len(out));\n"
"a block length below 12 or not a multiple of 4 stops the walk.");

static PyObject *
walk_pcapng(PyObject *self, PyObject *args)
{
    PyObject *src, *dst;
    Py_ssize_t pos, have;
    int swapped;

    if (!PyArg_ParseTuple(args, "OOnnp", &src, &dst, &pos, &have, &swapped))
        return NULL;
    return walk(src, dst, pos, have, swapped, 12, 4, 0, 1);
}

PyDoc_STRVAR(gather_doc,
"gather(buf, offsets, width, out)\n\n"
"The `width` bytes at each of `offsets` (int64, each clipped to len(buf) - width) into out,\n"
"a C-contiguous (len(offsets), width) uint8 array: reader.rows_at, compiled.");

/* After the walk, each record's header and first packet bytes are copied out together. The
 * offsets are known by then (unlike in the walk, where each depends on the load before it),
 * so the lines a few records ahead are fetched while this one is copied: numpy's gather takes
 * each record's cache miss in turn, and the records of a 16 MiB buffer are all misses. */
#define GATHER_AHEAD 8

static PyObject *
gather(PyObject *self, PyObject *args)
{
    PyObject *src, *o_idx, *dst;
    Py_ssize_t width;
    Py_buffer in = {0}, idx = {0}, out = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOnO", &src, &o_idx, &width, &dst))
        return NULL;
    if (PyObject_GetBuffer(src, &in, PyBUF_SIMPLE) < 0
        || PyObject_GetBuffer(o_idx, &idx, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(dst, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    Py_ssize_t n = idx.len / 8;
    if (idx.len % 8 || width < 1 || in.len < width || out.len != n * width) {
        PyErr_SetString(PyExc_ValueError, "gather: offsets must be int64, out (n, width)");
        goto done;
    }
    const unsigned char *b = in.buf;
    const int64_t *o = idx.buf;
    unsigned char *d = out.buf;
    Py_ssize_t last = in.len - width;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (o[i] < 0) {
            PyErr_SetString(PyExc_ValueError, "gather: a negative offset");
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + GATHER_AHEAD < n) {
            const unsigned char *ahead = b + (o[i + GATHER_AHEAD] < last ? o[i + GATHER_AHEAD] : last);
            for (Py_ssize_t k = 0; k < width; k += 64)
                __builtin_prefetch(ahead + k);
            __builtin_prefetch(ahead + width - 1);
        }
        Py_ssize_t off = o[i] < last ? o[i] : last;
        memcpy(d + i * width, b + off, (size_t)width);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&in);
    PyBuffer_Release(&idx);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"pcap", walk_pcap, METH_VARARGS, pcap_doc},
    {"pcapng", walk_pcapng, METH_VARARGS, pcapng_doc},
    {"gather", gather, METH_VARARGS, gather_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk",
    "Compiled record-chain walks for labkit.pcapio.walk.", -1, methods,
};

PyMODINIT_FUNC
PyInit__walk(void)
{
    return PyModule_Create(&module);
}
