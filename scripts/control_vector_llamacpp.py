"""Does an exported control vector steer llama.cpp the way `steer` steers the HF model? SmolLM2-135M-Instruct.

    pip install -c scripts/constraints-cpu.txt llama-cpp-python    # compiles llama.cpp (10-20 min on 2 cores)
    python scripts/control_vector_llamacpp.py --out docs/reports/steering_smollm2/llamacpp

One seeded direction (`pretrained_direction`, as in the dose–response report) is exported with
`anchor_hf.control_vector` at the given blocks, read back from the GGUF file the way llama.cpp's
loader reads it (`direction.N` at offset N − 1 of a buffer starting at block 1) and applied
with `llama_set_adapter_cvec` to the very GGUF file the HF model was converted from. The HF
counterpart is `steer(..., {N: c·s_N}, mode="absolute")`: the same constant vector added to
the output of block N at every position. For each dose the script compares, on the model's
own unsteered greedy answers (teacher-forced): how far each runtime's next-token distribution
moves (KL unsteered ‖ steered), how close the two steered distributions are to each other
(KL, top-1 agreement, top-10 overlap) against the unsteered gap between the runtimes (4-bit
llama.cpp against the de-quantized float32 HF model), and — as the check of the block
indexing — the same with llama.cpp's vector one block before or after the exported ones.
"""

from __future__ import annotations

import argparse
import ctypes
import shlex
import sys
from typing import Any

import numpy as np
import torch

from steering_common import (PROMPTS, continuation_logprobs, encode_prompts, greedy, kl_divergence, load_smollm2,
                             padded)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="report folder (report.md, report.json, the .gguf vector)")
    parser.add_argument("--model", default=None, help="the converted SmolLM2 folder; default: convert once")
    parser.add_argument("--cache", default="results/smollm2", help="where the packaged GGUF is converted (once)")
    parser.add_argument("--layers", type=int, nargs="+", default=[10, 15, 20], help="blocks the vector steers")
    parser.add_argument("--doses", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5],
                        help="c, in multiples of each block's typical norm")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random direction")
    return parser


def command_line(args: argparse.Namespace) -> str:
    parts = ["python", "scripts/control_vector_llamacpp.py", "--out", args.out]
    if args.model:
        parts += ["--model", args.model]
    parts += ["--layers", *map(str, args.layers), "--doses", *[f"{d:g}" for d in args.doses],
              "--prompts", str(args.prompts), "--new-tokens", str(args.new_tokens), "--seed", str(args.seed)]
    return shlex.join(parts)


def cvec_buffer(path: str, n_embd: int, n_layer: int, shift: int = 0) -> np.ndarray:
    """The buffer llama.cpp's loader builds from a control-vector file: block N at offset (N − 1)·n_embd.

    It always covers blocks 1 .. n_layer − 1: `llama_set_adapter_cvec` only overwrites the blocks
    a buffer reaches, so a shorter buffer would leave an earlier vector's later blocks in place.
    `shift` moves every direction that many blocks later (the indexing check).
    """
    import gguf

    tensors = {int(t.name.split(".")[1]) + shift: np.asarray(t.data, dtype=np.float32)
               for t in gguf.GGUFReader(path).tensors}
    if not 1 <= min(tensors) <= max(tensors) < n_layer:
        raise ValueError(f"blocks {sorted(tensors)} are outside the 1 .. {n_layer - 1} llama.cpp can steer")
    data = np.zeros(n_embd * (n_layer - 1), dtype=np.float32)
    for block, vector in tensors.items():
        data[(block - 1) * n_embd:block * n_embd] += vector
    return data


