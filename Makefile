# mlcnn: convolutional neural networks trained and served inside PostgreSQL.
#
#   make            build the extension (PGXS)
#   make install    install it into the PostgreSQL that pg_config names
#   make demo       the main job: set up, load MNIST, train, evaluate, predict
#   make test       every test suite; ends with "N passed, N failed"
#   make bench      the comparative benchmark against PyTorch (bench/)
#   make fuzz       libFuzzer harnesses under ASan/UBSan
#   make sanitize   the core's unit tests under ASan/UBSan/LeakSanitizer
#   make stress     concurrency run on the embedded cluster

EXTENSION = mlcnn
EXTVERSION = 0.4.0
MODULE_big = mlcnn

# ONNX's messages: C that protobuf-c generates from the onnx.proto of Debian's libonnx-dev
ONNX_INCLUDE ?= /usr/include
GEN = build/gen
ONNX_PB = $(GEN)/onnx/onnx.pb-c.c

NN_SRCS = $(sort $(wildcard src/nn/*.c)) $(ONNX_PB)
PG_SRCS = $(sort $(wildcard src/pg/*.c))
# the naive reference kernels are for the tests, not the server
OBJS = $(patsubst %.c,%.o,$(filter-out src/nn/layers_ref.c,$(NN_SRCS))) $(PG_SRCS:.c=.o)

# every install and update script: $(EXTENSION)--$(EXTVERSION).sql for fresh installs, $(EXTENSION)--A--B.sql to update
DATA = $(sort $(wildcard sql/install/$(EXTENSION)--*.sql))
PGFILEDESC = "mlcnn - convolutional neural networks inside PostgreSQL"

REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CONFIG ?= pg_config
WARN = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
PG_CPPFLAGS = -Isrc/nn -Isrc/pg -I$(GEN) -DMLCNN_VERSION=\"$(EXTVERSION)\"
# -fno-math-errno lets sqrtf vectorise (nothing here reads errno after math)
OPTFLAGS = -O3 -fno-math-errno
PG_CFLAGS = $(WARN) $(OPTFLAGS)
SHLIB_LINK = -lopenblas -lprotobuf-c -lpng -ljpeg -lz -lm -lpthread
EXTRA_CLEAN = test/nn_test bench/nn_bench data/idxtool test/forge $(GEN)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# generated again when the proto changes
$(ONNX_PB) $(ONNX_PB:.c=.h): $(ONNX_INCLUDE)/onnx/onnx.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -I$(ONNX_INCLUDE) onnx/onnx.proto

# every object depends on every header: the structs are shared across files
HEADERS = $(wildcard src/nn/*.h src/pg/*.h) $(ONNX_PB:.c=.h)
$(OBJS): $(HEADERS)
ifeq ($(with_llvm), yes)
$(OBJS:.o=.bc): $(HEADERS)
endif

# ---------------------------------------------------------------- the core, standalone
NN_CC ?= cc
NN_CFLAGS ?= -std=gnu11 $(OPTFLAGS) $(WARN) -Isrc/nn -I$(GEN)
NN_LIBS = -lopenblas -lprotobuf-c -lpng -ljpeg -lz -lm -lpthread

test/nn_test: $(sort $(wildcard test/unit/*.c)) $(NN_SRCS) $(wildcard src/nn/*.h test/unit/*.h) $(ONNX_PB:.c=.h)
	$(NN_CC) $(NN_CFLAGS) -Itest/unit -o $@ $(sort $(wildcard test/unit/*.c)) $(NN_SRCS) $(NN_LIBS)

bench/nn_bench: bench/nn_bench.c $(NN_SRCS) $(wildcard src/nn/*.h) $(ONNX_PB:.c=.h)
	$(NN_CC) $(NN_CFLAGS) -o $@ bench/nn_bench.c $(NN_SRCS) $(NN_LIBS)

data/idxtool: data/idxtool.c $(NN_SRCS) $(wildcard src/nn/*.h) $(ONNX_PB:.c=.h)
	$(NN_CC) $(NN_CFLAGS) -o $@ data/idxtool.c $(NN_SRCS) $(NN_LIBS)

# forged hostile model blobs for test/pgtap/hostile_models.sql (written at test time)
test/forge: test/forge.c $(NN_SRCS) $(wildcard src/nn/*.h) $(ONNX_PB:.c=.h)
	$(NN_CC) $(NN_CFLAGS) -o $@ test/forge.c $(NN_SRCS) $(NN_LIBS)

.PHONY: setup test unit demo bench fuzz sanitize stress db-start db-stop

setup:
	@bash scripts/setup.sh

unit: test/nn_test
	./test/nn_test

test:
	@bash scripts/test.sh

demo:
	@bash scripts/demo.sh

bench:
	@bash bench/run.sh

fuzz:
	@bash test/fuzz/run.sh

sanitize:
	@bash test/sanitize.sh

stress:
	@bash test/stress/run.sh

db-start:
	@bash scripts/db.sh start

db-stop:
	@bash scripts/db.sh stop
