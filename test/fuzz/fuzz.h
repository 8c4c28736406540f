/*
 * fuzz.h: what the libFuzzer harnesses share. A harness states the
 * properties a parser promises (never read out of bounds, a status with a
 * message on every failure, round trips that give back what went in) and
 * aborts when one does not hold, which libFuzzer reports as a crash and
 * saves as a reproducer.
 */
#ifndef MLCNN_FUZZ_H
#define MLCNN_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a broken promise: print it and crash so that libFuzzer keeps the input */
#define FUZZ_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fprintf(stderr, "\n"); \
			abort(); \
		} \
	} while (0)

/* A failed call must leave a code and a NUL-terminated, non-empty message. */
static inline void
fuzz_check_failure(int rc, const nn_status *st)
{
	FUZZ_CHECK(rc != NN_OK && st->code == rc, "returned %d, status code %d", rc, (int) st->code);
	FUZZ_CHECK(memchr(st->msg, '\0', NN_MSG_LEN) != NULL, "message not NUL-terminated");
	FUZZ_CHECK(st->msg[0] != '\0', "empty error message (code %d)", rc);
}

/* A copy of data as a NUL-terminated heap string (ASan sees its exact end). */
static inline char *
fuzz_cstring(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif							/* MLCNN_FUZZ_H */
