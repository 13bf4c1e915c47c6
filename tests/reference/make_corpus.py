#!/usr/bin/env python3
"""Write tests/fixtures/tokenizer/corpus.json: the strings the tokenizer is checked on
against llama.cpp (see tokenize_llamacpp.mjs). Non-ASCII that an editor could normalize
(NFD, combining marks, zero-width characters) is written as escapes.

    python3 tests/reference/make_corpus.py
"""
import json
import os

c = []
add = c.append

# English prose, casing, contractions (upper-case ones split differently per regex).
for s in [
    "Hello world", " Hello world", "Hello World", " Hello World!", "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "It's a nice day, isn't it? I'd say we'll go, you're right, they've left, I'm in.",
    "IT'S LOUD. DON'T SHOUT! WE'LL SEE. THEY'VE GONE. I'M HERE. YOU'RE OK. HE'D KNOW.",
    "It'S mIxEd'Ll cAsE'vE", "rock 'n' roll", "'tis the season", "O'Neil's dog's bone",
    "''''", "' era", "'s", "x'", "don't\n", "Don’t curly apostrophe’s",
    "Mr. Smith went to Washington, D.C., on Jan. 5th.",
    "e.g. i.e. etc. vs. a.m. p.m.", "A", "a", "I", "Z z", "ALLCAPS SENTENCE HERE",
    "camelCaseIdentifier snake_case_name kebab-case-name SCREAMING_SNAKE",
    "What?! No way!!! Really??? ...", "Hello ... world", "Hello ,world", "a , b . c ! d ?",
    "end.", "(parenthetical) [bracketed] {braced} <angled>",
    "email@example.com https://example.com/path?q=1&r=2#frag",
    "C:\\Users\\name\\file.txt /usr/local/bin/", "#hashtag @mention $dollar %percent ^caret &amp *star",
    "50% off! $19.99 only, €5, £3, ¥100, ₹42",
]:
    add(s)

# Whitespace in all its forms.
for s in [
    "", " ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n",
    "\r", " \n", "\n ", "\t\n", " \t \n ", "a\tb", "a\t\tb", "a\nb", "a\r\nb", "a\rb",
    "  leading spaces", "trailing spaces   ", "   both   ", "\tleading tab", "trailing tab\t",
    "\nleading newline", "trailing newline\n", "multiple   inner   spaces",
    "line1\nline2\n\nline4\n\n\nline7", "    Hello\n    Hello", "\n =", " (",
    "a \u00a0b", "nbsp\u00a0\u00a0run", "em\u2003space", "ideographic\u3000space",
    "\u2028line sep\u2029para sep", "\u0085next line", "\x0bvertical\x0ctab form",
    "\x1cfile\x1dgroup\x1erecord\x1funit", "tab\tthen  two\n\n newline space",
    " " * 17 + "x", "x" + " " * 33, "\n" * 40, "\t" * 35, " \n" * 10,
    "\r\n\r\n\r\nwindows\r\n", "mixed \t\n\r\n end",
]:
    add(s)

# Numbers of every length, decimals, grouped, signed, scientific.
for n in range(1, 21):
    add("7" * n)
for n in range(1, 13):
    add("".join(str((i * 7 + 3) % 10) for i in range(n)))
for s in [
    "3", "33", "333", "3333", "33333", "333333", "3333333", "33333333", "333333333",
    "3.14159", "0.5", ".5", "5.", "-42", "+7", "1e10", "6.022e23", "1,234,567",
    "1 234 567", "12:34:56", "2024-01-31", "v1.2.3", "0x1F", "0b1010", "1/2 3/4",
    "½ ¼ ¾", "²³¹ ⁴", "①②③", "Ⅷ Ⅻ", "٣٤٥ ١٢", "१२३४", "๑๒๓", "１２３", "w048 7tuijk dsdfhu",
    "Call 555-0123 or +1 (800) 555-0199", "π≈3.14, e≈2.718", "100%", "3rd 21st 42nd",
    "1234567890123456789012345678901234567890",
]:
    add(s)

# Code in several languages.
for s in [
    "fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "def f(x):\n\treturn x**2 + 1  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "const add = (a, b) => a + b;\nconsole.log(add(1, 2));",
    "#include <stdio.h>\nint main(void) { return 0; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"x\"><p>Hi</p></div>", "<table><tr><td>1</td></tr></table>",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "x = y if z else w  # python ternary", "if err != nil {\n\treturn err\n}",
    "SELECT * FROM t;;;", "a->b->c; a::b::c; a=>b; a<=b; a!=b; a===b; a!==b",
    "let v: Vec<u8> = vec![0u8; 16];", "$ ls -la | grep '\\.rs$' > out.txt 2>&1",
    "    indented code\n        more indented\n", "\t\tdeep tab\n\t\t\tdeeper",
    "// comment\n/* block */\n/// doc", "x++; --y; z **= 2; w >>= 1; v <<= 3;",
    "```rust\nlet x = 1;\n```", "=== ### --- *** ___ ~~~", "......", "!!!!!!!!", "??!!..,,",
    "-----BEGIN-----", "a____b", "__init__", "__ggml_vocab_test__",
]:
    add(s)

# CJK, Japanese, Korean.
for s in [
    "我想在apple工作1314151天～", "你好，世界！", "中文测试文本，包含标点。", "漢字と仮名まじり文",
    "こんにちは、世界。", "カタカナとひらがな", "東京タワーは333メートルです。", "ｶﾀｶﾅ半角",
    "안녕하세요, 세계!", "한국어 텍스트입니다.", "日本語English混在テキスト", "中文English混合123",
    "「引用」『二重』【括弧】", "・・・。。。", "你好" * 12, "龘靐齉",
]:
    add(s)

