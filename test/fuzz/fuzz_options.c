/*
 * fuzz_options.c: libFuzzer harness of the option table's setters, through
 * the text form bench/nn_bench --set takes: the input is lines of
 * "key=value" (at most 64), each applied with nn_options_assign() over the
 * options so far (raw bytes in exact-size copies, so a read past a line is
 * an ASan report).
 *
 * A failed assignment must set a status with a message and change nothing.
 * After the last line, every option must hold a value its own setter accepts,
 * and the options must survive the round trip of nn_option_format() and
 * nn_options_set_parsed() (floats compared bit for bit); they must also
 * survive the typed values of nn_options_set() built from the getters, as
 * the model reader applies them.
 */
#include "fuzz.h"
#include "options.h"

#define MAX_LINES 64

/* Every option of a and b holds the same bytes. */
static int
same_options(const nn_options *a, const nn_options *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* Apply each option's value of o, read by the getters, to defaults; they must give o back. */
static void
check_typed_round_trip(const nn_options *o)
{
	nn_options	back;
	nn_status	st;

	nn_options_default(&back);
	memcpy(back.layers, o->layers, sizeof(o->layers));	/* the bytes after the NUL too */
	for (int i = 0; i < nn_option_count; i++)
	{
		const nn_option_def *d = &nn_option_table[i];
		int			rc = NN_OK;

		memset(&st, 0, sizeof(st));
		switch (d->type)
		{
			case NN_OPTION_INT:
				rc = nn_options_set_int(&back, d->name, nn_option_int(o, d), &st);
				break;
			case NN_OPTION_FLOAT:
				rc = nn_options_set_float(&back, d->name, nn_option_float(o, d), &st);
				break;
			case NN_OPTION_BOOL:
				rc = nn_options_set_bool(&back, d->name, (int) nn_option_int(o, d), &st);
				break;
			case NN_OPTION_TEXT:
			case NN_OPTION_ENUM:
				if (d->type == NN_OPTION_ENUM)
					rc = nn_options_set_text(&back, d->name, nn_option_text(o, d), &st);
				break;
			case NN_OPTION_SHAPE:
				rc = nn_options_set_shape(&back, d->name, nn_option_shape(o, d), &st);
				break;
		}
		FUZZ_CHECK(rc == NN_OK, "the value of %s does not set again: %s", d->name, st.msg);
	}
	FUZZ_CHECK(same_options(o, &back), "options changed through their typed values");
}

/* Format every option of o and parse it back; the options must be the same. */
static void
check_text_round_trip(const nn_options *o)
{
	static char buf[NN_MAX_SPEC + 64];
	nn_options	back;
	nn_status	st;

	nn_options_default(&back);
	memcpy(back.layers, o->layers, sizeof(o->layers));
	for (int i = 0; i < nn_option_count; i++)
	{
		const nn_option_def *d = &nn_option_table[i];
		int			n = nn_option_format(o, d, buf, sizeof(buf));

		FUZZ_CHECK(n >= 0 && (size_t) n < sizeof(buf), "%s formats to %d bytes", d->name, n);
		if (d->type == NN_OPTION_TEXT)
			continue;			/* text is itself; layers may hold any bytes but NUL */
		memset(&st, 0, sizeof(st));
		FUZZ_CHECK(nn_options_set_parsed(&back, d->name, buf, &st) == NN_OK,
				   "%s=%s does not read back: %s", d->name, buf, st.msg);
	}
	FUZZ_CHECK(same_options(o, &back), "options changed through their text");
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nn_options	o,
				before;
	nn_status	st;
	size_t		start = 0;
	int			lines = 0;

	nn_options_default(&o);
	while (start <= size && lines++ < MAX_LINES)
	{
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t		end = nl ? (size_t) (nl - data) : size;
		char	   *line = malloc(end - start + 1);
		int			rc;

		if (line == NULL)
			abort();
		memcpy(line, data + start, end - start);
		line[end - start] = '\0';
		before = o;
		memset(&st, 0, sizeof(st));
		rc = nn_options_assign(&o, line, &st);
		free(line);
		if (rc != NN_OK)
		{
			fuzz_check_failure(rc, &st);
			FUZZ_CHECK(same_options(&o, &before), "a failed assignment changed the options");
		}
		FUZZ_CHECK(memchr(o.layers, '\0', NN_MAX_SPEC) != NULL, "layers not NUL-terminated");
		if (nl == NULL)
			break;
		start = end + 1;
	}
	check_typed_round_trip(&o);
	check_text_round_trip(&o);
	return 0;
}
