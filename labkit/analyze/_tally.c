/* The per-chunk tally of labkit.analyze.engine.tally, compiled.
 *
 * Every detector groups a chunk's rows by a 64-bit key (a flow, a pair, a pair and a size)
 * on every chunk: which keys, the first row of each, how many rows. numpy can only do it by
 * sorting every row (n log n), though a bulk transfer's chunk of 200 000 rows holds a few
 * hundred keys. A hash table does it in one pass; only the distinct keys are then sorted, by
 * the caller. engine.tally holds the numpy twin and the contract; tests run both on the same
 * keys. Open addressing with linear probing, the table twice the rows (load <= 1/2); the
 * slot comes from the key's multiplicative hash, so unmixed keys spread too.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

PyDoc_STRVAR(tally_doc,
"tally(keys, unique, first, count) -> u\n\n"
"keys: n uint64; unique, first, count: n uint64/int64/int64 each, written for the u\n"
"distinct keys in order of first appearance (first: row of the first, count: rows).");

static PyObject *
tally(PyObject *self, PyObject *args)
{
    PyObject *o_keys, *o_uk, *o_first, *o_count;
    Py_buffer keys = {0}, uk = {0}, first = {0}, count = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOO", &o_keys, &o_uk, &o_first, &o_count))
        return NULL;
    if (PyObject_GetBuffer(o_keys, &keys, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_uk, &uk, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0
        || PyObject_GetBuffer(o_first, &first, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0
        || PyObject_GetBuffer(o_count, &count, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    Py_ssize_t n = keys.len / 8;
    if (keys.len % 8 || uk.len != keys.len || first.len != keys.len || count.len != keys.len) {
        PyErr_SetString(PyExc_ValueError, "tally: four arrays of n 8-byte items expected");
        goto done;
    }
    int bits = 1;
    while (((size_t)1 << bits) < (size_t)(2 * n) && bits < 62)
        bits++;
    size_t cap = (size_t)1 << bits, mask = cap - 1;
    int64_t *slot = malloc(cap * sizeof *slot);
    if (!slot) {
        PyErr_NoMemory();
        goto done;
    }
    memset(slot, 0xff, cap * sizeof *slot); /* -1: empty */
    const uint64_t *k = keys.buf;
    uint64_t *u = uk.buf;
    int64_t *f = first.buf, *c = count.buf;
    Py_ssize_t m = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t key = k[i];
        size_t h = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
        while (slot[h] >= 0 && u[slot[h]] != key)
            h = (h + 1) & mask;
        if (slot[h] < 0) {
            slot[h] = m;
            u[m] = key;
            f[m] = i;
            c[m] = 1;
            m++;
        } else {
            c[slot[h]]++;
        }
    }
    Py_END_ALLOW_THREADS
    free(slot);
    result = PyLong_FromSsize_t(m);
done:
    PyBuffer_Release(&keys);
    PyBuffer_Release(&uk);
    PyBuffer_Release(&first);
    PyBuffer_Release(&count);
    return result;
}

static PyMethodDef methods[] = {
    {"tally", tally, METH_VARARGS, tally_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tally", "Compiled per-chunk key tally for labkit.analyze.engine.",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__tally(void)
{
    return PyModule_Create(&module);
}
