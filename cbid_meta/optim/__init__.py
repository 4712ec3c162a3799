"""Per-image optimisation: the progressive coarse-to-fine schedule."""
from .deblur import Deblurrer, DeblurResult, Stage, plan_stages, stage2_blocks

__all__ = ["Deblurrer", "DeblurResult", "Stage", "plan_stages", "stage2_blocks"]
