"""The database schema (SQLAlchemy Core). Alembic migrations are generated from this.

Resident fields declared in `rules/fields.yaml` are stored as typed columns `f_<name>`
on `residents`, added by `storage.fieldcols` (not by migrations: they are data-dictionary
driven). Typed columns keep the compiled rule queries fast and comparable in SQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

residents = sa.Table(
    "residents",
    metadata,
    sa.Column("resident_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("phone", sa.String(32)),  # E.164
    sa.Column("phone_kind", sa.String(16)),  # mobile | landline | other
    sa.Column("email", sa.Text),
    sa.Column("id_number", sa.String(18)),
    sa.Column("address", sa.Text),
    sa.Column("village", sa.Text),
    sa.Column("township", sa.Text),
    sa.Column("preferred_channel", sa.String(16)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    # A resident who left the register's care (deceased, moved away): no notice from then on,
    # and the retention clock of their data starts (residents/leaving.py). NULL: a resident.
    sa.Column("left_at", TS),
    sa.Column("left_as", sa.String(16)),  # deceased | moved | other
    sa.Column("left_reason", sa.Text),
    # When `retention apply` removed this resident's personal data (retention/purge.py); NULL: kept.
    sa.Column("purged_at", TS),
    # /query finds a resident by ID number (selfquery.py); imports check one person, one resident
    sa.Index("ix_residents_id_number", "id_number"),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("record_date", sa.Date),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("imported_at", TS, nullable=False),
    sa.UniqueConstraint("kind", "fingerprint", name="uq_records_kind_fingerprint"),
    sa.Index("ix_records_kind_resident", "kind", "resident_id", "record_date"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.String(128), nullable=False, index=True),
    sa.Column("rule_version", sa.String(64), nullable=False),
    sa.Column("notice_key", sa.String(200), nullable=False),
    sa.Column("on_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("snapshot", JSONType, nullable=False),  # rule, templates and parameter values used
    sa.Column("levels", JSONType, nullable=False),  # review levels required, in order
    sa.Column("audience", sa.Integer, nullable=False),
    sa.Column("review", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("approved_at", TS),
    sa.Column("cancelled_by", sa.String(128)),
    sa.Column("cancelled_at", TS),
    sa.Column("completed_at", TS),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("level_name", sa.Text, nullable=False),
    sa.Column("approved_by", sa.String(128), nullable=False),
    sa.Column("approved_at", TS, nullable=False),
    sa.UniqueConstraint("run_id", "level", name="uq_approvals_run_level"),
    sa.UniqueConstraint("run_id", "approved_by", name="uq_approvals_run_approver"),
)

# Every message of a run, rendered when the run is created from the data as it stood then:
# the first channel's and those of the later channels a fallback may use. Approvers page
# through these; the dispatcher sends exactly these texts (DESIGN §14, invariant 7).
run_messages = sa.Table(
    "run_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),  # phone / e-mail / postal address at creation
    sa.Column("recipient_name", sa.Text),
    sa.Column("township", sa.Text),
    sa.Column("village", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("html", sa.Text),
    sa.Column("segments", sa.Integer),
    sa.Column("sha256", sa.String(64), nullable=False),  # of subject, body and html (rendering.digest)
    # SMS through registered templates (Aliyun, Tencent): per provider kind, the template code,
    # signature and variables rendered with the body: {"aliyun": {"code", "sign", "params": [[k, v]]}}
    sa.Column("templates", JSONType),
    # The notice's verification code (verification.py; NULL without [verification] secret): /v
    # looks it up here. Not unique: a run cancelled and re-created prints the same code again.
    sa.Column("verify_code", sa.String(10), index=True),
    sa.Column("postcode", sa.String(16)),  # letters: the register's `postcode` field, if it declares one
    # The notice's amount in fen (rules with amount:; a household's or contact's sum), NULL without one:
    # public lists and change notices read what was stated, not a recomputation.
    sa.Column("amount", sa.BigInteger),
    # When `retention apply` removed the text and recipient (sha256 and verify_code stay); NULL: kept.
    sa.Column("purged_at", TS),
    sa.UniqueConstraint("run_id", "resident_id", "channel", name="uq_run_messages_run_resident_channel"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # Same notice, same resident, same channel: at most once across runs. NULL when the
    # row will never send (skipped), so a cancelled run does not block a new one.
    sa.Column("notice_key", sa.String(200)),
    sa.Column("recipient", sa.Text),  # phone / e-mail / postal address frozen at creation
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_message_id", sa.String(128)),
    sa.Column("segments", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS),
    sa.Column("claimed_by", sa.String(200)),  # worker that marked it `sending` (see delivery/workers.py)
    sa.Column("reason", sa.Text),  # why skipped / failed, readable
    sa.Column("error_code", sa.String(64)),
    sa.Column("fallback_of", sa.Integer, sa.ForeignKey("deliveries.id")),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("run_messages.id")),  # the stored text this row sends
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("sent_at", TS),
    sa.Column("change_kind", sa.String(16)),  # joined / left / changed (`audience: changes`, runs/changes.py)
    sa.Column("purged_at", TS),  # when `retention apply` removed the recipient; NULL: kept
    sa.UniqueConstraint("run_id", "resident_id", "channel", name="uq_deliveries_run_resident_channel"),
    sa.UniqueConstraint("notice_key", "resident_id", "channel", name="uq_deliveries_notice_resident_channel"),
    sa.Index("ix_deliveries_status_run", "status", "run_id"),
    sa.Index("ix_deliveries_recipient", "recipient", "sent_at"),  # per-number spacing (delivery/claim.py)
)

# Who a run of an `audience: changes` rule found eligible (matched, or left undecided after being
# eligible before): the next change run compares against it (runs/changes.py).
run_eligible = sa.Table(
    "run_eligible",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("resident_id", sa.String(64), primary_key=True),
    sa.Column("amount", sa.BigInteger),  # the amount (fen) stated then, when the rule computes one
)

opt_outs = sa.Table(
    "opt_outs",
    metadata,
    sa.Column("phone", sa.String(32), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    sa.Column("ts", TS, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_events_action_seq", "action", "seq"),  # the latest events of one kind (pauses)
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# The most the checkpoint file was ever seen holding (one row, id 1): `audit verify` fails when the
# file later holds fewer checkpoints or ends at an earlier event (deleted, truncated, swapped).
audit_checkpoint_state = sa.Table(
    "audit_checkpoint_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("file", sa.Text, nullable=False),
    sa.Column("checkpoints", sa.Integer, nullable=False),  # lines in the file
    sa.Column("seq", sa.BigInteger, nullable=False),  # the highest checkpoint seen, and its hash
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("updated_at", TS),
)

# Keys the database keeps for itself (name -> value): `pseudonym`, the random HMAC key audit
# pseudonyms use when `[audit] pseudonym_key` names no set environment variable (audit/pseudonyms.py).
audit_keys = sa.Table(
    "audit_keys",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

rule_approvals = sa.Table(
    "rule_approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("level_name", sa.Text, nullable=False),
    sa.Column("approved_by", sa.String(128), nullable=False),
    sa.Column("approved_at", TS, nullable=False),
    sa.UniqueConstraint("rule_id", "version", "level", name="uq_rule_approvals_level"),
    sa.UniqueConstraint("rule_id", "version", "approved_by", name="uq_rule_approvals_approver"),
)

firings = sa.Table(
    "firings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("scheduled_at", TS, nullable=False),  # the schedule's time, not when it ran
    sa.Column("version", sa.String(64)),
    sa.Column("status", sa.String(24), nullable=False),  # created | unapproved | outside_window | missed
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id")),
    sa.Column("reason", sa.Text),
    sa.Column("fired_at", TS, nullable=False),
    # One firing per (rule, scheduled time): restarts, a second process or a clock jump never
    # create a second run for it.
    sa.UniqueConstraint("rule_id", "scheduled_at", name="uq_firings_rule_time"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", TS, nullable=False),
)

# A provider's rate limit shared by every worker (delivery/sharedrate.py): the GCRA virtual time,
# the database's clock in seconds since 1970, when the provider's next slot is free.
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("next_at", sa.Float(precision=53), nullable=False),
)

# -- identity (identity/): staff and auditor accounts, their roles and personal API tokens --------
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),  # as typed, NFKC-normalised (actors.actor_name)
    sa.Column("name_key", sa.String(128), nullable=False, unique=True),  # case-folded: one person, one name
    sa.Column("display", sa.Text),  # e.g. 张科长
    sa.Column("password_hash", sa.Text),  # Argon2id (identity/passwords.py); NULL: token only
    sa.Column("roles", JSONType, nullable=False),  # ["operator", "reviewer", ...]
    sa.Column("levels", JSONType, nullable=False),  # approval levels (1-based) a reviewer may approve
    sa.Column("unmask", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", TS),
    sa.Column("disabled_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

account_tokens = sa.Table(
    "account_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),  # the token itself is shown once
    sa.Column("label", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_used_at", TS),
    sa.Column("revoked_at", TS),
)

# -- the residents' self-query page /query (selfquery.py): counters and one-time codes ------------
# Attempts per key (a keyed hash of a client address or an ID number, never the value) per fixed
# window, shared by every worker; rows of past windows are deleted as new ones are counted.
query_attempts = sa.Table(
    "query_attempts",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True),  # epoch seconds, a multiple of the window
    sa.Column("count", sa.Integer, nullable=False),
    sa.Index("ix_query_attempts_window_start", "window_start"),
)

# SMS one-time codes of /query: the form carries a random token, the database its hash and the
# code's keyed hash, whose notices it unlocks, until when, and how many wrong tries it has had.
query_codes = sa.Table(
    "query_codes",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("resident_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),  # the ID number's keyed hash, for the audit log
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("expires_at", TS, nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
)

# -- public 公示 lists (disclosure/): what was published, exactly, and until when ---------------
public_lists = sa.Table(
    "public_lists",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.String(128), nullable=False, index=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),  # the last day it is shown as current
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),  # of the list's rows (printed on it)
    sa.Column("html", sa.Text, nullable=False),  # the page as published: the website shows exactly this
    sa.Column("html_sha256", sa.String(64), nullable=False),
    sa.Column("pdf_path", sa.Text, nullable=False),  # under the project folder (public-lists/)
    sa.Column("pdf_sha256", sa.String(64), nullable=False),
    sa.Column("published_at", TS, nullable=False),
    sa.Column("published_by", sa.String(128), nullable=False),
)
