"""Chat template + assistant-only loss mask, for any tokenizer's template.

Input: a `messages` list and a (fast) tokenizer. Output: `{"input_ids", "assistant_masks"}`,
the pre-tokenized form TRL's SFTTrainer accepts (it turns the mask into -100 labels and
truncates to max_length).

Why not TRL's `assistant_only_loss=True`: it needs `{% generation %}` markers in the chat
template, and SmolLM2's template (like most) has none. Instead, each assistant turn's
character span is found by rendering the dialogue up to it with and without the turn
(`prefix + generation prompt` vs `prefix + turn`), which works for any template where
rendering is prefix-stable. The span covers the reply text and the end-of-turn token
(`<|im_end|>`, so the model learns to stop) but not the role header or the newline after.

    ex = encode_chat(tok, messages)
"""
from __future__ import annotations

from ..errors import UserError


def assistant_spans(tok, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered dialogue and the [start, end) character span of each assistant turn."""
    full = tok.apply_chat_template(messages, tokenize=False)
    eot = tok.eos_token or ""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = tok.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (full.startswith(upto) and upto.startswith(before)):
            raise UserError(
                "train.base_model: its chat template is not prefix-stable (rendering a dialogue changes "
                "earlier turns), so assistant tokens cannot be located; use a model with a standard template"
            )
        end = len(upto)
        # stop right after the end-of-turn token: trailing newlines belong to the template
        cut = upto.rfind(eot, len(before)) if eot else -1
        if cut >= 0:
            end = cut + len(eot)
        spans.append((len(before), end))
    return full, spans


def encode_chat(tok, messages: list[dict]) -> dict:
    """Token ids of the templated dialogue and a 0/1 mask of the tokens that carry loss."""
    text, spans = assistant_spans(tok, messages)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = []
    for a, b in enc["offset_mapping"]:
        mid = (a + b) / 2 if b > a else a
        mask.append(int(any(s <= mid < e for s, e in spans)))
    return {"input_ids": list(enc["input_ids"]), "assistant_masks": mask}
