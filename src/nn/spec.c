/*
 * spec.c: the layer-spec language and the graph it builds.
 *
 * A network is written as a short line of text, e.g. the reference CNN
 *
 *     conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dense(128) relu dense(10)
 *
 * or a ResNet-style one
 *
 *     conv(16,3,1,same) batchnorm relu
 *     residual(conv(16,3,1,same) batchnorm relu conv(16,3,1,same) batchnorm) relu
 *     globalavgpool dense(10)
 *
 * Grammar (EBNF; names, labels and keywords are case-insensitive, whitespace
 * may appear around every token inside the parentheses):
 *
 *     spec     = ws item { sep item } ws ;
 *     sep      = ws "," ws | space ws ;          (* whitespace and/or one comma *)
 *     item     = [ label ws ":" ws ] ( layer | residual ) | from ;
 *     layer    = name [ ws "(" [ arg { "," arg } ] ")" ] ;
 *     arg      = ws [ word "=" ] ( int | number | word ) ws ;
 *     residual = "residual" ws "(" ws item { sep item } ws ")" ;
 *     from     = "from" ws "(" ws label ws ")" ;
 *     label    = letter { letter | digit | "_" } ;  (* at most 15; "input" is the input *)
 *
 * The names and their arguments are the table of operations' (ops.c):
 * conv(filters, kernel[, stride[, valid|same|padding]][, groups=G]),
 * maxpool(W[, S]), avgpool(W[, S]), globalavgpool, batchnorm, relu,
 * dropout(rate), flatten, dense(units), add(label, label, ...) and
 * concat(label, label, ...).
 *
 * Each layer reads the output of the one before it; "name:" labels a
 * layer's output (or a residual block's), "from(name)" makes the next layer
 * read that output instead, and add/concat read the labelled outputs they
 * name. residual(LAYERS) is the block's output plus its input; when the
 * block changes the shape, the input goes through a 1x1 convolution with
 * the block's stride first (ResNet's projection shortcut).
 *
 * nn_net_build() turns the items into the graph: nodes in an order that
 * runs forward, a dense layer on an image getting an implicit flatten in
 * front of it, each node's shape inferred by its op and its parameters
 * and buffers laid out in PyTorch's state_dict order. Errors name the
 * layer as the user numbered and wrote it. The canonical spec
 * (nn_spec_format) writes every node the user would write, the implicit
 * flatten included, in the shortest form; building it gives the same net.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "options.h"
#include "train.h"

#define SPEC_MAX_PARAMS ((uint64_t) 1 << 28)	/* parameters of one net */
#define SPEC_NEAR_LEN 20		/* characters quoted after "near" */
#define SPEC_TEXT_LEN 40		/* characters of a layer quoted in shape errors */
#define SPEC_MAX_DEPTH 8		/* residual blocks inside each other */
#define SPEC_MAX_ARGS 8

#define Min(a, b) ((a) < (b) ? (a) : (b))

/* what one parsed item is */
typedef enum item_type
{
	ITEM_LAYER,
	ITEM_RES_BEGIN,
	ITEM_RES_END,
	ITEM_FROM
} item_type;

/* one item of the spec, as parsed */
typedef struct spec_item
{
	item_type	type;
	nn_layer	L;				/* ITEM_LAYER: kind and hyper-parameters */
	char		label[NN_MAX_LABEL];	/* "name:" before it */
	int			nrefs;			/* add/concat arguments, from()'s label */
	char		refs[NN_MAX_INPUTS][NN_MAX_LABEL];
	size_t		start,
				len;			/* where it sits in the user's text */
	int			num;			/* the user's layer number */
} spec_item;

/* the parser over one NUL-terminated spec */
struct spec_ctx
{
	const char *s;
	size_t		pos;
	nn_status  *st;
	const char *op;				/* the op whose arguments are being read */
	size_t		name_at;		/* where its name starts */
	spec_item  *items;
	int			nitems;
	int			nlayers;		/* layers numbered so far */
};

/* ASCII whitespace, independent of the locale */
static int
spec_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ASCII letter */
static int
spec_isalpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ASCII digit */
static int
spec_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

/* a character of a name or label */
static int
spec_isname(char c)
{
	return spec_isalpha(c) || spec_isdigit(c) || c == '_';
}

/* 1-based character position of byte offset off (UTF-8 continuation bytes do not count). */
static int
spec_position(const char *s, size_t off)
{
	int			p = 1;

	for (size_t i = 0; i < off; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80)
			p++;
	return p;
}

