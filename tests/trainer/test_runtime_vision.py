"""Image trials without per-step waste: augmentation drawn on the device, the dataset resident there."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from trainer.vision_task import (
    CROP_PADDING,
    ResidentImages,
    augmentation_seed,
    random_crop_flip,
    step_generator,
)


def images(n: int) -> torch.Tensor:
    """Distinct uint8 images (every pixel tells its image, channel, row and column apart)."""
    return torch.randint(1, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def windows(image: torch.Tensor) -> list[tuple[int, int, bool, torch.Tensor]]:
    """Every crop of the zero-padded image, plain and flipped, with its (row, col, flipped)."""
    padded = nnf.pad(image, (CROP_PADDING,) * 4)
    h, w = image.shape[-2:]
    out = []
    for r in range(2 * CROP_PADDING + 1):
        for c in range(2 * CROP_PADDING + 1):
            crop = padded[:, r : r + h, c : c + w]
            out += [(r, c, False, crop), (r, c, True, crop.flip(-1))]
    return out


def seeded(step: int) -> torch.Generator:
    generator = step_generator(torch.device("cpu"))
    return generator.manual_seed(augmentation_seed(seed=42, epoch=1, step=step))


def test_each_image_is_a_crop_of_its_padded_self_flipped_about_half_the_time() -> None:
    batch = images(400)
    out = random_crop_flip(batch, seeded(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    flipped, offsets = 0, set()
    for image, result in zip(batch, out, strict=True):
        # which crop it is, found by comparing with every possible one (an independent reference)
        (match,) = [(r, c, f) for r, c, f, crop in windows(image) if torch.equal(crop, result)][:1]
        flipped += match[2]
        offsets.add(match[:2])
    assert 160 <= flipped <= 240  # Bernoulli(0.5) over 400 images: 200 +- 2 standard deviations
    assert len(offsets) > 40  # offsets spread over the 9 x 9 possible ones


def test_augmentation_is_a_function_of_seed_epoch_and_step() -> None:
    batch = images(64)
    assert torch.equal(random_crop_flip(batch, seeded(3)), random_crop_flip(batch, seeded(3)))
    assert not torch.equal(random_crop_flip(batch, seeded(3)), random_crop_flip(batch, seeded(4)))
    # a rank's slice gets the crops the single process gives those images
    whole = random_crop_flip(batch, seeded(5))
    part = random_crop_flip(batch[16:40], seeded(5), within=(16, 64))
    assert torch.equal(part, whole[16:40])


def test_the_draws_happen_on_the_generators_device(monkeypatch) -> None:
    """Offsets and flips are drawn where the generator lives (a CUDA generator: on the GPU, no copy)."""
    batch, generator, seen = images(4), seeded(0), []
    real_randint, real_rand = torch.randint, torch.rand

    def randint(*args, **kwargs):
        seen.append(kwargs.get("device"))
        return real_randint(*args, **kwargs)

    def rand(*args, **kwargs):
        seen.append(kwargs.get("device"))
        return real_rand(*args, **kwargs)

    monkeypatch.setattr(torch, "randint", randint)
    monkeypatch.setattr(torch, "rand", rand)
    random_crop_flip(batch, generator)
    assert seen == [torch.device("cpu"), torch.device("cpu")]


def test_resident_images_serve_the_requested_batches_in_order() -> None:
    data = images(20)
    labels = list(range(20))
    resident = ResidentImages(data, labels, torch.device("cpu"))
    batches = list(resident.batches([[3, 1], [7], [19, 0, 5]]))
    assert [b[1].tolist() for b in batches] == [[3, 1], [7], [19, 0, 5]]
    assert torch.equal(batches[2][0], data[[19, 0, 5]])
    assert len(resident) == 20
