# bmx7-wgtun — developer entry points. Everything runs as root on Debian 12 (namespaces, WireGuard).
PYTHON ?= python3
export PYTHONPATH := $(CURDIR)/src
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD := 1

.PHONY: setup test demo demo-down bench fuzz lint clean

# Debian packages and Python modules the helper, the lab and the tests need.
setup:
	./tools/setup-host.sh

# The whole suite (namespaces + real WireGuard included). CI runs exactly this.
test:
	$(PYTHON) -m pytest -q

# A 5-node ring of virtual routers, each running the real helper; prints every node's peers.
demo: setup
	-$(PYTHON) -m bmx7wg lab down >/dev/null 2>&1
	$(PYTHON) -m bmx7wg lab up --nodes 5 --topology ring --wait 120

demo-down:
	$(PYTHON) -m bmx7wg lab down

bench:
	$(PYTHON) bench/run.py

fuzz:
	$(PYTHON) tests/fuzz_advert.py --runs 100000

lint:
	$(PYTHON) -m compileall -q src tests
	for f in $$(find luci-app-bmx7-wgtun -name '*.js'); do node --check $$f || exit 1; done

clean:
	rm -rf dist build .pytest_cache tests/artifacts

# ---- OpenWrt package (issue 3: netifd/ubus integration) --------------------------------------
# `make ipk`: dist/bmx7-wgtun_<version>-r<release>_all.ipk for opkg (OpenWrt 24.10), built from
# this repository alone (tools/mkipk.py; name/version/depends from package/bmx7-wgtun/Makefile).
# No `apk` target: OpenWrt 25.12+ packages (apk v3 / ADB) need apk-tools, i.e. the SDK and the
# feed recipe in package/bmx7-wgtun (see docs/readme-openwrt.md).
IPK_DIST ?= dist
.PHONY: ipk
ipk:
	$(PYTHON) tools/mkipk.py --out $(IPK_DIST)
# ---- end OpenWrt package ---------------------------------------------------------------------
