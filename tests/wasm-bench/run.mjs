// The V8 side of `wasm-bench` (tests/wasm-bench/src/main.rs starts it):
//   node run.mjs MODULE.wasm SIGNED:EVENT...   (SIGNED: 1 to verify a signature, else 0)
// Instantiates the module, hands it each event, prints "ready CHECKSUM..." (one
// process_body per event), then answers each line "SLOT ITERATIONS" on stdin with
// "NANOSECONDS CHECKSUM": bench_run timed with process.hrtime.bigint().
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const [wasmPath, ...specs] = process.argv.slice(2);
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {});
const { memory, event_buffer, bench_new, bench_run } = instance.exports;

const handles = specs.map((spec) => {
  const [signed, path] = [spec.slice(0, 1), spec.slice(2)];
  const event = readFileSync(path);
  const ptr = event_buffer(event.length);
  new Uint8Array(memory.buffer, ptr, event.length).set(event);
  const handle = bench_new(ptr, event.length, Number(signed));
  if (handle === 0) throw new Error(`${path}: bench_new failed`);
  return handle;
});
process.stdout.write(`ready ${handles.map((h) => bench_run(h, 1) >>> 0).join(" ")}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const [slot, iterations] = line.trim().split(/\s+/).map(Number);
  const start = process.hrtime.bigint();
  const sum = bench_run(handles[slot], iterations) >>> 0;
  const ns = process.hrtime.bigint() - start;
  process.stdout.write(`${ns} ${sum}\n`);
}
