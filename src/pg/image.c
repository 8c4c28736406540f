/*
 * image.c: decode_image(image bytea, height, width, channels) RETURNS
 * bytea, PNG or JPEG bytes as pixels (the core's image.c decodes).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/memutils.h"

#include "image.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(decode_image);

/* decode_image(image, height, width, channels): height x width x channels bytes */
Datum
decode_image(PG_FUNCTION_ARGS)
{
	bytea	   *img = PG_GETARG_BYTEA_PP(0);
	int32		h = PG_GETARG_INT32(1),
				w = PG_GETARG_INT32(2),
				c = PG_GETARG_INT32(3);
	MlcnnAlloc	alloc;
	nn_status	st;
	bytea	   *out;
	double		t0 = nn_now();

	/* the output's size before it is allocated */
	if (nn_image_check(h, w, c, &st) != NN_OK)
		MlcnnReportStatus(&st);
	MlcnnAllocInit(&alloc, CurrentMemoryContext);
	out = palloc(VARHDRSZ + (Size) h * w * c);
	SET_VARSIZE(out, VARHDRSZ + (Size) h * w * c);
	if (nn_image_decode((const uint8_t *) VARDATA_ANY(img), VARSIZE_ANY_EXHDR(img), h, w, c,
						(uint64_t) mlcnn_max_image_pixels, (uint8_t *) VARDATA(out), NULL, &alloc.a, &st) != NN_OK)
	{
		if (st.code == NN_ERR_DATA)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("%s", st.msg)));
		if (st.code == NN_ERR_LIMIT)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("%s", st.msg),
					 errhint("A superuser can raise mlcnn.max_image_pixels.")));
		MlcnnReportStatus(&st);
	}
	MlcnnStatsAdd(MLCNN_FN_DECODE_IMAGE, 1, 1, nn_now() - t0, NULL, 0, alloc.peak);
	PG_RETURN_BYTEA_P(out);
}