# Other scripts.
for s in [
    "нещо на Български", "Привет, мир! Как дела?", "Ελληνικά γράμματα", "Ünïcödé Äpfel Öl Übermut straße",
    "ied 4 ½ months", "Äpfel", "façade naïve coöperate résumé", "Ǆungla ǅ ǆ",
    "مرحبا بالعالم", "العربية: ١٢٣ كتاب", "שלום עולם", "עברית עם ניקוד: שָׁלוֹם",
    "नमस्ते दुनिया", "हिन्दी में लिखा गया पाठ", "स्वागत है", "ภาษาไทยไม่มีช่องว่าง", "สวัสดีครับ",
    "ქართული", "Հայերեն", "ᚠᛇᚻ runes", "ꦗꦮ", "Tiếng Việt có dấu", "Ελληνικά και English",
    "កាន់តែពិសេសអាចខលចេញ", "አማርኛ", "ᏣᎳᎩ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙", "ﬁ ﬂ ligatures",
]:
    add(s)

# Emoji: plain, ZWJ sequences, skin tones, flags, keycaps, variation selectors.
for s in [
    "🦙", " this is 🦙.cpp", "🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
    "👍", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👩\u200d💻", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇺🇸🇯🇵🇩🇪",
    "1️⃣ #️⃣", "❤️ vs ❤", "☺︎ text style", "🤖🤖🤖🤖", "Hello 😁 ?", "emoji😀inside😃words",
    "🧑🏽\u200d🚀 astronaut", "🫠🫡🫶", "⌚⏰☕", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
]:
    add(s)

# Look-alikes of special tokens (plain text in user input), partial ones.
for s in [
    "<|im_start|>", "<|im_end|>", "<|im_start|>user\nHi<|im_end|>", "<start_of_turn>", "<end_of_turn>",
    "<start_of_turn>user\nhello<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "<s>", "</s>", "<bos>",
    "<eos>", "<pad>", "<unk>", "<mask>", "<|im_", "<|im_end", "im_end|>", "<start_of_", "_turn>",
    "<|", "|>", "<>", "< s >", "<S>", "<|IM_START|>", "<<|im_start|>>", "text<|endoftext|>more",
    "<tool_call>", "</tool_call>", "<table>", "<b>bold</b>", "<code>x</code>", "<|fim_prefix|>",
    "<repo_name>", "<filename>", "<unused0>", "[multimodal]", "<start_of_image>", "<0x41>", "▁",
    "▁▁space", "Ġ", "Ċ",
]:
    add(s)

# Combining marks, normalization forms, zero-width characters.
for s in [
    "caf\u00e9", "cafe\u0301", "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m", "\u1e9b\u0323",
    "n\u0303 \u00f1", "e\u0301\u0301\u0301 stacked", "\u0915\u094d\u0937", "Z\u0351\u0360\u0307a\u0308\u0302lgo",
    "zero\u200bwidth\u200bspace", "zwnj\u200cand\u200dzwj", "word\u2060joiner", "\ufeffBOM at start",
    "soft\u00adhyphen", "rtl \u202eoverride\u202c", "\u0301leading combining", "x\u20dd",
    "\ufffd replacement", "\u0000nul\u0001ctrl", "private\ue000use", "\U0010fffd plane16",
    "unassigned\u0378x", "\U0001d7d8 math digit",
]:
    add(s)

# Long words and repetition.
for s in [
    "a" * 100, "ab" * 60, "Supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtsgesellschaftskapitän", "x" * 257, "abc" * 50 + "!", "hello" * 30,
    "-" * 80, "=" * 64, "." * 40, "!?" * 30, "ha" * 45, "ℌ" * 20, "😀" * 25,
]:
    add(s)

# Mixed realistic prompts.
for s in [
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
    "Translate to French: \"I can't believe it's not butter!\"",
    "Q: What is 2+2?\nA: 4\n\nQ: What's 10/3?\nA: 3.333...",
    "User: hi\nAssistant: Hello! How can I help?\n",
    "List:\n- item one\n- item two\n  - nested\n1. first\n2. second",
    "Markdown **bold** _italic_ `code` [link](http://x.y) ![img](a.png)",
    "Tab\tseparated\tvalues\n1\t2\t3", "CSV,values,here\n1,2,3\r\n4,5,6",
    "She said, \"Hello!\" and left.", "«Bonjour» „Hallo“ ‚x‘ “quotes” ‘single’",
    "Σ x_i² / n ≥ 0 ∀ x ∈ ℝ", "→ ← ↑ ↓ ⇒ ⇔ ∞ ≠ ≈", "©®™ § ¶ † ‡ • …",
    "The year 1984 and 2001: A Space Odyssey.", "3 apples + 4 oranges = 7 fruits",
]:
    add(s)

# Generated families: every ASCII punctuation char alone and after a space / a word.
for ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~":
    add(ch)
    add(" " + ch)
    add("word" + ch + "next")

seen = set()
corpus = []
for s in c:
    if s not in seen:
        seen.add(s)
        corpus.append(s)
assert len(corpus) >= 300, len(corpus)

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "fixtures", "tokenizer", "corpus.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w", encoding="utf-8") as f:
    json.dump(corpus, f, ensure_ascii=True, indent=0)
    f.write("\n")
print(f"{len(corpus)} strings -> {out}")
