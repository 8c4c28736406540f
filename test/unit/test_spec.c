/*
 * test_spec.c: the layer-spec parser, shape inference, parameter layout and
 * the canonical spec (src/nn/spec.c).
 *
 * Expected numbers come from the arithmetic of the layers, worked by hand in
 * the comments, or from PyTorch's definitions (valid conv: H-K+1; pooling
 * floors; parameters OC*C*K*K + OC and N*I + N).
 */
#include <string.h>

#include "t.h"
#include "nn.h"
#include "options.h"
#include "train.h"

static const nn_shape mnist = {28, 28, 1};
static const nn_shape tiny = {3, 3, 1};
static const nn_shape no_height = {0, 28, 1};
static const nn_shape many_channels = {28, 28, 4097};

/* Build spec on input/classes expecting failure with code and a message holding each of want[] */
static void
expect_fail(const char *spec, nn_shape in, int classes, nn_code code, const char *const *want)
{
	nn_net		net;
	nn_status	st = {0};
	int			rc = nn_net_build(&net, spec, in, classes, &st);

	T_OK(rc == code && st.code == code, "\"%s\" fails with code %d (got %d: %s)", spec, code, rc, st.msg);
	for (; *want; want++)
		T_OK(strstr(st.msg, *want) != NULL, "\"%s\": message has \"%s\" (got: %s)", spec, *want, st.msg);
	T_OK(strlen(st.msg) < NN_MSG_LEN - 1 && st.msg[strlen(st.msg) - 1] != '.',
		 "message is short and has no trailing period: %s", st.msg);
}

#define EXPECT_FAIL(spec, in, classes, code, ...) \
	do { const char *const w_[] = {__VA_ARGS__, NULL}; expect_fail((spec), (in), (classes), (code), w_); } while (0)

/* shape equality */
static int
shape_is(nn_shape s, int h, int w, int c)
{
	return s.h == h && s.w == w && s.c == c;
}

T_CASE(test_spec_reference_cnn)
{
	nn_net		net;
	nn_status	st = {0};
	int			rc = nn_net_build(&net, NN_REFERENCE_SPEC, mnist, 10, &st);
	size_t		off = 0;

	T_OK(rc == NN_OK, "reference CNN builds: %s", st.msg);
	if (rc != NN_OK)
		return;
	/*
	 * conv(32,3): 32*1*3*3 + 32 = 320; conv(64,3): 64*32*9 + 64 = 18496;
	 * dense(128) on 5*5*64 = 1600: 128*1600 + 128 = 204928; dense(10):
	 * 10*128 + 10 = 1290. Total 225034, the figure PyTorch prints for the
	 * same model.
	 */
	T_OK(net.nparams == 225034, "225034 parameters (got %zu)", net.nparams);
	/* 9 written layers plus the implicit flatten before dense(128) */
	T_OK(net.nlayers == 10, "10 layers with the implicit flatten (got %d)", net.nlayers);
	T_OK(net.layers[0].kind == NN_CONV && shape_is(net.layers[0].out, 26, 26, 32), "conv1 out 26x26x32");
	T_OK(net.layers[1].kind == NN_RELU && shape_is(net.layers[1].out, 26, 26, 32), "relu keeps 26x26x32");
	T_OK(net.layers[2].kind == NN_MAXPOOL && shape_is(net.layers[2].out, 13, 13, 32), "pool1 out 13x13x32");
	T_OK(net.layers[2].stride == 2, "maxpool stride defaults to the window");
	T_OK(shape_is(net.layers[3].in, 13, 13, 32) && shape_is(net.layers[3].out, 11, 11, 64), "conv2 11x11x64");
	T_OK(shape_is(net.layers[5].out, 5, 5, 64), "pool2 floors 11/2 to 5x5x64");
	T_OK(net.layers[6].kind == NN_FLATTEN && !net.layers[6].flat_in &&
		 shape_is(net.layers[6].out, 1, 1, 1600), "implicit flatten to 1600");
	T_OK(net.layers[7].kind == NN_DENSE && net.layers[7].flat_in &&
		 shape_is(net.layers[7].in, 1, 1, 1600) && shape_is(net.layers[7].out, 1, 1, 128), "dense 1600 -> 128");
	T_OK(net.layers[8].kind == NN_RELU && net.layers[8].flat_in, "relu on a flat tensor stays flat");
	T_OK(net.layers[8].out.c == 128, "relu keeps 128");
	T_OK(net.layers[0].w_len == 288 && net.layers[0].b_len == 32, "conv1 weight 32x1x3x3");
	T_OK(net.layers[3].w_len == 18432 && net.layers[3].b_len == 64, "conv2 weight 64x32x3x3");
	T_OK(net.layers[7].w_len == 204800 && net.layers[7].b_len == 128, "dense weight 128x1600");
	/* offsets: weight then bias, layer after layer, no gaps */
	for (int i = 0; i < net.nlayers; i++)
	{
		const nn_layer *L = &net.layers[i];

		if (L->w_len == 0)
			continue;
		T_OK(L->w_off == off && L->b_off == off + L->w_len, "layer %d slices at %zu", i, off);
		off += L->w_len + L->b_len;
	}
	T_OK(off == net.nparams, "slices cover all parameters");
	T_OK(strcmp(net.spec, "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) flatten dense(128) relu dense(10)") == 0,
		 "canonical spec names the flatten: %s", net.spec);
}

