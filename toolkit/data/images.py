"""Opening a photo: one function every command uses, so a photo ftk cannot take as it is gets refused, with the
reason, before any of it is decoded.

Two kinds are refused (:class:`ImageRefused`, an InputError: exit 2 where one photo is the input, a reject with
its reason where a folder is):

- more pixels than the cap (:func:`toolkit.constants.max_image_pixels`, $FTK_MAX_IMAGE_PIXELS), read from the
  file's header: a 13000 x 13000 PNG is 169 Mpx, under Pillow's own bomb limit, and took 6 GB in MTCNN;
- pixel formats that ``convert("RGB")`` would clip rather than convert: 16-bit grayscale (``I;16``), 32-bit
  integer (``I``) and float (``F``) images come out nearly all white, and MTCNN then finds "no face".
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator

from PIL import Image

from toolkit.constants import max_image_pixels
from toolkit.errors import InputError

# Pillow modes that RGB conversion clips to 0..255 (values above 255 turn white); no rescaling is guessed.
UNSUPPORTED_MODES = {
    "I;16": "16-bit grayscale", "I;16L": "16-bit grayscale", "I;16B": "16-bit grayscale",
    "I;16N": "16-bit grayscale", "I": "32-bit integer (or 16-bit grayscale)", "F": "32-bit float",
}


class ImageRefused(InputError):
    """A photo ftk will not decode: too many pixels, or a pixel format it cannot convert faithfully."""


def check_image(image: Image.Image) -> None:
    """Refuse ``image`` (opened, not yet decoded) when it is over the pixel cap or in a clipped format. The message
    leaves the path out: callers list refused photos as (path, why)."""
    width, height = image.size
    cap = max_image_pixels()
    if width * height > cap:
        raise ImageRefused(f"{width} x {height} pixels ({width * height / 1e6:.1f} Mpx) is over ftk's cap of "
                           f"{cap / 1e6:g} Mpx", hint="downscale the photo, or raise FTK_MAX_IMAGE_PIXELS")
    if image.mode in UNSUPPORTED_MODES:
        kind = f"{UNSUPPORTED_MODES[image.mode]} {image.format or 'image'}"
        raise ImageRefused(f"format not supported: {kind} (mode {image.mode}); ftk reads 8-bit photos",
                           hint="save it as an 8-bit JPEG or PNG")


@contextlib.contextmanager
def open_checked(path: str | Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` after :func:`check_image` (only the header has been read when it refuses)."""
    with warnings.catch_warnings():
        # Pillow's own bomb warning (89 Mpx) would print a second stderr line; the cap here is lower and says more.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError:  # over twice Pillow's limit: refused by Pillow before ours could
            raise ImageRefused("too many pixels (over Pillow's decompression-bomb limit)",
                               hint="downscale the photo") from None
    with image:
        check_image(image)
        yield image


def load_rgb(path: str | Path) -> Image.Image:
    """The photo at ``path``, checked and decoded as RGB."""
    with open_checked(path) as image:
        return image.convert("RGB")
