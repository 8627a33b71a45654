"""One test module per system of the five seed checklists: the system's
config (config/examples/<system>.yml) against a simulated estate shaped like
it, healthy and then with each fault its checklist names."""
