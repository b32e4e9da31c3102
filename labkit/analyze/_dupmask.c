/* The duplicate-frame mask of labkit.analyze.duplicates, compiled: one pass over a chunk's
 * records, each compared with the few records before it.
 *
 * duplicates.py_marks is the reference and the fallback: it singles out candidates with
 * whole-column numpy operations (equal captured length, close in time, equal first 40 bytes,
 * four times over a copy of the chunk's prefix words), then compares the candidates' bytes in
 * Python. On a million packets of bulk data that is ~0.06 s, for a mask that is almost always
 * all false. Here each record is tested against the WINDOW records before it with the same
 * three tests in the same order (length, time, bytes: memcmp stops at the first differing
 * byte, the IP ID or checksum of two different packets); the first (nearest) match wins, as
 * in the reference. The bytes are compared in the packet windows first (gathered rows, read
 * in order) and in the buffer only beyond them: reading every record's bytes in the 16 MB
 * buffer cost a cache miss each, as much time as the numpy version. Tests run both on every capture of the suite and on crafted SPAN copies
 * and require the same mask and distances.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_WINDOW 16

PyDoc_STRVAR(marks_doc,
"marks(buf, win, data, caplen, ts, tail, tail_ts, window, max_gap, dup, back) -> copies\n\n"
"buf: the chunk's buffer; win: (n, w) uint8, each record's first w bytes (rows may be\n"
"strided); data, caplen: n int64 (each record's offset in buf and captured\n"
"length); ts: n float64; tail: the previous chunks' last records (bytes, oldest first, at\n"
"most window of them) and tail_ts their times (float64). Writes dup (n bool): the record's\n"
"bytes equal those of one of the window records before it, captured at most max_gap\n"
"seconds apart; back (n int64): the distance to the nearest such record (0: none).\n"
"Returns how many records are copies.");

typedef struct {
    const unsigned char *head;  /* the first bytes: the record's window row, or its bytes */
    const unsigned char *p;  /* all its bytes */
    Py_ssize_t len;
    double ts;
} Rec;

/* Whether two records of equal length hold the same bytes: the first `w` from their heads,
 * the rest from their bytes. */
static inline int
same(const Rec *a, const Rec *b, Py_ssize_t w)
{
    Py_ssize_t first = a->len < w ? a->len : w;
    return memcmp(a->head, b->head, (size_t)first) == 0
           && (a->len <= w || memcmp(a->p + w, b->p + w, (size_t)(a->len - w)) == 0);
}

static PyObject *
marks(PyObject *self, PyObject *args)
{
    PyObject *o_buf, *o_win, *o_data, *o_caplen, *o_ts, *tail, *o_tts, *o_dup, *o_back;
    Py_ssize_t window;
    double max_gap;
    Py_buffer buf = {0}, win = {0}, data = {0}, caplen = {0}, ts = {0}, tts = {0}, dup = {0},
              back = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOOOO!OndOO", &o_buf, &o_win, &o_data, &o_caplen, &o_ts,
                          &PyTuple_Type, &tail, &o_tts, &window, &max_gap, &o_dup, &o_back))
        return NULL;
    if (PyObject_GetBuffer(o_buf, &buf, PyBUF_SIMPLE) < 0
        || PyObject_GetBuffer(o_win, &win, PyBUF_STRIDES) < 0
        || PyObject_GetBuffer(o_data, &data, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_caplen, &caplen, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_ts, &ts, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_tts, &tts, PyBUF_C_CONTIGUOUS) < 0
        || PyObject_GetBuffer(o_dup, &dup, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0
        || PyObject_GetBuffer(o_back, &back, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    Py_ssize_t n = data.len / 8, nt = PyTuple_GET_SIZE(tail);
    if (window < 1 || window > MAX_WINDOW || nt > window || tts.len != nt * 8 || win.ndim != 2
        || win.shape[0] != n || win.strides[1] != 1
        || caplen.len != n * 8 || ts.len != n * 8 || dup.len != n || back.len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "marks: inconsistent shapes");
        goto done;
    }
    const int64_t *d = data.buf, *cl = caplen.buf;
    const double *t = ts.buf;
    const Py_ssize_t w = win.shape[1];
    for (Py_ssize_t i = 0; i < n; i++) {
        if (d[i] < 0 || cl[i] < 0 || d[i] > buf.len || cl[i] > buf.len - d[i]) {
            PyErr_SetString(PyExc_ValueError, "marks: a record lies outside the buffer");
            goto done;
        }
    }
    /* The last `window` records, oldest first: the tail's, then the chunk's as it is walked,
     * so that the inner loop reads one small array on either side of the chunk boundary. */
    Rec last[MAX_WINDOW];
    Py_ssize_t have = 0;
    for (Py_ssize_t j = 0; j < nt; j++) {
        PyObject *b = PyTuple_GET_ITEM(tail, j);
        if (!PyBytes_Check(b)) {
            PyErr_SetString(PyExc_TypeError, "marks: the tail holds bytes");
            goto done;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(b);
        last[have++] = (Rec){p, p, PyBytes_GET_SIZE(b), ((const double *)tts.buf)[j]};
    }
    unsigned char *out = dup.buf;
    int64_t *dist = back.buf;
    Py_ssize_t copies = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        Rec cur = {(const unsigned char *)win.buf + i * win.strides[0],
                   (const unsigned char *)buf.buf + d[i], cl[i], t[i]};
        int64_t k_hit = 0;
        for (Py_ssize_t k = 1; k <= have; k++) {
            const Rec *r = &last[have - k];
            if (r->len == cur.len && fabs(cur.ts - r->ts) <= max_gap && same(r, &cur, w)) {
                k_hit = k;
                break;
            }
        }
        out[i] = k_hit != 0;
        dist[i] = k_hit;
        copies += k_hit != 0;
        if (have == window) {
            memmove(last, last + 1, (size_t)(window - 1) * sizeof *last);
            have--;
        }
        last[have++] = cur;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(copies);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&win);
    PyBuffer_Release(&data);
    PyBuffer_Release(&caplen);
    PyBuffer_Release(&ts);
    PyBuffer_Release(&tts);
    PyBuffer_Release(&dup);
    PyBuffer_Release(&back);
    return result;
}

static PyMethodDef methods[] = {
    {"marks", marks, METH_VARARGS, marks_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dupmask",
    "Compiled duplicate-frame mask for labkit.analyze.duplicates.", -1, methods,
};

PyMODINIT_FUNC
PyInit__dupmask(void)
{
    return PyModule_Create(&module);
}
