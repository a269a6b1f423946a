"""Paged KV cache (twin.model.kvcache): admission on current context, growth, preemption, by hand."""
import numpy as np

from twin.model import kvcache as kv


def test_blocks_round_up_to_whole_blocks():
    assert kv.blocks_for(np.array([0, 1, 16, 17, 1000]), 16).tolist() == [0, 1, 1, 2, 63]


def test_paged_admission_admits_about_twice_the_worst_case_at_1000_in_1000_out():
    # a pool of 1,000 blocks of 16 tokens; 40 queued requests of 1,000 prompt + 1,000 output tokens
    pool, block = 1000, 16
    prompt = np.full(40, 1000)
    paged = kv.admit_fifo(pool, kv.blocks_for(prompt, block), slots=256)              # 63 blocks each
    worst = kv.admit_fifo(pool, kv.blocks_for(prompt + 1000, block), slots=256)       # 125 blocks each
    assert paged == 1000 // 63 == 15
    assert worst == 1000 // 125 == 8
    # in steady state a sequence holds on average 1,000 + 1,000/2 tokens: 94 blocks -> 10 running
    assert kv.sequences_that_fit(pool, 1500, block) == 1000 // 94 == 10


def test_admission_is_fifo_and_capped_by_slots():
    # the second request does not fit, so the small third one waits behind it (no skipping ahead)
    assert kv.admit_fifo(10, np.array([4, 8, 1]), slots=8) == 1
    assert kv.admit_fifo(100, np.array([1] * 20), slots=5) == 5


def test_growth_takes_a_block_when_a_token_starts_one():
    # contexts 15, 16, 31 tokens +1 token: 15 -> 16 stays in block 1; 16 -> 17 opens block 2; 31 -> 32 stays
    assert kv.growth_blocks(np.array([15, 16, 31]), np.array([1, 1, 1]), 16).tolist() == [0, 1, 0]


def test_preemption_evicts_the_newest_running_sequence():
    # three running sequences (oldest first) each needing one more block; only one block is free.
    # vLLM V1: the oldest takes the free block; the newest (held 5) is preempted, which lets the middle grow.
    out = kv.preempt_for_growth(1, need=np.array([1, 1, 1]), held=np.array([10, 7, 5]))
    assert out.tolist() == [False, False, True]
    # nothing needed: nothing preempted
    assert not kv.preempt_for_growth(0, np.zeros(3), np.array([3, 3, 3])).any()
    # a sequence that cannot grow even alone is preempted itself
    assert kv.preempt_for_growth(0, need=np.array([2]), held=np.array([1])).tolist() == [True]
