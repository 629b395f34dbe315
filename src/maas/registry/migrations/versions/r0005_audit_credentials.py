"""Audit rows say which credential acted: its kind and the id of its key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add audit.actor_kind and audit.actor_key_id (nullable: older rows did not record them)."""
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("actor_kind", sa.String(32), nullable=True))
        batch.add_column(sa.Column("actor_key_id", sa.String(128), nullable=True))


def downgrade() -> None:
    """Drop the two columns again."""
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("actor_key_id")
        batch.drop_column("actor_kind")
