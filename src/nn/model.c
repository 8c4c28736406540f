/*
 * model.c: the one place that writes and reads mlcnn's model bytes.
 *
 * Integers and floats are little-endian; f32/f64 are IEEE-754. Both
 * formats share the header and the trailer:
 *
 *   0   8  magic "MLCNNMDL"
 *   8   2  u16 format version (2 written; 1 still read)
 *  10   2  u16 kind (1 model, 2 gradients)
 *  12   4  u32 reserved, 0
 *  16   8  u64 total length of the blob, checksum included
 *  24      ... the body ...
 *  end-4   u32 CRC-32 (IEEE) of every byte before it
 *
 * Format 2's body is a list of sections, each u16 tag, u64 payload length,
 * payload, in any order, each known tag at most once (model.h names the
 * tags). A tag this reader does not know is skipped when its
 * NN_SECTION_OPTIONAL bit is set and refused otherwise, so later additions
 * need no new version. The payloads, written in tag order:
 *
 *   1 architecture  i32 input h, w, c; i32 classes; u32 spec length, spec
 *                   bytes (the canonical layer spec, no NUL: the graph,
 *                   rebuilt through nn_net_build)
 *   2 normalisation i32 mode, f32 mean, f32 std
 *   3 options       u16 count, then per option u8 name length, name (1 to 64
 *                   of a-z, 0-9 and _), u8 type (nn_option_type), u32 value
 *                   length, value: i64 (integer),
 *                   f32 (number), u8 0/1 (boolean), bytes (text; an enum's
 *                   name), 3 x i32 (shape; all 0 when not given). Models
 *                   only. Options this reader does not know are skipped;
 *                   known ones go through the setters of options.c, so
 *                   their types and ranges are checked as train_conv2d's.
 *   4 counters      i64 rows trained, i64 rows skipped, i64 gradient rows,
 *                   f64 training seconds
 *   5 history       u32 epochs, then per epoch f32 loss, train acc, val acc,
 *                   seconds
 *   6 parameters    u64 count, then that many f32 (PyTorch order and layout)
 *   7 buffers       u64 count, then that many f32: state that is not
 *                   trained (batch norm's running statistics); written only
 *                   when net.nbuffers > 0
 *   8 input         i32 element type of the rows (NN_DTYPE_*); written only
 *                   when it is not uint8 (its absence means bytes), so a
 *                   model of bytes is the same bytes as before it existed,
 *                   and a reader that predates it refuses a float model
 *                   instead of feeding it bytes
 *   9 tuning        written with NN_SECTION_OPTIONAL (0x8009), only for a
 *                   model a search chose (tune.h): u8 strategy, u8 metric,
 *                   u16 eta, u32 min_epochs, u32 best, u8 key count, keys
 *                   (u8 length, name), u32 trial count, then per trial f32
 *                   validation accuracy and loss, u32 epochs, f32 seconds,
 *                   u8 failed, u32 length and the trial's options in the
 *                   options section's form. A reader that predates it
 *                   skips it.
 *  10 rounds        written with NN_SECTION_OPTIONAL (0x800a), only for a
 *                   model train_distributed trained: u32 shards, u32 local
 *                   epochs, u32 rounds, then per round i64 rows, u32 shards
 *                   that trained, f32 validation accuracy, f32 seconds.
 *
 * Format 1's body was the same fields in one fixed sequence: architecture,
 * normalisation, u32 options length and the options as canonical JSON
 * text, counters, history, parameters. The reader keeps that text
 * (m->options_v1) for the PostgreSQL layer, which has a JSON parser; the
 * typed options of such a model are the defaults (nothing a prediction
 * does depends on them).
 *
 * The reader checks the length field and the checksum before anything
 * else, bounds-checks every field against the bytes that remain in its
 * section, checks every field's range, re-derives the network from the spec
 * and shapes and matches the parameter and buffer counts against it, and
 * refuses non-finite parameters, so a blob that reads is one the rest of
 * the core can trust.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <zlib.h>

#include "model.h"
#include "tune.h"

static const uint8_t MAGIC[8] = {'M', 'L', 'C', 'N', 'N', 'M', 'D', 'L'};

#define HEADER_BYTES 24
#define SECTION_HEADER_BYTES 10	/* u16 tag, u64 length */
#define EPOCH_BYTES 16
#define NSECTIONS 11			/* known tags are 1..NSECTIONS-1 */

static const char *const section_names[NSECTIONS] = {
	"", "architecture", "normalisation", "options", "counters", "history", "parameters", "buffers",
	"input", "tuning", "rounds"
};

/* sections written with NN_SECTION_OPTIONAL: older readers may skip them */
static const int section_optional[NSECTIONS] = {[NN_SECTION_TUNING] = 1, [NN_SECTION_ROUNDS] = 1};

#define ROUND_BYTES 20			/* i64 rows, u32 shards, f32 accuracy, f32 seconds */

#define TRIAL_BYTES 21			/* f32 acc, f32 loss, u32 epochs, f32 seconds, u8 failed, u32 options length */

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
	if (n > 0)
		memcpy(w->p, src, n);
	w->p += n;
}

