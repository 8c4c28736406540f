/*
 * metrics.c: classification metrics over batches of logits; see metrics.h.
 */
#include <math.h>
#include <string.h>

#include "metrics.h"

/* empty metrics for classes classes */
int
nn_metrics_init(nn_metrics *m, int classes, const nn_allocator *a, nn_status *st)
{
	size_t		K = classes > 0 ? (size_t) classes : 1;

	memset(m, 0, sizeof(*m));
	m->classes = classes;
	if (classes <= NN_METRICS_MATRIX_CLASSES)
		m->confusion = nn_calloc(a, K * K, sizeof(int64_t));
	m->hits = nn_calloc(a, 3 * K, sizeof(int64_t));
	if (m->hits == NULL || (classes <= NN_METRICS_MATRIX_CLASSES && m->confusion == NULL))
	{
		nn_metrics_free(m, a);
		return nn_fail(st, NN_ERR_NOMEM, "out of memory for the counts of %d classes", classes);
	}
	m->predicted = m->hits + K;
	m->present = m->hits + 2 * K;
	return NN_OK;
}

/* count B rows of logits against their labels */
void
nn_metrics_add(nn_metrics *m, const float *logits, const int32_t *labels, int B, double loss_sum)
{
	int			K = m->classes;

	for (int b = 0; b < B; b++)
	{
		int			p = nn_argmax(logits + (size_t) b * K, K),
					y = labels[b];

		if (m->confusion)
			m->confusion[(size_t) y * K + p]++;
		m->hits[p] += (p == y);
		m->correct += (p == y);
		m->predicted[p]++;
		m->present[y]++;
	}
	m->rows += B;
	m->loss += loss_sum;
}

/* m += other */
void
nn_metrics_merge(nn_metrics *m, const nn_metrics *other)
{
	size_t		K = (size_t) m->classes;

	if (m->confusion && other->confusion)
		for (size_t i = 0; i < K * K; i++)
			m->confusion[i] += other->confusion[i];
	for (size_t k = 0; k < 3 * K; k++)
		m->hits[k] += other->hits[k];
	m->rows += other->rows;
	m->correct += other->correct;
	m->loss += other->loss;
}

/* correct / rows */
double
nn_metrics_accuracy(const nn_metrics *m)
{
	return m->rows > 0 ? (double) m->correct / (double) m->rows : NAN;
}

/* loss / rows */
double
nn_metrics_mean_loss(const nn_metrics *m)
{
	return m->rows > 0 ? m->loss / (double) m->rows : NAN;
}

/* hits / predicted of class k */
double
nn_metrics_precision(const nn_metrics *m, int k)
{
	return m->predicted[k] > 0 ? (double) m->hits[k] / (double) m->predicted[k] : NAN;
}

/* hits / present of class k */
double
nn_metrics_recall(const nn_metrics *m, int k)
{
	return m->present[k] > 0 ? (double) m->hits[k] / (double) m->present[k] : NAN;
}

/* release the counts */
void
nn_metrics_free(nn_metrics *m, const nn_allocator *a)
{
	nn_free(a, m->confusion);
	nn_free(a, m->hits);
	m->confusion = NULL;
	m->hits = m->predicted = m->present = NULL;
}
