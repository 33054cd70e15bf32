"""The web console of `notifier serve`: server-rendered pages for staff and auditors.

Mounted by web.py under the same port as the webhooks. Pages call the same services as the CLI;
every page names the permission it needs (pages.py) and every action is audited under the
logged-in account.
"""

from .app import console_app

__all__ = ["console_app"]
