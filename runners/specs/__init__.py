"""Each experiment's spec: what it claims and which parameters it takes, without torch."""
