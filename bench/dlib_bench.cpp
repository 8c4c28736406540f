/*
 * dlib_bench.cpp: dlib's DNN module (Debian's libdlib-dev 19.24) on the
 * reference CNN of `make bench`, writing the JSON torch_bench.py writes.
 *
 *   build/bench/dlib_bench --data DIR --out FILE.json [--epochs 5]
 *       [--threads 2] [--predict-threads T] [--train-rows N] [--repeats 5]
 *       [--seed 42]
 *
 * The network, as PyTorch's nn.Sequential in torch_bench.py (225,034
 * parameters):
 *
 *   loss_multiclass_log<fc<10, relu<fc<128, max_pool<2,2,2,2, relu<
 *     con_<64,3,3,1,1,0,0>, max_pool<2,2,2,2, relu<con_<32,3,3,1,1,0,0>,
 *     input<matrix<float>>>>>>>>>>>
 *
 * (con_ with padding 0 spelled out: dlib's con<> pads 3x3 filters by 1 at
 * stride 1; fc<> flattens its input; loss_multiclass_log is softmax +
 * cross-entropy, averaged over the batch, as PyTorch's CrossEntropyLoss),
 * trained by dnn_trainer with dlib::adam(weight decay 0, 0.9, 0.999) at
 * learning rate 0.001 kept constant (learning_rate_shrink_factor 1, so the
 * trainer never lowers it), batch 64, pixels / 255, the training rows
 * shuffled every epoch (std::mt19937 seeded with --seed); each batch goes in
 * with train_one_step(); an epoch ends when get_net() has waited for the
 * trainer's thread to finish its batches. The loss is the trainer's running
 * average at the end of each epoch (get_average_loss()); dlib gives no
 * training accuracy.
 *
 * Threads: dlib's CPU code (cpu_dlib.cpp, compiled into libdlib.so by
 * Debian, with DLIB_USE_BLAS) runs in one thread, dnn_trainer's own, and
 * does its convolutions and fully connected layers as im2col + cblas_sgemm;
 * Debian's libdlib links libblas.so.3, which the alternatives system points
 * at OpenBLAS (openblas-pthread), so the parallel part is OpenBLAS's
 * threads: openblas_set_num_threads(--threads). The JSON says which
 * OpenBLAS and kernel were loaded. -O3 -march=native applies to the
 * templates in dlib's headers; the kernels in libdlib.so are Debian's build.
 */
#include "cxx_bench.h"

#include <numeric>
#include <random>

#include <dlib/dnn.h>
#include <dlib/revision.h>

using namespace dlib;

/* 3x3 convolution, stride 1, no padding */
template <long N, typename SUBNET>
using con3_valid = add_layer<con_<N, 3, 3, 1, 1, 0, 0>, SUBNET>;

using net_type = loss_multiclass_log<
	fc<10, relu<fc<128,
	max_pool<2, 2, 2, 2, relu<con3_valid<64,
	max_pool<2, 2, 2, 2, relu<con3_valid<32,
	input<matrix<float>>>>>>>>>>>>;

/* Row i of x (h x w bytes per row) as a float image / 255. */
static matrix<float>
to_image(const std::vector<uint8_t> &x, size_t i, size_t h, size_t w)
{
	matrix<float> m(h, w);
	const uint8_t *p = &x[i * h * w];
	for (size_t r = 0; r < h; r++)
		for (size_t c = 0; c < w; c++)
			m(r, c) = p[r * w + c] / 255.0f;
	return m;
}