T_CASE(test_spec_last_layer_10)
{
	nn_net		net;
	nn_status	st = {0};

	T_OK(nn_net_build(&net, NN_REFERENCE_SPEC, mnist, 10, &st) == NN_OK, "builds");
	T_OK(net.layers[net.nlayers - 1].out.c == 10 && net.layers[net.nlayers - 1].flat_in,
		 "last layer outputs 10 flat values");
	T_OK(net.input.h == 28 && net.classes == 10, "input and classes recorded");
}

T_CASE(test_spec_default_spec)
{
	nn_net		net;
	nn_status	st = {0};
	char		spec[NN_MAX_SPEC];
	nn_options	o;

	nn_options_default(&o);
	nn_options_spec(&o, spec, sizeof(spec));
	T_OK(nn_net_build(&net, spec, mnist, 10, &st) == NN_OK, "the default spec builds: %s", st.msg);
	/* same parameters as the reference CNN: dropout and flatten have none */
	T_OK(net.nparams == 225034, "default spec has 225034 parameters (got %zu)", net.nparams);
	T_OK(strcmp(net.spec, spec) == 0, "default spec is already canonical: %s", net.spec);
}

T_CASE(test_spec_same_padding_and_stride)
{
	nn_net		net;
	nn_status	st = {0};

	T_OK(nn_net_build(&net, "conv(8,5,1,same) conv(4,3,2) maxpool(3,2) dense(3)",
					  (nn_shape) {32, 30, 3}, 3, &st) == NN_OK, "builds: %s", st.msg);
	/* same: pad 2, output 32x30; then (32-3)/2+1 = 15, (30-3)/2+1 = 14; pool (15-3)/2+1 = 7, (14-3)/2+1 = 6 */
	T_OK(net.layers[0].pad == 2 && net.layers[0].same == 1, "same pads (K-1)/2 = 2");
	T_OK(shape_is(net.layers[0].out, 32, 30, 8), "same keeps 32x30");
	T_OK(net.layers[1].stride == 2 && shape_is(net.layers[1].out, 15, 14, 4), "stride 2 gives 15x14");
	T_OK(net.layers[2].kernel == 3 && net.layers[2].stride == 2 && shape_is(net.layers[2].out, 7, 6, 4),
		 "maxpool(3,2) gives 7x6");
	T_OK(net.layers[0].w_len == 8 * 3 * 25 && net.layers[1].w_len == 4 * 8 * 9, "conv weights");
	T_OK(strcmp(net.spec, "conv(8,5,1,same) conv(4,3,2) maxpool(3,2) flatten dense(3)") == 0,
		 "canonical: %s", net.spec);
	/* padding may stand third, meaning stride 1 */
	T_OK(nn_net_build(&net, "conv(8,3,same) dense(2)", (nn_shape) {5, 5, 1}, 2, &st) == NN_OK &&
		 net.layers[0].pad == 1 && shape_is(net.layers[0].out, 5, 5, 8), "conv(8,3,same)");
	T_OK(nn_net_build(&net, "conv(8,3,1,valid) dense(2)", (nn_shape) {5, 5, 1}, 2, &st) == NN_OK &&
		 net.layers[0].pad == 0 && shape_is(net.layers[0].out, 3, 3, 8) &&
		 strcmp(net.spec, "conv(8,3) flatten dense(2)") == 0, "explicit valid is the default");
}

