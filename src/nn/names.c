/*
 * names.c: the names other frameworks give a network's tensors.
 *
 * model_weights() and export name every parameter and buffer after the
 * module path of the equivalent PyTorch module tree: the network is a
 * torch.nn.Sequential whose children are the written layers in order (an
 * implicit flatten is a Flatten child too, as it must be in PyTorch); a
 * residual block is one child, a module with a `body` (a Sequential of
 * its layers) and, when the block changes the shape, a `proj` (the 1x1
 * Conv2d of the shortcut), whose forward returns body(x) + proj(x) (or
 * body(x) + x). So the reference CNN's tensors are 0.weight, 0.bias,
 * 3.weight, ..., and a block at position 3 has 3.body.0.weight and
 * 3.proj.weight. Batch norm adds its buffers running_mean, running_var
 * and num_batches_tracked after weight and bias, in state_dict order, so a
 * state_dict made of these rows loads with strict=True. (A network written
 * in the named form, with from/add/concat, has no Sequential equivalent;
 * its tensors are numbered the same way.)
 */
#include <stdio.h>
#include <string.h>

#include "ops.h"

#define NAMES_MAX_DEPTH 16

/* one more tensor of node i */
static void
put_tensor(nn_tensor_info *out, int *n, int max, const char *prefix, const char *what, int i,
		   int buffer, size_t off, size_t len, int ndims, const int *shape)
{
	nn_tensor_info *t;

	if (*n >= max)
	{
		(*n)++;
		return;
	}
	t = &out[(*n)++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s.%s", prefix, what);
	t->layer = i;
	t->buffer = buffer;
	t->off = off;
	t->len = len;
	t->ndims = ndims;
	for (int k = 0; k < ndims; k++)
		t->shape[k] = shape[k];
}

/* The tensors of node L (module path prefix), in state_dict order. */
static void
node_tensors(const nn_layer *L, int i, const char *prefix, nn_tensor_info *out, int *n, int max)
{
	int			shape[4];

	if (L->kind == NN_CONV)
	{
		shape[0] = L->units;
		shape[1] = L->in.c / (L->groups > 1 ? L->groups : 1);
		shape[2] = shape[3] = L->kernel;
		put_tensor(out, n, max, prefix, "weight", i, 0, L->w_off, L->w_len, 4, shape);
		put_tensor(out, n, max, prefix, "bias", i, 0, L->b_off, L->b_len, 1, shape);
	}
	else if (L->kind == NN_DENSE)
	{
		shape[0] = L->units;
		shape[1] = (int) (L->w_len / L->units);
		put_tensor(out, n, max, prefix, "weight", i, 0, L->w_off, L->w_len, 2, shape);
		put_tensor(out, n, max, prefix, "bias", i, 0, L->b_off, L->b_len, 1, shape);
	}
	else if (L->kind == NN_BATCHNORM)
	{
		shape[0] = L->in.c;
		put_tensor(out, n, max, prefix, "weight", i, 0, L->w_off, L->w_len, 1, shape);
		put_tensor(out, n, max, prefix, "bias", i, 0, L->b_off, L->b_len, 1, shape);
		put_tensor(out, n, max, prefix, "running_mean", i, 1, L->buf_off, L->in.c, 1, shape);
		put_tensor(out, n, max, prefix, "running_var", i, 1, L->buf_off + L->in.c, L->in.c, 1, shape);
		put_tensor(out, n, max, prefix, "num_batches_tracked", i, 1, L->buf_off + 2 * L->in.c, 1, 0, shape);
	}
}

/* Every parameter and buffer tensor of net, named, in state_dict order (see nn.h). */
int
nn_net_tensors(const nn_net *net, nn_tensor_info *out, int max)
{
	char		prefix[NAMES_MAX_DEPTH + 1][80];	/* the module path of each open level */
	int			counter[NAMES_MAX_DEPTH + 1];	/* the next child's index at each level */
	int			depth = 0,
				n = 0;

	prefix[0][0] = '\0';
	counter[0] = 0;
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		char		path[80];

		if (L->role == NN_ROLE_RESIDUAL)
		{
			if (depth > 0)
				depth--;
			counter[depth]++;
			continue;
		}
		if (L->role == NN_ROLE_PROJECTION)
		{
			/* the shortcut of the innermost open block: <block>.proj */
			size_t		len = strlen(prefix[depth]);

			snprintf(path, sizeof(path), "%.*sproj", (int) (len > 5 ? len - 5 : 0), prefix[depth]);
			node_tensors(L, i, path, out, &n, max);
			continue;
		}
		/* blocks whose body starts here, outermost first */
		for (int r = net->nlayers - 1; r > i; r--)
		{
			const nn_layer *R = &net->layers[r];

			if (R->role != NN_ROLE_RESIDUAL || R->block_start != i || depth == NAMES_MAX_DEPTH)
				continue;
			snprintf(path, sizeof(path), "%s%d.body.", prefix[depth], counter[depth]);
			depth++;
			snprintf(prefix[depth], sizeof(prefix[0]), "%s", path);
			counter[depth] = 0;
		}
		snprintf(path, sizeof(path), "%s%d", prefix[depth], counter[depth]);
		node_tensors(L, i, path, out, &n, max);
		counter[depth]++;
	}
	return n;
}

/* the tensor of node i in t[0..n) whose name ends in ".what", or NULL */
const nn_tensor_info *
nn_tensor_find(const nn_tensor_info *t, int n, int i, const char *what)
{
	size_t		wl = strlen(what);

	for (int k = 0; k < n; k++)
	{
		size_t		nl = strlen(t[k].name);

		if (t[k].layer == i && nl > wl && t[k].name[nl - wl - 1] == '.' && strcmp(t[k].name + nl - wl, what) == 0)
			return &t[k];
	}
	return NULL;
}