/* Put n floats (zeros when src is NULL). */
static void
put_floats(wbuf *w, const float *src, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (src != NULL)
	{
		put_bytes(w, src, n * sizeof(float));
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		put_f32(w, src ? src[i] : 0.0f);
}

/* Bytes of option d's value in the options section. */
static size_t
option_value_bytes(const nn_options *o, const nn_option_def *d)
{
	switch (d->type)
	{
		case NN_OPTION_INT:
			return 8;
		case NN_OPTION_FLOAT:
			return 4;
		case NN_OPTION_BOOL:
			return 1;
		case NN_OPTION_TEXT:
		case NN_OPTION_ENUM:
			return strlen(nn_option_text(o, d));
		case NN_OPTION_SHAPE:
			return 12;
	}
	return 0;
}

/* Payload bytes of the options section. */
static size_t
options_bytes(const nn_options *o)
{
	size_t		n = 2;

	for (int i = 0; i < nn_option_count; i++)
		n += 1 + strlen(nn_option_table[i].name) + 1 + 4 + option_value_bytes(o, &nn_option_table[i]);
	return n;
}

/* Payload bytes of each section of m (0: not written). */
static void
section_bytes(const nn_model *m, size_t bytes[NSECTIONS])
{
	memset(bytes, 0, sizeof(size_t) * NSECTIONS);
	bytes[NN_SECTION_ARCH] = 16 + 4 + strlen(m->net.spec);
	bytes[NN_SECTION_NORM] = 12;
	if (m->kind == NN_BLOB_MODEL)
		bytes[NN_SECTION_OPTIONS] = options_bytes(&m->options);
	bytes[NN_SECTION_COUNTERS] = 32;
	bytes[NN_SECTION_HISTORY] = 4 + (size_t) m->nepochs * EPOCH_BYTES;
	bytes[NN_SECTION_PARAMS] = 8 + m->net.nparams * sizeof(float);
	if (m->net.nbuffers > 0)
		bytes[NN_SECTION_BUFFERS] = 8 + m->net.nbuffers * sizeof(float);
	if (m->norm.dtype != NN_DTYPE_UINT8)
		bytes[NN_SECTION_INPUT] = 4;
	if (m->tuning != NULL && m->kind == NN_BLOB_MODEL)
	{
		const nn_tuning *t = m->tuning;
		size_t		n = 1 + 1 + 2 + 4 + 4 + 1 + 4;

		for (int k = 0; k < t->nkeys; k++)
			n += 1 + strlen(t->keys[k]);
		for (int i = 0; i < t->ntrials; i++)
			n += TRIAL_BYTES + options_bytes(&t->trials[i].opt);
		bytes[NN_SECTION_TUNING] = n;
	}
	if (m->rounds != NULL && m->kind == NN_BLOB_MODEL)
		bytes[NN_SECTION_ROUNDS] = 12 + (size_t) m->rounds->nrounds * ROUND_BYTES;
}

/* Exact serialised size of m. */
size_t
nn_model_size(const nn_model *m)
{
	size_t		bytes[NSECTIONS],
				n = HEADER_BYTES + 4;

	section_bytes(m, bytes);
	for (int t = 1; t < NSECTIONS; t++)
		if (bytes[t] > 0)
			n += SECTION_HEADER_BYTES + bytes[t];
	return n;
}

/* Put the options section's payload: every option of the table, by name. */
static void
put_options(wbuf *w, const nn_options *o)
{
	put_le(w, (uint64_t) nn_option_count, 2);
	for (int i = 0; i < nn_option_count; i++)
	{
		const nn_option_def *d = &nn_option_table[i];
		size_t		namelen = strlen(d->name);

		put_le(w, namelen, 1);
		put_bytes(w, d->name, namelen);
		put_le(w, (uint64_t) d->type, 1);
		put_le(w, option_value_bytes(o, d), 4);
		switch (d->type)
		{
			case NN_OPTION_INT:
				put_le(w, (uint64_t) nn_option_int(o, d), 8);
				break;
			case NN_OPTION_FLOAT:
				put_f32(w, nn_option_float(o, d));
				break;
			case NN_OPTION_BOOL:
				put_le(w, nn_option_int(o, d) != 0, 1);
				break;
			case NN_OPTION_TEXT:
			case NN_OPTION_ENUM:
				put_bytes(w, nn_option_text(o, d), strlen(nn_option_text(o, d)));
				break;
			case NN_OPTION_SHAPE:
				{
					nn_shape	s = nn_option_shape(o, d);

					put_le(w, (uint32_t) s.h, 4);
					put_le(w, (uint32_t) s.w, 4);
					put_le(w, (uint32_t) s.c, 4);
				}
				break;
		}
	}
}

/* Put the tuning section's payload. */
static void
put_tuning(wbuf *w, const nn_tuning *t)
{
	put_le(w, (uint64_t) t->strategy, 1);
	put_le(w, (uint64_t) t->metric, 1);
	put_le(w, (uint64_t) t->eta, 2);
	put_le(w, (uint64_t) t->min_epochs, 4);
	put_le(w, (uint64_t) t->best, 4);
	put_le(w, (uint64_t) t->nkeys, 1);
	for (int k = 0; k < t->nkeys; k++)
	{
		put_le(w, strlen(t->keys[k]), 1);
		put_bytes(w, t->keys[k], strlen(t->keys[k]));
	}
	put_le(w, (uint64_t) t->ntrials, 4);
	for (int i = 0; i < t->ntrials; i++)
	{
		const nn_trial *tr = &t->trials[i];

		put_f32(w, tr->val_acc);
		put_f32(w, tr->val_loss);
		put_le(w, (uint64_t) tr->epochs, 4);
		put_f32(w, tr->seconds);
		put_le(w, (uint64_t) (tr->failed != 0), 1);
		put_le(w, options_bytes(&tr->opt), 4);
		put_options(w, &tr->opt);
	}
}

/* Put the payload of section t of m. */
static void
put_section(wbuf *w, const nn_model *m, int t)
{
	size_t		speclen = strlen(m->net.spec);

	switch (t)
	{
		case NN_SECTION_ARCH:
			put_le(w, (uint32_t) m->net.input.h, 4);
			put_le(w, (uint32_t) m->net.input.w, 4);
			put_le(w, (uint32_t) m->net.input.c, 4);
			put_le(w, (uint32_t) m->net.classes, 4);
			put_le(w, speclen, 4);
			put_bytes(w, m->net.spec, speclen);
			break;
		case NN_SECTION_NORM:
			put_le(w, (uint32_t) m->norm.mode, 4);
			put_f32(w, m->norm.mean);
			put_f32(w, m->norm.std);
			break;
		case NN_SECTION_OPTIONS:
			put_options(w, &m->options);
			break;
		case NN_SECTION_COUNTERS:
			put_le(w, (uint64_t) m->rows_trained, 8);
			put_le(w, (uint64_t) m->rows_skipped, 8);
			put_le(w, (uint64_t) m->grad_rows, 8);
			put_f64(w, m->train_seconds);
			break;
		case NN_SECTION_HISTORY:
			put_le(w, (uint32_t) m->nepochs, 4);
			for (int i = 0; i < m->nepochs; i++)
			{
				put_f32(w, m->history[i].loss);
				put_f32(w, m->history[i].train_acc);
				put_f32(w, m->history[i].val_acc);
				put_f32(w, m->history[i].seconds);
			}
			break;
		case NN_SECTION_PARAMS:
			put_le(w, m->net.nparams, 8);
			put_floats(w, m->params, m->net.nparams);
			break;
		case NN_SECTION_BUFFERS:
			put_le(w, m->net.nbuffers, 8);
			put_floats(w, m->buffers, m->net.nbuffers);
			break;
		case NN_SECTION_INPUT:
			put_le(w, (uint32_t) m->norm.dtype, 4);
			break;
		case NN_SECTION_TUNING:
			put_tuning(w, m->tuning);
			break;
		case NN_SECTION_ROUNDS:
			put_le(w, (uint64_t) m->rounds->shards, 4);
			put_le(w, (uint64_t) m->rounds->local_epochs, 4);
			put_le(w, (uint64_t) m->rounds->nrounds, 4);
			for (int i = 0; i < m->rounds->nrounds; i++)
			{
				put_le(w, (uint64_t) m->rounds->round[i].rows, 8);
				put_le(w, (uint64_t) m->rounds->round[i].shards, 4);
				put_f32(w, m->rounds->round[i].val_acc);
				put_f32(w, m->rounds->round[i].seconds);
			}
			break;
	}
}

/* Serialise m into buf (nn_model_size(m) bytes), in format 2. */
void
nn_model_write(const nn_model *m, uint8_t *buf)
{
	size_t		bytes[NSECTIONS],
				total = nn_model_size(m);
	wbuf		w = {buf};

	section_bytes(m, bytes);
	put_bytes(&w, MAGIC, 8);
	put_le(&w, NN_MODEL_VERSION, 2);
	put_le(&w, (uint64_t) m->kind, 2);
	put_le(&w, 0, 4);
	put_le(&w, total, 8);
	for (int t = 1; t < NSECTIONS; t++)
	{
		if (bytes[t] == 0)
			continue;
		put_le(&w, (uint64_t) t | (section_optional[t] ? NN_SECTION_OPTIONAL : 0), 2);
		put_le(&w, bytes[t], 8);
		put_section(&w, m, t);
	}
	put_le(&w, nn_crc32(buf, total - 4), 4);
}

/* ------------------------------------------------------------ reading */

/* A bounds-checked cursor over an input buffer. */
typedef struct rbuf
{
	const uint8_t *p;
	size_t		left;
	nn_status  *st;
} rbuf;

/* Take n bytes or fail naming the field. */
static const uint8_t *
take(rbuf *r, size_t n, const char *field)
{
	const uint8_t *p = r->p;

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

/* Fail unless a section's fields used all of its bytes. */
static int
check_consumed(const rbuf *r, int tag)
{
	if (r->left != 0)
		return nn_fail(r->st, NN_ERR_CORRUPT, "model is corrupt: the %s section has %zu bytes after its fields",
					   section_names[tag], r->left);
	return NN_OK;
}

/* Input shape, classes and spec; then the net rebuilt from them. */
static int
read_arch(rbuf *r, nn_model *m)
{
	nn_status  *st = r->st;
	nn_shape	in;
	int32_t		classes;
	char		spec[NN_MAX_SPEC];
	const uint8_t *p;
	uint64_t	v;

	if (!get_i32(r, &in.h, 1, NN_MAX_DIM, "input height") ||
		!get_i32(r, &in.w, 1, NN_MAX_DIM, "input width") ||
		!get_i32(r, &in.c, 1, NN_MAX_DIM, "input channels") ||
		!get_i32(r, &classes, NN_MIN_CLASSES, NN_MAX_CLASSES, "class count") ||
		!get_le(r, 4, &v, "spec length"))
		return st->code;
	if (v == 0 || v >= NN_MAX_SPEC)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: layer spec length %u", (unsigned) v);
	if ((p = take(r, (size_t) v, "layer spec")) == NULL)
		return st->code;
	memcpy(spec, p, (size_t) v);
	spec[v] = '\0';
	if (memchr(spec, '\0', (size_t) v) != NULL)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: layer spec holds a NUL byte");
	if (nn_net_build(&m->net, spec, in, classes, st) != NN_OK)
	{
		char		msg[NN_MSG_LEN];

		snprintf(msg, sizeof(msg), "%s", st->msg);
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: its layer spec does not build: %s", msg);
	}
	return NN_OK;
}

/* Normalisation mode and statistics. */
static int
read_norm(rbuf *r, nn_model *m)
{
	if (!get_i32(r, &m->norm.mode, NN_NORM_NONE, NN_NORM_ZSCORE, "normalisation mode") ||
		!get_f32(r, &m->norm.mean, "normalisation mean") ||
		!get_f32(r, &m->norm.std, "normalisation std"))
		return r->st->code;
	/* a divisor: zscore's, and floats' minmax range */
	if (!isfinite(m->norm.mean) || !isfinite(m->norm.std) ||
		((m->norm.mode == NN_NORM_ZSCORE ||
		  (m->norm.mode == NN_NORM_MINMAX && m->norm.dtype == NN_DTYPE_FLOAT32)) && !(m->norm.std > 0)))
		return nn_fail(r->st, NN_ERR_CORRUPT, "model is corrupt: bad normalisation statistics");
	return NN_OK;
}

/* Rows trained and skipped, gradient rows, training seconds. */
static int
read_counters(rbuf *r, nn_model *m)
{
	uint64_t	v;
	double		secs;

	if (!get_count(r, &m->rows_trained, "rows trained") ||
		!get_count(r, &m->rows_skipped, "rows skipped") ||
		!get_count(r, &m->grad_rows, "gradient rows") ||
		!get_le(r, 8, &v, "training seconds"))
		return r->st->code;
	memcpy(&secs, &v, 8);
	if (!isfinite(secs) || secs < 0)
		return nn_fail(r->st, NN_ERR_CORRUPT, "model is corrupt: bad training time");
	m->train_seconds = secs;
	return NN_OK;
}

/* The epoch count and that many epochs of history. */
static int
read_history(rbuf *r, nn_model *m, const nn_allocator *a)
{
	uint64_t	v;
	uint32_t	n;

	if (!get_le(r, 4, &v, "epoch count"))
		return r->st->code;
	n = (uint32_t) v;
	if (n > NN_MAX_HISTORY || (size_t) n * EPOCH_BYTES > r->left)
		return nn_fail(r->st, NN_ERR_CORRUPT, "model is %s: %u epochs of history",
					   n > NN_MAX_HISTORY ? "corrupt" : "truncated", n);
	if (n == 0)
		return NN_OK;
	m->history = nn_calloc(a, n, sizeof(nn_epoch));
	if (m->history == NULL)
		return nn_fail(r->st, NN_ERR_NOMEM, "out of memory reading a model");
	m->nepochs = (int32_t) n;
	for (uint32_t i = 0; i < n; i++)
	{
		get_f32(r, &m->history[i].loss, "history");
		get_f32(r, &m->history[i].train_acc, "history");
		get_f32(r, &m->history[i].val_acc, "history");
		get_f32(r, &m->history[i].seconds, "history");
		m->history[i].val_loss = NAN;
	}
	return NN_OK;
}

/*
 * A count that must be want, then that many finite floats filling the
 * rest of r, into a new array *out; what is "parameters" or "buffers".
 */
static int
read_floats(rbuf *r, size_t want, const char *what, float **out, const nn_allocator *a)
{
	nn_status  *st = r->st;
	uint64_t	n;
	char		field[32];

	snprintf(field, sizeof(field), "%s count", what[0] == 'p' ? "parameter" : "buffer");
	if (!get_le(r, 8, &n, field))
		return st->code;
	if (n != want)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: %llu %s stored but its layers need %zu",
					   (unsigned long long) n, what, want);
	if (n * sizeof(float) != r->left)
		return nn_fail(st, NN_ERR_CORRUPT, "model is %s: %llu %s need %llu bytes but %zu remain",
					   n * sizeof(float) > r->left ? "truncated" : "corrupt", (unsigned long long) n, what,
					   (unsigned long long) (n * sizeof(float)), r->left);
	*out = nn_alloc(a, n * sizeof(float) + 1);
	if (*out == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model of %llu %s",
					   (unsigned long long) n, what);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(*out, r->p, n * sizeof(float));
	r->p += n * sizeof(float);
	r->left = 0;
#else
	for (size_t i = 0; i < n; i++)
		get_f32(r, &(*out)[i], what);
#endif
	for (size_t i = 0; i < n; i++)
		if (!isfinite((*out)[i]))
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: %s %zu is not a finite number",
						   what[0] == 'p' ? "parameter" : "buffer", i);
	return NN_OK;
}

