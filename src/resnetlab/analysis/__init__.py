"""Looking inside networks: layer tables, multiply-adds, and (later) gradients and responses."""

from resnetlab.analysis.summary import LayerRow, ModelSummary, summarize

__all__ = ["LayerRow", "ModelSummary", "summarize"]
