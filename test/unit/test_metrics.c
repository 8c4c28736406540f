/*
 * test_metrics.c: evaluate()'s metrics in the core: counts, confusion
 * matrix, precision and recall (NAN where a class was never predicted or
 * never present), and merging partial counts.
 */
#include <math.h>
#include <string.h>

#include "metrics.h"
#include "nn.h"
#include "t.h"

/* six rows of three classes: predictions 0 0 1 1 1 0 against labels 0 1 1 1 0 0; class 2 never appears */
static const float logits6[6 * 3] = {
	3, 1, 0, 2, 1, 0, 0, 5, 1, 0, 2, 1, -1, 4, 0, 9, 0, 1,
};
static const int32_t labels6[6] = {0, 1, 1, 1, 0, 0};

/* the figures by hand */
T_CASE(test_metrics_counts)
{
	nn_metrics	m;
	nn_status	st;

	T_OK(nn_metrics_init(&m, 3, &nn_malloc_allocator, &st) == NN_OK, "init: %s", st.msg);
	nn_metrics_add(&m, logits6, labels6, 6, 1.5);
	T_OK(m.rows == 6 && m.correct == 4, "rows %lld, correct %lld", (long long) m.rows, (long long) m.correct);
	T_OK(fabs(nn_metrics_accuracy(&m) - 4.0 / 6) < 1e-12, "accuracy %g", nn_metrics_accuracy(&m));
	T_OK(fabs(nn_metrics_mean_loss(&m) - 0.25) < 1e-12, "mean loss %g", nn_metrics_mean_loss(&m));
	/* [true][predicted]: true 0 -> 0, 1, 0; true 1 -> 0, 1, 1 */
	T_OK(m.confusion[0] == 2 && m.confusion[1] == 1 && m.confusion[3] == 1 && m.confusion[4] == 2 &&
		 m.confusion[2] == 0 && m.confusion[8] == 0, "confusion matrix");
	T_OK(fabs(nn_metrics_precision(&m, 0) - 2.0 / 3) < 1e-12, "precision of 0: %g", nn_metrics_precision(&m, 0));
	T_OK(fabs(nn_metrics_recall(&m, 1) - 2.0 / 3) < 1e-12, "recall of 1: %g", nn_metrics_recall(&m, 1));
	T_OK(isnan(nn_metrics_precision(&m, 2)) && isnan(nn_metrics_recall(&m, 2)),
		 "class 2, never predicted nor present: NAN precision and recall");
	nn_metrics_free(&m, &nn_malloc_allocator);
}

/* two halves merged give the figures of the whole; no rows give NAN */
T_CASE(test_metrics_merge)
{
	nn_metrics	whole,
				a,
				b;
	nn_status	st;

	T_OK(nn_metrics_init(&whole, 3, &nn_malloc_allocator, &st) == NN_OK &&
		 nn_metrics_init(&a, 3, &nn_malloc_allocator, &st) == NN_OK &&
		 nn_metrics_init(&b, 3, &nn_malloc_allocator, &st) == NN_OK, "init");
	T_OK(isnan(nn_metrics_accuracy(&a)) && isnan(nn_metrics_mean_loss(&a)), "no rows: NAN accuracy and loss");
	nn_metrics_add(&whole, logits6, labels6, 6, 1.5);
	nn_metrics_add(&a, logits6, labels6, 2, 0.5);
	nn_metrics_add(&b, logits6 + 2 * 3, labels6 + 2, 4, 1.0);
	nn_metrics_merge(&a, &b);
	T_OK(a.rows == whole.rows && a.correct == whole.correct && a.loss == whole.loss, "merged counts");
	T_OK(memcmp(a.confusion, whole.confusion, sizeof(int64_t) * 9) == 0 &&
		 memcmp(a.hits, whole.hits, sizeof(int64_t) * 9) == 0, "merged matrix and per-class counts");
	nn_metrics_free(&whole, &nn_malloc_allocator);
	nn_metrics_free(&a, &nn_malloc_allocator);
	nn_metrics_free(&b, &nn_malloc_allocator);
}

/* past NN_METRICS_MATRIX_CLASSES no matrix is kept, the per-class counts still are */
T_CASE(test_metrics_many_classes)
{
	nn_metrics	m;
	nn_status	st;
	int			K = NN_METRICS_MATRIX_CLASSES + 1;
	float		logits[NN_METRICS_MATRIX_CLASSES + 1] = {0};
	int32_t		label = K - 1;

	logits[K - 1] = 1;
	T_OK(nn_metrics_init(&m, K, &nn_malloc_allocator, &st) == NN_OK, "init with %d classes", K);
	T_OK(m.confusion == NULL, "no confusion matrix past %d classes", NN_METRICS_MATRIX_CLASSES);
	nn_metrics_add(&m, logits, &label, 1, 0.0);
	T_OK(nn_metrics_precision(&m, K - 1) == 1.0 && nn_metrics_recall(&m, K - 1) == 1.0, "per-class figures");
	nn_metrics_free(&m, &nn_malloc_allocator);
}
