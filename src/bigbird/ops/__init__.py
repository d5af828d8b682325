"""Block-sparse attention: the plan (layout), the fast op (block_sparse) and its dense twin (reference)."""

from .block_sparse import block_sparse_attention
from .layout import BlockPlan, block_plan
from .reference import reference_attention

__all__ = ["BlockPlan", "block_plan", "block_sparse_attention", "reference_attention"]
