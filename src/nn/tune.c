/*
 * tune.c: grid, random and successive-halving search over one copy of the
 * rows (see tune.h). Each trial is an nn_trainer run of its options; a
 * search holds the rows once, the working set of the trial that trains,
 * the best model so far, and (halving) what each paused run keeps.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tune.h"

static const char *const strategy_names[] = {"grid", "random", "halving"};	/* NN_TUNE_* order */
static const char *const metric_names[] = {"validation_accuracy", "validation_loss"};	/* NN_METRIC_* */

/* The name of a strategy, or NULL. */
const char *
nn_tune_strategy_name(int32_t v)
{
	return v >= 0 && v < (int32_t) (sizeof(strategy_names) / sizeof(strategy_names[0])) ? strategy_names[v] : NULL;
}

/* The name of a metric, or NULL. */
const char *
nn_tune_metric_name(int32_t v)
{
	return v >= 0 && v < (int32_t) (sizeof(metric_names) / sizeof(metric_names[0])) ? metric_names[v] : NULL;
}

/*
 * Is trial a better than trial b by the search's metric? An accuracy tie
 * (a few hundred held-out rows make them common) goes to the lower loss, a
 * loss tie to the higher accuracy; failed trials are never better.
 */
static int
better(const nn_tuning *t, const nn_trial *a, const nn_trial *b)
{
	if (a->failed || isnan(t->metric == NN_METRIC_VAL_LOSS ? a->val_loss : a->val_acc))
		return 0;
	if (b->failed || isnan(t->metric == NN_METRIC_VAL_LOSS ? b->val_loss : b->val_acc))
		return 1;
	if (t->metric == NN_METRIC_VAL_LOSS)
		return a->val_loss < b->val_loss || (a->val_loss == b->val_loss && a->val_acc > b->val_acc);
	return a->val_acc > b->val_acc || (a->val_acc == b->val_acc && a->val_loss < b->val_loss);
}

/* The network of trial i's options on the rows' input, checked as nn_train checks it. */
static int
trial_net(const nn_tuning *t, int i, nn_shape in, int64_t n, nn_net *net, nn_status *st)
{
	const nn_options *o = &t->trials[i].opt;
	char		spec[NN_MAX_SPEC];
	int64_t		ntrain = n - (int64_t) floor((double) n * o->validation_fraction);

	nn_options_spec(o, spec, sizeof(spec));
	if (nn_net_build(net, spec, in, o->classes, st) != NN_OK)
	{
		char		msg[NN_MSG_LEN];

		snprintf(msg, sizeof(msg), "%s", st->msg);
		return nn_fail(st, NN_ERR_INVALID, "trial %d: %s", i + 1, msg);
	}
	if (o->batch_size > ntrain)
		return nn_fail(st, NN_ERR_INVALID, "trial %d: batch_size %d is larger than the %lld training rows",
					   i + 1, o->batch_size, (long long) ntrain);
	return NN_OK;
}

/* Bytes a search needs beyond the rows (see tune.h). */
size_t
nn_tune_work_bytes(const nn_tuning *t, nn_shape in, int64_t n, nn_status *st)
{
	size_t		work = 0,
				keep = 0,
				model = 0;

	for (int i = 0; i < t->ntrials; i++)
	{
		nn_net		net;
		size_t		w,
					m;

		if (trial_net(t, i, in, n, &net, st) != NN_OK)
			return SIZE_MAX;
		w = nn_train_work_bytes(&net, &t->trials[i].opt, n);
		m = (net.nparams + net.nbuffers) * sizeof(float) + (size_t) t->trials[i].opt.epochs * sizeof(nn_epoch);
		work = w > work ? w : work;
		model = m > model ? m : model;
		if (t->strategy == NN_TUNE_HALVING)
			keep += nn_trainer_state_bytes(&net, &t->trials[i].opt, n);
	}
	return work + keep + model;
}

/* A copy of the search's record for the winning model, from a. */
static nn_tuning *
copy_record(const nn_tuning *t, const nn_allocator *a)
{
	nn_tuning  *c = nn_alloc(a, sizeof(nn_tuning));

	if (c == NULL)
		return NULL;
	*c = *t;
	c->trials = nn_alloc(a, (size_t) t->ntrials * sizeof(nn_trial));
	if (c->trials == NULL)
	{
		nn_free(a, c);
		return NULL;
	}
	memcpy(c->trials, t->trials, (size_t) t->ntrials * sizeof(nn_trial));
	return c;
}

/* The figures of a run's last epoch into its trial. */
static void
record(nn_trial *tr, const nn_model *m, double seconds)
{
	const nn_epoch *e = m->nepochs > 0 ? &m->history[m->nepochs - 1] : NULL;

