"""Pure typed pipeline steps (no prefect / mlflow imports)."""
