/*
 * common.c: status messages, the allocator shims, the seeded PRNG and the
 * clock. Everything else in the core builds on these.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"

/* Do the len bytes at s equal the lowercase word w, ignoring ASCII case? */
int
nn_word_is(const char *s, size_t len, const char *w)
{
	if (strlen(w) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (nn_ascii_lower(s[i]) != w[i])
			return 0;
	return 1;
}

/* Up to max bytes of s (len bytes) as printable ASCII into buf, "..." when cut. */
void
nn_quote(char *buf, size_t buflen, const char *s, size_t len, size_t max)
{
	size_t		n = 0,
				i;

	if (buflen == 0)
		return;
	for (i = 0; i < len && i < max && n + 1 < buflen; i++)
	{
		unsigned char c = (unsigned char) s[i];

		buf[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char) c : '?';
	}
	if (i < len && n + 4 < buflen)
	{
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
}

/* the host's interrupt check (nn.h); NULL: nothing ever interrupts */
int			(*nn_interrupt_poll) (void) = NULL;

/* Record an error code and message in st; returns the code. */
int
nn_fail(nn_status *st, nn_code code, const char *fmt,...)
{
	va_list		ap;

	if (st == NULL)
		return code;
	st->code = code;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
	va_end(ap);
	return code;
}

/* malloc shim for nn_malloc_allocator */
static void *
malloc_alloc(void *ctx, size_t size)
{
	return malloc(size ? size : 1);
}

/* free shim for nn_malloc_allocator */
static void
malloc_free(void *ctx, void *ptr)
{
	free(ptr);
}

const nn_allocator nn_malloc_allocator = {malloc_alloc, malloc_free, NULL};

/* Allocate size bytes from a; NULL on failure. */
void *
nn_alloc(const nn_allocator *a, size_t size)
{
	return a->alloc(a->ctx, size);
}

/* Allocate n*size zeroed bytes from a, checking the product for overflow. */
void *
nn_calloc(const nn_allocator *a, size_t n, size_t size)
{
	void	   *p;

	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	p = a->alloc(a->ctx, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

/* Give ptr back to a; NULL is allowed. */
void
nn_free(const nn_allocator *a, void *ptr)
{
	if (ptr)
		a->free(a->ctx, ptr);
}

/* splitmix64 step, used to expand a 64-bit seed */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Seed the xoshiro128** state from a 64-bit seed. */
void
nn_rng_seed(nn_rng *r, uint64_t seed)
{
	uint64_t	x = seed;
	uint64_t	a = splitmix64(&x);
	uint64_t	b = splitmix64(&x);

	r->s[0] = (uint32_t) a;
	r->s[1] = (uint32_t) (a >> 32);
	r->s[2] = (uint32_t) b;
	r->s[3] = (uint32_t) (b >> 32);
	if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
		r->s[0] = 1;
}

/* rotate left */
static inline uint32_t
rotl32(uint32_t x, int k)
{
	return (x << k) | (x >> (32 - k));
}

/* Next 32 random bits (xoshiro128**). */
uint32_t
nn_rng_u32(nn_rng *r)
{
	uint32_t   *s = r->s;
	uint32_t	result = rotl32(s[1] * 5, 7) * 9;
	uint32_t	t = s[1] << 9;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl32(s[3], 11);
	return result;
}

/* Uniform float in [0,1) from the top 24 bits. */
float
nn_rng_uniform(nn_rng *r)
{
	return (float) (nn_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

/* Standard normal by Box-Muller (one value per call, deterministic). */
float
nn_rng_normal(nn_rng *r)
{
	double		u1 = ((double) (nn_rng_u32(r) >> 8) + 1.0) / 16777217.0;
	double		u2 = (double) (nn_rng_u32(r) >> 8) / 16777216.0;

	return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Uniform integer in [0,n), without modulo bias (Lemire's method). */
uint32_t
nn_rng_below(nn_rng *r, uint32_t n)
{
	uint64_t	m;
	uint32_t	l;

	if (n <= 1)
		return 0;
	m = (uint64_t) nn_rng_u32(r) * n;
	l = (uint32_t) m;
	if (l < n)
	{
		uint32_t	t = (0u - n) % n;

		while (l < t)
		{
			m = (uint64_t) nn_rng_u32(r) * n;
			l = (uint32_t) m;
		}
	}
	return (uint32_t) (m >> 32);
}

/* Monotonic clock in seconds. */
double
nn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* The name of an input element type. */
const char *
nn_dtype_name(int32_t dtype)
{
	return dtype == NN_DTYPE_FLOAT32 ? "float32" : "uint8";
}
