/*
 * tune.h: model selection over one buffered copy of the rows.
 *
 * A search is a list of trials, each a complete set of training options
 * (the host expands the grid or draws the random trials); every trial is
 * exactly the nn_train of its options on the same rows, so the same
 * hold-out (the split depends on the rows and the seed, which a search
 * keeps fixed). Grid and random search train the trials one after another
 * to their epochs; successive halving trains every trial min_epochs, keeps
 * the best 1/eta (rounded up) and trains those on, eta times as many
 * epochs each rung, until the options' epochs, resuming the runs where they
 * stopped (nn_trainer). The best trial by the metric of its last epoch
 * wins (an accuracy tie: the lower loss; a loss tie: the higher accuracy;
 * then the earlier trial); its model is the result, with the record
 * of every trial in model->tuning.
 */
#ifndef MLCNN_TUNE_H
#define MLCNN_TUNE_H

#include "train.h"

#define NN_MAX_TRIALS 256		/* trials of one search */
#define NN_MAX_TUNE_KEYS 16		/* options a search varies */

/* the numbers are stored in models: never change them */
enum
{
	NN_TUNE_GRID = 0,
	NN_TUNE_RANDOM = 1,
	NN_TUNE_HALVING = 2
};

enum
{
	NN_METRIC_VAL_ACCURACY = 0, /* higher is better */
	NN_METRIC_VAL_LOSS = 1		/* lower is better */
};

typedef struct nn_trial
{
	nn_options	opt;			/* every option of the trial */
	float		val_acc;		/* of its last epoch; NaN when it failed */
	float		val_loss;
	int32_t		epochs;			/* epochs trained */
	float		seconds;		/* wall-clock seconds of its training (0 without record_times) */
	double		wall_s;			/* the same, always measured (not stored in the model) */
	int32_t		failed;			/* diverged (non-finite loss): never the best */
} nn_trial;

struct nn_tuning
{
	int32_t		strategy;		/* NN_TUNE_* */
	int32_t		metric;			/* NN_METRIC_* */
	int32_t		eta;			/* halving: keep 1/eta per rung */
	int32_t		min_epochs;		/* halving: the first rung */
	int32_t		nkeys;			/* the options the search varies, for display */
	char		keys[NN_MAX_TUNE_KEYS][NN_MAX_OPTION_NAME + 1];
	int32_t		ntrials;
	int32_t		best;			/* index of the winner */
	nn_trial   *trials;
};

/* "grid", "random", "halving"; "validation_accuracy", "validation_loss" (NULL when out of range) */
const char *nn_tune_strategy_name(int32_t v);
const char *nn_tune_metric_name(int32_t v);

/* called after each trial (grid, random) or each trial of a rung (halving), on the calling thread */
typedef void (*nn_trial_hook) (void *ctx, const nn_tuning *t, int32_t trial, int32_t rung,
							   int32_t done, int32_t total, double eta_s);

/*
 * Run the search t (strategy, metric, eta, min_epochs, trials[].opt set)
 * on rows: fills every trial's figures, t->best, and out with the winning
 * model, whose out->tuning points at t (the caller owns t). Every trial's
 * options are checked before any training (NN_ERR_INVALID naming the
 * trial). hooks as nn_train's (on_epoch is not called); on_trial may be
 * NULL. Errors as nn_train's; a trial that diverges is recorded as failed
 * and the search goes on, unless every trial fails.
 */
int			nn_tune(nn_model *out, const nn_rows *rows, nn_tuning *t, const nn_train_hooks *hooks,
					nn_trial_hook on_trial, nn_timing *timing, const nn_allocator *a, nn_status *st);

/*
 * Bytes a search needs beyond the rows (saturating): the largest working
 * set of one trial, plus, for halving, what every paused trial keeps, plus
 * the best model so far.
 */
size_t		nn_tune_work_bytes(const nn_tuning *t, nn_shape in, int64_t n, nn_status *st);

#endif							/* MLCNN_TUNE_H */
