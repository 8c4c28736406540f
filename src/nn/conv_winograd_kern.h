/*
 * conv_winograd_kern.h: the tile transforms of conv_winograd.c, written
 * once and compiled once per instruction set; kern_each.h defines
 * before each inclusion:
 *
 *   KERN(name)   the name with the instruction set's suffix
 *   KERN_ATTR    its gcc target attribute (empty off x86)
 *   VL           floats per vector (the channel block)
 *
 * and gets KERN(wg_kern), the wg_kern entry of these transforms; the
 * macros are undefined at the end. A vector holds VL channels of one position:
 * every buffer here is channels-last with the channels padded to VL.
 */

#include "kern_vec.h"

/* d (6, stride s) = B^T d: the input transform along one axis */
KERN_ATTR __attribute__((always_inline))
static inline void
KERN(bt) (KERN(vf) *d, int s)
{
	KERN(vf)	d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
	KERN(vf)	a = d4 - 4 * d2,
				b = d3 - 4 * d1,
				e = d4 - d2,
				f = 2 * (d3 - d1);

	d[0] = 4 * d0 - 5 * d2 + d4;
	d[s] = a + b;
	d[2 * s] = a - b;
	d[3 * s] = e + f;
	d[4 * s] = e - f;
	d[5 * s] = 4 * d1 - 5 * d3 + d5;
}

/* d (6, stride s) = B d: the transpose of bt (the input gradient) */
KERN_ATTR __attribute__((always_inline))
static inline void
KERN(b) (KERN(vf) *d, int s)
{
	KERN(vf)	v0 = d[0], v1 = d[s], v2 = d[2 * s], v3 = d[3 * s], v4 = d[4 * s], v5 = d[5 * s];
	KERN(vf)	p = v1 + v2,
				m = v2 - v1,
				q = v3 + v4,
				n = v3 - v4;

	d[0] = 4 * v0;
	d[s] = 4 * m + 2 * (v4 - v3) + 4 * v5;
	d[2 * s] = -5 * v0 - 4 * p - q;
	d[3 * s] = -m + 2 * n - 5 * v5;
	d[4 * s] = v0 + p + q;
	d[5 * s] = v5;
}

/* y (4, stride s) = A^T m (6, stride s): the output transform along one axis */
KERN_ATTR __attribute__((always_inline))
static inline void
KERN(at) (KERN(vf) *y, const KERN(vf) *m, int s)
{
	KERN(vf)	p12 = m[s] + m[2 * s],
				m12 = m[s] - m[2 * s],
				p34 = m[3 * s] + m[4 * s],
				m34 = m[3 * s] - m[4 * s];

	y[0] = m[0] + p12 + p34;
	y[s] = m12 + 2 * m34;
	y[2 * s] = p12 + 4 * p34;
	y[3 * s] = m12 + 8 * m34 + m[5 * s];
}

/* m (6, stride s) = A y (4, stride s): the transpose of at (the output gradient) */
KERN_ATTR __attribute__((always_inline))
static inline void
KERN(a) (KERN(vf) *m, const KERN(vf) *y, int s)
{
	KERN(vf)	y0 = y[0], y1 = y[s], y2 = y[2 * s], y3 = y[3 * s];
	KERN(vf)	e = y0 + y2,
				o = y1 + y3,
				e4 = y0 + 4 * y2,
				o8 = 2 * y1 + 8 * y3;

	m[0] = y0;
	m[s] = e + o;
	m[2 * s] = e - o;
	m[3 * s] = e4 + o8;
	m[4 * s] = e4 - o8;
	m[5 * s] = y3;
}

/* g (3, stride s) into u (6, stride s) = G g: the filter transform along one axis */
KERN_ATTR __attribute__((always_inline))
static inline void
KERN(g) (KERN(vf) *u, const KERN(vf) *g, int s)
{
	KERN(vf)	g0 = g[0], g1 = g[s], g2 = g[2 * s];
	KERN(vf)	e = g0 + g2,
				e24 = g0 * (1.0f / 24) + g2 * (1.0f / 6);

	u[0] = g0 * 0.25f;
	u[s] = (e + g1) * (-1.0f / 6);
	u[2 * s] = (e - g1) * (-1.0f / 6);
	u[3 * s] = e24 + g1 * (1.0f / 12);
	u[4 * s] = e24 - g1 * (1.0f / 12);
	u[5 * s] = g2;
}

