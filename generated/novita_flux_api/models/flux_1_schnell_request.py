from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..models.image_type import ImageType
from ..types import UNSET, Unset

T = TypeVar("T", bound="Flux1SchnellRequest")


@_attrs_define
class Flux1SchnellRequest:
    """
    Attributes:
        prompt (str): Text input required to guide the image generation, divided by `,`. Range [1, 1024] characters.
            Unicode text, sent as UTF-8: a lone surrogate (U+D800 to U+DFFF) is no character and is refused, as I-JSON (RFC
            7493) requires of every string.
        seed (int): Seed of the noise the generation starts from; the same seed and parameters give the same image.
            Range [0, 4294967295].
        steps (int): The number of denoising steps. More steps usually give higher quality images but take longer to
            generate. Range [1, 100].
        width (int): Width of the image in pixels. Range [64, 2048].
        height (int): Height of the image in pixels. Range [64, 2048].
        image_num (int): Number of images generated in one single generation. Range [1, 8].
        response_image_type (ImageType | Unset): Encoding of a generated image. Default: ImageType.PNG.
    """

    prompt: str
    seed: int
    steps: int
    width: int
    height: int
    image_num: int
    response_image_type: ImageType | Unset = ImageType.PNG

    def to_dict(self) -> dict[str, Any]:
        prompt = self.prompt

        seed = self.seed

        steps = self.steps

        width = self.width

        height = self.height

        image_num = self.image_num

        response_image_type: str | Unset = UNSET
        if not isinstance(self.response_image_type, Unset):
            response_image_type = self.response_image_type.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "prompt": prompt,
                "seed": seed,
                "steps": steps,
                "width": width,
                "height": height,
                "image_num": image_num,
            }
        )
        if response_image_type is not UNSET:
            field_dict["response_image_type"] = response_image_type

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        prompt = d.pop("prompt")

        seed = d.pop("seed")

        steps = d.pop("steps")

        width = d.pop("width")

        height = d.pop("height")

        image_num = d.pop("image_num")

        _response_image_type = d.pop("response_image_type", UNSET)
        response_image_type: ImageType | Unset
        if isinstance(_response_image_type, Unset):
            response_image_type = UNSET
        else:
            response_image_type = ImageType(_response_image_type)

        flux_1_schnell_request = cls(
            prompt=prompt,
            seed=seed,
            steps=steps,
            width=width,
            height=height,
            image_num=image_num,
            response_image_type=response_image_type,
        )

        return flux_1_schnell_request
