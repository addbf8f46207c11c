"""A covering index for metric history: (run, key, step, timestamp, id, value, is_nan).

History reads and the downsampled chart queries are answered from the index alone, already in
order; it replaces the (run, key, step) index, which is its prefix.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_metrics_history",
        "metrics",
        ["run_uuid", "key", "step", "timestamp", "id", "value", "is_nan"],
    )
    op.drop_index("ix_metrics_run_key_step", table_name="metrics")
