# SPDX-License-Identifier: MIT
# corio build. `make` builds libcorio.a and libcorio.so; `make test`,
# `make test-asan`, `make test-tsan`, `make bench`, `make install PREFIX=...`,
# `make uninstall PREFIX=...`.
# See README.md.

# Where `make install` / `make uninstall` put corio: PREFIX, and under it
# LIBDIR (multiarch: LIBDIR=/usr/lib/x86_64-linux-gnu) and INCLUDEDIR.
# DESTDIR stages an install (packages); corio.pc and the CMake package
# name the final places, without DESTDIR.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DOCDIR ?= $(PREFIX)/share/doc/corio
MANDIR ?= $(PREFIX)/share/man
# The manual pages, generated from the public headers' comments
# (tools/mkman.sh): corio(7), one page per header, one ".so" page per call.
MAN_PAGES := $(shell sh tools/mkman.sh --list)
CC ?= cc
# The version is the one in include/corio/common.h (and CHANGELOG.md).
cor_version = $(shell sed -n 's/^\#define COR_VERSION_$(1) \([0-9][0-9]*\).*/\1/p' include/corio/common.h)
SONAME_MAJOR := $(call cor_version,MAJOR)
VERSION_MINOR := $(call cor_version,MINOR)
VERSION := $(SONAME_MAJOR).$(VERSION_MINOR).$(call cor_version,PATCH)

BUILD ?= build
# Flavours: normal (jemalloc), asan (ASan+UBSan), tsan, and ALLOC=system
# (the normal build on malloc/free instead of jemalloc, for valgrind, whose
# malloc replaces only the system one: README "Debugging with valgrind").
# Each builds into its own directory so switching flavours never mixes
# objects. The sanitizer flavours are on the system allocator already.
SAN ?=
ALLOC ?= jemalloc
ifeq ($(SAN),asan)
  BUILD := build-asan
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g
  ALLOC_LIBS :=
  ALLOC_DEF := -DCOR_NO_JEMALLOC
else ifeq ($(SAN),tsan)
  BUILD := build-tsan
  SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -O1 -g
  ALLOC_LIBS :=
  ALLOC_DEF := -DCOR_NO_JEMALLOC
else ifeq ($(ALLOC),system)
  BUILD := build-sysalloc
  SANFLAGS := -O2 -g
  ALLOC_LIBS :=
  ALLOC_DEF := -DCOR_NO_JEMALLOC
else
  SANFLAGS := -O2 -g
  ALLOC_LIBS := -ljemalloc
  ALLOC_DEF :=
endif

WARN := -Wall -Wextra -Werror -Wno-unused-parameter
# The library's own files also: every non-static function is declared in a
# header first, so a prototype and its definition cannot drift apart.
WARN_LIB := $(WARN) -Wmissing-prototypes -Wmissing-declarations
CFLAGS_LIB := -std=c11 $(WARN_LIB) $(SANFLAGS) -fPIC -fvisibility=hidden -fno-semantic-interposition \
  -D_GNU_SOURCE -DCOR_BUILDING_LIBRARY $(ALLOC_DEF) -Iinclude -Icore
LIBS := $(ALLOC_LIBS) -luring -lssl -lcrypto -lck -lpthread -ldl -ldw
TEST_LIBS := -lcmocka $(LIBS)
# What a program linking libcorio.a statically needs besides it, for corio.pc
# (`pkg-config --static --libs corio`) and the CMake package: liburing and
# libdw are required by name (libdw.pc lists its own dependencies: libelf,
# zlib, lzma, bz2), the rest of LIBS are flags, then -lm for jemalloc's
# archive (after -ljemalloc: Libs.private comes before the required ones).
PC_REQUIRES := liburing libssl libcrypto libdw
PC_LIBS := $(filter-out -luring -lssl -lcrypto -ldw,$(LIBS)) -lm
empty :=
space := $(empty) $(empty)
STATIC_LIBS := $(subst $(space),;,$(strip $(patsubst -l%,%,$(LIBS)) m))

