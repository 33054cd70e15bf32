"""The variables a template sees for one resident, built the same way for previews and sends."""
from __future__ import annotations

from typing import Any

from ..fields import DataDictionary
from ..masking import mask_email, mask_id_number, mask_name, mask_phone
from ..storage.fieldcols import column_name
from .templates import display_value

_MASKS = {"name": mask_name, "phone": mask_phone, "id_number": mask_id_number, "email": mask_email}


def resident_context(dictionary: DataDictionary, row: Any, prefix: str = "", *, masked: bool = False) -> dict[str, Any]:
    """Every resident field by name (built-in and declared), from a row whose columns are `prefix + column`."""
    out: dict[str, Any] = {}
    for name, spec in dictionary.all_fields().items():
        value = display_value(getattr(row, prefix + column_name(spec), None))
        if masked and name in _MASKS and value:
            value = _MASKS[name](value)
        out[name] = value
    return out
