"""Read-side models: projection checkpoints plus each slice's read models."""

from projections_app.models.checkpoint import ProjectionState, ProjectionStatus
from projections_app.models.system import SystemMetrics, SystemStatus

__all__ = ["ProjectionState", "ProjectionStatus", "SystemMetrics", "SystemStatus"]
