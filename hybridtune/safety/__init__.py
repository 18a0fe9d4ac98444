"""Crisis safety: rule screen (rules.py), learned layer (learned.py, trained by scripts/learned_train.py
on data/), provider layers (providers.py), the layered screen (screen.py), safe response policy
(policy.py, resources.yaml), `hybridtune safety check` (check.py), crisis scenarios and the
safety score for the evaluation (score.py). See README.md here. Import from the submodules;
this file stays empty so that `hybridtune.config` can import `safety.config` cheaply."""
