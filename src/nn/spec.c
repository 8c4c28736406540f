/*
 * spec.c: the layer-spec language, shape inference and parameter layout.
 *
 * A network is written as a short line of text, e.g. the reference CNN
 *
 *     conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dense(128) relu dense(10)
 *
 * Grammar (EBNF; names and keywords are case-insensitive, whitespace may
 * appear around every token inside the parentheses):
 *
 *     spec     = ws layer { sep layer } ws ;
 *     sep      = ws "," ws | space ws ;          (* whitespace and/or one comma *)
 *     layer    = conv | maxpool | dense | dropout | relu | flatten ;
 *     conv     = "conv" ws "(" int "," int [ "," ( int [ "," padding ] | padding ) ] ")" ;
 *                                                (* filters, kernel, stride = 1, padding = valid *)
 *     padding  = "valid" | "same" ;
 *     maxpool  = "maxpool" ws "(" int [ "," int ] ")" ;   (* window, stride = window *)
 *     dense    = "dense" ws "(" int ")" ;        (* output units *)
 *     dropout  = "dropout" ws "(" number ")" ;   (* rate, 0 <= rate < 1 *)
 *     relu     = "relu" [ ws "(" ws ")" ] ;
 *     flatten  = "flatten" [ ws "(" ws ")" ] ;
 *     int      = digit { digit } ;
 *     number   = ( digit { digit } [ "." { digit } ] | "." digit { digit } )
 *                [ ( "e" | "E" ) [ "+" | "-" ] digit { digit } ] ;
 *     ws       = { " " | "\t" | "\n" | "\r" | "\f" | "\v" } ;
 *
 * Ranges: filters and units 1..NN_MAX_DIM, kernel, window and stride 1..64;
 * at most NN_MAX_LAYERS layers and NN_MAX_SPEC - 1 bytes. "same" padding is
 * PyTorch's: it needs an odd kernel and stride 1, and pads (K-1)/2 per side.
 * Pooling floors like PyTorch (ceil_mode=False).
 *
 * nn_net_build() then walks the layers with the input shape. An activation
 * is spatial (C,B,H,W) from the input through conv and maxpool, and flat
 * (B,N) after flatten and dense; relu and dropout keep whatever they get. A
 * dense layer on a spatial activation gets an implicit flatten inserted in
 * front of it, so "conv(8,3) dense(10)" works. Errors name the layer as the
 * user numbered and wrote it. The canonical spec (nn_spec_format) writes
 * every layer, the implicit flatten included, in the shortest form, and
 * building the canonical spec gives the same net again.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "options.h"
#include "train.h"

#define SPEC_MAX_KERNEL 64		/* kernel, window and stride */
#define SPEC_MAX_PARAMS ((uint64_t) 1 << 28)	/* parameters of one net */
#define SPEC_NEAR_LEN 20		/* characters quoted after "near" */
#define SPEC_TEXT_LEN 40		/* characters of a layer quoted in shape errors */

/* what one layer kind accepts */
typedef struct spec_kind
{
	const char *name;
	nn_layer_kind kind;
	int			min_args;
	int			max_args;
	const char *usage;			/* shown when arguments are missing */
} spec_kind;

static const spec_kind spec_kinds[] = {
	{"conv", NN_CONV, 2, 4, "conv(filters, kernel[, stride[, padding]]), as in conv(32,3)"},
	{"maxpool", NN_MAXPOOL, 1, 2, "maxpool(window[, stride]), as in maxpool(2)"},
	{"dense", NN_DENSE, 1, 1, "dense(units), as in dense(128)"},
	{"dropout", NN_DROPOUT, 1, 1, "dropout(rate), as in dropout(0.5)"},
	{"relu", NN_RELU, 0, 0, "relu"},
	{"flatten", NN_FLATTEN, 0, 0, "flatten"},
};

