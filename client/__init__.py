"""katib-surrogate client: submit, watch and compare Katib experiments (cluster or local)."""
