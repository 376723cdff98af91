"""Text trials without per-step waste: length-bucketed batches, and a padding mask nobody inspects."""

from __future__ import annotations

import pytest
import torch
from trainer.data import (
    BUCKET_BATCHES,
    EpochBatchSampler,
    bucket_by_length,
    epoch_permutation,
    global_batch_at,
)
from trainer.text_task import PadCollator, model_attention_mask, tiny_bert

LENGTHS = [int(x) for x in torch.randint(3, 60, (1000,), generator=torch.Generator().manual_seed(5))]


def padding(batches: list[list[int]]) -> int:
    """Padding tokens when each batch is padded to its longest example."""
    return sum(max(LENGTHS[i] for i in b) * len(b) - sum(LENGTHS[i] for i in b) for b in batches)


def test_bucketed_epoch_is_a_deterministic_permutation_with_little_padding() -> None:
    plain = EpochBatchSampler(1000, 32, seed=3, epoch=2).batches()
    bucketed = EpochBatchSampler(1000, 32, seed=3, epoch=2, lengths=LENGTHS).batches()
    again = EpochBatchSampler(1000, 32, seed=3, epoch=2, lengths=LENGTHS).batches()
    assert bucketed == again  # a function of (seed, epoch): a resumed run draws the same batches
    assert bucketed != EpochBatchSampler(1000, 32, seed=3, epoch=3, lengths=LENGTHS).batches()
    assert sorted(i for b in bucketed for i in b) == list(range(1000))  # every example once
    assert [len(b) for b in bucketed] == [global_batch_at(1000, 32, s) for s in range(len(bucketed))]
    assert padding(bucketed) < padding(plain) / 4
    # the batch order is shuffled, not sorted: lengths do not simply grow through each chunk
    firsts = [max(LENGTHS[i] for i in b) for b in bucketed[:BUCKET_BATCHES]]
    assert firsts != sorted(firsts)


def test_bucketing_keeps_the_trailing_short_batch_last_and_groups_within_chunks() -> None:
    order = epoch_permutation(100, 1, 0).tolist()
    grouped = bucket_by_length(order, LENGTHS, batch_size=8, bucket_batches=2, seed=1, epoch=0)
    assert grouped[96:] == sorted(order[96:], key=lambda i: LENGTHS[i])  # the short batch, last
    chunks = [sorted(order[s : s + 16]) for s in range(0, 96, 16)]
    batches = [grouped[s : s + 8] for s in range(0, 96, 8)]
    for batch in batches:  # each full batch comes from one chunk of 2 batches, in length order
        assert any(set(batch) <= set(chunk) for chunk in chunks)
        assert [LENGTHS[i] for i in batch] == sorted(LENGTHS[i] for i in batch)


@pytest.mark.parametrize("world", [2, 3])
def test_bucketed_rank_slices_are_the_single_process_batch_and_resume_mid_epoch(world: int) -> None:
    single = EpochBatchSampler(1000, 30, seed=0, epoch=1, lengths=LENGTHS).global_batches()
    ranks = [
        EpochBatchSampler(1000, 30, 0, 1, rank=r, world_size=world, lengths=LENGTHS).batches()
        for r in range(world)
    ]
    for step, batch in enumerate(single):
        assert [i for r in range(world) for i in ranks[r][step]] == batch
    resumed = EpochBatchSampler(1000, 30, 0, 0, lengths=LENGTHS)
    resumed.set_epoch(1, start_step=7)  # one sampler for the whole trial, re-aimed per epoch
    assert list(resumed) == single[7:]


def test_collator_leaves_out_the_mask_when_no_row_is_padded() -> None:
    collate = PadCollator(pad_id=0)
    same = [{"input_ids": [5, 6, 7], "token_type_ids": [0, 0, 0], "label": 1}] * 2
    assert "attention_mask" not in collate(same)
    ragged = collate([*same, {"input_ids": [5], "token_type_ids": [0], "label": 0}])
    assert ragged["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 1], [1, 0, 0]]
    assert "attention_mask" in PadCollator(pad_id=0, multiple=8)(same)  # rounded up to 8: padded


def test_the_4d_mask_gives_the_2d_masks_logits_without_transformers_inspecting_it(monkeypatch) -> None:
    """transformers' SDPA path calls ``padding_mask.all()`` (a GPU sync) on a 2D mask; the trainer's 4D
    mask is used as given, and no mask at all is answered without one. Proven by making that helper
    fail when it gets a mask: the 2D mask reaches it, ours does not."""
    import transformers.masking_utils as masking

    torch.manual_seed(0)
    model = tiny_bert(vocab_size=50, pad_token_id=0).eval()
    assert model.config._attn_implementation == "sdpa"
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits

        real = masking._ignore_bidirectional_mask_sdpa

        def inspected(padding_mask, *args, **kwargs):
            if padding_mask is not None:  # None is answered without looking at the device
                raise AssertionError("the padding mask was inspected")
            return real(padding_mask, *args, **kwargs)

        monkeypatch.setattr(masking, "_ignore_bidirectional_mask_sdpa", inspected)
        with pytest.raises(AssertionError, match="inspected"):
            model(input_ids=ids, attention_mask=mask)
        ours = model(input_ids=ids, attention_mask=model_attention_mask(mask, "sdpa")).logits
        torch.testing.assert_close(ours, reference)
        full = ids[:1]
        unmasked = model(input_ids=full, attention_mask=model_attention_mask(None, "sdpa")).logits
        torch.testing.assert_close(unmasked, reference[:1])
    assert model_attention_mask(mask, "eager") is mask  # other implementations: the 2D mask as before
