from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="BalanceDetail")


@_attrs_define
class BalanceDetail:
    """The account's balance: every amount a BalanceAmount (units of 1/10000 USD, `"10000"` is $1.00). Read tolerantly:
    fields beyond these may appear and must be kept, not dropped or refused. `pendingCharges` is optional: the older
    copy of Novita's page does not have it, the newer one says it "currently defaults to 0".

        Attributes:
            available_balance (int | str): An amount of money as a whole number of units of 1/10000 USD (`x-unit`): "10000"
                is $1.00. Novita's page shows every amount as a string of digits; a number is accepted too and read as the same
                amount, as the TTL's two forms are (Novita's own SDKs disagree on such types). A leading minus is accepted:
                nothing has shown one, but an account that owes more than its credit could, and refusing it would hide what the
                account owes. The unit is coarser than the cheapest image (about 0.03 of a unit), so an amount says what the
                account holds to the nearest unit at best.
            cash_balance (int | str): An amount of money as a whole number of units of 1/10000 USD (`x-unit`): "10000" is
                $1.00. Novita's page shows every amount as a string of digits; a number is accepted too and read as the same
                amount, as the TTL's two forms are (Novita's own SDKs disagree on such types). A leading minus is accepted:
                nothing has shown one, but an account that owes more than its credit could, and refusing it would hide what the
                account owes. The unit is coarser than the cheapest image (about 0.03 of a unit), so an amount says what the
                account holds to the nearest unit at best.
            credit_limit (int | str): An amount of money as a whole number of units of 1/10000 USD (`x-unit`): "10000" is
                $1.00. Novita's page shows every amount as a string of digits; a number is accepted too and read as the same
                amount, as the TTL's two forms are (Novita's own SDKs disagree on such types). A leading minus is accepted:
                nothing has shown one, but an account that owes more than its credit could, and refusing it would hide what the
                account owes. The unit is coarser than the cheapest image (about 0.03 of a unit), so an amount says what the
                account holds to the nearest unit at best.
            outstanding_invoices (int | str): An amount of money as a whole number of units of 1/10000 USD (`x-unit`):
                "10000" is $1.00. Novita's page shows every amount as a string of digits; a number is accepted too and read as
                the same amount, as the TTL's two forms are (Novita's own SDKs disagree on such types). A leading minus is
                accepted: nothing has shown one, but an account that owes more than its credit could, and refusing it would hide
                what the account owes. The unit is coarser than the cheapest image (about 0.03 of a unit), so an amount says
                what the account holds to the nearest unit at best.
            pending_charges (int | str | Unset): An amount of money as a whole number of units of 1/10000 USD (`x-unit`):
                "10000" is $1.00. Novita's page shows every amount as a string of digits; a number is accepted too and read as
                the same amount, as the TTL's two forms are (Novita's own SDKs disagree on such types). A leading minus is
                accepted: nothing has shown one, but an account that owes more than its credit could, and refusing it would hide
                what the account owes. The unit is coarser than the cheapest image (about 0.03 of a unit), so an amount says
                what the account holds to the nearest unit at best.
    """

    available_balance: int | str
    cash_balance: int | str
    credit_limit: int | str
    outstanding_invoices: int | str
    pending_charges: int | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        available_balance: int | str
        available_balance = self.available_balance

        cash_balance: int | str
        cash_balance = self.cash_balance

        credit_limit: int | str
        credit_limit = self.credit_limit

        outstanding_invoices: int | str
        outstanding_invoices = self.outstanding_invoices

        pending_charges: int | str | Unset
        if isinstance(self.pending_charges, Unset):
            pending_charges = UNSET
        else:
            pending_charges = self.pending_charges

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "availableBalance": available_balance,
                "cashBalance": cash_balance,
                "creditLimit": credit_limit,
                "outstandingInvoices": outstanding_invoices,
            }
        )
        if pending_charges is not UNSET:
            field_dict["pendingCharges"] = pending_charges

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_available_balance(data: object) -> int | str:
            return cast(int | str, data)

        available_balance = _parse_available_balance(d.pop("availableBalance"))

        def _parse_cash_balance(data: object) -> int | str:
            return cast(int | str, data)

        cash_balance = _parse_cash_balance(d.pop("cashBalance"))

        def _parse_credit_limit(data: object) -> int | str:
            return cast(int | str, data)

        credit_limit = _parse_credit_limit(d.pop("creditLimit"))

        def _parse_outstanding_invoices(data: object) -> int | str:
            return cast(int | str, data)

        outstanding_invoices = _parse_outstanding_invoices(d.pop("outstandingInvoices"))

        def _parse_pending_charges(data: object) -> int | str | Unset:
            if isinstance(data, Unset):
                return data
            return cast(int | str | Unset, data)

        pending_charges = _parse_pending_charges(d.pop("pendingCharges", UNSET))

        balance_detail = cls(
            available_balance=available_balance,
            cash_balance=cash_balance,
            credit_limit=credit_limit,
            outstanding_invoices=outstanding_invoices,
            pending_charges=pending_charges,
        )

        balance_detail.additional_properties = d
        return balance_detail

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
