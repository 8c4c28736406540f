/*
 * test_model.c: the model byte format (src/nn/model.c).
 *
 * A model written with nn_model_write (format 2) and read with
 * nn_model_read must come back identical: parameters bit for bit, spec,
 * shapes, normalisation, options, counters and history. Every damaged blob
 * must be refused with NN_ERR_CORRUPT, without crashing and without
 * leaking (a counting allocator checks that every failed read freed what
 * it took):
 *   - every truncation, both as is (the length field then disagrees) and
 *     with the length field and checksum rewritten to fit, which walks the
 *     reader's bounds checks through every section and field;
 *   - every single-byte change (the CRC-32 catches all of them);
 *   - fields and sections set to bad values with the checksum recomputed,
 *     so that the field checks themselves are exercised, each with its
 *     message; unknown sections, optional and not, duplicates and missing
 *     ones.
 * And format 1: test/fixtures/model_v1.bin, written by the code of that
 * time (test/fixtures/make_model_v1.sh), still reads, predicts what was
 * recorded then, and re-exports as format 2 with identical predictions.
 * Offsets below follow the layouts in model.c's header comment.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "t.h"

/* ---------------------------------------------------------------- counting allocator */

typedef struct count_ctx
{
	long		live;			/* allocations not yet freed */
	long		total;
} count_ctx;

/* malloc that counts */
static void *
count_alloc(void *ctx, size_t size)
{
	count_ctx  *c = ctx;
	void	   *p = malloc(size ? size : 1);

	if (p)
	{
		c->live++;
		c->total++;
	}
	return p;
}

/* free that counts */
static void
count_free(void *ctx, void *ptr)
{
	count_ctx  *c = ctx;

	if (ptr)
	{
		c->live--;
		free(ptr);
	}
}

static count_ctx counts;
static const nn_allocator counting = {count_alloc, count_free, &counts};

/* ---------------------------------------------------------------- building models */

#define SMALL_SPEC "conv(4,3) relu maxpool(2) dense(3)"

/* A model of spec on in with random params, history of nepochs, of the given kind. */
static int
make_model(nn_model *m, const char *spec, nn_shape in, int classes, int nepochs, int kind)
{
	nn_status	st = {0};
	nn_rng		rng;

	memset(m, 0, sizeof(*m));
	if (!T_OK(nn_net_build(&m->net, spec, in, classes, &st) == NN_OK, "\"%s\" builds: %s", spec, st.msg))
		return 0;
	nn_rng_seed(&rng, 99);
	m->kind = kind;
	m->params = malloc(sizeof(float) * m->net.nparams);
	for (size_t i = 0; i < m->net.nparams; i++)
		m->params[i] = nn_rng_normal(&rng);
	/* a few special values that must survive bit for bit */
	m->params[0] = -0.0f;
	m->params[1] = 1e-45f;		/* denormal */
	m->params[2] = 3.4028235e38f;
	m->nepochs = nepochs;
	m->history = calloc(nepochs ? nepochs : 1, sizeof(nn_epoch));
	for (int e = 0; e < nepochs; e++)
	{
		m->history[e].loss = 2.0f / (e + 1);
		m->history[e].train_acc = 0.5f + 0.01f * e;
		m->history[e].val_acc = (e % 2) ? 0.4f + 0.01f * e : NAN;
		m->history[e].seconds = 1.25f * e;
	}
	m->norm.mode = NN_NORM_ZSCORE;
	m->norm.mean = 0.1307f;
	m->norm.std = 0.3081f;
	nn_options_default(&m->options);
	if (kind == NN_BLOB_MODEL)
	{
		/* every option away from its default */
		snprintf(m->options.layers, sizeof(m->options.layers), "%s", m->net.spec);
		m->options.input = in;
		m->options.classes = classes;
		m->options.epochs = nepochs > 0 ? nepochs : 1;
		m->options.batch_size = 16;
		m->options.optimizer = NN_OPT_MOMENTUM;
		m->options.learning_rate = 0.05f;
		m->options.lr_schedule = NN_LR_COSINE;
		m->options.momentum = 0.8f;
		m->options.weight_decay = 1e-4f;
		m->options.seed = 12345678901ULL;
		m->options.normalize = NN_NORM_ZSCORE;
		m->options.validation_fraction = 0.125f;
		m->options.threads = 2;
		m->options.record_times = 0;
	}
	m->rows_trained = 1234;
	m->rows_skipped = 5;
	m->grad_rows = kind == NN_BLOB_GRADIENTS ? 77 : 0;
	m->train_seconds = 12.5;
	return 1;
}

/* free a model made by make_model */
static void
free_made(nn_model *m)
{
	free(m->params);
	free(m->history);
}

/* malloc'd blob of m; *len gets its size; checks the writer stays inside nn_model_size */
static uint8_t *
blob_of(const nn_model *m, size_t *len)
{
	size_t		n = nn_model_size(m);
	uint8_t    *buf = malloc(n + 64);
	int			canary_ok = 1;

	memset(buf, 0xAB, n + 64);
	nn_model_write(m, buf);
	for (size_t i = n; i < n + 64; i++)
		if (buf[i] != 0xAB)
			canary_ok = 0;
	T_OK(canary_ok, "nn_model_write writes no more than nn_model_size = %zu bytes", n);
	*len = n;
	return buf;
}

/* Every option of a and b agrees (as the table formats them). */
static int
same_options(const nn_options *a, const nn_options *b, char *which, size_t len)
{
	char		ta[NN_MAX_SPEC + 8],
				tb[NN_MAX_SPEC + 8];

	for (int i = 0; i < nn_option_count; i++)
	{
		nn_option_format(a, &nn_option_table[i], ta, sizeof(ta));
		nn_option_format(b, &nn_option_table[i], tb, sizeof(tb));
		if (strcmp(ta, tb) != 0)
		{
			snprintf(which, len, "%s: %s vs %s", nn_option_table[i].name, ta, tb);
			return 0;
		}
	}
	snprintf(which, len, "all %d", nn_option_count);
	return 1;
}

