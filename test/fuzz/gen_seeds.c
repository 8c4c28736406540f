/*
 * gen_seeds.c: writes the binary seed inputs of the fuzzers from the core
 * itself, so that they stay valid whenever the formats change.
 *
 *   gen_seeds DIR    writes DIR/model/, DIR/rows/ and DIR/idx/
 *
 * Models are written with nn_model_write() for a small architecture (a few
 * hundred parameters, so a blob is about a kilobyte) and read back with
 * nn_model_read() before they are kept; row stores with nn_rows_serialize();
 * IDX pairs in the framing fuzz_idx.c expects (see there). The format-1
 * model of test/fixtures (written by the code of that time) is copied in
 * as a model seed, since no writer makes format 1 any more. The text seeds
 * (layer specs, key=value options) are plain files kept in corpus/ by hand.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "model.h"
#include "train.h"
#include "tune.h"

static const char *outdir;

/* Print an error and exit: this is a build tool, not the core. */
static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "gen_seeds: %s: %s\n", what, detail);
	exit(1);
}

/* Create DIR/sub if it does not exist. */
static void
make_dir(const char *sub)
{
	char		path[1024];

	snprintf(path, sizeof(path), "%s/%s", outdir, sub);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die(path, strerror(errno));
}

/* Write len bytes to DIR/sub/name. */
static void
write_seed(const char *sub, const char *name, const void *data, size_t len)
{
	char		path[1024];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
	f = fopen(path, "wb");
	if (f == NULL)
		die(path, strerror(errno));
	if (len > 0 && fwrite(data, 1, len, f) != len)
		die(path, "short write");
	if (fclose(f) != 0)
		die(path, strerror(errno));
}

/* Build, serialise, re-read and keep one model blob. */
static void
model_seed(const char *name, int kind, const char *spec, nn_shape in, int classes,
		   int nepochs, int norm, int dtype, int tuned, uint64_t seed)
{
	nn_model	m,
				back;
	nn_status	st;
	nn_rng		rng;
	uint8_t    *buf;
	size_t		len;

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	if (nn_net_build(&m.net, spec, in, classes, &st) != NN_OK)
		die(spec, st.msg);
	m.norm.mode = norm;
	m.norm.dtype = dtype;
	m.norm.mean = norm == NN_NORM_ZSCORE ? 0.1307f : 0.0f;
	m.norm.std = norm == NN_NORM_ZSCORE ? 0.3081f : 0.0f;
	nn_options_default(&m.options);
	snprintf(m.options.layers, sizeof(m.options.layers), "%s", spec);
	m.options.input = in;
	m.options.classes = classes;
	m.options.epochs = nepochs > 0 ? nepochs : 1;
	m.options.batch_size = 8;
	m.options.normalize = norm;
	m.options.seed = seed;
	m.options.record_times = nepochs % 2;
	m.rows_trained = kind == NN_BLOB_MODEL ? 100 : 0;
	m.rows_skipped = kind == NN_BLOB_MODEL ? 3 : 0;
	m.grad_rows = kind == NN_BLOB_GRADIENTS ? 16 : 0;
	m.train_seconds = kind == NN_BLOB_MODEL ? 1.5 : 0.0;
	m.nepochs = nepochs;
	m.history = calloc(nepochs > 0 ? nepochs : 1, sizeof(nn_epoch));
	m.params = malloc(m.net.nparams * sizeof(float));
	if (m.history == NULL || m.params == NULL)
		die(name, "out of memory");
	for (int i = 0; i < nepochs; i++)
	{
		m.history[i].loss = 2.0f / (i + 1);
		m.history[i].train_acc = 0.5f + 0.1f * i;
		m.history[i].val_acc = i % 2 ? 0.6f : NAN;
		m.history[i].seconds = 0.25f * (i + 1);
	}
	nn_rng_seed(&rng, seed);
	nn_net_init_params(&m.net, m.params, NULL, &rng);
	if (tuned)
	{
		/* the record of a two-trial halving search over learning_rate */
		static nn_trial trials[2];
		static nn_tuning t;

		memset(&t, 0, sizeof(t));
		t.strategy = NN_TUNE_HALVING;
		t.metric = NN_METRIC_VAL_LOSS;
		t.eta = 2;
		t.min_epochs = 1;
		t.nkeys = 1;
		snprintf(t.keys[0], sizeof(t.keys[0]), "learning_rate");
		t.ntrials = 2;
		t.best = 1;
		t.trials = trials;
		for (int i = 0; i < 2; i++)
		{
			trials[i].opt = m.options;
			trials[i].opt.learning_rate = 0.001f * (i + 1);
			trials[i].val_acc = 0.5f + 0.1f * i;
			trials[i].val_loss = 1.0f - 0.2f * i;
			trials[i].epochs = i + 1;
		}
		m.tuning = &t;
	}
	if (tuned > 1)
	{
		/* and the record of two rounds of train_distributed over three shards */
		static nn_round round[2] = {{100, 3, 0.5f, 1.0f}, {100, 2, NAN, 0.0f}};
		static nn_rounds rounds = {3, 1, 2, round};

		m.rounds = &rounds;
	}

	len = nn_model_size(&m);
	buf = malloc(len);
	if (buf == NULL)
		die(name, "out of memory");
	nn_model_write(&m, buf);
	if (nn_model_read(&back, buf, len, &nn_malloc_allocator, &st) != NN_OK)
		die(name, st.msg);
	nn_model_free(&back, &nn_malloc_allocator);
	write_seed("model", name, buf, len);
	free(buf);
	free(m.history);
	free(m.params);
}

