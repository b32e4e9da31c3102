/* The record-chain walk of labkit.pcapio.walk, compiled.
 *
 * Each record's offset depends on the previous record's length, so the walk cannot be
 * vectorized; in Python it costs ~0.25 us a record, a quarter of the analyzer's 1 M
 * packets/s budget (issue 8). This file does the same walk with the same stopping rules
 * (labkit/analyze/walk.py holds the Python twin and the contract; tests run both on the same
 * bytes). It only reads lengths and writes offsets: every field is still taken out by numpy.
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

static PyMethodDef methods[] = {
    {"pcap", walk_pcap, METH_VARARGS, pcap_doc},
    {"pcapng", walk_pcapng, METH_VARARGS, pcapng_doc},
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
