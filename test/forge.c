/*
 * forge.c: writes checksum-valid model blobs with hostile shapes, for the
 * hostile-models pgTAP matrix (test/pgtap/hostile_models.sql).
 *
 *   forge DIR      writes DIR/<case>.bin for every case below and
 *                  DIR/manifest.txt, and prints each case's figures
 *
 * Anyone who may call predict() can hand it any bytea, and the model
 * checksum is public, so a forged blob passes every field check of the
 * reader. Each case here is made the way an attacker would make it: the
 * hostile spec and input are built with nn_net_build, the parameters are
 * zero or small finite numbers, and the blob is written by the core's own
 * nn_model_write (then read back with nn_model_read, which must accept it:
 * the point is that the reader cannot refuse them, the budgets must).
 * The blobs are small (the largest is a few tens of MB, mostly zeros), so
 * nothing is committed: scripts/test.sh generates them at test time.
 *
 * The figures printed and written to the manifest come from nn_net_bound
 * for one image, inference and training: parameter bytes, working bytes,
 * multiply-adds (pooling compares included) and the largest buffer.
 *
 * A tool, not the core: it prints errors to stderr and exits non-zero.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"

/* one forged blob */
typedef struct forge_case
{
	const char *name;
	int			kind;			/* NN_BLOB_MODEL or NN_BLOB_GRADIENTS */
	const char *spec;			/* built with nn_net_build */
	nn_shape	input;
	int32_t		classes;
	int			small_params;	/* small finite parameters instead of zeros */
	int			long_spec;		/* store a non-canonical spec padded to NN_MAX_SPEC - 1 bytes */
	nn_norm		norm;
	const char *expected;		/* what the SQL functions must do with it */
} forge_case;

#define MINMAX {NN_NORM_MINMAX, 0.0f, 1.0f}

/* 27 layers of the largest spec, then 5 more: see largest_spec_text() */
#define LARGEST_REPEAT "conv(8,3,1,same) relu dropout(1.17549435e-38) "
#define LARGEST_SPEC \
	LARGEST_REPEAT LARGEST_REPEAT LARGEST_REPEAT LARGEST_REPEAT LARGEST_REPEAT \
	LARGEST_REPEAT LARGEST_REPEAT LARGEST_REPEAT LARGEST_REPEAT \
	"maxpool(2,1) conv(4,3,2) dropout(0.999) flatten dense(10)"

static const forge_case cases[] = {
	{"maxpool_overflow", NN_BLOB_MODEL, "conv(129,1) maxpool(64) flatten dense(2)",
		{4096, 4096, 1}, 2, 0, 0, MINMAX,
	"54000: the max-pool input of the issue (129 planes of 4096x4096, more than 2^31 floats) is over the inference budget"},
	{"huge_activations", NN_BLOB_MODEL, "conv(4096,1) maxpool(64) maxpool(64) dense(2)",
		{4096, 4096, 1}, 2, 0, 0, MINMAX,
	"54000: a 64 kB model whose first activation is 4096 planes of 4096x4096 (256 GiB)"},
	{"huge_arithmetic", NN_BLOB_MODEL, "conv(1024,1) maxpool(64,1) maxpool(64) dense(2)",
		{127, 127, 1}, 2, 0, 0, MINMAX,
	"57014: 17 G pooling compares (over 10 s) in under 100 MB: stopped by statement_timeout (compute_gradients: 54000)"},
	{"largest_spec", NN_BLOB_MODEL, LARGEST_SPEC,
		{32, 32, 3}, 10, 1, 1, MINMAX,
	"works: 32 layers, a 1023-byte stored spec"},
	{"conv_same63", NN_BLOB_MODEL, "conv(4,63,1,same) conv(8,64,64) dense(2)",
		{64, 64, 1}, 2, 1, 0, MINMAX,
	"works: a 63x63 kernel with 31 pixels of padding per side, then one 64x64 window of stride 64"},
	{"conv_stride64", NN_BLOB_MODEL, "conv(16,64,64) dense(2)",
		{4096, 4096, 1}, 2, 1, 0, MINMAX,
	"works: 64x64 kernels of stride 64 over 4096x4096 (a 64 MB im2col buffer); compute_gradients: 54000"},
	{"maxpool_window", NN_BLOB_MODEL, "maxpool(64) dense(2)",
		{64, 64, 1024}, 2, 1, 0, MINMAX,
	"works: one pooling window as large as the 64x64 input, 1024 channels"},
	{"dense_4096", NN_BLOB_MODEL, "dense(4096) relu dense(2)",
		{32, 32, 1}, 2, 1, 0, MINMAX,
	"works: dense(4096), 4.2 M parameters"},
	{"classes_4096", NN_BLOB_MODEL, "dense(4096)",
		{1, 1, 1}, 4096, 1, 0, MINMAX,
	"works: 4096 classes; evaluate (a 4096x4096 confusion matrix) overruns the timeout: 57014"},
	{"dropout_0999", NN_BLOB_MODEL, "conv(4,3) relu dropout(0.999) dense(2)",
		{28, 28, 1}, 2, 1, 0, MINMAX,
	"works: dropout(0.999) (a x1000 mask in training)"},
	{"flatten_wide", NN_BLOB_MODEL, "flatten dense(2)",
		{1024, 1024, 2}, 2, 1, 0, MINMAX,
	"works: an explicit flatten of 1024x1024x2 into 2 M values"},
	{"zscore_denormal", NN_BLOB_MODEL, "conv(4,3) relu dense(2)",
		{8, 8, 1}, 2, 1, 0, {NN_NORM_ZSCORE, 0.0f, 1.4e-45f},
	"works: zscore with a denormal std makes every input infinite (NaN logits); evaluate: 22P02, training: 22000 (diverged)"},
	{"input_4096_cubed", NN_BLOB_MODEL, "maxpool(64) maxpool(64) dense(2)",
		{4096, 4096, 4096}, 2, 0, 0, MINMAX,
	"54000: an input of 4096x4096x4096 (64 GiB of pixels, more than a bytea can hold); training: 22000 (pixels)"},
	{"moderate", NN_BLOB_MODEL, "conv(72,1) maxpool(64) dense(2)",
		{1024, 1024, 1}, 2, 1, 0, MINMAX,
	"54000 within the default 256 MB budget (it needs about 310 MB); works when a superuser lifts the limit"},
	{"gradient", NN_BLOB_GRADIENTS, "conv(129,1) maxpool(64) flatten dense(2)",
		{4096, 4096, 1}, 2, 0, 0, MINMAX,
	"22023 where a model is expected; update_weights of maxpool_overflow with it works"},
};