class LlamaCpp:
    """The GGUF model in llama.cpp (via llama-cpp-python): next-token log-probabilities with a control vector."""

    def __init__(self, path: str) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(model_path=path, n_ctx=256, logits_all=True, n_threads=1, verbose=False)
        self.n_layer = int(llama_cpp.llama_model_n_layer(self.llm.model))

    def set_vector(self, data: np.ndarray | None, strength: float = 1.0) -> None:
        import llama_cpp

        if data is None:
            llama_cpp.llama_set_adapter_cvec(self.llm.ctx, None, 0, self.llm.n_embd(), -1, -1)
            return
        scaled = np.ascontiguousarray(data * strength, dtype=np.float32)
        self._keep = scaled  # llama.cpp copies it, but keep it alive through the call
        pointer = scaled.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        if llama_cpp.llama_set_adapter_cvec(self.llm.ctx, pointer, scaled.size, self.llm.n_embd(), 1, self.n_layer):
            raise RuntimeError("llama_set_adapter_cvec refused the control vector")

    def continuation_logprobs(self, sequence: torch.Tensor, prompt_length: int) -> torch.Tensor:
        """Like `steering_common.continuation_logprobs`: `[N, V]` log-probabilities predicting the continuation."""
        tokens = sequence[0, :-1].tolist()
        self.llm.reset()
        self.llm.eval(tokens)
        logits = torch.from_numpy(np.array(self.llm.scores[prompt_length - 1:len(tokens)], dtype=np.float64))
        return torch.log_softmax(logits, dim=-1)


def compare(p_hf: torch.Tensor, q_hf: torch.Tensor, p_cpp: torch.Tensor, q_cpp: torch.Tensor,
            q_earlier: torch.Tensor, q_later: torch.Tensor) -> dict[str, float]:
    """Per dose: how far each runtime moves, and how close the two steered distributions are (all `[N, V]`).

    `q_earlier` / `q_later`: llama.cpp with every direction one block earlier / later than exported.
    """
    top_hf, top_cpp = q_hf.topk(10, -1).indices, q_cpp.topk(10, -1).indices
    overlap = [len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(top_hf, top_cpp)]
    moved_hf, moved_cpp = kl_divergence(p_hf, q_hf), kl_divergence(p_cpp, q_cpp)
    return {"kl_moved_hf": float(moved_hf.mean()), "kl_moved_llamacpp": float(moved_cpp.mean()),
            "moved_correlation": float(torch.corrcoef(torch.stack([moved_hf, moved_cpp]))[0, 1]),
            "kl_hf_to_llamacpp": float(kl_divergence(q_hf, q_cpp).mean()),
            "kl_hf_to_llamacpp_block_before": float(kl_divergence(q_hf, q_earlier).mean()),
            "kl_hf_to_llamacpp_block_after": float(kl_divergence(q_hf, q_later).mean()),
            "top1_agreement": float((q_hf.argmax(-1) == q_cpp.argmax(-1)).double().mean()),
            "top10_overlap": float(np.mean(overlap))}


def measure(model: Any, cpp: LlamaCpp, cfg: Any, vector: Any, path: str, doses: list[float],
            prompts: list[torch.Tensor], answers: list[torch.Tensor]) -> dict[str, Any]:
    """Unsteered gap between the runtimes, and `compare` at every dose (llama.cpp strength = dose)."""
    from anchor_hf.interventions import steer

    buffers = {shift: cvec_buffer(path, cpp.llm.n_embd(), cpp.n_layer, shift) for shift in (-1, 0, 1)}
    cpp.set_vector(None)
    plain_hf = [continuation_logprobs(model, a, p.shape[1]) for p, a in zip(prompts, answers)]
    plain_cpp = [cpp.continuation_logprobs(a, p.shape[1]) for p, a in zip(prompts, answers)]
    p_hf, p_cpp = torch.cat(plain_hf), torch.cat(plain_cpp)
    agree = float((p_hf.argmax(-1) == p_cpp.argmax(-1)).double().mean())
    out: dict[str, Any] = {"unsteered": {"kl_hf_to_llamacpp": float(kl_divergence(p_hf, p_cpp).mean()),
                                         "top1_agreement": agree}, "doses": {}}
    for dose in doses:
        per_block = {b: dose * float(d.norm()) for b, d in vector.directions.items()}  # the file holds dose 1
        with steer(model, cfg, "probe", per_block, mode="absolute"):
            q_hf = torch.cat([continuation_logprobs(model, a, p.shape[1]) for p, a in zip(prompts, answers)])
        q_cpp = {}
        for shift, buffer in buffers.items():
            cpp.set_vector(buffer, dose)
            q_cpp[shift] = torch.cat([cpp.continuation_logprobs(a, p.shape[1]) for p, a in zip(prompts, answers)])
        out["doses"][f"{dose:g}"] = compare(p_hf, q_hf, p_cpp, q_cpp[0], q_cpp[-1], q_cpp[1])
    cpp.set_vector(None)
    return out


