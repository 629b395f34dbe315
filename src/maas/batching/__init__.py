"""Dynamic batching: single requests merged into batches for one model version's runners."""
