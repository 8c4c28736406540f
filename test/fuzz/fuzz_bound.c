/*
 * fuzz_bound.c: libFuzzer harness of the resource bound (nn_net_bound) and
 * of the forward and backward passes it sizes.
 *
 * From the input comes a network: an input shape (1..64 each side, 1..8
 * channels; small sizes more likely), classes (2..16), a batch (1..16),
 * training on or off, and a layer spec, either the input's text or built
 * from layer picks (so that most inputs give a net that builds). When the
 * net builds and its bound holds with at most 64 MB of working memory (and
 * of parameters), nn_work_alloc runs through a counting allocator, whose
 * total must be exactly the bound's work_bytes; then a forward pass (and,
 * when training, the loss and a backward pass) runs on zero pixels with
 * zero parameters in exact-size buffers, so any read or write outside a
 * buffer is an ASan report and any overflow a UBSan one. With zero
 * parameters every logit must come out 0 and the loss must be
 * B * log(classes). Flags also make the matrix products tile finely and
 * make the host ask the core to stop after some polls, so the tiled and
 * the interrupted paths run under the sanitizers too.
 *
 * Input layout: flags (bit 0 train, bit 1 text spec, bit 2 fine tiles,
 * bit 3 interrupt), h, w, c, classes, batch, a tile/interrupt parameter,
 * then the spec text or 4-byte layer picks (kind, then three arguments).
 */
#include <math.h>

#include <cblas.h>
#include <sanitizer/asan_interface.h>

#include "fuzz.h"
#include "nn.h"

#define HEADER 7
#define MAX_WORK ((uint64_t) 64 << 20)

/*
 * The counting allocator hands out blocks of one arena, reused by every
 * run, instead of malloc: working buffers of tens of MB would otherwise
 * cost an mmap, page faults and an munmap each time, most of a run. ASan
 * still sees every block's exact end: the arena is poisoned, each block
 * is unpoisoned for exactly its size behind a poisoned redzone of 4 kB,
 * and poisoned again when freed (a later access is a use-after-poison).
 */
#define ARENA_REDZONE 4096
#define ARENA_BLOCKS (4 * NN_MAX_LAYERS + 8)
#define ARENA_BYTES (MAX_WORK + (uint64_t) ARENA_BLOCKS * (ARENA_REDZONE + 64) + ARENA_REDZONE)

/* what the counting allocator has handed out */
typedef struct count_ctx
{
	uint64_t	total;			/* bytes ever asked for */
	long		live;			/* blocks not yet freed */
	uint8_t    *arena;			/* ARENA_BYTES, reused */
	size_t		used;			/* bump offset into the arena */
	void	   *block[ARENA_BLOCKS];	/* live blocks and their sizes */
	size_t		size[ARENA_BLOCKS];
	int			nblocks;
	size_t	   *dirty;			/* how far into the arena blocks were unpoisoned */
} count_ctx;

/*
 * Start a run: an empty, fully poisoned arena (made once; then only what
 * the last run used is poisoned again, since poisoning writes the shadow).
 */
static void
arena_reset(count_ctx *c)
{
	static uint8_t *arena;
	static size_t dirty = ARENA_BYTES;

	if (arena == NULL && (arena = malloc(ARENA_BYTES)) == NULL)
		abort();
	ASAN_POISON_MEMORY_REGION(arena, dirty);
	memset(c, 0, sizeof(*c));
	c->arena = arena;
	c->dirty = &dirty;
	dirty = 0;
}

/* exactly size bytes from the arena, behind a redzone, counted */
static void *
count_alloc(void *ctx, size_t size)
{
	count_ctx  *c = ctx;
	size_t		at = ((c->used + ARENA_REDZONE) + 63) & ~(size_t) 63;
	void	   *p;

	FUZZ_CHECK(c->nblocks < ARENA_BLOCKS, "more than %d working buffers", ARENA_BLOCKS);
	if (at + size + ARENA_REDZONE > ARENA_BYTES)
		return NULL;			/* the bound said at most MAX_WORK: cannot happen */
	p = c->arena + at;
	ASAN_UNPOISON_MEMORY_REGION(p, size);
	c->used = at + size;
	if (c->used > *c->dirty)
		*c->dirty = c->used;
	c->block[c->nblocks] = p;
	c->size[c->nblocks++] = size;
	c->total += size;
	c->live++;
	return p;
}

