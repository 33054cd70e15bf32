"""The variables a template sees for one resident, built the same way for previews and sends."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..fields import DataDictionary
from ..masking import mask_email, mask_id_number, mask_name, mask_phone
from ..rules.amounts import fen_to_yuan
from ..rules.model import Rule
from ..storage.fieldcols import column_name
from .templates import display_value, missing

_MASKS = {"name": mask_name, "phone": mask_phone, "id_number": mask_id_number, "email": mask_email}


class ResidentContext:
    """Every resident field by name (built-in and declared), read from a residents row; a value
    the resident lacks is a MissingValue. The name -> column list is worked out once, not per message."""

    def __init__(self, dictionary: DataDictionary, *, masked: bool = False) -> None:
        self.pairs = [(name, column_name(spec)) for name, spec in dictionary.all_fields().items()]
        self.masks = _MASKS if masked else {}

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.pairs]

    def field(self, name: str) -> Callable[[Any], Any]:
        """One field's value from a row, exactly as __call__ gives it."""
        attr, mask = dict(self.pairs)[name], self.masks.get(name)

        def value(row: Any) -> Any:
            v = display_value(getattr(row, attr, None))
            if mask is not None and v:
                v = mask(v)
            return missing(f"resident.{name}") if v is None or v == "" else v

        return value

    def __call__(self, row: Any) -> dict[str, Any]:
        out = {name: display_value(getattr(row, attr, None)) for name, attr in self.pairs}
        for name, mask in self.masks.items():
            if out.get(name):
                out[name] = mask(out[name])
        for name, value in out.items():
            if value is None or value == "":
                out[name] = missing(f"resident.{name}")
        return out


def params_context(params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A run's recorded parameter values ({name: {value, unit, reference}}) as template numbers."""
    return {name: display_value(Decimal(str(p["value"]))) for name, p in params.items()}


def amount_value(rule: Rule, fen: int | None) -> Any:
    """`{{ amount }}`: the notice's amount in yuan (a Decimal); missing when the rule has none
    or it could not be computed, so a template printing it fails rather than saying 0."""
    value = fen_to_yuan(fen) if rule.amount is not None else None
    return missing("amount") if value is None else value