	tr->epochs = m->nepochs;
	tr->val_acc = e ? e->val_acc : NAN;
	tr->val_loss = e ? e->val_loss : NAN;
	tr->wall_s = seconds;
	tr->seconds = tr->opt.record_times ? (float) seconds : 0.0f;
}

/* Grid and random search: every trial to its epochs, one after another; the best model kept. */
static int
tune_sequential(nn_model *out, const nn_rows *rows, nn_tuning *t, const nn_train_hooks *hooks,
				nn_trial_hook on_trial, nn_timing *timing, const nn_allocator *a, nn_status *st)
{
	nn_model	m;
	double		t0 = nn_now();
	int			have = 0;

	for (int i = 0; i < t->ntrials; i++)
	{
		nn_trial   *tr = &t->trials[i];
		nn_trainer *run;
		double		ts = nn_now();
		int			rc = nn_trainer_begin(&run, &m, rows, &tr->opt, NULL, hooks, timing, a, st);

		if (rc == NN_OK)
		{
			rc = nn_trainer_run(run, tr->opt.epochs);
			if (rc == NN_OK)
				rc = nn_trainer_end(run);
			else
				nn_trainer_free(run);
		}
		if (rc == NN_ERR_DATA)
			tr->failed = 1;		/* diverged: on record, never the best */
		else if (rc != NN_OK)
		{
			if (have)
				nn_model_free(out, a);
			return rc;
		}
		else
		{
			record(tr, &m, nn_now() - ts);
			if (!have || better(t, tr, &t->trials[t->best]))
			{
				if (have)
					nn_model_free(out, a);
				*out = m;
				t->best = i;
				have = 1;
			}
			else
				nn_model_free(&m, a);
		}
		if (on_trial)
		{
			double		per = (nn_now() - t0) / (i + 1);

			on_trial(hooks ? hooks->ctx : NULL, t, i, 0, i + 1, t->ntrials, per * (t->ntrials - i - 1));
		}
	}
	if (!have)
		return nn_fail(st, NN_ERR_DATA, "every trial of the search diverged; lower the learning rates");
	return NN_OK;
}

/*
 * Successive halving: rungs of min_epochs * eta^k epochs (the last one the
 * options' epochs); after each, the best ceil(n / eta) train on. A lone
 * survivor trains on to the end at once.
 */
static int
tune_halving(nn_model *out, const nn_rows *rows, nn_tuning *t, const nn_train_hooks *hooks,
			 nn_trial_hook on_trial, nn_timing *timing, const nn_allocator *a, nn_status *st)
{
	int			n = t->ntrials;
	nn_trainer **runs = nn_calloc(a, (size_t) n, sizeof(nn_trainer *));
	nn_model   *models = nn_calloc(a, (size_t) n, sizeof(nn_model));
	int		   *alive = nn_calloc(a, (size_t) n, sizeof(int));
	double	   *secs = nn_calloc(a, (size_t) n, sizeof(double));
	int			nalive = n,
				rung = 0,
				rc = NN_OK,
				done = 0,
				total = 0;
	int32_t		epochs = t->min_epochs,
				last = t->trials[0].opt.epochs;
	double		t0 = nn_now();

	if (!runs || !models || !alive || !secs)
	{
		rc = nn_fail(st, NN_ERR_NOMEM, "out of memory for %d trials", n);
		goto done;
	}
	/* the trials each rung trains, for the time left */
	for (int k = n, e = t->min_epochs;; k = (k + t->eta - 1) / t->eta, e = e * t->eta)
	{
		total += k;
		if (e >= last || k == 1)
			break;				/* a lone survivor trains to the end in its rung */
	}
	for (int i = 0; i < n && rc == NN_OK; i++)
	{
		alive[i] = i;
		rc = nn_trainer_begin(&runs[i], &models[i], rows, &t->trials[i].opt, NULL, hooks, timing, a, st);
		if (rc == NN_OK)
			nn_trainer_pause(runs[i]);
	}
	while (rc == NN_OK)
	{
		int			keep;

		if (nalive == 1 || epochs > last)
			epochs = last;
		for (int k = 0; k < nalive && rc == NN_OK; k++)
		{
			int			i = alive[k];
			nn_trial   *tr = &t->trials[i];
			double		ts = nn_now();

			if (!tr->failed)
			{
				rc = nn_trainer_run(runs[i], epochs);
				secs[i] += nn_now() - ts;
				if (rc == NN_ERR_DATA)
				{
					tr->failed = 1;
					nn_trainer_pause(runs[i]);
					record(tr, &models[i], secs[i]);
					rc = NN_OK;
				}
				else if (rc == NN_OK)
				{
					nn_trainer_pause(runs[i]);
					record(tr, &models[i], secs[i]);
				}
			}
			done++;
			if (rc == NN_OK && on_trial)
			{
				double		per = (nn_now() - t0) / done;

				on_trial(hooks ? hooks->ctx : NULL, t, i, rung, done, total,
						 per * (total > done ? total - done : 0));
			}
		}
		if (rc != NN_OK || epochs >= last)
			break;
		/* the best 1/eta go on, in the order of their ranks (a stable insertion sort) */
		for (int k = 1; k < nalive; k++)
		{
			int			x = alive[k],
						j = k;

			while (j > 0 && better(t, &t->trials[x], &t->trials[alive[j - 1]]))
			{
				alive[j] = alive[j - 1];
				j--;
			}
			alive[j] = x;
		}
		keep = (nalive + t->eta - 1) / t->eta;	/* rounded up: a rounding never drops a contender */
		for (int k = keep; k < nalive; k++)
		{
			nn_trainer_free(runs[alive[k]]);	/* frees its model too */
			runs[alive[k]] = NULL;
		}
		nalive = keep;
		epochs *= t->eta;
		rung++;
	}
	if (rc == NN_OK)
	{
		int			best = -1;

		for (int k = 0; k < nalive; k++)
			if (best < 0 || better(t, &t->trials[alive[k]], &t->trials[best]))
				best = alive[k];
		if (best < 0 || t->trials[best].failed)
			rc = nn_fail(st, NN_ERR_DATA, "every trial of the search diverged; lower the learning rates");
		else
		{
			t->best = best;
			rc = nn_trainer_end(runs[best]);
			runs[best] = NULL;
			*out = models[best];
		}
	}
done:
	for (int i = 0; runs && i < n; i++)
		if (runs[i])
			nn_trainer_free(runs[i]);
	nn_free(a, runs);
	nn_free(a, models);
	nn_free(a, alive);
	nn_free(a, secs);
	return rc;
}

