/*
 * kern_vec.h: the vector type and its unaligned load and store, for the
 * kernel headers compiled once per instruction set (conv_direct_kern.h,
 * conv_winograd_kern.h), which include it with KERN(name), KERN_ATTR and
 * VL defined (see them); no include guard: once per instruction set.
 */

typedef float KERN(vf) __attribute__((vector_size(VL * sizeof(float))));

/* VL floats from p (any alignment) */
KERN_ATTR __attribute__((always_inline))
static inline KERN(vf)
KERN(load) (const float *p)
{
	KERN(vf)	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* v to p (any alignment) */
KERN_ATTR __attribute__((always_inline))
static inline void
KERN(store) (float *p, KERN(vf) v)
{
	memcpy(p, &v, sizeof(v));
}
