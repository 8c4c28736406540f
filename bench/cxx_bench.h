/*
 * cxx_bench.h: what bench/tinydnn_bench.cpp and bench/dlib_bench.cpp share,
 * the C++ side of `make bench` (bench/run.sh compiles them).
 *
 * The IDX reader (gzip files through zlib), the command line (the flags of
 * bench/torch_bench.py), clocks, the process's peak memory and CPU time, the
 * median timer of the prediction measurements, the OpenBLAS of the process
 * (when one is loaded) and a small JSON writer, so that both programs write
 * the JSON object torch_bench.py writes, field for field.
 */
#ifndef MLCNN_CXX_BENCH_H
#define MLCNN_CXX_BENCH_H

#include <dlfcn.h>
#include <sys/resource.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bench {

/* One IDX file of unsigned bytes: its dimensions and its body. */
struct Idx {
	std::vector<uint32_t> dims;
	std::vector<uint8_t> data;
};

/* Read an IDX file, gzip-compressed or not (zlib reads both). */
inline Idx
read_idx(const std::string &path)
{
	gzFile f = gzopen(path.c_str(), "rb");
	if (!f)
		throw std::runtime_error(path + ": cannot open");
	std::vector<uint8_t> all;
	uint8_t buf[1 << 16];
	int n;
	while ((n = gzread(f, buf, sizeof(buf))) > 0)
		all.insert(all.end(), buf, buf + n);
	gzclose(f);
	if (n < 0 || all.size() < 4 || all[0] != 0 || all[1] != 0 || all[2] != 0x08)
		throw std::runtime_error(path + ": not an unsigned-byte IDX file");
	Idx x;
	size_t ndim = all[3], count = 1, off = 4 + 4 * ndim;
	if (all.size() < off)
		throw std::runtime_error(path + ": truncated header");
	for (size_t i = 0; i < ndim; i++)
	{
		const uint8_t *p = &all[4 + 4 * i];
		uint32_t d = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
		x.dims.push_back(d);
		count *= d;
	}
	if (all.size() < off + count)
		throw std::runtime_error(path + ": truncated body");
	x.data.assign(all.begin() + off, all.begin() + off + count);
	return x;
}

/* The four files of an MNIST-format data set, the training rows capped. */
struct Data {
	size_t ntrain = 0, ntest = 0, h = 0, w = 0;
	std::vector<uint8_t> xtr, ytr, xte, yte;	/* pixels row by row; labels */

	size_t pixels() const { return h * w; }
};

/* Load dir/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz; keep the first
 * train_rows training rows when train_rows > 0. */
inline Data
load(const std::string &dir, size_t train_rows)
{
	Data d;
	Idx xi = read_idx(dir + "/train-images-idx3-ubyte.gz"),
		yi = read_idx(dir + "/train-labels-idx1-ubyte.gz"),
		xt = read_idx(dir + "/t10k-images-idx3-ubyte.gz"),
		yt = read_idx(dir + "/t10k-labels-idx1-ubyte.gz");
	if (xi.dims.size() != 3 || xt.dims.size() != 3 || xi.dims[0] != yi.dims[0] || xt.dims[0] != yt.dims[0])
		throw std::runtime_error(dir + ": images and labels do not match (grey images expected)");
	d.h = xi.dims[1];
	d.w = xi.dims[2];
	d.ntrain = xi.dims[0];
	d.ntest = xt.dims[0];
	if (train_rows > 0 && train_rows < d.ntrain)
		d.ntrain = train_rows;
	d.xtr.assign(xi.data.begin(), xi.data.begin() + d.ntrain * d.pixels());
	d.ytr.assign(yi.data.begin(), yi.data.begin() + d.ntrain);
	d.xte = std::move(xt.data);
	d.yte = std::move(yt.data);
	return d;
}

/* The command line: the flags of torch_bench.py. */
struct Args {
	std::string data, out;
	int epochs = 5, threads = 2, predict_threads = 0, repeats = 5;
	long train_rows = 0;
	unsigned seed = 42;
};

/* Parse argv; exits with a usage line on a bad flag. */
inline Args
parse_args(int argc, char **argv, const char *what)
{
	Args a;
	auto usage = [&]() {
		std::fprintf(stderr, "usage: %s --data DIR --out FILE.json [--epochs 5] [--threads 2] "
					 "[--predict-threads T] [--train-rows N] [--repeats 5] [--seed 42]\n  %s\n",
					 argv[0], what);
		std::exit(2);
	};
	for (int i = 1; i < argc; i += 2)
	{
		std::string k = argv[i];
		if (k == "--help" || k == "-h" || i + 1 >= argc)
			usage();
		std::string v = argv[i + 1];
		if (k == "--data")
			a.data = v;
		else if (k == "--out")
			a.out = v;
		else if (k == "--epochs")
			a.epochs = std::atoi(v.c_str());
		else if (k == "--threads")
			a.threads = std::atoi(v.c_str());
		else if (k == "--predict-threads")
			a.predict_threads = std::atoi(v.c_str());
		else if (k == "--train-rows")
			a.train_rows = std::atol(v.c_str());
		else if (k == "--repeats")
			a.repeats = std::atoi(v.c_str());
		else if (k == "--seed")
			a.seed = (unsigned) std::strtoul(v.c_str(), nullptr, 10);
		else
			usage();
	}
	if (a.data.empty() || a.out.empty() || a.epochs < 1 || a.threads < 1 || a.repeats < 1 ||
		a.predict_threads < 0 || a.train_rows < 0)
		usage();
	if (a.predict_threads == 0)
		a.predict_threads = a.threads;
	return a;
}

