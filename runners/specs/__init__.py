"""Each experiment's spec: its name, title, claim (with the thresholds the claim quotes),
time budget and parameter model, without torch.

The web role describes and validates runs from these modules alone; the run itself is in
``runners.experiments.<name>``, which only the sandboxed child imports.
"""
