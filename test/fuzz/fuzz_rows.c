/*
 * fuzz_rows.c: libFuzzer harness of nn_rows_deserialize(), which rebuilds
 * the buffered training rows that parallel workers hand to each other.
 *
 * Whatever deserialises must serialise back to exactly the input bytes.
 */
#include "fuzz.h"
#include "train.h"

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *copy = malloc(size ? size : 1);
	nn_rows		r;
	nn_status	st;
	int			rc;

	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	nn_rows_init(&r, 0);
	memset(&st, 0, sizeof(st));
	rc = nn_rows_deserialize(&r, copy, size, &nn_malloc_allocator, &st);
	if (rc != NN_OK)
		fuzz_check_failure(rc, &st);
	else
	{
		size_t		len = nn_rows_serial_size(&r);
		uint8_t    *back = malloc(len);

		if (back == NULL)
			abort();
		FUZZ_CHECK(len == size, "serial size %zu of a %zu-byte input", len, size);
		nn_rows_serialize(&r, back);
		FUZZ_CHECK(memcmp(back, copy, size) == 0, "rows do not serialise back to the input");
		for (int64_t i = 0; i < r.n; i++)
			(void) nn_rows_label(&r, i);
		free(back);
	}
	nn_rows_free(&r, &nn_malloc_allocator);
	free(copy);
	return 0;
}