/* Fail with a syntax error at byte offset at: position, the text there, and why. */
static int
spec_error_v(spec_ctx *p, size_t at, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static int
spec_error_v(spec_ctx *p, size_t at, const char *fmt, va_list ap)
{
	char		why[NN_MSG_LEN];
	char		near[SPEC_NEAR_LEN + 8];
	size_t		len = 0;

	vsnprintf(why, sizeof(why), fmt, ap);
	if (p->s[at] == '\0')
		return nn_fail(p->st, NN_ERR_PARSE, "syntax error at position %d (end of the layer spec): %s",
					   spec_position(p->s, at), why);
	while (p->s[at + len] != '\0' && !spec_isspace(p->s[at + len]))
		len++;
	nn_quote(near, sizeof(near), p->s + at, len, SPEC_NEAR_LEN);
	return nn_fail(p->st, NN_ERR_PARSE, "syntax error at position %d near \"%s\": %s",
				   spec_position(p->s, at), near, why);
}

/* A syntax error at byte offset at. */
static int
spec_error(spec_ctx *p, size_t at, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static int
spec_error(spec_ctx *p, size_t at, const char *fmt,...)
{
	va_list		ap;
	int			rc;

	va_start(ap, fmt);
	rc = spec_error_v(p, at, fmt, ap);
	va_end(ap);
	return rc;
}

/* A syntax error at argument a, or at the layer's name when a is NULL (ops.h). */
int
nn_spec_fail(spec_ctx *c, const spec_arg *a, const char *fmt,...)
{
	va_list		ap;
	int			rc;

	va_start(ap, fmt);
	rc = spec_error_v(c, a ? a->at : c->name_at, fmt, ap);
	va_end(ap);
	return rc;
}

/* The text of argument a, quoted. */
void
nn_spec_arg_text(spec_ctx *c, const spec_arg *a, char *buf, size_t len)
{
	nn_quote(buf, len, c->s + a->at, a->len, 20);
}

/* Does word argument a equal w? */
int
nn_spec_word_is(spec_ctx *c, const spec_arg *a, const char *w)
{
	return a->type == SPEC_ARG_WORD && nn_word_is(c->s + a->at, a->len, w);
}

/* Is a a key=value argument with key k? */
int
nn_spec_key_is(spec_ctx *c, const spec_arg *a, const char *k)
{
	return a->key_len > 0 && nn_word_is(c->s + a->key_at, a->key_len, k);
}

/* An integer argument in [lo, hi]. */
int
nn_spec_int(spec_ctx *c, const spec_arg *a, const char *what, int lo, int hi, int32_t *out)
{
	char		text[32];

	if (a->type != SPEC_ARG_INT)
		return nn_spec_fail(c, a, "expected an integer for the %s %s", c->op, what);
	if (a->i < lo || a->i > hi)
	{
		nn_spec_arg_text(c, a, text, sizeof(text));
		return nn_spec_fail(c, a, "%s %s must be between %d and %d, not %s", c->op, what, lo, hi, text);
	}
	*out = (int32_t) a->i;
	return NN_OK;
}

/* Skip whitespace; returns how many bytes were skipped. */
static size_t
spec_skip_ws(spec_ctx *p)
{
	size_t		from = p->pos;

	while (spec_isspace(p->s[p->pos]))
		p->pos++;
	return p->pos - from;
}

/* Is s[0..len) a number: digits [. digits] [e [+-] digits], at least one digit? */
static int
spec_is_number(const char *s, size_t len)
{
	size_t		i = 0,
				digits = 0;

	while (i < len && spec_isdigit(s[i]))
		i++, digits++;
	if (i < len && s[i] == '.')
		for (i++; i < len && spec_isdigit(s[i]); i++)
			digits++;
	if (digits == 0)
		return 0;
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i == len || !spec_isdigit(s[i]))
			return 0;
		while (i < len && spec_isdigit(s[i]))
			i++;
	}
	return i == len;
}

/* Classify the value at s[0..len) into a. */
static void
spec_value(spec_arg *a, const char *s, size_t len)
{
	size_t		i = 0;
	char		buf[64];

	while (i < len && spec_isdigit(s[i]))
		i++;
	if (len > 0 && i == len)
	{
		a->type = SPEC_ARG_INT;
		a->i = 0;
		for (i = 0; i < len; i++)
			if (a->i <= 1000000000LL)
				a->i = a->i * 10 + (s[i] - '0');
		a->d = (double) a->i;
	}
	else if (spec_is_number(s, len) && len < sizeof(buf))
	{
		a->type = SPEC_ARG_NUMBER;
		memcpy(buf, s, len);
		buf[len] = '\0';
		a->d = strtod(buf, NULL);
	}
	else if (len > 0 && spec_isalpha(s[0]))
	{
		a->type = SPEC_ARG_WORD;
		for (i = 0; i < len; i++)
			if (!spec_isname(s[i]))
				a->type = SPEC_ARG_OTHER;
	}
	else
		a->type = SPEC_ARG_OTHER;
}