/* ------------------------------------------------------------ format 2 */

/* Apply one stored option (known as d) through the setters. */
static int
apply_option(nn_options *o, const nn_option_def *d, const uint8_t *p, size_t len, nn_status *st)
{
	nn_value	v = {0};
	nn_value	dims[3] = {{0}};
	rbuf		r = {p, len, st};
	uint64_t	u = 0;
	float		f = 0;

	switch (d->type)
	{
		case NN_OPTION_INT:
			if (len != 8)
				break;
			get_le(&r, 8, &u, "option");
			v.kind = NN_VALUE_INT;
			v.i = (int64_t) u;
			return nn_options_set(o, d->name, &v, st);
		case NN_OPTION_FLOAT:
			if (len != 4)
				break;
			get_f32(&r, &f, "option");
			v.kind = NN_VALUE_FLOAT;
			v.f = f;
			return nn_options_set(o, d->name, &v, st);
		case NN_OPTION_BOOL:
			if (len != 1)
				break;
			if (p[0] > 1)
				return nn_fail(st, NN_ERR_INVALID, "option \"%s\" is stored as %u, not 0 or 1", d->name, p[0]);
			v.kind = NN_VALUE_BOOL;
			v.b = p[0];
			return nn_options_set(o, d->name, &v, st);
		case NN_OPTION_TEXT:
		case NN_OPTION_ENUM:
			v.kind = NN_VALUE_TEXT;
			v.s = (const char *) p;
			v.len = len;
			return nn_options_set(o, d->name, &v, st);
		case NN_OPTION_SHAPE:
			if (len != 12)
				break;
			for (int i = 0; i < 3; i++)
			{
				get_le(&r, 4, &u, "option");
				dims[i].kind = NN_VALUE_INT;
				dims[i].i = (int32_t) (uint32_t) u;
			}
			v.kind = NN_VALUE_ARRAY;
			v.nitems = 3;
			v.items = dims;
			if (dims[0].i == 0 && dims[1].i == 0 && dims[2].i == 0)
				v.kind = NN_VALUE_NULL;
			return nn_options_set(o, d->name, &v, st);
	}
	return nn_fail(st, NN_ERR_INVALID, "option \"%s\" has a stored value of %zu bytes", d->name, len);
}