/* Run the search t on rows (see tune.h). */
int
nn_tune(nn_model *out, const nn_rows *rows, nn_tuning *t, const nn_train_hooks *hooks,
		nn_trial_hook on_trial, nn_timing *timing, const nn_allocator *a, nn_status *st)
{
	nn_shape	in = t->trials[0].opt.input;
	int			rc;

	memset(out, 0, sizeof(*out));
	if (t->ntrials < 1 || t->ntrials > NN_MAX_TRIALS)
		return nn_fail(st, NN_ERR_INVALID, "a search has 1 to %d trials, not %d", NN_MAX_TRIALS, t->ntrials);
	if (rows->n == 0)
		return nn_fail(st, NN_ERR_INVALID, "no training rows: every row was NULL or the input was empty");
	if (in.h == 0 && nn_infer_input(&in, rows->row_bytes / nn_dtype_size(rows->dtype), st) != NN_OK)
		return st->code;
	/* every trial's options, before any training */
	for (int i = 0; i < t->ntrials; i++)
	{
		nn_net		net;

		t->trials[i].failed = 0;
		t->trials[i].epochs = 0;
		t->trials[i].val_acc = t->trials[i].val_loss = NAN;
		t->trials[i].seconds = 0;
		t->trials[i].wall_s = 0;
		if (trial_net(t, i, in, rows->n, &net, st) != NN_OK)
			return st->code;
		if (!(t->trials[i].opt.validation_fraction > 0))
			return nn_fail(st, NN_ERR_INVALID, "trial %d: a search needs a hold-out: validation_fraction > 0", i + 1);
		if (t->strategy == NN_TUNE_HALVING && t->trials[i].opt.epochs != t->trials[0].opt.epochs)
			return nn_fail(st, NN_ERR_INVALID, "halving trains every trial to the same epochs");
	}
	if (t->strategy == NN_TUNE_HALVING &&
		(t->eta < 2 || t->min_epochs < 1 || t->min_epochs >= t->trials[0].opt.epochs))
		return nn_fail(st, NN_ERR_INVALID, "halving needs eta >= 2 and 1 <= min_epochs < epochs (%d, %d, %d)",
					   t->eta, t->min_epochs, t->trials[0].opt.epochs);
	t->best = 0;
	rc = t->strategy == NN_TUNE_HALVING ?
		tune_halving(out, rows, t, hooks, on_trial, timing, a, st) :
		tune_sequential(out, rows, t, hooks, on_trial, timing, a, st);
	if (rc != NN_OK)
		return rc;
	out->tuning = copy_record(t, a);
	if (out->tuning == NULL)
	{
		nn_model_free(out, a);
		return nn_fail(st, NN_ERR_NOMEM, "out of memory for the record of the search");
	}
	return NN_OK;
}
