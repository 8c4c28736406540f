/*
 * op_batchnorm_kern.h: batch normalisation's loops over one channel's
 * values, n of them st floats apart (a (C,B,HW) activation keeps a
 * channel's B*HW values together, st 1; a flat (B,C) one has st C and
 * takes the scalar loops), written once and compiled once per instruction set;
 * kern_each.h defines KERN(name), KERN_ATTR and VL before each
 * inclusion and gives the includer KERN(bn_kern) and kern_pick().
 *
 * The statistics sum in double vectors (each float widened: the variance
 * subtracts two large sums); the gradient's sums in float for BN_RUN
 * values a lane, then in double. Their order is fixed by n alone, so
 * results do not depend on threads.
 */

#include "kern_vec.h"

typedef float KERN(vh) __attribute__((vector_size(VL / 2 * sizeof(float))));
typedef double KERN(vd) __attribute__((vector_size(VL / 2 * sizeof(double))));

/* VL/2 floats from p (any alignment), widened to double */
KERN_ATTR __attribute__((always_inline))
static inline KERN(vd)
KERN(loadd) (const float *p)
{
	KERN(vh)	v;

	memcpy(&v, p, sizeof(v));
	return __builtin_convertvector(v, KERN(vd));
}

/* the lanes of v added */
KERN_ATTR __attribute__((always_inline))
static inline double
KERN(hsum) (KERN(vd) v)
{
	double		s = 0;

	for (int l = 0; l < VL / 2; l++)
		s += v[l];
	return s;
}

/* sum and sum of squares of the n values of x */
KERN_ATTR
static void
KERN(sums) (const float *restrict x, size_t n, size_t st, double *s, double *q)
{
	KERN(vd)	s0 = {0}, s1 = {0}, q0 = {0}, q1 = {0};
	size_t		i = 0;

	for (; st == 1 && i + VL <= n; i += VL)
	{
		KERN(vd)	a = KERN(loadd) (x + i), b = KERN(loadd) (x + i + VL / 2);

		s0 += a;
		s1 += b;
		q0 += a * a;
		q1 += b * b;
	}
	*s = KERN(hsum) (s0 + s1);
	*q = KERN(hsum) (q0 + q1);
	for (; i < n; i++)
	{
		*s += x[i * st];
		*q += (double) x[i * st] * x[i * st];
	}
}

/* y = w xh + b over n values, xh = (x - m) inv */
KERN_ATTR
static void
KERN(normalize) (float *restrict y, const float *restrict x, size_t n, size_t st,
				 float m, float inv, float w, float b)
{
	size_t		i = 0;

	for (; st == 1 && i + VL <= n; i += VL)
		KERN(store) (y + i, w * ((KERN(load) (x + i) - m) * inv) + b);
	for (; i < n; i++)
		y[i * st] = w * ((x[i * st] - m) * inv) + b;
}

/* dx (= when assign, else +=) k1 * (M dy - sdy - xh sdx) over n values, xh = (x - m) inv */
KERN_ATTR
static void
KERN(grad) (float *restrict dx, const float *restrict dy, const float *restrict x, size_t n, size_t st,
			float m, float inv, float k1, float M, float sdy, float sdx, int assign)
{
	size_t		i = 0;

	for (; st == 1 && i + VL <= n; i += VL)
	{
		KERN(vf)	g = k1 * (M * KERN(load) (dy + i) - sdy - ((KERN(load) (x + i) - m) * inv) * sdx);

		KERN(store) (dx + i, assign ? g : KERN(load) (dx + i) + g);
	}
	for (; i < n; i++)
	{
		float		g = k1 * (M * dy[i * st] - sdy - ((x[i * st] - m) * inv) * sdx);

		dx[i * st] = assign ? g : dx[i * st] + g;
	}
}

/*
 * sums of dy and dy xh over n values, xh = (x - m) inv; dx (if any; = when
 * assign, else +=) dy scale: the evaluation-mode backward of a channel,
 * and with no dx the training pass's first backward step
 */
KERN_ATTR
static void
KERN(eval_grad) (float *restrict dx, const float *restrict dy, const float *restrict x, size_t n, size_t st,
				 float m, float inv, float scale, int assign, double *s, double *q)
{
	size_t		i = 0;

	*s = 0;
	*q = 0;
	while (st == 1 && i + VL <= n)
	{
		/* float sums of at most BN_RUN vectors a lane, then into double */
		size_t		end = n - i < BN_RUN * VL ? n - n % VL : i + BN_RUN * VL;
		KERN(vf)	sf = {0}, qf = {0};

		for (; i < end; i += VL)
		{
			KERN(vf)	g = KERN(load) (dy + i), h = (KERN(load) (x + i) - m) * inv;

			sf += g;
			qf += g * h;
			if (dx)
				KERN(store) (dx + i, assign ? g * scale : KERN(load) (dx + i) + g * scale);
		}
		for (int l = 0; l < VL; l++)
		{
			*s += sf[l];
			*q += qf[l];
		}
	}
	for (; i < n; i++)
	{
		*s += dy[i * st];
		*q += (double) dy[i * st] * ((x[i * st] - m) * inv);
		if (dx)
			dx[i * st] = (assign ? 0.0f : dx[i * st]) + dy[i * st] * scale;
	}
}

static const bn_kern KERN(bn_kern) = {
	KERN(sums), KERN(normalize), KERN(grad), KERN(eval_grad)
};

#undef KERN
#undef KERN_ATTR
#undef VL
