"""Serving routes: a model's default route (an alias or a weighted split), guard and shadow.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the routes table (additive: no existing table changes)."""
    op.create_table(
        "routes",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("split", sa.JSON, nullable=False),
        sa.Column("guard", sa.JSON, nullable=True),
        sa.Column("shadow", sa.String(128), nullable=True),
        sa.Column("tripped", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=True),
    )


def downgrade() -> None:
    """Drop the routes table."""
    op.drop_table("routes")
