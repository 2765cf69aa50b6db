"""Read-side models: projection checkpoints plus each slice's read models."""

from projections_app.models.checkpoint import DeadLetter, ProjectionState, ProjectionStatus
from projections_app.models.system import SystemMetrics, SystemStatus

__all__ = ["DeadLetter", "ProjectionState", "ProjectionStatus", "SystemMetrics", "SystemStatus"]
