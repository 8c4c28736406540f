/*
 * test_model.c: the model byte format (src/nn/model.c).
 *
 * A model written with nn_model_write and read with nn_model_read must come
 * back identical: parameters bit for bit, spec, shapes, normalisation,
 * options, counters and history. Every damaged blob must be refused with
 * NN_ERR_CORRUPT, without crashing and without leaking (a counting
 * allocator checks that every failed read freed what it took):
 *   - every truncation, both as is (the length field then disagrees) and
 *     with the length field and checksum rewritten to fit, which walks the
 *     reader's bounds checks through every field;
 *   - every single-byte change (the CRC-32 catches all of them);
 *   - fields set to bad values with the checksum recomputed, so that the
 *     field checks themselves are exercised, each with its message.
 * Offsets used below follow the layout in model.c's header comment.
 */
#include <math.h>
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

/* canonical options JSON of o */
static void
options_json(const nn_options *o, char *buf, size_t len)
{
	if (nn_options_to_json(o, buf, len) < 0)
		buf[0] = '\0';
}

/* Assert that b equals a in every field. */
static void
expect_same(const nn_model *a, const nn_model *b, const char *what)
{
	char		ja[NN_MAX_OPTIONS_JSON],
				jb[NN_MAX_OPTIONS_JSON];

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
	options_json(&a->options, ja, sizeof(ja));
	options_json(&b->options, jb, sizeof(jb));
	T_OK(ja[0] && strcmp(ja, jb) == 0, "%s: options %s", what, jb);
	T_OK(a->options.seed == b->options.seed && a->options.optimizer == b->options.optimizer &&
		 a->options.learning_rate == b->options.learning_rate && a->options.batch_size == b->options.batch_size &&
		 a->options.record_times == b->options.record_times, "%s: option fields", what);
	T_OK(a->rows_trained == b->rows_trained && a->rows_skipped == b->rows_skipped &&
		 a->grad_rows == b->grad_rows && a->train_seconds == b->train_seconds,
		 "%s: counters %lld %lld %lld %g", what, (long long) b->rows_trained, (long long) b->rows_skipped,
		 (long long) b->grad_rows, b->train_seconds);
	T_OK(a->nepochs == b->nepochs &&
		 (a->nepochs == 0 || memcmp(a->history, b->history, sizeof(nn_epoch) * a->nepochs) == 0),
		 "%s: %d epochs of history bit for bit (NaN included)", what, b->nepochs);
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
		m.params == NULL && m.history == NULL;
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
	T_OK(memcmp(buf, "MLCNNMDL", 8) == 0 && get_le(buf + 8, 2) == NN_MODEL_VERSION &&
		 get_le(buf + 10, 2) == NN_BLOB_MODEL && get_le(buf + 16, 8) == len,
		 "header: magic, version 1, kind 1, length %zu", len);
	T_OK(get_le(buf + len - 4, 4) == nn_crc32(buf, len - 4), "trailing CRC-32 of everything before it");
	if (T_OK(nn_model_read(&b, buf, len, &counting, &st) == NN_OK, "blob reads: %s", st.msg))
	{
		size_t		len2;
		uint8_t    *buf2;

		expect_same(&a, &b, "small model");
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

/* offsets of the fields of a blob (model.c's layout) */
typedef struct layout
{
	size_t		spec_len,
				norm,
				opt_len,
				rows,
				secs,
				epochs,
				nparams,
				params;
} layout;

/* Compute the field offsets from the blob itself. */
static layout
layout_of(const uint8_t *buf)
{
	layout		l;
	size_t		S,
				O,
				E;

	l.spec_len = 40;
	S = get_le(buf + 40, 4);
	l.norm = 44 + S;
	l.opt_len = l.norm + 12;
	O = get_le(buf + l.opt_len, 4);
	l.rows = l.opt_len + 4 + O;
	l.secs = l.rows + 24;
	l.epochs = l.secs + 8;
	E = get_le(buf + l.epochs, 4);
	l.nparams = l.epochs + 4 + 16 * E;
	l.params = l.nparams + 8;
	return l;
}

/* Set n bytes at off to v, fix the CRC, and expect a refusal whose message holds want. */
static void
expect_field(const uint8_t *orig, size_t len, size_t off, int n, uint64_t v, const char *want,
			 const char *what)
{
	uint8_t    *buf = malloc(len);
	nn_status	st;
	int			refused;

	memcpy(buf, orig, len);
	put_le(buf + off, v, n);
	fix_crc(buf, len);
	refused = read_fails(buf, len, &st);
	T_OK(refused && strstr(st.msg, want) != NULL,
		 "%s: refused with \"%s\" (got code %d: %s)", what, want, st.code, st.msg);
	T_OK(st.msg[0] && st.msg[strlen(st.msg) - 1] != '.', "message has no trailing period");
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

T_CASE(test_model_bad_fields_with_valid_crc)
{
	nn_model	a;
	nn_shape	in = {8, 8, 1};
	size_t		len;
	uint8_t    *buf;
	layout		l;
	uint64_t	S,
				O,
				E,
				P;

	if (!make_model(&a, SMALL_SPEC, in, 3, 4, NN_BLOB_MODEL))
		return;
	buf = blob_of(&a, &len);
	l = layout_of(buf);
	S = get_le(buf + l.spec_len, 4);
	O = get_le(buf + l.opt_len, 4);
	E = get_le(buf + l.epochs, 4);
	P = get_le(buf + l.nparams, 8);
	T_OK(S == strlen(a.net.spec) && E == 4 && P == a.net.nparams && l.params + 4 * P + 4 == len,
		 "layout: spec %llu bytes, options %llu, 4 epochs, %llu params end 4 bytes before the end",
		 (unsigned long long) S, (unsigned long long) O, (unsigned long long) P);
	T_OK(memcmp(buf + 44, a.net.spec, S) == 0, "the canonical spec is stored as text");

	expect_field(buf, len, 0, 1, 'X', "bad magic", "magic");
	expect_field(buf, len, 8, 2, 2, "unsupported model format version 2", "version 2");
	expect_field(buf, len, 10, 2, 3, "unknown blob kind 3", "kind 3");
	expect_field(buf, len, 16, 8, len + 1, "header says", "length field one too long");
	expect_field(buf, len, 16, 8, len - 1, "header says", "length field one too short");
	expect_field(buf, len, 24, 4, 0, "input height is 0", "input height 0");
	expect_field(buf, len, 28, 4, 0xFFFFFFFF, "input width is -1", "input width -1");
	expect_field(buf, len, 32, 4, 5000, "input channels is 5000", "input channels 5000");
	/* 9x8 input: the spec still builds but needs more dense weights than stored */
	expect_field(buf, len, 24, 4, 10, "parameters stored but its layers need", "input height 10");
	expect_field(buf, len, 36, 4, 4, "does not build", "4 classes for a dense(3) net");
	expect_field(buf, len, 36, 4, 0, "class count is 0", "0 classes");
	expect_field(buf, len, l.spec_len, 4, 0, "layer spec length 0", "spec length 0");
	expect_field(buf, len, l.spec_len, 4, 100000, "layer spec length 100000", "spec length 100000");
	expect_field(buf, len, l.spec_len, 4, S + 1, "does not build", "spec length one too long");
	expect_field(buf, len, l.spec_len, 4, S - 1, "does not build", "spec length one too short");
	/* same length, other architecture: conv(4,3) -> conv(5,3) */
	expect_field(buf, len, 44 + 5, 1, '5', "parameters stored but its layers need", "spec conv(5,3)");
	expect_field(buf, len, 44 + 2, 1, 0, "NUL", "NUL inside the spec");
	expect_field(buf, len, l.norm, 4, 7, "normalisation mode is 7", "normalisation mode 7");
	expect_field(buf, len, l.norm + 4, 4, f32_bits(NAN), "bad normalisation statistics", "mean NaN");
	expect_field(buf, len, l.norm + 8, 4, f32_bits(0.0f), "bad normalisation statistics", "zscore std 0");
	expect_field(buf, len, l.norm + 8, 4, f32_bits(-1.0f), "bad normalisation statistics", "zscore std -1");
	expect_field(buf, len, l.opt_len, 4, 0, "options are missing", "options length 0");
	expect_field(buf, len, l.opt_len, 4, O - 1, "bad options", "options length one too short");
	expect_field(buf, len, l.opt_len, 4, 1u << 20, "options length", "options length 1 MiB");
	expect_field(buf, len, l.opt_len + 4, 1, '[', "bad options", "options not an object");
	expect_field(buf, len, l.rows, 8, UINT64_MAX, "rows trained is negative", "rows trained -1");
	expect_field(buf, len, l.rows + 8, 8, (uint64_t) 1 << 63, "rows skipped is negative", "rows skipped -2^63");
	expect_field(buf, len, l.secs, 8, f64_bits(NAN), "bad training time", "training seconds NaN");
	expect_field(buf, len, l.secs, 8, f64_bits(-1.0), "bad training time", "training seconds -1");
	expect_field(buf, len, l.epochs, 4, E + 1, "parameters", "one epoch more than stored");
	expect_field(buf, len, l.epochs, 4, E - 1, "parameters", "one epoch fewer than stored");
	expect_field(buf, len, l.epochs, 4, 20000, "20000 epochs", "20000 epochs");
	expect_field(buf, len, l.epochs, 4, 0xFFFFFFFF, "epochs", "2^32-1 epochs");
	expect_field(buf, len, l.nparams, 8, P + 1, "parameters stored but its layers need", "one parameter more");
	expect_field(buf, len, l.nparams, 8, P - 1, "parameters stored but its layers need", "one parameter fewer");
	expect_field(buf, len, l.nparams, 8, UINT64_MAX / 2, "parameters stored but its layers need", "2^63 parameters");
	T_OK(counts.live == 0, "nothing leaked (%ld live)", counts.live);
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