/* Assert that b equals a in every field. */
static void
expect_same(const nn_model *a, const nn_model *b, const char *what)
{
	char		which[2 * NN_MAX_SPEC + 64];

	T_OK(a->kind == b->kind, "%s: kind %d", what, b->kind);
	T_OK(strcmp(a->net.spec, b->net.spec) == 0, "%s: spec \"%s\"", what, b->net.spec);
	T_OK(a->net.input.h == b->net.input.h && a->net.input.w == b->net.input.w &&
		 a->net.input.c == b->net.input.c && a->net.classes == b->net.classes,
		 "%s: input %dx%dx%d, %d classes", what, b->net.input.h, b->net.input.w, b->net.input.c, b->net.classes);
	T_OK(a->net.nlayers == b->net.nlayers && a->net.nparams == b->net.nparams &&
		 memcmp(a->net.layers, b->net.layers, sizeof(nn_layer) * a->net.nlayers) == 0,
		 "%s: the rebuilt net has the same %d layers and %zu parameters", what, b->net.nlayers, b->net.nparams);
	T_OK(b->params && memcmp(a->params, b->params, sizeof(float) * a->net.nparams) == 0,
		 "%s: parameters bit for bit", what);
	T_OK(a->norm.mode == b->norm.mode && memcmp(&a->norm.mean, &b->norm.mean, 4) == 0 &&
		 memcmp(&a->norm.std, &b->norm.std, 4) == 0, "%s: normalisation %d %g %g",
		 what, b->norm.mode, b->norm.mean, b->norm.std);
	T_OK(same_options(&a->options, &b->options, which, sizeof(which)), "%s: options (%s)", what, which);
	T_OK(a->options.seed == b->options.seed && a->options.optimizer == b->options.optimizer &&
		 a->options.learning_rate == b->options.learning_rate && a->options.batch_size == b->options.batch_size &&
		 a->options.record_times == b->options.record_times, "%s: option fields", what);
	T_OK(a->rows_trained == b->rows_trained && a->rows_skipped == b->rows_skipped &&
		 a->grad_rows == b->grad_rows && a->train_seconds == b->train_seconds,
		 "%s: counters %lld %lld %lld %g", what, (long long) b->rows_trained, (long long) b->rows_skipped,
		 (long long) b->grad_rows, b->train_seconds);
	{
		int			same = a->nepochs == b->nepochs;

		/* the four stored fields (val_loss is not stored: it reads as NaN) */
		for (int i = 0; same && i < a->nepochs; i++)
			same = memcmp(&a->history[i], &b->history[i], 4 * sizeof(float)) == 0 && isnan(b->history[i].val_loss);
		T_OK(same, "%s: %d epochs of history bit for bit (NaN included)", what, b->nepochs);
	}
}

/* little-endian store of n bytes */
static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t) (v >> (8 * i));
}

/* little-endian load of n bytes */
static uint64_t
get_le(const uint8_t *p, int n)
{
	uint64_t	v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t) p[i] << (8 * i);
	return v;
}

/* rewrite the checksum of a blob of len bytes */
static void
fix_crc(uint8_t *buf, size_t len)
{
	put_le(buf + len - 4, nn_crc32(buf, len - 4), 4);
}

/* Read must fail with NN_ERR_CORRUPT and leak nothing; returns 1 if it did. */
static int
read_fails(const uint8_t *buf, size_t len, nn_status *st)
{
	nn_model	m;
	long		live = counts.live;
	int			rc;

	memset(st, 0, sizeof(*st));
	rc = nn_model_read(&m, buf, len, &counting, st);
	if (rc == NN_OK)
	{
		nn_model_free(&m, &counting);
		return 0;
	}
	return rc == NN_ERR_CORRUPT && st->code == NN_ERR_CORRUPT && counts.live == live &&
		m.params == NULL && m.history == NULL && m.buffers == NULL && m.options_v1 == NULL;
}

/*
 * Offset of the header of the first section tagged tag in a format-2 blob
 * (its payload length in *plen), or 0 when there is none.
 */
static size_t
section_at(const uint8_t *buf, size_t len, uint16_t tag, size_t *plen)
{
	size_t		off = 24;

	while (off + 10 <= len - 4)
	{
		uint64_t	t = get_le(buf + off, 2),
					l = get_le(buf + off + 2, 8);

		if (t == tag)
		{
			*plen = (size_t) l;
			return off;
		}
		off += 10 + (size_t) l;
	}
	*plen = 0;
	return 0;
}

/* Offset of the name length byte of option name in the options section, or 0. */
static size_t
option_at(const uint8_t *buf, size_t len, const char *name)
{
	size_t		plen,
				off = section_at(buf, len, NN_SECTION_OPTIONS, &plen);
	size_t		end = off + 10 + plen;
	uint64_t	count;

	if (off == 0)
		return 0;
	count = get_le(buf + off + 10, 2);
	off += 12;
	for (uint64_t i = 0; i < count && off < end; i++)
	{
		size_t		n = buf[off];
		size_t		vlen = (size_t) get_le(buf + off + 1 + n + 1, 4);

		if (n == strlen(name) && memcmp(buf + off + 1, name, n) == 0)
			return off;
		off += 1 + n + 1 + 4 + vlen;
	}
	return 0;
}

/* A copy of the blob (len bytes) with extra bytes inserted at off, resealed; *newlen its size. */
static uint8_t *
spliced(const uint8_t *buf, size_t len, size_t off, const void *extra, size_t n, size_t *newlen)
{
	uint8_t    *out = malloc(len + n);

	memcpy(out, buf, off);
	memcpy(out + off, extra, n);
	memcpy(out + off + n, buf + off, len - off);
	*newlen = len + n;
	put_le(out + 16, *newlen, 8);
	fix_crc(out, *newlen);
	return out;
}

/* ---------------------------------------------------------------- round trips */

