#!/usr/bin/env python3
"""Records HF's pixel_values for the pictures whose conversion to RGB is not a plain decode,
with the tiny model's processor (tests/data/tiny-llava/preprocessor_config.json: shortest edge
28, centre crop 28, CLIP's mean and std), for tests/llava.rs:

- alpha.png: RGBA, 8-bit, alpha from 0 to 255. transformers' convert_to_rgb composites it onto
  white (PIL's alpha_composite), it does not drop the alpha channel.
- grey16.png: 16-bit grey, values from 0 to 65535. PIL opens it as mode I;16, whose conversion
  to RGB clips at 255 (not a scaling to 8 bits): most of it is white.
- thin.png: RGB, 3 x 400: resized to 28 x 3733 and centre-cropped, so the crop's window is a
  small part of a long resize.
- tall.png: RGB, 37 x 120, resized to 28 x 90: the height shrinks by more than twice what the
  width does, so Pillow 13 runs its vertical pass first (each pass rounds to 8 bits: the order
  shows in the values).

Each picture also through the original LLaVA repository's preprocessing (`--pad-square`, what
the VAR paper's numbers used; llava/mm_utils.py process_images with image_aspect_ratio "pad"):
opened with PIL's convert("RGB") (alpha dropped, not composited), expand2square with
tuple(int(x * 255) for x in image_processor.image_mean) as the fill, then the same processor:
`<name>_pad_square`.

    python3 tools/make_llava_pictures.py tests/data/llava-pictures

Needs transformers and pillow (tested with transformers 5.24.0, pillow 13.0.0; without
torchvision transformers' CLIP processor is its PIL backend, CLIPImageProcessorPil, used here
by name). Deterministic: pictures drawn from formulas. The output is committed; tests never run
this script.
"""

import os
import sys

import numpy as np
import PIL
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tiny-llava")


def pictures():
    """name -> PIL picture, each small, none square."""
    h, w = 33, 41
    y, x = np.mgrid[0:h, 0:w]
    rgba = np.stack(
        [
            (127 + 120 * np.sin(x / 4.0)).astype(np.uint8),
            (127 + 120 * np.cos(y / 3.0)).astype(np.uint8),
            ((x * y * 7) % 256).astype(np.uint8),
            # Every alpha from transparent to opaque, in stripes that survive the resize.
            ((x * 255) // (w - 1)).astype(np.uint8),
        ],
        axis=-1,
    )
    h, w = 37, 30
    y, x = np.mgrid[0:h, 0:w]
    # Half the values under 256 (kept), half over (white), some exactly at the edge.
    grey = np.where((x + y) % 2 == 0, (x * 9 + y) % 256, 255 + (x * y * 131) % 65281).astype(np.uint16)
    h, w = 400, 3
    y, x = np.mgrid[0:h, 0:w]
    thin = np.stack(
        [
            (127 + 120 * np.sin(y / 2.0 + x)).astype(np.uint8),
            ((y * 3) % 256).astype(np.uint8),
            (x * 100).astype(np.uint8),
        ],
        axis=-1,
    )
    h, w = 120, 37
    y, x = np.mgrid[0:h, 0:w]
    tall = np.stack(
        [
            ((x * 37 + y * 11) % 256).astype(np.uint8),
            (127 + 120 * np.sin(y / 1.5)).astype(np.uint8),
            ((x * y * 5) % 256).astype(np.uint8),
        ],
        axis=-1,
    )
    return {
        "alpha": Image.fromarray(rgba, "RGBA"),
        "grey16": Image.fromarray(grey),
        "thin": Image.fromarray(thin, "RGB"),
        "tall": Image.fromarray(tall, "RGB"),
    }


def expand2square(pil_img, background_color):
    """The original LLaVA repository's (llava/mm_utils.py), as it is."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


def main(out):
    os.makedirs(out, exist_ok=True)
    proc = CLIPImageProcessorPil.from_pretrained(TINY)
    tensors = {}
    for name, img in pictures().items():
        path = os.path.join(out, f"{name}.png")
        img.save(path)
        # As a user's picture reaches HF: opened from the file.
        opened = Image.open(path)
        print(f"{name}.png: mode {opened.mode}, {opened.size[0]}x{opened.size[1]}", file=sys.stderr)
        tensors[name] = proc(images=opened, return_tensors="np")["pixel_values"][0].astype(np.float32)
        # LLaVA's eval scripts: Image.open(...).convert("RGB"), then process_images' "pad".
        fill = tuple(int(x * 255) for x in proc.image_mean)
        squared = expand2square(Image.open(path).convert("RGB"), fill)
        tensors[f"{name}_pad_square"] = proc(images=squared, return_tensors="np")["pixel_values"][0].astype(np.float32)
    save_file(
        tensors,
        os.path.join(out, "expected.safetensors"),
        metadata={"transformers": transformers.__version__, "pillow": PIL.__version__},
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/llava-pictures")