T_CASE(test_spec_implicit_flatten)
{
	nn_net		net;
	nn_status	st = {0};

	/* relu and dropout keep the image spatial, so the flatten goes right before dense */
	T_OK(nn_net_build(&net, "conv(4,3) relu dropout(0.5) dense(7) relu dropout(0.1) dense(2)",
					  (nn_shape) {6, 6, 2}, 2, &st) == NN_OK, "builds: %s", st.msg);
	T_OK(net.nlayers == 8 && net.layers[3].kind == NN_FLATTEN && net.layers[3].out.c == 4 * 4 * 4,
		 "one flatten inserted before the first dense");
	T_OK(!net.layers[2].flat_in && net.layers[5].flat_in && net.layers[6].flat_in, "flatness tracked");
	T_OK(net.layers[4].w_len == 7 * 64 && net.layers[7].w_len == 2 * 7, "dense weights N*I");
	/* dense straight on the input */
	T_OK(nn_net_build(&net, "dense(10)", mnist, 10, &st) == NN_OK && net.nlayers == 2 &&
		 net.layers[0].kind == NN_FLATTEN && net.nparams == 7850, "logistic regression: 784*10+10");
	/* an explicit flatten is not doubled */
	T_OK(nn_net_build(&net, "flatten dense(10)", mnist, 10, &st) == NN_OK && net.nlayers == 2,
		 "explicit flatten kept once");
}

T_CASE(test_spec_canonical_round_trip)
{
	const char *specs[] = {
		"conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dense(128) relu dense(4)",
		"  CONV( 16 , 5 , 1 , SAME ),ReLU  MaxPool(2,1) , dropout(.25) conv(8,3,2) dense(32) dropout(0.333333343) dense(4)",
		"conv(3,1) relu() flatten() dense(4)",
		"dropout(1e-1) dense(4)",
	};

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
	{
		nn_net		a,
					b;
		nn_status	st = {0};

		if (!T_OK(nn_net_build(&a, specs[i], (nn_shape) {20, 20, 3}, 4, &st) == NN_OK, "builds %s: %s", specs[i], st.msg))
			continue;
		if (!T_OK(nn_net_build(&b, a.spec, (nn_shape) {20, 20, 3}, 4, &st) == NN_OK, "canonical rebuilds %s: %s", a.spec, st.msg))
			continue;
		T_OK(a.nlayers == b.nlayers && a.nparams == b.nparams &&
			 memcmp(a.layers, b.layers, sizeof(a.layers)) == 0 && strcmp(a.spec, b.spec) == 0,
			 "round trip gives the same net: %s", a.spec);
	}
	{
		nn_net		a;
		nn_status	st = {0};

		nn_net_build(&a, specs[1], (nn_shape) {20, 20, 3}, 4, &st);
		/*
		 * The float nearest 0.333333343 is 0.3333333432674...; eight digits
		 * already name it (its neighbours are 0.33333331 and 0.33333337),
		 * so the canonical form is the shortest that reads back.
		 */
		T_OK(strcmp(a.spec, "conv(16,5,1,same) relu maxpool(2,1) dropout(0.25) conv(8,3,2) flatten dense(32) dropout(0.33333334) dense(4)") == 0,
			 "canonical text: %s", a.spec);
		/* spec may alias net->spec */
		T_OK(nn_net_build(&a, a.spec, (nn_shape) {20, 20, 3}, 4, &st) == NN_OK, "rebuild from its own spec");
	}
}

