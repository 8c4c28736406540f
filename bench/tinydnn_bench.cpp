/*
 * tinydnn_bench.cpp: tiny-dnn (Debian's header-only tiny-dnn 1.0.0a3) on the
 * reference CNN of `make bench`, writing the JSON torch_bench.py writes.
 *
 *   build/bench/tinydnn_bench --data DIR --out FILE.json [--epochs 5]
 *       [--threads 2] [--predict-threads T] [--train-rows N] [--repeats 5]
 *       [--seed 42]
 *
 * The network, as PyTorch's nn.Sequential in torch_bench.py (225,034
 * parameters):
 *
 *   convolutional_layer<relu>(28x28x1, 3x3, 32) max_pooling_layer(2)
 *   convolutional_layer<relu>(13x13x32, 3x3, 64) max_pooling_layer(2)
 *   fully_connected_layer<relu>(1600, 128) fully_connected_layer<softmax>(128, 10)
 *
 * with the loss cross_entropy_multiclass (softmax + cross-entropy, as
 * PyTorch's CrossEntropyLoss), tiny_dnn::adam (alpha 0.001, b1 0.9, b2
 * 0.999, eps 1e-8: its defaults), batch 64, pixels / 255, the training rows
 * shuffled every epoch (std::mt19937 seeded with --seed).
 *
 * Threads: compiled with -fopenmp -DCNN_USE_OMP, tiny-dnn's parallel_for is
 * "#pragma omp parallel for" over the samples of a batch, so
 * omp_set_num_threads(--threads) is its thread count. Without CNN_USE_OMP it
 * would start std::thread::hardware_concurrency() threads per loop, whatever
 * the benchmark asks, so run.sh always builds it with OpenMP. -DCNN_USE_AVX
 * selects tiny-dnn's AVX kernels (its "avx" backend: fully connected layers
 * and 5x5 convolutions; the 3x3 convolutions here run its generic loops).
 * tiny-dnn calls no BLAS.
 *
 * The batches go through network::train() one batch at a time (so that the
 * program shuffles each epoch itself without a second copy of the data);
 * train() calls the optimizer's reset() first, which would clear Adam's
 * moments every batch, so the optimizer is tiny_dnn::adam with a reset()
 * that keeps them (nothing else differs). Loss and training accuracy come
 * from the output layer's values of each batch.
 *
 * Debian's package strips tiny-dnn's third_party folder and does not depend
 * on cereal: run.sh installs libcereal-dev and libstb-dev and points
 * third_party/stb at /usr/include/stb; gemmlowp (quantized layers only) is
 * switched off below.
 */
#include "cxx_bench.h"

#include <omp.h>

#include <numeric>
#include <random>

#include <tiny_dnn/config.h>
#undef CNN_USE_GEMMLOWP			/* the quantized layers need gemmlowp, which Debian lacks */
#include <tiny_dnn/tiny_dnn.h>

using namespace tiny_dnn;

#ifndef BENCH_LIB_VERSION
#define BENCH_LIB_VERSION "1.0.0a3"	/* run.sh passes the Debian package's version */
#endif

/* tiny_dnn::adam whose state survives network::train()'s reset() */
struct adam_kept : public adam {
	void reset() override {}
};

/* The pixels of row i of x (n rows of p bytes) as floats / 255. */
static vec_t
to_vec(const std::vector<uint8_t> &x, size_t i, size_t p)
{
	vec_t v(p);
	for (size_t k = 0; k < p; k++)
		v[k] = float_t(x[i * p + k]) * float_t(1.0 / 255.0);
	return v;
}