/* The options section: each option by name over the defaults; unknown names skipped. */
static int
read_options(rbuf *r, nn_options *o)
{
	nn_status  *st = r->st;
	uint64_t	count,
				namelen,
				type,
				vlen;
	uint8_t		seen[NN_MAX_OPTIONS] = {0};
	char		name[NN_MAX_OPTION_NAME + 1];

	if (!get_le(r, 2, &count, "option count"))
		return st->code;
	for (uint64_t i = 0; i < count; i++)
	{
		const uint8_t *p;
		const nn_option_def *d;

		if (!get_le(r, 1, &namelen, "option name length"))
			return st->code;
		if (namelen == 0 || namelen > NN_MAX_OPTION_NAME)
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: option name length %u", (unsigned) namelen);
		if ((p = take(r, (size_t) namelen, "option name")) == NULL)
			return st->code;
		memcpy(name, p, (size_t) namelen);
		name[namelen] = '\0';
		for (uint64_t k = 0; k < namelen; k++)
			if (!((name[k] >= 'a' && name[k] <= 'z') || (name[k] >= '0' && name[k] <= '9') || name[k] == '_'))
				return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: an option name holds byte %u",
							   (unsigned) (uint8_t) name[k]);
		if (!get_le(r, 1, &type, "option type") || !get_le(r, 4, &vlen, "option value length") ||
			(p = take(r, (size_t) vlen, "option value")) == NULL)
			return st->code;
		if ((d = nn_option_find(name)) == NULL)
			continue;			/* an option of a later mlcnn: it never changes a prediction */
		if (seen[d - nn_option_table]++)
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: option \"%s\" is stored twice", name);
		if (type != (uint64_t) d->type)
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: option \"%s\" is stored as type %u, not %d",
						   name, (unsigned) type, (int) d->type);
		if (apply_option(o, d, p, (size_t) vlen, st) != NN_OK)
		{
			char		msg[NN_MSG_LEN];

			snprintf(msg, sizeof(msg), "%s", st->msg);
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: bad options: %s", msg);
		}
	}
	return NN_OK;
}

