"""Public 公示 lists: a run's audience as the public may see it, for the notice board and website.

rows.py     ListRow and the one function that builds a run's rows (names masked, public fields)
render.py   the list as HTML (stored, served) and its A4 PDF (WeasyPrint), QR to /query
publish.py  the run listed, the validity, the stored record and files, the audit event
page.py     the public website view: /lists, /lists/{id}, /lists/{id}.pdf (expired marked)
"""

from .publish import (
    DEFAULT_DAYS,
    PublishedList,
    list_pdf_bytes,
    listed_run,
    publish_list,
    published_list,
    published_lists,
)
from .rows import ListRow, list_rows, rows_sha256

__all__ = [
    "DEFAULT_DAYS",
    "ListRow",
    "PublishedList",
    "list_pdf_bytes",
    "list_rows",
    "listed_run",
    "publish_list",
    "published_list",
    "published_lists",
    "rows_sha256",
]