/*
 * The arguments of a layer (p->pos just past "("): each a run of
 * characters up to "," or ")", split at "=" into key and value.
 */
static int
spec_args(spec_ctx *p, spec_arg *args, int *nargs, const nn_op *op)
{
	int			n = 0,
				positional = 0;

	spec_skip_ws(p);
	if (p->s[p->pos] == ')')
	{
		p->pos++;
		*nargs = 0;
		return NN_OK;
	}
	for (;;)
	{
		spec_arg   *a;
		size_t		start,
					end,
					eq = 0;

		spec_skip_ws(p);
		start = p->pos;
		while (p->s[p->pos] != '\0' && p->s[p->pos] != ',' && p->s[p->pos] != ')' &&
			   !spec_isspace(p->s[p->pos]))
		{
			if (p->s[p->pos] == '=' && eq == 0)
				eq = p->pos;
			p->pos++;
		}
		end = p->pos;
		if (op->max_args == 0)
			return spec_error(p, start, "%s takes no arguments", op->name);
		if (n == SPEC_MAX_ARGS || (eq == 0 && positional == op->max_args))
			return spec_error(p, start, "%s takes at most %d argument%s: %s", op->name,
							  op->max_args, op->max_args == 1 ? "" : "s", op->usage);
		a = &args[n++];
		memset(a, 0, sizeof(*a));
		if (eq > 0)
		{
			a->key_at = start;
			a->key_len = eq - start;
			start = eq + 1;
		}
		else
			positional++;
		a->at = start;
		a->len = end - start;
		spec_value(a, p->s + start, end - start);
		spec_skip_ws(p);
		if (p->s[p->pos] == ')')
			break;
		if (p->s[p->pos] != ',')
			return spec_error(p, p->pos, "expected \",\" or \")\" in %s(...)", op->name);
		p->pos++;
	}
	p->pos++;					/* the ")" */
	if (positional < op->min_args)
		return spec_error(p, p->name_at, "%s needs %d argument%s: %s", op->name, op->min_args,
						  op->min_args == 1 ? "" : "s", op->usage);
	*nargs = n;
	return NN_OK;
}

/* A new item at start; NULL (with the error) when there are too many. */
static spec_item *
spec_new_item(spec_ctx *p, item_type type, size_t start)
{
	spec_item  *it;

	if (p->nitems == NN_MAX_LAYERS)
	{
		nn_fail(p->st, NN_ERR_LIMIT, "layer spec has more than %d layers", NN_MAX_LAYERS);
		return NULL;
	}
	it = &p->items[p->nitems++];
	memset(it, 0, sizeof(*it));
	it->type = type;
	it->start = start;
	return it;
}

/* Copy label word a into buf, or fail when it is not a label. */
static int
spec_label(spec_ctx *p, size_t at, size_t len, char *buf)
{
	char		text[32];

	if (len == 0 || !spec_isalpha(p->s[at]) || len >= NN_MAX_LABEL)
	{
		nn_quote(text, sizeof(text), p->s + at, len, 20);
		return spec_error(p, at, "\"%s\" is not a label: a letter, then letters, digits or \"_\", at most %d in all",
						  text, NN_MAX_LABEL - 1);
	}
	for (size_t i = 0; i < len; i++)
	{
		if (!spec_isname(p->s[at + i]))
			return spec_error(p, at, "a label holds letters, digits and \"_\" only");
		buf[i] = nn_ascii_lower(p->s[at + i]);
	}
	buf[len] = '\0';
	return NN_OK;
}

static int	spec_items(spec_ctx *p, int depth);