/* u (6, stride s) into g (3, stride s) = G^T u: the transpose of g (the filter gradient) */
KERN_ATTR __attribute__((always_inline))
static inline void
KERN(gt) (KERN(vf) *g, const KERN(vf) *u, int s)
{
	KERN(vf)	p12 = u[s] + u[2 * s],
				m12 = u[2 * s] - u[s],
				p34 = u[3 * s] + u[4 * s],
				m34 = u[3 * s] - u[4 * s];

	g[0] = u[0] * 0.25f - p12 * (1.0f / 6) + p34 * (1.0f / 24);
	g[s] = m12 * (1.0f / 6) + m34 * (1.0f / 12);
	g[2 * s] = (p34 - p12) * (1.0f / 6) + u[5 * s];
}

/* U[xi][c][oc] = (G g G^T)[xi] of every filter g = weight[oc][c]; padded columns zero */
KERN_ATTR
static void
KERN(filters) (float *restrict U, const float *restrict weight, const wg_geom *g)
{
	size_t		xstride = (size_t) g->C * g->OCp;

	for (int c = 0; c < g->C; c++)
		for (int ob = 0; ob < g->OCp; ob += VL)
		{
			KERN(vf)	w[9],
						t[18],
						u[36];

			for (int k = 0; k < 9; k++)
				for (int l = 0; l < VL; l++)
					w[k][l] = ob + l < g->OC ? weight[((size_t) (ob + l) * g->C + c) * 9 + k] : 0.0f;
			/* t[6][3] = G g, then u[6][6] = t G^T */
			for (int l = 0; l < 3; l++)
				KERN(g) (t + l, w + l, 3);
			for (int r = 0; r < 6; r++)
				KERN(g) (u + 6 * r, t + 3 * r, 1);
			for (int xi = 0; xi < 36; xi++)
				KERN(store) (U + xi * xstride + (size_t) c * g->OCp + ob, u[xi]);
		}
}

/* dweight[oc][c] += G^T dU G of every filter */
KERN_ATTR
static void
KERN(filters_grad) (float *restrict dweight, const float *restrict dU, const wg_geom *g)
{
	size_t		xstride = (size_t) g->C * g->OCp;

	for (int c = 0; c < g->C; c++)
		for (int ob = 0; ob < g->OCp; ob += VL)
		{
			KERN(vf)	u[36],
						t[18],
						w[9];

			for (int xi = 0; xi < 36; xi++)
				u[xi] = KERN(load) (dU + xi * xstride + (size_t) c * g->OCp + ob);
			/* t[6][3] = dU G, then w[3][3] = G^T t */
			for (int r = 0; r < 6; r++)
				KERN(gt) (t + 3 * r, u + 6 * r, 1);
			for (int l = 0; l < 3; l++)
				KERN(gt) (w + l, t + l, 3);
			for (int l = 0; l < VL && ob + l < g->OC; l++)
				for (int k = 0; k < 9; k++)
					dweight[((size_t) (ob + l) * g->C + c) * 9 + k] += w[k][l];
		}
}

/* V[xi][t - t0][c] (xi apart by ts) = (B^T d B)[xi] of tiles t0..t1-1 of X (B,H,W,Cp) */
KERN_ATTR
static void
KERN(input) (float *restrict V, const float *restrict X, const wg_geom *g, int t0, int t1, size_t ts)
{
	for (int t = t0; t < t1; t++)
	{
		int			b = t / (g->TH * g->TW),
					ty = t / g->TW % g->TH,
					tx = t % g->TW;

		for (int cb = 0; cb < g->Cp; cb += VL)
		{
			KERN(vf)	d[36];
			float	   *v = V + (size_t) (t - t0) * g->Cp + cb;

			for (int r = 0; r < 6; r++)
			{
				int			y = ty * 4 + r - g->P;

				for (int s = 0; s < 6; s++)
				{
					int			x = tx * 4 + s - g->P;

					if (y >= 0 && y < g->H && x >= 0 && x < g->W)
						d[r * 6 + s] = KERN(load) (X + (((size_t) b * g->H + y) * g->W + x) * g->Cp + cb);
					else
						d[r * 6 + s] = (KERN(vf)) {0};
				}
			}
			for (int s = 0; s < 6; s++)
				KERN(bt) (d + s, 6);
			for (int r = 0; r < 6; r++)
				KERN(bt) (d + 6 * r, 1);
			for (int xi = 0; xi < 36; xi++)
				KERN(store) (v + xi * ts, d[xi]);
		}
	}
}

