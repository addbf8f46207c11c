"""Tables of the tuning store, in the tracking store's database.

Migration 0006 creates them; these describe their current shape for queries. Journal entries
are numbered per study from 0 with no gaps (``seq``); the study row's ``log_count`` is the
next number, bumped in the transaction that inserts the entries.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, MetaData, String, Table, Text
from sqlalchemy.dialects import mysql

_LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")

metadata = MetaData()

studies = Table(
    "tuning_studies",
    metadata,
    Column("study_id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("run_id", String(32), nullable=False),
    Column("experiment_id", String(32), nullable=False),
    Column("spec", _LONG_TEXT, nullable=False),
    Column("created_time", BigInteger, nullable=False),
    Column("log_count", BigInteger, nullable=False),
    Column("lease_owner", String(256)),
    Column("lease_expires", BigInteger),
    Index("ix_tuning_studies_created", "created_time"),
)

journal = Table(
    "tuning_journal",
    metadata,
    Column(
        "study_id",
        String(32),
        ForeignKey("tuning_studies.study_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", BigInteger, primary_key=True),
    Column("entry", _LONG_TEXT, nullable=False),
)