/* One layer (or residual, or from) at p->pos, with its label. */
static int
spec_item_at(spec_ctx *p, int depth)
{
	size_t		start = p->pos,
				name_at,
				len;
	char		label[NN_MAX_LABEL] = "";
	char		text[32];
	spec_item  *it;
	const nn_op *op;
	spec_arg	args[SPEC_MAX_ARGS];
	int			nargs = 0;

	if (!spec_isalpha(p->s[p->pos]))
		return spec_error(p, start, "expected a layer name (%s)", nn_op_names());
	while (spec_isname(p->s[p->pos]))
		p->pos++;
	len = p->pos - start;
	/* a label? */
	{
		size_t		save = p->pos;

		spec_skip_ws(p);
		if (p->s[p->pos] == ':')
		{
			if (spec_label(p, start, len, label) != NN_OK)
				return p->st->code;
			p->pos++;
			spec_skip_ws(p);
			start = p->pos;
			if (!spec_isalpha(p->s[p->pos]))
				return spec_error(p, start, "expected a layer after the label \"%s:\"", label);
			while (spec_isname(p->s[p->pos]))
				p->pos++;
			len = p->pos - start;
		}
		else
			p->pos = save;
	}
	name_at = start;

	if (nn_word_is(p->s + start, len, "residual") || nn_word_is(p->s + start, len, "from"))
	{
		int			res = nn_word_is(p->s + start, len, "residual");

		spec_skip_ws(p);
		if (p->s[p->pos] != '(')
			return spec_error(p, start, res ? "residual needs its layers: residual(LAYERS)" :
							  "from needs a label: from(name)");
		p->pos++;
		spec_skip_ws(p);
		if (!res)
		{
			size_t		at = p->pos;

			if (label[0])
				return spec_error(p, name_at, "from(...) takes no label");
			if ((it = spec_new_item(p, ITEM_FROM, start)) == NULL)
				return p->st->code;
			while (spec_isname(p->s[p->pos]))
				p->pos++;
			if (spec_label(p, at, p->pos - at, it->refs[0]) != NN_OK)
				return p->st->code;
			it->nrefs = 1;
			spec_skip_ws(p);
			if (p->s[p->pos] != ')')
				return spec_error(p, p->pos, "expected \")\" after from(%s", it->refs[0]);
			p->pos++;
			it->len = p->pos - start;
			return NN_OK;
		}
		if (depth >= SPEC_MAX_DEPTH)
			return spec_error(p, start, "residual blocks nest at most %d deep", SPEC_MAX_DEPTH);
		if ((it = spec_new_item(p, ITEM_RES_BEGIN, start)) == NULL)
			return p->st->code;
		memcpy(it->label, label, sizeof(label));
		it->num = ++p->nlayers;
		if (p->s[p->pos] == ')')
			return spec_error(p, p->pos, "residual needs at least one layer");
		{
			int			begin = p->nitems - 1;

			if (spec_items(p, depth + 1) != NN_OK)
				return p->st->code;
			if (p->s[p->pos] != ')')
				return spec_error(p, p->pos, "expected \")\" to close residual(...)");
			p->pos++;
			p->items[begin].len = p->pos - start;
			if ((it = spec_new_item(p, ITEM_RES_END, p->pos - 1)) == NULL)
				return p->st->code;
			it->num = p->items[begin].num;
		}
		return NN_OK;
	}

	op = nn_op_named(p->s + start, len);
	if (op == NULL)
	{
		nn_quote(text, sizeof(text), p->s + start, len, 20);
		return spec_error(p, start, "unknown layer \"%s\" (known: %s)", text, nn_op_names());
	}
	p->op = op->name;
	p->name_at = name_at;
	{
		size_t		save = p->pos;

		spec_skip_ws(p);
		if (p->s[p->pos] == '(')
		{
			p->pos++;
			if (spec_args(p, args, &nargs, op) != NN_OK)
				return p->st->code;
		}
		else
		{
			p->pos = save;
			if (op->min_args > 0)
				return spec_error(p, start, "%s needs arguments: %s", op->name, op->usage);
		}
	}
	if ((it = spec_new_item(p, ITEM_LAYER, start)) == NULL)
		return p->st->code;
	memcpy(it->label, label, sizeof(label));
	it->len = p->pos - start;
	it->num = ++p->nlayers;
	it->L.kind = nn_op_kind(op);
	if (op->refs)
	{
		for (int k = 0; k < nargs; k++)
		{
			if (args[k].type != SPEC_ARG_WORD || args[k].key_len > 0)
				return nn_spec_fail(p, &args[k], "%s takes the labels of its inputs: %s", op->name, op->usage);
			if (spec_label(p, args[k].at, args[k].len, it->refs[k]) != NN_OK)
				return p->st->code;
		}
		it->nrefs = nargs;
	}
	else if (op->args && op->args(&it->L, args, nargs, p) != NN_OK)
		return p->st->code;
	return NN_OK;
}

