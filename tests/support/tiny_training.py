"""Teaching a tiny model a handful of completions, so an end-to-end test has a real model that behaves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def teach(model_dir: Path, pairs: Sequence[tuple[str, str]], out_dir: Path, steps: int = 400,
          lr: float = 3e-3) -> float:
    """Fine-tune every weight of the model in `model_dir` on `pairs` (loss on completions only).

    Returns the final loss; saves the model and tokenizer to `out_dir`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    batch = []
    for prompt, completion in pairs:
        enc = tok(prompt + completion, return_offsets_mapping=True, add_special_tokens=False)
        ids = torch.tensor(enc.input_ids)
        target = torch.tensor([start >= len(prompt) for start, _ in enc.offset_mapping])
        # predict token t from position t-1; only completion tokens are scored
        positions = (torch.nonzero(target[1:]).squeeze(-1))
        batch.append((ids[None], positions, ids[1:][positions]))
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    torch.manual_seed(0)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        optim.zero_grad()
        losses = []
        for ids, positions, labels in batch:
            hidden = model.model(input_ids=ids).last_hidden_state[0, positions]  # lm head on scored rows only
            losses.append(torch.nn.functional.cross_entropy(model.lm_head(hidden), labels))
        loss = torch.stack(losses).mean()
        loss.backward()
        optim.step()
        if loss.item() < 0.02:
            break
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return float(loss.item())
