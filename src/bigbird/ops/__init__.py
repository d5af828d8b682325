"""Block-sparse attention: the plan (layout), the fast op (block_sparse) and its dense twin (reference)."""

from .layout import BlockPlan, block_plan

__all__ = ["BlockPlan", "block_plan"]
