/*
 * kern_each.h: a kernel header compiled once per instruction set, and
 * the pick of the one this CPU runs. The includer defines
 *
 *   KERN_FILE    the kernel header ("conv_winograd_kern.h"), which takes
 *                KERN(name), KERN_ATTR and VL (see kern_vec.h) and
 *                defines the table KERN(KERN_TYPE)
 *   KERN_TYPE    the table's type (its name is also the tables' stem)
 *
 * and gets kern_pick(): the table at the direct kernels' level
 * (nn_vector_level, conv_direct.h). Once per file.
 */
#if defined(__x86_64__) || defined(__i386__)
#define KERN(name) name##_avx512
#define KERN_ATTR __attribute__((target("avx512f")))
#define VL 16
#include KERN_FILE

#define KERN(name) name##_avx2
#define KERN_ATTR __attribute__((target("avx2,fma")))
#define VL 8
#include KERN_FILE
#endif

#define KERN(name) name##_base
#define KERN_ATTR
#define VL 4
#include KERN_FILE

#define KERN_TABLE_(t, isa) t##_##isa
#define KERN_TABLE(t, isa) KERN_TABLE_(t, isa)

/* the tables this CPU runs best */
static const KERN_TYPE *
kern_pick(void)
{
#if defined(__x86_64__) || defined(__i386__)
	switch (nn_vector_level())
	{
		case NN_CONV_DIRECT_AVX512:
			return &KERN_TABLE(KERN_TYPE, avx512);
		case NN_CONV_DIRECT_AVX2:
			return &KERN_TABLE(KERN_TYPE, avx2);
	}
#endif
	return &KERN_TABLE(KERN_TYPE, base);
}
