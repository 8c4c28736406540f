/*
 * metrics.h: classification metrics over batches of logits (evaluate()):
 * rows, correct, mean loss, the confusion matrix, per-class precision and
 * recall. Counts only, so partial results merge exactly.
 */
#ifndef NN_METRICS_H
#define NN_METRICS_H

#include <stdint.h>

#include "nn.h"

/* more classes: no confusion matrix (8 MB of counts at most) */
#define NN_METRICS_MATRIX_CLASSES 1024

typedef struct nn_metrics
{
	int			classes;
	int64_t		rows;
	int64_t		correct;
	double		loss;			/* sum of the rows' losses */
	int64_t    *confusion;		/* classes x classes, [true][predicted]; NULL past NN_METRICS_MATRIX_CLASSES */
	int64_t    *hits;			/* per class: predicted and true */
	int64_t    *predicted;		/* per class: predicted */
	int64_t    *present;		/* per class: true */
} nn_metrics;

/* empty metrics for classes classes; NN_ERR_NOMEM when the counts do not fit */
int			nn_metrics_init(nn_metrics *m, int classes, const nn_allocator *a, nn_status *st);
/* count B rows: their logits (B x classes), labels in [0, classes), and their summed loss */
void		nn_metrics_add(nn_metrics *m, const float *logits, const int32_t *labels, int B, double loss_sum);
/* m += other (same classes) */
void		nn_metrics_merge(nn_metrics *m, const nn_metrics *other);
/* correct / rows; NAN without rows */
double		nn_metrics_accuracy(const nn_metrics *m);
/* loss / rows; NAN without rows */
double		nn_metrics_mean_loss(const nn_metrics *m);
/* of the rows predicted k, the share that are k; NAN when none was */
double		nn_metrics_precision(const nn_metrics *m, int k);
/* of the rows of class k, the share predicted k; NAN when there were none */
double		nn_metrics_recall(const nn_metrics *m, int k);
/* the most classes partial metrics may have (NN_MAX_CLASSES of the options) */
#define NN_MAX_CLASSES_METRICS 4096
/* partial metrics as bytes (for aggregate states that cross processes or servers) and back */
size_t		nn_metrics_serial_size(const nn_metrics *m);
void		nn_metrics_serialize(const nn_metrics *m, uint8_t *buf);
int			nn_metrics_deserialize(nn_metrics *m, const uint8_t *buf, size_t len, const nn_allocator *a,
								   nn_status *st);
/* release what init allocated */
void		nn_metrics_free(nn_metrics *m, const nn_allocator *a);

#endif							/* NN_METRICS_H */
