"""The command-line programs: train.py, predict.py, serve.py, evaluate.py, export_model.py and study.py at the top of the
checkout run these, as do the installed sentiment-train, sentiment-predict, ... commands (pyproject.toml)."""