#define SPEC_NKINDS ((int) (sizeof(spec_kinds) / sizeof(spec_kinds[0])))

/* parser state over one NUL-terminated spec */
typedef struct spec_parser
{
	const char *s;
	size_t		pos;
	nn_status  *st;
} spec_parser;

/* where each parsed layer sits in the user's text */
typedef struct spec_span
{
	size_t		start;
	size_t		len;
} spec_span;

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

/* Copy up to max characters of s (len bytes) into buf, printable ASCII only. */
static void
spec_quote(char *buf, size_t buflen, const char *s, size_t len, size_t max)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < len && i < max && n + 1 < buflen; i++)
	{
		unsigned char c = (unsigned char) s[i];

		buf[n++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char) c : '?';
	}
	if (i < len && n + 4 < buflen)
	{
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
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
spec_error(spec_parser *p, size_t at, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static int
spec_error(spec_parser *p, size_t at, const char *fmt,...)
{
	char		why[NN_MSG_LEN];
	char		near[SPEC_NEAR_LEN + 8];
	size_t		len = 0;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (p->s[at] == '\0')
		return nn_fail(p->st, NN_ERR_PARSE, "syntax error at position %d (end of the layer spec): %s",
					   spec_position(p->s, at), why);
	while (p->s[at + len] != '\0' && !spec_isspace(p->s[at + len]))
		len++;
	spec_quote(near, sizeof(near), p->s + at, len, SPEC_NEAR_LEN);
	return nn_fail(p->st, NN_ERR_PARSE, "syntax error at position %d near \"%s\": %s",
				   spec_position(p->s, at), near, why);
}

/* Skip whitespace; returns how many bytes were skipped. */
static size_t
spec_skip_ws(spec_parser *p)
{
	size_t		from = p->pos;

	while (spec_isspace(p->s[p->pos]))
		p->pos++;
	return p->pos - from;
}

/* Case-insensitive comparison of len bytes at s with the lowercase word w. */
static int
spec_word_is(const char *s, size_t len, const char *w)
{
	if (strlen(w) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (tolower((unsigned char) s[i]) != w[i])
			return 0;
	return 1;
}

/* Parse an integer argument in [lo,hi] into *out. */
static int
spec_int(spec_parser *p, const char *kind, const char *what, int lo, int hi, int32_t *out)
{
	size_t		start;
	long long	v = 0;
	char		text[32];

	spec_skip_ws(p);
	start = p->pos;
	if (!spec_isdigit(p->s[p->pos]))
		return spec_error(p, start, "expected an integer for the %s %s", kind, what);
	while (spec_isdigit(p->s[p->pos]))
	{
		if (v <= 1000000000LL)
			v = v * 10 + (p->s[p->pos] - '0');
		p->pos++;
	}
	if (spec_isalpha(p->s[p->pos]) || p->s[p->pos] == '.')
		return spec_error(p, start, "expected an integer for the %s %s", kind, what);
	if (v < lo || v > hi)
	{
		spec_quote(text, sizeof(text), p->s + start, p->pos - start, 20);
		return spec_error(p, start, "%s %s must be between %d and %d, not %s",
						  kind, what, lo, hi, text);
	}
	*out = (int32_t) v;
	return NN_OK;
}

/* Parse the dropout rate, a number in [0,1). */
static int
spec_rate(spec_parser *p, float *out)
{
	size_t		start,
				ndig = 0;
	char		text[64];
	double		v;
	float		f;

	spec_skip_ws(p);
	start = p->pos;
	while (spec_isdigit(p->s[p->pos]))
		p->pos++, ndig++;
	if (p->s[p->pos] == '.')
	{
		p->pos++;
		while (spec_isdigit(p->s[p->pos]))
			p->pos++, ndig++;
	}
	if (ndig == 0)
	{
		p->pos = start;
		return spec_error(p, start, "expected a number for the dropout rate");
	}
	if (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')
	{
		size_t		e = p->pos + 1;

		if (p->s[e] == '+' || p->s[e] == '-')
			e++;
		if (!spec_isdigit(p->s[e]))
			return spec_error(p, start, "expected a number for the dropout rate");
		while (spec_isdigit(p->s[e]))
			e++;
		p->pos = e;
	}
	if (spec_isalpha(p->s[p->pos]) || p->s[p->pos] == '.')
		return spec_error(p, start, "expected a number for the dropout rate");
	if (p->pos - start >= sizeof(text))
		return spec_error(p, start, "the dropout rate has too many digits");
	memcpy(text, p->s + start, p->pos - start);
	text[p->pos - start] = '\0';
	v = strtod(text, NULL);
	f = (float) v;
	if (!(f >= 0.0f && f < 1.0f))
		return spec_error(p, start, "dropout rate must be at least 0 and less than 1, not %s", text);
	*out = f;
	return NN_OK;
}

/* Parse conv's padding keyword into L->same. */
static int
spec_padding(spec_parser *p, nn_layer *L)
{
	size_t		start;
	char		text[32];

	spec_skip_ws(p);
	start = p->pos;
	while (spec_isalpha(p->s[p->pos]))
		p->pos++;
	if (spec_word_is(p->s + start, p->pos - start, "valid"))
		L->same = 0;
	else if (spec_word_is(p->s + start, p->pos - start, "same"))
		L->same = 1;
	else
	{
		size_t		len = p->pos - start;

		while (p->s[start + len] != '\0' && p->s[start + len] != ')' &&
			   p->s[start + len] != ',' && !spec_isspace(p->s[start + len]))
			len++;
		spec_quote(text, sizeof(text), p->s + start, len, 20);
		return spec_error(p, start, "conv padding must be \"valid\" or \"same\", not \"%s\"", text);
	}
	return NN_OK;
}

/* Parse the argument list of one layer (p->pos is just past "("). */
static int
spec_args(spec_parser *p, const spec_kind *k, nn_layer *L, size_t name_at)
{
	int			nargs = 0;

	for (;;)
	{
		int			rc = NN_OK;

		spec_skip_ws(p);
		if (nargs == 0 && p->s[p->pos] == ')' && k->max_args == 0)
			break;
		if (nargs >= k->max_args)
		{
			if (k->max_args == 0)
				return spec_error(p, p->pos, "%s takes no arguments", k->name);
			return spec_error(p, p->pos, "%s takes at most %d argument%s: %s", k->name,
							  k->max_args, k->max_args == 1 ? "" : "s", k->usage);
		}
		switch (k->kind)
		{
			case NN_CONV:
				if (nargs == 0)
					rc = spec_int(p, "conv", "filters", 1, NN_MAX_DIM, &L->units);
				else if (nargs == 1)
					rc = spec_int(p, "conv", "kernel size", 1, SPEC_MAX_KERNEL, &L->kernel);
				else if (nargs == 2 && spec_isdigit(p->s[p->pos]))
					rc = spec_int(p, "conv", "stride", 1, SPEC_MAX_KERNEL, &L->stride);
				else
				{
					rc = spec_padding(p, L);
					nargs = 3;	/* padding is always the last argument */
				}
				break;
			case NN_MAXPOOL:
				if (nargs == 0)
					rc = spec_int(p, "maxpool", "window", 1, SPEC_MAX_KERNEL, &L->kernel);
				else
					rc = spec_int(p, "maxpool", "stride", 1, SPEC_MAX_KERNEL, &L->stride);
				break;
			case NN_DENSE:
				rc = spec_int(p, "dense", "units", 1, NN_MAX_DIM, &L->units);
				break;
			case NN_DROPOUT:
				rc = spec_rate(p, &L->rate);
				break;
			default:
				break;
		}
		if (rc != NN_OK)
			return rc;
		nargs++;
		spec_skip_ws(p);
		if (p->s[p->pos] == ')')
			break;
		if (p->s[p->pos] != ',')
			return spec_error(p, p->pos, "expected \",\" or \")\" in %s(...)", k->name);
		p->pos++;
	}
	if (nargs < k->min_args)
		return spec_error(p, name_at, "%s needs %d argument%s: %s", k->name, k->min_args,
						  k->min_args == 1 ? "" : "s", k->usage);
	p->pos++;					/* the ")" */
	return NN_OK;
}

/* Parse one layer at p->pos into L. */
static int
spec_layer(spec_parser *p, nn_layer *L)
{
	size_t		start = p->pos;
	size_t		len;
	const spec_kind *k = NULL;
	char		text[32];

	if (!spec_isalpha(p->s[p->pos]))
		return spec_error(p, start, "expected a layer name (conv, maxpool, relu, flatten, dense or dropout)");
	while (spec_isalpha(p->s[p->pos]) || spec_isdigit(p->s[p->pos]) || p->s[p->pos] == '_')
		p->pos++;
	len = p->pos - start;
	for (int i = 0; i < SPEC_NKINDS; i++)
		if (spec_word_is(p->s + start, len, spec_kinds[i].name))
			k = &spec_kinds[i];
	if (k == NULL)
	{
		spec_quote(text, sizeof(text), p->s + start, len, 20);
		return spec_error(p, start, "unknown layer \"%s\" (known: conv, maxpool, relu, flatten, dense, dropout)",
						  text);
	}
	memset(L, 0, sizeof(*L));
	L->kind = k->kind;
	L->stride = k->kind == NN_CONV ? 1 : 0; /* maxpool: 0 until given */
	{
		size_t		save = p->pos;

		spec_skip_ws(p);
		if (p->s[p->pos] == '(')
		{
			p->pos++;
			if (spec_args(p, k, L, start) != NN_OK)
				return p->st->code;
		}
		else
		{
			p->pos = save;
			if (k->min_args > 0)
				return spec_error(p, start, "%s needs arguments: %s", k->name, k->usage);
		}
	}
	if (L->kind == NN_MAXPOOL && L->stride == 0)
		L->stride = L->kernel;	/* stride defaults to the window */
	if (L->kind == NN_CONV && L->same)
	{
		if (L->kernel % 2 == 0 || L->stride != 1)
			return spec_error(p, start, "conv padding \"same\" needs an odd kernel size and stride 1");
		L->pad = (L->kernel - 1) / 2;
	}
	return NN_OK;
}

/* Parse spec into layers[] and spans[]; returns the status and sets *nlayers. */
static int
spec_parse(nn_layer *layers, spec_span *spans, int32_t *nlayers, const char *spec,
		   nn_status *st)
{
	spec_parser p = {spec, 0, st};
	int			n = 0;

	if (spec == NULL)
		return nn_fail(st, NN_ERR_PARSE, "layer spec is empty");
	if (strnlen(spec, NN_MAX_SPEC) >= NN_MAX_SPEC)
		return nn_fail(st, NN_ERR_LIMIT, "layer spec is longer than %d bytes", NN_MAX_SPEC - 1);
	spec_skip_ws(&p);
	if (spec[p.pos] == '\0')
		return nn_fail(st, NN_ERR_PARSE, "layer spec is empty");
	for (;;)
	{
		size_t		start = p.pos;
		size_t		gap;

		if (n == NN_MAX_LAYERS)
			return nn_fail(st, NN_ERR_LIMIT, "layer spec has more than %d layers", NN_MAX_LAYERS);
		if (spec_layer(&p, &layers[n]) != NN_OK)
			return st->code;
		spans[n].start = start;
		spans[n].len = p.pos - start;
		n++;
		gap = spec_skip_ws(&p);
		if (spec[p.pos] == '\0')
			break;
		if (spec[p.pos] == ',')
		{
			p.pos++;
			spec_skip_ws(&p);
			if (spec[p.pos] == '\0')
				return spec_error(&p, p.pos, "expected a layer after \",\"");
		}
		else if (gap == 0)
			return spec_error(&p, p.pos, "expected whitespace or \",\" between layers");
	}
	*nlayers = n;
	return NN_OK;
}

/* Parse a layer spec into net->layers (kinds and hyper-parameters only). */
int
nn_spec_parse(nn_net *net, const char *spec, nn_status *st)
{
	nn_layer	layers[NN_MAX_LAYERS];
	spec_span	spans[NN_MAX_LAYERS];
	int32_t		n = 0;

	if (spec_parse(layers, spans, &n, spec, st) != NN_OK)
		return st->code;
	memset(net->layers, 0, sizeof(net->layers));
	memcpy(net->layers, layers, n * sizeof(nn_layer));
	net->nlayers = n;
	return NN_OK;
}

/* Shortest %g form of a float that reads back as the same float. */
static void
spec_float(char *buf, size_t len, float v)
{
	for (int prec = 6; prec <= 9; prec++)
	{
		snprintf(buf, len, "%.*g", prec, (double) v);
		if ((float) strtod(buf, NULL) == v)
			return;
	}
}

/* Write the canonical spec of net->layers into buf (NUL-terminated). */
void
nn_spec_format(const nn_net *net, char *buf, size_t len)
{
	size_t		n = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		char		one[64];
		char		num[32];
		size_t		k;

		switch (L->kind)
		{
			case NN_CONV:
				if (L->same)
					snprintf(one, sizeof(one), "conv(%d,%d,%d,same)", L->units, L->kernel, L->stride);
				else if (L->stride != 1)
					snprintf(one, sizeof(one), "conv(%d,%d,%d)", L->units, L->kernel, L->stride);
				else
					snprintf(one, sizeof(one), "conv(%d,%d)", L->units, L->kernel);
				break;
			case NN_MAXPOOL:
				if (L->stride == L->kernel)
					snprintf(one, sizeof(one), "maxpool(%d)", L->kernel);
				else
					snprintf(one, sizeof(one), "maxpool(%d,%d)", L->kernel, L->stride);
				break;
			case NN_RELU:
				snprintf(one, sizeof(one), "relu");
				break;
			case NN_FLATTEN:
				snprintf(one, sizeof(one), "flatten");
				break;
			case NN_DENSE:
				snprintf(one, sizeof(one), "dense(%d)", L->units);
				break;
			case NN_DROPOUT:
				spec_float(num, sizeof(num), L->rate);
				snprintf(one, sizeof(one), "dropout(%s)", num);
				break;
			default:
				snprintf(one, sizeof(one), "?");
				break;
		}
		k = strlen(one) + (i > 0);
		if (n + k + 1 > len)
			break;				/* does not fit: stop at a whole layer */
		if (i > 0)
			buf[n++] = ' ';
		memcpy(buf + n, one, strlen(one) + 1);
		n += strlen(one);
	}
}

/* "HxWxC" for a spatial activation, "N values" for a flat one */
static void
spec_shape_text(char *buf, size_t len, nn_shape s, int flat)
{
	if (flat)
		snprintf(buf, len, "%d values", s.c);
	else
		snprintf(buf, len, "%dx%dx%d", s.h, s.w, s.c);
}

/* Quote the user's text of layer i (a span of spec) into buf. */
static void
spec_layer_text(char *buf, size_t len, const char *spec, const spec_span *span)
{
	spec_quote(buf, len, spec + span->start, span->len, SPEC_TEXT_LEN);
}

/*
 * Shape inference and parameter layout of spec over input: see the file
 * comment. Builds into a local net and copies it out on success only, so
 * spec may point into *net.
 */
int
nn_net_build(nn_net *net, const char *spec, nn_shape input, int32_t classes, nn_status *st)
{
	nn_layer	parsed[NN_MAX_LAYERS];
	spec_span	spans[NN_MAX_LAYERS];
	int32_t		nparsed = 0;
	nn_net		tmp;
	nn_shape	cur = input;
	int			flat = 0;
	uint64_t	nparams = 0;
	char		text[SPEC_TEXT_LEN + 8];
	char		shape[48];

	if (input.h < 1 || input.h > NN_MAX_DIM || input.w < 1 || input.w > NN_MAX_DIM ||
		input.c < 1 || input.c > NN_MAX_DIM)
		return nn_fail(st, NN_ERR_INVALID,
					   "input height, width and channels must each be between 1 and %d, not %dx%dx%d",
					   NN_MAX_DIM, input.h, input.w, input.c);
	if (classes < NN_MIN_CLASSES || classes > NN_MAX_CLASSES)
		return nn_fail(st, NN_ERR_INVALID, "classes must be between %d and %d, not %d",
					   NN_MIN_CLASSES, NN_MAX_CLASSES, classes);
	if (spec_parse(parsed, spans, &nparsed, spec, st) != NN_OK)
		return st->code;

	memset(&tmp, 0, sizeof(tmp));
	tmp.input = input;
	tmp.classes = classes;
	for (int i = 0; i < nparsed; i++)
	{
		nn_layer	L = parsed[i];
		int			num = i + 1;	/* the user's layer number */

		spec_layer_text(text, sizeof(text), spec, &spans[i]);
		spec_shape_text(shape, sizeof(shape), cur, flat);

		if (L.kind == NN_DENSE && !flat)
		{
			/* implicit flatten in front of a dense layer on an image */
			nn_layer	F;
			int64_t		n = (int64_t) cur.h * cur.w * cur.c;

			if (tmp.nlayers + 2 > NN_MAX_LAYERS)
				return nn_fail(st, NN_ERR_LIMIT,
							   "layer spec has more than %d layers with the flatten added before layer %d \"%s\"",
							   NN_MAX_LAYERS, num, text);
			if ((uint64_t) n > SPEC_MAX_PARAMS)
				return nn_fail(st, NN_ERR_LIMIT,
							   "layer %d \"%s\" would flatten its %s input into %lld values, more than the limit of %llu",
							   num, text, shape, (long long) n, (unsigned long long) SPEC_MAX_PARAMS);
			memset(&F, 0, sizeof(F));
			F.kind = NN_FLATTEN;
			F.in = cur;
			F.out.h = F.out.w = 1;
			F.out.c = (int32_t) n;
			F.w_off = F.b_off = (size_t) nparams;
			tmp.layers[tmp.nlayers++] = F;
			cur = F.out;
			flat = 1;
		}
		if (tmp.nlayers == NN_MAX_LAYERS)
			return nn_fail(st, NN_ERR_LIMIT,
						   "layer spec has more than %d layers with the flatten added before a dense layer",
						   NN_MAX_LAYERS);

		L.in = cur;
		L.flat_in = flat;
		switch (L.kind)
		{
			case NN_CONV:
			case NN_MAXPOOL:
				{
					int32_t		hp,
								wp;

					if (flat)
						return nn_fail(st, NN_ERR_SHAPE,
									   "layer %d \"%s\" needs an image input but gets a flat vector of %s; put conv and maxpool layers before flatten and dense",
									   num, text, shape);
					if (L.kind == NN_MAXPOOL)
						L.pad = 0;
					hp = cur.h + 2 * L.pad;
					wp = cur.w + 2 * L.pad;
					if (L.kernel > hp || L.kernel > wp)
						return nn_fail(st, NN_ERR_SHAPE,
									   "layer %d \"%s\" does not fit its %s input: the %dx%d window is larger than the %s%dx%d image",
									   num, text, shape, L.kernel, L.kernel,
									   L.pad ? "padded " : "", hp, wp);
					L.out.h = (hp - L.kernel) / L.stride + 1;
					L.out.w = (wp - L.kernel) / L.stride + 1;
					L.out.c = L.kind == NN_CONV ? L.units : cur.c;
					if (L.kind == NN_CONV)
					{
						L.w_len = (size_t) L.units * cur.c * L.kernel * L.kernel;
						L.b_len = (size_t) L.units;
					}
					break;
				}
			case NN_RELU:
			case NN_DROPOUT:
				L.out = cur;
				break;
			case NN_FLATTEN:
				{
					int64_t		n = (int64_t) cur.h * cur.w * cur.c;

					if (flat)
						return nn_fail(st, NN_ERR_SHAPE,
									   "layer %d \"%s\" has nothing to flatten: its input is already a flat vector of %s",
									   num, text, shape);
					if ((uint64_t) n > SPEC_MAX_PARAMS)
						return nn_fail(st, NN_ERR_LIMIT,
									   "layer %d \"%s\" would flatten its %s input into %lld values, more than the limit of %llu",
									   num, text, shape, (long long) n, (unsigned long long) SPEC_MAX_PARAMS);
					L.out.h = L.out.w = 1;
					L.out.c = (int32_t) n;
					break;
				}
			case NN_DENSE:
				L.out.h = L.out.w = 1;
				L.out.c = L.units;
				L.w_len = (size_t) L.units * cur.c;
				L.b_len = (size_t) L.units;
				break;
		}
		/* PyTorch state_dict order: weight then bias, layer by layer */
		L.w_off = (size_t) nparams;
		nparams += L.w_len;
		L.b_off = (size_t) nparams;
		nparams += L.b_len;
		if (nparams > SPEC_MAX_PARAMS)
			return nn_fail(st, NN_ERR_LIMIT,
						   "the network has more than %llu parameters (layer %d \"%s\" alone has %llu)",
						   (unsigned long long) SPEC_MAX_PARAMS, num, text,
						   (unsigned long long) (L.w_len + L.b_len));
		if (L.kind != NN_RELU && L.kind != NN_DROPOUT)
			flat = (L.kind == NN_FLATTEN || L.kind == NN_DENSE);
		cur = L.out;
		tmp.layers[tmp.nlayers++] = L;
	}
	if (!flat)
	{
		spec_shape_text(shape, sizeof(shape), cur, flat);
		return nn_fail(st, NN_ERR_SHAPE,
					   "the last layer must output %d values (one per class), not a %s feature map; end with dense(%d)",
					   classes, shape, classes);
	}
	if (cur.c != classes)
		return nn_fail(st, NN_ERR_SHAPE,
					   "the last layer must output %d values (one per class), not %d; end with dense(%d)",
					   classes, cur.c, classes);
	tmp.nparams = (size_t) nparams;
	nn_spec_format(&tmp, tmp.spec, sizeof(tmp.spec));
	/* what one image costs, before anyone allocates for it */
	if (nn_net_bound(&tmp, 1, 0, &tmp.per_image, st) != NN_OK)
		return st->code;
	*net = tmp;
	return NN_OK;
}

/* Square single-channel input inferred from a pixel count, or an error. */
int
nn_infer_input(nn_shape *in, int32_t row_bytes, nn_status *st)
{
	int64_t		s = 0;

	if (row_bytes > 0)
	{
		while ((s + 1) * (s + 1) <= row_bytes)
			s++;
	}
	if (row_bytes <= 0 || s * s != row_bytes || s > NN_MAX_DIM)
		return nn_fail(st, NN_ERR_SHAPE,
					   "cannot infer the image shape from %d pixels per row, which is not a square of 1 to %d; pass \"input\": [h, w, c] in the options",
					   row_bytes, NN_MAX_DIM);
	in->h = (int32_t) s;
	in->w = (int32_t) s;
	in->c = 1;
	return NN_OK;
}