/* Seconds on a monotonic clock. */
inline double
now()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/* Peak resident set size of this process so far, in MB (ru_maxrss is KiB). */
inline double
peak_mb()
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_maxrss / 1024.0;
}

/* User + system CPU seconds of this process (all threads) so far. */
inline double
cpu_seconds()
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* The threads this process has right now (/proc/self/task). */
inline int
threads_now()
{
	int n = 0;
	if (DIR *d = opendir("/proc/self/task"))
	{
		while (struct dirent *e = readdir(d))
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
	}
	return n;
}

/* fn() once to warm up, then `repeats` timed runs: the median and every run. */
inline std::pair<double, std::vector<double>>
timed_median(const std::function<void()> &fn, int repeats)
{
	fn();
	std::vector<double> runs;
	for (int i = 0; i < repeats; i++)
	{
		double t0 = now();
		fn();
		runs.push_back(now() - t0);
	}
	std::vector<double> s = runs;
	std::sort(s.begin(), s.end());
	size_t n = s.size();
	double med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return {med, runs};
}

/* The libraries of this process whose path contains one of the words
 * (/proc/self/maps), each once. */
inline std::vector<std::string>
loaded_libraries(const std::vector<std::string> &words)
{
	std::vector<std::string> out;
	std::ifstream f("/proc/self/maps");
	std::string line;
	while (std::getline(f, line))
	{
		size_t p = line.find('/');
		if (p == std::string::npos)
			continue;
		std::string path = line.substr(p);
		for (const auto &w : words)
			if (path.find(w) != std::string::npos &&
				std::find(out.begin(), out.end(), path) == out.end())
				out.push_back(path);
	}
	return out;
}

/* A value of the environment, or "" when unset. */
inline std::string
env(const char *name)
{
	const char *v = std::getenv(name);
	return v ? v : "";
}

/* A small JSON writer: an object of fields, written in order. */
class Json {
  public:
	/* a string, escaped */
	static std::string str(const std::string &s)
	{
		std::string o = "\"";
		for (unsigned char c : s)
		{
			if (c == '"' || c == '\\')
				o += '\\', o += char(c);
			else if (c == '\n')
				o += "\\n";
			else if (c < 0x20)
			{
				char b[8];
				std::snprintf(b, sizeof(b), "\\u%04x", c);
				o += b;
			}
			else
				o += char(c);
		}
		return o + "\"";
	}
	/* a number (null when not finite) */
	static std::string num(double v)
	{
		if (!std::isfinite(v))
			return "null";
		char b[32];
		std::snprintf(b, sizeof(b), "%.17g", v);
		return b;
	}
	/* a list of numbers */
	static std::string nums(const std::vector<double> &v)
	{
		std::string o = "[";
		for (size_t i = 0; i < v.size(); i++)
			o += (i ? ", " : "") + num(v[i]);
		return o + "]";
	}
	/* a list of strings */
	static std::string strs(const std::vector<std::string> &v)
	{
		std::string o = "[";
		for (size_t i = 0; i < v.size(); i++)
			o += (i ? ", " : "") + str(v[i]);
		return o + "]";
	}

	Json &raw(const std::string &k, const std::string &json)
	{
		fields_.emplace_back(k, json);
		return *this;
	}
	Json &set(const std::string &k, const std::string &v) { return raw(k, str(v)); }
	Json &set(const std::string &k, const char *v) { return raw(k, str(v)); }
	Json &set(const std::string &k, double v) { return raw(k, num(v)); }
	Json &set(const std::string &k, long v) { return raw(k, std::to_string(v)); }
	Json &set(const std::string &k, int v) { return raw(k, std::to_string(v)); }
	Json &set(const std::string &k, size_t v) { return raw(k, std::to_string(v)); }
	Json &set(const std::string &k, bool v) { return raw(k, v ? "true" : "false"); }
	Json &set(const std::string &k, const Json &v) { return raw(k, v.text()); }

	std::string text() const
	{
		std::string o = "{";
		for (size_t i = 0; i < fields_.size(); i++)
			o += (i ? ",\n " : "") + str(fields_[i].first) + ": " + fields_[i].second;
		return o + "}";
	}

