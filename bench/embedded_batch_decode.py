"""Benchmark: does decoding several sequences at once pay on this machine's CPU?

Raw llama.cpp (the packaged SmolLM2-135M GGUF, one context holding `--seqs` sequences):
the same greedy continuations decoded (a) one llama_decode per sequence per step and (b) one
llama_decode per step carrying every sequence's next token. Figure: tokens/s of (b) over
(a), both in this run. Also reports whether (b) picks the same tokens as (a): a token's
numbers depend on the batch it is computed in, so batching independent items makes each
one's output depend on which others ran beside it.

    .venv/bin/python bench/embedded_batch_decode.py --seqs 4 --steps 24
"""
from __future__ import annotations

import argparse
import ctypes
import os
import time

from common import Result, record


def main() -> None:
    import llama_cpp
    import numpy as np

    from hybridtune.llm.llamacpp import find_gguf

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=24)
    a = ap.parse_args()
    llama_cpp.llama_backend_init()
    mp = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(find_gguf("smollm2")).encode(), mp)
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    prompts = ["I failed my exam and I feel", "My manager said my work was", "Since I moved here I have",
               "When I try to sleep I keep", "My sister never calls me and", "At the party I stood alone and",
               "Every morning I wake up and", "The doctor told me that I"][: a.seqs]

    def tokenize(text: str) -> list[int]:
        buf = (llama_cpp.llama_token * 64)()
        n = llama_cpp.llama_tokenize(vocab, text.encode(), len(text.encode()), buf, 64, True, False)
        return list(buf[:n])

    def run(batched: bool) -> tuple[float, list[list[int]]]:
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_seq_max = 256 * a.seqs, 256, a.seqs
        cp.n_threads = cp.n_threads_batch = max(1, (os.cpu_count() or 2) // 2)  # llama-cpp-python's default
        ctx = llama_cpp.llama_init_from_model(model, cp)
        batch = llama_cpp.llama_batch_init(256, 0, a.seqs)
        toks = [tokenize(p) for p in prompts]
        pos = [0] * a.seqs

        def decode(items: list[tuple[int, list[int]]]) -> list[int]:
            batch.n_tokens = 0
            last = []
            for s, ts in items:
                for j, t in enumerate(ts):
                    i = batch.n_tokens
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos[s] + j, 1
                    batch.seq_id[i][0] = s
                    batch.logits[i] = j == len(ts) - 1
                    batch.n_tokens += 1
                pos[s] += len(ts)
                last.append(batch.n_tokens - 1)
            assert llama_cpp.llama_decode(ctx, batch) == 0
            out = []
            for i in last:
                row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
                out.append(int(row.argmax()))
            return out

        nxt = [decode([(s, toks[s])])[0] for s in range(a.seqs)]  # prompts, one at a time in both arms
        gen = [[t] for t in nxt]
        t0 = time.perf_counter()
        for _ in range(a.steps):
            if batched:
                nxt = decode([(s, [nxt[s]]) for s in range(a.seqs)])
            else:
                nxt = [decode([(s, [nxt[s]])])[0] for s in range(a.seqs)]
            for s in range(a.seqs):
                gen[s].append(nxt[s])
        dt = time.perf_counter() - t0
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        return a.seqs * a.steps / dt, gen

    seq1, gen1 = run(False)
    bat1, genb = run(True)
    seq2, _ = run(False)  # ABBA against drift in the shared machine's load
    bat2, _ = run(True)
    seq, bat = (seq1 + seq2) / 2, (bat1 + bat2) / 2
    same = sum(x == y for g, h in zip(gen1, genb, strict=True) for x, y in zip(g, h, strict=True))
    total = sum(len(g) for g in gen1)
    cmd = f".venv/bin/python bench/embedded_batch_decode.py --seqs {a.seqs} --steps {a.steps}"
    record("embedded_batch_decode", [
        Result(f"decode {a.seqs} sequences in one batch vs one at a time (SmolLM2-135M, llama.cpp CPU)",
               f"{bat:.1f} tok/s", f"one sequence per decode {seq:.1f} tok/s", round(bat / seq, 3),
               ">= 1.5 to be worth its cost (outputs then depend on co-scheduling)", bat / seq >= 1.5, cmd,
               f"greedy tokens equal between arms: {same}/{total}; ABBA order; load average "
               f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"),
    ])


if __name__ == "__main__":
    main()
