/*
 * model.c: the one place that writes and reads mlcnn's model bytes.
 *
 * Layout, format version 1. Integers and floats little-endian; f32/f64 are
 * IEEE-754. Offsets are from the start of the blob.
 *
 *   0   8  magic "MLCNNMDL"
 *   8   2  u16 format version (1)
 *  10   2  u16 kind (1 model, 2 gradients)
 *  12   4  u32 reserved, 0
 *  16   8  u64 total length of the blob, checksum included
 *  24      i32 input h, w, c; i32 classes
 *          u32 spec length, spec bytes (canonical layer spec, no NUL)
 *          i32 normalisation mode, f32 mean, f32 std
 *          u32 options length, options bytes (canonical JSON)
 *          i64 rows trained, i64 rows skipped, i64 gradient rows
 *          f64 training seconds
 *          u32 epochs, then per epoch f32 loss, train acc, val acc, seconds
 *          u64 parameter count, then that many f32 (PyTorch order/layout)
 *  end-4   u32 CRC-32 (IEEE) of every byte before it
 *
 * The reader bounds-checks every field against the remaining length before
 * it touches it, verifies the checksum before parsing, then re-derives the
 * network from the spec and shapes and checks the parameter count against
 * it, so a blob that parses is one the rest of the core can trust.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <zlib.h>

#include "model.h"

static const uint8_t MAGIC[8] = {'M', 'L', 'C', 'N', 'N', 'M', 'D', 'L'};

#define HEADER_BYTES 24
#define EPOCH_BYTES 16

/* ------------------------------------------------------------ writing */

/* A cursor over an output buffer. */
typedef struct wbuf
{
	uint8_t    *p;
} wbuf;

/* Put a little-endian unsigned integer of n bytes. */
static void
put_le(wbuf *w, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		*w->p++ = (uint8_t) (v >> (8 * i));
}

/* Put a float32. */
static void
put_f32(wbuf *w, float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	put_le(w, u, 4);
}

/* Put a float64. */
static void
put_f64(wbuf *w, double d)
{
	uint64_t	u;

	memcpy(&u, &d, 8);
	put_le(w, u, 8);
}

/* Put raw bytes. */
static void
put_bytes(wbuf *w, const void *src, size_t n)
{
	memcpy(w->p, src, n);
	w->p += n;
}

/* canonical options JSON of a model (written into buf) */
static size_t
options_text(const nn_model *m, char *buf, size_t len)
{
	int			n;

	if (m->kind != NN_BLOB_MODEL)
		return 0;
	n = nn_options_to_json(&m->options, buf, len);
	return n < 0 ? 0 : (size_t) n;
}

/* Exact serialised size of m. */
size_t
nn_model_size(const nn_model *m)
{
	char		opts[NN_MAX_OPTIONS_JSON];

	return HEADER_BYTES + 16 + 4 + strlen(m->net.spec) + 12 +
		4 + options_text(m, opts, sizeof(opts)) + 32 +
		4 + (size_t) m->nepochs * EPOCH_BYTES +
		8 + m->net.nparams * sizeof(float) + 4;
}

