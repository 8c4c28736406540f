/*
 * tune.c: tune_conv2d's search jsonb into the core's search (src/nn/tune.c),
 * the search's progress, and its record as jsonb for model_info.
 *
 * The search object holds "space" (option name to a list of values),
 * "strategy" (grid, random, halving), "metric" (validation_accuracy,
 * validation_loss), "trials" (random), "eta" and "min_epochs" (halving);
 * every other key is a fixed training option for every trial, through the
 * same table as train_conv2d's options. The space's values go through that
 * table too, one trial at a time, so a bad value is refused, naming the key
 * and the value, before any training. The options that decide which rows
 * are held out (seed, validation_fraction) and what the rows are (input,
 * classes) stay fixed: every trial sees the same hold-out.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "compat.h"
#include "mlcnn_pg.h"
#include "tune.h"

/* the search's own keys; everything else is a fixed training option */
static const char *const search_keys[] = {"space", "strategy", "metric", "trials", "eta", "min_epochs"};

/* options a space may not vary: they decide the hold-out or the rows' meaning */
static const char *const fixed_only[] = {"seed", "validation_fraction", "input", "classes", "threads"};

/* Error 22023 about the search. */
static void
search_error(const char *msg, const char *hint) pg_attribute_noreturn();

static void
search_error(const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("tune_conv2d search: %s", msg),
			 hint ? errhint("%s", hint) : 0));
}

/* A search key holding one of names (its index), or dflt when absent. */
static int32
name_member(Jsonb *jb, const char *key, const char *(*name_of) (int32_t), int32 dflt)
{
	JsonbValue *v = MlcnnJsonbMember(jb, key);
	char	   *s;
	StringInfoData allowed;

	if (v == NULL)
		return dflt;
	s = v->type == jbvString ? pnstrdup(v->val.string.val, v->val.string.len) : NULL;
	initStringInfo(&allowed);
	for (int32 i = 0; name_of(i) != NULL; i++)
	{
		if (s && pg_strcasecmp(s, name_of(i)) == 0)
			return i;
		appendStringInfo(&allowed, "%s\"%s\"", i ? ", " : "", name_of(i));
	}
	search_error(psprintf("\"%s\" must be one of %s", key, allowed.data), NULL);
}

/* The search's fixed options over *o: validation_fraction 0.1 unless given, then every non-search key. */
void
MlcnnTuneFixedOptions(nn_options *o, Jsonb *search)
{
	Jsonb	   *fixed = search;
	nn_status	st;

	if (!JB_ROOT_IS_OBJECT(search))
		search_error("the search must be a JSON object", NULL);
	for (int i = 0; i < (int) lengthof(search_keys); i++)
		fixed = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(fixed),
												   CStringGetTextDatum(search_keys[i])));
	nn_options_default(o);
	o->validation_fraction = 0.1f;
	if (MlcnnOptionsFromJsonb(o, fixed, &st) != NN_OK)
		MlcnnReportStatus(&st);
	if (!(o->validation_fraction > 0))
		search_error("validation_fraction must be > 0: the trials are compared on the held-out rows", NULL);
}

