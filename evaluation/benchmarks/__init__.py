"""One folder per benchmark: `task.py` (load / build_query / score_item / aggregate), `prompts.py`."""