# core/ is cut into layer folders (core/base, core/loop, core/task,
# core/diag, core/net; ARCHITECTURE.md "Layers"), executor/ above them.
CORE_SRC := $(sort $(wildcard core/*/*.c)) $(sort $(wildcard executor/*.c))
CORE_ASM := $(sort $(wildcard core/*/*.S))
OBJS := $(CORE_SRC:%.c=$(BUILD)/%.o) $(CORE_ASM:%.S=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
# perf/bench is every perf/*.c but the peers: perf/peer_*.c are servers
# written on other libraries (the same work done with libuv, ...), built as
# their own programs only when that library is installed, never linked with
# corio. perf/bench drives them like the examples and reports a skip when
# one is missing.
PERF_SRC := $(filter-out perf/peer_%.c,$(sort $(wildcard perf/*.c)))
HAVE_LIBUV := $(shell pkg-config --exists libuv 2>/dev/null && echo 1)
PERF_PEERS := $(if $(HAVE_LIBUV),perf/peer_uv_http perf/peer_uv_file perf/peers/libuv/peer_uv_micro)
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
# Examples follow the library flavour: the normal build puts them in
# examples/<name>; SAN=asan/tsan builds put them in $(BUILD)/examples/<name>
# (instrumented like the library), so tests/test_examples.c runs examples
# of its own flavour and never overwrites the ones perf/ drives.
EXAMPLE_DIR := $(if $(SAN)$(filter system,$(ALLOC)),$(BUILD)/examples,examples)
EXAMPLES := $(EXAMPLE_SRC:examples/%.c=$(EXAMPLE_DIR)/%)

# Each suite runs under `timeout`; stress cases are bounded inside the suite.
TEST_TIMEOUT ?= 300
# Under the sanitizers stress tests shrink their counts (see tests/testutil.h).
TEST_ENV := $(if $(SAN),CORIO_TEST_SCALE=small,)

.PHONY: all lib clean version install test test-asan test-tsan bench deps examples check-deps peers man valgrind bench-compare peer-tokio
all: lib
lib: $(BUILD)/libcorio.a $(BUILD)/libcorio.so

# Each object depends on the headers it includes (-MMD -MP writes
# $(BUILD)/<file>.d beside it), so editing one module's header rebuilds
# only the files that include it.
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -MMD -MP -c $< -o $@

-include $(OBJS:.o=.d)

$(BUILD)/libcorio.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

# corio.map: only cor_* exported, each versioned CORIO_0.
$(BUILD)/libcorio.so: $(OBJS) corio.map
	$(CC) -shared -Wl,-soname,libcorio.so.$(SONAME_MAJOR) -Wl,--version-script=corio.map $(SANFLAGS) -o $(BUILD)/libcorio.so.$(VERSION) $(OBJS) $(LIBS)
	ln -sf libcorio.so.$(VERSION) $(BUILD)/libcorio.so.$(SONAME_MAJOR)
	ln -sf libcorio.so.$(VERSION) $@

# Tests link the static library: they may reach internal (hidden) hooks.
# COR_SRC_DIR: the repository, for tests that read the sources (the public
# headers: tests/test_wrong_thread.c).
$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(wildcard tests/*.h) $(BUILD)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE $(ALLOC_DEF) -DCOR_SRC_DIR='"$(CURDIR)"' -Iinclude -Icore -Iexecutor -Itests \
	  -o $@ $< $(TEST_HELPERS) $(BUILD)/libcorio.a $(TEST_LIBS) -rdynamic

check-deps:
	@sh .ci/deps.sh

test: check-deps
	@$(MAKE) --no-print-directory run-tests

# The suites that touch sockets run three times: as the process chooses
# (the start-up probe: ARCHITECTURE.md, "The socket back-end fits the
# machine"), and pinned to each back-end (CORIO_IO=io_uring, CORIO_IO=epoll),
# so both back-ends of socket streams stay tested whatever this machine picks.
EPOLL_SUITES := $(addprefix $(BUILD)/tests/,test_stream test_server test_listen test_resource test_examples test_bad_args)
run-tests: lib $(TEST_BINS)
	@pass=0; fail=0; \
	echo "== tests/check_tree.sh"; \
	if sh tests/check_tree.sh; then pass=$$((pass+1)); \
	else echo "FAILED: tests/check_tree.sh"; fail=$$((fail+1)); fi; \
	for t in $(TEST_BINS) $(EPOLL_SUITES:%=epoll:%) $(EPOLL_SUITES:%=uring:%); do \
	  case $$t in epoll:*) t=$${t#epoll:}; env=CORIO_IO=epoll;; \
	    uring:*) t=$${t#uring:}; env=CORIO_IO=io_uring;; *) env=;; esac; \
	  echo "== $$t $$env"; \
	  if env $$env $(TEST_ENV) timeout $(TEST_TIMEOUT) $$t; then pass=$$((pass+1)); \
	  else echo "FAILED: $$t $$env (exit $$?)"; fail=$$((fail+1)); fi; \
	done; echo "suites: $$pass passed, $$fail failed"; test $$fail -eq 0

test-asan: check-deps
	@$(MAKE) --no-print-directory SAN=asan run-tests

test-tsan: check-deps
	@$(MAKE) --no-print-directory SAN=tsan run-tests

perf/bench: $(PERF_SRC) $(wildcard perf/*.h) examples/echo.h $(BUILD)/libcorio.a
	$(CC) -std=c11 $(WARN) -O2 -g -D_GNU_SOURCE -Iinclude -Icore -Iexecutor -Iperf -o $@ $(PERF_SRC) $(BUILD)/libcorio.a $(LIBS) -lm

# The peers need only their own library (pkg-config), not corio.
perf/peer_uv_http: perf/peer_uv_http.c examples/http_parse.h
	$(CC) -std=c11 $(WARN) -O2 -g -D_GNU_SOURCE $(shell pkg-config --cflags libuv) -o $@ $< \
	  $(shell pkg-config --libs libuv) -lpthread

perf/peer_uv_file: perf/peer_uv_file.c perf/file_pattern.h
	$(CC) -std=c11 $(WARN) -O2 -g -D_GNU_SOURCE $(shell pkg-config --cflags libuv) -o $@ $< \
	  $(shell pkg-config --libs libuv) -lpthread

perf/peers/libuv/peer_uv_micro: perf/peers/libuv/peer_uv_micro.c
	$(CC) -std=c11 $(WARN) -O2 -g -D_GNU_SOURCE $(shell pkg-config --cflags libuv) -o $@ $< \
	  $(shell pkg-config --libs libuv) -lpthread

peers: $(PERF_PEERS)

bench: check-deps
	@$(MAKE) --no-print-directory perf/bench peers
	@perf/bench limits
	@sh perf/run_all.sh

# The Tokio peer: Debian's cargo and rustc on Debian's packaged crates
# (librust-tokio-dev), offline (perf/peers/tokio/.cargo/config.toml); the
# toolchain named in full so a rustup one on PATH is not picked.
peer-tokio:
	@if [ -x /usr/bin/cargo ] && [ -d /usr/share/cargo/registry ]; then \
	  cd perf/peers/tokio && RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --offline -q; \
	else echo "peer-tokio: skipped: Debian cargo / librust-tokio-dev missing"; fi

# corio beside libuv, Tokio, asyncio, uvloop and nginx (perf/compare.py):
# ROUNDS=5 (default), ONLY=regex, D=seconds of network load.
bench-compare: check-deps
	@sh perf/peers/deps.sh || echo "bench-compare: going on without the missing peers"
	@$(MAKE) --no-print-directory perf/bench peers examples
	@$(MAKE) --no-print-directory peer-tokio
	@/usr/bin/python3 perf/compare.py

$(EXAMPLE_DIR)/%: examples/%.c $(wildcard examples/*.h) $(BUILD)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE -Iinclude -o $@ $< $(BUILD)/libcorio.a $(LIBS)

examples: $(EXAMPLES)

# tools/vg_smoke: tasks, futures, stack reuse, a cancellation; `make
# valgrind` runs it under memcheck on the system allocator (.ci/run does).
$(BUILD)/tools/%: tools/%.c $(BUILD)/libcorio.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE -Iinclude -o $@ $< $(BUILD)/libcorio.a $(LIBS)

VALGRIND_FLAGS := --error-exitcode=1 --leak-check=full --suppressions=tools/valgrind.supp
valgrind:
	@$(MAKE) --no-print-directory ALLOC=system build-sysalloc/tools/vg_smoke
	valgrind $(VALGRIND_FLAGS) build-sysalloc/tools/vg_smoke

# The installed files, also what `make uninstall` removes.
HEADERS := $(sort $(wildcard include/corio/*.h))
INSTALLED := $(INCLUDEDIR)/corio.h $(HEADERS:include/%=$(INCLUDEDIR)/%) \
  $(LIBDIR)/libcorio.a $(LIBDIR)/libcorio.so.$(VERSION) \
  $(LIBDIR)/libcorio.so.$(SONAME_MAJOR) $(LIBDIR)/libcorio.so \
  $(LIBDIR)/pkgconfig/corio.pc \
  $(LIBDIR)/cmake/corio/corioConfig.cmake $(LIBDIR)/cmake/corio/corioConfigVersion.cmake \
  $(DOCDIR)/LICENSE $(DOCDIR)/CHANGELOG.md $(DOCDIR)/README.md \
  $(DOCDIR)/ARCHITECTURE.md $(MAN_PAGES:%=$(MANDIR)/%)
# corio.pc names libdir and includedir from ${prefix} when they are under it.
PC_LIBDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(2)|g' -e 's|@INCLUDEDIR@|$(3)|g' \
  -e 's|@VERSION@|$(VERSION)|g' -e 's|@SONAME_MAJOR@|$(SONAME_MAJOR)|g' \
  -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' -e 's|@REQUIRES_PRIVATE@|$(strip $(PC_REQUIRES))|g' \
  -e 's|@LIBS_PRIVATE@|$(strip $(PC_LIBS))|g' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' $(1)

man: $(BUILD)/man/man7/corio.7
$(BUILD)/man/man7/corio.7: tools/mkman.sh include/corio.h $(wildcard include/corio/*.h)
	@rm -rf $(BUILD)/man
	sh tools/mkman.sh $(BUILD)/man $(VERSION)

install: lib man
	install -d $(DESTDIR)$(INCLUDEDIR)/corio $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(LIBDIR)/cmake/corio $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/corio.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/corio/
	install -m 644 $(BUILD)/libcorio.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libcorio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libcorio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcorio.so.$(SONAME_MAJOR)
	ln -sf libcorio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcorio.so
	$(call SUBST,corio.pc.in,$(PC_LIBDIR),$(PC_INCLUDEDIR)) > $(DESTDIR)$(LIBDIR)/pkgconfig/corio.pc
	$(call SUBST,cmake/corioConfig.cmake.in,$(LIBDIR),$(INCLUDEDIR)) > $(DESTDIR)$(LIBDIR)/cmake/corio/corioConfig.cmake
	$(call SUBST,cmake/corioConfigVersion.cmake.in,$(LIBDIR),$(INCLUDEDIR)) > $(DESTDIR)$(LIBDIR)/cmake/corio/corioConfigVersion.cmake
	install -m 644 LICENSE CHANGELOG.md README.md ARCHITECTURE.md $(DESTDIR)$(DOCDIR)/
	install -m 644 $(BUILD)/man/man3/*.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(BUILD)/man/man7/corio.7 $(DESTDIR)$(MANDIR)/man7/

# Removes what `make install` put there (same PREFIX, LIBDIR, INCLUDEDIR,
# DOCDIR, DESTDIR) and the directories only corio uses, when empty.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/corio $(DESTDIR)$(LIBDIR)/cmake/corio $(DESTDIR)$(DOCDIR) 2>/dev/null

# The version, from include/corio/common.h (.ci/run checks CHANGELOG.md has it).
version:
	@echo $(VERSION)

clean:
	rm -rf build build-asan build-tsan build-sysalloc libcorio.a libcorio.so* perf/bench perf/peer_uv_http perf/peer_uv_file perf/peers/libuv/peer_uv_micro $(EXAMPLES)
	rm -rf perf/peers/tokio/target perf/peers/tokio/Cargo.lock
