/*
 * fuzz_options.c: libFuzzer harness of the training-options JSON parser,
 * nn_options_parse(), on raw bytes (not NUL-terminated: the harness hands
 * over an exact-size heap copy, so a read past len is an ASan report).
 *
 * Options that parse must round-trip: nn_options_to_json() writes them in
 * fewer than NN_MAX_OPTIONS_JSON bytes (model.c stores them in a buffer of
 * that size), the text parses again to the same struct, and writing into
 * any shorter buffer fails cleanly with -1 and a terminated buffer.
 */
#include "fuzz.h"
#include "options.h"

/* Compare every field of two option sets; floats bit for bit. */
static void
check_same_options(const nn_options *a, const nn_options *b, const char *json)
{
	FUZZ_CHECK(strcmp(a->layers, b->layers) == 0, "layers differ after a round trip through %s", json);
	FUZZ_CHECK(memcmp(&a->input, &b->input, sizeof(nn_shape)) == 0, "input differs: %s", json);
	FUZZ_CHECK(a->classes == b->classes && a->epochs == b->epochs &&
			   a->batch_size == b->batch_size && a->optimizer == b->optimizer &&
			   a->lr_schedule == b->lr_schedule && a->seed == b->seed &&
			   a->normalize == b->normalize && a->threads == b->threads &&
			   a->record_times == b->record_times,
			   "an integer option differs after a round trip through %s", json);
	FUZZ_CHECK(memcmp(&a->learning_rate, &b->learning_rate, sizeof(float)) == 0 &&
			   memcmp(&a->momentum, &b->momentum, sizeof(float)) == 0 &&
			   memcmp(&a->weight_decay, &b->weight_decay, sizeof(float)) == 0 &&
			   memcmp(&a->validation_fraction, &b->validation_fraction, sizeof(float)) == 0,
			   "a float option differs after a round trip through %s "
			   "(lr %.9g/%.9g momentum %.9g/%.9g decay %.9g/%.9g validation %.9g/%.9g)", json,
			   a->learning_rate, b->learning_rate, a->momentum, b->momentum,
			   a->weight_decay, b->weight_decay, a->validation_fraction, b->validation_fraction);
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *json = malloc(size ? size : 1);
	char	   *out;
	nn_options	o,
				back;
	nn_status	st;
	int			rc,
				n;

	if (json == NULL)
		abort();
	memcpy(json, data, size);
	nn_options_default(&o);
	memset(&st, 0, sizeof(st));
	rc = nn_options_parse(&o, json, size, &st);
	free(json);
	if (rc != NN_OK)
	{
		fuzz_check_failure(rc, &st);
		return 0;
	}
	FUZZ_CHECK(memchr(o.layers, '\0', NN_MAX_SPEC) != NULL, "layers not NUL-terminated");

	out = malloc(NN_MAX_OPTIONS_JSON);
	if (out == NULL)
		abort();
	n = nn_options_to_json(&o, out, NN_MAX_OPTIONS_JSON);
	FUZZ_CHECK(n >= 0 && n < NN_MAX_OPTIONS_JSON, "canonical JSON does not fit %d bytes (%d)",
			   NN_MAX_OPTIONS_JSON, n);
	FUZZ_CHECK((size_t) n == strlen(out), "to_json returned %d for %zu bytes", n, strlen(out));

	/* the canonical text parses, over the defaults, to the same options */
	nn_options_default(&back);
	memset(&st, 0, sizeof(st));
	{
		char	   *exact = malloc((size_t) n ? (size_t) n : 1);

		if (exact == NULL)
			abort();
		memcpy(exact, out, (size_t) n);
		rc = nn_options_parse(&back, exact, (size_t) n, &st);
		free(exact);
	}
	FUZZ_CHECK(rc == NN_OK, "canonical JSON does not parse: %s: %s", st.msg, out);
	check_same_options(&o, &back, out);

	/* too-small buffers: -1, terminated, nothing written past the end */
	for (size_t len = 1; len <= (size_t) n; len += 1 + len / 3)
	{
		char	   *small = malloc(len);

		if (small == NULL)
			abort();
		FUZZ_CHECK(nn_options_to_json(&o, small, len) == -1, "to_json into %zu of %d bytes did not fail", len, n);
		FUZZ_CHECK(memchr(small, '\0', len) != NULL, "to_json left %zu bytes unterminated", len);
		free(small);
	}
	free(out);
	return 0;
}
