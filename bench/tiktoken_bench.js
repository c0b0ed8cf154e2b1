// tiktoken (OpenAI's tokenizer, Rust compiled to WASM) on the same file, same
// protocol as bench_tokenizer.c: best of REPEATS encodes, then the ids.
// Usage: NODE_PATH=... node bench/tiktoken_bench.js FILE [REPEATS] [IDS_OUT]
const fs = require("fs");
const { get_encoding } = require("tiktoken");
const [file, reps = "5", out] = process.argv.slice(2);
const enc = get_encoding("gpt2");
const buf = fs.readFileSync(file);
const text = buf.toString("utf8");
let best = 1e9, ids;
for (let r = 0; r < +reps; r++) {
  const t = process.hrtime.bigint();
  ids = enc.encode(text, [], []);
  const dt = Number(process.hrtime.bigint() - t) / 1e9;
  if (dt < best) best = dt;
}
if (out) fs.writeFileSync(out, Array.from(ids).join(" ") + "\n");
console.log(`tiktoken: ${(buf.length / 1e6).toFixed(2)} MB in ${(best * 1e3).toFixed(1)} ms, ` +
            `${(buf.length / 1e6 / best).toFixed(1)} MB/s, ${ids.length} tokens`);