def markdown(results: dict[str, Any]) -> str:
    from anchor_hf.probes.report import markdown_table

    rows = [[d, r["kl_moved_hf"], r["kl_moved_llamacpp"], r["moved_correlation"], r["kl_hf_to_llamacpp"],
             r["kl_hf_to_llamacpp_block_before"], r["kl_hf_to_llamacpp_block_after"], r["top1_agreement"],
             r["top10_overlap"]] for d, r in results["doses"].items()]
    u = results["unsteered"]
    return "\n".join([
        "# A control vector in llama.cpp against `steer` in transformers (SmolLM2-135M-Instruct)", "",
        "Command:", "", "```", results["command"], "```", "", results["setup"], "",
        f"Unsteered, the two runtimes differ by KL {u['kl_hf_to_llamacpp']:.4g} nats per answer position "
        f"(top-1 agreement {u['top1_agreement']:.3g}): llama.cpp computes with the 4-bit weights and 8-bit "
        "activations, HF with the de-quantized float32 weights. Columns: mean KL(unsteered ‖ steered) in each "
        "runtime and the correlation of the two over answer positions; KL(HF steered ‖ llama.cpp steered) "
        "with llama.cpp's vector at the exported blocks, and (the indexing check) one block before or after "
        "them; top-1 agreement and top-10 overlap of the two steered distributions at the exported blocks. "
        f"Every metric is defined in the {results['glossary']}.", "",
        markdown_table(["dose c", "KL moved (HF)", "KL moved (llama.cpp)", "correlation", "KL HF ↔ llama.cpp",
                        "… block before", "… block after", "top-1 agreement", "top-10 overlap"], rows), "",
        "Typical norms s_N written into the file (median ‖h‖ of block N's output on the export text): "
        + ", ".join(f"block {b}: {n:.4g}" for b, n in results["typical_norms"].items()) + "."])


def main(args: argparse.Namespace) -> int:
    import os

    torch.set_num_threads(1)  # measured: on a shared 2-core machine one thread is several times faster than two
    from anchor_hf import AnchorConfig, ConceptAnchor
    from anchor_hf.control_vector import control_vector, write_control_vector
    from anchor_hf.convert import packaged_smollm2_gguf
    from anchor_hf.places import pretrained_direction
    from anchor_hf.probes.report import glossary_link, write_report

    model, tokenizer, folder = load_smollm2(args.model, args.cache)
    prompts = encode_prompts(tokenizer)[:args.prompts]
    v = pretrained_direction(model, args.layers, *padded(prompts, tokenizer.pad_token_id), seed=args.seed)
    cfg = AnchorConfig(layers=list(args.layers), concepts=[ConceptAnchor(name="probe", vector=v)])
    vector = control_vector(model, tokenizer, cfg, "probe", dose=1.0)
    os.makedirs(args.out, exist_ok=True)
    path = write_control_vector(vector, os.path.join(args.out, "probe_direction.gguf"))
    answers = [greedy(model, ids, args.new_tokens) for ids in prompts]
    cpp = LlamaCpp(packaged_smollm2_gguf())
    try:
        results = measure(model, cpp, cfg, vector, path, list(args.doses), prompts, answers)
    finally:
        cpp.llm.close()  # free llama.cpp's model now, not in a destructor at interpreter exit
    results.update(command=command_line(args), model=folder, gguf=packaged_smollm2_gguf(),
                   layers=list(args.layers), typical_norms={str(b): n for b, n in vector.norms.items()},
                   glossary=glossary_link(args.out), prompts=list(PROMPTS[:args.prompts]))
    results["setup"] = (
        f"The direction is `pretrained_direction(model, {args.layers}, prompts, seed={args.seed})`, exported with "
        f"`control_vector(model, tokenizer, cfg, 'probe', dose=1)` to `probe_direction.gguf` (direction.N = s_N·v̂ "
        f"at blocks {args.layers}) and applied in llama.cpp with strength c to `{os.path.basename(results['gguf'])}`;"
        f" in HF, `steer(model, cfg, 'probe', {{N: c·s_N}}, mode='absolute')` on the model converted from that file. "
        f"{args.prompts} chat prompts, {args.new_tokens} teacher-forced answer tokens each (the HF model's "
        "unsteered greedy answer). Both runtimes add the vector at every position, the prompt included.")
    write_report(args.out, results, markdown(results), {})
    print(f"wrote {args.out}/report.md, report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(make_parser().parse_args()))