/* Train, measure, write the JSON. */
int
main(int argc, char **argv)
{
	bench::Args a = bench::parse_args(argc, argv, "dlib's DNN module on the reference CNN of make bench");
	bench::Result r;
	try
	{
		double t0 = bench::now();
		bench::Data d = bench::load(a.data, (size_t) a.train_rows);
		std::vector<matrix<float>> xtr(d.ntrain), xte(d.ntest);
		std::vector<unsigned long> ytr(d.ytr.begin(), d.ytr.end());
		for (size_t i = 0; i < d.ntrain; i++)
			xtr[i] = to_image(d.xtr, i, d.h, d.w);
		for (size_t i = 0; i < d.ntest; i++)
			xte[i] = to_image(d.xte, i, d.h, d.w);
		r.load_seconds = bench::now() - t0;

		bool have_openblas = bench::openblas_set_threads(a.threads);
		std::srand(a.seed);	/* dlib's layers seed their weight generators with std::rand() */
		net_type net;
		dnn_trainer<net_type, adam> trainer(net, adam(0, 0.9f, 0.999f));
		trainer.set_learning_rate(0.001);
		trainer.set_learning_rate_shrink_factor(1);
		trainer.set_mini_batch_size(64);
		trainer.be_quiet();

		std::mt19937 rng(a.seed);
		std::vector<size_t> perm(d.ntrain);
		std::iota(perm.begin(), perm.end(), 0);
		std::vector<matrix<float>> bx;
		std::vector<unsigned long> by;
		double cpu0 = bench::cpu_seconds();
		int threads_training = 0;
		for (int e = 0; e < a.epochs; e++)
		{
			double e0 = bench::now();
			std::shuffle(perm.begin(), perm.end(), rng);
			for (size_t s = 0; s < d.ntrain; s += 64)
			{
				size_t B = std::min<size_t>(64, d.ntrain - s);
				bx.resize(B);
				by.resize(B);
				for (size_t b = 0; b < B; b++)
				{
					bx[b] = xtr[perm[s + b]];
					by[b] = ytr[perm[s + b]];
				}
				trainer.train_one_step(bx, by);
				if (s == 64 * 10)
					threads_training = bench::threads_now();
			}
			trainer.get_net(force_flush_to_disk::no);	/* waits for the trainer's thread */
			double secs = bench::now() - e0;
			double loss = trainer.get_average_loss();
			r.epoch_seconds.push_back(secs);
			r.epoch_loss.push_back(loss);
			std::fprintf(stderr, "dlib epoch %d/%d: loss %.4f (running average), %.2f s\n", e + 1, a.epochs, loss,
						 secs);
		}
		r.training_cpu_seconds = bench::cpu_seconds() - cpu0;
		r.train_peak_mb = bench::peak_mb();
		net_type &model = net;	/* the trainer trains net in place */
		trainer.get_net(force_flush_to_disk::no);
		r.parameters = (long) count_parameters(model);

		if (have_openblas)
			bench::openblas_set_threads(a.predict_threads);
		r.predict_threads = a.predict_threads;
		t0 = bench::now();
		for (size_t s = 0; s < d.ntest; s += 1000)
		{
			size_t B = std::min<size_t>(1000, d.ntest - s);
			std::vector<matrix<float>> in(xte.begin() + s, xte.begin() + s + B);
			std::vector<unsigned long> out = model(in, B);
			for (size_t b = 0; b < B; b++)
				r.test_correct += out[b] == d.yte[s + b];
		}
		r.eval_seconds = bench::now() - t0;
		volatile unsigned long sink = 0;
		r.single = bench::timed_median([&]() {
			for (size_t i = 0; i < 100; i++)
				sink += model(xte[i]);
		}, a.repeats);
		std::vector<matrix<float>> in100(xte.begin(), xte.begin() + 100);
		r.batch = bench::timed_median([&]() {
			std::vector<unsigned long> out = model(in100, 100);
			sink += out[0];
		}, a.repeats);

		bench::Json extra, threading;
		threading.set("model", have_openblas
						  ? "dnn_trainer's one thread runs dlib's CPU layers; OpenBLAS threads (openblas_set_num_threads) "
							"in its cblas_sgemm calls"
						  : "dnn_trainer's one thread; no OpenBLAS found, so the BLAS is single-threaded")
			.set("threads_seen_while_training", threads_training);
		extra.set("library", "dlib DNN module (Debian libdlib-dev, libdlib.so)")
			.set("blas", "cblas via libblas.so.3 (DLIB_USE_BLAS in dlib/config.h)")
			.set("kernels", "dlib cpu:: layers (im2col + sgemm convolutions, sgemm fully connected), "
							"compiled by Debian into libdlib.so")
			.set("threading", threading)
			.set("optimizer", "dlib::adam(weight decay 0, 0.9, 0.999), learning rate 0.001 constant "
							  "(eps 1e-8 added to sqrt(v), the bias correction folded into the step size)")
			.set("weight_init", "dlib's defaults")
			.set("compiler", std::string("g++ ") + __VERSION__)
#ifdef BENCH_CXXFLAGS
			.set("compile_flags", BENCH_CXXFLAGS)
#endif
			.raw("libraries", bench::Json::strs(bench::loaded_libraries({"libdlib", "blas", "lapack", "gomp"})));
		char version[32];
		std::snprintf(version, sizeof(version), "%d.%d.%d", DLIB_MAJOR_VERSION, DLIB_MINOR_VERSION,
					  DLIB_PATCH_VERSION);
		bench::write_result(a, d, "dlib", version, r, extra);
	}
	catch (const std::exception &e)
	{
		std::fprintf(stderr, "dlib_bench: %s\n", e.what());
		return 1;
	}
	return 0;
}
