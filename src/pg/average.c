/*
 * average.c: the average_models(model, weight) aggregate, the average of
 * models of one architecture weighted by (for example) the rows each was
 * trained on: model averaging as MADlib does across Greenplum segments,
 * federated averaging in the literature, and train_distributed's combine
 * step.
 *
 * Its state is a bytea with a combine function, so Citus and parallel plans
 * split it: while rows are added it is an expanded object (the first
 * model's decoded form as the template, double sums of weight x parameter
 * and weight x buffer, the total weight); flattened, a partial:
 *
 *   8  magic "MLCNNAVG"
 *   8  f64 total weight      8  i64 models      8  i64 rows trained (sum)
 *   8  u64 template length, then the template model's blob
 *   then nparams f64 sums of weight x parameter, nbuffers f64 sums of
 *   weight x buffer
 *
 * The result is the template with the averaged parameters and buffers
 * (batch norm's running statistics are averaged the same way) and the
 * summed rows_trained; its options, normalisation and history are the
 * template's. Every model must have the template's architecture and input
 * normalisation (22023 otherwise); a NULL model or weight is skipped, a
 * weight that is not a finite number > 0 is 22023.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/expandeddatum.h"
#include "utils/memutils.h"

#include "compat.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(mlcnn_average_transfn);
PG_FUNCTION_INFO_V1(mlcnn_average_combinefn);
PG_FUNCTION_INFO_V1(mlcnn_average_finalfn);

#define AVG_HEADER 40

typedef struct AvgState
{
	ExpandedObjectHeader hdr;	/* first: an expanded object */
	MemoryContext cxt;
	MlcnnAlloc	alloc;
	bool		have;			/* a template was seen */
	nn_model	tmpl;			/* the first model, decoded */
	double	   *psum;			/* weight x parameter */
	double	   *bsum;			/* weight x buffer */
	double		weight;
	int64		models;
	int64		rows;
} AvgState;

static Size avg_flat_size(ExpandedObjectHeader *eohptr);
static void avg_flatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size);

static const ExpandedObjectMethods avg_methods = {avg_flat_size, avg_flatten};

/* A new, empty state under parent. */
static AvgState *
avg_new(MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "mlcnn average_models", ALLOCSET_DEFAULT_SIZES);
	AvgState   *s = MemoryContextAllocZero(cxt, sizeof(AvgState));

	EOH_init_header(&s->hdr, &avg_methods, cxt);
	s->cxt = cxt;
	MlcnnAllocInitAccounted(&s->alloc, cxt);
	return s;
}

/* Take m (decoded in the state's allocator) as the template, or check it against the template. */
static void
avg_check(AvgState *s, const nn_model *m)
{
	if (m->kind != NN_BLOB_MODEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("average_models averages models, not gradient blobs")));
	if (!s->have)
	{
		MlcnnCheckTrainBudget(sizeof(double) * (m->net.nparams + m->net.nbuffers),
							  "average_models holds double sums of the parameters.");
		s->tmpl = *m;
		s->psum = nn_calloc(&s->alloc.a, Max(m->net.nparams, 1), sizeof(double));
		s->bsum = nn_calloc(&s->alloc.a, Max(m->net.nbuffers, 1), sizeof(double));
		if (s->psum == NULL || s->bsum == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory for the sums of %zu parameters", m->net.nparams)));
		s->have = true;
		return;
	}
	if (!nn_net_same(&s->tmpl.net, &m->net, NULL, 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("average_models: the models have different architectures"),
				 errdetail("The first is %s on %dx%dx%d; another is %s on %dx%dx%d.",
						   s->tmpl.net.spec, s->tmpl.net.input.h, s->tmpl.net.input.w, s->tmpl.net.input.c,
						   m->net.spec, m->net.input.h, m->net.input.w, m->net.input.c)));
	if (s->tmpl.norm.mode != m->norm.mode || s->tmpl.norm.mean != m->norm.mean ||
		s->tmpl.norm.std != m->norm.std || s->tmpl.norm.dtype != m->norm.dtype)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("average_models: the models normalise their input differently"),
				 errhint("Average models trained on from one model (train_conv2d's init_model), which keep its normalisation.")));
}

/* Add weight x m (m's parameters and buffers) to the sums. */
static void
avg_add(AvgState *s, const nn_model *m, double weight)
{
	for (Size i = 0; i < m->net.nparams; i++)
		s->psum[i] += weight * m->params[i];
	for (Size i = 0; i < m->net.nbuffers; i++)
		s->bsum[i] += weight * m->buffers[i];
	s->weight += weight;
	s->models++;
	s->rows += m->rows_trained;
}

/* Merge a flat partial into s. */
static void
avg_merge_partial(AvgState *s, const uint8 *p, Size len)
{
	double		weight;
	int64		models,
				rows;
	uint64		tlen;
	nn_model	m;
	nn_status	st;
	Size		need;

	if (len < AVG_HEADER || memcmp(p, "MLCNNAVG", 8) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("average_models: not a partial result of average_models")));
	memcpy(&weight, p + 8, 8);
	memcpy(&models, p + 16, 8);
	memcpy(&rows, p + 24, 8);
	memcpy(&tlen, p + 32, 8);
	if (models == 0 && tlen == 0 && len == AVG_HEADER)
		return;					/* a partial that saw no model */
	if (!(weight > 0) || !isfinite(weight) || models < 1 || rows < 0 || tlen > len - AVG_HEADER)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("average_models: a corrupt partial result")));
	if (nn_model_read(&m, p + AVG_HEADER, tlen, &s->alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	need = AVG_HEADER + tlen + sizeof(double) * (m.net.nparams + m.net.nbuffers);
	if (len != need)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("average_models: a partial result of %zu bytes, not %zu", len, need)));
	avg_check(s, &m);
	p += AVG_HEADER + tlen;
	for (Size i = 0; i < m.net.nparams; i++, p += 8)
	{
		double		v;

		memcpy(&v, p, 8);
		s->psum[i] += v;
	}
	for (Size i = 0; i < m.net.nbuffers; i++, p += 8)
	{
		double		v;

		memcpy(&v, p, 8);
		s->bsum[i] += v;
	}
	s->weight += weight;
	s->models += models;
	s->rows += rows;
	if (s->tmpl.params != m.params)
		nn_model_free(&m, &s->alloc.a);
}

