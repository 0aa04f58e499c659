from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.image import Image
    from ..models.task import Task


T = TypeVar("T", bound="Flux1SchnellResponse")


@_attrs_define
class Flux1SchnellResponse:
    """What a 200 carries. Read tolerantly: fields beyond these may appear and must be kept, not dropped or refused.
    Novita's sibling endpoints (the task-result API and its webhooks, which share this backend) add `extra` (seeds and
    timings, large integers as strings), `videos: []` and `audios: []` at the top level (OBSERVED.md in the project's
    api-evidence, rows 2-4).

        Attributes:
            images (list[Image]): The generated images, one per requested image: exactly the request's `image_num` of them,
                which a schema cannot say (the bounds here are image_num's range). A 200 with another number of images breaks
                the contract even within these bounds: it was paid for all the same, so a client keeps and saves what it holds
                and reports the difference (novita-flux: a warning and `Generation.images_paid_for`; the CLI exits 1).
            task (Task): The task behind the call. The sibling endpoints add `task_type`, `status`, `reason`, `eta` and
                `progress_percent`; a client keeps them.
    """

    images: list[Image]
    task: Task
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        images = []
        for images_item_data in self.images:
            images_item = images_item_data.to_dict()
            images.append(images_item)

        task = self.task.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "images": images,
                "task": task,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.image import Image
        from ..models.task import Task

        d = dict(src_dict)
        images = []
        _images = d.pop("images")
        for images_item_data in _images:
            images_item = Image.from_dict(images_item_data)

            images.append(images_item)

        task = Task.from_dict(d.pop("task"))

        flux_1_schnell_response = cls(
            images=images,
            task=task,
        )

        flux_1_schnell_response.additional_properties = d
        return flux_1_schnell_response

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
