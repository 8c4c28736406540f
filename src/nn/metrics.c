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

/* Serialised bytes of metrics of classes classes (a matrix up to NN_METRICS_MATRIX_CLASSES). */
static size_t
serial_bytes(int classes)
{
	size_t		K = classes > 0 ? (size_t) classes : 1;

	return 4 + 8 + 8 + 8 + (classes <= NN_METRICS_MATRIX_CLASSES ? K * K * 8 : 0) + 3 * K * 8;
}

/* Serialised size: i32 classes, i64 rows, i64 correct, f64 loss, then the counts. */
size_t
nn_metrics_serial_size(const nn_metrics *m)
{
	return serial_bytes(m->classes);
}

/* The metrics into buf (nn_metrics_serial_size bytes), host order: partial results of one query. */
void
nn_metrics_serialize(const nn_metrics *m, uint8_t *buf)
{
	size_t		K = m->classes > 0 ? (size_t) m->classes : 1;
	int32_t		classes = m->classes;

	memcpy(buf, &classes, 4);
	memcpy(buf + 4, &m->rows, 8);
	memcpy(buf + 12, &m->correct, 8);
	memcpy(buf + 20, &m->loss, 8);
	buf += 28;
	if (m->confusion)
	{
		memcpy(buf, m->confusion, K * K * 8);
		buf += K * K * 8;
	}
	memcpy(buf, m->hits, 3 * K * 8);
}

/* Metrics from nn_metrics_serialize's bytes, every length and count checked. */
int
nn_metrics_deserialize(nn_metrics *m, const uint8_t *buf, size_t len, const nn_allocator *a, nn_status *st)
{
	int32_t		classes;
	size_t		K;

	if (len < 28)
		return nn_fail(st, NN_ERR_CORRUPT, "partial metrics are truncated");
	memcpy(&classes, buf, 4);
	if (classes < 1 || classes > NN_MAX_CLASSES_METRICS)
		return nn_fail(st, NN_ERR_CORRUPT, "partial metrics have %d classes", classes);
	/* the length first, so a forged class count allocates nothing */
	if (len != serial_bytes(classes))
		return nn_fail(st, NN_ERR_CORRUPT, "partial metrics of %d classes take %zu bytes, not %zu",
					   classes, serial_bytes(classes), len);
	if (nn_metrics_init(m, classes, a, st) != NN_OK)
		return st->code;
	K = (size_t) classes;
	memcpy(&m->rows, buf + 4, 8);
	memcpy(&m->correct, buf + 12, 8);
	memcpy(&m->loss, buf + 20, 8);
	buf += 28;
	if (m->confusion)
	{
		memcpy(m->confusion, buf, K * K * 8);
		buf += K * K * 8;
	}
	memcpy(m->hits, buf, 3 * K * 8);
	/* the counts must agree: every row is of one class and predicted as one */
	{
		int64_t		hits = 0,
					predicted = 0,
					present = 0,
					matrix = 0,
					diagonal = 0;
		int			bad = 0;

		for (size_t k = 0; k < K; k++)
		{
			bad |= m->hits[k] < 0 || m->predicted[k] < m->hits[k] || m->present[k] < m->hits[k];
			hits += m->hits[k];
			predicted += m->predicted[k];
			present += m->present[k];
		}
		for (size_t i = 0; m->confusion && i < K * K; i++)
		{
			bad |= m->confusion[i] < 0;
			matrix += m->confusion[i];
			diagonal += i % (K + 1) == 0 ? m->confusion[i] : 0;
		}
		if (bad || hits != m->correct || predicted != m->rows || present != m->rows ||
			(m->confusion && (matrix != m->rows || diagonal != m->correct)))
		{
			nn_metrics_free(m, a);
			return nn_fail(st, NN_ERR_CORRUPT, "partial metrics have counts that do not agree");
		}
	}
	if (m->rows < 0 || m->correct < 0 || m->correct > m->rows || !(m->loss >= 0))
	{
		nn_metrics_free(m, a);
		return nn_fail(st, NN_ERR_CORRUPT, "partial metrics have impossible counts");
	}
	return NN_OK;
}