/* An option-like name: 1 to NN_MAX_OPTION_NAME of a-z, 0-9 and _, into name. */
static int
get_name(rbuf *r, char *name, const char *field)
{
	uint64_t	len;
	const uint8_t *p;

	if (!get_le(r, 1, &len, field))
		return r->st->code;
	if (len == 0 || len > NN_MAX_OPTION_NAME)
		return nn_fail(r->st, NN_ERR_CORRUPT, "model is corrupt: %s of %u bytes", field, (unsigned) len);
	if ((p = take(r, (size_t) len, field)) == NULL)
		return r->st->code;
	for (uint64_t k = 0; k < len; k++)
		if (!((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= '0' && p[k] <= '9') || p[k] == '_'))
			return nn_fail(r->st, NN_ERR_CORRUPT, "model is corrupt: %s holds byte %u", field, (unsigned) p[k]);
	memcpy(name, p, (size_t) len);
	name[len] = '\0';
	return NN_OK;
}

/* The record of the search that chose the model. */
static int
read_tuning(rbuf *r, nn_model *m, const nn_allocator *a)
{
	nn_status  *st = r->st;
	nn_tuning  *t;
	uint64_t	v;
	int32_t		strategy,
				metric;

	if (!get_le(r, 1, &v, "tuning strategy"))
		return st->code;
	strategy = (int32_t) v;
	if (!get_le(r, 1, &v, "tuning metric"))
		return st->code;
	metric = (int32_t) v;
	if (nn_tune_strategy_name(strategy) == NULL || nn_tune_metric_name(metric) == NULL)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: tuning strategy %d or metric %d", strategy, metric);
	t = nn_calloc(a, 1, sizeof(nn_tuning));
	if (t == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model");
	m->tuning = t;
	t->strategy = strategy;
	t->metric = metric;
	if (!get_le(r, 2, &v, "tuning eta"))
		return st->code;
	t->eta = (int32_t) v;
	if (!get_i32(r, &t->min_epochs, 0, NN_MAX_EPOCHS, "tuning min_epochs") ||
		!get_i32(r, &t->best, 0, NN_MAX_TRIALS - 1, "tuning winner") ||
		!get_le(r, 1, &v, "tuning key count"))
		return st->code;
	if (v > NN_MAX_TUNE_KEYS)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: the search varies %u options", (unsigned) v);
	t->nkeys = (int32_t) v;
	for (int k = 0; k < t->nkeys; k++)
		if (get_name(r, t->keys[k], "a tuning key") != NN_OK)
			return st->code;
	if (!get_i32(r, &t->ntrials, 1, NN_MAX_TRIALS, "tuning trial count"))
		return st->code;
	if (t->best >= t->ntrials || (size_t) t->ntrials * TRIAL_BYTES > r->left)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: %d trials with winner %d in %zu bytes",
					   t->ntrials, t->best, r->left);
	t->trials = nn_calloc(a, (size_t) t->ntrials, sizeof(nn_trial));
	if (t->trials == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model");
	for (int i = 0; i < t->ntrials; i++)
	{
		nn_trial   *tr = &t->trials[i];
		const uint8_t *p;
		uint64_t	len;
		rbuf		o;

		if (!get_f32(r, &tr->val_acc, "trial accuracy") || !get_f32(r, &tr->val_loss, "trial loss") ||
			!get_i32(r, &tr->epochs, 0, NN_MAX_EPOCHS, "trial epochs") ||
			!get_f32(r, &tr->seconds, "trial seconds") || !get_le(r, 1, &v, "trial failed") ||
			!get_le(r, 4, &len, "trial options length") || (p = take(r, (size_t) len, "trial options")) == NULL)
			return st->code;
		tr->failed = v != 0;
		nn_options_default(&tr->opt);
		o = (rbuf) {p, (size_t) len, st};
		if (read_options(&o, &tr->opt) != NN_OK || check_consumed(&o, NN_SECTION_TUNING) != NN_OK)
			return st->code;
	}
	return NN_OK;
}

/* The record of train_distributed's rounds. */
static int
read_rounds(rbuf *r, nn_model *m, const nn_allocator *a)
{
	nn_status  *st = r->st;
	nn_rounds  *x = nn_calloc(a, 1, sizeof(nn_rounds));

	if (x == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model");
	m->rounds = x;
	if (!get_i32(r, &x->shards, 1, INT32_MAX, "rounds: shards") ||
		!get_i32(r, &x->local_epochs, 1, NN_MAX_EPOCHS, "rounds: local epochs") ||
		!get_i32(r, &x->nrounds, 1, NN_MAX_ROUNDS, "rounds: count"))
		return st->code;
	if ((size_t) x->nrounds * ROUND_BYTES != r->left)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: %d rounds in %zu bytes", x->nrounds, r->left);
	x->round = nn_calloc(a, (size_t) x->nrounds, sizeof(nn_round));
	if (x->round == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model");
	for (int i = 0; i < x->nrounds; i++)
	{
		uint64_t	v;

		if (!get_le(r, 8, &v, "round rows"))
			return st->code;
		if (v > (uint64_t) INT64_MAX)
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: round %d has %llu rows", i + 1, (unsigned long long) v);
		if (!get_i32(r, &x->round[i].shards, 0, x->shards, "round shards") ||
			!get_f32(r, &x->round[i].val_acc, "round accuracy") || !get_f32(r, &x->round[i].seconds, "round seconds"))
			return st->code;
		x->round[i].rows = (int64_t) v;
	}
	return NN_OK;
}

/* Find the sections of a format-2 body r: each known one's payload in sec[tag]. */
static int
find_sections(rbuf *r, rbuf sec[NSECTIONS], int present[NSECTIONS])
{
	nn_status  *st = r->st;

	while (r->left > 0)
	{
		uint64_t	tag,
					len;
		const uint8_t *p;
		char		what[48];

		if (!get_le(r, 2, &tag, "a section tag") || !get_le(r, 8, &len, "a section length"))
			return st->code;
		/* a section this reader knows that is written as optional */
		if ((tag & NN_SECTION_OPTIONAL) && (tag & ~(uint64_t) NN_SECTION_OPTIONAL) < NSECTIONS &&
			section_optional[tag & ~(uint64_t) NN_SECTION_OPTIONAL])
			tag &= ~(uint64_t) NN_SECTION_OPTIONAL;
		else if (tag > 0 && tag < NSECTIONS && section_optional[tag])
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: the %s section is not marked optional",
						   section_names[tag]);
		if (tag > 0 && tag < NSECTIONS)
			snprintf(what, sizeof(what), "the %s section", section_names[tag]);
		else
			snprintf(what, sizeof(what), "section %u", (unsigned) tag);
		if (len > r->left)
			return nn_fail(st, NN_ERR_CORRUPT, "model is truncated: %s needs %llu bytes but %zu remain",
						   what, (unsigned long long) len, r->left);
		p = take(r, (size_t) len, what);
		if (tag > 0 && tag < NSECTIONS)
		{
			if (present[tag])
				return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: %s appears twice", what);
			present[tag] = 1;
			sec[tag] = (rbuf) {p, (size_t) len, st};
		}
		else if (!(tag & NN_SECTION_OPTIONAL))
			return nn_fail(st, NN_ERR_CORRUPT,
						   "model has section %u, which this mlcnn does not know and may not skip (a later version wrote it?)",
						   (unsigned) tag);
	}
	return NN_OK;
}

/* The body of a format-2 blob: its sections, read in dependency order. */
static int
read_v2(rbuf *r, nn_model *m, const nn_allocator *a)
{
	nn_status  *st = r->st;
	rbuf		sec[NSECTIONS];
	int			present[NSECTIONS] = {0};
	static const int required[] = {NN_SECTION_ARCH, NN_SECTION_NORM, NN_SECTION_COUNTERS,
	NN_SECTION_HISTORY, NN_SECTION_PARAMS};

	if (find_sections(r, sec, present) != NN_OK)
		return st->code;
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!present[required[i]])
			return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: the %s section is missing",
						   section_names[required[i]]);
	if (m->kind == NN_BLOB_MODEL && !present[NN_SECTION_OPTIONS])
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: options are missing");
	m->norm.dtype = NN_DTYPE_UINT8;
	if (present[NN_SECTION_INPUT] &&
		(!get_i32(&sec[NN_SECTION_INPUT], &m->norm.dtype, NN_DTYPE_UINT8, NN_DTYPE_FLOAT32, "input element type") ||
		 check_consumed(&sec[NN_SECTION_INPUT], NN_SECTION_INPUT) != NN_OK))
		return st->code;
	if (read_arch(&sec[NN_SECTION_ARCH], m) != NN_OK ||
		check_consumed(&sec[NN_SECTION_ARCH], NN_SECTION_ARCH) != NN_OK ||
		read_norm(&sec[NN_SECTION_NORM], m) != NN_OK ||
		check_consumed(&sec[NN_SECTION_NORM], NN_SECTION_NORM) != NN_OK)
		return st->code;
	nn_options_default(&m->options);
	if (present[NN_SECTION_OPTIONS] &&
		(read_options(&sec[NN_SECTION_OPTIONS], &m->options) != NN_OK ||
		 check_consumed(&sec[NN_SECTION_OPTIONS], NN_SECTION_OPTIONS) != NN_OK))
		return st->code;
	if (read_counters(&sec[NN_SECTION_COUNTERS], m) != NN_OK ||
		check_consumed(&sec[NN_SECTION_COUNTERS], NN_SECTION_COUNTERS) != NN_OK ||
		read_history(&sec[NN_SECTION_HISTORY], m, a) != NN_OK ||
		check_consumed(&sec[NN_SECTION_HISTORY], NN_SECTION_HISTORY) != NN_OK ||
		read_floats(&sec[NN_SECTION_PARAMS], m->net.nparams, "parameters", &m->params, a) != NN_OK)
		return st->code;
	if (m->net.nbuffers > 0 && !present[NN_SECTION_BUFFERS])
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: the buffers section is missing (its layers have %zu buffers)",
					   m->net.nbuffers);
	if (present[NN_SECTION_BUFFERS] &&
		read_floats(&sec[NN_SECTION_BUFFERS], m->net.nbuffers, "buffers", &m->buffers, a) != NN_OK)
		return st->code;
	if (present[NN_SECTION_ROUNDS] && m->kind == NN_BLOB_MODEL &&
		(read_rounds(&sec[NN_SECTION_ROUNDS], m, a) != NN_OK ||
		 check_consumed(&sec[NN_SECTION_ROUNDS], NN_SECTION_ROUNDS) != NN_OK))
		return st->code;
	if (present[NN_SECTION_TUNING] && m->kind == NN_BLOB_MODEL &&
		(read_tuning(&sec[NN_SECTION_TUNING], m, a) != NN_OK ||
		 check_consumed(&sec[NN_SECTION_TUNING], NN_SECTION_TUNING) != NN_OK))
		return st->code;
	return NN_OK;
}

