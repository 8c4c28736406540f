/*
 * optim.c: the optimizers (sgd, momentum, adam with bias correction, all
 * with L2 weight decay added to the gradient, as PyTorch does) and the
 * learning-rate schedules. Parameters, gradients and moments share one
 * layout, so every step is one flat loop.
 */
#include <math.h>

#include "nn.h"

/* Count a step; nn_optim_apply then updates the parameters range by range. */
void
nn_optim_begin(nn_optim *o)
{
	o->t++;
}

/* Update params[lo..hi) from grads with learning rate lr (step o->t). */
void
nn_optim_apply(const nn_optim *o, float *params, const float *grads,
			   size_t lo, size_t hi, float lr)
{
	float	   *restrict p = params + lo;
	const float *restrict gr = grads + lo;
	size_t		n = hi - lo;
	float		wd = o->weight_decay;

	switch (o->kind)
	{
		case NN_OPT_SGD:
			for (size_t i = 0; i < n; i++)
				p[i] -= lr * (gr[i] + wd * p[i]);
			break;
		case NN_OPT_MOMENTUM:
			{
				float		mu = o->t == 1 ? 0.0f : o->momentum;
				float	   *restrict m = o->m + lo;

				/* PyTorch: the first step's buffer is the gradient itself */
				for (size_t i = 0; i < n; i++)
				{
					m[i] = mu * m[i] + (gr[i] + wd * p[i]);
					p[i] -= lr * m[i];
				}
				break;
			}
		case NN_OPT_ADAM:
			{
				float		b1 = o->momentum,
							b2 = o->beta2,
							eps = o->eps;
				float		bc1 = 1.0f - (float) pow(b1, (double) o->t);
				float		bc2 = 1.0f - (float) pow(b2, (double) o->t);
				float		step = lr / bc1;
				float		rbc2 = 1.0f / sqrtf(bc2);
				float	   *restrict m = o->m + lo;
				float	   *restrict v = o->v + lo;

				for (size_t i = 0; i < n; i++)
				{
					float		g = gr[i] + wd * p[i];

					m[i] = b1 * m[i] + (1.0f - b1) * g;
					v[i] = b2 * v[i] + (1.0f - b2) * g * g;
					p[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
				}
				break;
			}
	}
}

/* One optimizer step over n parameters with learning rate lr. */
void
nn_optim_step(nn_optim *o, float *params, const float *grads, size_t n, float lr)
{
	nn_optim_begin(o);
	nn_optim_apply(o, params, grads, 0, n, lr);
}

/*
 * Learning rate at a step. step: x0.1 at 50% and again at 75% of the steps;
 * cosine: half a cosine from lr to 0; onecycle: PyTorch's OneCycleLR
 * defaults (30% cosine warm-up from lr/25 to lr, then cosine down to
 * lr/25/1e4), with its step arithmetic: the warm-up ends at step
 * 0.3 * total - 1 and the second phase starts from there (learning rate
 * only; mlcnn does not cycle the momentum).
 */
float
nn_lr_at(int32_t schedule, float base_lr, int64_t step, int64_t total_steps,
		 int64_t steps_per_epoch)
{
	double		p = total_steps > 1 ? (double) step / (double) (total_steps - 1) : 0.0;

	switch (schedule)
	{
		case NN_LR_STEP:
			return base_lr * (p >= 0.75 ? 0.01f : p >= 0.5 ? 0.1f : 1.0f);
		case NN_LR_COSINE:
			return (float) (base_lr * 0.5 * (1.0 + cos(M_PI * p)));
		case NN_LR_ONECYCLE:
			{
				/* torch.optim.lr_scheduler.OneCycleLR's two phases, step for step */
				double		lo = base_lr / 25.0,
							end = lo / 1e4,
							s = (double) step,
							up_end = 0.3 * (double) total_steps - 1.0,
							last = (double) total_steps - 1.0;

				if (s <= up_end && up_end > 0)
					return (float) (base_lr + (lo - base_lr) * 0.5 * (1.0 + cos(M_PI * s / up_end)));
				return (float) (end + (base_lr - end) * 0.5 *
								(1.0 + cos(M_PI * (s - up_end) / (last - up_end))));
			}
		default:
			return base_lr;
	}
}

/*
 * One plain SGD step params -= lr * grads over n values (update_weights);
 * returns the index of the first weight that became non-finite, or n.
 */
size_t
nn_sgd_step_checked(float *params, const float *grads, size_t n, float lr)
{
	for (size_t i = 0; i < n; i++)
	{
		params[i] -= lr * grads[i];
		if (!isfinite(params[i]))
			return i;
	}
	return n;
}
