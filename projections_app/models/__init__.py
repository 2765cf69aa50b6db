"""Read-side models: projection checkpoints plus each slice's read models."""

from projections_app.models.banking import AccountBalance, BankTotals, StatementLine, TransferStatus
from projections_app.models.checkpoint import (
    DeadLetter,
    ProjectionState,
    ProjectionStatus,
    RebuildJob,
    RebuildStatus,
)
from projections_app.models.sagas import SagaInstance
from projections_app.models.system import SystemMetrics, SystemStatus

__all__ = [
    "AccountBalance",
    "BankTotals",
    "StatementLine",
    "TransferStatus",
    "DeadLetter",
    "RebuildJob",
    "RebuildStatus",
    "ProjectionState",
    "ProjectionStatus",
    "SagaInstance",
    "SystemMetrics",
    "SystemStatus",
]