T_CASE(test_model_round_trip)
{
	nn_model	a,
				b;
	nn_status	st = {0};
	nn_shape	in = {8, 8, 1};
	size_t		len;
	uint8_t    *buf;

	if (!make_model(&a, SMALL_SPEC, in, 3, 7, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	T_OK(memcmp(buf, "MLCNNMDL", 8) == 0 && get_le(buf + 8, 2) == 2 &&
		 get_le(buf + 10, 2) == NN_BLOB_MODEL && get_le(buf + 16, 8) == len,
		 "header: magic, version 2, kind 1, length %zu", len);
	T_OK(get_le(buf + len - 4, 4) == nn_crc32(buf, len - 4), "trailing CRC-32 of everything before it");
	{
		/* sections 1..6 in tag order, back to back up to the checksum; no buffers section */
		size_t		off = 24,
					plen;
		int			order_ok = 1;

		for (uint16_t t = 1; t <= 6; t++)
		{
			if (section_at(buf, len, t, &plen) != off)
				order_ok = 0;
			off += 10 + plen;
		}
		T_OK(order_ok && off == len - 4 && section_at(buf, len, NN_SECTION_BUFFERS, &plen) == 0,
			 "sections architecture, normalisation, options, counters, history, parameters, in order, filling the body");
	}
	if (T_OK(nn_model_read(&b, buf, len, &counting, &st) == NN_OK, "blob reads: %s", st.msg))
	{
		size_t		len2;
		uint8_t    *buf2;

		expect_same(&a, &b, "small model");
		T_OK(b.format == 2 && b.options_v1 == NULL && b.buffers == NULL, "format 2, no format-1 text, no buffers");
		/* write again: the same bytes */
		buf2 = blob_of(&b, &len2);
		T_OK(len2 == len && memcmp(buf, buf2, len) == 0, "re-serialising gives the same %zu bytes", len);
		free(buf2);
		nn_model_free(&b, &counting);
	}
	T_OK(counts.live == 0, "every allocation of the read was freed (%ld live)", counts.live);
	free(buf);
	free_made(&a);
}

T_CASE(test_model_round_trip_reference_cnn)
{
	nn_model	a,
				b;
	nn_status	st = {0};
	nn_shape	in = {28, 28, 1};
	size_t		len;
	uint8_t    *buf;

	if (!make_model(&a, NN_REFERENCE_SPEC, in, 10, 0, NN_BLOB_MODEL))
		return;
	a.norm.mode = NN_NORM_MINMAX;
	a.norm.mean = 0;
	a.norm.std = 1;
	buf = blob_of(&a, &len);
	T_OK(len > 225034 * 4, "reference CNN blob holds 225034 floats (%zu bytes)", len);
	if (T_OK(nn_model_read(&b, buf, len, &counting, &st) == NN_OK, "blob reads: %s", st.msg))
	{
		expect_same(&a, &b, "reference CNN, no history");
		nn_model_free(&b, &counting);
	}
	free(buf);
	free_made(&a);
}

T_CASE(test_model_gradient_blob)
{
	nn_model	a,
				b;
	nn_status	st = {0};
	nn_shape	in = {9, 7, 3};
	size_t		len;
	uint8_t    *buf;

	if (!make_model(&a, "conv(4,3,2) relu conv(3,3,same) flatten dense(5)", in, 5, 0, NN_BLOB_GRADIENTS))
		return;
	buf = blob_of(&a, &len);
	T_OK(get_le(buf + 10, 2) == NN_BLOB_GRADIENTS, "kind field is 2");
	if (T_OK(nn_model_read(&b, buf, len, &counting, &st) == NN_OK, "gradient blob reads: %s", st.msg))
	{
		nn_options	def;

		nn_options_default(&def);
		expect_same(&a, &b, "gradient blob");
		T_OK(b.grad_rows == 77, "gradient rows 77 (got %lld)", (long long) b.grad_rows);
		T_OK(b.options.epochs == def.epochs && b.options.seed == def.seed, "a gradient blob carries no options: defaults");
		nn_model_free(&b, &counting);
	}
	/* a gradient blob that claims to be a model has no options: refused */
	put_le(buf + 10, NN_BLOB_MODEL, 2);
	fix_crc(buf, len);
	{
		int			refused = read_fails(buf, len, &st);

		T_OK(refused && strstr(st.msg, "options are missing"),
			 "gradient bytes relabelled as a model are refused: %s", st.msg);
	}
	free(buf);
	free_made(&a);
}

/* ---------------------------------------------------------------- damage */

T_CASE(test_model_truncated_everywhere)
{
	nn_model	a;
	nn_status	st;
	nn_shape	in = {8, 8, 1};
	size_t		len;
	uint8_t    *buf,
			   *cut;
	size_t		bad_plain = 0,
				bad_fixed = 0,
				bad_msg = 0;

	if (!make_model(&a, SMALL_SPEC, in, 3, 4, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	for (size_t n = 0; n < len; n++)
	{
		/* a fresh allocation of exactly n bytes, so a sanitizer sees any over-read */
		cut = malloc(n ? n : 1);
		memcpy(cut, buf, n);
		if (!read_fails(cut, n, &st))
			bad_plain++;
		else if (strstr(st.msg, "truncated") == NULL)
			bad_msg++;
		if (n >= 28)
		{
			/* make the header and checksum agree with the cut: the field checks must catch it */
			put_le(cut + 16, n, 8);
			fix_crc(cut, n);
			if (!read_fails(cut, n, &st))
				bad_fixed++;
		}
		free(cut);
	}
	T_OK(bad_plain == 0, "all %zu truncations are NN_ERR_CORRUPT without a leak (%zu are not)", len, bad_plain);
	T_OK(bad_msg == 0, "all %zu truncations say \"truncated\" (%zu do not)", len, bad_msg);
	T_OK(bad_fixed == 0, "all %zu truncations with a rewritten length and CRC are refused (%zu are not)",
		 len - 28, bad_fixed);
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
	free(buf);
	free_made(&a);
}

T_CASE(test_model_truncated_reference_cnn)
{
	nn_model	a;
	nn_status	st;
	nn_shape	in = {28, 28, 1};
	size_t		len,
				bad = 0;
	uint8_t    *buf;

	if (!make_model(&a, NN_REFERENCE_SPEC, in, 10, 3, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	/* every length of a 0.9 MB blob: the length check answers each in O(1) */
	for (size_t n = 0; n < len; n++)
		if (!read_fails(buf, n, &st))
			bad++;
	T_OK(bad == 0, "all %zu truncations of the reference CNN blob are refused (%zu are not)", len, bad);
	free(buf);
	free_made(&a);
}

T_CASE(test_model_every_byte_flipped)
{
	nn_model	a;
	nn_status	st;
	nn_shape	in = {8, 8, 1};
	size_t		len,
				bad = 0,
				bad_one = 0;
	uint8_t    *buf;

	if (!make_model(&a, SMALL_SPEC, in, 3, 4, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	for (size_t i = 0; i < len; i++)
	{
		uint8_t		old = buf[i];

		buf[i] = (uint8_t) (old ^ 0xFF);
		if (!read_fails(buf, len, &st))
			bad++;
		buf[i] = (uint8_t) (old ^ 0x01);
		if (!read_fails(buf, len, &st))
			bad_one++;
		buf[i] = old;
	}
	T_OK(bad == 0, "each of the %zu bytes inverted: refused every time (%zu not)", len, bad);
	T_OK(bad_one == 0, "each of the %zu bytes with its low bit flipped: refused every time (%zu not)", len, bad_one);
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
	{
		nn_model	b;
		int			rc;

		memset(&st, 0, sizeof(st));
		rc = nn_model_read(&b, buf, len, &counting, &st);
		T_OK(rc == NN_OK, "the restored blob reads again: %s", st.msg);
		if (rc == NN_OK)
			nn_model_free(&b, &counting);
	}
	free(buf);
	free_made(&a);
}

/* Expect blob (len bytes, already resealed) to be refused with a message holding want. */
static void
expect_refused(const uint8_t *buf, size_t len, const char *want, const char *what)
{
	nn_status	st;
	int			refused = read_fails(buf, len, &st);

	T_OK(refused && (want == NULL || strstr(st.msg, want) != NULL),
		 "%s: refused with \"%s\" (got code %d: %s)", what, want ? want : "anything", st.code, st.msg);
	T_OK(st.msg[0] && st.msg[strlen(st.msg) - 1] != '.', "message has no trailing period");
}

/* Set n bytes at off to v, fix the CRC, and expect a refusal whose message holds want. */
static void
expect_field(const uint8_t *orig, size_t len, size_t off, int n, uint64_t v, const char *want,
			 const char *what)
{
	uint8_t    *buf = malloc(len);

	memcpy(buf, orig, len);
	put_le(buf + off, v, n);
	fix_crc(buf, len);
	expect_refused(buf, len, want, what);
	free(buf);
}

/* float bits */
static uint32_t
f32_bits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	return u;
}

/* double bits */
static uint64_t
f64_bits(double d)
{
	uint64_t	u;

	memcpy(&u, &d, 8);
	return u;
}

/* offsets of a format-2 blob's sections (their headers) and payload lengths */
typedef struct layout2
{
	size_t		off[8];
	size_t		len[8];
} layout2;

/* Find every section of a format-2 blob. */
static layout2
layout2_of(const uint8_t *buf, size_t len)
{
	layout2		l;

	for (uint16_t t = 1; t < 8; t++)
		l.off[t] = section_at(buf, len, t, &l.len[t]);
	return l;
}

T_CASE(test_model_bad_fields_with_valid_crc)
{
	nn_model	a;
	nn_shape	in = {8, 8, 1};
	size_t		len;
	uint8_t    *buf;
	layout2		l;
	size_t		A,
				N,
				C,
				H,
				P;
	uint64_t	S,
				E,
				NP;

	if (!make_model(&a, SMALL_SPEC, in, 3, 4, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	l = layout2_of(buf, len);
	A = l.off[NN_SECTION_ARCH] + 10;	/* payloads */
	N = l.off[NN_SECTION_NORM] + 10;
	C = l.off[NN_SECTION_COUNTERS] + 10;
	H = l.off[NN_SECTION_HISTORY] + 10;
	P = l.off[NN_SECTION_PARAMS] + 10;
	S = get_le(buf + A + 16, 4);
	E = get_le(buf + H, 4);
	NP = get_le(buf + P, 8);
	T_OK(A == 34 && S == strlen(a.net.spec) && l.len[NN_SECTION_ARCH] == 20 + S && E == 4 &&
		 NP == a.net.nparams && P + 8 + 4 * NP + 4 == len,
		 "layout: the spec (%llu bytes) in the first section, 4 epochs, %llu params end 4 bytes before the end",
		 (unsigned long long) S, (unsigned long long) NP);
	T_OK(memcmp(buf + A + 20, a.net.spec, S) == 0, "the canonical spec is stored as text");

	/* the header */
	expect_field(buf, len, 0, 1, 'X', "bad magic", "magic");
	expect_field(buf, len, 8, 2, 3, "unsupported model format version 3 (this mlcnn reads versions 1 and 2)", "version 3");
	expect_field(buf, len, 8, 2, 0, "unsupported model format version 0", "version 0");
	expect_field(buf, len, 8, 2, 1, "model is", "a format-2 body labelled format 1");
	expect_field(buf, len, 10, 2, 3, "unknown blob kind 3", "kind 3");
	expect_field(buf, len, 12, 4, 1, "reserved header field is 1, not 0", "reserved 1");
	expect_field(buf, len, 16, 8, len + 1, "header says", "length field one too long");
	expect_field(buf, len, 16, 8, len - 1, "header says", "length field one too short");

	/* architecture */
	expect_field(buf, len, A, 4, 0, "input height is 0", "input height 0");
	expect_field(buf, len, A + 4, 4, 0xFFFFFFFF, "input width is -1", "input width -1");
	expect_field(buf, len, A + 8, 4, 5000, "input channels is 5000", "input channels 5000");
	/* 10x8 input: the spec still builds but needs more dense weights than stored */
	expect_field(buf, len, A, 4, 10, "parameters stored but its layers need", "input height 10");
	expect_field(buf, len, A + 12, 4, 4, "does not build", "4 classes for a dense(3) net");
	expect_field(buf, len, A + 12, 4, 0, "class count is 0", "0 classes");
	expect_field(buf, len, A + 16, 4, 0, "layer spec length 0", "spec length 0");
	expect_field(buf, len, A + 16, 4, 100000, "layer spec length 100000", "spec length 100000");
	expect_field(buf, len, A + 16, 4, S + 1, "layer spec needs", "spec length one too long");
	expect_field(buf, len, A + 16, 4, S - 1, "does not build", "spec length one too short");
	/* same length, other architecture: conv(4,3) -> conv(5,3) */
	expect_field(buf, len, A + 20 + 5, 1, '5', "parameters stored but its layers need", "spec conv(5,3)");
	expect_field(buf, len, A + 20 + 2, 1, 0, "NUL", "NUL inside the spec");
	expect_field(buf, len, A - 8, 8, l.len[NN_SECTION_ARCH] - 1, NULL, "architecture section one byte short");

	/* normalisation */
	expect_field(buf, len, N, 4, 7, "normalisation mode is 7", "normalisation mode 7");
	expect_field(buf, len, N + 4, 4, f32_bits(NAN), "bad normalisation statistics", "mean NaN");
	expect_field(buf, len, N + 8, 4, f32_bits(0.0f), "bad normalisation statistics", "zscore std 0");
	expect_field(buf, len, N + 8, 4, f32_bits(-1.0f), "bad normalisation statistics", "zscore std -1");

	/* counters */
	expect_field(buf, len, C, 8, UINT64_MAX, "rows trained is negative", "rows trained -1");
	expect_field(buf, len, C + 8, 8, (uint64_t) 1 << 63, "rows skipped is negative", "rows skipped -2^63");
	expect_field(buf, len, C + 16, 8, UINT64_MAX, "gradient rows is negative", "gradient rows -1");
	expect_field(buf, len, C + 24, 8, f64_bits(NAN), "bad training time", "training seconds NaN");
	expect_field(buf, len, C + 24, 8, f64_bits(-1.0), "bad training time", "training seconds -1");

	/* history */
	expect_field(buf, len, H, 4, E + 1, "5 epochs of history", "one epoch more than stored");
	expect_field(buf, len, H, 4, E - 1, "the history section has 16 bytes after its fields", "one epoch fewer than stored");
	expect_field(buf, len, H, 4, 20000, "corrupt: 20000 epochs", "20000 epochs");
	expect_field(buf, len, H, 4, 0xFFFFFFFF, "epochs", "2^32-1 epochs");

	/* parameters */
	expect_field(buf, len, P, 8, NP + 1, "parameters stored but its layers need", "one parameter more");
	expect_field(buf, len, P, 8, NP - 1, "parameters stored but its layers need", "one parameter fewer");
	expect_field(buf, len, P, 8, UINT64_MAX / 2, "parameters stored but its layers need", "2^63 parameters");
	expect_field(buf, len, P + 8, 4, f32_bits(INFINITY), "parameter 0 is not a finite number", "parameter +inf");
	expect_field(buf, len, P + 8 + 4 * 17, 4, f32_bits(NAN), "parameter 17 is not a finite number", "parameter NaN");
	expect_field(buf, len, P - 8, 8, l.len[NN_SECTION_PARAMS] + 1, "the parameters section needs", "parameter section one byte long");
	expect_field(buf, len, P - 8, 8, l.len[NN_SECTION_PARAMS] - 4, NULL, "parameter section 4 bytes short");
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
	free(buf);
	free_made(&a);
}

T_CASE(test_model_bad_options_with_valid_crc)
{
	nn_model	a,
				b;
	nn_status	st = {0};
	nn_shape	in = {8, 8, 1};
	size_t		len,
				plen,
				O,
				ep,
				th,
				cl,
				op,
				rt,
				inp;

	uint8_t    *buf;

	if (!make_model(&a, SMALL_SPEC, in, 3, 4, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	O = section_at(buf, len, NN_SECTION_OPTIONS, &plen);
	ep = option_at(buf, len, "epochs");
	th = option_at(buf, len, "threads");
	cl = option_at(buf, len, "classes");
	op = option_at(buf, len, "optimizer");
	rt = option_at(buf, len, "record_times");
	inp = option_at(buf, len, "input");
	T_OK(O > 0 && get_le(buf + O + 10, 2) == (uint64_t) nn_option_count && ep > 0 && th > 0 && cl > 0 &&
		 op > 0 && rt > 0 && inp > 0, "the options section holds all %d options by name", nn_option_count);
	/* an entry: u8 name length, name, u8 type, u32 value length, value */
	T_OK(buf[ep] == 6 && buf[ep + 7] == NN_OPTION_INT && get_le(buf + ep + 8, 4) == 8 &&
		 get_le(buf + ep + 12, 8) == (uint64_t) a.options.epochs, "epochs: name, type 1, 8 bytes, the value");

	expect_field(buf, len, ep + 12, 8, 0, "bad options: option \"epochs\" must be between 1 and 10000, not 0",
				 "epochs 0");
	expect_field(buf, len, ep + 7, 1, NN_OPTION_FLOAT, "option \"epochs\" is stored as type 2, not 1", "epochs as a float");
	expect_field(buf, len, ep, 1, 0, "option name length 0", "name length 0");
	expect_field(buf, len, ep + 1, 1, 'E', "an option name holds byte 69", "an upper-case name");
	expect_field(buf, len, op + 1 + 9 + 1 + 4, 1, 'x',
				 "bad options: option \"optimizer\" must be \"sgd\", \"momentum\" or \"adam\", not \"xomentum\"",
				 "optimizer \"xomentum\"");
	expect_field(buf, len, rt + 1 + 12 + 1 + 4, 1, 2, "option \"record_times\" is stored as 2, not 0 or 1",
				 "record_times 2");
	expect_field(buf, len, inp + 1 + 5 + 1 + 4, 4, 0,
				 "bad options: each value of option \"input\" must be between 1 and 4096, not 0", "input [0, 8, 1]");
	expect_field(buf, len, ep + 8, 4, 4, NULL, "epochs value length 4");
	expect_field(buf, len, O + 10, 2, nn_option_count + 1, "needs", "one option more than stored");
	expect_field(buf, len, O + 10, 2, nn_option_count - 1, "the options section has", "one option fewer than stored");
	/* "classes" renamed "threads": stored twice */
	{
		uint8_t    *twice = malloc(len);

		memcpy(twice, buf, len);
		memcpy(twice + cl + 1, "threads", 7);
		fix_crc(twice, len);
		expect_refused(twice, len, "option \"threads\" is stored twice", "an option stored twice");
		free(twice);
	}
	/* an option this mlcnn does not know is skipped: the others still read */
	{
		uint8_t    *later = malloc(len);

		memcpy(later, buf, len);
		memcpy(later + th + 1, "zthread", 7);
		fix_crc(later, len);
		int			rc = nn_model_read(&b, later, len, &counting, &st);

		T_OK(rc == NN_OK && b.options.threads == 0 && b.options.epochs == a.options.epochs && a.options.threads == 2,
			 "an unknown option name is skipped (threads falls back to its default): %s", st.msg);
		if (rc == NN_OK)
			nn_model_free(&b, &counting);
		free(later);
	}
	/* a model without its options section */
	expect_field(buf, len, O, 2, NN_SECTION_OPTIONAL | NN_SECTION_OPTIONS, "model is corrupt: options are missing",
				 "options section hidden");
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
	free(buf);
	free_made(&a);
}

T_CASE(test_model_sections)
{
	nn_model	a,
				b;
	nn_status	st = {0};
	nn_shape	in = {8, 8, 1};
	size_t		len,
				len2,
				plen,
				norm;
	uint8_t    *buf,
			   *x;

	if (!make_model(&a, SMALL_SPEC, in, 3, 2, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	norm = section_at(buf, len, NN_SECTION_NORM, &plen);
	{
		/* an optional section this mlcnn does not know: skipped, and not written again */
		uint8_t		opt[13] = {0x7f, 0x80, 3, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c'};

		x = spliced(buf, len, len - 4, opt, sizeof(opt), &len2);
		if (T_OK(nn_model_read(&b, x, len2, &counting, &st) == NN_OK, "an unknown optional section (0x807f) is skipped: %s",
				 st.msg))
		{
			size_t		len3;
			uint8_t    *y = blob_of(&b, &len3);

			expect_same(&a, &b, "with an optional section");
			T_OK(len3 == len && memcmp(y, buf, len) == 0, "writing it again drops the unknown section");
			free(y);
			nn_model_free(&b, &counting);
		}
		free(x);
		/* the same section first, before the architecture: order does not matter */
		x = spliced(buf, len, 24, opt, sizeof(opt), &len2);
		if (T_OK(nn_model_read(&b, x, len2, &counting, &st) == NN_OK, "sections in another order read: %s", st.msg))
			nn_model_free(&b, &counting);
		free(x);
	}
	{
		/* a required section this mlcnn does not know: refused, naming the tag */
		uint8_t		req[13] = {0x7f, 0x00, 3, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c'};

		x = spliced(buf, len, len - 4, req, sizeof(req), &len2);
		expect_refused(x, len2, "model has section 127, which this mlcnn does not know and may not skip", "section 127");
		free(x);
		req[0] = 0;
		x = spliced(buf, len, len - 4, req, sizeof(req), &len2);
		expect_refused(x, len2, "model has section 0,", "section 0");
		free(x);
	}
	/* the normalisation section twice */
	x = spliced(buf, len, len - 4, buf + norm, 10 + plen, &len2);
	expect_refused(x, len2, "the normalisation section appears twice", "a duplicate section");
	free(x);
	/* a required section hidden behind the optional bit */
	{
		size_t		h = section_at(buf, len, NN_SECTION_HISTORY, &plen);

		expect_field(buf, len, h, 2, NN_SECTION_OPTIONAL | NN_SECTION_HISTORY, "the history section is missing",
					 "no history section");
		h = section_at(buf, len, NN_SECTION_PARAMS, &plen);
		expect_field(buf, len, h, 2, NN_SECTION_OPTIONAL | NN_SECTION_PARAMS, "the parameters section is missing",
					 "no parameters section");
		h = section_at(buf, len, NN_SECTION_ARCH, &plen);
		expect_field(buf, len, h, 2, NN_SECTION_OPTIONAL | NN_SECTION_ARCH, "the architecture section is missing",
					 "no architecture section");
	}
	{
		/* half a section header at the end */
		uint8_t		half[5] = {0x05, 0x00, 0, 0, 0};

		x = spliced(buf, len, len - 4, half, sizeof(half), &len2);
		expect_refused(x, len2, "model is truncated: a section length needs 8 bytes but 3 remain", "half a section header");
		free(x);
	}
	{
		/* buffers: stored for a net that has none */
		uint8_t		bufs[30] = {0x07, 0x00, 20, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
		uint8_t		none[18] = {0x07, 0x00, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

		x = spliced(buf, len, len - 4, bufs, sizeof(bufs), &len2);
		expect_refused(x, len2, "model is corrupt: 3 buffers stored but its layers need 0", "3 buffers for none");
		free(x);
		x = spliced(buf, len, len - 4, none, sizeof(none), &len2);
		if (T_OK(nn_model_read(&b, x, len2, &counting, &st) == NN_OK,
				 "an empty buffers section for a net without buffers reads: %s", st.msg))
			nn_model_free(&b, &counting);
		free(x);
	}
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
	free(buf);
	free_made(&a);
}

T_CASE(test_model_buffers_written)
{
	nn_model	a;
	nn_shape	in = {8, 8, 1};
	size_t		len,
				plen,
				off;
	uint8_t    *buf;
	float		bufs[5] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f};
	float		back[5];

	/* a net with buffers (batch norm's running statistics, when there is batch norm) */
	if (!make_model(&a, SMALL_SPEC, in, 3, 1, NN_BLOB_MODEL))
		return;
	a.net.nbuffers = 5;
	a.buffers = bufs;
	buf = blob_of(&a, &len);
	off = section_at(buf, len, NN_SECTION_BUFFERS, &plen);
	for (int i = 0; i < 5 && off > 0; i++)
	{
		uint32_t	u = (uint32_t) get_le(buf + off + 18 + 4 * i, 4);

		memcpy(&back[i], &u, 4);
	}
	T_OK(off > 0 && plen == 8 + 5 * 4 && get_le(buf + off + 10, 8) == 5 && memcmp(back, bufs, sizeof(bufs)) == 0 &&
		 off + 10 + plen == len - 4, "a net with 5 buffers gets a buffers section, last, holding them");
	/* the net rebuilt from its spec has none: refused */
	expect_refused(buf, len, "5 buffers stored but its layers need 0", "buffers the layers do not have");
	free(buf);
	a.net.nbuffers = 0;
	a.buffers = NULL;
	buf = blob_of(&a, &len);
	T_OK(section_at(buf, len, NN_SECTION_BUFFERS, &plen) == 0, "no buffers: no buffers section");
	free(buf);
	free_made(&a);
}

T_CASE(test_model_crc32_known_value)
{
	/* the CRC-32/IEEE check value of "123456789" is 0xCBF43926 (every CRC catalogue) */
	T_OK(nn_crc32((const uint8_t *) "123456789", 9) == 0xCBF43926u, "crc32(\"123456789\") = 0xcbf43926 (got 0x%08x)",
		 nn_crc32((const uint8_t *) "123456789", 9));
	T_OK(nn_crc32((const uint8_t *) "", 0) == 0, "crc32 of nothing is 0");
}

/* ---------------------------------------------------------------- format 1 */

#define V1_PATH "test/fixtures/model_v1.bin"
#define V1_LOGITS "test/fixtures/model_v1_logits.txt"
#define V1_INFO "test/fixtures/model_v1_info.json"
#define V1_PROBES 8

/* A whole file, malloc'd; NULL when it cannot be read. */
static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf = NULL;
	long		n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
	{
		buf = malloc((size_t) n + 1);
		if (buf && fread(buf, 1, (size_t) n, f) != (size_t) n)
		{
			free(buf);
			buf = NULL;
		}
		else if (buf)
		{
			buf[n] = '\0';
			*len = (size_t) n;
		}
	}
	fclose(f);
	return buf;
}

/* Pixel k of probe image i, as make_model_v1.c and sql/format1.sql make them. */
static uint8_t
probe_pixel(int i, int k)
{
	return (uint8_t) ((29 * i + 7 * k + (k / 8) * (i + 3)) % 256);
}

/* Logits of the probe images through m (batch of V1_PROBES) into out; 1 on success. */
static int
probe_logits(const nn_model *m, float *out)
{
	nn_work		w;
	nn_status	st;
	uint8_t		px[V1_PROBES][64];
	const uint8_t *rows[V1_PROBES];

	for (int i = 0; i < V1_PROBES; i++)
	{
		for (int k = 0; k < 64; k++)
			px[i][k] = probe_pixel(i, k);
		rows[i] = px[i];
	}
	if (nn_work_alloc(&w, &m->net, V1_PROBES, 0, &counting, &st) != NN_OK)
		return 0;
	nn_load_pixels(w.act[0], rows, V1_PROBES, m->net.input, &m->norm);
	nn_net_forward(&m->net, m->params, m->buffers, &w, V1_PROBES, 0, NULL, NULL);
	memcpy(out, w.act[m->net.nlayers], sizeof(float) * V1_PROBES * m->net.classes);
	nn_work_free(&w, &counting);
	return 1;
}

/* Index of the largest of n values. */
static int
argmax(const float *v, int n)
{
	int			best = 0;

	for (int k = 1; k < n; k++)
		if (v[k] > v[best])
			best = k;
	return best;
}

T_CASE(test_model_v1_fixture)
{
	nn_model	m,
				m2;
	nn_status	st = {0};
	size_t		len,
				len2,
				infolen;
	uint8_t    *buf = slurp(V1_PATH, &len),
			   *buf2;
	char	   *info = (char *) slurp(V1_INFO, &infolen);
	FILE	   *f = fopen(V1_LOGITS, "r");
	float		want[V1_PROBES * 4],
				got[V1_PROBES * 4],
				got2[V1_PROBES * 4];
	int			want_class[V1_PROBES],
				nread = 0,
				classes_ok = 1;

	if (!T_OK(buf != NULL && info != NULL && f != NULL, "the format-1 fixture opens (%s, %s, %s; run from the repository root)",
			  V1_PATH, V1_LOGITS, V1_INFO))
		return;
	for (int i = 0; i < V1_PROBES; i++)
	{
		int			idx;

		if (fscanf(f, "%d %d %f %f %f %f", &idx, &want_class[i], &want[4 * i], &want[4 * i + 1],
				   &want[4 * i + 2], &want[4 * i + 3]) == 6 && idx == i)
			nread++;
	}
	fclose(f);
	T_OK(nread == V1_PROBES, "the recorded logits of %d probe images read", nread);
	T_OK(get_le(buf + 8, 2) == 1, "the fixture is format 1");
	if (!T_OK(nn_model_read(&m, buf, len, &counting, &st) == NN_OK, "a format-1 model reads: %s", st.msg))
		return;
	T_OK(m.format == 1 && m.kind == NN_BLOB_MODEL && strcmp(m.net.spec, "conv(3,3) relu maxpool(2) flatten dense(4)") == 0 &&
		 m.net.nparams == 142 && m.net.classes == 4 && m.net.input.h == 8 && m.nepochs == 3 &&
		 m.rows_trained == 240 && m.norm.mode == NN_NORM_ZSCORE,
		 "its architecture, counters, history and normalisation are those of make_model_v1.c");
	{
		/* the options text is the "options" object model_info showed then */
		const char *start = strstr(info, "\"options\": ");
		const char *end = strstr(info, ", \"rows_trained\"");
		size_t		n = start && end ? (size_t) (end - start) - 11 : 0;
		nn_options	def;
		char		which[2 * NN_MAX_SPEC + 64];

		T_OK(m.options_v1 != NULL && n > 0 && strlen(m.options_v1) == n && memcmp(m.options_v1, start + 11, n) == 0,
			 "the stored options text is kept as it was: %s", m.options_v1 ? m.options_v1 : "(none)");
		nn_options_default(&def);
		T_OK(same_options(&m.options, &def, which, sizeof(which)), "its typed options are the defaults (%s)", which);
	}

	/* predictions and logits as the code of that time computed them */
	if (probe_logits(&m, got))
	{
		for (int i = 0; i < V1_PROBES; i++)
			if (argmax(got + 4 * i, 4) != want_class[i])
				classes_ok = 0;
		T_OK(classes_ok, "the %d probe images get the classes recorded by the format-1 code", V1_PROBES);
		T_CLOSE(got, want, V1_PROBES * 4, 1e-6, 1e-6, "logits against the format-1 code's");
	}

	/* re-exported: format 2, the same model, the same logits bit for bit */
	buf2 = blob_of(&m, &len2);
	T_OK(get_le(buf2 + 8, 2) == 2, "re-exported as format 2 (%zu bytes)", len2);
	if (T_OK(nn_model_read(&m2, buf2, len2, &counting, &st) == NN_OK, "the re-exported model reads: %s", st.msg))
	{
		expect_same(&m, &m2, "format 1 re-exported as 2");
		T_OK(m2.format == 2 && m2.options_v1 == NULL, "the copy is format 2, without format-1 text");
		if (probe_logits(&m2, got2))
			T_OK(memcmp(got, got2, sizeof(got)) == 0, "the format-2 copy gives the same logits, bit for bit");
		nn_model_free(&m2, &counting);
	}
	free(buf2);
	nn_model_free(&m, &counting);
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
	free(buf);
	free(info);
}

/* offsets of the fields of a format-1 blob (model.c's format-1 sequence) */
typedef struct layout1
{
	size_t		norm,
				opt_len,
				rows,
				epochs,
				nparams;
} layout1;

/* Compute the field offsets from a format-1 blob itself. */
static layout1
layout1_of(const uint8_t *buf)
{
	layout1		l;

	l.norm = 44 + get_le(buf + 40, 4);
	l.opt_len = l.norm + 12;
	l.rows = l.opt_len + 4 + get_le(buf + l.opt_len, 4);
	l.epochs = l.rows + 32;
	l.nparams = l.epochs + 4 + 16 * get_le(buf + l.epochs, 4);
	return l;
}

T_CASE(test_model_v1_damaged)
{
	nn_model	m;
	nn_status	st;
	size_t		len,
				bad_plain = 0,
				bad_fixed = 0,
				bad_flip = 0;
	uint8_t    *buf = slurp(V1_PATH, &len);
	layout1		l;

	if (!T_OK(buf != NULL, "the format-1 fixture opens"))
		return;
	l = layout1_of(buf);
	T_OK(get_le(buf + l.nparams, 8) == 142 && l.nparams + 8 + 142 * 4 + 4 == len,
		 "format-1 layout: 142 parameters end 4 bytes before the end");
	for (size_t n = 0; n < len; n++)
	{
		uint8_t    *cut = malloc(n ? n : 1);

		memcpy(cut, buf, n);
		if (!read_fails(cut, n, &st) || strstr(st.msg, "truncated") == NULL)
			bad_plain++;
		if (n >= 28)
		{
			put_le(cut + 16, n, 8);
			fix_crc(cut, n);
			if (!read_fails(cut, n, &st))
				bad_fixed++;
		}
		free(cut);
	}
	for (size_t i = 0; i < len; i++)
	{
		buf[i] ^= 0x01;
		if (!read_fails(buf, len, &st))
			bad_flip++;
		buf[i] ^= 0x01;
	}
	T_OK(bad_plain == 0 && bad_fixed == 0 && bad_flip == 0,
		 "every truncation of the format-1 fixture (%zu plain, %zu resealed) and every flipped bit is refused",
		 bad_plain, bad_fixed);
	expect_field(buf, len, l.opt_len + 4, 1, '[', "model is corrupt: bad options: they are not a JSON object",
				 "format-1 options not an object");
	expect_field(buf, len, l.opt_len + 10, 1, 0, "bad options: they hold a NUL byte", "format-1 options with a NUL");
	expect_field(buf, len, l.opt_len, 4, 0, "model is corrupt: options are missing", "format-1 options length 0");
	expect_field(buf, len, l.opt_len, 4, 16384, "model is corrupt: options length 16384", "format-1 options length 16384");
	expect_field(buf, len, l.epochs, 4, 4, "parameters", "format-1: one epoch more than stored");
	expect_field(buf, len, l.nparams, 8, 143, "143 parameters stored but its layers need 142", "format-1: 143 parameters");
	expect_field(buf, len, 40, 4, 0, "layer spec length 0", "format-1: spec length 0");
	expect_field(buf, len, 24, 4, 0, "input height is 0", "format-1: input height 0");
	/* a format-1 gradient blob carried no options: the text is not read, nor kept */
	put_le(buf + 10, NN_BLOB_GRADIENTS, 2);
	fix_crc(buf, len);
	{
		int			rc = nn_model_read(&m, buf, len, &counting, &st);

		T_OK(rc == NN_OK && m.kind == NN_BLOB_GRADIENTS && m.options_v1 == NULL,
			 "relabelled as format-1 gradients it reads, without options text%s%s", rc ? ": " : "", rc ? st.msg : "");
		if (rc == NN_OK)
			nn_model_free(&m, &counting);
	}
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
	free(buf);
}
