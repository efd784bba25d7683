"""Conversations as the tensors a causal LM trains on: the prompt, rendered with the model's own
chat template exactly as inference renders it, masked; the answer and its end of turn learned.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import EXIT_USAGE, SaferlabError
from ..types import Message
from .data import Example


def encode(tokenizer: Any, messages: Sequence[Message], max_len: int,
           end_text: str, learn: int = 0) -> tuple[list[int], list[int]] | None:
    """Token ids and labels of one conversation: the prompt (every turn before the last, and
    the assistant's header) is masked with -100; the answer and its end-of-turn token are
    learned. With ``learn`` > 0 only the answer's first ``learn`` tokens are (the rest is cut:
    with no loss after them, they change nothing). None when it is longer than ``max_len``."""
    chat = [m.to_dict() for m in messages]
    prompt = tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(chat[-1]["content"] + end_text, add_special_tokens=False)["input_ids"]
    if learn > 0:
        answer_ids = answer_ids[:learn]
    ids = list(prompt_ids) + list(answer_ids)
    if len(ids) > max_len:
        return None
    return ids, [-100] * len(prompt_ids) + list(answer_ids)


def turn_end(tokenizer: Any) -> str:
    """The text that ends an assistant turn in this chat template (``<|im_end|>``)."""
    probe = "\x00probe\x00"
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    after = rendered[rendered.rfind(probe) + len(probe):].strip()
    return after or (tokenizer.eos_token or "")


class Examples(torch.utils.data.Dataset):
    def __init__(self, rows: list[tuple[list[int], list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        ids, labels = self.rows[i]
        return {"input_ids": ids, "labels": labels}


def collate_with(pad_id: int):
    def collate(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])
            labels[row, :n] = torch.tensor(b["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
    return collate


def encode_all(tokenizer: Any, examples: Sequence[Example], max_len: int, keep_tokens: int = 0
                ) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Token ids and labels of every example that fits ``max_len``, and how many did not.
    Keep examples (the model's own answers to harmless instructions) are learned on their
    first ``keep_tokens`` answer tokens only (0: all of them), see TrainSpec.keep_loss_tokens."""
    end_text = turn_end(tokenizer)
    rows = [encode(tokenizer, e.messages, max_len, end_text,
                   keep_tokens if e.kind == "keep" else 0) for e in examples]
    kept = [r for r in rows if r is not None]
    if not kept:
        raise SaferlabError(f"every example is longer than --max-len {max_len} tokens",
                            EXIT_USAGE)
    return kept, len(rows) - len(kept)


def answer_loss(model: Any, inputs: dict[str, torch.Tensor],
                num_items: torch.Tensor | int | None = None) -> torch.Tensor:
    """The causal-LM loss of ``model`` (a PEFT model over a causal LM) with the output layer
    applied only where a token is learned: the same value as the model's own loss, without
    the logits of every masked prompt token (the output layer is a fifth of SmolLM2-135M's
    compute per token; peak memory falls by only about 4%). Summed and divided by ``num_items`` (the learned tokens of the batch)
    as the model's loss is, or averaged when it is not given."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"][:, 1:]
    learned = labels != -100
    hidden = base.get_decoder()(input_ids=inputs["input_ids"],
                                attention_mask=inputs.get("attention_mask"),
                                use_cache=False).last_hidden_state
    logits = base.get_output_embeddings()(hidden[:, :-1][learned]).float()
    total = torch.nn.functional.cross_entropy(logits, labels[learned], reduction="sum")
    count = num_items if num_items is not None else learned.sum()
    if isinstance(count, torch.Tensor):
        count = count.to(total.device)
    return total / count