/* Serialise m into buf (nn_model_size(m) bytes). */
void
nn_model_write(const nn_model *m, uint8_t *buf)
{
	char		opts[NN_MAX_OPTIONS_JSON];
	size_t		optlen = options_text(m, opts, sizeof(opts));
	size_t		total = nn_model_size(m);
	size_t		speclen = strlen(m->net.spec);
	wbuf		w = {buf};

	put_bytes(&w, MAGIC, 8);
	put_le(&w, NN_MODEL_VERSION, 2);
	put_le(&w, (uint64_t) m->kind, 2);
	put_le(&w, 0, 4);
	put_le(&w, total, 8);
	put_le(&w, (uint32_t) m->net.input.h, 4);
	put_le(&w, (uint32_t) m->net.input.w, 4);
	put_le(&w, (uint32_t) m->net.input.c, 4);
	put_le(&w, (uint32_t) m->net.classes, 4);
	put_le(&w, speclen, 4);
	put_bytes(&w, m->net.spec, speclen);
	put_le(&w, (uint32_t) m->norm.mode, 4);
	put_f32(&w, m->norm.mean);
	put_f32(&w, m->norm.std);
	put_le(&w, optlen, 4);
	put_bytes(&w, opts, optlen);
	put_le(&w, (uint64_t) m->rows_trained, 8);
	put_le(&w, (uint64_t) m->rows_skipped, 8);
	put_le(&w, (uint64_t) m->grad_rows, 8);
	put_f64(&w, m->train_seconds);
	put_le(&w, (uint32_t) m->nepochs, 4);
	for (int i = 0; i < m->nepochs; i++)
	{
		put_f32(&w, m->history[i].loss);
		put_f32(&w, m->history[i].train_acc);
		put_f32(&w, m->history[i].val_acc);
		put_f32(&w, m->history[i].seconds);
	}
	put_le(&w, m->net.nparams, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	put_bytes(&w, m->params, m->net.nparams * sizeof(float));
#else
	for (size_t i = 0; i < m->net.nparams; i++)
		put_f32(&w, m->params[i]);
#endif
	put_le(&w, nn_crc32(buf, total - 4), 4);
}

/* ------------------------------------------------------------ reading */

/* A bounds-checked cursor over an input buffer. */
typedef struct rbuf
{
	const uint8_t *p;
	size_t		left;
	const char *field;			/* what is being read, for messages */
	nn_status  *st;
} rbuf;

/* Take n bytes or fail naming the field. */
static const uint8_t *
take(rbuf *r, size_t n, const char *field)
{
	const uint8_t *p = r->p;

	r->field = field;
	if (n > r->left)
	{
		nn_fail(r->st, NN_ERR_CORRUPT, "model is truncated: %s needs %zu bytes but %zu remain",
				field, n, r->left);
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

/* Read a little-endian unsigned integer of n bytes. */
static int
get_le(rbuf *r, int n, uint64_t *v, const char *field)
{
	const uint8_t *p = take(r, (size_t) n, field);

	if (p == NULL)
		return 0;
	*v = 0;
	for (int i = 0; i < n; i++)
		*v |= (uint64_t) p[i] << (8 * i);
	return 1;
}

/* Read an i32 that must lie in [lo, hi]. */
static int
get_i32(rbuf *r, int32_t *out, int32_t lo, int32_t hi, const char *field)
{
	uint64_t	v;
	int32_t		x;

	if (!get_le(r, 4, &v, field))
		return 0;
	x = (int32_t) (uint32_t) v;
	if (x < lo || x > hi)
	{
		nn_fail(r->st, NN_ERR_CORRUPT, "model is corrupt: %s is %d, outside %d..%d",
				field, x, lo, hi);
		return 0;
	}
	*out = x;
	return 1;
}

/* Read an f32. */
static int
get_f32(rbuf *r, float *out, const char *field)
{
	uint64_t	v;
	uint32_t	u;

	if (!get_le(r, 4, &v, field))
		return 0;
	u = (uint32_t) v;
	memcpy(out, &u, 4);
	return 1;
}

/* Read a non-negative i64. */
static int
get_count(rbuf *r, int64_t *out, const char *field)
{
	uint64_t	v;

	if (!get_le(r, 8, &v, field))
		return 0;
	if (v > (uint64_t) INT64_MAX)
	{
		nn_fail(r->st, NN_ERR_CORRUPT, "model is corrupt: %s is negative", field);
		return 0;
	}
	*out = (int64_t) v;
	return 1;
}

/* Parse and validate a blob into m. */
int
nn_model_read(nn_model *m, const uint8_t *buf, size_t len,
			  const nn_allocator *a, nn_status *st)
{
	rbuf		r = {buf, len, "", st};
	uint64_t	v,
				total,
				nparams;
	uint32_t	crc_stored;
	const uint8_t *p;
	nn_shape	in;
	int32_t		classes;
	char		spec[NN_MAX_SPEC];
	uint32_t	speclen,
				optlen,
				nepochs;
	double		secs;

	memset(m, 0, sizeof(*m));
	if (len < HEADER_BYTES + 4)
		return nn_fail(st, NN_ERR_CORRUPT, "model is truncated: %zu bytes is shorter than the %d-byte header",
					   len, HEADER_BYTES + 4);
	if (memcmp(buf, MAGIC, 8) != 0)
		return nn_fail(st, NN_ERR_CORRUPT, "not an mlcnn model: bad magic number");
	r.p += 8;
	r.left -= 8;
	get_le(&r, 2, &v, "version");
	if (v != NN_MODEL_VERSION)
		return nn_fail(st, NN_ERR_CORRUPT, "unsupported model format version %u (this mlcnn reads version %d)",
					   (unsigned) v, NN_MODEL_VERSION);
	get_le(&r, 2, &v, "kind");
	if (v != NN_BLOB_MODEL && v != NN_BLOB_GRADIENTS)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: unknown blob kind %u", (unsigned) v);
	m->kind = (int32_t) v;
	get_le(&r, 4, &v, "reserved");
	if (v != 0)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: reserved header field is %u, not 0", (unsigned) v);
	get_le(&r, 8, &total, "length");
	if (total != len)
		return nn_fail(st, NN_ERR_CORRUPT, "model is %s: header says %llu bytes but %zu were given",
					   total > len ? "truncated" : "corrupt", (unsigned long long) total, len);
	crc_stored = (uint32_t) buf[len - 4] | (uint32_t) buf[len - 3] << 8 |
		(uint32_t) buf[len - 2] << 16 | (uint32_t) buf[len - 1] << 24;
	if (nn_crc32(buf, len - 4) != crc_stored)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: checksum mismatch");
	r.left -= 4;				/* the checksum is not a field */

	if (!get_i32(&r, &in.h, 1, NN_MAX_DIM, "input height") ||
		!get_i32(&r, &in.w, 1, NN_MAX_DIM, "input width") ||
		!get_i32(&r, &in.c, 1, NN_MAX_DIM, "input channels") ||
		!get_i32(&r, &classes, NN_MIN_CLASSES, NN_MAX_CLASSES, "class count"))
		return st->code;
	if (!get_le(&r, 4, &v, "spec length"))
		return st->code;
	speclen = (uint32_t) v;
	if (speclen == 0 || speclen >= NN_MAX_SPEC)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: layer spec length %u", speclen);
	if ((p = take(&r, speclen, "layer spec")) == NULL)
		return st->code;
	memcpy(spec, p, speclen);
	spec[speclen] = '\0';
	if (memchr(spec, '\0', speclen) != NULL)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: layer spec holds a NUL byte");
	if (nn_net_build(&m->net, spec, in, classes, st) != NN_OK)
	{
		char		msg[NN_MSG_LEN];

		snprintf(msg, sizeof(msg), "%s", st->msg);
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: its layer spec does not build: %s", msg);
	}
	if (!get_i32(&r, &m->norm.mode, NN_NORM_NONE, NN_NORM_ZSCORE, "normalisation mode") ||
		!get_f32(&r, &m->norm.mean, "normalisation mean") ||
		!get_f32(&r, &m->norm.std, "normalisation std"))
		return st->code;
	if (!isfinite(m->norm.mean) || !isfinite(m->norm.std) ||
		(m->norm.mode == NN_NORM_ZSCORE && !(m->norm.std > 0)))
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: bad normalisation statistics");

	if (!get_le(&r, 4, &v, "options length"))
		return st->code;
	optlen = (uint32_t) v;
	if (optlen >= NN_MAX_OPTIONS_JSON)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: options length %u", optlen);
	if ((p = take(&r, optlen, "options")) == NULL)
		return st->code;
	nn_options_default(&m->options);
	if (m->kind == NN_BLOB_MODEL)
	{
		if (optlen == 0)
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: options are missing");
		if (nn_options_parse(&m->options, (const char *) p, optlen, st) != NN_OK)
		{
			char		msg[NN_MSG_LEN];

			snprintf(msg, sizeof(msg), "%s", st->msg);
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: bad options: %s", msg);
		}
	}
	if (!get_count(&r, &m->rows_trained, "rows trained") ||
		!get_count(&r, &m->rows_skipped, "rows skipped") ||
		!get_count(&r, &m->grad_rows, "gradient rows"))
		return st->code;
	if (!get_le(&r, 8, &v, "training seconds"))
		return st->code;
	memcpy(&secs, &v, 8);
	if (!isfinite(secs) || secs < 0)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: bad training time");
	m->train_seconds = secs;

	if (!get_le(&r, 4, &v, "epoch count"))
		return st->code;
	nepochs = (uint32_t) v;
	if (nepochs > NN_MAX_HISTORY || (size_t) nepochs * EPOCH_BYTES > r.left)
		return nn_fail(st, NN_ERR_CORRUPT, "model is %s: %u epochs of history",
					   nepochs > NN_MAX_HISTORY ? "corrupt" : "truncated", nepochs);
	if (nepochs > 0)
	{
		m->history = nn_calloc(a, nepochs, sizeof(nn_epoch));
		if (m->history == NULL)
			return nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model");
		m->nepochs = (int32_t) nepochs;
		for (uint32_t i = 0; i < nepochs; i++)
		{
			get_f32(&r, &m->history[i].loss, "history");
			get_f32(&r, &m->history[i].train_acc, "history");
			get_f32(&r, &m->history[i].val_acc, "history");
			get_f32(&r, &m->history[i].seconds, "history");
		}
	}

	if (!get_le(&r, 8, &nparams, "parameter count"))
		goto fail;
	if (nparams != m->net.nparams)
	{
		nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: %llu parameters stored but its layers need %zu",
				(unsigned long long) nparams, m->net.nparams);
		goto fail;
	}
	if (nparams * sizeof(float) != r.left)
	{
		nn_fail(st, NN_ERR_CORRUPT, "model is %s: %llu parameters need %llu bytes but %zu remain",
				nparams * sizeof(float) > r.left ? "truncated" : "corrupt",
				(unsigned long long) nparams, (unsigned long long) (nparams * sizeof(float)), r.left);
		goto fail;
	}
	m->params = nn_alloc(a, nparams * sizeof(float) + 1);
	if (m->params == NULL)
	{
		nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model of %llu parameters",
				(unsigned long long) nparams);
		goto fail;
	}
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(m->params, r.p, nparams * sizeof(float));
#else
	for (size_t i = 0; i < nparams; i++)
		get_f32(&r, &m->params[i], "parameters");
#endif
	for (size_t i = 0; i < nparams; i++)
	{
		if (!isfinite(m->params[i]))
		{
			nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: parameter %zu is not a finite number", i);
			goto fail;
		}
	}
	return NN_OK;

fail:
	nn_model_free(m, a);
	return st->code;
}

/* Release what nn_model_read allocated. */
void
nn_model_free(nn_model *m, const nn_allocator *a)
{
	nn_free(a, m->history);
	nn_free(a, m->params);
	nn_free(a, m->buffers);
	m->history = NULL;
	m->params = NULL;
	m->buffers = NULL;
}

/*
 * CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, as in gzip and PNG),
 * from zlib, whose implementation is several times faster than a byte-wise
 * table; zlib's length argument is 32-bit, so long buffers go in pieces.
 */
uint32_t
nn_crc32(const uint8_t *buf, size_t len)
{
	uLong		crc = crc32(0L, Z_NULL, 0);

	while (len > 0)
	{
		uInt		n = len > (1u << 30) ? (1u << 30) : (uInt) len;

		crc = crc32(crc, buf, n);
		buf += n;
		len -= n;
	}
	return (uint32_t) crc;
}

/* ------------------------------------------------------------ model_info */

/* Append printf output to buf at *pos, tracking overflow. */
static void
emit(char *buf, size_t len, size_t *pos, const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

/* (see above) */
static void
emit(char *buf, size_t len, size_t *pos, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(*pos < len ? buf + *pos : NULL, *pos < len ? len - *pos : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos += (size_t) n;
}

/* A float as JSON: null when not finite. */
static void
emit_float(char *buf, size_t len, size_t *pos, double v)
{
	if (isfinite(v))
		emit(buf, len, pos, "%.6g", v);
	else
		emit(buf, len, pos, "null");
}

/* Bytes model_info JSON needs, NUL included. */
size_t
nn_model_info_size(const nn_model *m)
{
	return 1024 + NN_MAX_SPEC + NN_MAX_OPTIONS_JSON + (size_t) m->nepochs * 160;
}

/* model_info as JSON text; returns its length or -1 when buf is too small. */
int
nn_model_info_json(const nn_model *m, size_t blob_bytes, char *buf, size_t len)
{
	size_t		pos = 0;
	char		opts[NN_MAX_OPTIONS_JSON];
	size_t		optlen = options_text(m, opts, sizeof(opts));

	emit(buf, len, &pos, "{\"format_version\": %d, \"kind\": \"%s\", \"layers\": \"%s\", "
		 "\"input\": [%d, %d, %d], \"classes\": %d, \"parameters\": %zu, \"size_bytes\": %zu, ",
		 NN_MODEL_VERSION, m->kind == NN_BLOB_MODEL ? "model" : "gradients", m->net.spec,
		 m->net.input.h, m->net.input.w, m->net.input.c, m->net.classes,
		 m->net.nparams, blob_bytes);
	emit(buf, len, &pos, "\"normalize\": {\"mode\": \"%s\"", nn_norm_name(m->norm.mode));
	if (m->norm.mode == NN_NORM_ZSCORE)
	{
		emit(buf, len, &pos, ", \"mean\": ");
		emit_float(buf, len, &pos, m->norm.mean);
		emit(buf, len, &pos, ", \"std\": ");
		emit_float(buf, len, &pos, m->norm.std);
	}
	emit(buf, len, &pos, "}, \"options\": %.*s, ", optlen ? (int) optlen : 4, optlen ? opts : "null");
	emit(buf, len, &pos, "\"rows_trained\": %lld, \"rows_skipped\": %lld, ",
		 (long long) m->rows_trained, (long long) m->rows_skipped);
	if (m->kind == NN_BLOB_GRADIENTS)
		emit(buf, len, &pos, "\"gradient_rows\": %lld, ", (long long) m->grad_rows);
	emit(buf, len, &pos, "\"history\": [");
	for (int i = 0; i < m->nepochs; i++)
	{
		const nn_epoch *e = &m->history[i];

		emit(buf, len, &pos, "%s{\"epoch\": %d, \"loss\": ", i ? ", " : "", i + 1);
		emit_float(buf, len, &pos, e->loss);
		emit(buf, len, &pos, ", \"train_accuracy\": ");
		emit_float(buf, len, &pos, e->train_acc);
		emit(buf, len, &pos, ", \"validation_accuracy\": ");
		emit_float(buf, len, &pos, e->val_acc);
		emit(buf, len, &pos, ", \"seconds\": ");
		if (m->options.record_times)
			emit_float(buf, len, &pos, e->seconds);
		else
			emit(buf, len, &pos, "null");
		emit(buf, len, &pos, "}");
	}
	emit(buf, len, &pos, "], \"training_seconds\": ");
	if (m->options.record_times && m->kind == NN_BLOB_MODEL)
		emit_float(buf, len, &pos, m->train_seconds);
	else
		emit(buf, len, &pos, "null");
	emit(buf, len, &pos, "}");
	if (pos >= len)
		return -1;
	return (int) pos;
}
