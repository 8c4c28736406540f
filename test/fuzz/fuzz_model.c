/*
 * fuzz_model.c: libFuzzer harness of the model reader, nn_model_read().
 *
 * Every input is read twice: as given, which mostly exercises the header,
 * length and checksum checks, and with its length field and CRC-32 patched
 * to match, so that the fuzzer gets past the checksum to every section and
 * field behind it (format 2 and, for the seed written by the format-1
 * code, format 1). A blob that reads must then survive a write/read round
 * trip (always format 2) whose second write gives the same bytes as the
 * first.
 */
#include "fuzz.h"
#include "model.h"

/* Serialise m into a fresh heap buffer of exactly nn_model_size(m) bytes. */
static uint8_t *
write_blob(const nn_model *m, size_t *len)
{
	uint8_t    *buf;

	*len = nn_model_size(m);
	buf = malloc(*len);
	if (buf == NULL)
		abort();
	nn_model_write(m, buf);
	return buf;
}

/* Read one blob and check what a successful read promises. */
static void
check_blob(const uint8_t *data, size_t size)
{
	nn_model	m,
				again;
	nn_status	st;
	int			rc;
	uint8_t    *blob1,
			   *blob2;
	size_t		len1,
				len2;

	memset(&st, 0, sizeof(st));
	rc = nn_model_read(&m, data, size, &nn_malloc_allocator, &st);
	if (rc != NN_OK)
	{
		fuzz_check_failure(rc, &st);
		FUZZ_CHECK(m.params == NULL && m.history == NULL && m.buffers == NULL && m.options_v1 == NULL,
				   "failed read left allocations behind");
		return;
	}
	FUZZ_CHECK(m.params != NULL, "no parameters after a successful read");
	FUZZ_CHECK(m.nepochs == 0 || m.history != NULL, "no history for %d epochs", m.nepochs);

	FUZZ_CHECK(m.format == 1 || m.format == 2, "read a format %d", m.format);
	FUZZ_CHECK(m.options_v1 == NULL || (m.format == 1 && m.options_v1[0] == '{'),
			   "format-1 options text where there should be none");

	/* write, read back, write again: the two writes must agree */
	blob1 = write_blob(&m, &len1);
	memset(&st, 0, sizeof(st));
	rc = nn_model_read(&again, blob1, len1, &nn_malloc_allocator, &st);
	FUZZ_CHECK(rc == NN_OK, "a model that read does not read back after writing: %s", st.msg);
	FUZZ_CHECK(again.net.nparams == m.net.nparams && strcmp(again.net.spec, m.net.spec) == 0,
			   "architecture changed in a round trip");
	FUZZ_CHECK(memcmp(again.params, m.params, m.net.nparams * sizeof(float)) == 0,
			   "parameters changed in a round trip");
	FUZZ_CHECK(memcmp(&again.options, &m.options, sizeof(m.options)) == 0, "options changed in a round trip");
	FUZZ_CHECK(again.format == 2, "a written model reads as format %d", again.format);
	blob2 = write_blob(&again, &len2);
	FUZZ_CHECK(len1 == len2 && memcmp(blob1, blob2, len1) == 0,
			   "second write differs from the first (%zu vs %zu bytes)", len1, len2);
	free(blob1);
	free(blob2);
	nn_model_free(&again, &nn_malloc_allocator);
	nn_model_free(&m, &nn_malloc_allocator);
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *copy;

	/* exact-size heap copy: reading one byte past the end is an ASan report */
	copy = malloc(size ? size : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	check_blob(copy, size);

	/* the same bytes with a matching length field and checksum */
	if (size >= 28)
	{
		uint64_t	total = size;
		uint32_t	crc;

		for (int i = 0; i < 8; i++)
			copy[16 + i] = (uint8_t) (total >> (8 * i));
		crc = nn_crc32(copy, size - 4);
		for (int i = 0; i < 4; i++)
			copy[size - 4 + i] = (uint8_t) (crc >> (8 * i));
		check_blob(copy, size);
	}
	free(copy);
	return 0;
}
