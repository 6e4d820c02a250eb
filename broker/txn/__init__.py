"""The transaction coordinator: producer ids, transactions, markers, ``__transaction_state``."""

from broker.txn.coordinator import TransactionCoordinator
from broker.txn.state import TXN_TOPIC, PendingOffset, TxnMetadata, TxnState

__all__ = ["TXN_TOPIC", "PendingOffset", "TransactionCoordinator", "TxnMetadata", "TxnState"]
