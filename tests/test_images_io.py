"""Contact sheets: the digits enlarged as before, SD-size images reduced instead of enlarged 4x."""
import numpy as np
import torch
from PIL import Image

from unerase.images_io import grid_tile, save_grid


def test_digit_sheets_keep_their_4x_nearest_enlargement(tmp_path):
    images = torch.randint(0, 256, (12, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_grid(tmp_path / "g.png", images)
    sheet = np.asarray(Image.open(tmp_path / "g.png"))
    assert sheet.shape == (2 * 64, 10 * 64)
    assert (sheet[64:128, 64:128] == images[11, 0].numpy().repeat(4, 0).repeat(4, 1)).all()  # image 11: row 1, column 1


def test_sd_size_sheets_are_reduced_image_by_image(tmp_path):
    """A 100-image cell of 512-px RGB images was a 20,480-px square sheet (x4 meant for 16-px digits); now 128-px tiles,
    each the box average of its own image (a black image beside a white one stays black to its edge)."""
    assert grid_tile(512, 512) == (128, 128) and grid_tile(16, 16) == (64, 64) and grid_tile(96, 96) == (96, 96)
    images = torch.zeros(20, 3, 512, 512, dtype=torch.uint8)
    images[1::2] = 255
    images[2, 0] = torch.arange(512).div(4, rounding_mode="floor").to(torch.uint8)  # a red ramp along x
    save_grid(tmp_path / "g.png", images)
    sheet = np.asarray(Image.open(tmp_path / "g.png"))
    assert sheet.shape == (2 * 128, 10 * 128, 3)
    assert (sheet[:, :128] == 0).all() and (sheet[:128, 128:256] == 255).all() and (sheet[:128, 384:512] == 255).all()
    ramp = sheet[:128, 256:384, 0]
    assert (ramp == np.arange(128)).all()                      # column j: the box of columns 4j .. 4j+3
