import pytest
import torch

from mmxai.visualization import colorize, overlay


def test_high_values_are_red_and_low_values_blue_in_bgr():
    colors = colorize(torch.tensor([[[0.0, 1.0]]]))  # (1, 1, 2) -> (1, 1, 2, 3)
    low, high = colors[0, 0, 0].tolist(), colors[0, 0, 1].tolist()
    assert high[2] > 100 and high[0] == 0  # red channel is last in BGR
    assert low[0] > 100 and low[2] == 0


def test_overlay_blends_in_the_same_channel_order():
    image = torch.zeros(1, 2, 3, dtype=torch.uint8)
    image[..., 0] = 200  # a blue image in BGR
    colored = colorize(torch.ones(1, 1, 2))  # red in BGR
    blended = overlay(image, colored, weight=0.25)[0, 0, 0].tolist()
    expected = [round(i * 0.75 + c * 0.25) for i, c in zip([200, 0, 0], colored[0, 0, 0].tolist())]
    assert blended == expected
    assert blended[2] > 0 and blended[0] >= 150 and blended[1] == 0


def test_overlay_weight_is_checked():
    with pytest.raises(ValueError, match='overlay weight'):
        overlay(torch.zeros(1, 1, 3, dtype=torch.uint8), colorize(torch.zeros(1, 1, 1)), 1.5)


def test_huge_maps_are_coloured_in_bands_with_the_same_result(monkeypatch):
    from mmxai.visualization import colormap
    maps = torch.rand(2, 37, 23)
    image = torch.randint(0, 256, (37, 23, 3), dtype=torch.uint8)
    whole = colormap.colorize(maps), colormap.overlay(image, colormap.colorize(maps), 0.3)
    monkeypatch.setattr(colormap, 'BAND_PIXELS', 23 * 5)  # 5 rows per band, last one short
    banded = colormap.colorize(maps), colormap.overlay(image, colormap.colorize(maps), 0.3)
    assert torch.equal(whole[0], banded[0]) and torch.equal(whole[1], banded[1])
