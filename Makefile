# SPDX-License-Identifier: Apache-2.0
#
# PharosVPN: one non-recursive Makefile. Variants (the sanitizer build for `make check`,
# the libFuzzer build) are the same rules with another BUILD folder and flags.
#
#   make                 build/cox build/buoy build/beacon
#   make check           every test suite; ends with "N passed, N failed"
#   make fuzz            libFuzzer targets into build/fuzz/ (clang)
#   make bench           the benchmarks in bench/
#   make demo            a real fleet on this machine, in network namespaces (root)
#   make install         PREFIX=/usr/local DESTDIR=
#   V=1                  show commands; CI=1 adds -Werror; SANITIZER=address,undefined

.SUFFIXES:
.DELETE_ON_ERROR:
.SECONDARY:
.DEFAULT_GOAL := all

BUILD	?= build
PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
PYTHON	:= /usr/bin/python3

ifeq ($(V),1)
Q	:=
msg	= @true
else
Q	:= @
msg	= @printf '  %-6s %s\n' $(1) $(2)
endif

# Install missing Debian packages before pkg-config is asked for flags. Goals that need
# no libraries skip this.
ifeq ($(filter clean deps help,$(MAKECMDGOALS)),)
ifneq ($(shell scripts/deps --check 2>/dev/null && echo ok),ok)
$(info make: some packages are missing; running scripts/deps)
ifneq ($(shell scripts/deps >&2 && echo ok),ok)
$(error scripts/deps failed; see above)
endif
endif
endif

PKGS	:= yaml-0.1 libgit2 jansson libsodium openssl libevent libevent_openssl libnghttp2 \
	   libprotobuf-c sqlite3 libssh2 libevent_pthreads
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

VERSION	:= $(shell git describe --always --dirty --tags 2>/dev/null || echo 0.1.0-dev)

WARN	:= -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wcast-qual -Wsign-compare
ifneq ($(CI),)
WARN	+= -Werror
endif

CSTD	:= -std=c11 -D_GNU_SOURCE
ifneq ($(SANITIZER),)
OPT	:= -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
LDSAN	:= -fsanitize=$(SANITIZER)
else
OPT	:= -O2 -g -D_FORTIFY_SOURCE=2
LDSAN	:=
endif
ifneq ($(FUZZ),)
OPT	+= -fsanitize=fuzzer-no-link
endif

CPPFLAGS += -Ilib -Ischema -Ireconciler -Iagent -isystem $(BUILD)/gen -DPHAROS_VERSION='"$(VERSION)"'
CFLAGS	?=
ALL_CFLAGS := $(CSTD) $(OPT) $(WARN) -fstack-protector-strong -MMD -MP $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS	?=
ALL_LDFLAGS := $(LDSAN) $(LDFLAGS)
LDLIBS	:= $(PKG_LIBS) -lpthread

# ---- sources ----

LIB_SRCS	:= $(filter-out %_test.c,$(wildcard lib/*.c))
PROTOS		:= $(wildcard proto/pharos/v1/*.proto)
PROTO_SRCS	:= $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
FLEET_SRCS	:= schema/ytree.c schema/diag.c schema/fleet.c schema/validate.c schema/source.c
COX_MAIN	:= reconciler/cox.c
COX_SRCS	:= $(filter-out $(COX_MAIN),$(wildcard reconciler/*.c))
BUOY_SRCS	:= $(wildcard agent/*.c)
BEACON_SRCS	:= relay/beacon.c
UNIT_SRCS	:= $(wildcard tests/unit/test_*.c)
FUZZ_SRCS	:= $(wildcard tests/fuzz/fuzz_*.c)
TOOL_SRCS	:= $(wildcard tests/tools/*.c)
WEBUI		:= $(sort $(wildcard webui/*.html webui/*.js webui/*.css webui/*.svg))
WEBUI_OBJ	:= $(BUILD)/gen/webui.o

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBPHAROS	:= $(BUILD)/libpharos.a
LIBFLEET	:= $(BUILD)/libfleet.a
LIBCOX		:= $(BUILD)/libcox.a
BINS		:= $(BUILD)/cox $(BUILD)/buoy $(BUILD)/beacon
UNIT_BINS	:= $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_BINS	:= $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))
FUZZ_BINS	:= $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(FUZZ_SRCS))

ALL_OBJS := $(call obj,$(LIB_SRCS) $(FLEET_SRCS) $(COX_MAIN) $(COX_SRCS) $(BUOY_SRCS) $(BEACON_SRCS) \
	    $(UNIT_SRCS) $(FUZZ_SRCS) $(TOOL_SRCS)) $(PROTO_SRCS:.c=.o)

.PHONY: all unit check fuzz fuzz-targets bench demo install clean deps help

all: $(BINS)

# Generated C (protoc-c) lives under $(BUILD)/gen and is never committed. Every object
# waits for it, since any file may include a generated header.
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(@D)
	$(call msg,PROTOC,$<)
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(call msg,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(filter-out -Wmissing-prototypes -Wcast-qual,$(ALL_CFLAGS)) -c $< -o $@

# The admin UI's files, embedded (reconciler/webui.h): generated, never committed.
$(BUILD)/gen/webui.c: $(WEBUI) scripts/embed-webui
	@mkdir -p $(@D)
	$(call msg,EMBED,webui/)
	$(Q)$(PYTHON) scripts/embed-webui $@ $(WEBUI)

$(WEBUI_OBJ): $(BUILD)/gen/webui.c
	$(call msg,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(PROTO_SRCS)
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIBPHAROS): $(call obj,$(LIB_SRCS)) $(PROTO_SRCS:.c=.o)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBFLEET): $(call obj,$(FLEET_SRCS))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBCOX): $(call obj,$(COX_SRCS)) $(WEBUI_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/cox: $(call obj,$(COX_MAIN)) $(LIBCOX) $(LIBFLEET) $(LIBPHAROS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/buoy: $(call obj,$(BUOY_SRCS)) $(LIBPHAROS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/beacon: $(call obj,$(BEACON_SRCS)) $(LIBPHAROS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBCOX) $(LIBFLEET) $(LIBPHAROS)
	@mkdir -p $(@D)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIBCOX) $(LIBFLEET) $(LIBPHAROS)
	@mkdir -p $(@D)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BINS) $(TOOL_BINS)

# ---- fuzzing (clang + libFuzzer), in its own BUILD folder ----

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(LIBCOX) $(LIBFLEET) $(LIBPHAROS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-targets: $(FUZZ_BINS)

fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang FUZZ=1 \
	    SANITIZER=address,undefined fuzz-targets

# ---- tests ----

# The normal build, the same code under ASan+UBSan, and the fuzz targets, then every
# suite against them. tests/run prints the final "N passed, N failed".
check: all unit node_modules/.package-lock.json
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SANITIZER=address,undefined all unit
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)tests/run

# playwright-core for the admin UI's browser tests, exactly as package-lock.json pins it.
# It needs the machine's Node.js (>= 20) and npm; without them the browser tests skip loudly.
node_modules/.package-lock.json: package.json package-lock.json
	$(Q)if command -v npm >/dev/null; then \
		npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "make: no npm: the admin UI's browser tests will SKIP (install Node.js >= 20 and npm)" >&2; \
	fi

bench: all
	$(Q)bench/validate.sh

demo: all
	$(Q)scripts/demo $(BUILD)

install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/

deps:
	$(Q)scripts/deps

clean:
	rm -rf build

help:
	@sed -n '3,13p' Makefile | sed 's/^# \{0,1\}//'

-include $(ALL_OBJS:.o=.d)