  private:
	std::vector<std::pair<std::string, std::string>> fields_;
};

/* The OpenBLAS of this process, when one is loaded (dlsym in the global
 * scope): {"config", "core", "threads"}; null otherwise. */
inline std::string
openblas_json()
{
	typedef char *(*str_fn)(void);
	typedef int (*int_fn)(void);
	str_fn config = (str_fn) dlsym(RTLD_DEFAULT, "openblas_get_config");
	str_fn core = (str_fn) dlsym(RTLD_DEFAULT, "openblas_get_corename");
	int_fn threads = (int_fn) dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
	if (!config || !core)
		return "null";
	Json j;
	j.set("config", config()).set("core", core());
	if (threads)
		j.set("threads", threads());
	return j.text();
}

/* Set OpenBLAS's threads when one is loaded; false when none is. */
inline bool
openblas_set_threads(int n)
{
	typedef void (*set_fn)(int);
	set_fn set = (set_fn) dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
	if (!set)
		return false;
	set(n);
	return true;
}

/* The figures every framework reports, filled by the program. */
struct Result {
	std::vector<double> epoch_seconds, epoch_loss, epoch_train_accuracy;
	double eval_seconds = 0, train_peak_mb = 0, training_cpu_seconds = 0, load_seconds = 0;
	long test_correct = 0, parameters = 0;
	std::pair<double, std::vector<double>> single, batch;
	int predict_threads = 0;
};

/* The JSON object of torch_bench.py's fields, from r, plus the program's own
 * fields in extra; written to a.out. */
inline void
write_result(const Args &a, const Data &d, const std::string &framework, const std::string &version,
			 const Result &r, const Json &extra)
{
	double train = 0;
	for (double s : r.epoch_seconds)
		train += s;
	std::string hist = "[";
	for (size_t i = 0; i < r.epoch_seconds.size(); i++)
	{
		Json h;
		h.set("epoch", (long) i + 1)
			.set("loss", i < r.epoch_loss.size() ? r.epoch_loss[i] : NAN)
			.set("train_accuracy", i < r.epoch_train_accuracy.size() ? r.epoch_train_accuracy[i] : NAN)
			.set("seconds", r.epoch_seconds[i]);
		hist += (i ? ", " : "") + h.text();
	}
	hist += "]";
	Json envj;
	for (const char *k : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
						  "OMP_WAIT_POLICY"})
	{
		const char *v = std::getenv(k);
		envj.raw(k, v ? Json::str(v) : "null");
	}
	Json j;
	j.set("framework", framework)
		.set("model", "reference")
		.set("installed", true)
		.set("version", version)
		.set("threads", a.threads)
		.set("predict_threads", r.predict_threads)
		.set("parameters", r.parameters)
		.raw("history", hist)
		.set("eval_seconds", r.eval_seconds)
		.set("test_correct", r.test_correct)
		.set("train_peak_mb", r.train_peak_mb)
		.set("training_cpu_seconds", r.training_cpu_seconds)
		.set("predict100_single_seconds", r.single.first)
		.raw("predict100_single_runs", Json::nums(r.single.second))
		.set("predict100_batch_seconds", r.batch.first)
		.raw("predict100_batch_runs", Json::nums(r.batch.second))
		.set("epochs", a.epochs)
		.set("batch_size", 64)
		.set("learning_rate", 0.001)
		.set("seed", (long) a.seed)
		.set("repeats", a.repeats)
		.set("train_rows", d.ntrain)
		.set("test_rows", d.ntest)
		.set("load_seconds", r.load_seconds)
		.set("training_seconds", train)
		.set("seconds_per_epoch", train / a.epochs)
		.set("train_images_per_second", d.ntrain * a.epochs / train)
		.set("test_accuracy", double(r.test_correct) / d.ntest)
		.set("infer_images_per_second", d.ntest / r.eval_seconds)
		.set("peak_mb", peak_mb())
		.set("env", envj)
		.raw("openblas", openblas_json())
		.set("threads_at_end", threads_now());
	std::string text = j.text();
	if (extra.text() != "{}")
		text = text.substr(0, text.size() - 1) + ",\n " + extra.text().substr(1);
	std::ofstream f(a.out);
	f << text << "\n";
	if (!f)
		throw std::runtime_error(a.out + ": cannot write");
	std::fprintf(stderr, "%s: %zu rows x %d epochs in %.1f s, test accuracy %.4f, peak %.0f MB\n",
				 framework.c_str(), d.ntrain, a.epochs, train, double(r.test_correct) / d.ntest, peak_mb());
}

/* Index of the largest of n values. */
template <typename T>
inline size_t
argmax(const T *v, size_t n)
{
	return size_t(std::max_element(v, v + n) - v);
}

}  // namespace bench

#endif
