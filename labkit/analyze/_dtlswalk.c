/* The DTLS handshake pass of labkit.analyze.detectors.dtlspairs, compiled: a chunk's datagrams
 * carrying DTLS handshake records, in order, into the rows of the pair table.
 *
 * DtlsDetector._handshakes is the reference and the fallback: the same rules one datagram at a
 * time in Python, on the touched rows as lists. On a head-end's capture nearly every packet is
 * such a datagram (a hello, a HelloVerifyRequest, a hello with the cookie), and the Python loop
 * cost ~4 us each, most of a capture's analysis. Here the columns are written in place; what is
 * rare or variable stays in the table's side dicts and the detector's Python objects, updated
 * through the C API exactly as the reference updates them: the recent-hello OrderedDict (the
 * same identities, Python's hash of the same tuple), the hello census, the addresses to watch,
 * the session ids over 32 bytes, message_seq values past two, evidence frames past the columns.
 * The two are interchangeable chunk by chunk; tests run both on the same captures and require
 * the same table.
 *
 * The records come from the decoder's own DtlsRecord tuples (the rare packets' summaries):
 * one parser for both paths.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

PyDoc_STRVAR(walk_doc,
"walk(pkts, per, src_a, dst_a, cols, n, sides, limits) -> (new_rows, duplicates, done)\n\n"
"pkts: the datagrams (decode.Packet tuples with DTLS records), in frame order. per: seven\n"
"int64 arrays of len(pkts): the pair key if the sender is the client, if it is the server\n"
"(uint64 bits), their rows in the table (-1: none before this call), the source's and\n"
"destination's address hashes (uint64 bits), the first record's sequence number. src_a,\n"
"dst_a: (len(pkts), 16) uint8, the packed addresses. cols: the table's columns in\n"
"dtlstable._COLUMNS order, of their narrow types (frame numbers below 2^32: OverflowError\n"
"past them). n: the rows in use. sides:\n"
"(long_session_ids, more_seqs, more_frames, hello_versions, recent, watch). limits:\n"
"(max_recent, duplicate_s, max_frames). New pairs take rows n, n + 1, ... (their keys are\n"
"written; the caller indexes them). Returns the new rows' count, the duplicate hellos and\n"
"the datagrams done: fewer than len(pkts) when a new pair found the columns full (grow\n"
"them, index the new rows, and call again with the rest).");

/* dtlstable._COLUMNS, in order, and each one's item size. */
enum {
    C_KEY, C_CLIENT_A, C_SERVER_A, C_SID, C_SID_LEN, C_PORT,
    C_DISTINCT, C_DUPLICATE, C_COOKIE, C_DATA_C2S, C_DATA_S2C, C_UNIFIED_C2S, C_UNIFIED_S2C,
    C_FIRST_TS, C_LAST_TS, C_FLAGS, C_RECORD_VERSION, C_HELLO_VERSION, C_CIPHER, C_RESUMED,
    C_SEEN, C_DATA_FRAME, C_DATA_TS, C_SEQ0, C_SEQ1, C_HELLO_N, C_HVR_N, C_SH_N,
    C_HELLO_F0, C_HELLO_T0, C_HELLO_F1, C_HELLO_T1, C_HVR_F0, C_HVR_T0, C_SH_F0, C_SH_T0,
    NCOLS
};
static const Py_ssize_t item_size[NCOLS] = {
    8, 16, 16, 32, 1, 4, 4, 4, 4, 4, 4, 4, 4, 8, 8, 1, 4, 4, 4, 1,
    4, 4, 8, 4, 4, 4, 4, 4, 4, 8, 4, 8, 4, 8, 4, 8,
};
enum { PER_KEY_C, PER_KEY_S, PER_ROW_C, PER_ROW_S, PER_SRC_H, PER_DST_H, PER_SEQ, NPER };
/* dtlstable: the flags bits, an absent value, the long session id mark, the evidence kinds */
enum { CLIENT_CCS = 1, SERVER_CCS = 2, HANDSHAKE = 4, CLIENT_V6 = 8, SERVER_V6 = 16 };
#define NO_VALUE (-1)
#define SID_BYTES 32
#define LONG_SID 255
enum { K_HELLO, K_HVR, K_SH };
/* decode.Packet and decode.DtlsRecord fields; RFC 6347 content and handshake types */
enum { P_FRAME = 0, P_TS = 1, P_IPVER = 3, P_SPORT = 9, P_DPORT = 10, P_DTLS = 14, P_N = 16 };
enum {
    R_CTYPE, R_VERSION, R_EPOCH, R_LENGTH, R_HS_TYPE, R_MSG_SEQ, R_FRAG, R_SID, R_COOKIE,
    R_CIPHER, R_HELLO_VERSION, R_N
};
enum { CT_CCS = 20, HS_CLIENT_HELLO = 1, HS_SERVER_HELLO = 2, HS_HELLO_VERIFY = 3 };