/* Copy a blob written by the format-1 code (test/fixtures, read from the repository root). */
static void
copy_seed(const char *name, const char *path)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t		buf[1 << 16];
	size_t		len;
	nn_model	back;
	nn_status	st;

	if (f == NULL)
		die(path, strerror(errno));
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (nn_model_read(&back, buf, len, &nn_malloc_allocator, &st) != NN_OK)
		die(path, st.msg);
	nn_model_free(&back, &nn_malloc_allocator);
	write_seed("model", name, buf, len);
}

/* Serialise a row store of n rows of rb bytes (dtype float32: rb / 4 floats). */
static void
rows_seed(const char *name, int32_t rb, int dtype, int n, int64_t skipped)
{
	nn_rows		r;
	nn_status	st;
	uint8_t		px[64];
	uint8_t    *buf;
	size_t		len;

	nn_rows_init(&r, rb);
	r.dtype = dtype;
	for (int i = 0; i < n; i++)
	{
		for (int j = 0; j < rb; j++)
			px[j] = (uint8_t) (i * 37 + j * 11);
		for (int j = 0; dtype == NN_DTYPE_FLOAT32 && j + 4 <= rb; j += 4)
		{
			float		v = (float) (i * 3 - j) / 7.0f;

			memcpy(px + j, &v, 4);
		}
		if (nn_rows_append(&r, px, i % 10, &nn_malloc_allocator, &st) != NN_OK)
			die(name, st.msg);
	}
	r.skipped = skipped;
	len = nn_rows_serial_size(&r);
	buf = malloc(len);
	if (buf == NULL)
		die(name, "out of memory");
	nn_rows_serialize(&r, buf);
	write_seed("rows", name, buf, len);
	free(buf);
	nn_rows_free(&r, &nn_malloc_allocator);
}

/* store v big-endian at p */
static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

/* gzip src into dst (capacity cap); returns the compressed length */
static size_t
gzip_bytes(uint8_t *dst, size_t cap, const uint8_t *src, size_t len)
{
	z_stream	z;
	size_t		out;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		die("gzip", "deflateInit2 failed");
	z.next_in = (Bytef *) src;
	z.avail_in = (uInt) len;
	z.next_out = dst;
	z.avail_out = (uInt) cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		die("gzip", "deflate did not finish");
	out = z.total_out;
	deflateEnd(&z);
	return out;
}

/*
 * One IDX pair in fuzz_idx.c's framing: u16 little-endian images length,
 * a flags byte, the images file, the labels file. c == 0 writes the 3-dim
 * magic. gz compresses both files (the framing's flags stay 0: the bytes
 * are the files as they lie on disk).
 */
