"""Consumer groups: the classic group protocol and committed offsets (``__consumer_offsets``)."""

from broker.group.coordinator import CommitRequest, GroupCoordinator, GroupSummary
from broker.group.membership import JoinRequest

__all__ = ["CommitRequest", "GroupCoordinator", "GroupSummary", "JoinRequest"]