T_CASE(test_spec_parse_only)
{
	nn_net		net;
	nn_status	st = {0};

	T_OK(nn_spec_parse(&net, "conv(5,3,2) maxpool(4) dense(9) dropout(0.2)", &st) == NN_OK, "parses");
	T_OK(net.nlayers == 4 && net.layers[0].units == 5 && net.layers[0].kernel == 3 &&
		 net.layers[0].stride == 2 && net.layers[1].kernel == 4 && net.layers[1].stride == 4 &&
		 net.layers[2].units == 9 && net.layers[3].rate == 0.2f, "hyper-parameters");
}

T_CASE(test_spec_syntax_errors)
{
	/* position 39 is the "p" of "pool(2)": 1-based characters */
	EXPECT_FAIL("conv(32,3) relu maxpool(2) conv(64,3) pool(2) dense(10)", mnist, 10, NN_ERR_PARSE,
				"position 39", "near \"pool(2)\"", "unknown layer \"pool\"");
	EXPECT_FAIL("conv(32) dense(10)", mnist, 10, NN_ERR_PARSE, "position 1", "conv needs 2 arguments");
	EXPECT_FAIL("conv(32,3,1,same,2) dense(10)", mnist, 10, NN_ERR_PARSE, "at most 4 arguments");
	EXPECT_FAIL("conv dense(10)", mnist, 10, NN_ERR_PARSE, "conv needs arguments");
	EXPECT_FAIL("conv(32,x) dense(10)", mnist, 10, NN_ERR_PARSE, "position 9", "expected an integer for the conv kernel size");
	EXPECT_FAIL("conv(0,3) dense(10)", mnist, 10, NN_ERR_PARSE, "position 6", "conv filters must be between 1 and 4096, not 0");
	EXPECT_FAIL("conv(99999999999999999999,3) dense(10)", mnist, 10, NN_ERR_PARSE, "not 99999999999999999999");
	EXPECT_FAIL("conv(8,65) dense(10)", mnist, 10, NN_ERR_PARSE, "kernel size must be between 1 and 64");
	EXPECT_FAIL("conv(8,3,0) dense(10)", mnist, 10, NN_ERR_PARSE, "stride must be between 1 and 64, not 0");
	EXPECT_FAIL("conv(8,3,1,full) dense(10)", mnist, 10, NN_ERR_PARSE, "padding must be \"valid\" or \"same\", not \"full\"");
	EXPECT_FAIL("conv(8,4,1,same) dense(10)", mnist, 10, NN_ERR_PARSE, "odd kernel size and stride 1");
	EXPECT_FAIL("conv(8,3,2,same) dense(10)", mnist, 10, NN_ERR_PARSE, "odd kernel size and stride 1");
	EXPECT_FAIL("conv(8,3.5) dense(10)", mnist, 10, NN_ERR_PARSE, "expected an integer");
	EXPECT_FAIL("dense(10", mnist, 10, NN_ERR_PARSE, "end of the layer spec", "expected \",\" or \")\"");
	EXPECT_FAIL("dense(10) ,", mnist, 10, NN_ERR_PARSE, "expected a layer after \",\"");
	EXPECT_FAIL("conv(8,3)relu dense(10)", mnist, 10, NN_ERR_PARSE, "position 10", "between layers");
	EXPECT_FAIL("relu(1) dense(10)", mnist, 10, NN_ERR_PARSE, "relu takes no arguments");
	EXPECT_FAIL("dropout(1) dense(10)", mnist, 10, NN_ERR_PARSE, "dropout rate must be at least 0 and less than 1, not 1");
	EXPECT_FAIL("dropout(-0.1) dense(10)", mnist, 10, NN_ERR_PARSE, "expected a number for the dropout rate");
	EXPECT_FAIL("dense(10) 42", mnist, 10, NN_ERR_PARSE, "position 11", "expected a layer name");
	EXPECT_FAIL("dense(10) \x01", mnist, 10, NN_ERR_PARSE, "near \"?\"");
	EXPECT_FAIL("", mnist, 10, NN_ERR_PARSE, "layer spec is empty");
	EXPECT_FAIL("  \t  ", mnist, 10, NN_ERR_PARSE, "layer spec is empty");
	EXPECT_FAIL("dense(4096)", mnist, 10, NN_ERR_SHAPE, "must output 10 values");
	EXPECT_FAIL("dense(4097)", mnist, 10, NN_ERR_PARSE, "dense units must be between 1 and 4096, not 4097");
	/* a character count, not a byte count: "é" is one character */
	EXPECT_FAIL("relu \xc3\xa9 dense(10)", mnist, 10, NN_ERR_PARSE, "position 6");
	EXPECT_FAIL("relu \xc3\xa9x dense(10)", mnist, 10, NN_ERR_PARSE, "near \"??x\"");
}