/* Train, measure, write the JSON. */
int
main(int argc, char **argv)
{
	bench::Args a = bench::parse_args(argc, argv, "tiny-dnn on the reference CNN of make bench");
	bench::Result r;
	try
	{
		double t0 = bench::now();
		bench::Data d = bench::load(a.data, (size_t) a.train_rows);
		const size_t P = d.pixels(), H = d.h, W = d.w;
		std::vector<vec_t> xtr(d.ntrain), xte(d.ntest);
		std::vector<label_t> ytr(d.ytr.begin(), d.ytr.end());
		for (size_t i = 0; i < d.ntrain; i++)
			xtr[i] = to_vec(d.xtr, i, P);
		for (size_t i = 0; i < d.ntest; i++)
			xte[i] = to_vec(d.xte, i, P);
		r.load_seconds = bench::now() - t0;

		omp_set_num_threads(a.threads);
		set_random_seed(a.seed);
		network<sequential> net;
		const size_t c1 = H - 2, p1 = c1 / 2, c2 = p1 - 2, p2 = c2 / 2;
		net << convolutional_layer<activation::relu>(W, H, 3, 1, 32)
			<< max_pooling_layer<activation::identity>(c1, c1, 32, 2)
			<< convolutional_layer<activation::relu>(p1, p1, 3, 32, 64)
			<< max_pooling_layer<activation::identity>(c2, c2, 64, 2)
			<< fully_connected_layer<activation::relu>(p2 * p2 * 64, 128)
			<< fully_connected_layer<activation::softmax>(128, 10);
		adam_kept opt;			/* alpha 0.001, b1 0.9, b2 0.999, eps 1e-8 */

		std::mt19937 rng(a.seed);
		std::vector<size_t> perm(d.ntrain);
		std::iota(perm.begin(), perm.end(), 0);
		std::vector<vec_t> bx;
		std::vector<label_t> by;
		double cpu0 = bench::cpu_seconds();
		for (int e = 0; e < a.epochs; e++)
		{
			double e0 = bench::now(), loss = 0;
			long correct = 0;
			std::shuffle(perm.begin(), perm.end(), rng);
			for (size_t s = 0; s < d.ntrain; s += 64)
			{
				size_t B = std::min<size_t>(64, d.ntrain - s);
				bx.assign(B, vec_t());
				by.resize(B);
				for (size_t b = 0; b < B; b++)
				{
					bx[b] = xtr[perm[s + b]];
					by[b] = ytr[perm[s + b]];
				}
				net.train<cross_entropy_multiclass>(opt, bx, by, B, 1);
				/* the output layer still holds the batch's softmax */
				std::vector<tensor_t> out = net[net.depth() - 1]->output();
				for (size_t b = 0; b < B && !out.empty() && b < out[0].size(); b++)
				{
					const vec_t &y = out[0][b];
					loss -= std::log(std::max<double>(y[by[b]], 1e-12));
					correct += bench::argmax(y.data(), y.size()) == by[b];
				}
			}
			double secs = bench::now() - e0;
			r.epoch_seconds.push_back(secs);
			r.epoch_loss.push_back(loss / d.ntrain);
			r.epoch_train_accuracy.push_back(double(correct) / d.ntrain);
			std::fprintf(stderr, "tiny-dnn epoch %d/%d: loss %.4f, accuracy %.4f, %.2f s\n", e + 1, a.epochs,
						 loss / d.ntrain, double(correct) / d.ntrain, secs);
		}
		r.training_cpu_seconds = bench::cpu_seconds() - cpu0;
		r.train_peak_mb = bench::peak_mb();
		int threads_training = bench::threads_now();

		for (size_t i = 0; i < net.depth(); i++)
			for (const vec_t *w : net[i]->weights())
				r.parameters += (long) w->size();

		omp_set_num_threads(a.predict_threads);
		r.predict_threads = a.predict_threads;
		net.set_netphase(net_phase::test);
		t0 = bench::now();
		for (size_t s = 0; s < d.ntest; s += 1000)
		{
			size_t B = std::min<size_t>(1000, d.ntest - s);
			std::vector<tensor_t> in(B);
			for (size_t b = 0; b < B; b++)
				in[b] = tensor_t{xte[s + b]};
			std::vector<tensor_t> out = net.predict(in);
			for (size_t b = 0; b < B; b++)
				r.test_correct += bench::argmax(out[b][0].data(), out[b][0].size()) == d.yte[s + b];
		}
		r.eval_seconds = bench::now() - t0;
		volatile size_t sink = 0;
		r.single = bench::timed_median([&]() {
			for (size_t i = 0; i < 100; i++)
			{
				vec_t y = net.predict(xte[i]);
				sink += bench::argmax(y.data(), y.size());
			}
		}, a.repeats);
		std::vector<tensor_t> in100(100);
		for (size_t i = 0; i < 100; i++)
			in100[i] = tensor_t{xte[i]};
		r.batch = bench::timed_median([&]() {
			std::vector<tensor_t> out = net.predict(in100);
			for (auto &o : out)
				sink += bench::argmax(o[0].data(), o[0].size());
		}, a.repeats);

		bench::Json extra, threading;
		threading.set("model", "OpenMP (-fopenmp -DCNN_USE_OMP): tiny-dnn's parallel_for over the samples of a batch")
			.set("omp_max_threads", omp_get_max_threads())
			.set("threads_seen_after_training", threads_training);
#ifdef CNN_USE_AVX
		bool avx = true;
#else
		bool avx = false;
#endif
		extra.set("library", "tiny-dnn (Debian tiny-dnn, header-only)")
			.set("blas", "none (tiny-dnn's own kernels)")
			.set("kernels", avx ? "tiny-dnn avx backend (CNN_USE_AVX): AVX fully connected and 5x5 "
								  "convolution kernels, generic loops for the 3x3 convolutions"
								: "tiny-dnn internal backend (generic loops)")
			.set("threading", threading)
			.set("optimizer", "tiny_dnn::adam (alpha 0.001, b1 0.9, b2 0.999, eps 1e-8 inside the square root; "
							  "its bias correction advances b1^t, b2^t once per weight tensor updated)")
			.set("weight_init", "tiny-dnn's defaults: xavier weights, zero biases")
			.set("compiler", std::string("g++ ") + __VERSION__)
#ifdef BENCH_CXXFLAGS
			.set("compile_flags", BENCH_CXXFLAGS)
#endif
			.raw("libraries", bench::Json::strs(bench::loaded_libraries({"gomp", "omp", "blas", "tbb"})));
		bench::write_result(a, d, "tinydnn", BENCH_LIB_VERSION, r, extra);
	}
	catch (const std::exception &e)
	{
		std::fprintf(stderr, "tinydnn_bench: %s\n", e.what());
		return 1;
	}
	return 0;
}