/* free: poison the block again, counted */
static void
count_free(void *ctx, void *ptr)
{
	count_ctx  *c = ctx;

	if (ptr == NULL)
		return;
	for (int i = 0; i < c->nblocks; i++)
		if (c->block[i] == ptr)
		{
			ASAN_POISON_MEMORY_REGION(ptr, c->size[i]);
			c->block[i] = NULL;
			c->live--;
			return;
		}
	FUZZ_CHECK(0, "free of a pointer the allocator never gave out");
}

/* polls left before the fake host asks to stop; < 0: never */
static int	polls_left = -1;
static int	stopped;

/* the fake host's interrupt check: sticky once it has said stop */
static int
fuzz_poll(void)
{
	if (stopped)
		return 1;
	if (polls_left >= 0 && polls_left-- == 0)
		stopped = 1;
	return stopped;
}

/* Append one layer picked by 4 bytes to spec (at *n of len). */
static void
pick_layer(char *spec, size_t len, size_t *n, const uint8_t *p)
{
	int			a = p[1],
				b = p[2],
				c = p[3];
	int			k;

	switch (p[0] % 6)
	{
		case 0:
			k = 1 + b % 8;
			if ((c & 4) && k % 2 == 1)
				*n += snprintf(spec + *n, len - *n, "conv(%d,%d,1,same) ", 1 + a % 16, k);
			else
				*n += snprintf(spec + *n, len - *n, "conv(%d,%d,%d%s) ", 1 + a % 16, k, 1 + (c & 3),
							   (c & 8) ? ",valid" : "");
			break;
		case 1:
			*n += snprintf(spec + *n, len - *n, "maxpool(%d,%d) ", 1 + a % 8, 1 + b % 8);
			break;
		case 2:
			*n += snprintf(spec + *n, len - *n, "relu ");
			break;
		case 3:
			*n += snprintf(spec + *n, len - *n, "dropout(%g) ", a / 256.0);
			break;
		case 4:
			*n += snprintf(spec + *n, len - *n, "flatten ");
			break;
		default:
			*n += snprintf(spec + *n, len - *n, "dense(%d) ", 1 + a % 64);
			break;
	}
}

/* The spec of the input: its text, or its picks ending in dense(classes). */
static char *
make_spec(const uint8_t *data, size_t size, int text, int classes)
{
	char	   *spec;
	size_t		n = 0,
				len = NN_MAX_SPEC + 64;

	if (text)
		return fuzz_cstring(data, size);
	spec = malloc(len);
	if (spec == NULL)
		abort();
	for (size_t i = 0; i + 4 <= size && i / 4 < NN_MAX_LAYERS - 2; i += 4)
		pick_layer(spec, len, &n, data + i);
	snprintf(spec + n, len - n, "dense(%d)", classes);
	return spec;
}

/*
 * n zeroed floats for the parameters (which = 0) or the gradients (1):
 * like the arena, two static buffers reused by every run with everything
 * past n floats poisoned, so ASan sees the exact end without a fresh
 * mmap of up to 64 MB per run (whose shadow pages stay resident and
 * grow the fuzzer's RSS past -rss_limit_mb over a long run).
 */
