/* The per-chunk tally of labkit.analyze.engine.tally (and .largest), compiled.
 *
 * Every detector groups a chunk's rows by a 64-bit key (a flow, a pair, a pair and a size)
 * on every chunk: which keys, the first row of each, how many rows. numpy can only do it by
 * sorting every row (n log n), though a bulk transfer's chunk of 200 000 rows holds a few
 * hundred keys. A hash table does it in one pass; only the distinct keys are then sorted, by
 * the caller. engine.tally holds the numpy twin and the contract; tests run both on the same
 * keys. Open addressing with linear probing, the table twice the rows (load <= 1/2); the
 * slot comes from the key's multiplicative hash, so unmixed keys spread too. largest() is the
 * same pass keeping each key's largest value (a host's latest sighting, a flow's largest
 * acknowledged segment), where numpy sorts every row to reduce them.
 *
 * find(), insert() and rehash() are the persistent index of engine.KeyIndex: the row of each
 * key of a per-flow table whose rows are in the order their keys arrived. The caller owns
 * every array (numpy, grown by doubling): the keys by row and a slot array of row numbers
 * (-1: empty), at most half full. A chunk's new flows then cost a probe each, where a table
 * sorted by key moved every row after them on every chunk: with millions of flows, that copy
 * was most of the pass.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

PyDoc_STRVAR(tally_doc,
"tally(keys, unique, first, count) -> u\n\n"
"keys: n uint64; unique, first, count: n uint64/int64/int64 each, written for the u\n"
"distinct keys in order of first appearance (first: row of the first, count: rows).");

PyDoc_STRVAR(largest_doc,
"largest(keys, values, unique, best) -> u\n\n"
"keys: n uint64; values: n float64; unique, best: n uint64/float64 each, written for the u\n"
"distinct keys in order of first appearance (best: the largest of the key's values; NaN\n"
"if any of them is NaN, as numpy's maximum).");

/* The u distinct keys of k[0..n) into u[], in order of first appearance; -1 when out of
 * memory. With f and c: each key's first row and its rows; with v and best: the largest of
 * its values v[] (NaN once met, as numpy's maximum). Inlined into each caller with the other
 * pair NULL, so each loop does only its own work. Runs without the interpreter lock. */
static inline Py_ssize_t
group(const uint64_t *k, Py_ssize_t n, uint64_t *u, int64_t *f, int64_t *c, const double *v,
      double *best)
{
    int bits = 1;
    while (((size_t)1 << bits) < (size_t)(2 * n) && bits < 62)
        bits++;
    size_t cap = (size_t)1 << bits, mask = cap - 1;
    int64_t *slot = malloc(cap * sizeof *slot);
    if (!slot)
        return -1;
    memset(slot, 0xff, cap * sizeof *slot); /* -1: empty */
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t key = k[i];
        size_t h = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
        while (slot[h] >= 0 && u[slot[h]] != key)
            h = (h + 1) & mask;
        if (slot[h] < 0) {
            slot[h] = m;
            u[m] = key;
            if (c) {
                f[m] = i;
                c[m] = 1;
            }
            if (best)
                best[m] = v[i];
            m++;
        } else if (c) {
            c[slot[h]]++;
        } else if (best) {
            double x = v[i], *y = &best[slot[h]];
            if (!isnan(*y) && (isnan(x) || x > *y))
                *y = x;
        }
    }
    free(slot);
    return m;
}

/* The n arrays' buffers, the first n_in read, the others written; all of one length of
 * 8-byte items. */
static int
buffers(PyObject *const *objs, Py_buffer *bufs, int n, int n_in, const char *name)
{
    for (int i = 0; i < n; i++) {
        int flags = PyBUF_C_CONTIGUOUS | (i < n_in ? 0 : PyBUF_WRITABLE);
        if (PyObject_GetBuffer(objs[i], &bufs[i], flags) < 0)
            return -1;
    }
    for (int i = 0; i < n; i++) {
        if (bufs[i].len != bufs[0].len || bufs[i].len % 8) {
            PyErr_Format(PyExc_ValueError, "%s: %d arrays of n 8-byte items expected", name, n);
            return -1;
        }
    }
    return 0;
}

/* Both entry points: four arrays parsed and checked, the table run with the GIL released. */
static PyObject *
run(PyObject *args, const char *name, int is_largest)
{
    PyObject *o[4];
    Py_buffer b[4] = {{0}};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOO", &o[0], &o[1], &o[2], &o[3]))
        return NULL;
    if (buffers(o, b, 4, is_largest ? 2 : 1, name) == 0) {
        Py_ssize_t n = b[0].len / 8, m;
        Py_BEGIN_ALLOW_THREADS
        if (is_largest)
            m = group(b[0].buf, n, b[2].buf, NULL, NULL, b[1].buf, b[3].buf);
        else
            m = group(b[0].buf, n, b[1].buf, b[2].buf, b[3].buf, NULL, NULL);
        Py_END_ALLOW_THREADS
        result = m < 0 ? PyErr_NoMemory() : PyLong_FromSsize_t(m);
    }
    for (int i = 0; i < 4; i++)
        PyBuffer_Release(&b[i]);
    return result;
}

static PyObject *
tally(PyObject *self, PyObject *args)
{
    return run(args, "tally", 0);
}