static void
idx_seed(const char *name, int n, int h, int w, int c, int rows, int gz)
{
	uint8_t		img[2048],
				lab[256],
				zimg[4096],
				zlab[1024],
				out[8192];
	size_t		ni = 0,
				nl = 0,
				pos = 0;

	put_be32(img, c ? 0x804 : 0x803);
	put_be32(img + 4, (uint32_t) n);
	put_be32(img + 8, (uint32_t) h);
	put_be32(img + 12, (uint32_t) w);
	ni = 16;
	if (c)
	{
		put_be32(img + 16, (uint32_t) c);
		ni = 20;
	}
	for (int i = 0; i < rows * h * w * (c ? c : 1); i++)
		img[ni++] = (uint8_t) (i * 7);
	put_be32(lab, 0x801);
	put_be32(lab + 4, (uint32_t) n);
	nl = 8;
	for (int i = 0; i < rows; i++)
		lab[nl++] = (uint8_t) (i % 10);
	if (gz)
	{
		ni = gzip_bytes(zimg, sizeof(zimg), img, ni);
		nl = gzip_bytes(zlab, sizeof(zlab), lab, nl);
	}
	out[pos++] = (uint8_t) ni;
	out[pos++] = (uint8_t) (ni >> 8);
	out[pos++] = 0;
	memcpy(out + pos, gz ? zimg : img, ni);
	pos += ni;
	memcpy(out + pos, gz ? zlab : lab, nl);
	pos += nl;
	write_seed("idx", name, out, pos);
}

/* Write every binary seed. */
int
main(int argc, char **argv)
{
	nn_shape	mnistish = {8, 8, 1};
	nn_shape	rgb = {6, 6, 3};

	if (argc != 2)
	{
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
	outdir = argv[1];
	make_dir("model");
	make_dir("rows");
	make_dir("idx");

	model_seed("model-small.bin", NN_BLOB_MODEL,
			   "conv(2,3) relu maxpool(2) flatten dense(3)", mnistish, 3, 2,
			   NN_NORM_MINMAX, NN_DTYPE_UINT8, 0, 7);
	model_seed("model-zscore-dropout.bin", NN_BLOB_MODEL,
			   "conv(2,3,1,same) relu maxpool(2,2) dropout(0.25) dense(4) relu dense(2)",
			   rgb, 2, 3, NN_NORM_ZSCORE, NN_DTYPE_UINT8, 0, 11);
	model_seed("model-float32.bin", NN_BLOB_MODEL,
			   "conv(2,3) relu dense(3)", mnistish, 3, 1, NN_NORM_ZSCORE, NN_DTYPE_FLOAT32, 0, 5);
	model_seed("model-tuned.bin", NN_BLOB_MODEL,
			   "conv(2,3) relu dense(3)", mnistish, 3, 2, NN_NORM_MINMAX, NN_DTYPE_UINT8, 1, 13);
	model_seed("model-distributed.bin", NN_BLOB_MODEL,
			   "conv(2,3) relu dense(3)", mnistish, 3, 2, NN_NORM_MINMAX, NN_DTYPE_UINT8, 2, 17);
	model_seed("gradients-small.bin", NN_BLOB_GRADIENTS,
			   "conv(1,3,2) relu dense(2)", mnistish, 2, 0, NN_NORM_NONE, NN_DTYPE_UINT8, 0, 3);
	copy_seed("model-format1.bin", "test/fixtures/model_v1.bin");

	rows_seed("rows-empty.bin", 16, NN_DTYPE_UINT8, 0, 0);
	rows_seed("rows-three.bin", 16, NN_DTYPE_UINT8, 3, 2);
	rows_seed("rows-tiny.bin", 1, NN_DTYPE_UINT8, 5, 0);
	rows_seed("rows-float32.bin", 16, NN_DTYPE_FLOAT32, 4, 1);

	idx_seed("idx3-raw.bin", 3, 4, 4, 0, 3, 0);
	idx_seed("idx4-raw.bin", 2, 2, 3, 3, 2, 0);
	idx_seed("idx3-gzip.bin", 4, 3, 3, 0, 4, 1);
	idx_seed("idx3-short.bin", 5, 4, 4, 0, 2, 0);
	idx_seed("idx3-empty.bin", 0, 28, 28, 0, 0, 0);
	return 0;
}
