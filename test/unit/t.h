/*
 * t.h: the smallest test harness that will do. Test files register their
 * cases with T_CASE (a constructor, so no shared list to edit); main.c runs
 * them in name order and prints TAP ("ok N - name") and a closing
 * "N passed, N failed" line.
 */
#ifndef MLCNN_T_H
#define MLCNN_T_H

#include <math.h>
#include <stdio.h>

typedef void (*t_fn) (void);
void		t_register(const char *name, t_fn fn);
/* record one assertion; returns ok */
int			t_check(int ok, const char *file, int line, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));
/* largest |a-b| / (atol + rtol*|b|) style comparison; prints max diff */
int			t_close_arrays(const float *got, const float *want, size_t n, double atol,
						   double rtol, const char *what, const char *file, int line);

#define T_CASE(name) \
	static void name(void); \
	__attribute__((constructor)) static void name##_register(void) { t_register(#name, name); } \
	static void name(void)

#define T_OK(cond, ...) t_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define T_CLOSE(got, want, n, atol, rtol, what) \
	t_close_arrays((got), (want), (n), (atol), (rtol), (what), __FILE__, __LINE__)

#endif