/* Y (B,OH,OW,OCp) = (A^T M A) of tiles t0..t1-1 (M[xi][t - t0], xi apart by ts), inside the output */
KERN_ATTR
static void
KERN(output) (float *restrict Y, const float *restrict M, const wg_geom *g, int t0, int t1, size_t ts)
{
	for (int t = t0; t < t1; t++)
	{
		int			b = t / (g->TH * g->TW),
					ty = t / g->TW % g->TH,
					tx = t % g->TW;

		for (int ob = 0; ob < g->OCp; ob += VL)
		{
			KERN(vf)	m[36],
						q[24],
						y[16];
			const float *src = M + (size_t) (t - t0) * g->OCp + ob;

			for (int xi = 0; xi < 36; xi++)
				m[xi] = KERN(load) (src + xi * ts);
			for (int s = 0; s < 6; s++)
				KERN(at) (q + s, m + s, 6);
			for (int r = 0; r < 4; r++)
				KERN(at) (y + 4 * r, q + 6 * r, 1);
			for (int r = 0; r < 4; r++)
			{
				int			oy = ty * 4 + r;

				if (oy >= g->OH)
					break;
				for (int s = 0; s < 4; s++)
				{
					int			ox = tx * 4 + s;

					if (ox >= g->OW)
						break;
					KERN(store) (Y + (((size_t) b * g->OH + oy) * g->OW + ox) * g->OCp + ob, y[4 * r + s]);
				}
			}
		}
	}
}

/* dM[xi][t - t0][oc] (xi apart by ts) = (A dY A^T)[xi] of tiles t0..t1-1 of dY (B,OH,OW,OCp), zero outside */
KERN_ATTR
static void
KERN(output_grad) (float *restrict dM, const float *restrict dY, const wg_geom *g, int t0, int t1, size_t ts)
{
	for (int t = t0; t < t1; t++)
	{
		int			b = t / (g->TH * g->TW),
					ty = t / g->TW % g->TH,
					tx = t % g->TW;

		for (int ob = 0; ob < g->OCp; ob += VL)
		{
			KERN(vf)	y[16],
						q[24],
						m[36];
			float	   *dst = dM + (size_t) (t - t0) * g->OCp + ob;

			for (int r = 0; r < 4; r++)
			{
				int			oy = ty * 4 + r;

				for (int s = 0; s < 4; s++)
				{
					int			ox = tx * 4 + s;

					if (oy < g->OH && ox < g->OW)
						y[4 * r + s] = KERN(load) (dY + (((size_t) b * g->OH + oy) * g->OW + ox) * g->OCp + ob);
					else
						y[4 * r + s] = (KERN(vf)) {0};
				}
			}
			/* along y: q[6][4]; then along x: m[6][6] */
			for (int s = 0; s < 4; s++)
				KERN(a) (q + s, y + s, 4);
			for (int r = 0; r < 6; r++)
				KERN(a) (m + 6 * r, q + 4 * r, 1);
			for (int xi = 0; xi < 36; xi++)
				KERN(store) (dst + xi * ts, m[xi]);
		}
	}
}

/* dX (B,H,W,Cp) += (B dV B^T) of tiles t0..t1-1 (dV[xi][t - t0], xi apart by ts), inside the input */
KERN_ATTR
static void
KERN(input_grad) (float *restrict dX, const float *restrict dV, const wg_geom *g, int t0, int t1, size_t ts)
{
	for (int t = t0; t < t1; t++)
	{
		int			b = t / (g->TH * g->TW),
					ty = t / g->TW % g->TH,
					tx = t % g->TW;

		for (int cb = 0; cb < g->Cp; cb += VL)
		{
			KERN(vf)	d[36];
			const float *src = dV + (size_t) (t - t0) * g->Cp + cb;

			for (int xi = 0; xi < 36; xi++)
				d[xi] = KERN(load) (src + xi * ts);
			for (int s = 0; s < 6; s++)
				KERN(b) (d + s, 6);
			for (int r = 0; r < 6; r++)
				KERN(b) (d + 6 * r, 1);
			for (int r = 0; r < 6; r++)
			{
				int			y = ty * 4 + r - g->P;

				if (y < 0 || y >= g->H)
					continue;
				for (int s = 0; s < 6; s++)
				{
					int			x = tx * 4 + s - g->P;
					float	   *p;

					if (x < 0 || x >= g->W)
						continue;
					p = dX + (((size_t) b * g->H + y) * g->W + x) * g->Cp + cb;
					KERN(store) (p, KERN(load) (p) + d[r * 6 + s]);
				}
			}
		}
	}
}

static const wg_kern KERN(wg_kern) = {
	VL, KERN(filters), KERN(filters_grad), KERN(input), KERN(output), KERN(output_grad), KERN(input_grad)
};

#undef KERN
#undef KERN_ATTR
#undef VL