T_CASE(test_spec_limits)
{
	char		spec[NN_MAX_SPEC + 64];
	size_t		n = 0;
	nn_net		net;
	nn_status	st = {0};

	/* 64 layers are allowed, 65 are not */
	for (int i = 0; i < 63; i++)
		n += snprintf(spec + n, sizeof(spec) - n, "relu ");
	snprintf(spec + n, sizeof(spec) - n, "flatten dense(10)");
	T_OK(nn_net_build(&net, spec + 5, mnist, 10, &st) == NN_OK && net.nlayers == 64, "64 layers build: %s", st.msg);
	T_OK(nn_net_build(&net, spec, mnist, 10, &st) == NN_ERR_LIMIT &&
		 strstr(st.msg, "layer spec has more than 64 layers") != NULL, "65 layers: %s", st.msg);
	/* 64 written layers that need an implicit flatten make 65 */
	spec[n] = '\0';
	snprintf(spec + n, sizeof(spec) - n, "dense(10)");
	T_OK(nn_net_build(&net, spec, mnist, 10, &st) == NN_ERR_LIMIT &&
		 strstr(st.msg, "more than 64 layers") && strstr(st.msg, "layer 64"), "implicit flatten over the limit: %s", st.msg);
	/* too long */
	memset(spec, ' ', NN_MAX_SPEC);
	memcpy(spec + NN_MAX_SPEC - 10, "dense(10)", 10);
	T_OK(strlen(spec) == NN_MAX_SPEC - 1, "1023 bytes");
	T_OK(nn_net_build(&net, spec, mnist, 10, &st) == NN_OK, "1023 bytes are fine: %s", st.msg);
	memset(spec, ' ', NN_MAX_SPEC);
	memcpy(spec + NN_MAX_SPEC - 9, "dense(10)", 10);
	T_OK(nn_net_build(&net, spec, mnist, 10, &st) == NN_ERR_LIMIT &&
		 strstr(st.msg, "longer than 1023 bytes"), "1024 bytes: %s", st.msg);
	/* parameters: 4096 filters of 64x64 over 4096 channels is 2^36 weights */
	T_OK(nn_net_build(&net, "conv(4096,64) dense(10)", (nn_shape) {64, 64, 4096}, 10, &st) == NN_ERR_LIMIT &&
		 strstr(st.msg, "268435456") && strstr(st.msg, "layer 1"), "parameter limit: %s", st.msg);
	/* a flatten of 4096x4096x4096 values */
	T_OK(nn_net_build(&net, "flatten dense(10)", (nn_shape) {4096, 4096, 4096}, 10, &st) == NN_ERR_LIMIT,
		 "flatten limit: %s", st.msg);
	T_OK(nn_spec_parse(&net, NULL, &st) == NN_ERR_PARSE, "NULL spec");
}

