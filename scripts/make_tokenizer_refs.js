// Writes tests/data/tokenizer_refs.jsonl: GPT-2 token ids of varied texts, from
// tiktoken (OpenAI's tokenizer, "gpt2" encoding), which tests/test_bpe.c checks
// our encoder against. Also records the count and FNV-1a hash of the ids of the
// whole Moby-Dick text.
//   NODE_PATH=$(scripts/node_deps.sh) node scripts/make_tokenizer_refs.js
const fs = require("fs");
const { get_encoding } = require("tiktoken");
const enc = get_encoding("gpt2");
const moby = fs.readFileSync("assets/moby_dick.txt", "utf8");

const texts = {
  english: "The quick brown fox jumps over the lazy dog.",
  contractions: "I'm sure you'll see they've said it's ours, we'd've gone, don't CAN'T He'S",
  curly_quotes: "It\u2019s \u201cquoted\u201d \u2018text\u2019 and 'single' \"double\"",
  digits: "0 12 345 6789 3.14159 1,000,000 2024-11-23 0x1F 007 1e-9 123456789012345",
  spaces: "a  b   c    d     e\u00a0f \u3000g",
  newlines: "line one\nline two\n\nline four\n\n\n\nend\n",
  tabs: "\tindented\t\ttwice\t \t mixed \t\n\t",
  crlf: "windows\r\nline\r\n\r\nendings\r\n",
  trailing_ws: "trailing   ",
  leading_ws: "   leading",
  only_ws: " \n \t \n\n   ",
  unicode_ws: "a\u0085b\u2028c\u2029d\u2003e\u200af\u205fg\u1680h\u180ei\u200bj\ufeffk\u001cl\u001fm\u000bn\u000co",
  punctuation: "Hello!!! What?! ... --- ((nested)) [brackets] {braces} @#$%^&*_+=|\\~`",
  code_c: "int main(int argc, char **argv) {\n    for (int i = 0; i < argc; i++) printf(\"%s\\n\", argv[i]);\n    return 0;\n}\n",
  code_python: "def f(x):\n    if x <= 1:\n        return 1  # base\n    return x * f(x - 1)\n\nprint([f(n) for n in range(10)])\n",
  json: "{\"text\": \"a\\nb\", \"ids\": [1, 2, 3], \"ok\": true, \"none\": null}",
  url_email: "See https://example.com/path?q=1&r=two#frag or mail me@example.org.",
  greek: "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5, \u03c4\u03b9 \u03ba\u03ac\u03bd\u03b5\u03b9\u03c2;",
  cyrillic: "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
  arabic: "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0661\u0662\u0663",
  hebrew: "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
  devanagari: "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e \u0967\u0968\u0969",
  bengali: "\u0986\u09ae\u09bf \u09ac\u09be\u0982\u09b2\u09be\u09af\u09bc \u0997\u09be\u09a8 \u0997\u09be\u0987",
  tamil: "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd \u0b89\u0bb2\u0b95\u0bae\u0bcd",
  thai: "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
  chinese: "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002",
  japanese: "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3002\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\uff11\uff12\uff13",
  korean: "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
  georgian_armenian: "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0 \u0532\u0561\u0580\u0587",
  ethiopic: "\u1230\u120b\u121d \u12d3\u1208\u121d",
  combining: "e\u0301 a\u0308 n\u0303 Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334",
  emoji: "I \u2764\ufe0f pizza \ud83c\udf55\ud83c\udf55! \ud83d\ude00\ud83d\ude03 \ud83d\udc4d\ud83c\udffd",
  emoji_zwj: "\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66 \ud83c\udff3\ufe0f\u200d\ud83c\udf08 \ud83d\udc69\ud83c\udffe\u200d\ud83d\udcbb",
  flags: "\ud83c\uddfa\ud83c\uddf8 \ud83c\uddef\ud83c\uddf5 \ud83c\uddeb\ud83c\uddf7",
  math_symbols: "\u2200x\u2208\u211d: x\u00b2 \u2265 0 \u2211\u221e \u03c0\u22483.14 \u2153 \u00bd \u2460\u2461 \u2167",
  astral: "\ud835\udd04\ud835\udd05 \ud801\udc00\ud801\udc28 \ud800\udf30 \ud83e\udd80",
  control_chars: "bell\u0007 nul\u0000 esc\u001b[0m del\u007f",
  endoftext_literal: "before <|endoftext|> after<|endoftext|>",
  mixed_scripts: "English \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u4e2d\u6587 \u0639\u0631\u0628\u064a 123 \ud83d\ude80!",
  long_word: "Pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious",
  repeated: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  moby_slice: moby.slice(1000, 4000),
};

// Seeded random mixes of characters from every class the regex cares about.
let seed = 12345;
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const pool = Array.from("aZ\u00e9\u00df\u0416\u03c9\u05d0\u0628\u4e2d\u3042\ud55c\u0e01" +
  "09\u0663\uff15\u2167\u00bd" + "  \t\n\r\u00a0\u2003\u3000\u0085" +
  ".,!?'\"-_()[]{}<>@#$%&*+=/\\|~`^:;" + "\u0301\u200d\ufe0f\ud83d\ude00\ud83c\udffd\ud83d\udc4d");
for (let k = 0; k < 12; k++) {
  let s = "";
  const n = 20 + rand(200);
  for (let i = 0; i < n; i++) {
    const r = rand(10);
    s += r < 1 ? ["'s", "'ll", "'re", "'d", "'t", "'m", "'ve"][rand(7)] : pool[rand(pool.length)];
  }
  texts["random_" + k] = s;
}

// Ordinary text: "<|endoftext|>" is plain characters (tiktoken's encode_ordinary).
const lines = Object.entries(texts).map(([name, text]) =>
  JSON.stringify({ name, text, ids: Array.from(enc.encode(text, [], [])) }));
// With special tokens allowed, the marker becomes token 50256.
lines.push(JSON.stringify({ name: "endoftext_special", text: texts.endoftext_literal, special: true,
  ids: Array.from(enc.encode(texts.endoftext_literal, "all")) }));
const ids = enc.encode(moby, [], []);
let h = 0xcbf29ce484222325n;
for (const id of ids)
  for (let b = 0; b < 4; b++) h = ((h ^ BigInt((id >>> (8 * b)) & 255)) * 0x100000001b3n) & 0xffffffffffffffffn;
lines.push(JSON.stringify({ name: "moby_dick_full", count: ids.length, fnv1a64: h.toString(16) }));
fs.writeFileSync("tests/data/tokenizer_refs.jsonl", lines.join("\n") + "\n");
console.log(`wrote ${lines.length} references (tiktoken gpt2)`);