/* The trials of the search over the fixed options base, into t (trials palloc'd). */
void
MlcnnTuneSearch(nn_tuning *t, const nn_options *base, Jsonb *search)
{
	JsonbValue *space = MlcnnJsonbMember(search, "space");
	JsonbContainer *sc;
	JsonbIterator *it;
	JsonbIteratorToken r;
	JsonbValue	k,
				v;
	JsonbContainer *lists[NN_MAX_TUNE_KEYS];
	int			sizes[NN_MAX_TUNE_KEYS];
	double		grid = 1;
	int			n;
	int			idx[NN_MAX_TUNE_KEYS];
	int		   *combos;

	memset(t, 0, sizeof(*t));
	t->strategy = name_member(search, "strategy", nn_tune_strategy_name, NN_TUNE_GRID);
	t->metric = name_member(search, "metric", nn_tune_metric_name, NN_METRIC_VAL_ACCURACY);
	t->eta = MlcnnJsonbInt(search, "eta", 2, 16, 3, "tune_conv2d search: ");
	t->min_epochs = MlcnnJsonbInt(search, "min_epochs", 1, NN_MAX_EPOCHS, 1, "tune_conv2d search: ");
	if (space == NULL || space->type != jbvBinary || !JsonContainerIsObject(space->val.binary.data) ||
		JsonContainerSize(space->val.binary.data) == 0)
		search_error("\"space\" must be an object of option names to lists of values",
					 "For example {\"space\": {\"learning_rate\": [0.001, 0.01]}}.");
	sc = space->val.binary.data;
	if (JsonContainerSize(sc) > NN_MAX_TUNE_KEYS)
		search_error(psprintf("\"space\" varies %d options, more than %d", (int) JsonContainerSize(sc), NN_MAX_TUNE_KEYS), NULL);
	it = JsonbIteratorInit(sc);
	while ((r = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (r != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		r = JsonbIteratorNext(&it, &v, true);
		for (int i = 0; i < (int) lengthof(fixed_only); i++)
			if (strcmp(key, fixed_only[i]) == 0)
				search_error(psprintf("\"space\" may not vary \"%s\"", key),
							 "seed and validation_fraction decide the hold-out, input and classes what the rows are, threads never changes a model: give them as fixed options.");
		if (strcmp(key, "augment") == 0)
			search_error("\"space\" may not vary \"augment\"; vary augment_hflip and augment_shift", NULL);
		if (strcmp(key, "epochs") == 0 && t->strategy == NN_TUNE_HALVING)
			search_error("halving decides the epochs of each trial: give \"epochs\" (the most) as a fixed option", NULL);
		if (nn_option_find(key) == NULL)
		{
			nn_options	probe = *base;
			nn_status	st;
			JsonbValue	null;

			null.type = jbvNull;
			MlcnnOptionSetJsonb(&probe, key, &null, &st);	/* the core's "unknown option" with a suggestion */
			search_error(psprintf("\"space\": %s", st.msg), NULL);
		}
		if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data) || JsonContainerSize(v.val.binary.data) == 0)
			search_error(psprintf("\"space\": \"%s\" must be a non-empty list of values", key), NULL);
		snprintf(t->keys[t->nkeys], sizeof(t->keys[t->nkeys]), "%s", key);
		lists[t->nkeys] = v.val.binary.data;
		sizes[t->nkeys] = (int) JsonContainerSize(v.val.binary.data);
		grid *= sizes[t->nkeys];
		t->nkeys++;
	}
	if (t->strategy == NN_TUNE_RANDOM)
	{
		if (MlcnnJsonbMember(search, "trials") == NULL)
			search_error("random search needs \"trials\": how many to draw", NULL);
		n = MlcnnJsonbInt(search, "trials", 1, NN_MAX_TRIALS, 0, "tune_conv2d search: ");
		if (n > grid)
			search_error(psprintf("\"trials\": %d is more than the %.0f combinations of the space", n, grid),
						 "Use \"strategy\": \"grid\" to train them all.");
	}
	else
	{
		if (MlcnnJsonbMember(search, "trials") != NULL)
			search_error("\"trials\" is for random search", NULL);
		if (grid > NN_MAX_TRIALS)
			search_error(psprintf("the grid has %.0f combinations, more than the %d one search trains", grid, NN_MAX_TRIALS),
						 "Use \"strategy\": \"random\" with \"trials\", or fewer values.");
		n = (int) grid;
	}
	if (t->strategy != NN_TUNE_HALVING && (MlcnnJsonbMember(search, "eta") || MlcnnJsonbMember(search, "min_epochs")))
		search_error("\"eta\" and \"min_epochs\" are for halving", NULL);
	if (t->strategy == NN_TUNE_HALVING && t->min_epochs >= base->epochs)
		search_error(psprintf("halving needs more epochs than min_epochs: epochs %d, min_epochs %d",
							  base->epochs, t->min_epochs),
					 "Set \"epochs\" (the most any trial trains) above \"min_epochs\".");

	/* the combinations, as value indices: all of them, or distinct random draws */
	combos = palloc(sizeof(int) * n * Max(t->nkeys, 1));
	if (t->strategy == NN_TUNE_RANDOM)
	{
		nn_rng		rng;
		int			made = 0;

		nn_rng_seed(&rng, base->seed ^ 0x7a3c5f1e9b2d4c68ULL);
		while (made < n)
		{
			bool		dup = false;

			CHECK_FOR_INTERRUPTS();
			for (int j = 0; j < t->nkeys; j++)
				idx[j] = (int) nn_rng_below(&rng, (uint32_t) sizes[j]);
			for (int m = 0; m < made && !dup; m++)
				dup = memcmp(&combos[m * t->nkeys], idx, sizeof(int) * t->nkeys) == 0;
			if (!dup)
				memcpy(&combos[made++ * t->nkeys], idx, sizeof(int) * t->nkeys);
		}
	}
	else
		for (int c = 0; c < n; c++)
		{
			int			rest = c;

			/* the last key varies fastest */
			for (int j = t->nkeys - 1; j >= 0; j--)
			{
				combos[c * t->nkeys + j] = rest % sizes[j];
				rest /= sizes[j];
			}
		}

	t->ntrials = n;
	t->trials = palloc0(sizeof(nn_trial) * n);
	for (int c = 0; c < n; c++)
	{
		nn_trial   *tr = &t->trials[c];

		tr->opt = *base;
		for (int j = 0; j < t->nkeys; j++)
		{
			JsonbValue *val = getIthJsonbValueFromContainer(lists[j], (uint32) combos[c * t->nkeys + j]);
			nn_status	st;

			if (MlcnnOptionSetJsonb(&tr->opt, t->keys[j], val, &st) != NN_OK)
				search_error(psprintf("\"space\": %s", st.msg), NULL);
		}
	}
}

