from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="Image")


@_attrs_define
class Image:
    """One generated image. Other fields may appear beside these: the sibling endpoints send `nsfw_detection_result` (null,
    or `{valid, confidence}`); a client keeps them.

        Attributes:
            image_url (str): Pre-signed link to the image on a storage host (S3 or Cloudflare R2); needs no API key. Storage
                hosts serve these links as `application/octet-stream` as often as `image/*`, so the image's type is read from
                its bytes, not from the Content-Type.
            image_url_ttl (int | str): Seconds for which `image_url` stays valid after the response. This endpoint's docs
                page shows an integer (604800), while every logged body of Novita's sibling endpoints carries a string of digits
                ("3600", "172800", "0"), and Novita's own SDKs disagree on the type: both forms are accepted and read as the
                same number. 0 means the API states no expiry (seen on CDN links that do not expire), never "already expired".
            image_type (str): Encoding of a generated image, as the response names it: one of the request's image types
                (png, webp, jpeg), compared without regard to case, with `jpg` read as `jpeg`. Nothing has shown these variants
                on this endpoint; they are accepted because the image's real type is checked from its bytes anyway, and refusing
                a spelling would lose an image that was already paid for. A name outside these (`gif`) still breaks the
                contract.
    """

    image_url: str
    image_url_ttl: int | str
    image_type: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        image_url = self.image_url

        image_url_ttl: int | str
        image_url_ttl = self.image_url_ttl

        image_type = self.image_type

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "image_url": image_url,
                "image_url_ttl": image_url_ttl,
                "image_type": image_type,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        image_url = d.pop("image_url")

        def _parse_image_url_ttl(data: object) -> int | str:
            return cast(int | str, data)

        image_url_ttl = _parse_image_url_ttl(d.pop("image_url_ttl"))

        image_type = d.pop("image_type")

        image = cls(
            image_url=image_url,
            image_url_ttl=image_url_ttl,
            image_type=image_type,
        )

        image.additional_properties = d
        return image

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
