from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.image_type import ImageType

T = TypeVar("T", bound="Image")


@_attrs_define
class Image:
    """
    Attributes:
        image_url (str): Pre-signed link to the image on a storage host; needs no API key.
        image_url_ttl (int): Seconds for which `image_url` stays valid after the response.
        image_type (ImageType): Encoding of a generated image.
    """

    image_url: str
    image_url_ttl: int
    image_type: ImageType
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        image_url = self.image_url

        image_url_ttl = self.image_url_ttl

        image_type = self.image_type.value

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

        image_url_ttl = d.pop("image_url_ttl")

        image_type = ImageType(d.pop("image_type"))

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