/* The varied options of a trial as "key=value, ..." for messages. */
char *
MlcnnTrialText(const nn_tuning *t, int i)
{
	MlcnnJson	j;
	Jsonb	   *jb;

	MlcnnJsonInit(&j);
	MlcnnJsonBeginObject(&j, NULL);
	for (int k = 0; k < t->nkeys; k++)
	{
		const nn_option_def *d = nn_option_find(t->keys[k]);

		if (d)
			MlcnnJsonOption(&j, d, &t->trials[i].opt);
	}
	MlcnnJsonEndObject(&j);
	jb = MlcnnJsonFinish(&j);
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* The record of a search under key "tuning" for model_info. */
void
MlcnnJsonTuning(MlcnnJson *j, const nn_tuning *t)
{
	MlcnnJsonBeginObject(j, "tuning");
	MlcnnJsonText(j, "strategy", nn_tune_strategy_name(t->strategy));
	MlcnnJsonText(j, "metric", nn_tune_metric_name(t->metric));
	if (t->strategy == NN_TUNE_HALVING)
	{
		MlcnnJsonInt(j, "eta", t->eta);
		MlcnnJsonInt(j, "min_epochs", t->min_epochs);
	}
	MlcnnJsonInt(j, "winner", t->best + 1);
	MlcnnJsonBeginArray(j, "trials");
	for (int i = 0; i < t->ntrials; i++)
	{
		const nn_trial *tr = &t->trials[i];

		CHECK_FOR_INTERRUPTS();
		MlcnnJsonBeginObject(j, NULL);
		MlcnnJsonInt(j, "trial", i + 1);
		MlcnnJsonBeginObject(j, "options");
		for (int k = 0; k < t->nkeys; k++)
		{
			const nn_option_def *d = nn_option_find(t->keys[k]);

			if (d)
				MlcnnJsonOption(j, d, &tr->opt);
		}
		MlcnnJsonEndObject(j);
		MlcnnJsonFloat4(j, "validation_accuracy", tr->val_acc);
		MlcnnJsonFloat4(j, "validation_loss", tr->val_loss);
		MlcnnJsonInt(j, "epochs", tr->epochs);
		MlcnnJsonFloat4(j, "seconds", tr->opt.record_times ? tr->seconds : NAN);
		if (tr->failed)
			MlcnnJsonBool(j, "diverged", true);
		MlcnnJsonEndObject(j);
	}
	MlcnnJsonEndArray(j);
	MlcnnJsonEndObject(j);
}
