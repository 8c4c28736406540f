/*
 * test_hostile.c: regressions for what the hostile-model fuzzing
 * (test/fuzz/fuzz_bound.c) found in the layer kernels.
 *
 * im2col with "same" padding wider than the image: a kernel row that only
 * ever meets padding (H < P - ky) has an empty range of output rows; the
 * contiguous-row copy then computed its source row as y0 - P + ky < 0, a
 * pointer before the input plane (UBSan: pointer overflow), for a copy of
 * zero bytes. The conv must still equal the naive reference exactly in its
 * im2col and to rounding in its outputs and gradients. Run under
 * test/sanitize.sh, the old code fails here.
 */
#include <stdlib.h>
#include <string.h>

#include "layers_ref.h"
#include "nn.h"
#include "t.h"

/* seeded floats in [-1, 1) */
static float *
hostile_rand(nn_rng *r, size_t n)
{
	float	   *x = malloc(sizeof(float) * (n ? n : 1));

	for (size_t i = 0; i < n; i++)
		x[i] = 2.0f * nn_rng_uniform(r) - 1.0f;
	return x;
}

/* conv with "same" padding wider than the image equals the naive reference */
T_CASE(test_hostile_same_padding_wider_than_image)
{
	/* spec, input: each kernel is taller than the image, so some kernel rows meet only padding */
	static const struct
	{
		const char *spec;
		nn_shape	in;
	}			cases[] = {
		{"conv(2,5,1,same) dense(2)", {1, 5, 1}},
		{"conv(3,7,1,same) dense(2)", {2, 9, 2}},
		{"conv(1,7,1,same) dense(2)", {3, 3, 1}},
		{"conv(2,63,1,same) dense(2)", {4, 40, 1}},
	};
	nn_rng		r;

	nn_rng_seed(&r, 5);
	for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++)
	{
		nn_net		net;
		nn_status	st = {0};
		const nn_layer *L;
		int			B = 2;
		size_t		nin,
					N,
					KK,
					nout,
					nw;
		float	   *inp,
				   *w,
				   *bias,
				   *dout,
				   *out,
				   *out_ref,
				   *col,
				   *col_ref,
				   *dcol,
				   *dinp,
				   *dinp_ref,
				   *dw,
				   *dw_ref,
				   *db,
				   *db_ref;

		if (!T_OK(nn_net_build(&net, cases[t].spec, cases[t].in, 2, &st) == NN_OK, "\"%s\" builds: %s",
				  cases[t].spec, st.msg))
			continue;
		L = &net.layers[0];
		nin = (size_t) L->in.c * B * L->in.h * L->in.w;
		N = (size_t) B * L->out.h * L->out.w;
		KK = (size_t) L->in.c * L->kernel * L->kernel;
		nout = (size_t) L->units * N;
		nw = (size_t) L->units * KK;
		inp = hostile_rand(&r, nin);
		w = hostile_rand(&r, nw);
		bias = hostile_rand(&r, L->units);
		dout = hostile_rand(&r, nout);
		out = malloc(sizeof(float) * nout);
		out_ref = malloc(sizeof(float) * nout);
		col = hostile_rand(&r, KK * N);	/* garbage to overwrite */
		col_ref = malloc(sizeof(float) * KK * N);
		dcol = malloc(sizeof(float) * KK * N);
		dinp = calloc(nin, sizeof(float));
		dinp_ref = calloc(nin, sizeof(float));
		dw = calloc(nw, sizeof(float));
		dw_ref = calloc(nw, sizeof(float));
		db = calloc(L->units, sizeof(float));
		db_ref = calloc(L->units, sizeof(float));

		nn_conv2d_forward(out, col, inp, w, bias, L, B);
		nn_conv2d_forward_ref(out_ref, col_ref, inp, w, bias, L, B);
		T_CLOSE(col, col_ref, KK * N, 0, 0, cases[t].spec);
		T_CLOSE(out, out_ref, nout, 1e-4, 1e-4, cases[t].spec);
		nn_conv2d_backward(dinp, dw, db, dcol, dout, col, w, L, B);
		nn_conv2d_backward_ref(dinp_ref, dw_ref, db_ref, NULL, dout, col_ref, w, L, B);
		T_CLOSE(dinp, dinp_ref, nin, 1e-4, 1e-4, cases[t].spec);
		T_CLOSE(dw, dw_ref, nw, 1e-4, 1e-4, cases[t].spec);
		T_CLOSE(db, db_ref, L->units, 1e-4, 1e-4, cases[t].spec);

		free(inp);
		free(w);
		free(bias);
		free(dout);
		free(out);
		free(out_ref);
		free(col);
		free(col_ref);
		free(dcol);
		free(dinp);
		free(dinp_ref);
		free(dw);
		free(dw_ref);
		free(db);
		free(db_ref);
	}
}