/* Items separated by whitespace or one comma, up to the end or a ")". */
static int
spec_items(spec_ctx *p, int depth)
{
	for (;;)
	{
		size_t		gap;

		if (spec_item_at(p, depth) != NN_OK)
			return p->st->code;
		gap = spec_skip_ws(p);
		if (p->s[p->pos] == '\0' || (depth > 0 && p->s[p->pos] == ')'))
			return NN_OK;
		if (p->s[p->pos] == ')')
			return spec_error(p, p->pos, "unmatched \")\"");
		if (p->s[p->pos] == ',')
		{
			p->pos++;
			spec_skip_ws(p);
			if (p->s[p->pos] == '\0' || p->s[p->pos] == ')')
				return spec_error(p, p->pos, "expected a layer after \",\"");
		}
		else if (gap == 0)
			return spec_error(p, p->pos, "expected whitespace or \",\" between layers");
	}
}

/* Parse spec into items[]; returns the status and sets *nitems. */
static int
spec_parse(spec_item *items, int *nitems, const char *spec, nn_status *st)
{
	spec_ctx	p = {0};

	p.s = spec;
	p.st = st;
	p.items = items;
	if (spec == NULL)
		return nn_fail(st, NN_ERR_PARSE, "layer spec is empty");
	if (strnlen(spec, NN_MAX_SPEC) >= NN_MAX_SPEC)
		return nn_fail(st, NN_ERR_LIMIT, "layer spec is longer than %d bytes", NN_MAX_SPEC - 1);
	spec_skip_ws(&p);
	if (spec[p.pos] == '\0')
		return nn_fail(st, NN_ERR_PARSE, "layer spec is empty");
	if (spec_items(&p, 0) != NN_OK)
		return st->code;
	if (spec[p.pos] != '\0')
		return spec_error(&p, p.pos, "unmatched \")\"");
	*nitems = p.nitems;
	return NN_OK;
}

/* Parse a layer spec into net->layers (kinds and hyper-parameters of its layers). */
int
nn_spec_parse(nn_net *net, const char *spec, nn_status *st)
{
	spec_item	items[NN_MAX_LAYERS];
	int			n = 0;

	if (spec_parse(items, &n, spec, st) != NN_OK)
		return st->code;
	memset(net->layers, 0, sizeof(net->layers));
	net->nlayers = 0;
	for (int i = 0; i < n; i++)
		if (items[i].type == ITEM_LAYER)
			net->layers[net->nlayers++] = items[i].L;
	return NN_OK;
}

/* ------------------------------------------------------------ building */

/* "HxWxC" for a spatial tensor, "N values" for a flat one */
static void
spec_shape_text(char *buf, size_t len, nn_shape s, int flat)
{
	if (flat)
		snprintf(buf, len, "%d values", s.c);
	else
		snprintf(buf, len, "%dx%dx%d", s.h, s.w, s.c);
}

/* "layer <num> \"<text>\" ..." (ops.h) */
int
nn_shape_fail(nn_shape_ctx *c, nn_code code, const char *fmt,...)
{
	char		why[NN_MSG_LEN];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return nn_fail(c->st, code, "layer %d \"%s\" %s", c->num, c->text, why);
}

/* what the builder keeps while it walks the items */
typedef struct build_ctx
{
	nn_net	   *net;
	const char *spec;
	nn_status  *st;
	int			cur;			/* the tensor the next layer reads */
	int			pending_from;	/* the next node was written after from() */
	uint64_t	nparams;
	uint64_t	nbuffers;
	char		labels[NN_MAX_LAYERS + 1][NN_MAX_LABEL];	/* per tensor */
} build_ctx;

/* is tensor t flat? */
static int
tensor_flat(const nn_net *net, int t)
{
	return t > 0 && net->layers[t - 1].flat_out;
}

/* The tensor labelled name, or -1. */
static int
find_label(const build_ctx *b, const char *name)
{
	if (strcmp(name, "input") == 0)
		return 0;
	for (int t = (int) b->net->nlayers; t >= 1; t--)
		if (strcmp(b->labels[t], name) == 0)
			return t;
	return -1;
}