/* The state in d: ours, or a flat partial made into a new one under parent. */
static AvgState *
avg_of(Datum d, MemoryContext parent)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	AvgState   *s;
	bytea	   *flat;

	if (VARATT_IS_EXTERNAL_EXPANDED(v) && DatumGetEOHP(d)->eoh_methods == &avg_methods)
		return (AvgState *) DatumGetEOHP(d);
	flat = DatumGetByteaPP(d);
	s = avg_new(parent);
	avg_merge_partial(s, (const uint8 *) VARDATA_ANY(flat), VARSIZE_ANY_EXHDR(flat));
	return s;
}

/* Bytes of the flat partial. */
static Size
avg_flat_size(ExpandedObjectHeader *eohptr)
{
	AvgState   *s = (AvgState *) eohptr;

	if (!s->have)
		return VARHDRSZ + AVG_HEADER;
	return VARHDRSZ + AVG_HEADER + nn_model_size(&s->tmpl) +
		sizeof(double) * (s->tmpl.net.nparams + s->tmpl.net.nbuffers);
}

/* Write the flat partial. */
static void
avg_flatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	AvgState   *s = (AvgState *) eohptr;
	uint8	   *p = (uint8 *) VARDATA(result);
	uint64		tlen = s->have ? nn_model_size(&s->tmpl) : 0;

	memset(result, 0, allocated_size);
	SET_VARSIZE(result, allocated_size);
	memcpy(p, "MLCNNAVG", 8);
	memcpy(p + 8, &s->weight, 8);
	memcpy(p + 16, &s->models, 8);
	memcpy(p + 24, &s->rows, 8);
	memcpy(p + 32, &tlen, 8);
	if (!s->have)
		return;
	p += AVG_HEADER;
	nn_model_write(&s->tmpl, p);
	p += tlen;
	memcpy(p, s->psum, sizeof(double) * s->tmpl.net.nparams);
	p += sizeof(double) * s->tmpl.net.nparams;
	memcpy(p, s->bsum, sizeof(double) * s->tmpl.net.nbuffers);
}

/* average_models transition: add weight x model. */
Datum
mlcnn_average_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	AvgState   *s;
	double		weight;
	bytea	   *blob;
	nn_model	m;
	nn_status	st;

	MlcnnAggContext(fcinfo, &aggcxt, "average_models");
	s = PG_ARGISNULL(0) ? avg_new(aggcxt) : avg_of(PG_GETARG_DATUM(0), aggcxt);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
	weight = PG_GETARG_FLOAT8(2);
	if (!isfinite(weight) || !(weight > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("average_models: a weight must be a finite number > 0, not %g", weight)));
	blob = PG_GETARG_BYTEA_PP(1);
	if (nn_model_read(&m, (const uint8_t *) VARDATA_ANY(blob), VARSIZE_ANY_EXHDR(blob), &s->alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	MlcnnModelOptionsV1(&m);
	avg_check(s, &m);
	avg_add(s, &m, weight);
	if (s->tmpl.params != m.params)
		nn_model_free(&m, &s->alloc.a);
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

/* average_models combine: two partial sums added. */
Datum
mlcnn_average_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	AvgState   *s;
	bytea	   *flat;

	MlcnnAggContext(fcinfo, &aggcxt, "average_models");
	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	s = PG_ARGISNULL(0) ? avg_new(aggcxt) : avg_of(PG_GETARG_DATUM(0), aggcxt);
	if (!PG_ARGISNULL(1))
	{
		flat = DatumGetByteaPP(PG_GETARG_DATUM(1));
		avg_merge_partial(s, (const uint8 *) VARDATA_ANY(flat), VARSIZE_ANY_EXHDR(flat));
	}
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

/* average_models final: the template with the weighted means; NULL without models. */
Datum
mlcnn_average_finalfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	AvgState   *s;
	nn_model	out;
	bytea	   *result;

	MlcnnAggContext(fcinfo, &aggcxt, "average_models");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = avg_of(PG_GETARG_DATUM(0), aggcxt);
	if (!s->have || s->models == 0)
		PG_RETURN_NULL();
	out = s->tmpl;
	out.params = palloc(sizeof(float) * Max(out.net.nparams, 1));
	out.buffers = out.net.nbuffers ? palloc(sizeof(float) * out.net.nbuffers) : NULL;
	out.tuning = NULL;
	out.rounds = NULL;
	out.rows_trained = s->rows;
	for (Size i = 0; i < out.net.nparams; i++)
		out.params[i] = (float) (s->psum[i] / s->weight);
	for (Size i = 0; i < out.net.nbuffers; i++)
		out.buffers[i] = (float) (s->bsum[i] / s->weight);
	result = MlcnnModelToBytea(&out);
	pfree(out.params);
	if (out.buffers)
		pfree(out.buffers);
	PG_RETURN_BYTEA_P(result);
}