static PyObject *
largest(PyObject *self, PyObject *args)
{
    return run(args, "largest", 1);
}

PyDoc_STRVAR(find_doc,
"find(slots, keys, query, rows) -> None\n\n"
"slots: int32 (a power of two, at most half full); keys: uint64 by row; query: m uint64;\n"
"rows: m int64, written with each query key's row, or -1 when it has none.");

PyDoc_STRVAR(insert_doc,
"insert(slots, keys, n, query, rows) -> n'\n\n"
"As find(), but a query key without a row gets the next one (n, n + 1, ... in the order\n"
"the query first holds them), its key written to keys[row]. The caller makes room first:\n"
"keys for n + m rows, slots for twice that. Returns the rows now in use.");

PyDoc_STRVAR(rehash_doc,
"rehash(slots, keys, n) -> None\n\n"
"Fill slots (all -1) with the rows 0..n of keys: after the slots were enlarged.");

/* The slot of key (its own, or the empty one where it would go). */
static inline size_t
probe(const int32_t *slot, size_t mask, int bits, const uint64_t *keys, uint64_t key)
{
    size_t h = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
    while (slot[h] >= 0 && keys[slot[h]] != key)
        h = (h + 1) & mask;
    return h;
}

/* The slot array's size as log2, or -1 (with an exception) if it is not a power of two. */
static int
slot_bits(Py_ssize_t cap)
{
    int bits = 0;
    while (((Py_ssize_t)1 << bits) < cap && bits < 62)
        bits++;
    if (cap < 2 || ((Py_ssize_t)1 << bits) != cap) {
        PyErr_SetString(PyExc_ValueError, "slots: a power of two of int32 expected");
        return -1;
    }
    return bits;
}

/* One entry point for the three index calls: which = 0 find, 1 insert, 2 rehash. */
static PyObject *
index_call(PyObject *args, int which)
{
    PyObject *so, *ko, *qo = NULL, *ro = NULL;
    Py_ssize_t n = 0;
    int ok;
    if (which == 0)
        ok = PyArg_ParseTuple(args, "OOOO", &so, &ko, &qo, &ro);
    else if (which == 1)
        ok = PyArg_ParseTuple(args, "OOnOO", &so, &ko, &n, &qo, &ro);
    else
        ok = PyArg_ParseTuple(args, "OOn", &so, &ko, &n);
    if (!ok)
        return NULL;
    Py_buffer s = {0}, k = {0}, q = {0}, r = {0};
    PyObject *result = NULL;
    int keys_w = which == 1 ? PyBUF_WRITABLE : 0;
    if (PyObject_GetBuffer(so, &s, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0 ||
        PyObject_GetBuffer(ko, &k, PyBUF_C_CONTIGUOUS | keys_w) < 0)
        goto done;
    if (qo && (PyObject_GetBuffer(qo, &q, PyBUF_C_CONTIGUOUS) < 0 ||
               PyObject_GetBuffer(ro, &r, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0))
        goto done;
    Py_ssize_t cap = s.len / 4, n_keys = k.len / 8, m = q.len / 8;
    int bits = slot_bits(cap);
    if (bits < 0)
        goto done;
    if (s.len % 4 || k.len % 8 || q.len % 8 || r.len != q.len || n < 0 || n > n_keys ||
        (which == 1 && (n + m > n_keys || 2 * (n + m) > cap)) || 2 * n > cap) {
        PyErr_SetString(PyExc_ValueError, "index: arrays of the wrong size for the rows");
        goto done;
    }
    int32_t *slot = s.buf;
    uint64_t *keys = k.buf;
    const uint64_t *query = q.buf;
    int64_t *rows = r.buf;
    size_t mask = (size_t)cap - 1;
    Py_BEGIN_ALLOW_THREADS
    if (which == 2) {
        for (Py_ssize_t i = 0; i < n; i++)
            slot[probe(slot, mask, bits, keys, keys[i])] = (int32_t)i;
    } else {
        for (Py_ssize_t i = 0; i < m; i++) {
            size_t h = probe(slot, mask, bits, keys, query[i]);
            if (slot[h] >= 0) {
                rows[i] = slot[h];
            } else if (which == 1) {
                keys[n] = query[i];
                slot[h] = (int32_t)n;
                rows[i] = n++;
            } else {
                rows[i] = -1;
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = which == 1 ? PyLong_FromSsize_t(n) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&s);
    PyBuffer_Release(&k);
    if (q.obj)
        PyBuffer_Release(&q);
    if (r.obj)
        PyBuffer_Release(&r);
    return result;
}

static PyObject *
find(PyObject *self, PyObject *args)
{
    return index_call(args, 0);
}

static PyObject *
insert(PyObject *self, PyObject *args)
{
    return index_call(args, 1);
}

static PyObject *
rehash(PyObject *self, PyObject *args)
{
    return index_call(args, 2);
}

static PyMethodDef methods[] = {
    {"find", find, METH_VARARGS, find_doc},
    {"insert", insert, METH_VARARGS, insert_doc},
    {"rehash", rehash, METH_VARARGS, rehash_doc},
    {"tally", tally, METH_VARARGS, tally_doc},
    {"largest", largest, METH_VARARGS, largest_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tally", "Compiled per-chunk key tally and maximum for labkit.analyze.engine.",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__tally(void)
{
    return PyModule_Create(&module);
}
