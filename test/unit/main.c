/*
 * main.c: runs every registered unit-test case of the core (or those whose
 * name contains argv[1]) and prints TAP plus a closing summary line.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"

#define T_MAX_CASES 512

static struct
{
	const char *name;
	t_fn		fn;
}			cases[T_MAX_CASES];
static int	ncases;
static int	npassed,
			nfailed;
static const char *current;

/* Add a case; called from constructors before main. */
void
t_register(const char *name, t_fn fn)
{
	if (ncases < T_MAX_CASES)
	{
		cases[ncases].name = name;
		cases[ncases].fn = fn;
		ncases++;
	}
}

/* Print one TAP line for an assertion. */
int
t_check(int ok, const char *file, int line, const char *fmt,...)
{
	va_list		ap;

	if (ok)
		npassed++;
	else
		nfailed++;
	printf("%s %d - %s: ", ok ? "ok" : "not ok", npassed + nfailed, current);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!ok)
		printf(" (%s:%d)", file, line);
	printf("\n");
	fflush(stdout);
	return ok;
}

/* Compare arrays elementwise: ok when |got-want| <= atol + rtol*|want| everywhere. */
int
t_close_arrays(const float *got, const float *want, size_t n, double atol,
			   double rtol, const char *what, const char *file, int line)
{
	double		maxdiff = 0,
				worst = 0;
	size_t		at = 0;

	for (size_t i = 0; i < n; i++)
	{
		double		d = fabs((double) got[i] - (double) want[i]);
		double		lim = atol + rtol * fabs((double) want[i]);

		if (!(d <= lim) && (d / lim > worst || isnan(d)))
		{
			worst = isnan(d) ? INFINITY : d / lim;
			at = i;
		}
		if (d > maxdiff || isnan(d))
			maxdiff = d;
	}
	if (!t_check(worst == 0, file, line,
				 "%s: %zu values, largest difference %.3g (atol %.1g, rtol %.1g)",
				 what, n, maxdiff, atol, rtol))
	{
		printf("#   worst at index %zu: got %.9g want %.9g\n", at, got[at], want[at]);
		return 0;
	}
	return 1;
}

/* sort helper */
static int
cmp_case(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Run the cases whose name contains argv[1] (all without one). */
int
main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;

	qsort(cases, ncases, sizeof(cases[0]), cmp_case);
	for (int i = 0; i < ncases; i++)
	{
		if (filter && strstr(cases[i].name, filter) == NULL)
			continue;
		current = cases[i].name;
		printf("# %s\n", current);
		cases[i].fn();
	}
	printf("%d passed, %d failed\n", npassed, nfailed);
	return nfailed ? 1 : 0;
}
