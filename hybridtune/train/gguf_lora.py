"""Convert a PEFT LoRA adapter to llama.cpp's GGUF LoRA adapter format (with the `gguf` package).

Input: a PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`) trained on
a llama-architecture base, and the base GGUF (for its architecture and head counts).
Output: `adapter.gguf`, loaded by llama.cpp next to the unchanged base GGUF
(`llama_cpp.Llama(model_path=base, lora_path=adapter)`, i.e. `EndpointConfig.lora_path`).

This is llama.cpp's `convert_lora_to_gguf.py` reduced to what a LoRA on a llama model needs:
- tensors are named `<gguf base tensor>.lora_a` / `.lora_b` (e.g. `blk.3.attn_q.weight.lora_a`);
  A is stored as (r, in) and B as (out, r), which is what llama.cpp checks;
- llama.cpp stores q/k projections with rotary halves interleaved differently from HF
  (`convert_hf_to_gguf.LlamaModel.permute`), so B of q_proj / k_proj gets the same row
  permutation (A works on the input side and is unchanged);
- `adapter.lora.alpha` carries alpha; llama.cpp scales by alpha / r like PEFT.

    to_gguf(Path("train/hybrid/adapter"), base_gguf, Path("train/hybrid/adapter.gguf"))
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF -> llama.cpp row order of a q/k projection output (rotary pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _base_meta(base_gguf: Path) -> dict:
    from gguf import GGUFReader

    r = GGUFReader(str(base_gguf))
    arch = r.fields["general.architecture"].contents()
    get = lambda k: r.fields[f"{arch}.{k}"].contents()  # noqa: E731
    return {"arch": arch, "n_layer": int(get("block_count")), "n_head": int(get("attention.head_count")),
            "n_head_kv": int(get("attention.head_count_kv"))}


def to_gguf(adapter_dir: Path, base_gguf: Path, out: Path) -> Path:
    """Write `out` (GGUF LoRA adapter) from a PEFT adapter folder; returns `out`."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    if cfg.get("use_rslora") or cfg.get("use_dora"):
        raise UserError(f"{adapter_dir}: rsLoRA/DoRA adapters cannot be converted for llama.cpp; train plain LoRA")
    meta = _base_meta(base_gguf)
    if meta["arch"] != "llama":
        raise UserError(f"{base_gguf}: GGUF adapter conversion supports llama-architecture bases, not {meta['arch']}")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, meta["n_layer"])
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))

    w = gguf.GGUFWriter(str(out), arch=meta["arch"])
    w.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(cfg["lora_alpha"]))
    for key in sorted(tensors):
        # base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
        hf, _, ab = key.removeprefix("base_model.model.").rpartition(".lora_")
        which = ab.split(".")[0]  # A or B
        base_name = names.get_name(hf + ".weight", try_suffixes=(".weight",))
        assert base_name is not None and which in ("A", "B"), f"{key}: no llama.cpp tensor for this adapter weight"
        arr = tensors[key].astype(np.float32)
        if which == "B" and hf.endswith("q_proj"):
            arr = _permute(arr, meta["n_head"])
        elif which == "B" and hf.endswith("k_proj"):
            arr = _permute(arr, meta["n_head_kv"])
        w.add_tensor(f"{base_name}.lora_{which.lower()}", np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
