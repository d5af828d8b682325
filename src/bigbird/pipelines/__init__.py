"""Long-document pipelines: classify, answer (extractive QA), summarize and fill_mask, read in windows."""

from .loading import TruncationWarning
from .qa import answer
from .tasks import classify, fill_mask, summarize

__all__ = ["answer", "classify", "fill_mask", "summarize", "TruncationWarning"]
