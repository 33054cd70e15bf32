"""The review queue as an XLSX a village cadre fills in (`rules review RULE -o sheet.xlsx`).

One row per undecided resident: 居民编号 (what the import matches on), the masked name and the
village to recognise them, then one column per field the queue lacks, headed by the field's
label so the ordinary import reads it back (residents/fillin.py makes that import complete,
never replace). Only the cells a resident lacks are open to typing; the rest of the sheet is
protected. Each column says its type and accepted values (a comment on the header and Excel's
input prompt and validation), and a 填写说明 sheet explains the whole in Chinese. Rows are
streamed (openpyxl write-only), every text cell goes through cellsafe.
"""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from ..app import App
from ..cellsafe import safe_cell
from ..fields import FieldSpec, FieldType
from ..residents.fillin import NAME_HEADER, TOWNSHIP_HEADER, VILLAGE_HEADER
from .model import Rule
from .reviewqueue import fillable, waiting

SHEET = "待补录"
GUIDE = "填写说明"
ID_HEADER = "居民编号"
FIXED = (ID_HEADER, NAME_HEADER, TOWNSHIP_HEADER, VILLAGE_HEADER)
TO_FILL, NOT_NEEDED, HEAD = "FFF2CC", "D9D9D9", "DDEBF7"  # light yellow, grey, light blue
MAX_ROW = 1_048_576  # Excel's last row: validations cover the whole column


@dataclass(frozen=True)
class SheetWritten:
    rule: str
    on: date
    residents: int
    columns: list[str]  # the headers of the columns to fill

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "on": self.on.isoformat(),
            "residents": self.residents,
            "columns": self.columns,
        }


def describe(spec: FieldSpec) -> str:
    """What a column takes, in Chinese: its type, unit and accepted values."""
    kind = {
        FieldType.TEXT: "文字",
        FieldType.INT: "整数",
        FieldType.DECIMAL: "数字",
        FieldType.DATE: "日期，如 2026-03-02" if spec.precision == "day" else "年月，如 2026-03",
        FieldType.BOOL: "是 或 否",
        FieldType.ENUM: "从下列值中选填：" + "、".join(choices(spec)),
    }[spec.type]
    return kind + (f"；单位：{spec.unit}（只填数字）" if spec.unit else "")


def choices(spec: FieldSpec) -> list[str]:
    """An enum's values as staff write them: each value's first spelling (农村, not rural)."""
    return [s[0] if s else c for c, s in spec.values.items()]


def _validation(spec: FieldSpec, column: str) -> Any:
    from openpyxl.worksheet.datavalidation import DataValidation

    kw: dict[str, Any] = {}
    if spec.type is FieldType.ENUM and len(",".join(choices(spec))) < 250:  # Excel's list limit
        kw = {"type": "list", "formula1": '"' + ",".join(choices(spec)) + '"'}
    elif spec.type is FieldType.BOOL:
        kw = {"type": "list", "formula1": '"是,否"'}
    elif spec.type is FieldType.INT:
        kw = {"type": "whole", "operator": "greaterThanOrEqual", "formula1": "-999999999"}
    elif spec.type is FieldType.DECIMAL:
        kw = {"type": "decimal", "operator": "greaterThanOrEqual", "formula1": "-999999999"}
    dv = DataValidation(
        allow_blank=True,
        showInputMessage=True,
        showErrorMessage=bool(kw),
        promptTitle=spec.label[:32],
        prompt=describe(spec)[:255],
        errorTitle="填写有误",
        error=("请按提示填写：" + describe(spec))[:255],
        **kw,
    )
    dv.add(f"{column}2:{column}{MAX_ROW}")
    return dv