#define COL(t, c) ((t *)w->col[c])

typedef struct {
    char *col[NCOLS];
    PyObject *long_sids, *more_seqs, *more_frames, *versions, *recent, *watch;
    Py_ssize_t max_recent, max_frames;
    double duplicate_s;
    /* the pairs made in this call: open addressing, key -> row */
    uint64_t *map_key;
    int64_t *map_row;
    size_t mask;
    int64_t n, made, cap; /* rows in use before the call, made since, room in the columns */
} Walk;

static PyObject *s_pop, *s_popitem;

/* An int field of a tuple, or dflt where it is None. -1 with an exception on error: callers
 * check PyErr_Occurred only where -1 is a value the field may hold. */
static inline int64_t
field(PyObject *t, Py_ssize_t i, int64_t dflt)
{
    PyObject *v = PyTuple_GET_ITEM(t, i);
    return v == Py_None ? dflt : PyLong_AsLongLong(v);
}

static inline size_t
slot_of(const Walk *w, uint64_t key)
{
    size_t h = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & w->mask;
    while (w->map_row[h] >= 0 && w->map_key[h] != key)
        h = (h + 1) & w->mask;
    return h;
}

/* The row of key: the one found before this call, else one made in it, else -1. */
static inline int64_t
row_of(const Walk *w, uint64_t key, int64_t before)
{
    return before >= 0 ? before : w->map_row[slot_of(w, key)];
}

/* A new pair's row: every column as dtlstable._FRESH has it, then the pair's own fields. */
static int64_t
make(Walk *w, uint64_t key, const unsigned char *client_a, const unsigned char *server_a,
     int v6, int64_t port)
{
    int64_t i = w->n + w->made++;
    for (int c = 0; c < NCOLS; c++)
        memset(w->col[c] + i * item_size[c], 0, (size_t)item_size[c]);
    COL(int32_t, C_RECORD_VERSION)[i] = COL(int32_t, C_HELLO_VERSION)[i] = NO_VALUE;
    COL(int32_t, C_CIPHER)[i] = COL(int32_t, C_SEQ0)[i] = COL(int32_t, C_SEQ1)[i] = NO_VALUE;
    COL(int8_t, C_RESUMED)[i] = NO_VALUE;
    COL(uint64_t, C_KEY)[i] = key;
    memcpy(w->col[C_CLIENT_A] + 16 * i, client_a, 16);
    memcpy(w->col[C_SERVER_A] + 16 * i, server_a, 16);
    COL(int32_t, C_PORT)[i] = (int32_t)port;
    COL(uint8_t, C_FLAGS)[i] = v6 ? CLIENT_V6 | SERVER_V6 : 0;
    size_t h = slot_of(w, key);
    w->map_key[h] = key;
    w->map_row[h] = i;
    return i;
}

/* value into the container d[k], made by make (a list or a set) when k has none: the side
 * dicts' d.setdefault(k, make()).append(value) or .add(value). */
static int
side_add(PyObject *d, PyObject *k, PyObject *value, int as_set)
{
    PyObject *have = PyDict_GetItemWithError(d, k);
    if (!have && PyErr_Occurred())
        return -1;
    if (have)
        return as_set ? PySet_Add(have, value) : PyList_Append(have, value);
    PyObject *made = as_set ? PySet_New(NULL) : PyList_New(0);
    if (!made)
        return -1;
    int rc = as_set ? PySet_Add(made, value) : PyList_Append(made, value);
    if (rc == 0)
        rc = PyDict_SetItem(d, k, made);
    Py_DECREF(made);
    return rc;
}

