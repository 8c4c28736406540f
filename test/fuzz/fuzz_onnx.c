/*
 * fuzz_onnx.c: libFuzzer harness of the ONNX reader, nn_model_from_onnx().
 *
 * Any bytes: the reader returns a status with a message, or a model whose
 * network built (so its resource bound held) and which exports to ONNX and
 * imports again as the same network with the same parameters.
 */
#include "fuzz.h"
#include "model.h"
#include "onnx.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nn_onnx_import_opts o;
	nn_model	m,
				again;
	nn_status	st;
	uint8_t    *file;
	size_t		len;
	int			rc;

	memset(&o, 0, sizeof(o));
	rc = nn_model_from_onnx(&m, data, size, &o, &nn_malloc_allocator, &st);
	if (rc != NN_OK)
	{
		fuzz_check_failure(rc, &st);
		return 0;
	}
	FUZZ_CHECK(m.net.nlayers > 0 && m.params != NULL, "a model without layers or parameters");
	rc = nn_model_to_onnx(&m, "fuzz", &file, &len, &nn_malloc_allocator, &st);
	FUZZ_CHECK(rc == NN_OK, "an imported model does not export: %s", st.msg);
	rc = nn_model_from_onnx(&again, file, len, &o, &nn_malloc_allocator, &st);
	FUZZ_CHECK(rc == NN_OK, "an export does not import: %s", st.msg);
	FUZZ_CHECK(again.net.nparams == m.net.nparams &&
			   memcmp(again.params, m.params, sizeof(float) * m.net.nparams) == 0,
			   "the round trip changed the parameters");
	nn_model_free(&again, &nn_malloc_allocator);
	free(file);
	nn_model_free(&m, &nn_malloc_allocator);
	return 0;
}