/* Add node L (inputs set) to the net: shape, parameters, buffers, label. */
static int
add_node(build_ctx *b, nn_layer L, const spec_item *it, const char *label)
{
	nn_net	   *net = b->net;
	const nn_op *op = nn_op_of(L.kind);
	nn_shape_ctx c = {0};
	nn_shape	shapes[NN_MAX_INPUTS];
	char		text[SPEC_TEXT_LEN + 8];
	char		shape[48];

	if (net->nlayers == NN_MAX_LAYERS)
		return nn_fail(b->st, NN_ERR_LIMIT,
					   "layer spec has more than %d layers with the ones added before layer %d \"%.*s\"",
					   NN_MAX_LAYERS, it->num, (int) Min(it->len, SPEC_TEXT_LEN), b->spec + it->start);
	nn_quote(text, sizeof(text), b->spec + it->start, it->len, SPEC_TEXT_LEN);
	for (int k = 0; k < L.nin; k++)
	{
		shapes[k] = nn_tensor_shape(net, L.inputs[k]);
		c.in[k] = &shapes[k];
		c.flat[k] = tensor_flat(net, L.inputs[k]);
	}
	spec_shape_text(shape, sizeof(shape), shapes[0], c.flat[0]);
	c.text = text;
	c.shape = shape;
	c.num = it->num;
	c.st = b->st;
	L.in = shapes[0];
	L.flat_in = c.flat[0];
	if (op->shape(&L, &c) != NN_OK)
		return b->st->code;
	/* PyTorch state_dict order: weight then bias, node by node */
	L.w_off = (size_t) b->nparams;
	b->nparams += L.w_len;
	L.b_off = (size_t) b->nparams;
	b->nparams += L.b_len;
	L.buf_off = (size_t) b->nbuffers;
	b->nbuffers += L.buf_len;
	if (b->nparams > SPEC_MAX_PARAMS || b->nbuffers > SPEC_MAX_PARAMS)
		return nn_fail(b->st, NN_ERR_LIMIT,
					   "the network has more than %llu parameters (layer %d \"%s\" alone has %llu)",
					   (unsigned long long) SPEC_MAX_PARAMS, it->num, text,
					   (unsigned long long) (L.w_len + L.b_len));
	if (label && (strcmp(label, "input") == 0 || find_label(b, label) >= 0))
		return nn_fail(b->st, NN_ERR_SHAPE, "layer %d \"%s\" is labelled \"%s\", a name %s", it->num, text, label,
					   strcmp(label, "input") == 0 ? "kept for the network's input" : "an earlier layer has");
	L.from = b->pending_from;
	b->pending_from = 0;
	net->layers[net->nlayers++] = L;
	snprintf(b->labels[net->nlayers], NN_MAX_LABEL, "%s", label ? label : "");
	snprintf(net->layers[net->nlayers - 1].label, NN_MAX_LABEL, "%s", label ? label : "");
	b->cur = (int) net->nlayers;
	return NN_OK;
}

/* A layer item: an implicit flatten first where a dense layer meets an image. */
static int
build_layer(build_ctx *b, const spec_item *it)
{
	nn_layer	L = it->L;
	const nn_op *op = nn_op_of(L.kind);

	if (L.kind == NN_DENSE && !tensor_flat(b->net, b->cur))
	{
		nn_layer	F;

		memset(&F, 0, sizeof(F));
		F.kind = NN_FLATTEN;
		F.nin = 1;
		F.inputs[0] = b->cur;
		if (add_node(b, F, it, NULL) != NN_OK)
			return b->st->code;
	}
	if (op->refs)
	{
		for (int k = 0; k < it->nrefs; k++)
		{
			int			t = find_label(b, it->refs[k]);

			if (t < 0)
				return nn_fail(b->st, NN_ERR_SHAPE, "layer %d \"%.*s\" names \"%s\", which no earlier layer is labelled",
							   it->num, (int) Min(it->len, SPEC_TEXT_LEN), b->spec + it->start, it->refs[k]);
			L.inputs[k] = t;
		}
		L.nin = it->nrefs;
	}
	else
	{
		L.nin = 1;
		L.inputs[0] = b->cur;
	}
	return add_node(b, L, it, it->label[0] ? it->label : NULL);
}

/*
 * The end of a residual block that began at tensor in with node first: the
 * projection shortcut when the shape changed, then the add.
 */