def write_sheet(app: App, rule: Rule, on: date, target: Path | IO[bytes]) -> SheetWritten:
    """Write the fill-in sheet of `rule`'s queue on `on` to a path (replaced only when complete)
    or a binary stream."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill, Protection
    from openpyxl.utils import get_column_letter

    specs = list(fillable(rule, app.dictionary.all_fields()).values())
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(SHEET)
    for i, width in enumerate((14, 16, 12, 12, *(max(12, 2 * len(s.label) + 4) for s in specs)), start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "E2"
    fills = {
        k: PatternFill("solid", fgColor=c) for k, c in (("fill", TO_FILL), ("no", NOT_NEEDED), ("head", HEAD))
    }
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")

    def text(value: Any, *, fill: str | None = None, editable: bool = False) -> WriteOnlyCell:
        cell = WriteOnlyCell(ws, value=safe_cell(value))
        if isinstance(cell.value, str):
            cell.data_type = "s"  # never a formula
        if fill:
            cell.fill = fills[fill]
        if editable:
            cell.protection = Protection(locked=False)
        return cell

    # A styled cell costs openpyxl a lookup of each style object; the body's two kinds of empty
    # cell copy the style array of one made once instead (a few times faster on a large queue).
    open_cell, closed_cell = text(None, fill="fill", editable=True), text(None, fill="no")

    def empty(like: WriteOnlyCell) -> WriteOnlyCell:
        cell = WriteOnlyCell(ws)
        cell._style = copy(like._style)
        return cell

    header = []
    for title in FIXED:
        cell = text(title, fill="head")
        cell.font = bold
        header.append(cell)
    for spec in specs:
        cell = text(spec.label, fill="head")
        cell.font = bold
        cell.comment = Comment(f"{spec.label}：{describe(spec)}\n留空表示仍不清楚。", "notifier", 120, 260)
        header.append(cell)
    ws.append(header)
    count = 0
    for w in waiting(app, rule, on):
        count += 1
        lacking = set(w.missing)
        ws.append(
            [
                text(w.resident_id),
                text(w.name),
                text(w.township),
                text(w.village),
                *(empty(open_cell if s.name in lacking else closed_cell) for s in specs),
            ]
        )
    for i, spec in enumerate(specs, start=len(FIXED) + 1):
        ws.data_validations.append(_validation(spec, get_column_letter(i)))
    # Protected without a password: it guards against slips, not against the cadre; sorting and
    # resizing stay allowed.
    ws.protection.sheet = True
    ws.protection.formatColumns = ws.protection.formatRows = ws.protection.sort = False
    ws.protection.autoFilter = False
    guide = wb.create_sheet(GUIDE)
    guide.column_dimensions["A"].width = 100
    for line in _guide(rule, on, specs, count):
        cell = WriteOnlyCell(guide, value=safe_cell(line))
        cell.data_type = "s"
        cell.alignment = wrap
        guide.append([cell])
    _save(wb, target)
    return SheetWritten(rule.id, on, count, [s.label for s in specs])


def _guide(rule: Rule, on: date, specs: list[FieldSpec], count: int) -> list[str]:
    return [
        f"资料补录表：{rule.item.title}（规则 {rule.id}，按 {on.isoformat()} 判断）",
        f"以下 {count} 位居民因资料不全，系统无法判断是否符合条件，需要村（社区）干部核实后补填。",
        "",
        "怎样填写：",
        "1. 只填写黄色单元格：该居民缺少的资料。灰色单元格表示该居民不缺这项资料，无需填写。",
        f"2. 不要修改“{ID_HEADER}”列，系统据此找到居民；姓名已隐去，请结合村组核对。",
        "3. 核实不了的，请留空：留空的单元格保持缺失，该居民仍在待核实名单中。",
        "4. 不要增加或删除行、列，不要改动表头。",
        "",
        "各列填写要求：",
        *(f"· {s.label}：{describe(s)}" for s in specs),
        "",
        "填好后，请交给具有花名册导入权限的工作人员，通过管理平台“花名册导入”页面上传（先检查、再确认），"
        "或使用命令 notifier residents import 文件名.xlsx 导入。导入只写入已填写的单元格；"
        "居民编号不存在或填写不符合要求的行会被逐行逐列指出，该行不写入。",
        f"导入后可用 notifier rules review {rule.id} 查看仍待核实的居民。",
    ]


def _save(wb: Any, target: Path | IO[bytes]) -> None:
    if not isinstance(target, Path):
        wb.save(target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        wb.save(tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