static float *
zeros(int which, size_t n)
{
	static uint8_t *buf[2];
	static size_t open[2];		/* bytes unpoisoned now */
	size_t		cap = MAX_WORK + ARENA_REDZONE;
	size_t		bytes = n * sizeof(float);

	FUZZ_CHECK(bytes <= MAX_WORK, "%zu parameters past the 64 MB checked before", n);
	if (buf[which] == NULL)
	{
		if ((buf[which] = malloc(cap)) == NULL)
			abort();
		ASAN_POISON_MEMORY_REGION(buf[which], cap);
	}
	/* move the poisoned boundary from the last run's end to this one's */
	if (bytes > open[which])
		ASAN_UNPOISON_MEMORY_REGION(buf[which] + open[which], bytes - open[which]);
	else if (bytes < open[which])
		ASAN_POISON_MEMORY_REGION(buf[which] + bytes, open[which] - bytes);
	open[which] = bytes;
	memset(buf[which], 0, bytes);
	return (float *) buf[which];
}

/* Build, bound, allocate and run one network; check what each step promises. */
static void
run_net(const char *spec, nn_shape in, int classes, int B, int train)
{
	nn_net		net;
	nn_status	st;
	nn_bound	b,
				one;
	nn_work		w;
	count_ctx	counts;
	nn_allocator counting = {count_alloc, count_free, &counts};
	float	   *params,
			   *buffers,
			   *grads;
	int32_t		labels[16];
	nn_rng		rng;
	int			rc;

	memset(&st, 0, sizeof(st));
	rc = nn_net_build(&net, spec, in, classes, &st);
	if (rc != NN_OK)
	{
		fuzz_check_failure(rc, &st);
		return;
	}
	/* the per-image bound kept by nn_net_build is the bound of one image */
	memset(&st, 0, sizeof(st));
	FUZZ_CHECK(nn_net_bound(&net, 1, 0, &one, &st) == NN_OK, "a net that builds has no bound of one image: %s", st.msg);
	FUZZ_CHECK(memcmp(&one, &net.per_image, sizeof(one)) == 0, "net->per_image differs from the bound of one image");

	memset(&st, 0, sizeof(st));
	rc = nn_net_bound(&net, B, train, &b, &st);
	if (rc != NN_OK)
	{
		fuzz_check_failure(rc, &st);
		FUZZ_CHECK(rc == NN_ERR_LIMIT, "nn_net_bound failed with %d, not NN_ERR_LIMIT: %s", rc, st.msg);
		return;
	}
	FUZZ_CHECK(b.batch == B && b.train == train, "bound of batch %d train %d says %d %d", B, train, b.batch, b.train);
	FUZZ_CHECK(b.work_bytes == nn_work_bytes(&net, B, train), "bound %llu bytes, nn_work_bytes %zu",
			   (unsigned long long) b.work_bytes, nn_work_bytes(&net, B, train));
	FUZZ_CHECK(b.macs >= one.macs && b.work_bytes >= one.work_bytes, "a batch of %d costs less than one image", B);
	/* runs that would take more memory than that are for the bound alone (parameters too: up to 1 GB) */
	if (b.work_bytes > MAX_WORK || b.params_bytes > MAX_WORK)
		return;

	arena_reset(&counts);
	memset(&st, 0, sizeof(st));
	rc = nn_work_alloc(&w, &net, B, train, &counting, &st);
	FUZZ_CHECK(rc == NN_OK, "nn_work_alloc of %llu bytes failed: %s", (unsigned long long) b.work_bytes, st.msg);
	FUZZ_CHECK(counts.total == b.work_bytes && w.bytes == b.work_bytes,
			   "the allocator was asked for %llu bytes (nn_work says %zu), the bound said %llu",
			   (unsigned long long) counts.total, w.bytes, (unsigned long long) b.work_bytes);

	params = zeros(0, net.nparams);
	/* batch norm's running statistics: zero, like the parameters */
	grads = zeros(1, net.nparams);
	buffers = calloc(net.nbuffers ? net.nbuffers : 1, sizeof(float));
	FUZZ_CHECK(buffers != NULL, "no memory for %zu buffer floats", net.nbuffers);
	nn_rng_seed(&rng, 7);
	rc = nn_net_forward(&net, params, buffers, &w, B, train, train ? &rng : NULL, NULL);
	FUZZ_CHECK(rc == NN_OK || (rc == NN_ERR_CANCELLED && stopped), "forward returned %d", rc);
	if (rc == NN_OK)
	{
		const float *logits = w.act[net.nlayers];

		for (size_t i = 0; i < (size_t) B * classes; i++)
			FUZZ_CHECK(logits[i] == 0.0f, "logit %zu is %g with zero parameters", i, (double) logits[i]);
	}
	if (rc == NN_OK && train)
	{
		int64_t		correct = 0,
					zeros_in_labels = 0;
		double		loss,
					want;

		for (int i = 0; i < B; i++)
		{
			labels[i] = i % classes;
			zeros_in_labels += labels[i] == 0;
		}
		loss = nn_net_loss(&net, &w, labels, B, &correct, NULL);
		want = B * log((double) classes);
		FUZZ_CHECK(fabs(loss - want) <= 1e-4 * want, "loss %g of zero logits, not %g", loss, want);
		FUZZ_CHECK(correct == zeros_in_labels, "%lld correct of all-zero logits, not %lld",
				   (long long) correct, (long long) zeros_in_labels);
		rc = nn_net_backward(&net, params, grads, &w, B, 1.0f / B, NULL);
		FUZZ_CHECK(rc == NN_OK || (rc == NN_ERR_CANCELLED && stopped), "backward returned %d", rc);
		for (size_t i = 0; rc == NN_OK && i < net.nparams; i++)
			FUZZ_CHECK(isfinite(grads[i]), "gradient %zu is %g", i, (double) grads[i]);
	}
	free(buffers);
	nn_work_free(&w, &counting);
	FUZZ_CHECK(counts.live == 0, "%ld working buffers not freed", counts.live);
}