#define NCASES ((int) (sizeof(cases) / sizeof(cases[0])))

/* Print a message to stderr and exit 1. */
static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "forge: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* mkdir -p: create dir and its missing parents */
static void
make_dir(const char *dir)
{
	char		path[1024];

	if (strlen(dir) >= sizeof(path))
		die("directory name too long: \"%s\"", dir);
	strcpy(path, dir);
	for (char *p = path + 1; *p; p++)
	{
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			die("could not create directory \"%s\": %s", path, strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("could not create directory \"%s\": %s", path, strerror(errno));
}

/* Write len bytes to path. */
static void
write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE	   *f = fopen(path, "wb");

	if (f == NULL)
		die("could not create \"%s\": %s", path, strerror(errno));
	if ((len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		die("could not write \"%s\": %s", path, strerror(errno));
}

/*
 * The spec of net as the longest text that still reads as it: upper-case
 * names, " , " between layers, and spaces inside the parentheses until the
 * text is NN_MAX_SPEC - 1 bytes long.
 */
static void
largest_spec_text(const nn_net *net, char *buf, size_t len)
{
	char		canon[NN_MAX_SPEC];
	size_t		n = 0,
				pad;
	char	   *tok;
	char	   *save = NULL;
	int			i = 0;

	snprintf(canon, sizeof(canon), "%s", net->spec);
	for (tok = strtok_r(canon, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++)
	{
		if (i > 0)
			n += (size_t) snprintf(buf + n, len - n, "%s", i % 2 ? " , " : "\t");
		for (const char *c = tok; *c && n + 1 < len; c++)
			buf[n++] = (*c >= 'a' && *c <= 'z') ? (char) (*c - 'a' + 'A') : *c;
		buf[n] = '\0';
	}
	/* spread the padding over the opening parentheses */
	pad = (len - 1) - n;
	while (pad > 0)
	{
		char		grown[NN_MAX_SPEC];
		size_t		g = 0;

		for (size_t k = 0; k < n && g + 1 < len; k++)
		{
			grown[g++] = buf[k];
			if (buf[k] == '(' && pad > 0 && g + 1 < len)
			{
				grown[g++] = ' ';
				pad--;
			}
		}
		grown[g] = '\0';
		memcpy(buf, grown, g + 1);
		n = g;
	}
}

/* Small finite parameters, the same on every run. */
static void
fill_params(float *p, size_t n, int small)
{
	for (size_t i = 0; i < n; i++)
		p[i] = small ? (float) ((int) ((i * 2654435761u) % 2001u) - 1000) * 1e-6f : 0.0f;
}

/* Bytes as text: "123 B", "12.3 MB", "4.5 GB". */
static const char *
human(uint64_t b, char *buf, size_t len)
{
	if (b < 10000)
		snprintf(buf, len, "%llu B", (unsigned long long) b);
	else if (b < 10000000)
		snprintf(buf, len, "%.1f kB", b / 1e3);
	else if (b < 10000000000ULL)
		snprintf(buf, len, "%.1f MB", b / 1e6);
	else
		snprintf(buf, len, "%.1f GB", b / 1e9);
	return buf;
}

/* Build, write and check one case; appends its manifest line. */
static uint64_t
forge_one(const forge_case *fc, const char *dir, FILE *manifest)
{
	nn_model	m;
	nn_model	back;
	nn_status	st = {0};
	nn_bound	inf,
				train;
	char		path[1200];
	char		spec[NN_MAX_SPEC];
	uint8_t    *blob;
	size_t		len;
	char		h1[32],
				h2[32],
				h3[32];

	memset(&m, 0, sizeof(m));
	if (nn_net_build(&m.net, fc->spec, fc->input, fc->classes, &st) != NN_OK)
		die("case %s: \"%s\" does not build: %s", fc->name, fc->spec, st.msg);
	if (nn_net_bound(&m.net, 1, 0, &inf, &st) != NN_OK)
		die("case %s: no inference bound: %s", fc->name, st.msg);
	if (nn_net_bound(&m.net, 1, 1, &train, &st) != NN_OK)
		die("case %s: no training bound: %s", fc->name, st.msg);
	snprintf(spec, sizeof(spec), "%s", m.net.spec);

	m.kind = fc->kind;
	m.norm = fc->norm;
	nn_options_default(&m.options);
	if (fc->kind == NN_BLOB_MODEL)
	{
		snprintf(m.options.layers, sizeof(m.options.layers), "%s", m.net.spec);
		m.options.input = fc->input;
		m.options.classes = fc->classes;
		m.options.epochs = 1;
		m.options.batch_size = 1;
		m.options.normalize = fc->norm.mode;
		m.options.record_times = 0;
	}
	else
		m.grad_rows = 1;
	m.params = malloc(m.net.nparams * sizeof(float) + 1);
	if (m.params == NULL)
		die("case %s: out of memory for %zu parameters", fc->name, m.net.nparams);
	fill_params(m.params, m.net.nparams, fc->small_params);
	if (fc->long_spec)
	{
		/* the stored text is read back with nn_net_build, so any text that builds the same net is valid */
		largest_spec_text(&m.net, m.net.spec, sizeof(m.net.spec));
		if (strlen(m.net.spec) != NN_MAX_SPEC - 1)
			die("case %s: the long spec has %zu bytes, not %d", fc->name, strlen(m.net.spec), NN_MAX_SPEC - 1);
	}

	len = nn_model_size(&m);
	blob = malloc(len);
	if (blob == NULL)
		die("case %s: out of memory for a blob of %zu bytes", fc->name, len);
	nn_model_write(&m, blob);
	snprintf(path, sizeof(path), "%s/%s.bin", dir, fc->name);
	write_file(path, blob, len);

	/* the reader must take it: every field is valid, only the shapes are hostile */
	if (nn_model_read(&back, blob, len, &nn_malloc_allocator, &st) != NN_OK)
		die("case %s: the forged blob does not read back: %s", fc->name, st.msg);
	if (back.net.nparams != m.net.nparams || strcmp(back.net.spec, spec) != 0)
		die("case %s: the blob reads back as another network (%s)", fc->name, back.net.spec);
	nn_model_free(&back, &nn_malloc_allocator);

	printf("%-17s %9s  params %9zu  one image: work %9s (train %9s), %.3g multiply-adds, largest buffer %llu floats\n",
		   fc->name, human(len, h1, sizeof(h1)), m.net.nparams,
		   human(inf.work_bytes, h2, sizeof(h2)), human(train.work_bytes, h3, sizeof(h3)),
		   (double) inf.macs, (unsigned long long) inf.largest);
	fprintf(manifest, "%s\t%s\t%dx%dx%d\t%d\t%zu\t%zu\t%llu\t%llu\t%llu\t%llu\t%s\t%s\n",
			fc->name, fc->kind == NN_BLOB_MODEL ? "model" : "gradients",
			fc->input.h, fc->input.w, fc->input.c, fc->classes, m.net.nparams, len,
			(unsigned long long) inf.work_bytes, (unsigned long long) train.work_bytes,
			(unsigned long long) inf.macs, (unsigned long long) inf.largest, spec, fc->expected);
	free(blob);
	free(m.params);
	return len;
}

/* forge DIR: every case into DIR, and the manifest. */
int
main(int argc, char **argv)
{
	char		path[1200];
	FILE	   *manifest;
	uint64_t	total = 0;
	char		h[32];

	if (argc != 2)
	{
		fprintf(stderr, "usage: forge DIR\n");
		return 2;
	}
	make_dir(argv[1]);
	snprintf(path, sizeof(path), "%s/manifest.txt", argv[1]);
	manifest = fopen(path, "w");
	if (manifest == NULL)
		die("could not create \"%s\": %s", path, strerror(errno));
	fprintf(manifest, "# forged blobs written by test/forge (test/forge.c); one line per blob, tab-separated:\n"
			"# name, kind, input, classes, parameters, blob bytes, inference work bytes of one image,\n"
			"# training work bytes of one image, multiply-adds (and pooling compares) of one image,\n"
			"# largest buffer (floats), canonical spec, expected outcome\n");
	for (int i = 0; i < NCASES; i++)
		total += forge_one(&cases[i], argv[1], manifest);
	if (fclose(manifest) != 0)
		die("could not write \"%s\": %s", path, strerror(errno));
	printf("forge: %d blobs, %s, in %s\n", NCASES, human(total, h, sizeof(h)), argv[1]);
	return 0;
}
