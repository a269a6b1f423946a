"""Paged KV cache: admission on current context in blocks, growth per decoded token, preemption.

vLLM (PagedAttention, Kwon et al. SOSP 2023; V1 scheduler) keeps the KV cache in fixed blocks of
`block_tokens` tokens (default 16). A waiting request is admitted when the blocks for its prompt
fit in the free pool; every decoded token that starts a new block takes one more; when a running
sequence needs a block and none is free, the scheduler preempts the most recently admitted
running sequence (V1 default: recompute, i.e. its blocks are freed and it re-enters the waiting
queue at the front, to be prefilled again). Worst-case reservation (prompt + full output at
admission, what the engine did before) admits roughly half the sequences at 1000-in/1000-out.

Pure functions of integer arrays; the engine's request book (twin/sim/requests.py) owns the state.
"""
from __future__ import annotations

import numpy as np


def blocks_for(tokens: np.ndarray | int, block_tokens: int) -> np.ndarray:
    """Blocks holding `tokens` tokens: ceil(tokens / block_tokens) (0 tokens -> 0 blocks)."""
    t = np.asarray(tokens, dtype=np.int64)
    return -(-t // block_tokens)


def admit_fifo(free_blocks: int, need_blocks: np.ndarray, slots: int) -> int:
    """How many requests at the head of a FIFO queue are admitted: while their blocks fit and a slot is free.

    `need_blocks[i]` is what request i takes at admission (paged: its prompt; worst case: prompt +
    output). Stops at the first that does not fit (FIFO: no skipping ahead, as vLLM's scheduler).
    """
    if slots <= 0 or len(need_blocks) == 0:
        return 0
    cum = np.cumsum(np.asarray(need_blocks, dtype=np.int64)[:slots])
    return int(np.searchsorted(cum, free_blocks, side="right"))


def sequences_that_fit(pool_blocks: int, tokens_per_seq: float, block_tokens: int) -> int:
    """Sequences of `tokens_per_seq` context the pool holds at once: pool // ceil(tokens / block)."""
    per = int(blocks_for(int(np.ceil(tokens_per_seq)), block_tokens))
    return pool_blocks // per if per > 0 else 0


def growth_blocks(context_tokens: np.ndarray, new_tokens: np.ndarray, block_tokens: int) -> np.ndarray:
    """Blocks each sequence needs to append `new_tokens` to `context_tokens`: blocks(c + n) - blocks(c)."""
    c = np.asarray(context_tokens, dtype=np.int64)
    return blocks_for(c + np.asarray(new_tokens, dtype=np.int64), block_tokens) - blocks_for(c, block_tokens)


def preempt_for_growth(free_blocks: int, need: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Which running sequences to preempt so that the others can take the blocks they need this step.

    `need[i]` / `held[i]`: blocks sequence i needs now / holds, ordered by admission (oldest first).
    vLLM V1: serve the oldest first; when the pool runs dry, preempt the newest running sequence
    (freeing everything it holds) and retry, until the oldest ones fit. Returns a boolean mask.
    """
    need = np.asarray(need, dtype=np.int64)
    held = np.asarray(held, dtype=np.int64)
    out = np.zeros(len(need), dtype=bool)
    free = int(free_blocks)
    last = len(need) - 1
    for i in range(len(need)):
        if out[i]:
            continue
        while need[i] > free and last > i:
            if not out[last]:
                out[last] = True
                free += int(held[last])
            last -= 1
        if need[i] > free:       # even alone it cannot grow: it is preempted itself
            out[i] = True
            free += int(held[i])
            continue
        free -= int(need[i])
    return out
