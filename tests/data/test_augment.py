import torch

from fmlab.data.augment import normalize, normalizer, random_crop, random_flip


def images(b=64):
    return torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8)


def test_crop_without_padding_is_identity_and_with_padding_shifts():
    x = images()
    assert torch.equal(random_crop(x, 0), x)
    torch.manual_seed(0)
    y = random_crop(x, 4)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert not torch.equal(y, x)
    # Each crop is a shifted window of the zero-padded image: find its offset and check it.
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(8):
        matches = [
            (r, c)
            for r in range(9)
            for c in range(9)
            if torch.equal(padded[i, :, r : r + 32, c : c + 32], y[i])
        ]
        assert matches, f"image {i} is not a crop of its padded original"


def test_flip_mirrors_about_half_the_images():
    torch.manual_seed(0)
    x = images(1000)
    y = random_flip(x)
    flipped = (y == x.flip(3)).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert (flipped | kept).all()
    assert 400 < flipped.sum() < 600


def test_normalize_matches_the_textbook_formula():
    x = images()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    got = normalize(x, *normalizer(mean, std, x.device))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
