"""Point to an object in an image and print the pixel coordinates.

    python examples/point_on_image.py [IMAGE] [QUERY] [--model M]

With no arguments it uses the bundled sample image and the embedded default model (offline). With a real
checkpoint (``--model allenai/Molmo2-8B`` or a local folder) the points land on the object.
"""

from __future__ import annotations

import argparse

import molmo_agent as ma
from molmo_agent.cli import SAMPLE_IMAGE


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image", nargs="?", default=str(SAMPLE_IMAGE))
    parser.add_argument("query", nargs="?", default="the red mug")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    model = ma.load_model(args.model)
    result = model.point_detailed(args.image, args.query)
    print(f"{model.info.model_id} answered: {result.text!r}")
    for point in result.points:
        print(f"  ({point.x:.1f}, {point.y:.1f}) px  label={point.label!r}")
    if not result.points:
        print(f"  no points ({result.reason})")

    # Text produced elsewhere (vLLM, the Hub recipe) goes through the same parser:
    width, height = ma.load_image(args.image).size
    text = '<points coords="1 1 500 250">red mug</points>'
    print("parsed from text:", ma.parse_points(text, image_sizes=[(width, height)]))


if __name__ == "__main__":
    main()