T_CASE(test_spec_shape_errors)
{
	/* 28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1, then a 2x2 window on 1x1 */
	EXPECT_FAIL("conv(8,3) maxpool(2) conv(8,3) maxpool(2) conv(64,3) maxpool(4) dense(10)",
				mnist, 10, NN_ERR_SHAPE, "layer 6 \"maxpool(4)\" does not fit its 3x3x64 input");
	EXPECT_FAIL("conv(8,3) maxpool(2) conv(8,3) maxpool(2) conv(64,3) maxpool(3) maxpool(2) dense(10)",
				mnist, 10, NN_ERR_SHAPE, "layer 7 \"maxpool(2)\" does not fit its 1x1x64 input", "2x2 window");
	EXPECT_FAIL("conv(8, 29) dense(10)", mnist, 10, NN_ERR_SHAPE, "layer 1 \"conv(8, 29)\" does not fit its 28x28x1 input");
	EXPECT_FAIL("conv(2,5,2) dense(10)", tiny, 10, NN_ERR_SHAPE, "its 3x3x1 input", "5x5 window");
	EXPECT_FAIL("dense(64) conv(8,3) dense(10)", mnist, 10, NN_ERR_SHAPE,
				"layer 2 \"conv(8,3)\" needs an image input", "64 values");
	EXPECT_FAIL("flatten relu maxpool(2) dense(10)", mnist, 10, NN_ERR_SHAPE, "layer 3 \"maxpool(2)\"");
	EXPECT_FAIL("dense(64) flatten dense(10)", mnist, 10, NN_ERR_SHAPE, "layer 2 \"flatten\" has nothing to flatten");
	EXPECT_FAIL("conv(32,3) relu maxpool(2) dense(128) relu", mnist, 10, NN_ERR_SHAPE,
				"the last layer must output 10 values (one per class), not 128", "end with dense(10)");
	EXPECT_FAIL("conv(32,3) relu", mnist, 10, NN_ERR_SHAPE, "not a 26x26x32 feature map", "dense(10)");
	EXPECT_FAIL("dense(10)", mnist, 7, NN_ERR_SHAPE, "must output 7 values", "end with dense(7)");
	EXPECT_FAIL("dense(10)", no_height, 10, NN_ERR_INVALID, "between 1 and 4096, not 0x28x1");
	EXPECT_FAIL("dense(10)", many_channels, 10, NN_ERR_INVALID, "28x28x4097");
	EXPECT_FAIL("dense(1)", mnist, 1, NN_ERR_INVALID, "classes must be between 2 and 4096, not 1");
}

T_CASE(test_spec_infer_input)
{
	nn_shape	s = {0};
	nn_status	st = {0};

	T_OK(nn_infer_input(&s, 784, &st) == NN_OK && shape_is(s, 28, 28, 1), "784 -> 28x28x1");
	T_OK(nn_infer_input(&s, 1, &st) == NN_OK && shape_is(s, 1, 1, 1), "1 -> 1x1x1");
	T_OK(nn_infer_input(&s, 4096 * 4096, &st) == NN_OK && shape_is(s, 4096, 4096, 1), "4096^2");
	T_OK(nn_infer_input(&s, 4097 * 4097, &st) == NN_ERR_SHAPE, "4097^2 is over the limit");
	T_OK(nn_infer_input(&s, 3072, &st) == NN_OK && shape_is(s, 32, 32, 3), "3072 = 3 x 32^2 -> 32x32x3 (RGB)");
	T_OK(nn_infer_input(&s, 3, &st) == NN_OK && shape_is(s, 1, 1, 3), "3 -> 1x1x3");
	T_OK(nn_infer_input(&s, 3 * 4096 * 4096, &st) == NN_OK && shape_is(s, 4096, 4096, 3), "3 x 4096^2");
	T_OK(nn_infer_input(&s, 3 * 4097 * 4097, &st) == NN_ERR_SHAPE, "3 x 4097^2 is over the limit");
	T_OK(nn_infer_input(&s, 2000, &st) == NN_ERR_SHAPE && strstr(st.msg, "2000") &&
		 strstr(st.msg, "\"input\": [h, w, c]"), "2000 (neither) needs input: %s", st.msg);
	T_OK(nn_infer_input(&s, 0, &st) == NN_ERR_SHAPE, "0");
	T_OK(nn_infer_input(&s, -4, &st) == NN_ERR_SHAPE, "negative");
	T_OK(nn_infer_input(&s, 2147395600, &st) == NN_ERR_SHAPE, "46340^2 is too wide, not an overflow");
}