static int
build_residual(build_ctx *b, const spec_item *begin, int in, int first)
{
	nn_net	   *net = b->net;
	int			body = b->cur;
	nn_shape	si = nn_tensor_shape(net, in),
				so = nn_tensor_shape(net, body);
	int			shortcut = in;
	nn_layer	A;

	if (body == in)
		return nn_fail(b->st, NN_ERR_SHAPE, "layer %d residual(...) has no layers", begin->num);
	if (si.h != so.h || si.w != so.w || si.c != so.c || tensor_flat(net, in) != tensor_flat(net, body))
	{
		nn_layer	P;
		int			s;

		if (tensor_flat(net, in) || tensor_flat(net, body))
			return nn_fail(b->st, NN_ERR_SHAPE,
						   "layer %d \"%.*s\" changes the shape of a flat vector; a residual block must keep it",
						   begin->num, (int) Min(begin->len, SPEC_TEXT_LEN), b->spec + begin->start);
		for (s = 1; s <= 64; s++)
			if ((si.h - 1) / s + 1 == so.h && (si.w - 1) / s + 1 == so.w)
				break;
		if (s > 64)
			return nn_fail(b->st, NN_ERR_SHAPE,
						   "layer %d \"%.*s\" turns %dx%dx%d into %dx%dx%d, which no strided 1x1 convolution of the input matches",
						   begin->num, (int) Min(begin->len, SPEC_TEXT_LEN), b->spec + begin->start,
						   si.h, si.w, si.c, so.h, so.w, so.c);
		memset(&P, 0, sizeof(P));
		P.kind = NN_CONV;
		P.units = so.c;
		P.kernel = 1;
		P.stride = s;
		P.groups = 1;
		P.role = NN_ROLE_PROJECTION;
		P.nin = 1;
		P.inputs[0] = in;
		if (add_node(b, P, begin, NULL) != NN_OK)
			return b->st->code;
		shortcut = b->cur;
	}
	memset(&A, 0, sizeof(A));
	A.kind = NN_ADD;
	A.role = NN_ROLE_RESIDUAL;
	A.block_start = first;
	A.nin = 2;
	A.inputs[0] = body;
	A.inputs[1] = shortcut;
	return add_node(b, A, begin, begin->label[0] ? begin->label : NULL);
}

/*
 * Shape inference and parameter layout of spec over input: see the file
 * comment. Builds into a local net and copies it out on success only, so
 * spec may point into *net.
 */
int
nn_net_build(nn_net *net, const char *spec, nn_shape input, int32_t classes, nn_status *st)
{
	spec_item	items[NN_MAX_LAYERS];
	int			nitems = 0;
	nn_net		tmp;
	build_ctx	b;
	int			stack_in[SPEC_MAX_DEPTH + 1],
				stack_first[SPEC_MAX_DEPTH + 1],
				stack_item[SPEC_MAX_DEPTH + 1],
				depth = 0;
	char		shape[48];
	nn_shape	out;

	if (input.h < 1 || input.h > NN_MAX_DIM || input.w < 1 || input.w > NN_MAX_DIM ||
		input.c < 1 || input.c > NN_MAX_DIM)
		return nn_fail(st, NN_ERR_INVALID,
					   "input height, width and channels must each be between 1 and %d, not %dx%dx%d",
					   NN_MAX_DIM, input.h, input.w, input.c);
	if (classes < NN_MIN_CLASSES || classes > NN_MAX_CLASSES)
		return nn_fail(st, NN_ERR_INVALID, "classes must be between %d and %d, not %d",
					   NN_MIN_CLASSES, NN_MAX_CLASSES, classes);
	if (spec_parse(items, &nitems, spec, st) != NN_OK)
		return st->code;

	memset(&tmp, 0, sizeof(tmp));
	memset(&b, 0, sizeof(b));
	tmp.input = input;
	tmp.classes = classes;
	b.net = &tmp;
	b.spec = spec;
	b.st = st;
	for (int i = 0; i < nitems; i++)
	{
		const spec_item *it = &items[i];
		int			rc = NN_OK;

		switch (it->type)
		{
			case ITEM_LAYER:
				rc = build_layer(&b, it);
				break;
			case ITEM_FROM:
				b.cur = find_label(&b, it->refs[0]);
				if (b.cur < 0)
					return nn_fail(st, NN_ERR_SHAPE, "from(%s) names no earlier labelled layer", it->refs[0]);
				b.pending_from = 1;
				break;
			case ITEM_RES_BEGIN:
				stack_in[depth] = b.cur;
				stack_first[depth] = (int) tmp.nlayers;
				stack_item[depth] = i;
				depth++;
				break;
			case ITEM_RES_END:
				depth--;
				rc = build_residual(&b, &items[stack_item[depth]], stack_in[depth], stack_first[depth]);
				break;
		}
		if (rc != NN_OK)
			return st->code;
	}
	if (b.cur != (int) tmp.nlayers)
		return nn_fail(st, NN_ERR_SHAPE, "the layer spec ends in from(...): the last layer must give the classes");
	out = nn_tensor_shape(&tmp, b.cur);
	if (!tensor_flat(&tmp, b.cur))
	{
		spec_shape_text(shape, sizeof(shape), out, 0);
		return nn_fail(st, NN_ERR_SHAPE,
					   "the last layer must output %d values (one per class), not a %s feature map; end with dense(%d)",
					   classes, shape, classes);
	}
	if (out.c != classes)
		return nn_fail(st, NN_ERR_SHAPE,
					   "the last layer must output %d values (one per class), not %d; end with dense(%d)",
					   classes, out.c, classes);
	tmp.nparams = (size_t) b.nparams;
	tmp.nbuffers = (size_t) b.nbuffers;
	nn_spec_format(&tmp, tmp.spec, sizeof(tmp.spec));
	/* what one image costs, before anyone allocates for it */
	if (nn_net_bound(&tmp, 1, 0, &tmp.per_image, st) != NN_OK)
		return st->code;
	*net = tmp;
	return NN_OK;
}

