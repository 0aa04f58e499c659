"""Batches: the plan and the engine, the ledger and its states, recovery, the directory lock."""
