// One event through the wasm-bench module, N times, for instruction counting
// (tests/wasm-bench/v8-callgrind.sh runs it under valgrind):
//   node loop.mjs MODULE.wasm EVENT.json N [SIGNED]
// Runs one call first (instantiation and the first call's page faults are then the
// same whatever N is), then N calls. Prints the checksum so the work cannot be elided.
import { readFileSync } from "node:fs";

const [wasmPath, eventPath, n, signed] = process.argv.slice(2);
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {});
const { memory, event_buffer, bench_new, bench_run } = instance.exports;
const event = readFileSync(eventPath);
const ptr = event_buffer(event.length);
new Uint8Array(memory.buffer, ptr, event.length).set(event);
const handle = bench_new(ptr, event.length, Number(signed ?? 0));
if (handle === 0) throw new Error(`${eventPath}: bench_new failed`);
bench_run(handle, 1);
const sum = Number(n) > 0 ? bench_run(handle, Number(n)) >>> 0 : 0;
process.stdout.write(`checksum ${sum}\n`);