/* ------------------------------------------------------------ formatting */

/* the name a reference to tensor t is written with */
static const char *
tensor_name(const nn_net *net, int t)
{
	return t == 0 ? "input" : net->layers[t - 1].label;
}

/* Append text to buf at *n (a space first unless glued); false when it does not fit. */
static int
put_text(char *buf, size_t len, size_t *n, const char *text, int glued)
{
	size_t		k = strlen(text) + (glued ? 0 : 1);

	if (*n + k + 1 > len)
		return 0;
	if (!glued)
		buf[(*n)++] = ' ';
	memcpy(buf + *n, text, strlen(text) + 1);
	*n += strlen(text);
	return 1;
}

/* Write the canonical spec of net's nodes into buf (NUL-terminated; cut at a whole item). */
void
nn_spec_format(const nn_net *net, char *buf, size_t len)
{
	size_t		n = 0;
	int			glued = 1;		/* no space before the next text */

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		char		one[NN_MAX_LABEL * (NN_MAX_INPUTS + 2) + 64];

		if (L->role == NN_ROLE_PROJECTION)
			continue;
		if (L->role == NN_ROLE_RESIDUAL)
		{
			if (!put_text(buf, len, &n, ")", 1))
				return;
			continue;
		}
		/* residual blocks opening here, outermost (latest closing) first */
		for (int r = net->nlayers - 1; r > i; r--)
		{
			const nn_layer *R = &net->layers[r];

			if (R->role != NN_ROLE_RESIDUAL || R->block_start != i)
				continue;
			snprintf(one, sizeof(one), "%s%sresidual(", R->label, R->label[0] ? ": " : "");
			if (!put_text(buf, len, &n, one, glued))
				return;
			glued = 1;
		}
		if (L->from)
		{
			snprintf(one, sizeof(one), "from(%s)", tensor_name(net, L->inputs[0]));
			if (!put_text(buf, len, &n, one, glued))
				return;
			glued = 0;
		}
		{
			char		body[sizeof(one) - NN_MAX_LABEL - 4];

			nn_op_of(L->kind)->format(L, body, sizeof(body));
			if (nn_op_of(L->kind)->refs)
			{
				size_t		k = strlen(body);

				for (int j = 0; j < L->nin && k + NN_MAX_LABEL + 2 < sizeof(body); j++)
					k += snprintf(body + k, sizeof(body) - k, "%s%s", j ? "," : "(", tensor_name(net, L->inputs[j]));
				snprintf(body + k, sizeof(body) - k, ")");
			}
			snprintf(one, sizeof(one), "%s%s%s", L->label, L->label[0] ? ": " : "", body);
		}
		if (!put_text(buf, len, &n, one, glued))
			return;
		glued = 0;
	}
}

/* The side of a square of n values, or 0 when n is not a square of 1..NN_MAX_DIM. */
static int32_t
square_side(int64_t n)
{
	int64_t		s = 0;

	while (n > 0 && (s + 1) * (s + 1) <= n && s < NN_MAX_DIM)
		s++;
	return n > 0 && s * s == n ? (int32_t) s : 0;
}

/*
 * The input shape of rows of n values: a square single-channel image, or
 * three times a square as an RGB one (what decode_image(..., 3) makes; no
 * count is both), else an error.
 */
int
nn_infer_input(nn_shape *in, int32_t row_bytes, nn_status *st)
{
	int32_t		s = square_side(row_bytes);
	int			c = 1;

	if (s == 0 && row_bytes % 3 == 0)
	{
		s = square_side(row_bytes / 3);
		c = 3;
	}
	if (s == 0)
		return nn_fail(st, NN_ERR_SHAPE,
					   "cannot infer the image shape from %d pixels per row, which is neither a square nor three times a square of 1 to %d; pass \"input\": [h, w, c] in the options",
					   row_bytes, NN_MAX_DIM);
	in->h = s;
	in->w = s;
	in->c = c;
	return NN_OK;
}
