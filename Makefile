# The two commands a newcomer needs: `make run` and `make test`. Each installs what it
# needs itself (scripts/setup.sh), so they work on a fresh machine.
.PHONY: run run-native run-worker test bench setup

run:            ## the Envoy filter in front of a demo origin, with a demo config
	scripts/run-envoy-demo.sh

run-native:     ## the same demo with the native Envoy dynamic module instead of the .wasm
	scripts/run-envoy-demo.sh --native

run-worker:     ## the Cloudflare Worker (wrangler dev) in front of a demo origin
	scripts/run-worker-demo.sh

test:           ## every check and test, including the real Envoy and the real workerd
	scripts/test.sh

bench:          ## every benchmark (core native and in wasm, Envoy, Worker, sizes): one table
	scripts/bench.sh

setup:          ## install the pinned tools (done by the targets above anyway)
	scripts/setup.sh
