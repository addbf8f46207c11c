"""Tuning: hyperparameter studies and the journal of their Optuna storage.

A study is named (names are unique), points at its tracking run, and keeps the specification it
was started with (JSON). Its Optuna storage is a journal: one row per log, numbered from 0 in
each study with no gaps (``seq``). ``log_count`` on the study row is the journal's length; an
append bumps it in the same transaction as it inserts the rows, so appends to one study take
turns on that row's lock and readers always see a gapless prefix.

``lease_owner`` and ``lease_expires`` say which coordinator process runs the study now, so that
a second one does not start while the first is alive, and one that died can be told apart.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


def upgrade() -> None:
    op.create_table(
        "tuning_studies",
        sa.Column("study_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("spec", _LONG_TEXT, nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
        sa.Column("log_count", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(256)),
        sa.Column("lease_expires", sa.BigInteger()),
    )
    op.create_index("ix_tuning_studies_created", "tuning_studies", ["created_time"])
    op.create_table(
        "tuning_journal",
        sa.Column(
            "study_id",
            sa.String(32),
            sa.ForeignKey("tuning_studies.study_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("entry", _LONG_TEXT, nullable=False),
    )