/* RowEdit.add_frame: one more evidence frame of kind for row i. */
static int
add_frame(Walk *w, int kind, int64_t i, int64_t frame, double ts)
{
    static const int n_col[] = {C_HELLO_N, C_HVR_N, C_SH_N};
    static const int f_col[][2] = {{C_HELLO_F0, C_HELLO_F1}, {C_HVR_F0, -1}, {C_SH_F0, -1}};
    static const int t_col[][2] = {{C_HELLO_T0, C_HELLO_T1}, {C_HVR_T0, -1}, {C_SH_T0, -1}};
    static const int slots[] = {2, 1, 1};
    uint32_t *count = COL(uint32_t, n_col[kind]);
    uint32_t n = count[i];
    count[i] = n + 1;
    if (n < (uint32_t)slots[kind]) {
        COL(uint32_t, f_col[kind][n])[i] = (uint32_t)frame;
        COL(double, t_col[kind][n])[i] = ts;
        return 0;
    }
    if (n >= (uint64_t)w->max_frames)
        return 0;
    PyObject *k = Py_BuildValue("(iK)", kind, (unsigned long long)COL(uint64_t, C_KEY)[i]);
    PyObject *v = k ? Py_BuildValue("(Ld)", (long long)frame, ts) : NULL;
    int rc = v ? side_add(w->more_frames, k, v, 0) : -1;
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* RowEdit.add_seq: a hello's message_seq, kept if the pair has not had it. */
static int
add_seq(Walk *w, int64_t i, int64_t seq)
{
    int32_t *s0 = COL(int32_t, C_SEQ0), *s1 = COL(int32_t, C_SEQ1);
    if (seq == s0[i] || seq == s1[i])
        return 0;
    if (s0[i] == NO_VALUE) {
        s0[i] = (int32_t)seq;
        return 0;
    }
    if (s1[i] == NO_VALUE) {
        s1[i] = (int32_t)seq;
        return 0;
    }
    PyObject *k = PyLong_FromUnsignedLongLong(COL(uint64_t, C_KEY)[i]);
    PyObject *v = k ? PyLong_FromLongLong(seq) : NULL;
    int rc = -1;
    if (v)
        rc = side_add(w->more_seqs, k, v, 1); /* a set: a value it has is left as it is */
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* The client's session id of row i (a new reference), as RowEdit.session_id reads it. */
static PyObject *
client_sid(Walk *w, int64_t i)
{
    uint8_t n = COL(uint8_t, C_SID_LEN)[i];
    if (n != LONG_SID)
        return PyBytes_FromStringAndSize(w->col[C_SID] + SID_BYTES * i, n);
    PyObject *k = PyLong_FromUnsignedLongLong(COL(uint64_t, C_KEY)[i]);
    if (!k)
        return NULL;
    PyObject *sid = PyDict_GetItemWithError(w->long_sids, k);
    Py_DECREF(k);
    if (!sid && !PyErr_Occurred())
        PyErr_SetString(PyExc_KeyError, "walk: a long session id without its entry");
    Py_XINCREF(sid);
    return sid;
}

/* RowEdit.set_session_id. */
static int
set_sid(Walk *w, int64_t i, PyObject *sid)
{
    if (!PyBytes_Check(sid)) {
        PyErr_SetString(PyExc_TypeError, "walk: a session id must be bytes");
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(sid);
    char *dst = w->col[C_SID] + SID_BYTES * i;
    memset(dst, 0, SID_BYTES);
    memcpy(dst, PyBytes_AS_STRING(sid), (size_t)(n < SID_BYTES ? n : SID_BYTES));
    COL(uint8_t, C_SID_LEN)[i] = n <= SID_BYTES ? (uint8_t)n : LONG_SID;
    if (n <= SID_BYTES)
        return 0;
    PyObject *k = PyLong_FromUnsignedLongLong(COL(uint64_t, C_KEY)[i]);
    int rc = k ? PyDict_SetItem(w->long_sids, k, sid) : -1;
    Py_XDECREF(k);
    return rc;
}

/* A ServerHello (its first fragment) on row i: cipher, version, resumption. */
static int
server_hello(Walk *w, int64_t i, PyObject *r, int64_t frame, double ts)
{
    if (add_frame(w, K_SH, i, frame, ts) < 0)
        return -1;
    int64_t cipher = field(r, R_CIPHER, NO_VALUE), hv = field(r, R_HELLO_VERSION, NO_VALUE);
    if (PyErr_Occurred())
        return -1;
    COL(int32_t, C_CIPHER)[i] = (int32_t)cipher;
    if (hv != NO_VALUE)
        COL(int32_t, C_HELLO_VERSION)[i] = (int32_t)hv;
    PyObject *sid = PyTuple_GET_ITEM(r, R_SID);
    if (sid == Py_None)
        return 0;
    if (!PyBytes_Check(sid)) {
        PyErr_SetString(PyExc_TypeError, "walk: a session id must be bytes");
        return -1;
    }
    PyObject *mine = client_sid(w, i);
    if (!mine)
        return -1;
    Py_ssize_t n = PyBytes_GET_SIZE(sid);
    COL(int8_t, C_RESUMED)[i] = n > 0 && n == PyBytes_GET_SIZE(mine) &&
                                memcmp(PyBytes_AS_STRING(sid), PyBytes_AS_STRING(mine), n) == 0;
    Py_DECREF(mine);
    return 0;
}

/* hello_versions[version] += 1 */
static int
census(Walk *w, int64_t version)
{
    PyObject *k = PyLong_FromLongLong(version);
    if (!k)
        return -1;
    PyObject *have = PyDict_GetItemWithError(w->versions, k); /* borrowed; NULL: none yet */
    long long n = have ? PyLong_AsLongLong(have) : 0;
    PyObject *v = PyErr_Occurred() ? NULL : PyLong_FromLongLong(n + 1);
    int rc = v ? PyDict_SetItem(w->versions, k, v) : -1;
    Py_DECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* The recent-hello rule: 1 if this identity was last seen less than duplicate_s ago (a
 * frame captured twice), 0 if not, -1 on error. recent.pop(ident); evict the oldest at the
 * bound; recent[ident] = ts. */
static int
repeated(Walk *w, uint64_t key, int64_t sport, int64_t seq, int64_t msg_seq, PyObject *ts_obj)
{
    PyObject *t = Py_BuildValue("(KLLL)", (unsigned long long)key, (long long)sport,
                                (long long)seq, (long long)msg_seq);
    if (!t)
        return -1;
    Py_hash_t h = PyObject_Hash(t);
    Py_DECREF(t);
    PyObject *ident = h == -1 ? NULL : PyLong_FromSsize_t(h);
    if (!ident)
        return -1;
    int rc = -1;
    PyObject *before = PyObject_CallMethodObjArgs(w->recent, s_pop, ident, Py_None, NULL);
    if (!before)
        goto done;
    Py_ssize_t size = PyObject_Length(w->recent);
    if (size < 0)
        goto done;
    if (size >= w->max_recent) {
        PyObject *gone = PyObject_CallMethodObjArgs(w->recent, s_popitem, Py_False, NULL);
        if (!gone)
            goto done;
        Py_DECREF(gone);
    }
    if (PyObject_SetItem(w->recent, ident, ts_obj) < 0)
        goto done;
    if (before == Py_None) {
        rc = 0;
    } else {
        double b = PyFloat_AsDouble(before);
        double ts = PyFloat_AsDouble(ts_obj);
        rc = PyErr_Occurred() ? -1 : fabs(ts - b) < w->duplicate_s;
    }
done:
    Py_XDECREF(before);
    Py_DECREF(ident);
    return rc;
}

/* The client's and the server's address hashes join the addresses to watch. */
static int
watch(Walk *w, uint64_t client_h, uint64_t server_h)
{
    uint64_t hs[2] = {client_h, server_h};
    for (int j = 0; j < 2; j++) {
        PyObject *h = PyLong_FromUnsignedLongLong(hs[j]);
        int rc = h ? PyList_Append(w->watch, h) : -1;
        Py_XDECREF(h);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* One ClientHello record (first fragment) of the client's datagram, record n of it; src_h,
 * dst_h: the datagram's address hashes (the client's and the server's). */
static int
client_hello(Walk *w, int64_t i, PyObject *r, Py_ssize_t n, int64_t frame, PyObject *ts_obj,
             int64_t sport, int64_t rec_seq, uint64_t src_h, uint64_t dst_h,
             Py_ssize_t *duplicates)
{
    double ts = PyFloat_AsDouble(ts_obj);
    int64_t version = field(r, R_VERSION, 0), msg_seq = field(r, R_MSG_SEQ, 0);
    int64_t cookie = field(r, R_COOKIE, 0), hv = field(r, R_HELLO_VERSION, NO_VALUE);
    if (PyErr_Occurred())
        return -1;
    if (census(w, version) < 0 || add_frame(w, K_HELLO, i, frame, ts) < 0)
        return -1;
    /* the record's sequence number is read from the columns for the first record only: a
       hello later in the datagram is identified by its position instead */
    int dup = repeated(w, COL(uint64_t, C_KEY)[i], sport, n == 0 ? rec_seq : -n, msg_seq, ts_obj);
    if (dup < 0)
        return -1;
    if (dup) {
        COL(uint32_t, C_DUPLICATE)[i]++;
        (*duplicates)++;
        return 0;
    }
    uint32_t distinct = ++COL(uint32_t, C_DISTINCT)[i];
    if (add_seq(w, i, msg_seq) < 0)
        return -1;
    if (distinct == 1) {
        COL(double, C_FIRST_TS)[i] = ts;
        if (watch(w, src_h, dst_h) < 0)
            return -1;
    }
    if (ts > COL(double, C_LAST_TS)[i])
        COL(double, C_LAST_TS)[i] = ts;
    if (cookie)
        COL(uint32_t, C_COOKIE)[i]++;
    PyObject *sid = PyTuple_GET_ITEM(r, R_SID);
    if (sid != Py_None && set_sid(w, i, sid) < 0)
        return -1;
    if (COL(int32_t, C_HELLO_VERSION)[i] == NO_VALUE && hv != NO_VALUE)
        COL(int32_t, C_HELLO_VERSION)[i] = (int32_t)hv;
    return 0;
}

/* One datagram: DtlsDetector._handshakes' loop body. 0 done, 1 not begun (a new pair and
 * no room for its row), -1 an error. */
static int
datagram(Walk *w, PyObject *pkt, const int64_t *per[NPER], Py_ssize_t d,
         const unsigned char *src_a, const unsigned char *dst_a, Py_ssize_t *duplicates)
{
    if (!PyTuple_Check(pkt) || PyTuple_GET_SIZE(pkt) < P_N) {
        PyErr_SetString(PyExc_TypeError, "walk: a decode.Packet expected");
        return -1;
    }
    PyObject *recs = PyTuple_GET_ITEM(pkt, P_DTLS);
    if (!PyTuple_Check(recs)) {
        PyErr_SetString(PyExc_TypeError, "walk: DTLS records must be a tuple");
        return -1;
    }
    Py_ssize_t nrec = PyTuple_GET_SIZE(recs);
    int from_client = 0, answer = 0;
    for (Py_ssize_t n = 0; n < nrec; n++) {
        PyObject *r = PyTuple_GET_ITEM(recs, n);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) < R_N) {
            PyErr_SetString(PyExc_TypeError, "walk: a decode.DtlsRecord expected");
            return -1;
        }
        int64_t hs = field(r, R_HS_TYPE, -1);
        from_client |= hs == HS_CLIENT_HELLO;
        answer |= hs == HS_SERVER_HELLO || hs == HS_HELLO_VERIFY;
    }
    if (!nrec)
        return 0;
    int64_t frame = field(pkt, P_FRAME, 0), sport = field(pkt, P_SPORT, 0);
    int64_t dport = field(pkt, P_DPORT, 0), ipver = field(pkt, P_IPVER, 0);
    if (PyErr_Occurred())
        return -1;
    if (frame < 0 || frame > (int64_t)UINT32_MAX) { /* the detector walks those in Python */
        PyErr_SetString(PyExc_OverflowError, "walk: a frame number past the 32-bit columns");
        return -1;
    }
    PyObject *ts_obj = PyTuple_GET_ITEM(pkt, P_TS);
    double ts = PyFloat_AsDouble(ts_obj);
    if (ts == -1.0 && PyErr_Occurred())
        return -1;
    uint64_t key_c = (uint64_t)per[PER_KEY_C][d], key_s = (uint64_t)per[PER_KEY_S][d];
    uint64_t src_h = (uint64_t)per[PER_SRC_H][d], dst_h = (uint64_t)per[PER_DST_H][d];
    int64_t i;
    int full = w->n + w->made >= w->cap;
    if (from_client) {
        i = row_of(w, key_c, per[PER_ROW_C][d]);
        if (i < 0 && full)
            return 1;
        if (i < 0)
            i = make(w, key_c, src_a, dst_a, ipver == 6, dport);
    } else if ((i = row_of(w, key_s, per[PER_ROW_S][d])) >= 0) {
    } else if ((i = row_of(w, key_c, per[PER_ROW_C][d])) >= 0) {
        from_client = 1;
    } else if (answer) { /* the hello itself was not captured */
        if (full)
            return 1;
        i = make(w, key_s, dst_a, src_a, ipver == 6, sport);
    } else {
        return 0;
    }
    COL(uint32_t, C_SEEN)[i] = (uint32_t)frame;
    COL(uint8_t, C_FLAGS)[i] |= HANDSHAKE;
    if (COL(int32_t, C_RECORD_VERSION)[i] == NO_VALUE) {
        int64_t v = field(PyTuple_GET_ITEM(recs, 0), R_VERSION, 0);
        if (v == -1 && PyErr_Occurred())
            return -1;
        COL(int32_t, C_RECORD_VERSION)[i] = (int32_t)v;
    }
    for (Py_ssize_t n = 0; n < nrec; n++) {
        PyObject *r = PyTuple_GET_ITEM(recs, n);
        int64_t hs = field(r, R_HS_TYPE, -1), frag = field(r, R_FRAG, -1);
        int64_t ctype = field(r, R_CTYPE, -1);
        if (PyErr_Occurred())
            return -1;
        if (ctype == CT_CCS) {
            COL(uint8_t, C_FLAGS)[i] |= from_client ? CLIENT_CCS : SERVER_CCS;
        } else if (!from_client) {
            if (hs == HS_HELLO_VERIFY) {
                if (add_frame(w, K_HVR, i, frame, ts) < 0)
                    return -1;
            } else if (hs == HS_SERVER_HELLO && frag == 0) {
                if (server_hello(w, i, r, frame, ts) < 0)
                    return -1;
            }
        } else if (hs == HS_CLIENT_HELLO && frag == 0) {
            if (client_hello(w, i, r, n, frame, ts_obj, sport, per[PER_SEQ][d], src_h, dst_h,
                             duplicates) < 0)
                return -1;
        }
    }
    return 0;
}

static int
get(PyObject *o, Py_buffer *b, int writable)
{
    return PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0));
}

static PyObject *
walk(PyObject *self, PyObject *args)
{
    PyObject *pkts, *per_t, *src_o, *dst_o, *cols_t, *sides;
    Py_ssize_t n, max_recent, max_frames;
    double duplicate_s;
    if (!PyArg_ParseTuple(args, "O!O!OOO!nO!(ndn)", &PyList_Type, &pkts, &PyTuple_Type, &per_t,
                          &src_o, &dst_o, &PyTuple_Type, &cols_t, &n, &PyTuple_Type, &sides,
                          &max_recent, &duplicate_s, &max_frames))
        return NULL;
    Py_ssize_t m = PyList_GET_SIZE(pkts);
    if (PyTuple_GET_SIZE(per_t) != NPER || PyTuple_GET_SIZE(cols_t) != NCOLS ||
        PyTuple_GET_SIZE(sides) != 6 || n < 0 || max_recent < 1) {
        PyErr_SetString(PyExc_ValueError, "walk: wrong number of arrays, columns or sides");
        return NULL;
    }
    Py_buffer per_b[NPER] = {{0}}, col_b[NCOLS] = {{0}}, src_b = {0}, dst_b = {0};
    PyObject *result = NULL;
    Walk w = {0};
    const int64_t *per[NPER];
    for (int j = 0; j < NPER; j++) {
        if (get(PyTuple_GET_ITEM(per_t, j), &per_b[j], 0) < 0)
            goto done;
        if (per_b[j].len != 8 * m || per_b[j].itemsize != 8) {
            PyErr_SetString(PyExc_ValueError, "walk: per-datagram arrays of 8-byte items");
            goto done;
        }
        per[j] = per_b[j].buf;
    }
    for (int c = 0; c < NCOLS; c++) {
        if (get(PyTuple_GET_ITEM(cols_t, c), &col_b[c], 1) < 0)
            goto done;
        Py_ssize_t rows = col_b[c].len / item_size[c];
        if (col_b[c].itemsize != item_size[c] || rows < n) {
            PyErr_SetString(PyExc_ValueError, "walk: columns of the wrong type or too short");
            goto done;
        }
        w.cap = c == 0 || rows < w.cap ? rows : w.cap;
        w.col[c] = col_b[c].buf;
    }
    if (get(src_o, &src_b, 0) < 0 || get(dst_o, &dst_b, 0) < 0)
        goto done;
    if (src_b.len != 16 * m || dst_b.len != 16 * m) {
        PyErr_SetString(PyExc_ValueError, "walk: packed addresses of 16 bytes per datagram");
        goto done;
    }
    w.long_sids = PyTuple_GET_ITEM(sides, 0);
    w.more_seqs = PyTuple_GET_ITEM(sides, 1);
    w.more_frames = PyTuple_GET_ITEM(sides, 2);
    w.versions = PyTuple_GET_ITEM(sides, 3);
    w.recent = PyTuple_GET_ITEM(sides, 4);
    w.watch = PyTuple_GET_ITEM(sides, 5);
    if (!PyDict_Check(w.long_sids) || !PyDict_Check(w.more_seqs) ||
        !PyDict_Check(w.more_frames) || !PyDict_Check(w.versions) || !PyList_Check(w.watch)) {
        PyErr_SetString(PyExc_TypeError, "walk: sides are four dicts, a mapping and a list");
        goto done;
    }
    w.max_recent = max_recent;
    w.max_frames = max_frames;
    w.duplicate_s = duplicate_s;
    w.n = n;
    size_t cap = 16;
    while (cap < 2 * (size_t)m)
        cap <<= 1;
    w.mask = cap - 1;
    w.map_key = PyMem_Malloc(cap * sizeof *w.map_key);
    w.map_row = PyMem_Malloc(cap * sizeof *w.map_row);
    if (!w.map_key || !w.map_row) {
        PyErr_NoMemory();
        goto done;
    }
    memset(w.map_row, 0xff, cap * sizeof *w.map_row); /* -1: empty */
    Py_ssize_t duplicates = 0, d = 0;
    for (; d < m; d++) {
        int rc = datagram(&w, PyList_GET_ITEM(pkts, d), per, d,
                          (const unsigned char *)src_b.buf + 16 * d,
                          (const unsigned char *)dst_b.buf + 16 * d, &duplicates);
        if (rc < 0)
            goto done;
        if (rc > 0)
            break;
    }
    result = Py_BuildValue("(Lnn)", (long long)w.made, duplicates, d);
done:
    PyMem_Free(w.map_key);
    PyMem_Free(w.map_row);
    for (int j = 0; j < NPER; j++)
        if (per_b[j].obj)
            PyBuffer_Release(&per_b[j]);
    for (int c = 0; c < NCOLS; c++)
        if (col_b[c].obj)
            PyBuffer_Release(&col_b[c]);
    if (src_b.obj)
        PyBuffer_Release(&src_b);
    if (dst_b.obj)
        PyBuffer_Release(&dst_b);
    return result;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, walk_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dtlswalk",
    "Compiled DTLS handshake pass for labkit.analyze.detectors.dtlspairs.", -1, methods,
};

PyMODINIT_FUNC
PyInit__dtlswalk(void)
{
    s_pop = PyUnicode_InternFromString("pop");
    s_popitem = PyUnicode_InternFromString("popitem");
    if (!s_pop || !s_popitem)
        return NULL;
    return PyModule_Create(&module);
}
