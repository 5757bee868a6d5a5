"""The monitor: collectors, rules (alert state machine) and the engine that ties them."""