/* ------------------------------------------------------------ format 1 */

/* A format-1 model's options: canonical JSON text, kept as it is for the host. */
static int
read_v1_options(rbuf *r, nn_model *m, const nn_allocator *a)
{
	nn_status  *st = r->st;
	const uint8_t *p;
	uint64_t	v;
	uint32_t	len;

	if (!get_le(r, 4, &v, "options length"))
		return st->code;
	len = (uint32_t) v;
	if (len >= NN_MAX_OPTIONS_V1)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: options length %u", len);
	if ((p = take(r, len, "options")) == NULL)
		return st->code;
	nn_options_default(&m->options);
	if (m->kind != NN_BLOB_MODEL)
		return NN_OK;			/* gradients carried none; their bytes were never read */
	if (len == 0)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: options are missing");
	if (memchr(p, '\0', len) != NULL)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: bad options: they hold a NUL byte");
	if (p[0] != '{' || p[len - 1] != '}')
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: bad options: they are not a JSON object");
	m->options_v1 = nn_alloc(a, (size_t) len + 1);
	if (m->options_v1 == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory reading a model");
	memcpy(m->options_v1, p, len);
	m->options_v1[len] = '\0';
	return NN_OK;
}

/* The body of a format-1 blob: its fields in their fixed order. */
static int
read_v1(rbuf *r, nn_model *m, const nn_allocator *a)
{
	if (read_arch(r, m) != NN_OK || read_norm(r, m) != NN_OK ||
		read_v1_options(r, m, a) != NN_OK || read_counters(r, m) != NN_OK ||
		read_history(r, m, a) != NN_OK ||
		read_floats(r, m->net.nparams, "parameters", &m->params, a) != NN_OK)
		return r->st->code;
	if (m->net.nbuffers > 0)
		return nn_fail(r->st, NN_ERR_CORRUPT,
					   "model is corrupt: format 1 holds no buffers but its layers have %zu", m->net.nbuffers);
	return NN_OK;
}

/* ------------------------------------------------------------ the blob */

/* The header and the checksum; leaves r on the body (checksum excluded). */
static int
read_header(rbuf *r, const uint8_t *buf, size_t len, nn_model *m)
{
	nn_status  *st = r->st;
	uint64_t	v,
				total;
	uint32_t	crc;

	if (len < HEADER_BYTES + 4)
		return nn_fail(st, NN_ERR_CORRUPT, "model is truncated: %zu bytes is shorter than the %d-byte header",
					   len, HEADER_BYTES + 4);
	if (memcmp(buf, MAGIC, 8) != 0)
		return nn_fail(st, NN_ERR_CORRUPT, "not an mlcnn model: bad magic number");
	take(r, 8, "magic");
	get_le(r, 2, &v, "version");
	if (v < NN_MODEL_VERSION_MIN || v > NN_MODEL_VERSION)
		return nn_fail(st, NN_ERR_CORRUPT, "unsupported model format version %u (this mlcnn reads versions %d and %d)",
					   (unsigned) v, NN_MODEL_VERSION_MIN, NN_MODEL_VERSION);
	m->format = (int32_t) v;
	get_le(r, 2, &v, "kind");
	if (v != NN_BLOB_MODEL && v != NN_BLOB_GRADIENTS)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: unknown blob kind %u", (unsigned) v);
	m->kind = (int32_t) v;
	get_le(r, 4, &v, "reserved");
	if (v != 0)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: reserved header field is %u, not 0", (unsigned) v);
	get_le(r, 8, &total, "length");
	if (total != len)
		return nn_fail(st, NN_ERR_CORRUPT, "model is %s: header says %llu bytes but %zu were given",
					   total > len ? "truncated" : "corrupt", (unsigned long long) total, len);
	crc = (uint32_t) buf[len - 4] | (uint32_t) buf[len - 3] << 8 |
		(uint32_t) buf[len - 2] << 16 | (uint32_t) buf[len - 1] << 24;
	if (nn_crc32(buf, len - 4) != crc)
		return nn_fail(st, NN_ERR_CORRUPT, "model is corrupt: checksum mismatch");
	r->left -= 4;				/* the checksum is not a field */
	return NN_OK;
}

/* Parse and validate a blob of format 1 or 2 into m. */
int
nn_model_read(nn_model *m, const uint8_t *buf, size_t len,
			  const nn_allocator *a, nn_status *st)
{
	rbuf		r = {buf, len, st};
	int			rc;

	memset(m, 0, sizeof(*m));
	if (read_header(&r, buf, len, m) != NN_OK)
	{
		memset(m, 0, sizeof(*m));
		return st->code;
	}
	rc = m->format == 1 ? read_v1(&r, m, a) : read_v2(&r, m, a);
	if (rc != NN_OK)
		nn_model_free(m, a);
	return rc;
}

/* Release what nn_model_read allocated. */
void
nn_model_free(nn_model *m, const nn_allocator *a)
{
	nn_free(a, m->history);
	nn_free(a, m->params);
	nn_free(a, m->buffers);
	nn_free(a, m->options_v1);
	if (m->tuning)
		nn_free(a, m->tuning->trials);
	nn_free(a, m->tuning);
	m->tuning = NULL;
	if (m->rounds)
		nn_free(a, m->rounds->round);
	nn_free(a, m->rounds);
	m->rounds = NULL;
	m->history = NULL;
	m->params = NULL;
	m->buffers = NULL;
	m->options_v1 = NULL;
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