/* the ResNet-style network of the graph issue */
#define RESNET_SPEC "conv(16,3,1,same) batchnorm relu residual(conv(16,3,1,same) batchnorm relu conv(16,3,1,same) batchnorm) relu maxpool(2) conv(32,3,1,same) batchnorm relu residual(conv(32,3,1,same) batchnorm relu conv(32,3,1,same) batchnorm) relu maxpool(2) globalavgpool dense(10)"

T_CASE(test_spec_graph_forms)
{
	nn_net		net,
				again;
	nn_status	st = {0};
	const char *specs[] = {
		RESNET_SPEC,
		"conv(8,3,2,1) relu residual(conv(16,3,2,1) relu conv(16,3,1,same)) globalavgpool dense(4)",
		"a: conv(6,3,1,same) relu b: conv(4,1) from(a) c: conv(6,3,1,same,groups=3) relu d: relu concat(b, d) avgpool(2) dense(4)",
		"x: conv(4,3,1,same) y: conv(4,3,1,same) z: relu add(x, z) residual(relu residual(conv(4,1))) flatten dense(4)",
		"r: residual(conv(3,3,1,same)) s: residual(conv(3,3,1,same)) add(r, s, input) dense(4)",
	};
	nn_shape	in = {12, 12, 3};

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
	{
		if (!T_OK(nn_net_build(&net, specs[i], in, 4, &st) == NN_OK || i == 0, "builds %s: %s", specs[i], st.msg))
			continue;
		if (i == 0)
			continue;
		T_OK(nn_net_build(&again, net.spec, in, 4, &st) == NN_OK &&
			 again.nlayers == net.nlayers && memcmp(again.layers, net.layers, sizeof(nn_layer) * net.nlayers) == 0 &&
			 strcmp(again.spec, net.spec) == 0, "canonical form rebuilds the same graph: %s", net.spec);
	}
	/* the ResNet on Fashion-MNIST images: PyTorch's parameter and buffer counts */
	if (T_OK(nn_net_build(&net, RESNET_SPEC, mnist, 10, &st) == NN_OK, "the ResNet builds: %s", st.msg))
	{
		nn_tensor_info t[64];
		int			n = nn_net_tensors(&net, t, 64);
		int			found = 0;

		T_OK(net.nparams == 28554, "28554 parameters, as torch counts them (got %zu)", net.nparams);
		T_OK(net.nbuffers == 3 * (2 * 16 + 1) + 3 * (2 * 32 + 1), "294 buffer values (got %zu)", net.nbuffers);
		T_OK(n == 13 * 2 + 6 * 3, "%d tensors: 13 weights and biases, 6 batch norms' 3 buffers", n);
		for (int k = 0; k < n && k < 64; k++)
		{
			if (strcmp(t[k].name, "3.body.0.weight") == 0 && t[k].ndims == 4 && t[k].shape[0] == 16 &&
				t[k].shape[1] == 16 && t[k].shape[2] == 3)
				found |= 1;
			if (strcmp(t[k].name, "3.body.4.num_batches_tracked") == 0 && t[k].ndims == 0 && t[k].buffer)
				found |= 2;
			if (strcmp(t[k].name, "14.weight") == 0 && t[k].shape[0] == 10 && t[k].shape[1] == 32)
				found |= 4;
			if (strcmp(t[k].name, "9.body.1.running_var") == 0 && t[k].shape[0] == 32 && t[k].buffer)
				found |= 8;
		}
		T_OK(found == 15, "module paths: 3.body.0.weight, 3.body.4.num_batches_tracked, 9.body.1.running_var, 14.weight (%d)", found);
		T_OK(strstr(net.spec, "residual(conv(16,3,1,same) batchnorm relu conv(16,3,1,same) batchnorm) relu") != NULL &&
			 strstr(net.spec, "globalavgpool flatten dense(10)") != NULL, "canonical: %s", net.spec);
	}
	/* a projection shortcut is named <block>.proj */
	if (T_OK(nn_net_build(&net, "conv(8,3) residual(conv(16,3,2,1) relu) dense(4)", in, 4, &st) == NN_OK, "%s", st.msg))
	{
		nn_tensor_info t[16];
		int			n = nn_net_tensors(&net, t, 16);

		T_OK(n == 8 && strcmp(t[4].name, "1.proj.weight") == 0 && t[4].shape[0] == 16 && t[4].shape[2] == 1 &&
			 strcmp(t[2].name, "1.body.0.weight") == 0 && strcmp(t[6].name, "3.weight") == 0,
			 "projection named 1.proj after 1.body.0; dense is 3 (flatten 2): %s %s %s",
			 n > 4 ? t[4].name : "", n > 2 ? t[2].name : "", n > 6 ? t[6].name : "");
	}
}

