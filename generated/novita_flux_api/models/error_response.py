from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.error_response_metadata import ErrorResponseMetadata


T = TypeVar("T", bound="ErrorResponse")


@_attrs_define
class ErrorResponse:
    """The error envelope every non-2xx response carries.

    Attributes:
        code (int): The HTTP status code, repeated.
        reason (str): Machine-readable cause in UPPER_SNAKE_CASE. Clients should map errors by reason first and status
            second: authentication failures arrive as 400, 401 or 403, and Novita's tables give BILLING_BALANCE_NOT_ENOUGH
            as 400 in one place and 403 in another. The known values, their statuses, what kind of failure each is and
            whether the call can have been billed are listed in `x-known-reasons`.
        message (str): Human-readable explanation; logged bodies show it with trailing spaces at times.
        metadata (ErrorResponseMetadata | Unset): Extra details; may be empty.
    """

    code: int
    reason: str
    message: str
    metadata: ErrorResponseMetadata | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        code = self.code

        reason = self.reason

        message = self.message

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "code": code,
                "reason": reason,
                "message": message,
            }
        )
        if metadata is not UNSET:
            field_dict["metadata"] = metadata

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.error_response_metadata import ErrorResponseMetadata

        d = dict(src_dict)
        code = d.pop("code")

        reason = d.pop("reason")

        message = d.pop("message")

        _metadata = d.pop("metadata", UNSET)
        metadata: ErrorResponseMetadata | Unset
        if isinstance(_metadata, Unset):
            metadata = UNSET
        else:
            metadata = ErrorResponseMetadata.from_dict(_metadata)

        error_response = cls(
            code=code,
            reason=reason,
            message=message,
            metadata=metadata,
        )

        error_response.additional_properties = d
        return error_response

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