/*
 * A byte as 1..n, small values more likely (quadratic), so that most runs
 * are cheap while 0xff still reaches n: the fuzzer gets through many more
 * networks per second than with sizes spread evenly up to 64x64x8 x 16.
 */
static int
scaled(uint8_t b, int n)
{
	return 1 + (int) (((uint32_t) b * b * (uint32_t) n) / 65536u);
}

int			LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__asan_default_options(void);

/*
 * ASan's defaults for this harness (ASAN_OPTIONS still overrides them): a
 * 32 MB quarantine instead of 256 MB, which with its shadow held the peak
 * RSS at 1.5 GB, near -rss_limit_mb. The working buffers do not rely on
 * it: they live in the arena, poisoned when freed.
 */
const char *
__asan_default_options(void)
{
	return "quarantine_size_mb=32";
}

/* Once: single-threaded OpenBLAS (its threads only spin for products this small). */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	openblas_set_num_threads(1);
	return 0;
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		hdr[HEADER] = {0};
	nn_shape	in;
	int			classes,
				B,
				flags;
	char	   *spec;
	uint64_t	saved_tiles = nn_gemm_tile_macs;

	memcpy(hdr, data, size < HEADER ? size : HEADER);
	flags = hdr[0];
	in.h = scaled(hdr[1], 64);
	in.w = scaled(hdr[2], 64);
	in.c = scaled(hdr[3], 8);
	classes = 2 + hdr[4] % 15;
	B = scaled(hdr[5], 16);
	spec = make_spec(data + (size < HEADER ? size : HEADER), size < HEADER ? 0 : size - HEADER,
					 flags & 2, classes);

	if (flags & 4)
		nn_gemm_tile_macs = 1 + (uint64_t) hdr[6] * 37;
	stopped = 0;
	polls_left = (flags & 8) ? hdr[6] : -1;
	nn_interrupt_poll = (flags & 8) ? fuzz_poll : NULL;

	run_net(spec, in, classes, B, flags & 1);

	nn_interrupt_poll = NULL;
	nn_gemm_tile_macs = saved_tiles;
	free(spec);
	return 0;
}