T_CASE(test_spec_graph_errors)
{
	nn_shape	in = {12, 12, 3};

	EXPECT_FAIL("conv(4,3) add(a, b) dense(4)", in, 4, NN_ERR_SHAPE, "names \"a\", which no earlier layer is labelled");
	EXPECT_FAIL("a: conv(4,3) a: relu dense(4)", in, 4, NN_ERR_SHAPE, "labelled \"a\"", "an earlier layer has");
	EXPECT_FAIL("input: conv(4,3) dense(4)", in, 4, NN_ERR_SHAPE, "kept for the network's input");
	EXPECT_FAIL("from(nowhere) dense(4)", in, 4, NN_ERR_SHAPE, "from(nowhere) names no earlier labelled layer");
	EXPECT_FAIL("residual() dense(4)", in, 4, NN_ERR_PARSE, "residual needs at least one layer");
	EXPECT_FAIL("residual(conv(4,3) dense(4)", in, 4, NN_ERR_PARSE, "expected \")\" to close residual");
	EXPECT_FAIL("conv(4,3)) dense(4)", in, 4, NN_ERR_PARSE, "unmatched \")\"");
	EXPECT_FAIL("flatten residual(dense(8)) dense(4)", in, 4, NN_ERR_SHAPE, "changes the shape of a flat vector");
	EXPECT_FAIL("residual(conv(4,5)) dense(4)", in, 4, NN_ERR_SHAPE, "no strided 1x1 convolution");
	EXPECT_FAIL("a: conv(4,3) b: conv(5,3) from(a) c: conv(4,1) add(b, c) dense(4)", in, 4, NN_ERR_SHAPE,
				"adds tensors of different shapes");
	EXPECT_FAIL("a: conv(4,3) b: conv(5,5) concat(a, b) dense(4)", in, 4, NN_ERR_SHAPE, "joins tensors of different sizes");
	EXPECT_FAIL("conv(6,3,groups=4) dense(4)", in, 4, NN_ERR_PARSE, "must be a multiple of groups");
	EXPECT_FAIL("conv(6,3,groups=2) dense(4)", in, 4, NN_ERR_SHAPE, "which do not divide 3 channels");
	EXPECT_FAIL("conv(6,3,stride=2) dense(4)", in, 4, NN_ERR_PARSE, "one named argument, groups=G");
	EXPECT_FAIL("add(1, 2) dense(4)", in, 4, NN_ERR_PARSE, "takes the labels of its inputs");
	EXPECT_FAIL("9lives: conv(4,3) dense(4)", in, 4, NN_ERR_PARSE, "expected a layer name");
	EXPECT_FAIL("conv(4,3) globalavgpool(2) dense(4)", in, 4, NN_ERR_PARSE, "globalavgpool takes no arguments");
	EXPECT_FAIL("dense(8) batchnorm avgpool(2) dense(4)", in, 4, NN_ERR_SHAPE, "needs an image input");
}
