/*
 * fuzz_spec.c: libFuzzer harness of the layer-spec language:
 * nn_spec_parse() and nn_net_build() on NUL-terminated fuzz text, for two
 * fixed inputs (MNIST's 28x28x1 with 10 classes, and a small 5x7x3 with 2).
 *
 * A spec that builds must give a canonical spec that builds to the same net
 * (spec.c promises it), and nn_spec_format() must respect any buffer size.
 */
#include "fuzz.h"
#include "nn.h"

/* Two built nets describe the same layers. */
static void
check_same_net(const nn_net *a, const nn_net *b)
{
	FUZZ_CHECK(a->nlayers == b->nlayers, "%d layers, canonical form has %d", a->nlayers, b->nlayers);
	FUZZ_CHECK(a->nparams == b->nparams, "%zu parameters, canonical form has %zu", a->nparams, b->nparams);
	FUZZ_CHECK(strcmp(a->spec, b->spec) == 0, "canonical spec not stable: \"%s\" then \"%s\"", a->spec, b->spec);
	for (int i = 0; i < a->nlayers; i++)
	{
		const nn_layer *x = &a->layers[i],
				   *y = &b->layers[i];

		FUZZ_CHECK(x->kind == y->kind && x->units == y->units && x->kernel == y->kernel &&
				   x->stride == y->stride && x->pad == y->pad && x->flat_in == y->flat_in &&
				   x->w_off == y->w_off && x->w_len == y->w_len &&
				   x->b_off == y->b_off && x->b_len == y->b_len &&
				   memcmp(&x->rate, &y->rate, sizeof(float)) == 0 &&
				   memcmp(&x->out, &y->out, sizeof(nn_shape)) == 0,
				   "layer %d differs after rebuilding the canonical spec \"%s\"", i + 1, a->spec);
	}
}

/* Build spec for one input shape and check the promises of a success. */
static void
check_build(const char *spec, nn_shape in, int32_t classes)
{
	nn_net		net,
				again;
	nn_status	st;
	int			rc;
	size_t		speclen;

	memset(&st, 0, sizeof(st));
	rc = nn_net_build(&net, spec, in, classes, &st);
	if (rc != NN_OK)
	{
		fuzz_check_failure(rc, &st);
		return;
	}
	FUZZ_CHECK(net.nlayers >= 1 && net.nlayers <= NN_MAX_LAYERS, "%d layers", net.nlayers);
	FUZZ_CHECK(memchr(net.spec, '\0', NN_MAX_SPEC) != NULL, "canonical spec not NUL-terminated");
	FUZZ_CHECK(net.layers[net.nlayers - 1].out.c == classes, "last layer gives %d outputs, not %d",
			   net.layers[net.nlayers - 1].out.c, classes);
	for (int i = 0; i < net.nlayers; i++)
	{
		const nn_layer *L = &net.layers[i];

		FUZZ_CHECK(L->out.h >= 1 && L->out.w >= 1 && L->out.c >= 1,
				   "layer %d has output %dx%dx%d", i + 1, L->out.h, L->out.w, L->out.c);
		FUZZ_CHECK(L->w_off + L->w_len <= net.nparams && L->b_off + L->b_len <= net.nparams,
				   "layer %d parameters lie outside the %zu of the net", i + 1, net.nparams);
	}
	(void) nn_work_bytes(&net, 64, 1);

	/* the canonical spec builds to the same net */
	memset(&st, 0, sizeof(st));
	rc = nn_net_build(&again, net.spec, in, classes, &st);
	FUZZ_CHECK(rc == NN_OK, "canonical spec \"%s\" does not build: %s", net.spec, st.msg);
	check_same_net(&net, &again);

	/* formatting into every short buffer stays inside it */
	speclen = strlen(net.spec);
	for (size_t len = 1; len <= speclen + 1; len += 1 + len / 4)
	{
		char	   *buf = malloc(len);

		if (buf == NULL)
			abort();
		nn_spec_format(&net, buf, len);
		FUZZ_CHECK(memchr(buf, '\0', len) != NULL, "nn_spec_format left %zu bytes unterminated", len);
		free(buf);
	}
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *spec = fuzz_cstring(data, size);
	nn_net		net;
	nn_status	st;
	int			rc;
	nn_shape	mnist = {28, 28, 1};
	nn_shape	small = {5, 7, 3};

	memset(&st, 0, sizeof(st));
	rc = nn_spec_parse(&net, spec, &st);
	if (rc != NN_OK)
		fuzz_check_failure(rc, &st);
	else
		FUZZ_CHECK(net.nlayers >= 1 && net.nlayers <= NN_MAX_LAYERS, "%d layers parsed", net.nlayers);
	check_build(spec, mnist, 10);
	check_build(spec, small, 2);
	free(spec);
	return 0;
}
